//! The TCP and HTTP intake sources with the real binary, delivering to the
//! in-test Loki contract server (tests/logs_support/loki.rs). Concurrent
//! clients: every event of a request answered 200 is delivered, and every
//! TCP line. Scaled down from the issue's 10k events per client to 1k (50
//! HTTP + 50 TCP clients, 100k events) to keep the debug-build test short;
//! the concurrency is the same. Bad input: garbage lines, an oversize body,
//! a malformed array, wrong methods, a client vanishing mid-request.

mod logs_support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use logs_support::loki::{LokiServer, Mode};
use logs_support::run::*;
use logs_support::Layout;
use tokio::io::AsyncWriteExt;

const CLIENTS: u64 = 50;
const PER_CLIENT: u64 = 1_000;
const PER_REQUEST: u64 = 100;
const TCP_IDS: u64 = 10_000_000;

fn intake_config(layout: &Layout, admin: u16, tcp: u16, http: u16, loki: &str) -> PathBuf {
    intake_config_with(
        layout,
        admin,
        tcp,
        http,
        loki,
        "",
        "batch_timeout = \"100ms\"",
    )
}

fn intake_config_with(
    layout: &Layout,
    admin: u16,
    tcp: u16,
    http: u16,
    loki: &str,
    logs: &str,
    delivery: &str,
) -> PathBuf {
    let text = format!(
        r#"
[admin]
listen = "127.0.0.1:{admin}"
[process]
enabled = false
[shutdown]
grace_period = "1s"
[logs]
state_dir = "{state}"
{logs}
[[logs.sources]]
name = "tcp"
type = "tcp"
listen = "127.0.0.1:{tcp}"
[[logs.sources]]
name = "http"
type = "http"
listen = "127.0.0.1:{http}"
max_body_bytes = 65536
[[logs.sinks]]
name = "loki"
type = "loki"
url = "{loki}"
[logs.sinks.delivery]
{delivery}
"#,
        state = layout.state().display(),
    );
    let path = layout.dir.path().join("sidewatch.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn event(id: u64) -> String {
    format!(r#"{{"id":{id},"level":"info","message":"intake event","request_id":"r-{id}"}}"#)
}

/// Sends one client's events in requests (NDJSON or JSON arrays), retrying
/// on 503; returns the ids of requests answered 200.
async fn http_client(client: reqwest::Client, url: String, n: u64, array: bool) -> Vec<u64> {
    let mut acknowledged = Vec::new();
    for start in (0..PER_CLIENT).step_by(PER_REQUEST as usize) {
        let ids: Vec<u64> = (start..start + PER_REQUEST)
            .map(|i| n * PER_CLIENT + i)
            .collect();
        let body = if array {
            format!(
                "[{}]",
                ids.iter()
                    .map(|&id| event(id))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        } else {
            ids.iter().map(|&id| event(id) + "\n").collect()
        };
        loop {
            let response = client.post(&url).body(body.clone()).send().await;
            match response.map(|r| r.status().as_u16()) {
                Ok(200) => {
                    acknowledged.extend(&ids);
                    break;
                }
                Ok(503) | Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                Ok(other) => panic!("unexpected status {other}"),
            }
        }
    }
    acknowledged
}

async fn tcp_client(port: u16, n: u64) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut data = String::new();
    for i in 0..PER_CLIENT {
        data.push_str(&event(TCP_IDS + n * PER_CLIENT + i));
        data.push('\n');
    }
    stream.write_all(data.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_lose_nothing_they_were_told_is_safe() {
    let server = LokiServer::start(Mode::Up);
    let layout = Layout::new();
    let (admin, tcp, http) = (free_port(), free_port(), free_port());
    let config = intake_config(&layout, admin, tcp, http, &server.url());
    let child = spawn(&config);
    tokio::task::spawn_blocking(move || metrics(admin))
        .await
        .unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://127.0.0.1:{http}/ingest");
    let mut tasks = Vec::new();
    for n in 0..CLIENTS {
        tasks.push(tokio::spawn(http_client(
            client.clone(),
            url.clone(),
            n,
            n % 2 == 0,
        )));
    }
    let tcp_tasks: Vec<_> = (0..CLIENTS)
        .map(|n| tokio::spawn(tcp_client(tcp, n)))
        .collect();
    let mut acknowledged = BTreeSet::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    for task in tcp_tasks {
        task.await.unwrap();
    }
    assert_eq!(acknowledged.len() as u64, CLIENTS * PER_CLIENT);
    // Acknowledged means at the contract server already: no wait needed.
    let (ids, _) = server.ids();
    let missing: Vec<_> = acknowledged.iter().filter(|id| !ids.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not delivered: {} events",
        missing.len()
    );
    let expected = 2 * (CLIENTS * PER_CLIENT) as usize;
    tokio::task::spawn_blocking(move || {
        server.wait_ids(expected, Duration::from_secs(30));
        let (ids, _) = server.ids();
        let tcp_ids = ids.iter().filter(|&&id| id >= TCP_IDS).count() as u64;
        assert_eq!(tcp_ids, CLIENTS * PER_CLIENT, "every TCP line delivered");
        stop(child);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_intake_input_is_answered_and_harmless() {
    let server = LokiServer::start(Mode::Up);
    let layout = Layout::new();
    let (admin, tcp, http) = (free_port(), free_port(), free_port());
    let config = intake_config(&layout, admin, tcp, http, &server.url());
    let child = spawn(&config);
    tokio::task::spawn_blocking(move || metrics(admin))
        .await
        .unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://127.0.0.1:{http}/ingest");
    let status = |r: reqwest::Response| r.status().as_u16();
    let big = "x".repeat(70_000);
    assert_eq!(
        status(client.post(&url).body(big).send().await.unwrap()),
        413
    );
    assert_eq!(
        status(client.post(&url).body("[{\"a\":").send().await.unwrap()),
        400
    );
    assert_eq!(status(client.get(&url).send().await.unwrap()), 405);
    let other = format!("http://127.0.0.1:{http}/other");
    assert_eq!(status(client.post(&other).send().await.unwrap()), 404);
    // A client that promises a body and vanishes.
    let mut torn = tokio::net::TcpStream::connect(("127.0.0.1", http))
        .await
        .unwrap();
    torn.write_all(b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"id\":")
        .await
        .unwrap();
    drop(torn);
    // Garbage over TCP: forwarded flagged, never dropped; then a good line.
    let mut garbage = tokio::net::TcpStream::connect(("127.0.0.1", tcp))
        .await
        .unwrap();
    garbage
        .write_all(b"\xff\xfe not json at all\n{\"id\":7}\n")
        .await
        .unwrap();
    garbage.shutdown().await.unwrap();
    // Still serving: a good request is acknowledged.
    let response = client.post(&url).body("{\"id\":8}\n").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"accepted":1}"#);
    tokio::task::spawn_blocking(move || {
        server.wait_ids(2, Duration::from_secs(10));
        let lines = server.seen(|s| s.entries.iter().map(|e| e.line.clone()).collect::<Vec<_>>());
        assert!(
            lines.iter().any(|l| l.contains("not json at all")),
            "garbage forwarded: {lines:?}"
        );
        stop(child);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pipeline_answers_503_with_retry_after() {
    let server = LokiServer::start(Mode::Down);
    let layout = Layout::new();
    let (admin, tcp, http) = (free_port(), free_port(), free_port());
    let config = intake_config_with(
        &layout,
        admin,
        tcp,
        http,
        &server.url(),
        "queue_batches = 1",
        "disk_buffer_max_bytes = 0\nbuffer_batches = 1\nin_flight = 1\nbatch_max_events = 100\nbatch_timeout = \"50ms\"\nretry_max = \"200ms\"",
    );
    let child = spawn(&config);
    tokio::task::spawn_blocking(move || metrics(admin))
        .await
        .unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://127.0.0.1:{http}/ingest");
    let mut requests = Vec::new();
    for n in 0..30u64 {
        let (client, url) = (client.clone(), url.clone());
        requests.push(tokio::spawn(async move {
            let body: String = (0..100).map(|i| event(n * 100 + i) + "\n").collect();
            let response = client.post(&url).body(body).send().await.unwrap();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            (n, response.status().as_u16(), retry_after)
        }));
    }
    let server = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_secs(3));
        server.set_mode(Mode::Up);
        server
    })
    .await
    .unwrap();
    let mut refused = 0;
    let mut acknowledged = Vec::new();
    for request in requests {
        let (n, status, retry_after) = request.await.unwrap();
        match status {
            503 => {
                refused += 1;
                assert_eq!(retry_after.as_deref(), Some("1"));
            }
            200 => acknowledged.push(n),
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(refused > 0, "a full pipeline refuses with 503");
    assert!(
        !acknowledged.is_empty(),
        "queued requests are answered once delivered"
    );
    let (ids, _) = server.ids();
    for n in acknowledged {
        assert!(
            (n * 100..n * 100 + 100).all(|id| ids.contains(&id)),
            "request {n} acknowledged but not delivered"
        );
    }
    tokio::task::spawn_blocking(move || stop(child))
        .await
        .unwrap();
}
