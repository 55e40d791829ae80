//! The reverse proxy (`[proxy]`): sits in front of the app port and measures
//! every request — RED metrics per route (`http_*`), `x-request-id` and W3C
//! trace context, one access-log event per request into the log pipeline.
//!
//! Clients speak HTTP/1.1 (keep-alive, upgrades such as WebSocket spliced
//! through) or HTTP/2 with prior knowledge (h2c); the app is reached over
//! HTTP/1.1, except gRPC calls (HTTP/2, see `proxy.app_http2` and
//! `proxy::grpc`): requests of an HTTP/1 client connection without a body or
//! with a small one (read whole: at most 16 KiB with a `Content-Length`) on
//! an app connection pinned to it, larger or chunked bodies, HTTP/2 clients
//! and upgrades through each event loop's keep-alive pool (see
//! [`upstream`]). Those bodies stream both ways frame by frame, never
//! buffered. Header limits answer `431`, slow headers are cut
//! after `header_read_timeout`, an unreachable app answers `502` and a slow
//! one `504`, each counted by reason.
//!
//! Shutdown: the proxy keeps serving while sidewatch waits for the app to go
//! (DESIGN.md shutdown); when told to stop it stops accepting, lets in-flight
//! requests finish (bounded by [`DRAIN_TIMEOUT`]) and closes idle connections.

pub mod access;
mod body;
mod coalesce;
mod event_loop;
mod forward;
mod grpc;
pub mod identity;
pub mod metrics;
mod timer;
mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::proxy::{AppHttp2, ProxyConfig};
use crate::telemetry::route::RouteNormalizer;
pub use access::{AccessLog, AccessSource};
pub use metrics::ProxyMetrics;

/// How long in-flight requests get to finish once the proxy is told to stop.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(4);

/// What every request handler shares.
#[derive(Clone)]
pub struct Shared {
    /// What each loop's keep-alive pool is built with: a reload that keeps
    /// them keeps the pools and their open connections to the app.
    pool_settings: upstream::PoolSettings,
    upstream: http::uri::Authority,
    /// Which requests reach the app over HTTP/2 (`proxy.app_http2`).
    app_http2: AppHttp2,
    connect_timeout: Duration,
    response_timeout: Duration,
    metrics: ProxyMetrics,
    routes: RouteNormalizer,
    access: Option<AccessLog>,
    spans: Option<crate::otlp::traces::SpanQueue>,
    tunnels: TaskTracker,
}

/// A built proxy, listener bound, not serving yet.
pub struct Proxy {
    listener: TcpListener,
    shared: ProxyHandle,
    builder: auto::Builder<TokioExecutor>,
}

/// The proxy's swappable half: what request handlers share. A reload puts a
/// new [`Shared`] in (new upstream, timeouts, metrics, routes, access-log
/// queue) while the listener and open client connections stay; each request
/// takes the one current when it arrives.
#[derive(Clone)]
pub struct ProxyHandle {
    current: Arc<std::sync::RwLock<Arc<Shared>>>,
}

impl std::fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyHandle")
            .field("upstream", &self.get().upstream)
            .finish()
    }
}

impl ProxyHandle {
    fn get(&self) -> Arc<Shared> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces what handlers share from now on: requests in flight finish
    /// with the old state, later ones (also on open connections) use the new.
    pub fn swap(
        &self,
        config: &ProxyConfig,
        routes: RouteNormalizer,
        metrics: ProxyMetrics,
        access: Option<AccessLog>,
    ) -> Result<(), ProxyError> {
        let current = self.get();
        let mut shared = Shared::build(config, routes, metrics, access, current.tunnels.clone())?;
        // The span queue belongs to the OTLP exporter, which a reload keeps.
        shared.spans = current.spans.clone();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(shared);
        Ok(())
    }

    /// Replaces only the access-log queue.
    pub fn set_access(&self, access: Option<AccessLog>) {
        let mut shared = (*self.get()).clone();
        shared.access = access.map(|a| a.with_dropped(shared.metrics.access_log_dropped.clone()));
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(shared);
    }

