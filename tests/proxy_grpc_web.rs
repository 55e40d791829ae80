//! gRPC-Web calls (browsers' gRPC, here over HTTP/1.1) through the proxy to
//! a real HTTP/1.1 app answering as gRPC-Web servers do: the call's status
//! at the end of the body, in a trailer frame, base64 in the `-text`
//! variant. They count as gRPC calls with that status.

mod proxy_support;
mod support;

use std::convert::Infallible;
use std::net::SocketAddr;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use proxy_support::{grpc_handled, header_text, start, value};
use support::client;
use tokio::net::TcpListener;

/// A frame: flag, big-endian length, payload.
fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HTTP/1.1 gRPC-Web app: answers with a message and a trailer frame
/// holding the status the request's `x-code` names, in the request's
/// encoding (base64 for `-text`).
async fn spawn_grpc_web_app() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = hyper::service::service_fn(|request: hyper::Request<hyper::body::Incoming>| {
        let header = |name| header_text(request.headers(), name);
        let (code, content_type) = (header("x-code"), header("content-type"));
        async move {
            let mut body = frame(0, b"\x0a\x03abc");
            let trailers = format!("grpc-status:{code}\r\ngrpc-message:from the app\r\n");
            body.extend(frame(0x80, trailers.as_bytes()));
            if content_type.starts_with("application/grpc-web-text") {
                body = base64::engine::general_purpose::STANDARD
                    .encode(body)
                    .into_bytes();
            }
            let response = hyper::Response::builder()
                .header("content-type", content_type)
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            Ok::<_, Infallible>(response)
        }
    });
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_calls_count_with_the_status_of_their_trailer_frame() {
    let (sidewatch, base) = start(spawn_grpc_web_app().await, "").await;
    let client = client();
    let calls = [
        ("application/grpc-web+proto", "0"),
        ("application/grpc-web+proto", "7"),
        ("application/grpc-web-text+proto", "0"),
        ("application/grpc-web-text", "5"),
    ];
    for (content_type, code) in calls {
        let response = client
            .post(format!("{base}/shop.v1.Cart/Add"))
            .header("content-type", content_type)
            .header("x-code", code)
            .body(frame(0, b""))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.unwrap();
        assert!(!body.is_empty(), "the body passed through");
    }
    let text = sidewatch.metrics().await;
    let route = [
        ("method", "POST"),
        ("route", "/shop.v1.Cart/Add"),
        ("status", "200"),
    ];
    assert_eq!(value(&text, "http_requests_total", &route), 4.0, "{text}");
    let handled = |code| grpc_handled(&text, "shop.v1.Cart", "Add", code);
    assert_eq!(handled("OK"), 2.0, "binary and text");
    assert_eq!(handled("PermissionDenied"), 1.0);
    assert_eq!(handled("NotFound"), 1.0);
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_web_call_to_an_app_that_is_down_is_unavailable_in_its_head() {
    let unused = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = unused.local_addr().unwrap();
    drop(unused);
    let (sidewatch, base) = start(addr, "").await;
    let response = client()
        .post(format!("{base}/shop.v1.Cart/Add"))
        .header("content-type", "application/grpc-web+proto")
        .body(frame(0, b""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let header = |name| response.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "application/grpc-web+proto");
    assert_eq!(header("grpc-status"), "14", "UNAVAILABLE, trailers-only");
    let text = sidewatch.metrics().await;
    assert_eq!(
        grpc_handled(&text, "shop.v1.Cart", "Add", "Unavailable"),
        1.0
    );
    sidewatch.stop().await;
}
