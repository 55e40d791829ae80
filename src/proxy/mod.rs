//! The reverse proxy (`[proxy]`): sits in front of the app port and measures
//! every request — RED metrics per route (`http_*`), `x-request-id` and W3C
//! trace context, one access-log event per request into the log pipeline.
//!
//! Clients speak HTTP/1.1 (keep-alive, upgrades such as WebSocket spliced
//! through) or HTTP/2 with prior knowledge (h2c); the app is reached over
//! HTTP/1.1 through a keep-alive pool. Bodies stream both ways frame by
//! frame, never buffered. Header limits answer `431`, slow headers are cut
//! after `header_read_timeout`, an unreachable app answers `502` and a slow
//! one `504`, each counted by reason.
//!
//! Shutdown: the proxy keeps serving while sidewatch waits for the app to go
//! (DESIGN.md shutdown); when told to stop it stops accepting, lets in-flight
//! requests finish (bounded by [`DRAIN_TIMEOUT`]) and closes idle connections.

pub mod access;
mod body;
mod forward;
pub mod identity;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::proxy::ProxyConfig;
use crate::telemetry::cardinality::OverflowMetrics;
use crate::telemetry::route::RouteNormalizer;
pub use access::{AccessLog, AccessSource};
pub use metrics::ProxyMetrics;

/// How long in-flight requests get to finish once the proxy is told to stop.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(4);

/// What every request handler shares.
pub struct Shared {
    client: Client<HttpConnector, body::CountingBody>,
    upstream: http::uri::Authority,
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
    shared: Arc<Shared>,
    builder: auto::Builder<TokioExecutor>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("listen", &self.listener.local_addr().ok())
            .field("upstream", &self.shared.upstream)
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
    /// Registers the metrics and binds the listener. `access`, when set,
    /// receives one event per request; `spans`, when set, samples requests
    /// and receives their server spans. `routes` turns paths into routes.
    pub async fn build(
        config: &ProxyConfig,
        routes: RouteNormalizer,
        overflow: &OverflowMetrics,
        registry: &mut Registry,
        access: Option<AccessLog>,
        spans: Option<crate::otlp::traces::SpanQueue>,
    ) -> Result<Self, ProxyError> {
        let upstream: http::uri::Authority = config
            .upstream
            .parse()
            .map_err(|_| ProxyError::Upstream(config.upstream.clone()))?;
        let metrics = ProxyMetrics::register(registry, overflow, config.max_series);
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ProxyError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle)
            .set_host(false)
            .build(connector);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout)
            .max_buf_size(config.max_header_bytes)
            .max_headers(config.max_headers)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(config.max_header_bytes as u32);
        let access = access.map(|a| a.with_dropped(metrics.access_log_dropped.clone()));
        Ok(Self {
            listener,
            shared: Arc::new(Shared {
                client,
                upstream,
                response_timeout: config.response_timeout,
                metrics,
                routes,
                access,
                spans,
                tunnels: TaskTracker::new(),
            }),
            builder,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves on `threads` threads of the proxy's own runtime (one thread:
    /// a single event loop, no cross-thread wake-ups) until `stop`, then
    /// drains; resolves once the proxy has stopped.
    pub async fn run(self, stop: CancellationToken, threads: usize) {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let listener = match self.listener.into_std() {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(%error, "proxy: cannot move the listener");
                return;
            }
        };
        let (shared, builder) = (self.shared, self.builder);
        let runtime = if threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("sidewatch-proxy")
                .enable_all()
                .build()
        };
        let runtime = match runtime {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::error!(%error, "proxy: cannot start its runtime");
                return;
            }
        };
        let thread = std::thread::Builder::new()
            .name("sidewatch-proxy".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => {
                            let proxy = Proxy {
                                listener,
                                shared,
                                builder,
                            };
                            proxy.serve(stop).await;
                        }
                        Err(error) => {
                            tracing::error!(%error, "proxy: cannot register the listener")
                        }
                    }
                });
                let _ = done_tx.send(());
            });
        if let Err(error) = thread {
            tracing::error!(%error, "proxy: cannot start its thread");
            return;
        }
        let _ = done_rx.await;
    }

    /// Serves until `stop`, then drains (see the module doc).
    pub async fn serve(self, stop: CancellationToken) {
        let graceful = GracefulShutdown::new();
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Typically EMFILE: back off instead of spinning.
                        tracing::warn!(%error, "proxy: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = stop.cancelled() => break,
            };
            let _ = stream.set_nodelay(true);
            let shared = self.shared.clone();
            let service = service_fn(move |request| forward::handle(shared.clone(), peer, request));
            let connection = self
                .builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            let connection = graceful.watch(connection);
            let shared = self.shared.clone();
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    let reason = connection_reason(&*error);
                    shared.metrics.connection_error(reason);
                    tracing::debug!(%error, %peer, reason, "proxy: client connection error");
                }
            });
        }
        drop(self.listener);
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("proxy: requests still in flight after the drain timeout");
        }
        self.shared.tunnels.close();
        let _ = tokio::time::timeout(Duration::from_millis(100), self.shared.tunnels.wait()).await;
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
