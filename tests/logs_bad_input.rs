//! Bad input never crashes the pipeline or loses a line: every line is
//! delivered (flagged where malformed) or counted as dropped with a reason.
//! Also: an unwritable state directory stops sidewatch at start with exit 2,
//! and `app | sidewatch run` forwards stdin to stdout.

mod logs_support;
mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use logs_support::{delivered, wait_delivered, Layout};
use serde_json::Value;
use support::Sidewatch;

const BIN: &str = env!("CARGO_BIN_EXE_sidewatch");

fn flag(event: &Value, name: &str) -> bool {
    event[format!("sidewatch.{name}")] == Value::Bool(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_lines_are_delivered_flagged_and_empty_ones_counted() {
    let layout = Layout::new();
    let mut input: Vec<u8> = Vec::new();
    input.extend_from_slice(b"{\"id\":0,\"ok\":true}\n");
    input.extend_from_slice(b"{\"a\":\n");
    input.extend_from_slice(b"{\"big\":\"");
    input.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    input.extend_from_slice(b"\"}\n");
    input.extend_from_slice(b"\x00\x01\x02garbage\xff\xfe\x00\n");
    input.extend_from_slice(b"{\"id\":4,\"s\":\"caf\xe9\"}\n");
    input.extend_from_slice(format!("{}{}\n", "[".repeat(5000), "]".repeat(5000)).as_bytes());
    input.extend_from_slice(b"[1,2,3]\n\"just a string\"\n");
    input.extend_from_slice(b"{\"id\":8,\"crlf\":true}\r\n");
    input.extend_from_slice(b"\n\r\n");
    input.extend_from_slice(b"{\"id\":11,\"last\":true}\n");
    std::fs::write(layout.logs().join("app.log"), &input).unwrap();

    let sidewatch = Sidewatch::start(&layout.config("*.log", "", "")).await;
    let out = layout.out();
    let events = tokio::task::spawn_blocking(move || {
        wait_delivered(&out, Duration::from_secs(60), "bad input", |e| {
            e.iter().any(|e| e["id"] == 11)
        })
    })
    .await
    .unwrap();
    let metrics = sidewatch.metrics().await;
    sidewatch.stop().await;

    assert_eq!(
        events.len(),
        10,
        "every non-empty line is delivered: {events:#?}"
    );
    let find = |pred: &dyn Fn(&Value) -> bool| {
        events
            .iter()
            .find(|e| pred(e))
            .unwrap_or_else(|| panic!("no such event in {events:#?}"))
            .clone()
    };
    let ok = find(&|e| e["id"] == 0);
    assert_eq!(ok, serde_json::json!({"id": 0, "ok": true}));
    let malformed = find(&|e| e["message"] == "{\"a\":");
    assert!(flag(&malformed, "parse_error"));
    let big = find(&|e| {
        e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("{\"big\""))
    });
    assert!(flag(&big, "truncated") && flag(&big, "parse_error"));
    assert_eq!(big["message"].as_str().unwrap().len(), 256 * 1024);
    let garbage = find(&|e| e["message"].as_str().is_some_and(|m| m.contains("garbage")));
    assert!(flag(&garbage, "invalid_utf8") && flag(&garbage, "parse_error"));
    assert!(garbage["message"]
        .as_str()
        .unwrap()
        .starts_with("\u{0}\u{1}\u{2}garbage\u{fffd}"));
    let latin1 = find(&|e| e["id"] == 4);
    assert_eq!(latin1["s"], "caf\u{fffd}");
    assert!(flag(&latin1, "invalid_utf8") && !flag(&latin1, "parse_error"));
    let deep = find(&|e| e["message"].as_str().is_some_and(|m| m.starts_with("[[[[")));
    assert!(flag(&deep, "depth_exceeded") && flag(&deep, "parse_error"));
    let array = find(&|e| e["message"] == serde_json::json!([1, 2, 3]));
    assert!(flag(&array, "not_object"));
    let scalar = find(&|e| e["message"] == "just a string");
    assert!(flag(&scalar, "not_object"));
    let crlf = find(&|e| e["id"] == 8);
    assert_eq!(crlf, serde_json::json!({"id": 8, "crlf": true}));

    let value = |name: &str, labels: &[(&str, &str)]| support::metric(&metrics, name, labels);
    assert_eq!(
        value(
            "sidewatch_events_dropped_total",
            &[("stage", "parse"), ("reason", "empty_line")]
        ),
        Some(2.0),
        "{metrics}"
    );
    for (outcome, count) in [
        ("ok", 3.0),
        ("truncated", 1.0),
        ("invalid_utf8", 2.0),
        ("depth_exceeded", 1.0),
        ("not_object", 2.0),
        ("parse_error", 1.0),
    ] {
        assert_eq!(
            value(
                "sidewatch_log_events_total",
                &[("source", "app"), ("outcome", outcome)]
            ),
            Some(count),
            "{outcome}: {metrics}"
        );
    }
    assert_eq!(
        value(
            "sidewatch_sink_events_total",
            &[("sink", "out"), ("outcome", "delivered")]
        ),
        Some(10.0)
    );
    assert!(
        value("sidewatch_log_bytes_total", &[("source", "app")]).unwrap() >= input.len() as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_appearing_later_and_a_directory_created_late_are_tailed() {
    let layout = Layout::new();
    let sidewatch = Sidewatch::start(&layout.config("later/*.log", "", "")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::create_dir(layout.logs().join("later")).unwrap();
    std::fs::write(layout.logs().join("later/a.log"), "{\"id\":1}\n").unwrap();
    let out = layout.out();
    tokio::task::spawn_blocking(move || {
        wait_delivered(&out, Duration::from_secs(20), "late file", |e| e.len() == 1)
    })
    .await
    .unwrap();
    // Deleted while open: what was written is still delivered.
    let path = layout.logs().join("later/b.log");
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(b"{\"id\":2}\n").unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    std::fs::remove_file(&path).unwrap();
    file.write_all(b"{\"id\":3}\n").unwrap();
    let out = layout.out();
    tokio::task::spawn_blocking(move || {
        wait_delivered(&out, Duration::from_secs(20), "deleted file", |e| {
            e.len() == 3
        })
    })
    .await
    .unwrap();
    sidewatch.stop().await;
    assert_eq!(delivered(&layout.out()).len(), 3);
}

#[test]
fn an_unwritable_state_dir_stops_sidewatch_at_start() {
    let layout = Layout::new();
    let blocker = layout.dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let config = layout.config("*.log", "", "").replace(
        &layout.state().display().to_string(),
        &blocker.join("state").display().to_string(),
    );
    let path = layout.dir.path().join("sidewatch.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&path)
        .env_remove("SIDEWATCH_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`logs.state_dir`"), "{stderr}");
}

#[test]
fn check_config_names_bad_log_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        r#"
[[logs.sources]]
name = "a b"
include = ["/x/**/y"]
[[logs.sources]]
type = "stdin"
include = ["/x"]
[logs.stages.redact]
builtin = ["nope"]
[[logs.stages.redact.patterns]]
name = "p"
regex = "("
"#,
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for key in [
        "logs.sinks",
        "logs.sources[0].name",
        "logs.sources[0].include[0]",
        "logs.sources[1].include",
        "logs.stages.redact.builtin[0]",
        "logs.stages.redact.patterns[0].regex",
    ] {
        assert!(
            stderr.contains(&format!("`{key}`")),
            "{key} missing: {stderr}"
        );
    }
}

#[test]
fn stdin_is_forwarded_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[admin]\nlisten = \"127.0.0.1:0\"\n[process]\nenabled = false\n\
         [[logs.sources]]\ntype = \"stdin\"\n[[logs.sinks]]\ntype = \"stdout\"\n",
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&path)
        .env_remove("SIDEWATCH_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The last line has no newline: it is still forwarded.
    stdin
        .write_all(b"{\"level\":\"info\",\"request_id\":\"r-1\",\"token\":\"t\"}\nplain")
        .unwrap();
    drop(stdin);
    // End of input stops sidewatch by itself, as `app | sidewatch run` expects.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "sidewatch kept running after stdin closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            serde_json::json!({"level": "info", "request_id": "r-1", "token": "[REDACTED]", "correlation_id": "r-1"}),
            serde_json::json!({"message": "plain", "sidewatch.parse_error": true}),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiline_joins_stack_traces_per_file() {
    let layout = Layout::new();
    std::fs::write(
        layout.logs().join("a.log"),
        "Exception in thread \"main\" java.lang.IllegalStateException: boom\n\
         \tat com.example.App.run(App.java:10)\n\
         Caused by: java.io.IOException: disk\n\
         \tat com.example.Disk.read(Disk.java:3)\n\
         {\"id\":2}\n\
         trailing line\n",
    )
    .unwrap();
    let extra = "[logs.stages.multiline]\nenabled = true\nflush_timeout = \"200ms\"";
    let sidewatch = Sidewatch::start(&layout.config("*.log", "", extra)).await;
    let out = layout.out();
    let events = tokio::task::spawn_blocking(move || {
        wait_delivered(&out, Duration::from_secs(20), "joined events", |e| {
            e.len() == 3
        })
    })
    .await
    .unwrap();
    sidewatch.stop().await;
    let trace = events[0]["message"].as_str().unwrap();
    assert!(
        trace.starts_with("Exception in thread") && trace.ends_with("(Disk.java:3)"),
        "{trace}"
    );
    assert_eq!(trace.lines().count(), 4);
    assert_eq!(events[1]["id"], 2);
    assert_eq!(events[2]["message"], "trailing line");
}
