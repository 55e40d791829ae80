//! The admin server: both exposition formats (checked by a real `promtool`),
//! gzip, method handling, readiness and `/status`.

mod support;

use std::io::Read;
use std::time::Duration;

use support::{client, metric, require_program, spawn_target, Behaviour, Sidewatch};

const CONFIG_WITH_TARGET: &str = r#"
[process]
interval = "200ms"
[[health.targets]]
name = "app"
url = "http://{ADDR}/health"
interval = "200ms"
"#;

async fn sidewatch_with_app() -> Sidewatch {
    let app = spawn_target(Behaviour::json(
        200,
        r#"{"status":"ok","checks":{"db":"ok"}}"#,
    ))
    .await;
    let sidewatch = Sidewatch::start(&CONFIG_WITH_TARGET.replace("{ADDR}", &app.to_string())).await;
    // Wait until every collector has published once.
    for (name, labels) in [
        (
            "sidewatch_health_check_up",
            &[("target", "app"), ("check", "db")][..],
        ),
        ("process_resident_memory_bytes", &[][..]),
    ] {
        sidewatch
            .wait_for_metric(name, labels, Duration::from_secs(10), |_| true)
            .await;
    }
    sidewatch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_output_is_clean_for_promtool() {
    let promtool = require_program("promtool", "apt-get install -y prometheus");
    let sidewatch = sidewatch_with_app().await;
    let response = sidewatch.get("/metrics").await;
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    for family in [
        "sidewatch_build_info",
        "sidewatch_collector_up",
        "sidewatch_target_up",
        "sidewatch_probe_duration_seconds_bucket",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(text.contains(family), "{family} missing from:\n{text}");
    }
    assert!(!text.contains("# EOF") && !text.contains("# UNIT"));

    support::assert_promtool_clean(&promtool, &text);
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetrics_when_asked_and_gzip_when_allowed() {
    let sidewatch = sidewatch_with_app().await;
    let url = format!("http://{}/metrics", sidewatch.addr);
    let response = client()
        .get(&url)
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE sidewatch_build info"), "{text}");
    assert!(
        text.contains("# TYPE process_cpu_seconds counter"),
        "{text}"
    );

    // A client that leaves decompression to the test.
    let raw = reqwest::Client::builder()
        .no_proxy()
        .no_gzip()
        .build()
        .unwrap();
    let response = raw
        .get(&url)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let compressed = response.bytes().await.unwrap();
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_string(&mut plain)
        .unwrap();
    assert!(
        metric(&plain, "sidewatch_target_up", &[("target", "app")]).is_some(),
        "{plain}"
    );
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_probes_and_status() {
    let sidewatch = sidewatch_with_app().await;
    let url = |path: &str| format!("http://{}{path}", sidewatch.addr);
    let post = client().post(url("/metrics")).send().await.unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    let head = client().head(url("/metrics")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(sidewatch.get("/healthz").await.status(), 200);
    assert_eq!(sidewatch.get("/readyz").await.status(), 200);
    assert_eq!(sidewatch.get("/nope").await.status(), 404);

    let status: serde_json::Value = sidewatch.status().await;
    assert_eq!(status["ready"], true);
    let app = &status["collectors"]["health/app"];
    assert_eq!(app["up"], true, "{status}");
    assert!(app["last_success"].is_string(), "{status}");
    assert_eq!(app["details"]["checks"]["db"], "pass");
    assert_eq!(status["collectors"]["process"]["up"], true);
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_ignores_the_apps_health() {
    // The only target is down; sidewatch itself is still ready.
    let sidewatch = Sidewatch::start(
        "[[health.targets]]\nname = \"down\"\ntcp = \"127.0.0.1:1\"\ninterval = \"200ms\"\n",
    )
    .await;
    sidewatch
        .wait_for_metric(
            "sidewatch_target_up",
            &[("target", "down")],
            Duration::from_secs(10),
            |v| v == 0.0,
        )
        .await;
    assert_eq!(sidewatch.get("/readyz").await.status(), 200);
    sidewatch.stop().await;
}
