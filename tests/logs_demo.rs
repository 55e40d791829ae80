//! `sidewatch demo` tails its demo app's JSON log and forwards every event,
//! correlated and enriched, to stdout as JSON lines.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_sidewatch");

#[test]
fn demo_forwards_the_apps_logs_to_stdout() {
    let mut child = Command::new(BIN)
        .arg("demo")
        .env("SIDEWATCH__ADMIN__LISTEN", "127.0.0.1:0")
        .env("SIDEWATCH__STATSD__LISTEN", "127.0.0.1:0")
        .env("SIDEWATCH__PROXY__LISTEN", "127.0.0.1:0")
        .env_remove("SIDEWATCH_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) {
                if event.get("correlation_id").is_some() && event.get("request_id").is_some() {
                    let _ = tx.send(event);
                }
            }
        }
    });
    let event = rx.recv_timeout(Duration::from_secs(30));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let code = child.wait().unwrap().code();
    let event = event.expect("a forwarded demo log line on stdout");
    assert_eq!(event["correlation_id"], event["request_id"]);
    assert!(
        event["level"].is_string() && event["message"].is_string(),
        "{event}"
    );
    assert_eq!(code, Some(0));
}
