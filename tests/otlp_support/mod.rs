//! An in-test OTLP receiver. No OpenTelemetry Collector binary can be
//! installed here, so the tests run this stand-in, built on the
//! `opentelemetry-proto` types: OTLP/gRPC through tonic's generated
//! `LogsService`/`MetricsService`/`TraceService` servers (gzip accepted),
//! or OTLP/HTTP (`POST /v1/{metrics,logs,traces}`, protobuf, gzip) through
//! hyper. It records every request, can answer log exports with a partial
//! success, can speak TLS (ALPN `h2` for gRPC, `http/1.1` for HTTP), and
//! can go down (listener and every connection dropped) and come back on the
//! same port.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;
use tonic::codec::CompressionEncoding;

/// Which OTLP transport the receiver speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (HTTP/2 cleartext).
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    Http,
}

/// What the receiver has seen.
#[derive(Debug, Default)]
pub struct Seen {
    pub metrics: Vec<ExportMetricsServiceRequest>,
    pub logs: Vec<ExportLogsServiceRequest>,
    pub traces: Vec<ExportTraceServiceRequest>,
    /// The value of the `x-api-key` header / metadata of the last request.
    pub api_key: Option<String>,
    /// Whether a request body arrived gzip-compressed.
    pub gzipped: bool,
}

#[derive(Debug, Default)]
struct State {
    seen: Seen,
    /// Log exports answered with a partial success rejecting this many records.
    partial: Option<i64>,
}

type Shared = Arc<Mutex<State>>;

