//! Collectors: components that run on an interval, read something (a health
//! endpoint, a database, `/proc`) and publish what they read as metrics.
//!
//! Each collector implements [`Collector`]; [`scheduler::run`] drives it with
//! jitter and a per-run timeout, and records `sidewatch_collector_*` metrics
//! and its `/status` entry. A collector publishes into metric handles it
//! registered at build time, so a scrape reads memory and never waits on the
//! network.

pub mod health;
pub mod pool;
pub mod postgres;
pub mod redis;
pub mod scheduler;
mod tls;

use std::future::Future;
use std::time::Duration;

/// One kind of periodic measurement.
pub trait Collector: Send + 'static {
    /// Unique name, used as the `collector` label and the `/status` key
    /// (e.g. `health/app`, `process`).
    fn name(&self) -> &str;
    /// The kind of collector, shown in `/status` (e.g. `health`).
    fn kind(&self) -> &'static str;
    /// Time between runs.
    fn interval(&self) -> Duration;
    /// Upper bound for one run; the scheduler abandons a run that exceeds it.
    fn timeout(&self) -> Duration;
    /// Runs once: reads its source and publishes metrics.
    fn collect(&mut self) -> impl Future<Output = Result<Collected, CollectError>> + Send;
}

/// A successful run's report for `/status`.
#[derive(Debug, Default)]
pub struct Collected {
    /// Why the result is partial, if it is (e.g. missing privileges).
    pub degraded: Option<String>,
    /// Collector-specific detail.
    pub details: serde_json::Value,
}

/// A failed run: the `reason` label and a message free of secrets.
#[derive(Debug, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct CollectError {
    /// Bounded label value for `sidewatch_collector_errors_total{reason}`.
    pub reason: &'static str,
    /// What went wrong, for `/status` and logs; must not contain secrets.
    pub message: String,
    /// Collector-specific detail (e.g. the failing key).
    pub details: serde_json::Value,
}

impl CollectError {
    /// A failure with no extra detail.
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            details: serde_json::Value::Null,
        }
    }
}
