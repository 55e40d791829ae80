//! Reaching the app. An HTTP/1.1 client connection gets an app connection
//! of its own ([`Pinned`]), used for its requests without a body or with a
//! small one read whole — the bulk of traffic — through sidewatch's own
//! HTTP/1.1 client ([`connection`]): the request is written and the
//! response read in the client connection's task, with no pool lookup,
//! lock, channel or second task per request. When the client connection
//! closes, its app connection is kept in the event loop's
//! [`IdleConnections`] for the next client connection. Requests with a
//! larger or chunked body (which must stream to the app while its response
//! may already stream back), HTTP/2 clients (many requests at once),
//! requests sent to the app over HTTP/2 (gRPC, `proxy.app_http2`) and
//! upgrades (the app connection is handed over to the tunnel) go through
//! hyper's keep-alive pools instead, one pair per event loop ([`LoopPool`]).

mod body;
mod connection;
mod head;
mod idle;
mod pooled;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::Authority;
use http::{request, Response};

pub use body::AppBody;
use connection::{AppConnection, Failure};
pub use idle::{IdleConnections, IdleLimits};
pub use pooled::{LoopPool, PoolSettings};

use super::coalesce::Coalescer;

/// Why the app gave no response.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The TCP connection was refused or failed.
    #[error("cannot connect to the app: {0}")]
    Connect(std::io::Error),
    /// The TCP connection was not established within `connect_timeout`.
    #[error("connecting to the app timed out")]
    ConnectTimeout,
    /// The app closed or reset the connection before answering.
    #[error("the app connection failed before a response: {0}")]
    Closed(std::io::Error),
    /// The app's response head is not HTTP/1.x as RFC 9112 has it.
    #[error("the app's response is invalid: {0}")]
    InvalidResponse(&'static str),
    /// The pooled client failed (requests with a body, HTTP/2 clients, upgrades).
    #[error("{0}")]
    Pool(hyper_util::client::legacy::Error),
    /// The client's request body broke off (the client hung up or sent a
    /// malformed chunk) before the app answered: read whole before sending,
    /// or streaming through the pool.
    #[error("the client's request body broke off: {0}")]
    ClientBody(Box<dyn std::error::Error + Send + Sync>),
}

impl UpstreamError {
    /// The `reason` label of `sidewatch_proxy_upstream_errors_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::ConnectTimeout => "connect_timeout",
            Self::Closed(_) => "closed",
            Self::InvalidResponse(_) => "invalid_response",
            Self::Pool(error) => pool_reason(error),
            Self::ClientBody(_) => "client_body",
        }
    }
}

/// An HTTP/1.1 client connection's own connection to the app, taken from
/// the loop's idle connections or opened at its first request without a
/// body, and kept there (within `limits`) once the client connection closes.
#[derive(Debug)]
pub struct Pinned {
    /// The idle connection and the upstream it goes to (a reload may change
    /// the upstream; the next request then opens a connection to the new
    /// one). Empty while a response streams: its body holds the connection
    /// and puts it back once the response has ended cleanly.
    slot: Mutex<Option<(Authority, AppConnection)>>,
    /// Coalesces the writes of the connections it opens.
    coalescer: Coalescer,
    /// The event loop's idle connections: where the first request looks
    /// before connecting, and where the connection goes at the end.
    idle: IdleConnections,
    /// How many idle connections the loop keeps, and for how long.
    limits: IdleLimits,
}

impl Pinned {
    /// No connection yet; the ones opened will coalesce writes through
    /// `coalescer`; `idle` is the loop's set of idle connections.
    pub fn new(coalescer: Coalescer, idle: IdleConnections, limits: IdleLimits) -> Self {
        Self {
            slot: Mutex::new(None),
            coalescer,
            idle,
            limits,
        }
    }

    /// Sends the request `head` with its whole `body` (empty for a
    /// bodiless request) to `upstream` on the pinned connection, opening
    /// one when there is none (or the app closed it), and returns the
    /// response once its head has arrived. An idempotent request (RFC 9110
    /// §9.2.2) whose reused connection failed before any byte of response
    /// is sent once more on a new connection; any other request that may
    /// have reached the app is never repeated, and checks a reused
    /// connection for a close from the app first, however briefly idle.
    pub async fn send(
        self: &Arc<Self>,
        upstream: &Authority,
        connect_timeout: Duration,
        head: &request::Parts,
        body: &[u8],
    ) -> Result<Response<AppBody>, UpstreamError> {
        let check_now = !head.method.is_idempotent();
        let reused = self
            .take(upstream, check_now)
            .or_else(|| self.idle.take(upstream, check_now));
        if let Some(mut connection) = reused {
            match connection.exchange(head, body).await {
                Ok(response) => return Ok(self.respond(upstream, connection, response)),
                Err(Failure {
                    answered: false,
                    error: UpstreamError::Closed(_),
                }) if head.method.is_idempotent() => {}
                Err(failure) => return Err(failure.error),
            }
        }
        let mut connection =
            AppConnection::connect(upstream, connect_timeout, &self.coalescer).await?;
        let response = connection
            .exchange(head, body)
            .await
            .map_err(|failure| failure.error)?;
        Ok(self.respond(upstream, connection, response))
    }

    /// The response whose head `connection` just read, its body reading on
    /// from `connection`.
    fn respond(
        self: &Arc<Self>,
        upstream: &Authority,
        connection: AppConnection,
        head: head::ResponseHead,
    ) -> Response<AppBody> {
        let body = AppBody::new(
            connection,
            head.framing,
            head.reusable,
            (self.clone(), upstream.clone()),
        );
        let mut response = Response::new(body);
        *response.status_mut() = head.status;
        *response.headers_mut() = head.headers;
        response
    }

    /// The idle connection to `upstream`, when there is one the app has not
    /// closed (`check_now`: see [`AppConnection::still_open`]).
    fn take(&self, upstream: &Authority, check_now: bool) -> Option<AppConnection> {
        let taken = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        taken
            .filter(|(to, _)| to == upstream)
            .map(|(_, connection)| connection)
            .filter(|connection| connection.still_open(check_now))
    }

    /// Keeps `connection` (its last response ended cleanly) for the next request.
    fn put(&self, upstream: Authority, connection: AppConnection) {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some((upstream, connection));
    }
}

impl Drop for Pinned {
    /// The client connection has closed (and no response body of it is
    /// left): its idle app connection goes to the loop's set.
    fn drop(&mut self) {
        let slot = self
            .slot
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((upstream, connection)) = slot {
            self.idle.keep(upstream, connection, self.limits);
        }
    }
}

/// The `reason` of a failed pooled call.
fn pool_reason(error: &hyper_util::client::legacy::Error) -> &'static str {
    if error.is_connect() {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::TimedOut {
                    return "connect_timeout";
                }
            }
            source = e.source();
        }
        "connect"
    } else {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = source {
            if let Some(hyper) = e.downcast_ref::<hyper::Error>() {
                if hyper.is_parse() || hyper.is_parse_status() {
                    return "invalid_response";
                }
            }
            source = e.source();
        }
        "closed"
    }
}
