//! The admin server: `GET /metrics`, `/healthz`, `/readyz` and `/status`.
//! `/metrics` and `/status` need the configured credentials (if any);
//! `/healthz` and `/readyz` never do (kubelet probes carry none).

pub mod actions;
pub mod auth;
pub mod listener;
mod metrics;
pub mod readiness;
pub mod security;
pub mod status;
pub mod tls;

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use listener::Guard;
pub use readiness::{Latch, Readiness};
pub use status::StatusBoard;

use crate::telemetry::parts::Registries;

/// Shortest time between two checks of watched files (a zero interval would spin).
const MIN_WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Runs `refresh` (file reads and parsing, kept off the async workers) on
/// the blocking pool every `interval` (at least 100 ms) until `stop`; a
/// panic in it is logged as "`what` panicked" and the watch goes on.
pub(crate) async fn watch_files<F, R>(
    interval: std::time::Duration,
    stop: CancellationToken,
    what: &'static str,
    refresh: F,
) where
    F: Fn() -> R + Clone + Send + 'static,
    R: Send + 'static,
{
    let mut ticks = tokio::time::interval(interval.max(MIN_WATCH_INTERVAL));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        if tokio::task::spawn_blocking(refresh.clone()).await.is_err() {
            tracing::warn!("{what} panicked");
        }
    }
}

/// What the admin handlers read.
#[derive(Debug)]
pub struct AdminState {
    /// The one metrics registry, as per-component parts.
    pub registry: Registries,
    /// sidewatch's own readiness.
    pub readiness: Readiness,
    /// Collector results for `/status`.
    pub status: StatusBoard,
    /// TLS, credentials and limits of the admin listener.
    pub guard: Arc<Guard>,
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
            guard: Arc::new(Guard::open()),
            last_metrics_size: AtomicUsize::new(4096),
        }
    }

    /// Serves behind `guard` (TLS, credentials, limits) instead of an open one.
    pub fn with_guard(mut self, guard: Guard) -> Self {
        self.guard = Arc::new(guard);
        self
    }
}

/// Serves admin requests on `listener` (behind `state.guard`) until `stop`
/// is cancelled, then gives open connections a short grace period.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, stop: CancellationToken) {
    let guard = state.guard.clone();
    let handler = move |request: Request<Incoming>| {
        let state = state.clone();
        async move { route(&state, &request) }
    };
    listener::serve(listener, guard, handler, stop).await;
}

/// The address the admin server is reachable at, for log lines.
pub fn describe(addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{addr}/metrics")
}

fn route(state: &AdminState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header(header::ALLOW, "GET, HEAD")
            .body(Full::new(Bytes::from_static(b"method not allowed\n")))
            .unwrap_or_default();
    }
    let path = request.uri().path();
    if matches!(path, "/metrics" | "/status") {
        if let Some(refused) = state.guard.authorize(request) {
            return refused;
        }
    }
    match path {
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
