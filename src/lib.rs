//! sidewatch: an observability sidecar. One process probes the app's health,
//! collects process and dependency stats, and serves them on `/metrics`.
//!
//! [`run`] drives the whole thing in-process, so tests can start it with a
//! config and a [`Shutdown`] they control.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod accept;
pub mod admin;
pub mod app;
pub mod backoff;
pub mod collect;
pub mod config;
pub mod demo;
pub mod heap;
pub mod http_client;
pub mod inject;
pub mod logs;
pub mod otlp;
pub mod proxy;
pub mod reload;
pub mod shutdown;
pub mod slo;
pub mod statsd;
pub mod telemetry;

pub use app::{start, start_with, RunError, Running};

/// Exit code for invalid configuration, input or unusable resources.
pub const EXIT_CONFIG: u8 = 2;
pub use config::Config;
pub use shutdown::Shutdown;

/// Runs sidewatch with `config` until `shutdown` is requested and the drain is done.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), RunError> {
    start(config, shutdown).await?.wait().await
}

/// [`run`], reloadable from `source` (SIGHUP, `POST /-/reload`, `reload.watch_config`).
pub async fn run_with(
    config: Config,
    source: reload::ConfigSource,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    start_with(config, Some(source), shutdown)
        .await?
        .wait()
        .await
}
