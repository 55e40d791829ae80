//! One shutdown path: SIGTERM or SIGINT asks sidewatch to stop; it keeps
//! working until the app is gone (or the grace period passes), then stops
//! intake and flushes. A second signal aborts at once.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Exit code after a second signal aborted the drain (128 + SIGINT).
pub const ABORT_EXIT_CODE: i32 = 130;
/// How often the app's presence is checked while draining.
const APP_POLL: Duration = Duration::from_millis(250);

/// A cloneable request to shut down. Tests trigger it directly; the binary
/// triggers it from signals via [`listen_for_signals`].
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    requested: CancellationToken,
}

impl Shutdown {
    /// A shutdown that has not been requested.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests shutdown.
    pub fn trigger(&self) {
        self.requested.cancel();
    }

    /// Resolves once shutdown is requested.
    pub async fn requested(&self) {
        self.requested.cancelled().await;
    }

    /// Whether shutdown has been requested.
    pub fn is_requested(&self) -> bool {
        self.requested.is_cancelled()
    }
}

/// Triggers `shutdown` on the first SIGTERM/SIGINT and exits the process with
/// [`ABORT_EXIT_CODE`] on the second.
pub async fn listen_for_signals(shutdown: Shutdown) {
    let mut received = 0;
    loop {
        let signal = next_signal().await;
        received += 1;
        if received == 1 {
            tracing::info!(signal, "shutdown requested; draining (send again to abort)");
            shutdown.trigger();
        } else {
            tracing::warn!(
                signal,
                "second signal: aborting without finishing the drain"
            );
            #[allow(clippy::disallowed_methods)]
            // the one place allowed to exit: a second signal aborts
            std::process::exit(ABORT_EXIT_CODE);
        }
    }
}

#[cfg(unix)]
async fn next_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

#[cfg(not(unix))]
async fn next_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "ctrl-c"
}

/// After shutdown was requested: returns once the app is gone or the grace
/// period has passed. The app is "gone" when `shutdown.app_addr` (default:
/// the proxy's upstream, when `[proxy]` is on) refuses connections or the
/// `process.app_process_name` process has exited; when neither is
/// configured there is nothing to wait for.
pub async fn wait_for_app(config: &Config) {
    let addr = config.shutdown.app_addr.or_else(|| {
        config
            .proxy
            .is_enabled()
            .then(|| config.proxy.upstream.parse().ok())
            .flatten()
    });
    let process = config.process.app_process_name.clone();
    if addr.is_none() && process.is_none() {
        return;
    }
    let deadline = Instant::now() + config.shutdown.grace_period;
    while Instant::now() < deadline {
        if app_gone(addr, process.as_deref()).await {
            tracing::info!("app is gone; stopping");
            return;
        }
        tokio::time::sleep(APP_POLL).await;
    }
    tracing::info!(grace_period = ?config.shutdown.grace_period, "grace period over; stopping");
}

async fn app_gone(addr: Option<SocketAddr>, process: Option<&str>) -> bool {
    if let Some(addr) = addr {
        let connect = tokio::time::timeout(APP_POLL, tokio::net::TcpStream::connect(addr)).await;
        if matches!(connect, Ok(Err(_))) {
            return true;
        }
    }
    match process {
        Some(name) => !process_running(name),
        None => false,
    }
}

fn process_running(name: &str) -> bool {
    let mut system = sysinfo::System::new();
    system.refresh_processes_specifics(
        sysinfo::ProcessesToUpdate::All,
        true,
        sysinfo::ProcessRefreshKind::nothing().without_tasks(),
    );
    let own = sysinfo::Pid::from_u32(std::process::id());
    system
        .processes()
        .values()
        .any(|p| p.pid() != own && p.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_the_app_port_to_close() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut config = Config::default();
        config.shutdown.app_addr = Some(listener.local_addr().unwrap());
        config.shutdown.grace_period = Duration::from_secs(10);
        let started = Instant::now();
        let closer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(listener);
        });
        wait_for_app(&config).await;
        closer.await.unwrap();
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
    }

    #[tokio::test]
    async fn grace_period_bounds_the_wait() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut config = Config::default();
        config.shutdown.app_addr = Some(listener.local_addr().unwrap());
        config.shutdown.grace_period = Duration::from_millis(400);
        let started = Instant::now();
        wait_for_app(&config).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(listener);
    }
}
