//! One secured HTTP/1.1 listener, reusable by every admin-style listener
//! (`/metrics` and friends, the admin actions): optional TLS with rotating
//! certificates, optional credentials, header and body size limits, and
//! counters of everything refused. A [`Guard`] holds the three; [`serve`]
//! runs an accept loop with it around any request handler.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::auth::Auth;
use super::security::{Rejections, SecurityMetrics};
use super::tls::Tls;
use crate::accept;
use crate::config::admin::{AuthConfig, LimitsConfig, TlsConfig};

/// How long open connections get to finish after the server stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A listener's security settings could not be put to use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}`: {message}")]
pub struct GuardError {
    /// The config key concerned, e.g. `admin.tls.cert_file`.
    pub key: String,
    /// What is wrong (naming the file, never a secret).
    pub message: String,
}

/// TLS, credentials and limits of one listener.
#[derive(Debug, Clone)]
pub struct Guard {
    tls: Option<Tls>,
    auth: Option<Auth>,
    limits: LimitsConfig,
    rejected: Rejections,
}

impl Guard {
    /// Builds the guard of the listener configured under `key` (e.g.
    /// `admin`), named `listener` in metrics.
    pub fn build(
        key: &str,
        listener: &'static str,
        tls: Option<&TlsConfig>,
        auth: &AuthConfig,
        limits: &LimitsConfig,
        metrics: &SecurityMetrics,
    ) -> Result<Self, GuardError> {
        let tls = tls
            .map(|config| Tls::build(config, metrics.tls_reloads(listener)))
            .transpose()
            .map_err(|problem| GuardError {
                key: format!("{key}.tls.{}", problem.field),
                message: problem.message,
            })?;
        let reloads = if auth.token_file.is_some() {
            metrics.token_reloads(listener)
        } else {
            super::auth::ReloadCounters::default()
        };
        let auth = Auth::build(auth, reloads).map_err(|message| GuardError {
            key: format!("{key}.auth.token_file"),
            message,
        })?;
        Ok(Self {
            tls,
            auth,
            limits: limits.clone(),
            rejected: metrics.rejections(listener),
        })
    }

    /// A guard that lets everything through with the default limits (tests).
    pub fn open() -> Self {
        Self {
            tls: None,
            auth: None,
            limits: LimitsConfig::default(),
            rejected: SecurityMetrics::detached().rejections("detached"),
        }
    }

    /// Whether connections are TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The tasks that watch certificate and token files; spawn each.
    pub fn watchers(
        &self,
        stop: &CancellationToken,
    ) -> Vec<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>> {
        let mut tasks: Vec<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>> = Vec::new();
        if let Some(tls) = &self.tls {
            tasks.push(Box::pin(tls.clone().watch(stop.clone())));
        }
        if let Some(auth) = &self.auth {
            tasks.push(Box::pin(auth.clone().watch(stop.clone())));
        }
        tasks
    }

    /// `None` when `request` may go on (no credentials configured, or the
    /// right ones given); else the `401` to answer, counted.
    pub fn authorize<B>(&self, request: &Request<B>) -> Option<Response<Full<Bytes>>> {
        let auth = self.auth.as_ref()?;
        match auth.check(request.headers()) {
            Ok(()) => None,
            Err(_) => {
                self.rejected.unauthorized.inc();
                Some(auth.unauthorized())
            }
        }
    }

    /// Reads a request body up to `max_body_bytes`; a larger one gives the
    /// `413` to answer, counted.
    pub async fn read_body(&self, body: Incoming) -> Result<Bytes, Response<Full<Bytes>>> {
        match Limited::new(body, self.limits.max_body_bytes)
            .collect()
            .await
        {
            Ok(body) => Ok(body.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                self.rejected.body_too_large.inc();
                Err(too_large())
            }
            Err(_) => Err(plain(StatusCode::BAD_REQUEST, "body could not be read\n")),
        }
    }

    /// The `413` for a declared `Content-Length` over the limit, counted.
    fn declared_too_large<B>(&self, request: &Request<B>) -> Option<Response<Full<Bytes>>> {
        let length = request
            .headers()
            .get(header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .parse::<u64>()
            .ok()?;
        (length > self.limits.max_body_bytes as u64).then(|| {
            self.rejected.body_too_large.inc();
            too_large()
        })
    }
}

fn too_large() -> Response<Full<Bytes>> {
    let mut response = plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
    response
        .headers_mut()
        .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    response
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap_or_default()
}

/// Serves `handler` on `listener` behind `guard` until `stop` is cancelled,
/// then gives open connections a short grace period. A request whose
/// declared body is over the limit is answered `413` before the handler
/// runs; handlers that read bodies use [`Guard::read_body`].
pub async fn serve<H, F>(
    listener: TcpListener,
    guard: Arc<Guard>,
    handler: H,
    stop: CancellationToken,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let connections = TaskTracker::new();
    while let Some((stream, peer)) = accept::next_or_stop(&listener, &stop, "admin server").await {
        let (guard, handler, stop) = (guard.clone(), handler.clone(), stop.clone());
        connections.spawn(async move {
            let Some(tls) = &guard.tls else {
                return connection(stream, guard.clone(), handler, stop).await;
            };
            let timeout = guard.limits.header_read_timeout;
            match tokio::time::timeout(timeout, tls.acceptor().accept(stream)).await {
                Ok(Ok(stream)) => connection(stream, guard.clone(), handler, stop).await,
                Ok(Err(error)) => {
                    guard.rejected.tls_handshake.inc();
                    tracing::debug!(%error, %peer, "admin server: TLS handshake failed");
                }
                Err(_) => {
                    guard.rejected.tls_handshake.inc();
                    tracing::debug!(%peer, "admin server: TLS handshake timed out");
                }
            }
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, connections.wait())
        .await
        .is_err()
    {
        tracing::debug!("admin server: connections still open after the drain timeout");
    }
}

/// Serves one connection (plain or TLS) until it closes or `stop`.
async fn connection<I, H, F>(io: I, guard: Arc<Guard>, handler: H, stop: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let checked = guard.clone();
    let service = service_fn(move |request: Request<Incoming>| {
        let early = checked.declared_too_large(&request);
        let handler = handler.clone();
        async move {
            Ok::<_, Infallible>(match early {
                Some(response) => response,
                None => handler(request).await,
            })
        }
    });
    let limits = &guard.limits;
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        if error.is_parse_too_large() {
            guard.rejected.header_too_large.inc();
        }
        tracing::debug!(%error, "admin connection ended with an error");
    }
}
