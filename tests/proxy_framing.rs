//! Response framing on the client connection's own app connection (RFC 9112
//! §6.3), through the real binary: chunked bodies with trailers, bodies
//! that end with the connection, HEAD/204/304 without a body, interim 1xx
//! responses skipped, and heads that are not valid HTTP/1.1 answered `502`
//! and counted as `invalid_response`. The app is a raw-TCP server on
//! loopback that answers each request with the next canned response.

mod proxy_support;
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use proxy_support::{read_head, start, upstream_errors, value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An app answering the n-th request it reads (over all connections) with
/// `responses[n]`, closing the connection after those marked `true`.
async fn scripted_app(responses: Vec<(&'static str, bool)>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let responses = Arc::new(responses);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (next, responses) = (next.clone(), responses.clone());
            tokio::spawn(async move {
                loop {
                    if read_head(&mut stream).await.is_empty() {
                        return;
                    }
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    let Some((response, close)) = responses.get(n).copied() else {
                        return;
                    };
                    if stream.write_all(response.as_bytes()).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Sends `request` on `stream` and reads the whole response: head, then
/// the body by its `content-length` or chunked encoding (as the proxy
/// re-frames it), returned decoded with the trailer lines.
async fn exchange(stream: &mut TcpStream, request: &str) -> (String, Vec<u8>, String) {
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(stream).await;
    let lower = head.to_ascii_lowercase();
    let field = |name: &str| {
        lower.lines().find_map(|l| {
            l.strip_prefix(&format!("{name}:"))
                .map(|v| v.trim().to_owned())
        })
    };
    let mut body = Vec::new();
    let mut trailers = String::new();
    if request.starts_with("HEAD")
        || head.starts_with("HTTP/1.1 204")
        || head.starts_with("HTTP/1.1 304")
    {
        return (head, body, trailers);
    }
    if let Some(length) = field("content-length") {
        body.resize(length.parse().unwrap(), 0);
        stream.read_exact(&mut body).await.unwrap();
    } else if field("transfer-encoding").as_deref() == Some("chunked") {
        loop {
            let size_line = read_line(stream).await;
            let size =
                usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16).unwrap();
            if size == 0 {
                loop {
                    let line = read_line(stream).await;
                    if line.is_empty() {
                        break;
                    }
                    trailers.push_str(&line);
                    trailers.push('\n');
                }
                break;
            }
            let mut chunk = vec![0; size + 2];
            stream.read_exact(&mut chunk).await.unwrap();
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        stream.read_to_end(&mut body).await.unwrap();
    }
    (head, body, trailers)
}

async fn read_line(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        line.push(byte[0]);
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).unwrap()
}

fn status(head: &str) -> &str {
    head.lines().next().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_bodies_are_framed_as_rfc_9112_has_it() {
    let app = scripted_app(vec![
        // Chunked, split oddly, with an extension and a trailer.
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n5;x=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nx-sum: 42\r\n\r\n",
            false,
        ),
        // An interim response first, then the real one.
        ("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", false),
        // HEAD: the length describes a body that is not sent.
        ("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", false),
        ("HTTP/1.1 204 No Content\r\n\r\n", false),
        // The same connection still works after all of the above.
        ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
        // No length, no chunking: the body ends with the connection.
        ("HTTP/1.1 200 OK\r\n\r\nuntil the end", true),
    ])
    .await;
    let (sidewatch, base) = start(app, "").await;
    let proxy = base.trim_start_matches("http://").to_owned();
    let mut client = TcpStream::connect(&proxy).await.unwrap();
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: app\r\n\r\n");

    // hyper sends trailers to clients that say they take them.
    let with_te = "GET /chunked HTTP/1.1\r\nHost: app\r\nTE: trailers\r\n\r\n";
    let (head, body, trailers) = exchange(&mut client, with_te).await;
    assert_eq!(status(&head), "HTTP/1.1 200 OK");
    assert_eq!(body, b"hello world");
    assert_eq!(trailers, "x-sum: 42\n", "trailers pass through");

    let (head, body, _) = exchange(&mut client, &get("/hints")).await;
    assert_eq!(status(&head), "HTTP/1.1 200 OK", "the 103 is skipped");
    assert_eq!(body, b"abc");

    let (head, body, _) = exchange(&mut client, "HEAD /head HTTP/1.1\r\nHost: app\r\n\r\n").await;
    assert_eq!(status(&head), "HTTP/1.1 200 OK");
    assert!(
        head.to_ascii_lowercase().contains("content-length: 1000"),
        "{head}"
    );
    assert!(body.is_empty());

    let (head, _, _) = exchange(&mut client, &get("/none")).await;
    assert_eq!(status(&head), "HTTP/1.1 204 No Content");

    let (head, body, _) = exchange(&mut client, &get("/after")).await;
    assert_eq!(status(&head), "HTTP/1.1 200 OK");
    assert_eq!(body, b"ok");

    let (head, body, _) = exchange(&mut client, &get("/close")).await;
    assert_eq!(status(&head), "HTTP/1.1 200 OK");
    assert_eq!(body, b"until the end");

    let text = sidewatch.metrics().await;
    for reason in ["closed", "invalid_response", "reset"] {
        let errors = upstream_errors(&text, reason);
        assert_eq!(errors, 0.0, "{reason}");
    }
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_response_head_is_a_502_counted_by_reason() {
    let app = scripted_app(vec![
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
            true,
        ),
        ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
    ])
    .await;
    let (sidewatch, base) = start(app, "").await;
    let proxy = base.trim_start_matches("http://").to_owned();
    let mut client = TcpStream::connect(&proxy).await.unwrap();
    let request = "GET /bad HTTP/1.1\r\nHost: app\r\n\r\n";
    let (head, _, _) = exchange(&mut client, request).await;
    assert_eq!(status(&head), "HTTP/1.1 502 Bad Gateway");
    // The client connection carries on, on a new app connection.
    let (head, body, _) = exchange(&mut client, request).await;
    assert_eq!(status(&head), "HTTP/1.1 200 OK");
    assert_eq!(body, b"ok");
    let text = sidewatch.metrics().await;
    let invalid = value(
        &text,
        "sidewatch_proxy_upstream_errors_total",
        &[("reason", "invalid_response")],
    );
    assert_eq!(invalid, 1.0);
    let answered = value(
        &text,
        "http_requests_total",
        &[("method", "GET"), ("route", "/bad"), ("status", "502")],
    );
    assert_eq!(answered, 1.0);
    sidewatch.stop().await;
}
