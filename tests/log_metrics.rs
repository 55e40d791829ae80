//! Log-derived metrics end to end: rules over a tailed file, hostile label
//! values that `promtool check metrics` still accepts, exemplars in the
//! OpenMetrics output and stored by a real Prometheus
//! (`--enable-feature=exemplar-storage`, read back through
//! `/api/v1/query_exemplars`), and `check-config` naming invalid rules.

mod logs_support;
mod support;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use logs_support::Layout;
use support::prometheus::Prometheus;
use support::{assert_promtool_clean, require_program, Sidewatch};

const BIN: &str = env!("CARGO_BIN_EXE_sidewatch");
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

const RULES: &str = r#"
[[log_metrics]]
name = "req_duration_seconds"
type = "histogram"
value_field = "latency_ms"
value_unit = "ms"
labels = { route = "path", status = "status" }
route_labels = ["route"]

[[log_metrics]]
name = "events_total"
labels = { level = "level", who = "who" }

[[log_metrics]]
name = "rule_errors_demo_total"
value_field = "bytes"
"#;

fn write_lines(layout: &Layout, lines: &[String]) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(layout.logs().join("app.log"))
        .unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
}

fn config(layout: &Layout) -> String {
    let base = layout.config("*.log", "", "");
    format!("{base}\n[routes]\ntemplates = [\"/users/{{id}}\"]\n{RULES}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_count_label_and_link_exemplars_and_promtool_accepts_hostile_values() {
    let promtool = require_program("promtool", "apt-get install -y prometheus");
    let layout = Layout::new();
    write_lines(
        &layout,
        &[
            format!(r#"{{"level":"info","path":"/users/42?tab=1","status":200,"latency_ms":180,"trace_id":"{TRACE}","who":"plain"}}"#),
            r#"{"level":"warn","path":"/orders/1042","status":404,"latency_ms":1200,"request_id":"req-7","who":"quote\" and\nnewline\\"}"#.to_owned(),
            r#"{"level":"error","path":"/x","status":500,"latency_ms":"slow","bytes":"lots"}"#.to_owned(),
            "not json at all".to_owned(),
        ],
    );
    let sidewatch = Sidewatch::start(&config(&layout)).await;
    sidewatch
        .wait_for_metric(
            "sidewatch_log_rule_errors_total",
            &[
                ("rule", "rule_errors_demo_total"),
                ("reason", "not_numeric"),
            ],
            Duration::from_secs(10),
            |v| v == 1.0,
        )
        .await;
    let text = sidewatch.metrics().await;
    assert_promtool_clean(&promtool, &text);
    for expected in [
        r#"req_duration_seconds_bucket{le="0.25",route="/users/{id}",status="200"} 1"#,
        r#"req_duration_seconds_bucket{le="2.0",route="/orders/{id}",status="404"} 1"#,
        r#"events_total{level="warn",who="quote\" and\nnewline\\"} 1"#,
        r#"sidewatch_log_rule_errors_total{rule="req_duration_seconds",reason="not_numeric"} 1"#,
    ] {
        assert!(text.contains(expected), "{expected} missing from\n{text}");
    }
    // Events are forwarded whatever the rules made of them.
    let delivered = logs_support::wait_delivered(
        &layout.out(),
        Duration::from_secs(10),
        "every line",
        |events| events.len() >= 4,
    );
    assert_eq!(delivered.len(), 4);

    let openmetrics = sidewatch.openmetrics().await;
    assert!(
        openmetrics.contains(&format!(r#"req_duration_seconds_bucket{{le="0.25",route="/users/{{id}}",status="200"}} 1 # {{trace_id="{TRACE}"}} 0.18"#)),
        "trace ID exemplar missing:\n{openmetrics}"
    );
    assert!(
        openmetrics.contains(r#"status="404"} 1 # {trace_id="req-7"} 1.2"#),
        "correlation ID exemplar missing:\n{openmetrics}"
    );
    assert!(!text.contains("trace_id"), "0.0.4 carries no exemplars");

    let prometheus = Prometheus::start(sidewatch.addr, "exemplar-storage").await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let query = format!(
        "/api/v1/query_exemplars?query=req_duration_seconds_bucket&start={}&end={}",
        now - 3600,
        now + 3600
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let stored = loop {
        let answer = prometheus.api(&query).await;
        let text = answer.to_string();
        if text.contains(TRACE) && text.contains("req-7") {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "exemplars never stored: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let series = stored["data"].as_array().expect("exemplar series");
    let slow = series
        .iter()
        .find(|s| s["seriesLabels"]["status"] == "404")
        .expect("the 404 series has an exemplar");
    assert_eq!(slow["seriesLabels"]["le"], "2.0", "{slow}");
    assert_eq!(
        slow["exemplars"][0]["labels"]["trace_id"], "req-7",
        "{slow}"
    );
    assert_eq!(slow["exemplars"][0]["value"], "1.2", "{slow}");
    // Prometheus scraped the hostile label value intact.
    let who = prometheus
        .api("/api/v1/query?query=events_total%7Blevel%3D%22warn%22%7D")
        .await;
    assert_eq!(
        who["data"]["result"][0]["metric"]["who"], "quote\" and\nnewline\\",
        "{who}"
    );
    drop(prometheus);
    sidewatch.stop().await;
}

#[test]
fn check_config_names_invalid_rules_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[logs]
state_dir = "/tmp"
[[logs.sources]]
type = "stdin"
[[logs.sinks]]
type = "stdout"
[[log_metrics]]
name = "latency_seconds"
type = "histogram"
value_field = "latency_ms"
buckets = [0.5, 0.1]
[[log_metrics]]
name = "redis_up"
type = "gauge"
value_field = "x"
[[log_metrics]]
name = "regex_total"
match = { field = "path", regex = "([" }
"#,
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", path.to_str().unwrap()])
        .env_remove("SIDEWATCH_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for expected in [
        "`log_metrics[0].buckets`: rule \"latency_seconds\"",
        "`log_metrics[1].name`: rule \"redis_up\": \"redis_up\" is already registered by the Redis collector",
        "`log_metrics[2].match.regex`: rule \"regex_total\": invalid regex",
    ] {
        assert!(stderr.contains(expected), "{expected} missing from {stderr}");
    }
}
