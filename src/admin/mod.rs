//! The admin server: `GET /metrics`, `/healthz`, `/readyz` and `/status`.

pub mod actions;
mod metrics;
pub mod readiness;
pub mod status;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use readiness::{Latch, Readiness};
pub use status::StatusBoard;

use crate::telemetry::parts::Registries;

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish after the server stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// What the admin handlers read.
#[derive(Debug)]
pub struct AdminState {
    /// The one metrics registry, as per-component parts.
    pub registry: Registries,
    /// sidewatch's own readiness.
    pub readiness: Readiness,
    /// Collector results for `/status`.
    pub status: StatusBoard,
    /// Size of the last `/metrics` body, to pre-size the next buffer.
    last_metrics_size: AtomicUsize,
}

impl AdminState {
    /// Bundles the state the handlers need.
    pub fn new(registry: Registries, readiness: Readiness, status: StatusBoard) -> Self {
        Self {
            registry,
            readiness,
            status,
            last_metrics_size: AtomicUsize::new(4096),
        }
    }
}

/// Serves admin requests on `listener` until `stop` is cancelled, then gives
/// open connections a short grace period.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, stop: CancellationToken) {
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(%error, "admin server: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let state = state.clone();
        let service = service_fn(move |request| {
            let response = route(&state, &request);
            async move { Ok::<_, Infallible>(response) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "admin connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("admin server: connections still open after the drain timeout");
    }
}

/// The address the admin server is reachable at, for log lines.
pub fn describe(addr: SocketAddr) -> String {
    format!("http://{addr}/metrics")
}

fn route(state: &AdminState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header(header::ALLOW, "GET, HEAD")
            .body(Full::new(Bytes::from_static(b"method not allowed\n")))
            .unwrap_or_default();
    }
    match request.uri().path() {
        "/metrics" => metrics::handle(state, request),
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => readyz(&state.readiness),
        "/status" => {
            let report = state
                .status
                .report(state.readiness.is_ready(), state.readiness.pending());
            match serde_json::to_vec_pretty(&report) {
                Ok(body) => Response::builder()
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap_or_default(),
                Err(error) => {
                    tracing::error!(%error, "cannot encode /status");
                    text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "cannot encode status\n".into(),
                    )
                }
            }
        }
        "/" => text(
            StatusCode::OK,
            "sidewatch: /metrics /healthz /readyz /status\n".into(),
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

fn readyz(readiness: &Readiness) -> Response<Full<Bytes>> {
    let pending = readiness.pending();
    if pending.is_empty() {
        text(StatusCode::OK, "ready\n".into())
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: waiting for {}\n", pending.join(", ")),
        )
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}
