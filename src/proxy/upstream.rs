//! Reaching the app. An HTTP/1.1 client connection gets an app connection
//! of its own ([`Pinned`]): its requests come one at a time, so each reuses
//! that connection with no pool lookup, no pool lock and no task spawned to
//! hand the connection back. HTTP/2 clients (many requests at once) and
//! upgrades (the app connection is handed over to the tunnel) go through
//! the shared keep-alive pool instead.

use std::sync::Mutex;
use std::time::Duration;

use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::body::CountingBody;

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
    #[error("the app connection failed: {0}")]
    Http(hyper::Error),
    /// The pooled client failed (HTTP/2 clients, upgrades).
    #[error("{0}")]
    Pool(hyper_util::client::legacy::Error),
}

impl UpstreamError {
    /// The `reason` label of `sidewatch_proxy_upstream_errors_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::ConnectTimeout => "connect_timeout",
            Self::Http(_) => "closed",
            Self::Pool(error) => pool_reason(error),
        }
    }
}

/// An HTTP/1.1 client connection's own connection to the app, opened at its
/// first request and closed with it.
#[derive(Debug, Default)]
pub struct Pinned {
    /// The idle connection and the upstream it goes to (a reload may change
    /// the upstream; the next request then opens a connection to the new one).
    slot: Mutex<Option<(Authority, SendRequest<CountingBody>)>>,
}

impl Pinned {
    /// Sends `request` to `upstream` on the pinned connection, opening one
    /// when there is none (or it was closed). A request the old connection
    /// could not even start to send (the app had closed it) is sent again on
    /// a new one; a request that may have reached the app is never repeated.
    pub async fn send(
        &self,
        upstream: &Authority,
        connect_timeout: Duration,
        mut request: Request<CountingBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        if let Some(mut sender) = self.take(upstream) {
            // Ready once the previous response has been read to its end.
            if sender.ready().await.is_ok() {
                match sender.try_send_request(request).await {
                    Ok(response) => {
                        self.put(upstream, sender);
                        return Ok(response);
                    }
                    Err(mut error) => match error.take_message() {
                        Some(unsent) => request = unsent,
                        None => return Err(UpstreamError::Http(error.into_error())),
                    },
                }
            }
        }
        let mut sender = connect(upstream, connect_timeout).await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(UpstreamError::Http)?;
        self.put(upstream, sender);
        Ok(response)
    }

    fn take(&self, upstream: &Authority) -> Option<SendRequest<CountingBody>> {
        let taken = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        taken
            .filter(|(to, sender)| to == upstream && !sender.is_closed())
            .map(|(_, sender)| sender)
    }

    fn put(&self, upstream: &Authority, sender: SendRequest<CountingBody>) {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some((upstream.clone(), sender));
    }
}

/// Opens an HTTP/1.1 connection to `upstream`; its connection task ends
/// when the last sender is dropped or the app closes it.
async fn connect(
    upstream: &Authority,
    timeout: Duration,
) -> Result<SendRequest<CountingBody>, UpstreamError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(upstream.as_str())).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::TimedOut => {
            return Err(UpstreamError::ConnectTimeout)
        }
        Ok(Err(error)) => return Err(UpstreamError::Connect(error)),
        Err(_) => return Err(UpstreamError::ConnectTimeout),
    };
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(UpstreamError::Http)?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "proxy: app connection ended with an error");
        }
    });
    Ok(sender)
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
        "closed"
    }
}
