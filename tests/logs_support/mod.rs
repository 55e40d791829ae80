//! Helpers for the log pipeline tests: configs, writers, and reading what a
//! file sink delivered.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A temp dir laid out as `logs/` (tailed), `out/out.log` (file sink), `state/`.
pub struct Layout {
    pub dir: tempfile::TempDir,
}

impl Layout {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        Self { dir }
    }

    pub fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out/out.log")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// A config tailing `logs/<pattern>` into the file sink, plus `extra` TOML.
    pub fn config(&self, pattern: &str, source_extra: &str, extra: &str) -> String {
        format!(
            r#"
[admin]
listen = "127.0.0.1:0"
[process]
enabled = false
[shutdown]
grace_period = "1s"
[logs]
state_dir = "{state}"
{extra}
[[logs.sources]]
name = "app"
include = ["{logs}/{pattern}"]
scan_interval = "100ms"
poll_interval = "20ms"
rotate_wait = "1s"
{source_extra}
[[logs.sinks]]
name = "out"
type = "file"
path = "{out}"
max_bytes = 0
"#,
            state = self.state().display(),
            logs = self.logs().display(),
            out = self.out().display(),
        )
    }
}

/// Every JSON line of the file sink's output, in order; torn or foreign
/// lines are skipped.
pub fn delivered(path: &Path) -> Vec<Value> {
    let text = std::fs::read(path).unwrap_or_default();
    text.split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice::<Value>(line).ok())
        .filter(Value::is_object)
        .collect()
}

/// Waits until `accept` holds for the delivered events, returning them;
/// panics with `what` after `timeout`.
pub fn wait_delivered(
    path: &Path,
    timeout: Duration,
    what: &str,
    accept: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let events = delivered(path);
        if accept(&events) {
            return events;
        }
        if Instant::now() > deadline {
            panic!(
                "{what}: not delivered within {timeout:?} ({} events so far)",
                events.len()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `id` fields of delivered events.
pub fn ids(events: &[Value]) -> Vec<u64> {
    events.iter().filter_map(|e| e["id"].as_u64()).collect()
}

/// A 200-byte-ish JSON line with an id, a generation and a sequence number.
pub fn line(id: u64, generation: u64, seq: u64) -> String {
    format!(
        r#"{{"id":{id},"gen":{generation},"seq":{seq},"level":"info","request_id":"req-{id:08x}","message":"Chat message processed","latency_ms":145}}"#
    ) + "\n"
}

/// The `id` of every delivered line, found by a plain scan (cheap enough to
/// poll with; the events are parsed fully once, at the end).
pub fn delivered_ids(path: &Path) -> Vec<u64> {
    let text = std::fs::read(path).unwrap_or_default();
    text.split(|b| *b == b'\n')
        .filter(|line| line.ends_with(b"}"))
        .filter_map(|line| {
            let rest = line.strip_prefix(b"{\"id\":")?;
            let end = rest.iter().position(|b| !b.is_ascii_digit())?;
            std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
        })
        .collect()
}

/// Waits until `count` distinct ids are delivered; panics after `timeout`.
pub fn wait_distinct_ids(path: &Path, count: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let mut seen = delivered_ids(path);
        seen.sort_unstable();
        seen.dedup();
        if seen.len() as u64 >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {count} distinct lines delivered within {timeout:?}",
            seen.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub mod loki;
pub mod run;
