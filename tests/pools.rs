//! The app pool collector against fake app endpoints on loopback: every
//! preset's JSON shape, a custom mapping, shape mismatches named by their
//! JSON pointer, HTTP failures, and re-exposing a Prometheus endpoint (with
//! the combined output still clean for a real `promtool`).

mod support;

use std::time::Duration;

use support::{metric, require_program, spawn_target, Behaviour, Sidewatch};

const WAIT: Duration = Duration::from_secs(10);

fn source(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[[pools.sources]]\nname = \"{name}\"\nurl = \"{url}\"\ninterval = \"200ms\"\ntimeout = \"500ms\"\n{extra}\n"
    )
}

async fn json_source(name: &str, body: &str, extra: &str) -> String {
    let addr = spawn_target(Behaviour::json(200, body)).await;
    source(name, &format!("http://{addr}/debug/pools"), extra)
}

/// `(source, pool) -> (idle, used, max, pending)` as exported.
fn pool(text: &str, source: &str, pool: &str) -> [Option<f64>; 4] {
    let labels = |state: Option<&'static str>| {
        let mut labels = vec![("source", source), ("pool_name", pool)];
        labels.extend(state.map(|s| ("state", s)));
        labels
    };
    [
        metric(text, "db_client_connection_count", &labels(Some("idle"))),
        metric(text, "db_client_connection_count", &labels(Some("used"))),
        metric(text, "db_client_connection_max", &labels(None)),
        metric(text, "db_client_connection_pending_requests", &labels(None)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_preset_reads_its_shape() {
    let mut toml = String::new();
    toml += &json_source(
        "hikari",
        r#"{"pools":[{"poolName":"HikariPool-1","activeConnections":3,"idleConnections":7,"totalConnections":10,"threadsAwaitingConnection":2,"maximumPoolSize":10}]}"#,
        "preset = \"hikaricp\"",
    )
    .await;
    toml += &json_source(
        "alchemy",
        r#"{"pools":{"main":{"size":5,"checked_in":1,"checked_out":4,"overflow":-1,"max_overflow":10}}}"#,
        "preset = \"sqlalchemy\"",
    )
    .await;
    toml += &json_source(
        "go",
        r#"{"primary":{"MaxOpenConnections":20,"OpenConnections":5,"InUse":2,"Idle":3,"WaitCount":0,"WaitDuration":0},"replica":{"MaxOpenConnections":0,"OpenConnections":1,"InUse":0,"Idle":1,"WaitCount":0,"WaitDuration":0}}"#,
        "preset = \"go_sql\"",
    )
    .await;
    toml += &json_source(
        "node",
        r#"{"totalCount":8,"idleCount":2,"waitingCount":4,"max":8}"#,
        "preset = \"node_postgres\"",
    )
    .await;
    toml += &json_source(
        "rust",
        r#"{"cache":{"max_size":16,"size":5,"available":3,"waiting":0}}"#,
        "preset = \"deadpool\"",
    )
    .await;
    let sidewatch = Sidewatch::start(&toml).await;
    sidewatch
        .wait_for_metric(
            "db_client_connection_count",
            &[
                ("source", "rust"),
                ("pool_name", "cache"),
                ("state", "used"),
            ],
            WAIT,
            |_| true,
        )
        .await;
    for source in ["hikari", "alchemy", "go", "node"] {
        sidewatch
            .wait_for_metric(
                "sidewatch_collector_up",
                &[("collector", &format!("pool/{source}"))],
                WAIT,
                |v| v == 1.0,
            )
            .await;
    }
    let text = sidewatch.metrics().await;
    assert_eq!(
        pool(&text, "hikari", "HikariPool-1"),
        [Some(7.0), Some(3.0), Some(10.0), Some(2.0)],
        "{text}"
    );
    assert_eq!(
        pool(&text, "alchemy", "main"),
        [Some(1.0), Some(4.0), Some(15.0), None],
        "{text}"
    );
    assert_eq!(
        pool(&text, "go", "primary"),
        [Some(3.0), Some(2.0), Some(20.0), None],
        "{text}"
    );
    assert_eq!(
        pool(&text, "go", "replica"),
        [Some(1.0), Some(0.0), None, None],
        "{text}"
    );
    assert_eq!(
        pool(&text, "node", "default"),
        [Some(2.0), Some(6.0), Some(8.0), Some(4.0)],
        "{text}"
    );
    assert_eq!(
        pool(&text, "rust", "cache"),
        [Some(3.0), Some(2.0), Some(16.0), Some(0.0)],
        "{text}"
    );
    // Go reports running wait totals; with no waits between reads the average is 0.
    sidewatch
        .wait_for_metric(
            "db_client_connection_wait_time_seconds",
            &[("source", "go"), ("pool_name", "primary")],
            WAIT,
            |v| v == 0.0,
        )
        .await;
    let status = sidewatch.status().await;
    assert_eq!(
        status["collectors"]["pool/go"]["details"]["pools"],
        serde_json::json!(["primary", "replica"]),
        "{status}"
    );
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_mapping_reads_the_demo_shape() {
    let toml = json_source(
        "custom",
        r#"{"pools":{"primary":{"active":4,"idle":6,"max":10,"pending":1,"wait_ms":25}}}"#,
        "preset = \"custom\"\n[pools.sources.mapping]\npools = \"/pools\"\nidle = \"/idle\"\nused = \"/active\"\nmax = \"/max\"\npending = \"/pending\"\nwait_time = \"/wait_ms\"\nwait_time_unit = \"ms\"",
    )
    .await;
    let sidewatch = Sidewatch::start(&toml).await;
    let wait = sidewatch
        .wait_for_metric(
            "db_client_connection_wait_time_seconds",
            &[("source", "custom"), ("pool_name", "primary")],
            WAIT,
            |_| true,
        )
        .await;
    assert_eq!(wait, 0.025);
    let text = sidewatch.metrics().await;
    assert_eq!(
        pool(&text, "custom", "primary"),
        [Some(6.0), Some(4.0), Some(10.0), Some(1.0)],
        "{text}"
    );
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatches_and_http_failures_get_their_reason() {
    let mut toml = String::new();
    toml += &json_source(
        "missing-field",
        r#"{"pools":[{"poolName":"a","activeConnections":1}]}"#,
        "preset = \"hikaricp\"",
    )
    .await;
    toml += &json_source("not-json", "<html>oops</html>", "preset = \"hikaricp\"").await;
    let error = spawn_target(Behaviour::json(500, "{}")).await;
    toml += &source(
        "error-500",
        &format!("http://{error}/debug/pools"),
        "preset = \"deadpool\"",
    );
    let hanging = spawn_target(Behaviour::Hang).await;
    toml += &source(
        "hanging",
        &format!("http://{hanging}/debug/pools"),
        "preset = \"deadpool\"",
    );
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    toml += &source(
        "refused",
        &format!("http://{refused}/debug/pools"),
        "preset = \"deadpool\"",
    );
    let many: Vec<String> = (0..40)
        .map(|i| format!(r#"{{"poolName":"p{i}","activeConnections":1,"idleConnections":1}}"#))
        .collect();
    toml += &json_source(
        "many",
        &format!(r#"{{"pools":[{}]}}"#, many.join(",")),
        "preset = \"hikaricp\"\nmax_pools = 32",
    )
    .await;
    let sidewatch = Sidewatch::start(&toml).await;
    for (name, reason) in [
        ("missing-field", "shape"),
        ("not-json", "shape"),
        ("error-500", "status"),
        ("hanging", "timeout"),
        ("refused", "connect"),
    ] {
        sidewatch
            .wait_for_error(&format!("pool/{name}"), reason, WAIT)
            .await;
    }
    sidewatch
        .wait_for_metric(
            "sidewatch_pool_series_dropped_total",
            &[("source", "many")],
            WAIT,
            |v| v >= 8.0,
        )
        .await;
    let status = sidewatch.status().await;
    let missing = &status["collectors"]["pool/missing-field"];
    assert_eq!(
        missing["details"]["pointer"], "/pools/0/idleConnections",
        "{status}"
    );
    assert!(
        missing["last_error"]
            .as_str()
            .unwrap()
            .contains("/pools/0/idleConnections"),
        "{status}"
    );
    assert_eq!(status["collectors"]["pool/many"]["up"], true, "{status}");
    assert!(
        status["collectors"]["pool/many"]["degraded"]
            .as_str()
            .unwrap()
            .contains("8 pools"),
        "{status}"
    );
    let text = sidewatch.metrics().await;
    let pools = text
        .lines()
        .filter(|l| l.starts_with("db_client_connection_count{source=\"many\""))
        .count();
    assert_eq!(pools, 64, "32 pools x 2 states");
    sidewatch.stop().await;
}

const APP_METRICS: &str = r#"# HELP hikaricp_connections_active Active connections
# TYPE hikaricp_connections_active gauge
hikaricp_connections_active{pool="HikariPool-1"} 3
# HELP hikaricp_connections_acquire_seconds Connection acquire time
# TYPE hikaricp_connections_acquire_seconds histogram
hikaricp_connections_acquire_seconds_bucket{pool="HikariPool-1",le="0.005"} 90
hikaricp_connections_acquire_seconds_bucket{pool="HikariPool-1",le="0.5"} 99
hikaricp_connections_acquire_seconds_bucket{pool="HikariPool-1",le="+Inf"} 100
hikaricp_connections_acquire_seconds_sum{pool="HikariPool-1"} 1.25
hikaricp_connections_acquire_seconds_count{pool="HikariPool-1"} 100
# HELP app_jobs_total Jobs processed
# TYPE app_jobs_total counter
app_jobs_total{queue="a"} 5
app_jobs_total{queue="b"} 6
app_jobs_total{queue="c"} 7
# HELP app_unselected Not asked for
# TYPE app_unselected gauge
app_unselected 1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_families_are_re_exposed_and_promtool_clean() {
    let promtool = require_program("promtool", "apt-get install -y prometheus");
    let app = spawn_target(Behaviour::Respond {
        status: 200,
        content_type: "text/plain; version=0.0.4",
        body: APP_METRICS.as_bytes().to_vec(),
    })
    .await;
    let toml = source(
        "app",
        &format!("http://{app}/metrics"),
        "kind = \"prometheus\"\nfamilies = [\"hikaricp_*\", \"app_jobs_total\"]\nmax_series_per_family = 2",
    );
    let sidewatch = Sidewatch::start(&toml).await;
    sidewatch
        .wait_for_metric(
            "hikaricp_connections_active",
            &[("pool", "HikariPool-1")],
            WAIT,
            |v| v == 3.0,
        )
        .await;
    let text = sidewatch.metrics().await;
    for line in [
        "# TYPE hikaricp_connections_acquire_seconds histogram",
        "hikaricp_connections_acquire_seconds_count{pool=\"HikariPool-1\"} 100",
        "# TYPE app_jobs_total counter",
        "app_jobs_total{queue=\"a\"} 5",
        "app_jobs_total{queue=\"b\"} 6",
        "sidewatch_pool_series_dropped_total{source=\"app\"}",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    assert!(
        !text.contains("queue=\"c\"") && !text.contains("app_unselected"),
        "{text}"
    );
    for (le, count) in [("0.005", 90.0), ("0.5", 99.0), ("+Inf", 100.0)] {
        let labels = [("pool", "HikariPool-1"), ("le", le)];
        assert_eq!(
            metric(
                &text,
                "hikaricp_connections_acquire_seconds_bucket",
                &labels
            ),
            Some(count),
            "{text}"
        );
    }
    let status = sidewatch.status().await;
    assert_eq!(
        status["collectors"]["pool/app"]["details"]["series_dropped"], 1,
        "{status}"
    );

    support::assert_promtool_clean(&promtool, &text);

    // OpenMetrics too: the counter's family is named without `_total`.
    let openmetrics = support::client()
        .get(format!("http://{}/metrics", sidewatch.addr))
        .header("accept", "application/openmetrics-text;version=1.0.0")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        openmetrics.contains("# TYPE app_jobs counter"),
        "{openmetrics}"
    );
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
    sidewatch.stop().await;
}