/// A running receiver.
pub struct Receiver {
    pub addr: SocketAddr,
    pub protocol: Protocol,
    state: Shared,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    /// Set when the receiver speaks TLS.
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Receiver {
    /// Starts a receiver on a random loopback port.
    pub fn start(protocol: Protocol) -> Self {
        Self::start_with(protocol, None)
    }

    /// Starts a receiver speaking TLS with `config`
    /// (`test_certs::server_config`), offering the protocol's ALPN.
    pub fn start_tls(protocol: Protocol, mut config: rustls::ServerConfig) -> Self {
        config.alpn_protocols = match protocol {
            Protocol::Grpc => vec![b"h2".to_vec()],
            Protocol::Http => vec![b"http/1.1".to_vec()],
        };
        Self::start_with(
            protocol,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
    }

    fn start_with(protocol: Protocol, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let receiver = Self {
            addr,
            protocol,
            state: Shared::default(),
            runtime: Mutex::new(None),
            tls,
        };
        receiver.up();
        receiver
    }

    /// The endpoint to configure (`http://127.0.0.1:PORT`, or `https://`
    /// for a TLS receiver).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Starts listening (again) on the same port.
    pub fn up(&self) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match std::net::TcpListener::bind(self.addr) {
                Ok(listener) => break listener,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("cannot bind {} again: {e}", self.addr),
            }
        };
        listener.set_nonblocking(true).unwrap();
        let state = self.state.clone();
        let protocol = self.protocol;
        let tls = self.tls.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            match (protocol, tls) {
                (_, Some(tls)) => serve_tls(listener, state, protocol, tls).await,
                (Protocol::Grpc, None) => serve_grpc(listener, state).await,
                (Protocol::Http, None) => serve_http(listener, state).await,
            }
        });
        *self.runtime.lock().unwrap() = Some(runtime);
    }

    /// Stops listening and drops every connection.
    pub fn down(&self) {
        if let Some(runtime) = self.runtime.lock().unwrap().take() {
            runtime.shutdown_background();
        }
    }

    /// Answer log exports with a partial success rejecting `rejected` records.
    pub fn partial(&self, rejected: Option<i64>) {
        self.state.lock().unwrap().partial = rejected;
    }

    /// Reads what was seen.
    pub fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.state.lock().unwrap().seen)
    }

    /// Waits until `accept` holds for what was seen; panics after `timeout`.
    pub fn wait(&self, what: &str, timeout: Duration, accept: impl Fn(&Seen) -> bool) {
        let deadline = Instant::now() + timeout;
        while !self.seen(&accept) {
            assert!(Instant::now() < deadline, "receiver never saw {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Async [`Receiver::wait`] (for tests on a runtime).
    pub async fn wait_async(&self, what: &str, timeout: Duration, accept: impl Fn(&Seen) -> bool) {
        let deadline = Instant::now() + timeout;
        while !self.seen(&accept) {
            assert!(Instant::now() < deadline, "receiver never saw {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.down();
    }
}

fn record_key(state: &Shared, key: Option<&str>) {
    state.lock().unwrap().seen.api_key = key.map(str::to_owned);
}

fn logs_response(state: &Shared, request: ExportLogsServiceRequest) -> ExportLogsServiceResponse {
    let mut state = state.lock().unwrap();
    state.seen.logs.push(request);
    ExportLogsServiceResponse {
        partial_success: state.partial.map(|rejected| ExportLogsPartialSuccess {
            rejected_log_records: rejected,
            error_message: "records without a body are refused".into(),
        }),
    }
}

struct Grpc(Shared);

fn metadata_key<T>(request: &tonic::Request<T>) -> Option<String> {
    request
        .metadata()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[tonic::async_trait]
impl LogsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        record_key(&self.0, metadata_key(&request).as_deref());
        Ok(tonic::Response::new(logs_response(
            &self.0,
            request.into_inner(),
        )))
    }
}

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        record_key(&self.0, metadata_key(&request).as_deref());
        self.0
            .lock()
            .unwrap()
            .seen
            .metrics
            .push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        record_key(&self.0, metadata_key(&request).as_deref());
        self.0
            .lock()
            .unwrap()
            .seen
            .traces
            .push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// The three OTLP services, gzip accepted.
fn grpc_routes(state: Shared) -> tonic::service::Routes {
    tonic::service::Routes::new(
        LogsServiceServer::new(Grpc(state.clone())).accept_compressed(CompressionEncoding::Gzip),
    )
    .add_service(
        MetricsServiceServer::new(Grpc(state.clone())).accept_compressed(CompressionEncoding::Gzip),
    )
    .add_service(TraceServiceServer::new(Grpc(state)).accept_compressed(CompressionEncoding::Gzip))
}

async fn serve_grpc(listener: tokio::net::TcpListener, state: Shared) {
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let _ = tonic::transport::Server::builder()
        .add_routes(grpc_routes(state))
        .serve_with_incoming(incoming)
        .await;
}

/// Each connection through a TLS handshake, then served as gRPC (HTTP/2,
/// the same services) or OTLP/HTTP (HTTP/1.1).
async fn serve_tls(
    listener: tokio::net::TcpListener,
    state: Shared,
    protocol: Protocol,
    tls: tokio_rustls::TlsAcceptor,
) {
    let routes = grpc_routes(state.clone());
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (tls, state, routes) = (tls.clone(), state.clone(), routes.clone());
        tokio::spawn(async move {
            let Ok(stream) = tls.accept(tcp).await else {
                return; // the client refused the certificate
            };
            let io = hyper_util::rt::TokioIo::new(stream);
            match protocol {
                Protocol::Grpc => {
                    let service = hyper::service::service_fn(move |request| {
                        let mut routes = routes.clone();
                        async move { tonic::codegen::Service::call(&mut routes, request).await }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(io, service)
                    .await;
                }
                Protocol::Http => {
                    let service = hyper::service::service_fn(move |request| {
                        handle_http(request, state.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                }
            }
        });
    }
}

async fn serve_http(listener: tokio::net::TcpListener, state: Shared) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request| handle_http(request, state.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle_http(
    request: http::Request<hyper::body::Incoming>,
    state: Shared,
) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
    let answer = |status: u16, body: Vec<u8>| {
        let mut response = http::Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
        response.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("application/x-protobuf"),
        );
        Ok(response)
    };
    if request.method() != http::Method::POST {
        return answer(405, Vec::new());
    }
    let path = request.uri().path().to_owned();
    let gzipped = request
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let key = request
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Ok(body) = request.into_body().collect().await else {
        return answer(400, Vec::new());
    };
    let mut body = body.to_bytes().to_vec();
    if gzipped {
        let mut plain = Vec::new();
        if flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut plain)
            .is_err()
        {
            return answer(400, Vec::new());
        }
        body = plain;
    }
    record_key(&state, key.as_deref());
    state.lock().unwrap().seen.gzipped |= gzipped;
    match path.as_str() {
        "/v1/metrics" => match ExportMetricsServiceRequest::decode(&body[..]) {
            Ok(request) => {
                state.lock().unwrap().seen.metrics.push(request);
                answer(200, ExportMetricsServiceResponse::default().encode_to_vec())
            }
            Err(_) => answer(400, Vec::new()),
        },
        "/v1/logs" => match ExportLogsServiceRequest::decode(&body[..]) {
            Ok(request) => answer(200, logs_response(&state, request).encode_to_vec()),
            Err(_) => answer(400, Vec::new()),
        },
        "/v1/traces" => match ExportTraceServiceRequest::decode(&body[..]) {
            Ok(request) => {
                state.lock().unwrap().seen.traces.push(request);
                answer(200, ExportTraceServiceResponse::default().encode_to_vec())
            }
            Err(_) => answer(400, Vec::new()),
        },
        _ => answer(404, Vec::new()),
    }
}