    /// The metric handles in use.
    pub fn metrics(&self) -> ProxyMetrics {
        self.get().metrics.clone()
    }
}

impl Shared {
    fn build(
        config: &ProxyConfig,
        routes: RouteNormalizer,
        metrics: ProxyMetrics,
        access: Option<AccessLog>,
        tunnels: TaskTracker,
    ) -> Result<Self, ProxyError> {
        let upstream: http::uri::Authority = config
            .upstream
            .parse()
            .map_err(|_| ProxyError::Upstream(config.upstream.clone()))?;
        let access = access.map(|a| a.with_dropped(metrics.access_log_dropped.clone()));
        Ok(Self {
            pool_settings: upstream::PoolSettings {
                connect_timeout: config.connect_timeout,
                idle_timeout: config.pool_idle_timeout,
                max_idle: config.pool_max_idle,
            },
            upstream,
            app_http2: config.app_http2,
            connect_timeout: config.connect_timeout,
            response_timeout: config.response_timeout,
            metrics,
            routes,
            access,
            spans: None,
            tunnels,
        })
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("listen", &self.listener.local_addr().ok())
            .field("upstream", &self.shared.get().upstream)
            .finish()
    }
}

/// A proxy that could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// `proxy.upstream` is not a usable `host:port`.
    #[error("`proxy.upstream`: {0:?} is not host:port")]
    Upstream(String),
    /// `proxy.listen` could not be bound.
    #[error("cannot bind `proxy.listen` ({addr}): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Proxy {
    /// Binds the listener; `metrics` are registered by the caller.
    /// `access`, when set, receives one event per request; `spans`, when
    /// set, samples requests and receives their server spans. `routes`
    /// turns paths into routes.
    pub async fn build(
        config: &ProxyConfig,
        routes: RouteNormalizer,
        metrics: ProxyMetrics,
        access: Option<AccessLog>,
        spans: Option<crate::otlp::traces::SpanQueue>,
    ) -> Result<Self, ProxyError> {
        let mut shared = Shared::build(config, routes, metrics, access, TaskTracker::new())?;
        shared.spans = spans;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ProxyError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            // Each event loop sets its own timer (`timer::LoopTimer`).
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout)
            .max_buf_size(config.max_header_bytes)
            .max_headers(config.max_headers)
            // No read-ahead while a request is served: hyper would otherwise
            // read once more to notice a client hang-up, and since the
            // request's headers still point into the read buffer, that read
            // allocates a fresh 8 KiB buffer for every request (about a tenth
            // of the proxy's CPU went to malloc/free under load). The cost:
            // a client that closes its connection while the app is still
            // answering no longer cancels that request; it runs to its end
            // (or the upstream timeout) before the closed socket is seen, as
            // with haproxy without `abortonclose`. A hang-up mid-body is
            // still seen at once.
            .half_close(true)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(config.max_header_bytes as u32);
        Ok(Self {
            listener,
            shared: ProxyHandle {
                current: Arc::new(std::sync::RwLock::new(Arc::new(shared))),
            },
            builder,
        })
    }

    /// The handle through which a reload swaps the proxy's state.
    pub fn handle(&self) -> ProxyHandle {
        self.shared.clone()
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves on `threads` event loops of the proxy's own (see
    /// [`event_loop`]) until `stop`, then drains; resolves once every loop
    /// has stopped.
    pub async fn run(self, stop: CancellationToken, threads: usize) {
        let listener = match self.listener.into_std() {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(%error, "proxy: cannot move the listener");
                return;
            }
        };
        for ended in event_loop::start(listener, self.shared, self.builder, stop, threads) {
            let _ = ended.await;
        }
        tracing::info!("proxy stopped");
    }
}

/// The `reason` of a client connection error.
fn connection_reason(error: &(dyn std::error::Error + 'static)) -> &'static str {
    match error.downcast_ref::<hyper::Error>() {
        Some(e) if e.is_timeout() => "header_timeout",
        Some(e) if e.is_parse_too_large() => "header_too_large",
        Some(e) if e.is_parse() || e.is_parse_status() => "malformed",
        _ => "io",
    }
}
