//! How the proxy reaches the app: each HTTP/1.1 client connection keeps one
//! app connection of its own, handed on to a later client connection once it
//! closes, and an app that closes idle connections (with or without saying
//! so) costs no failed request. The app here is a
//! raw-TCP HTTP/1.1 server on loopback that counts the connections it accepts.

mod proxy_support;
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proxy_support::{read_head, start, upstream_errors, value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the app does after each response.
#[derive(Clone, Copy)]
enum AfterResponse {
    /// Waits for the next request on the same connection.
    KeepAlive,
    /// Closes the connection 50 ms later without having said so.
    CloseSilently,
}

/// What the app saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    request_lines: Mutex<Vec<String>>,
    /// The body of each request, in order (empty for none).
    bodies: Mutex<Vec<Vec<u8>>>,
}

/// Starts the app; returns its address and what it sees.
async fn counting_app(after: AfterResponse) -> (std::net::SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let app_seen = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            app_seen.connections.fetch_add(1, Ordering::SeqCst);
            let seen = app_seen.clone();
            tokio::spawn(async move {
                loop {
                    let head = read_head(&mut stream).await;
                    if head.is_empty() {
                        return;
                    }
                    let line = head.lines().next().unwrap_or_default().to_owned();
                    let mut body = vec![0u8; content_length(&head).unwrap_or(0)];
                    if stream.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    seen.request_lines.lock().unwrap().push(line);
                    seen.bodies.lock().unwrap().push(body);
                    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    if stream.write_all(answer).await.is_err() {
                        return;
                    }
                    if let AfterResponse::CloseSilently = after {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// The `Content-Length` of a head, if it has one.
fn content_length(head: &str) -> Option<usize> {
    head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("content-length:")
            .map(|v| v.trim().parse().unwrap())
    })
}

/// Reads one response (a `Content-Length` one) off `stream`: its status
/// line and body.
async fn read_response(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let head = read_head(stream).await;
    let length = content_length(&head).unwrap_or_else(|| panic!("no content-length in {head:?}"));
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    (head.lines().next().unwrap_or_default().to_owned(), body)
}

/// Asserts that every status line is `200 OK`.
fn assert_all_ok(statuses: &[String]) {
    assert!(
        statuses.iter().all(|s| s == "HTTP/1.1 200 OK"),
        "{statuses:?}"
    );
}

/// Sends `count` GETs one after another on a new client connection, each
/// after `pause`; returns the status line of each response.
async fn sequential_requests(proxy: &str, count: usize, pause: Duration) -> Vec<String> {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    requests_on(&mut stream, count, pause).await
}

/// Sends `count` GETs one after another on `stream`, each after `pause`;
/// returns the status line of each response.
async fn requests_on(stream: &mut TcpStream, count: usize, pause: Duration) -> Vec<String> {
    let mut statuses = Vec::new();
    for i in 0..count {
        tokio::time::sleep(pause).await;
        let request = format!("GET /r/{i} HTTP/1.1\r\nHost: app\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        statuses.push(read_response(stream).await.0);
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_connection_keeps_one_app_connection_and_hands_it_on() {
    let (app, seen) = counting_app(AfterResponse::KeepAlive).await;
    let accepted = &seen.connections;
    let (sidewatch, base) = start(app, "").await;
    let proxy = base.trim_start_matches("http://").to_owned();
    let mut first = TcpStream::connect(&proxy).await.unwrap();
    let statuses = requests_on(&mut first, 20, Duration::ZERO).await;
    assert_all_ok(&statuses);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "20 requests, one app connection"
    );
    // The request line reaches the app in origin form, as the client sent it.
    let lines = seen.request_lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 20);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line, &format!("GET /r/{i} HTTP/1.1"));
    }
    let mut second = TcpStream::connect(&proxy).await.unwrap();
    let statuses = requests_on(&mut second, 5, Duration::ZERO).await;
    assert_all_ok(&statuses);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "a second client connection at the same time, a second app connection"
    );
    // Both close: their app connections stay open for later clients.
    drop((first, second));
    let idle = |count: f64| {
        let sidewatch = &sidewatch;
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let text = sidewatch.metrics().await;
                let kept = value(&text, "sidewatch_proxy_upstream_idle_connections", &[]);
                if kept == count {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "idle app connections: {kept}, not {count}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    idle(2.0).await;
    for _ in 0..3 {
        let statuses = sequential_requests(&proxy, 3, Duration::ZERO).await;
        assert_all_ok(&statuses);
        idle(2.0).await;
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "later client connections took the idle app connections"
    );
    assert_eq!(seen.request_lines.lock().unwrap().len(), 34);
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_closing_idle_connections_silently_costs_no_failed_request() {
    let (app, seen) = counting_app(AfterResponse::CloseSilently).await;
    let accepted = &seen.connections;
    let (sidewatch, base) = start(app, "").await;
    let proxy = base.trim_start_matches("http://").to_owned();
    let statuses = sequential_requests(&proxy, 10, Duration::from_millis(150)).await;
    assert_all_ok(&statuses);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        10,
        "a new app connection per request"
    );
    let text = sidewatch.metrics().await;
    for reason in ["connect", "closed"] {
        assert_eq!(
            value(
                &text,
                "sidewatch_proxy_upstream_errors_total",
                &[("reason", reason)]
            ),
            0.0,
            "{reason}"
        );
    }
    assert_eq!(
        value(
            &text,
            "http_requests_total",
            &[("method", "GET"), ("route", "/r/{id}"), ("status", "200")]
        ),
        10.0
    );
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_request_meeting_a_just_closed_app_connection_is_sent_again() {
    // The app closes 50 ms after each response; the next request comes
    // 70 ms after the last, too soon for the idle check (100 ms), so it is
    // written to the closed connection, meets the close, and is sent again
    // on a new one.
    let (app, seen) = counting_app(AfterResponse::CloseSilently).await;
    let (sidewatch, base) = start(app, "").await;
    let proxy = base.trim_start_matches("http://").to_owned();
    let statuses = sequential_requests(&proxy, 6, Duration::from_millis(70)).await;
    assert_all_ok(&statuses);
    assert_eq!(
        seen.request_lines.lock().unwrap().len(),
        6,
        "each request reached the app once"
    );
    let text = sidewatch.metrics().await;
    let closed = value(
        &text,
        "sidewatch_proxy_upstream_errors_total",
        &[("reason", "closed")],
    );
    assert_eq!(closed, 0.0);
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_request_bodies_go_whole_on_the_client_connections_own_app_connection() {
    let (app, seen) = counting_app(AfterResponse::KeepAlive).await;
    let (sidewatch, base) = start(app, "").await;
    let proxy = base.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&proxy).await.unwrap();
    // GETs and POSTs of up to 16 KiB, one after another on one connection.
    let sizes = [1usize, 0, 1024, 0, 16 * 1024, 300];
    for (i, size) in sizes.iter().enumerate() {
        let body: Vec<u8> = (0..*size).map(|b| b"abcdefgh"[(b + i) % 8]).collect();
        let request = match size {
            0 => format!("GET /r/{i} HTTP/1.1\r\nHost: app\r\n\r\n"),
            n => format!("POST /r/{i} HTTP/1.1\r\nHost: app\r\nContent-Length: {n}\r\n\r\n"),
        };
        stream.write_all(request.as_bytes()).await.unwrap();
        stream.write_all(&body).await.unwrap();
        assert_eq!(read_response(&mut stream).await.0, "HTTP/1.1 200 OK");
        assert_eq!(seen.bodies.lock().unwrap()[i], body, "body {i}");
    }
    assert_eq!(
        seen.connections.load(Ordering::SeqCst),
        1,
        "every request on the one app connection"
    );
    // A larger body streams through the pool: a connection of its own.
    let large = vec![b'z'; 16 * 1024 + 1];
    let head = format!(
        "POST /r/large HTTP/1.1\r\nHost: app\r\nContent-Length: {}\r\n\r\n",
        large.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&large).await.unwrap();
    assert_eq!(read_response(&mut stream).await.0, "HTTP/1.1 200 OK");
    assert_eq!(seen.bodies.lock().unwrap().last().unwrap(), &large);
    assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
    let text = sidewatch.metrics().await;
    let sum = value(
        &text,
        "http_request_size_bytes_sum",
        &[("method", "POST"), ("route", "/r/{id}"), ("status", "200")],
    );
    assert_eq!(
        sum,
        (1 + 1024 + 16 * 1024 + 300) as f64,
        "request bytes counted"
    );
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_body_that_breaks_off_is_answered_400_and_never_reaches_the_app() {
    let (app, seen) = counting_app(AfterResponse::KeepAlive).await;
    let (sidewatch, base) = start(app, "").await;
    let proxy = base.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&proxy).await.unwrap();
    let request = "POST /r/1 HTTP/1.1\r\nHost: app\r\nContent-Length: 1000\r\n\r\npartial";
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap(); // the client sends no more
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");
    let text = sidewatch.metrics().await;
    assert_eq!(
        value(
            &text,
            "sidewatch_proxy_upstream_errors_total",
            &[("reason", "client_body")]
        ),
        1.0
    );
    assert!(
        seen.request_lines.lock().unwrap().is_empty(),
        "the app saw it"
    );
    assert_eq!(seen.connections.load(Ordering::SeqCst), 0);
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_that_breaks_off_in_the_pool_is_answered_400_not_502() {
    let (app, _seen) = counting_app(AfterResponse::KeepAlive).await;
    let (sidewatch, base) = start(app, "").await;
    let proxy = base.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&proxy).await.unwrap();
    // Past the size read whole: it streams through the pool, then stops.
    let head = "POST /r/1 HTTP/1.1\r\nHost: app\r\nContent-Length: 100000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[b'p'; 20_000]).await.unwrap();
    stream.shutdown().await.unwrap(); // the client sends no more
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");
    let text = sidewatch.metrics().await;
    assert_eq!(upstream_errors(&text, "client_body"), 1.0, "{text}");
    assert_eq!(
        upstream_errors(&text, "closed"),
        0.0,
        "the app is not blamed"
    );
    sidewatch.stop().await;
}
