//! `sidewatch_log_unread_bytes` with the real binary: a Loki sink without a
//! disk buffer against a refusing contract server (tests/logs_support/loki.rs)
//! holds the pipeline back, so most of a file written beforehand stays
//! unread and the gauge shows it; once Loki is up everything is read and
//! delivered and the gauge drops to 0.

mod logs_support;

use std::time::{Duration, Instant};

use logs_support::loki::{LokiServer, Mode};
use logs_support::run::*;
use logs_support::{line, Layout};

const LINES: u64 = 60_000;

/// Polls `/metrics` until `accept` holds for the unread gauge; returns it.
fn wait_unread(admin: u16, what: &str, accept: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let unread = sample(
            &metrics(admin),
            "sidewatch_log_unread_bytes",
            &[("source", "app")],
        );
        if let Some(unread) = unread.filter(|u| accept(*u)) {
            return unread;
        }
        assert!(Instant::now() < deadline, "{what}: gauge at {unread:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn unread_bytes_show_a_backlog_in_the_file_and_drop_to_zero_once_read() {
    let server = LokiServer::start(Mode::Down);
    let layout = Layout::new();
    let admin = free_port();
    let path = config(
        &layout,
        admin,
        &format!(
            r#"name = "loki"
type = "loki"
url = "{url}"
[logs.sinks.delivery]
batch_max_events = 100
buffer_batches = 1
in_flight = 1
retry_initial = "50ms"
retry_max = "200ms"
disk_buffer_max_bytes = 0
"#,
            url = server.url()
        ),
    );
    let log = layout.logs().join("app.log");
    append(&log, (0..LINES).map(|id| line(id, 0, id)));
    let size = std::fs::metadata(&log).unwrap().len() as f64;
    let mut child = Running(Some(spawn(&path)));
    // Memory (queues, the batch in flight) holds far less than half the file.
    let held = wait_unread(admin, "backlog shown", |u| u > size / 2.0);
    assert!(held <= size, "{held} unread of a {size}-byte file");
    std::thread::sleep(Duration::from_millis(500));
    let text = metrics(admin);
    let read = value(&text, "sidewatch_log_bytes_total", &[("source", "app")]);
    let unread = value(&text, "sidewatch_log_unread_bytes", &[("source", "app")]);
    // Held back, the gauge still follows (refreshed while the source
    // waits): what was read plus what was not is the file, but for the
    // partial line the tailer holds (lines are 128 bytes).
    assert!(
        unread > size / 2.0 && (size - 128.0..=size).contains(&(unread + read)),
        "held back: {unread} unread + {read} read vs {size}"
    );

    eprintln!("held back: {unread} of {size} bytes unread, {read} read");
    server.set_mode(Mode::Up);
    server.wait_ids(LINES as usize, Duration::from_secs(60));
    wait_unread(admin, "caught up", |u| u == 0.0);
    stop(child.0.take().unwrap());
}

/// SIGKILLs sidewatch if the test fails before stopping it.
struct Running(Option<std::process::Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
