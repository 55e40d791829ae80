//! Hot reload: SIGHUP, `POST /-/reload` (see `admin::actions`) and, with
//! `reload.watch_config`, a changed file all ask the one [`Reloader`] task
//! to reload. It loads and validates the whole file first; an invalid file
//! (broken, half-written, a directory, unreadable) changes nothing and is
//! reported in `/status` and `sidewatch_config_last_reload_successful 0`.
//! A valid one is compared section by section with the running config, and
//! only the components whose sections changed are rebuilt ([`live`]).
//! Sections that need a restart ([`diff::RESTART_ONLY`], the proxy's
//! listener) make the reload fail with the keys named; nothing is applied.

pub mod diff;
pub mod live;
pub mod watch;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::admin::StatusBoard;
use crate::config::Config;
use live::Live;

/// Where the configuration comes from, to read it again on reload.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// The file (`--config`); `None` = defaults plus environment.
    pub path: Option<PathBuf>,
    /// The environment overrides (`SIDEWATCH__…`) as at start.
    pub env: HashMap<String, String>,
}

/// What a successful reload did.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    /// The top-level sections that differ from the running configuration.
    pub changed: Vec<String>,
    /// The components rebuilt (`collectors`, `log_rules`, `log_pipeline`, `proxy`).
    pub rebuilt: Vec<&'static str>,
}

/// Why a reload did not happen; the running configuration is kept.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReloadError {
    /// The file is unreadable or invalid, or a change needs a restart.
    #[error("{0}")]
    Rejected(String),
    /// Building a component of the valid new configuration failed.
    #[error("{0}")]
    Failed(String),
    /// The reloader is not running (sidewatch is stopping).
    #[error("sidewatch is stopping")]
    Stopping,
}

struct Request {
    trigger: &'static str,
    reply: oneshot::Sender<Result<ReloadReport, ReloadError>>,
}

/// Asks the reloader to reload. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ReloadHandle {
    tx: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("trigger", &self.trigger)
            .finish()
    }
}

impl ReloadHandle {
    /// Reloads (waiting for any reload in progress first) and reports the
    /// outcome. `trigger` names who asked (`sighup`, `http`, `watch`).
    pub async fn reload(&self, trigger: &'static str) -> Result<ReloadReport, ReloadError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request { trigger, reply })
            .await
            .map_err(|_| ReloadError::Stopping)?;
        answer.await.map_err(|_| ReloadError::Stopping)?
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// `sidewatch_config_*`.
#[derive(Debug, Clone, Default)]
struct ReloadMetrics {
    successful: Gauge,
    success_time: Gauge<f64, AtomicU64>,
    reloads: Family<ResultLabel, Counter>,
}

impl ReloadMetrics {
    fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "sidewatch_config_last_reload_successful",
            "Whether the last configuration reload succeeded (1) or failed (0); 1 at start",
            metrics.successful.clone(),
        );
        registry.register(
            "sidewatch_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully (at start or by a reload), unix seconds",
            metrics.success_time.clone(),
        );
        registry.register(
            "sidewatch_config_reloads",
            "Configuration reloads attempted, by result (success, failure)",
            metrics.reloads.clone(),
        );
        for result in ["success", "failure"] {
            let _ = metrics.reloads.get_or_create(&ResultLabel { result });
        }
        metrics.successful.set(1);
        metrics.success_time.set(unix_seconds(SystemTime::now()));
        metrics
    }
}

/// The `config` section of `/status`.
#[derive(Debug, Clone, Serialize)]
struct ConfigStatus {
    file: Option<String>,
    watch: bool,
    loaded_at: String,
    last_reload: Option<LastReload>,
}

#[derive(Debug, Clone, Serialize)]
struct LastReload {
    at: String,
    trigger: &'static str,
    success: bool,
    error: Option<String>,
    changed: Vec<String>,
    rebuilt: Vec<&'static str>,
}

/// The configuration in force, shared with the shutdown path.
pub type CurrentConfig = Arc<Mutex<Config>>;

/// The task that owns the running components and applies reloads.
pub struct Reloader {
    live: Live,
    config: CurrentConfig,
    source: Option<ConfigSource>,
    status: StatusBoard,
    metrics: ReloadMetrics,
    state: ConfigStatus,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("source", &self.source)
            .finish()
    }
}

