//! The Loki sink over HTTPS with a custom CA bundle (certificates made by
//! `openssl`), a TLS error when the CA is not trusted (retried, nothing
//! lost or delivered), and a destination that hangs without answering
//! (request timeout, retried) — against the in-test Loki contract server
//! (tests/logs_support/loki.rs; no Loki binary exists here).

mod logs_support;
mod test_certs;

use std::time::{Duration, Instant};

use logs_support::loki::{LokiServer, Mode};
use logs_support::run::*;
use logs_support::{line, Layout};

#[test]
fn https_with_a_ca_file_and_a_tls_error_without_it() {
    let certs = tempfile::tempdir().unwrap();
    test_certs::certificates(certs.path());
    let server = LokiServer::start_tls(
        Mode::Up,
        test_certs::server_config(
            &certs.path().join("server.crt"),
            &certs.path().join("server.key"),
        ),
    );

    // Without the CA: the handshake fails, is retried, nothing is delivered.
    let layout = Layout::new();
    let admin = free_port();
    let config_path = config(
        &layout,
        admin,
        &format!(
            "name = \"loki\"\ntype = \"loki\"\nurl = \"{}\"\n[logs.sinks.delivery]\nretry_max = \"200ms\"\n",
            server.tls_url()
        ),
    );
    append(
        &layout.logs().join("app.log"),
        (0..100u64).map(|id| line(id, 0, id)),
    );
    let child = spawn(&config_path);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = metrics(admin);
        let retries = sample(
            &text,
            "sidewatch_sink_retries_total",
            &[("sink", "loki"), ("reason", "unavailable")],
        );
        if retries.unwrap_or(0.0) >= 3.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "TLS errors not retried: {retries:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(child);
    assert_eq!(server.ids().1, 0, "an untrusted server gets nothing");

    // With the CA: everything arrives (parked in the disk buffer at the
    // first stop, or read again from the file).
    let config_path = config(
        &layout,
        admin,
        &format!(
            "name = \"loki\"\ntype = \"loki\"\nurl = \"{}\"\nca_file = \"{}\"\n",
            server.tls_url(),
            certs.path().join("ca.crt").display()
        ),
    );
    let child = spawn(&config_path);
    server.wait_ids(100, Duration::from_secs(20));
    stop(child);
}

#[test]
fn a_hanging_destination_times_out_and_is_retried() {
    let server = LokiServer::start(Mode::Hang);
    let layout = Layout::new();
    let admin = free_port();
    let config_path = config(
        &layout,
        admin,
        &format!(
            "name = \"loki\"\ntype = \"loki\"\nurl = \"{}\"\n[logs.sinks.delivery]\nrequest_timeout = \"300ms\"\nretry_max = \"200ms\"\n",
            server.url()
        ),
    );
    append(
        &layout.logs().join("app.log"),
        (0..1000u64).map(|id| line(id, 0, id)),
    );
    let child = spawn(&config_path);
    std::thread::sleep(Duration::from_secs(2));
    server.set_mode(Mode::Up);
    server.wait_ids(1000, Duration::from_secs(20));
    let text = metrics(admin);
    stop(child);
    assert!(
        value(
            &text,
            "sidewatch_sink_retries_total",
            &[("sink", "loki"), ("reason", "timeout")]
        ) >= 1.0
    );
    assert!(
        sample(
            &text,
            "sidewatch_sink_batch_duration_seconds_count",
            &[("sink", "loki")]
        )
        .unwrap_or(0.0)
            >= 2.0,
        "request durations observed"
    );
}
