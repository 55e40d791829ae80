//! The state behind `GET /status`: every collector and target with its last
//! result, last error and last success time. Nothing here may hold a secret;
//! collectors write only masked URLs and secret-free messages.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// Shared, cheap-to-clone board that collectors report to.
#[derive(Debug, Clone)]
pub struct StatusBoard {
    inner: Arc<Mutex<Board>>,
}

#[derive(Debug)]
struct Board {
    started: SystemTime,
    collectors: BTreeMap<String, CollectorStatus>,
    sinks: BTreeMap<String, SinkStatus>,
    config: Option<serde_json::Value>,
    otlp: BTreeMap<&'static str, ExportStatus>,
}

/// What `/status` shows for one OTLP signal (`metrics`, `logs`, `traces`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportStatus {
    /// Where it is sent (credentials masked).
    pub endpoint: String,
    /// Whether the last export was accepted; `None` before the first.
    pub ok: Option<bool>,
    /// Export requests so far.
    pub exports: u64,
    /// Export requests that were not accepted (unreachable, TLS, error answer).
    pub failures: u64,
    /// When an export was last accepted (RFC 3339).
    pub last_success_at: Option<String>,
    /// The last failure, free of secrets, kept after recovery.
    pub last_error: Option<String>,
    /// When it happened (RFC 3339).
    pub last_error_at: Option<String>,
    /// Items the receiver rejected in partial-success answers, since start.
    pub rejected_items: u64,
    /// The receiver's message with the last partial success.
    pub last_partial_error: Option<String>,
}

/// What one OTLP export came to, for [`StatusBoard::otlp_export`].
#[derive(Debug)]
pub enum ExportResult {
    /// Accepted; `rejected` items were refused in a partial success.
    Accepted {
        /// Items the receiver rejected.
        rejected: u64,
        /// The receiver's message about them.
        message: String,
    },
    /// Not accepted.
    Failed(String),
}

/// What `/status` shows for one collector.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CollectorStatus {
    /// The kind of collector (`health`, `process`, ...).
    pub kind: String,
    /// Result of the last run; `None` before the first.
    pub up: Option<bool>,
    /// Set when the last run succeeded only in part (e.g. missing privileges).
    pub degraded: Option<String>,
    /// Number of runs so far.
    pub runs: u64,
    /// When the last run finished (RFC 3339).
    pub last_run: Option<String>,
    /// When a run last succeeded (RFC 3339).
    pub last_success: Option<String>,
    /// The last error's message (secret-free), kept after recovery.
    pub last_error: Option<String>,
    /// The last error's reason label.
    pub last_error_reason: Option<String>,
    /// Duration of the last run in seconds.
    pub last_duration_seconds: Option<f64>,
    /// Collector-specific detail (e.g. per-check results, the failing key).
    pub details: serde_json::Value,
}

/// The `/status` document.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    /// sidewatch's version.
    pub version: &'static str,
    /// The git revision it was built from.
    pub revision: &'static str,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Whether `/readyz` answers ready.
    pub ready: bool,
    /// Components sidewatch is still waiting for.
    pub pending: Vec<String>,
    /// Every collector by name.
    pub collectors: BTreeMap<String, CollectorStatus>,
    /// Every log sink by name.
    pub sinks: BTreeMap<String, SinkStatus>,
    /// The configuration file and the last reload (see `crate::reload`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    /// Every OTLP signal exported, by signal.
    pub otlp: BTreeMap<&'static str, ExportStatus>,
}

impl Default for StatusBoard {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Board {
                started: SystemTime::now(),
                collectors: BTreeMap::new(),
                sinks: BTreeMap::new(),
                config: None,
                otlp: BTreeMap::new(),
            })),
        }
    }
}

impl StatusBoard {
    /// Adds a collector before its first run; one rebuilt by a reload
    /// keeps its history (runs, last error, last success).
    pub fn register(&self, name: &str, kind: &str) {
        let mut board = self.lock();
        let status = board.collectors.entry(name.to_owned()).or_default();
        status.kind = kind.to_owned();
    }

    /// Removes a collector (removed by a reload).
    pub fn remove(&self, name: &str) {
        self.lock().collectors.remove(name);
    }

