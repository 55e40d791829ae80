//! StatsD intake over real UDP: corpus shapes (sample rates, DogStatsD and
//! InfluxDB tags, deltas, timers, sets), garbage and oversized datagrams
//! counted, and the result clean for `promtool check metrics`.

mod support;

use std::net::UdpSocket;
use std::time::Duration;

use support::{assert_promtool_clean, metric, require_program, Sidewatch};

const CONFIG: &str = r#"
[process]
enabled = false
[statsd]
enabled = true
listen = "127.0.0.1:0"
max_packet_bytes = 512
[[statsd.mappings]]
match = "app.*.requests"
name = "app_endpoint_requests_total"
labels = { endpoint = "$1" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statsd_samples_become_metrics_and_garbage_is_counted() {
    let promtool = require_program("promtool", "apt-get install -y prometheus");
    let sidewatch = Sidewatch::start(CONFIG).await;
    let target = sidewatch.statsd.expect("statsd is bound");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let packets: Vec<Vec<u8>> = vec![
        b"app.login.requests:1|c\napp.login.requests:1|c|@0.25".to_vec(),
        b"jobs.depth:7|g\njobs.depth:-2|g".to_vec(),
        b"db.query:120|ms|#table:users\ndb.query:80|ms|@0.5|#table:users".to_vec(),
        b"uploads,region=eu:1|c\nvisitors:alice|s\nvisitors:bob|s".to_vec(),
        b"garbage\n:1|c\nfoo:bar|c\n\xff\xff:1|c".to_vec(),
        b"_e{5,4}:hello|world".to_vec(),
        vec![b'x'; 2000],
        b"quote:1|c|#v:say \"hi\" \\o/".to_vec(),
        b"end.marker:1|c".to_vec(),
    ];
    for packet in &packets {
        socket.send_to(packet, target).unwrap();
    }
    sidewatch
        .wait_for_metric("end_marker_total", &[], Duration::from_secs(10), |v| {
            v == 1.0
        })
        .await;
    let text = sidewatch.metrics().await;
    assert_promtool_clean(&promtool, &text);
    let value = |name: &str, labels: &[(&str, &str)]| {
        metric(&text, name, labels).unwrap_or_else(|| panic!("{name}{labels:?} missing:\n{text}"))
    };
    assert_eq!(
        value("app_endpoint_requests_total", &[("endpoint", "login")]),
        5.0
    );
    assert_eq!(value("jobs_depth", &[]), 5.0);
    assert_eq!(value("db_query_count", &[("table", "users")]), 3.0);
    assert_eq!(
        value("db_query_bucket", &[("table", "users"), ("le", "0.1")]),
        2.0
    );
    assert_eq!(value("uploads_total", &[("region", "eu")]), 1.0);
    assert_eq!(value("visitors", &[]), 2.0);
    assert!(
        text.contains(r#"quote_total{v="say \"hi\" \\o/"} 1"#),
        "{text}"
    );
    assert_eq!(
        value(
            "sidewatch_statsd_packets_total",
            &[("outcome", "oversized")]
        ),
        1.0
    );
    assert_eq!(
        value("sidewatch_statsd_packets_total", &[("outcome", "ok")]),
        8.0
    );
    assert_eq!(
        value(
            "sidewatch_statsd_samples_total",
            &[("outcome", "malformed")]
        ),
        4.0
    );
    assert_eq!(
        value(
            "sidewatch_statsd_samples_total",
            &[("outcome", "unsupported")]
        ),
        1.0
    );
    sidewatch.stop().await;
}

#[test]
fn a_taken_statsd_port_stops_sidewatch_with_exit_2() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sidewatch.toml");
    std::fs::write(
        &path,
        format!("[admin]\nlisten = \"127.0.0.1:0\"\n[statsd]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sidewatch"))
        .args(["run", "--config", path.to_str().unwrap()])
        .env_remove("SIDEWATCH_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("statsd.listen"), "{stderr}");
}
