//! The network sinks' disk buffer across restarts, with the real binary and
//! the in-test Loki contract server (tests/logs_support/loki.rs): while Loki
//! refuses connections, events spill to the disk buffer and are
//! acknowledged (the file checkpoint moves past them; at SIGTERM what memory
//! holds is parked there too); sidewatch is stopped and started again with
//! Loki up, and the buffer drains — every event arrives, once. With the newest record corrupted between the runs, exactly that
//! record is skipped and the corrupt tail counted. SIGKILLed during the
//! outage instead, once memory has drained to disk (the checkpoint reaches
//! the end of the file while Loki is still down), it repeats at most the
//! batches in flight; SIGKILLed while the buffer drains after the outage,
//! too (each segment's delivery marker says how far it was delivered).

mod logs_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use logs_support::loki::{LokiServer, Mode};
use logs_support::run::*;
use logs_support::{line, Layout};

const LINES: u64 = 5_000;

fn sink(url: &str) -> String {
    format!(
        r#"name = "loki"
type = "loki"
url = "{url}"
[logs.sinks.delivery]
batch_max_events = 100
buffer_batches = 1
in_flight = 1
retry_initial = "50ms"
retry_max = "200ms"
"#
    )
}

/// Runs sidewatch against a refusing Loki until every line is read and
/// some are on disk; stops it. Returns the segment files.
fn fill_buffer(layout: &Layout, config: &Path, admin: u16) -> Vec<PathBuf> {
    append(
        &layout.logs().join("app.log"),
        (0..LINES).map(|id| line(id, 0, id)),
    );
    let child = spawn(config);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = metrics(admin);
        let read = sample(
            &text,
            "sidewatch_log_events_total",
            &[("source", "app"), ("outcome", "ok")],
        );
        let on_disk = sample(
            &text,
            "sidewatch_buffer_events",
            &[("sink", "loki"), ("medium", "disk")],
        );
        if read == Some(LINES as f64) && on_disk.unwrap_or(0.0) > 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lines not read and spilled: {read:?} {on_disk:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // SIGTERM: what memory holds is parked in the disk buffer too, so every
    // line is acknowledged and the checkpoint reaches the end of the file.
    stop(child);
    let mut segments: Vec<PathBuf> = std::fs::read_dir(layout.state().join("buffer-loki"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    assert!(!segments.is_empty(), "segments left on disk");
    segments
}

/// The `id` of the last record in a segment (walking the record framing).
fn last_record(segment: &Path) -> (usize, u64) {
    let bytes = std::fs::read(segment).unwrap();
    let mut at = 8;
    let mut last = None;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let payload = &bytes[at + 8..at + 8 + len];
        let name = payload[0] as usize;
        let json: serde_json::Value = serde_json::from_slice(&payload[1 + name + 12..]).unwrap();
        last = Some((at, json["id"].as_u64().unwrap()));
        at += 8 + len;
    }
    last.expect("a record")
}

fn restart_and_collect(config: &Path, admin: u16, server: &LokiServer, expected: usize) -> String {
    server.set_mode(Mode::Up);
    let child = spawn(config);
    server.wait_ids(expected, Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = metrics(admin);
        if sample(
            &text,
            "sidewatch_buffer_events",
            &[("sink", "loki"), ("medium", "disk")],
        ) == Some(0.0)
        {
            break text;
        }
        assert!(Instant::now() < deadline, "disk buffer not drained");
        std::thread::sleep(Duration::from_millis(100));
    };
    stop(child);
    text
}

#[test]
fn a_non_empty_disk_buffer_drains_after_a_restart() {
    let server = LokiServer::start(Mode::Down);
    let layout = Layout::new();
    let admin = free_port();
    let config = config(&layout, admin, &sink(&server.url()));
    fill_buffer(&layout, &config, admin);
    let text = restart_and_collect(&config, admin, &server, LINES as usize);
    let (ids, lines) = server.ids();
    assert_eq!(ids.len() as u64, LINES);
    assert_eq!(
        lines as u64, LINES,
        "each line once: none re-read from the file"
    );
    assert_eq!(
        value(
            &text,
            "sidewatch_buffer_corrupt_tails_total",
            &[("sink", "loki")]
        ),
        0.0
    );
}

#[test]
fn a_corrupted_disk_buffer_skips_and_counts_its_tail() {
    let server = LokiServer::start(Mode::Down);
    let layout = Layout::new();
    let admin = free_port();
    let config = config(&layout, admin, &sink(&server.url()));
    let segments = fill_buffer(&layout, &config, admin);
    let newest = segments.last().unwrap();
    let (offset, lost) = last_record(newest);
    let mut bytes = std::fs::read(newest).unwrap();
    bytes[offset + 12] ^= 0x5a; // inside the payload: the checksum fails
    std::fs::write(newest, &bytes).unwrap();

    let text = restart_and_collect(&config, admin, &server, LINES as usize - 1);
    let (ids, _) = server.ids();
    assert!(!ids.contains(&lost), "the corrupt record is not sent");
    assert_eq!(ids.len() as u64, LINES - 1, "everything else arrives");
    assert_eq!(
        server.ids().1 as u64,
        LINES - 1,
        "from the buffer, not re-read"
    );
    assert_eq!(
        value(
            &text,
            "sidewatch_buffer_corrupt_tails_total",
            &[("sink", "loki")]
        ),
        1.0
    );
}

/// Waits until memory has drained to the disk buffer, so every line is
/// acknowledged and the checkpoint reaches the end of `log`, with Loki
/// still down.
fn wait_all_on_disk(layout: &Layout, log: &Path) {
    let size = std::fs::metadata(log).unwrap().len();
    let checkpoints = layout.state().join("checkpoints-app.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let offset = std::fs::read(&checkpoints)
            .ok()
            .and_then(|text| serde_json::from_slice::<serde_json::Value>(&text).ok())
            .and_then(|doc| doc["files"][0]["offset"].as_u64());
        if offset == Some(size) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "checkpoint at {offset:?} of {size} bytes: events still held in memory"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGKILLs the child when dropped (also when the test fails first).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_sigkill_during_an_outage_repeats_at_most_the_batches_in_flight() {
    let server = LokiServer::start(Mode::Down);
    let layout = Layout::new();
    let admin = free_port();
    let config = config(&layout, admin, &sink(&server.url()));
    let log = layout.logs().join("app.log");
    append(&log, (0..LINES).map(|id| line(id, 0, id)));
    let mut child = KillOnDrop(spawn(&config));
    wait_all_on_disk(&layout, &log);
    assert_eq!(server.ids().1, 0, "Loki was down");
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();

    restart_and_check_repeats(&config, admin, &server, "SIGKILL during the outage");
}

#[test]
fn a_sigkill_while_the_buffer_drains_repeats_at_most_the_batches_in_flight() {
    const SENT: usize = 2_000;
    let server = LokiServer::start(Mode::Down);
    let layout = Layout::new();
    let admin = free_port();
    let config = config(&layout, admin, &sink(&server.url()));
    let log = layout.logs().join("app.log");
    append(&log, (0..LINES).map(|id| line(id, 0, id)));
    let mut child = KillOnDrop(spawn(&config));
    wait_all_on_disk(&layout, &log);
    // Loki comes back and the buffer drains, until Loki hangs on the
    // request after the first 2000 lines (20 chunks delivered, one in flight).
    server.set_hang_after(Some(SENT));
    server.set_mode(Mode::Up);
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.ids().1 < SENT {
        assert!(Instant::now() < deadline, "the buffer does not drain");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let on_disk = sample(
        &metrics(admin),
        "sidewatch_buffer_events",
        &[("sink", "loki"), ("medium", "disk")],
    );
    assert_eq!(
        on_disk,
        Some((LINES as usize - SENT) as f64),
        "still draining: what was delivered is no longer counted on disk"
    );
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();

    server.set_hang_after(None);
    // Without the delivery marker all 2000 lines sent before the kill came again.
    restart_and_check_repeats(
        &config,
        admin,
        &server,
        &format!("SIGKILL after {SENT} of them drained from disk"),
    );
}

/// Restarts sidewatch after a SIGKILL and checks that every line arrived
/// and at most the one batch in flight (in_flight = 1, batch_max_events =
/// 100, see `sink`) arrived twice, with nothing left in memory.
fn restart_and_check_repeats(config: &Path, admin: u16, server: &LokiServer, what: &str) {
    let text = restart_and_collect(config, admin, server, LINES as usize);
    let (ids, lines) = server.ids();
    assert_eq!(ids.len() as u64, LINES, "none lost");
    let duplicates = lines as u64 - LINES;
    eprintln!("{LINES} lines, {what}: {duplicates} delivered twice (bound 100)");
    assert!(
        duplicates <= 100,
        "{duplicates} duplicates, more than the one batch in flight"
    );
    assert_eq!(
        value(
            &text,
            "sidewatch_buffer_events",
            &[("sink", "loki"), ("medium", "memory")]
        ),
        0.0
    );
}
