//! The accept step every listener of sidewatch shares (the admin server,
//! the actions listener, the proxy): the next connection, or `None` once
//! the stop token is cancelled. A failed accept — typically `EMFILE` when
//! the process is out of file descriptors — is logged and retried after a
//! short pause instead of spinning on a listener that stays readable.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The pause after a failed accept.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Waits for the next connection on `listener`; `None` when `stop` is
/// cancelled. `what` names the listener in the warning a failure logs.
pub async fn next_or_stop(
    listener: &TcpListener,
    stop: &CancellationToken,
    what: &str,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => return Some(accepted),
                Err(error) => {
                    tracing::warn!(%error, listener = what, "accept failed");
                    tokio::select! {
                        () = tokio::time::sleep(ACCEPT_RETRY) => {}
                        () = stop.cancelled() => return None,
                    }
                }
            },
            () = stop.cancelled() => return None,
        }
    }
}
