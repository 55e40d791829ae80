//! Health probing against real HTTP/TCP servers on loopback: every kind of
//! broken target ends as `sidewatch_target_up 0` with the right reason, and
//! never blocks a scrape.

mod support;

use std::time::{Duration, Instant};

use support::{garbage, metric, spawn_target, Behaviour, Sidewatch};

const WAIT: Duration = Duration::from_secs(10);

fn http_target(name: &str, url: &str, extra: &str) -> String {
    format!("[[health.targets]]\nname = \"{name}\"\nurl = \"{url}\"\ninterval = \"500ms\"\ntimeout = \"400ms\"\n{extra}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_target_gets_the_right_up_and_reason() {
    let healthy = spawn_target(Behaviour::json(
        200,
        r#"{"status":"ok","checks":{"db":"ok","redis":"fail"}}"#,
    ))
    .await;
    let spring_down = spawn_target(Behaviour::json(
        503,
        r#"{"status":"DOWN","components":{"db":{"status":"DOWN"},"ping":{"status":"UP"}}}"#,
    ))
    .await;
    let reports_fail = spawn_target(Behaviour::json(
        200,
        r#"{"status":"fail","checks":{"db":"fail"}}"#,
    ))
    .await;
    let error_500 = spawn_target(Behaviour::json(500, "{}")).await;
    let hanging = spawn_target(Behaviour::Hang).await;
    let closing = spawn_target(Behaviour::Close).await;
    let raw_garbage = spawn_target(Behaviour::Garbage(garbage(10 << 20))).await;
    let big_body = spawn_target(Behaviour::Respond {
        status: 200,
        content_type: "application/octet-stream",
        body: garbage(10 << 20),
    })
    .await;
    let redirect_loop = spawn_target(Behaviour::RedirectLoop).await;
    let plain_http = spawn_target(Behaviour::Immediate(b"HTTP/1.1 400 Bad Request\r\n\r\n")).await;
    let regex_miss = spawn_target(Behaviour::json(200, r#"{"version":"1"}"#)).await;
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };

    let mut toml = String::new();
    toml += &http_target("healthy", &format!("http://{healthy}/health"), "");
    toml += &http_target(
        "spring-down",
        &format!("http://{spring_down}/actuator/health"),
        "",
    );
    toml += &http_target("reports-fail", &format!("http://{reports_fail}/health"), "");
    toml += &http_target("error-500", &format!("http://{error_500}/health"), "");
    toml += &http_target("hanging", &format!("http://{hanging}/health"), "");
    toml += &http_target("closing", &format!("http://{closing}/health"), "");
    toml += &http_target("raw-garbage", &format!("http://{raw_garbage}/health"), "");
    toml += &http_target("big-body", &format!("http://{big_body}/health"), "");
    toml += &http_target("redirect-loop", &format!("http://{redirect_loop}/loop"), "");
    toml += &http_target("tls-broken", &format!("https://{plain_http}/health"), "");
    toml += &http_target(
        "regex-miss",
        &format!("http://{regex_miss}/health"),
        "body_regex = '\"status\"'",
    );
    toml += &format!(
        "[[health.targets]]\nname = \"tcp-up\"\ntcp = \"{healthy}\"\ninterval = \"500ms\"\n"
    );
    toml += &format!(
        "[[health.targets]]\nname = \"tcp-refused\"\ntcp = \"{refused}\"\ninterval = \"500ms\"\n"
    );
    let sidewatch = Sidewatch::start(&toml).await;

    let expectations = [
        ("healthy", None),
        ("big-body", None),
        ("tcp-up", None),
        ("spring-down", Some("status")),
        ("reports-fail", Some("body")),
        ("error-500", Some("status")),
        ("hanging", Some("timeout")),
        ("closing", Some("connect")),
        ("raw-garbage", Some("body")),
        ("redirect-loop", Some("status")),
        ("tls-broken", Some("tls")),
        ("regex-miss", Some("body")),
        ("tcp-refused", Some("connect")),
    ];
    for (target, reason) in expectations {
        let up = if reason.is_some() { 0.0 } else { 1.0 };
        // Wait for a probe to have happened with the expected result.
        sidewatch
            .wait_for_metric(
                "sidewatch_probe_duration_seconds_count",
                &[("target", target)],
                WAIT,
                |n| n >= 1.0,
            )
            .await;
        sidewatch
            .wait_for_metric("sidewatch_target_up", &[("target", target)], WAIT, |v| {
                v == up
            })
            .await;
        if let Some(reason) = reason {
            sidewatch
                .wait_for_metric(
                    "sidewatch_probe_failures_total",
                    &[("target", target), ("reason", reason)],
                    WAIT,
                    |n| n >= 1.0,
                )
                .await;
        }
    }

    let text = sidewatch.metrics().await;
    // Every failure counter starts at zero, so rate() works from the first scrape.
    assert_eq!(
        metric(
            &text,
            "sidewatch_probe_failures_total",
            &[("target", "healthy"), ("reason", "tls")]
        ),
        Some(0.0)
    );
    // Checks from the JSON body, in both the simple and the Spring Boot shape.
    assert_eq!(
        metric(
            &text,
            "sidewatch_health_check_up",
            &[("target", "healthy"), ("check", "db")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "sidewatch_health_check_up",
            &[("target", "healthy"), ("check", "redis")]
        ),
        Some(0.0)
    );
    assert_eq!(
        metric(
            &text,
            "sidewatch_health_check_up",
            &[("target", "spring-down"), ("check", "db")]
        ),
        Some(0.0)
    );
    assert_eq!(
        metric(
            &text,
            "sidewatch_health_check_up",
            &[("target", "spring-down"), ("check", "ping")]
        ),
        Some(1.0)
    );
    // A failing target is a failing collector run, with the reason.
    assert_eq!(
        metric(
            &text,
            "sidewatch_collector_up",
            &[("collector", "health/hanging")]
        ),
        Some(0.0)
    );

    // /status names the last error for each target.
    let status: serde_json::Value = sidewatch.status().await;
    let hanging_status = &status["collectors"]["health/hanging"];
    assert_eq!(
        hanging_status["last_error_reason"], "timeout",
        "{hanging_status}"
    );
    assert_eq!(
        status["collectors"]["health/healthy"]["details"]["checks"]["redis"],
        "fail"
    );

    // A scrape never waits on a probe, even with a hanging target.
    let started = Instant::now();
    let _ = sidewatch.metrics().await;
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "scrape took {:?}",
        started.elapsed()
    );
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_comes_back_recovers_within_an_interval() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let toml = http_target("flappy", &format!("http://{addr}/health"), "");
    let sidewatch = Sidewatch::start(&toml).await;
    sidewatch
        .wait_for_metric("sidewatch_target_up", &[("target", "flappy")], WAIT, |v| {
            v == 0.0
        })
        .await;

    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
        }
    });
    sidewatch
        .wait_for_metric("sidewatch_target_up", &[("target", "flappy")], WAIT, |v| {
            v == 1.0
        })
        .await;
    sidewatch.stop().await;
}