    /// Records one run's outcome.
    pub fn record(&self, name: &str, duration: Duration, outcome: RunOutcome) {
        let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let mut board = self.lock();
        let status = board.collectors.entry(name.to_owned()).or_default();
        status.runs += 1;
        status.last_run = Some(now.clone());
        status.last_duration_seconds = Some(duration.as_secs_f64());
        match outcome {
            RunOutcome::Ok { degraded, details } => {
                status.up = Some(true);
                status.degraded = degraded;
                status.last_success = Some(now);
                status.details = details;
            }
            RunOutcome::Failed {
                reason,
                message,
                details,
            } => {
                status.up = Some(false);
                status.degraded = None;
                status.last_error = Some(message);
                status.last_error_reason = Some(reason.to_owned());
                status.details = details;
            }
        }
    }

    /// One collector's status (for tests).
    pub fn get(&self, name: &str) -> Option<CollectorStatus> {
        self.lock().collectors.get(name).cloned()
    }

    /// The whole document, given the readiness state.
    pub fn report(&self, ready: bool, pending: Vec<String>) -> StatusReport {
        let board = self.lock();
        StatusReport {
            version: crate::telemetry::VERSION,
            revision: crate::telemetry::REVISION,
            uptime_seconds: board.started.elapsed().unwrap_or_default().as_secs(),
            ready,
            pending,
            collectors: board.collectors.clone(),
            sinks: board.sinks.clone(),
            config: board.config.clone(),
            otlp: board.otlp.clone(),
        }
    }

    /// Sets the `config` section (file, last reload and its outcome).
    pub fn set_config(&self, config: serde_json::Value) {
        self.lock().config = Some(config);
    }

    /// Adds a log sink (state `ok` until a write fails).
    pub fn register_sink(&self, name: &str) {
        self.lock()
            .sinks
            .insert(name.to_owned(), SinkStatus::default());
    }

    /// Records a failed write of sink `name` that is being retried.
    pub fn sink_failed(&self, name: &str, reason: &'static str, message: String) {
        let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let mut board = self.lock();
        let status = board.sinks.entry(name.to_owned()).or_default();
        status.retrying = true;
        status.failures += 1;
        status.last_error = Some(message);
        status.last_error_reason = Some(reason);
        status.last_error_at = Some(now);
    }

    /// Records that sink `name` writes again after failures.
    pub fn sink_recovered(&self, name: &str) {
        let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let mut board = self.lock();
        let status = board.sinks.entry(name.to_owned()).or_default();
        status.retrying = false;
        status.recovered_at = Some(now);
    }

    /// Adds an OTLP signal sent to `endpoint` (masked) before its first export.
    pub fn register_otlp(&self, signal: &'static str, endpoint: String) {
        self.lock().otlp.insert(
            signal,
            ExportStatus {
                endpoint,
                ..ExportStatus::default()
            },
        );
    }

    /// Records one OTLP export of `signal`.
    pub fn otlp_export(&self, signal: &'static str, result: ExportResult) {
        let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let mut board = self.lock();
        let status = board.otlp.entry(signal).or_default();
        status.exports += 1;
        match result {
            ExportResult::Accepted { rejected, message } => {
                status.ok = Some(true);
                status.last_success_at = Some(now);
                if rejected > 0 || !message.is_empty() {
                    status.rejected_items += rejected;
                    status.last_partial_error = Some(message);
                }
            }
            ExportResult::Failed(message) => {
                status.ok = Some(false);
                status.failures += 1;
                status.last_error = Some(message);
                status.last_error_at = Some(now);
            }
        }
    }

    /// One OTLP signal's status (for tests).
    pub fn otlp(&self, signal: &str) -> Option<ExportStatus> {
        self.lock().otlp.get(signal).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Board> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One log sink as `/status` shows it. Updated only when a write fails and
/// when writes succeed again, never per batch.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SinkStatus {
    /// A write failed and is being retried (the sources are held back).
    pub retrying: bool,
    /// Failed writes since start.
    pub failures: u64,
    /// The last failure, free of secrets.
    pub last_error: Option<String>,
    /// Its `reason` label (as in `sidewatch_sink_retries_total`).
    pub last_error_reason: Option<&'static str>,
    /// When it happened (RFC 3339).
    pub last_error_at: Option<String>,
    /// When writes last succeeded again after failures (RFC 3339).
    pub recovered_at: Option<String>,
}

/// The outcome of one collector run, as `/status` records it.
#[derive(Debug)]
pub enum RunOutcome {
    /// The run succeeded, possibly degraded.
    Ok {
        /// Why the result is partial, if it is.
        degraded: Option<String>,
        /// Collector-specific detail.
        details: serde_json::Value,
    },
    /// The run failed.
    Failed {
        /// The `reason` label of the failure.
        reason: &'static str,
        /// What went wrong, free of secrets.
        message: String,
        /// Collector-specific detail.
        details: serde_json::Value,
    },
}
