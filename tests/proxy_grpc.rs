//! The proxy in front of apps that speak HTTP/2: a real gRPC server (tonic)
//! reached by a real gRPC client through the proxy, and an HTTP/2-only app
//! served to HTTP/1.1 clients with `proxy.app_http2 = "always"`, and a
//! server-streaming answer passed through frame by frame with its trailers.

mod proxy_support;
mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{Full, StreamBody};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use proxy_support::{grpc_handled, start, upstream_errors, value};
use support::client;
use tokio::net::TcpListener;

/// What the gRPC app saw: the request IDs and trace parents of its calls.
#[derive(Default)]
struct Seen {
    request_ids: Vec<String>,
    traceparents: Vec<String>,
}

/// A gRPC app: `Export` answers with a partial success naming the spans it
/// got, or with `UNAVAILABLE` when the call carries `x-fail`.
#[derive(Clone, Default)]
struct GrpcApp(Arc<Mutex<Seen>>);

#[tonic::async_trait]
impl TraceService for GrpcApp {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let header = |name| {
            request
                .metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        {
            let mut seen = self.0.lock().unwrap();
            seen.request_ids.push(header("x-request-id"));
            seen.traceparents.push(header("traceparent"));
        }
        if request.metadata().contains_key("x-fail") {
            return Err(tonic::Status::unavailable("the app says no"));
        }
        let spans = request.get_ref().resource_spans.len() as i64;
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: spans,
                error_message: format!("got {spans} resource spans"),
            }),
        }))
    }
}

async fn spawn_grpc_app(app: GrpcApp) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(app))
            .serve_with_incoming(incoming),
    );
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_reach_a_grpc_app_over_http2_with_their_trailers() {
    let app = GrpcApp::default();
    let addr = spawn_grpc_app(app.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let sinks = format!(
        "[[logs.sinks]]\ntype = \"file\"\npath = '{}'\n",
        log.display()
    );
    let (sidewatch, base) = start(addr, &sinks).await;
    let mut grpc = TraceServiceClient::connect(base.clone()).await.unwrap();
    for spans in 0..3 {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![Default::default(); spans],
        };
        // A unary response ends with `grpc-status` in trailers: the client
        // fails the call if they do not come through.
        let response = grpc.export(request).await.unwrap().into_inner();
        let partial = response.partial_success.unwrap();
        assert_eq!(partial.rejected_spans, spans as i64);
        assert_eq!(partial.error_message, format!("got {spans} resource spans"));
    }
    let mut failing = tonic::Request::new(ExportTraceServiceRequest::default());
    failing
        .metadata_mut()
        .insert("x-fail", "1".parse().unwrap());
    let status = grpc.export(failing).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), "the app says no");

    {
        let seen = app.0.lock().unwrap();
        assert_eq!(seen.request_ids.len(), 4);
        for (id, parent) in seen.request_ids.iter().zip(&seen.traceparents) {
            assert_eq!(id.len(), 36, "an injected UUID: {id:?}");
            assert!(parent.starts_with("00-"), "a trace parent: {parent:?}");
        }
    }
    let text = sidewatch.metrics().await;
    let path = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    let calls = value(
        &text,
        "http_requests_total",
        &[("method", "POST"), ("route", path), ("status", "200")],
    );
    assert_eq!(calls, 4.0, "gRPC answers errors with HTTP 200");
    let service = "opentelemetry.proto.collector.trace.v1.TraceService";
    let handled = |code| grpc_handled(&text, service, "Export", code);
    assert_eq!(handled("OK"), 3.0, "grpc-status 0 from the trailers");
    assert_eq!(handled("Unavailable"), 1.0, "from a trailers-only answer");
    for reason in ["closed", "connect"] {
        let errors = upstream_errors(&text, reason);
        assert_eq!(errors, 0.0, "{reason}");
    }
    sidewatch.stop().await;

    // The access-log events carry the calls' gRPC statuses.
    let text = std::fs::read_to_string(&log).unwrap();
    let mut statuses: Vec<_> = text
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .map(|event| (event["route"].clone(), event["grpc_status"].clone()))
        .collect();
    statuses.sort_by_key(|(_, status)| status.as_u64());
    let route = serde_json::json!(path);
    let expected = [0, 0, 0, 14].map(|code| (route.clone(), serde_json::json!(code)));
    assert_eq!(statuses, expected, "{text}");
}

/// A call through the proxy at `base` fails as gRPC clients should see the
/// proxy's own 502: UNAVAILABLE, with its reason as the message.
async fn assert_unreachable(base: &str) {
    let mut grpc = TraceServiceClient::connect(base.to_owned()).await.unwrap();
    let status = grpc
        .export(ExportTraceServiceRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), "sidewatch proxy: the app is unreachable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_http1_to_the_app_fails_as_502_when_http2_is_off() {
    let addr = spawn_grpc_app(GrpcApp::default()).await;
    let (sidewatch, base) = start(addr, "app_http2 = \"never\"").await;
    // The proxy's 502 carries its gRPC status: UNAVAILABLE, with the reason.
    assert_unreachable(&base).await;
    let text = sidewatch.metrics().await;
    let failed = value(
        &text,
        "http_requests_total",
        &[
            ("method", "POST"),
            (
                "route",
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            ),
            ("status", "502"),
        ],
    );
    assert_eq!(failed, 1.0, "counted against the 5xx SLO");
    let service = "opentelemetry.proto.collector.trace.v1.TraceService";
    let handled = grpc_handled(&text, service, "Export", "Unavailable");
    assert_eq!(handled, 1.0);
    sidewatch.stop().await;
}

