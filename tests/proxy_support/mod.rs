//! A small real HTTP app on a random loopback port for the proxy tests
//! (hyper, HTTP/1.1 with upgrades): fixed routes, slow and failing routes,
//! header echo, streaming upload/download and a byte-echo WebSocket route.

#![allow(dead_code)]

pub mod process;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{metric, Sidewatch};

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn text(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    response
}

/// Starts the app; it runs until the test ends.
pub async fn spawn_app() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(handle);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

async fn handle(mut request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    Ok(match path.as_str() {
        "/fail" => text(500, "boom"),
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            text(200, "slow")
        }
        "/headers" => {
            let get = |name: &str| header_text(request.headers(), name);
            let body = serde_json::json!({
                "x-request-id": get("x-request-id"),
                "traceparent": get("traceparent"),
                "tracestate": get("tracestate"),
                "x-forwarded-for": get("x-forwarded-for"),
                "connection": get("connection"),
            });
            text(200, body.to_string())
        }
        "/upload" => {
            let mut body = request.into_body();
            let mut total = 0u64;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => total += frame.data_ref().map_or(0, |d| d.len() as u64),
                    Err(_) => return Ok(text(400, "broken body")),
                }
            }
            text(200, total.to_string())
        }
        "/download" => {
            let chunks: usize = query.parse().unwrap_or(1);
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let stream = futures::stream::repeat(chunk)
                .take(chunks)
                .map(|b| Ok::<_, Infallible>(Frame::data(b)));
            Response::new(BodyExt::boxed(StreamBody::new(stream)))
        }
        "/ws" => {
            let upgrade = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                if let Ok(upgraded) = upgrade.await {
                    let mut io = TokioIo::new(upgraded);
                    let mut buffer = [0u8; 4096];
                    while let Ok(n) = io.read(&mut buffer).await {
                        if n == 0 || io.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            });
            let mut response = text(101, "");
            response
                .headers_mut()
                .insert("upgrade", http::HeaderValue::from_static("websocket"));
            response
                .headers_mut()
                .insert("connection", http::HeaderValue::from_static("upgrade"));
            response
        }
        p if p.starts_with("/api/orders/") => text(200, "order"),
        p if p.starts_with("/x/") => text(200, "x"),
        _ => text(404, "not found"),
    })
}

/// Starts a GET of the app's `/slow` (answered after a pause) through the
/// proxy at `base`; the task ends with the status or the client's error.
pub fn spawn_slow_request(
    base: &str,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::StatusCode>> {
    let url = format!("{base}/slow");
    tokio::spawn(async move {
        crate::support::client()
            .get(url)
            .send()
            .await
            .map(|r| r.status())
    })
}

/// Resident set size of this process in bytes.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// sidewatch's config for the tests: the proxy in front of `upstream`, plus `extra` keys of `[proxy]` (or later sections).
pub fn config(upstream: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[process]
enabled = false
[shutdown]
grace_period = "1s"
[routes]
templates = ["/api/orders/{{id}}"]
[proxy]
listen = "127.0.0.1:0"
upstream = "{upstream}"
{extra}
"#
    )
}

pub async fn start(upstream: SocketAddr, extra: &str) -> (Sidewatch, String) {
    let sidewatch = Sidewatch::start(&config(upstream, extra)).await;
    let base = format!("http://{}", sidewatch.proxy.expect("proxy is bound"));
    (sidewatch, base)
}

pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric(text, name, labels).unwrap_or_else(|| panic!("{name}{labels:?} missing:\n{text}"))
}

/// `grpc_server_handled_total{grpc_service,grpc_method,grpc_code}` in `text`.
pub fn grpc_handled(text: &str, service: &str, method: &str, code: &str) -> f64 {
    value(
        text,
        "grpc_server_handled_total",
        &[
            ("grpc_service", service),
            ("grpc_method", method),
            ("grpc_code", code),
        ],
    )
}

/// Header `name` of `headers` as text (empty when absent or not text).
pub fn header_text(headers: &http::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// `sidewatch_proxy_upstream_errors_total{reason}` in `text`.
pub fn upstream_errors(text: &str, reason: &str) -> f64 {
    value(
        text,
        "sidewatch_proxy_upstream_errors_total",
        &[("reason", reason)],
    )
}

/// Reads a response head (up to the blank line).
pub async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}