impl Reloader {
    /// The reloader over `live`, registering `sidewatch_config_*` on
    /// `registry`. Without a `source` every reload is refused.
    pub fn new(
        live: Live,
        config: CurrentConfig,
        source: Option<ConfigSource>,
        status: StatusBoard,
        registry: &mut Registry,
    ) -> Self {
        let watch = lock(&config).reload.watch_config;
        let state = ConfigStatus {
            file: source
                .as_ref()
                .and_then(|s| s.path.as_ref())
                .map(|p| p.display().to_string()),
            watch,
            loaded_at: now_rfc3339(),
            last_reload: None,
        };
        let reloader = Self {
            live,
            config,
            source,
            status,
            metrics: ReloadMetrics::register(registry),
            state,
        };
        reloader.publish();
        reloader
    }

    /// Serves reload requests until `stop`; returns the handle to ask with.
    pub fn spawn(
        mut self,
        tasks: &tokio_util::task::TaskTracker,
        stop: CancellationToken,
    ) -> ReloadHandle {
        let (tx, mut rx) = mpsc::channel::<Request>(8);
        tasks.spawn(async move {
            loop {
                let request = tokio::select! {
                    request = rx.recv() => match request {
                        Some(request) => request,
                        None => return,
                    },
                    () = stop.cancelled() => return,
                };
                let outcome = self.reload(request.trigger).await;
                let _ = request.reply.send(outcome);
            }
        });
        ReloadHandle { tx }
    }

    async fn reload(&mut self, trigger: &'static str) -> Result<ReloadReport, ReloadError> {
        let outcome = self.try_reload().await;
        let (changed, rebuilt, error) = match &outcome {
            Ok(report) => (report.changed.clone(), report.rebuilt.clone(), None),
            Err(error) => (Vec::new(), Vec::new(), Some(error.to_string())),
        };
        let success = error.is_none();
        match &error {
            None => tracing::info!(trigger, ?changed, ?rebuilt, "configuration reloaded"),
            Some(error) => tracing::error!(
                trigger,
                %error,
                "configuration reload failed; the running configuration is kept"
            ),
        }
        let result = if success { "success" } else { "failure" };
        self.metrics
            .reloads
            .get_or_create(&ResultLabel { result })
            .inc();
        self.metrics.successful.set(i64::from(success));
        if success {
            self.metrics
                .success_time
                .set(unix_seconds(SystemTime::now()));
            self.state.loaded_at = now_rfc3339();
        }
        self.state.last_reload = Some(LastReload {
            at: now_rfc3339(),
            trigger,
            success,
            error,
            changed,
            rebuilt,
        });
        self.publish();
        outcome
    }

    async fn try_reload(&mut self) -> Result<ReloadReport, ReloadError> {
        let Some(source) = &self.source else {
            return Err(ReloadError::Rejected(
                "reload needs sidewatch started with a configuration (--config)".into(),
            ));
        };
        let new = crate::config::load(source.path.as_deref(), &source.env)
            .map_err(|errors| ReloadError::Rejected(errors.to_string()))?;
        let old = lock(&self.config).clone();
        let changed = diff::changed_sections(&old, &new);
        let restart = diff::needs_restart(&changed, &old, &new);
        if !restart.is_empty() {
            return Err(ReloadError::Rejected(format!(
                "changed keys need a restart: {}; nothing was applied",
                restart.join(", ")
            )));
        }
        let rebuilt = self
            .live
            .apply(&old, &new, &changed)
            .await
            .map_err(|e| ReloadError::Failed(e.to_string()))?;
        *lock(&self.config) = new;
        Ok(ReloadReport {
            changed: changed.into_iter().collect(),
            rebuilt,
        })
    }

    fn publish(&self) {
        match serde_json::to_value(&self.state) {
            Ok(value) => self.status.set_config(value),
            Err(error) => tracing::warn!(%error, "cannot encode the config status"),
        }
    }
}

/// Installs the SIGHUP handler now (so a SIGHUP right after start does not
/// take the default action, which ends the process) and returns the task
/// that reloads on every SIGHUP until `stop`.
pub fn reload_on_hangup(
    handle: ReloadHandle,
    stop: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    let hangup = {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(hangup) => Some(hangup),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; reload by SIGHUP is off");
                None
            }
        }
    };
    async move {
        #[cfg(unix)]
        if let Some(mut hangup) = hangup {
            loop {
                tokio::select! {
                    received = hangup.recv() => {
                        if received.is_none() {
                            return;
                        }
                        tracing::info!("SIGHUP: reloading the configuration");
                        // The outcome is logged and shown in /status by the reloader.
                        let _ = handle.reload("sighup").await;
                    }
                    () = stop.cancelled() => return,
                }
            }
        }
        let _ = handle;
        stop.cancelled().await;
    }
}

fn lock(config: &CurrentConfig) -> std::sync::MutexGuard<'_, Config> {
    config.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}
