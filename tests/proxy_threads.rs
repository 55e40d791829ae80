//! The proxy with `threads = 2` (two share-nothing event loops, loop 0
//! accepting and dealing connections out in turn) against the real HTTP
//! app of tests/proxy_support: every request on many concurrent keep-alive
//! connections is answered and counted once, both loops carry load, a
//! WebSocket tunnel works on either loop, and SIGTERM lets the in-flight
//! requests of both loops finish.
//!
//! One test function, because the loops are found by thread name in this
//! test process: a second proxy running beside it would blur the check.

mod proxy_support;
mod support;

use std::time::{Duration, Instant};

use proxy_support::{read_head, spawn_app, spawn_slow_request, start, value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// CPU ticks (user + system) used so far by each thread of this process
/// named `name`.
fn thread_ticks(name: &str) -> Vec<u64> {
    let mut ticks = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let path = task.path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap();
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let utime: u64 = fields[11].parse().unwrap();
        let stime: u64 = fields[12].parse().unwrap();
        ticks.push(utime + stime);
    }
    ticks
}

/// One keep-alive connection sending `requests` GETs of `/api/orders/N`,
/// each answered `order`.
async fn keep_alive_client(base: String, requests: usize) {
    let addr = base.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    for i in 0..requests {
        stream
            .write_all(format!("GET /api/orders/{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let head = read_head(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let mut body = [0u8; 5];
        stream.read_exact(&mut body).await.unwrap();
        assert_eq!(&body, b"order");
    }
}

/// Opens a WebSocket-style upgrade through the proxy and checks the echo.
async fn websocket_echo(base: &str, message: &[u8]) {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream.write_all(message).await.unwrap();
    let mut echoed = vec![0u8; message.len()];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(echoed, message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_event_loops_share_the_load_count_once_and_drain_together() {
    let app = spawn_app().await;
    let (sidewatch, base) = start(app, "threads = 2").await;
    // A thread names itself once it runs, which may be just after start.
    let deadline = Instant::now() + Duration::from_secs(2);
    while thread_ticks("proxy-loop-0").len() != 1 || thread_ticks("proxy-loop-1").len() != 1 {
        assert!(Instant::now() < deadline, "one thread per loop runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = thread_ticks("proxy-loop-1")[0];

    const CONNECTIONS: usize = 16;
    const REQUESTS: usize = 300;
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|_| tokio::spawn(keep_alive_client(base.clone(), REQUESTS)))
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    let text = sidewatch.metrics().await;
    let labels = [
        ("method", "GET"),
        ("route", "/api/orders/{id}"),
        ("status", "200"),
    ];
    assert_eq!(
        value(&text, "http_requests_total", &labels),
        (CONNECTIONS * REQUESTS) as f64,
        "every request counted exactly once across both loops"
    );
    assert_eq!(
        value(&text, "http_request_duration_seconds_count", &labels),
        (CONNECTIONS * REQUESTS) as f64
    );
    let after = thread_ticks("proxy-loop-1")[0];
    assert!(
        after > before,
        "loop 1 served some of {CONNECTIONS} connections (CPU ticks {before} → {after})"
    );

    // Connections are dealt out in turn, so two in a row land on both loops.
    websocket_echo(&base, b"hello loop").await;
    websocket_echo(&base, b"hello other loop").await;

    // Two slow requests in flight, one per loop, when SIGTERM arrives.
    let in_flight: Vec<_> = (0..2).map(|_| spawn_slow_request(&base)).collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    sidewatch.stop().await;
    for request in in_flight {
        assert_eq!(
            request.await.unwrap().unwrap(),
            200,
            "an in-flight request finished during the drain"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(8));
    // A loop's thread reports its end just before dropping its runtime.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !(thread_ticks("proxy-loop-0").is_empty() && thread_ticks("proxy-loop-1").is_empty()) {
        assert!(Instant::now() < deadline, "both loops end at shutdown");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