/// Serves `service` over HTTP/2 only (prior knowledge) on a loopback port.
async fn spawn_http2_app<S, B>(service: S) -> SocketAddr
where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<B>,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service.clone()),
            );
        }
    });
    addr
}

/// An app that speaks only HTTP/2 (prior knowledge) and answers with the
/// protocol version, method, body length, `:authority`, and `te` and
/// `x-forwarded-host` headers it saw.
async fn spawn_http2_only_app() -> SocketAddr {
    spawn_http2_app(hyper::service::service_fn(
        |request: hyper::Request<hyper::body::Incoming>| async move {
            let (parts, body) = request.into_parts();
            let body = http_body_util::BodyExt::collect(body).await?.to_bytes();
            let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
            let text = format!(
                "{:?} {} {} authority={} te={} host={}",
                parts.version,
                parts.method,
                body.len(),
                parts.uri.authority().map_or("-", |a| a.as_str()),
                header("te").unwrap_or("-"),
                header("x-forwarded-host").unwrap_or("-"),
            );
            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from(text))))
        },
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_only_app_serves_http1_clients_when_app_http2_is_always() {
    let app = spawn_http2_only_app().await;
    let http = client();
    let (sidewatch, base) = start(app, "app_http2 = \"always\"").await;
    for _ in 0..3 {
        let response = http
            .get(format!("{base}/api/orders/1"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.version(), http::Version::HTTP_11);
        assert_eq!(response.status(), 200);
        // The host the client asked for reaches the app as `:authority`.
        let host = base.trim_start_matches("http://");
        let expected = format!("HTTP/2.0 GET 0 authority={host} te=- host=-");
        assert_eq!(response.text().await.unwrap(), expected);
    }
    let response = http
        .post(format!("{base}/api/orders/2"))
        .header("te", "trailers, deflate;q=0.5")
        .header("host", "shop.example.com")
        .header("x-forwarded-host", "ingress.example.com")
        .body(vec![b'x'; 1000])
        .send()
        .await
        .unwrap();
    // `TE` is hop-by-hop, but its `trailers` (which gRPC servers require)
    // is passed on over HTTP/2, the one value HTTP/2 allows.
    assert_eq!(
        response.text().await.unwrap(),
        "HTTP/2.0 POST 1000 authority=shop.example.com te=trailers host=ingress.example.com",
        "the client's Host as `:authority`; an ingress's x-forwarded-host is kept"
    );
    let text = sidewatch.metrics().await;
    let gets = value(
        &text,
        "http_requests_total",
        &[
            ("method", "GET"),
            ("route", "/api/orders/{id}"),
            ("status", "200"),
        ],
    );
    assert_eq!(gets, 3.0);
    sidewatch.stop().await;

    // The default sends HTTP/1.1 clients' requests as HTTP/1.1, which this
    // app cannot read: the setting is what makes it work.
    let (sidewatch, base) = start(app, "").await;
    let response = http
        .get(format!("{base}/api/orders/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    sidewatch.stop().await;
}

/// An HTTP/2-only app answering like a server-streaming gRPC call: three
/// messages 150 ms apart, then `grpc-status: 0` in trailers.
async fn spawn_streaming_app() -> SocketAddr {
    use futures::StreamExt;
    use hyper::body::Frame;
    spawn_http2_app(hyper::service::service_fn(|_request| async {
        let frames = futures::stream::iter(["one", "two", "three"])
            .then(|text| async move {
                tokio::time::sleep(Duration::from_millis(150)).await;
                Ok::<_, Infallible>(Frame::data(Bytes::from(text)))
            })
            .chain(futures::stream::once(async {
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", "0".parse().unwrap());
                Ok(Frame::trailers(trailers))
            }));
        let mut response = hyper::Response::new(StreamBody::new(frames));
        response
            .headers_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
        Ok::<_, Infallible>(response)
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_grpc_answer_streams_through_with_its_trailers() {
    let app = spawn_streaming_app().await;
    let (sidewatch, base) = start(app, "").await;
    let h2 = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let request = http::Request::post(format!("{base}/shop.v1.Orders/Watch"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
        .unwrap();
    let response = h2.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let (mut messages, mut trailers) = (Vec::new(), None);
    while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
        let frame = frame.unwrap();
        if let Some(data) = frame.data_ref() {
            messages.push((Instant::now(), data.clone()));
        } else if let Ok(t) = frame.into_trailers() {
            trailers = Some(t);
        }
    }
    let texts: Vec<_> = messages.iter().map(|(_, data)| data.clone()).collect();
    assert_eq!(texts, ["one", "two", "three"], "each message as sent");
    let spread = messages[2].0 - messages[0].0;
    assert!(
        spread >= Duration::from_millis(200),
        "messages arrived together ({spread:?} apart): buffered, not streamed"
    );
    let status = trailers.expect("trailers reach the client")["grpc-status"].clone();
    assert_eq!(status, "0");
    let text = sidewatch.metrics().await;
    let handled = grpc_handled(&text, "shop.v1.Orders", "Watch", "OK");
    assert_eq!(handled, 1.0, "the status from the trailers");
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_call_to_an_app_that_is_down_is_unavailable_and_counted_by_reason() {
    // A port nothing listens on: bound, then closed.
    let down = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let (sidewatch, base) = start(down, "").await;
    assert_unreachable(&base).await;
    let text = sidewatch.metrics().await;
    assert_eq!(upstream_errors(&text, "connect"), 1.0, "{text}");
    sidewatch.stop().await;
}
