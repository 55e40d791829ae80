//! Builds every component from the config, binds every listener before
//! anything starts, spawns the tasks under one supervisor and shuts them down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use prometheus_client::registry::Registry;

use crate::admin::{self, AdminState, Guard, Readiness, StatusBoard};
use crate::config::{Config, PodInfo};
use crate::otlp::metrics::MetricsExporter;
use crate::otlp::traces::SpanQueue;
use crate::otlp::Otlp;
use crate::proxy::{Proxy, ProxyError, ProxyMetrics};
use crate::reload::live::{part, AppContext, BuiltCollectors, CollectorFamilies, Live, Spawner};
use crate::reload::{self, ConfigSource, CurrentConfig, ReloadHandle, Reloader};
use crate::shutdown::{self, Shutdown};
use crate::statsd::StatsdServer;
use crate::telemetry::parts::Registries;
use crate::telemetry::route::RouteNormalizer;
use crate::telemetry::{self, process::ProcessCollector};

/// How long tasks get to finish after they are told to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why sidewatch could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A listener could not bind (port in use, permission).
    #[error("cannot bind `{key}` ({addr}): {source}")]
    Bind {
        /// The config key of the address.
        key: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A component could not be built from a config that passed validation.
    #[error("`{key}`: {message}")]
    Build {
        /// The config key concerned.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl RunError {
    /// The process exit code: 2 for configuration and resource problems.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Bind { .. } | RunError::Build { .. } => 2,
        }
    }
}

/// A started sidewatch: listeners bound, tasks running.
#[derive(Debug)]
pub struct Running {
    config: CurrentConfig,
    shutdown: Shutdown,
    admin_addr: SocketAddr,
    actions_addr: Option<SocketAddr>,
    statsd_addr: Option<SocketAddr>,
    proxy_addr: Option<SocketAddr>,
    status: StatusBoard,
    reload: ReloadHandle,
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// Builds and starts every component. Nothing is spawned unless everything
/// could be built and bound. Reload is refused (no file to read again).
pub async fn start(config: Config, shutdown: Shutdown) -> Result<Running, RunError> {
    start_with(config, None, shutdown).await
}

/// [`start`] with where the configuration came from, so SIGHUP,
/// `POST /-/reload` and `reload.watch_config` can load it again.
pub async fn start_with(
    config: Config,
    source: Option<ConfigSource>,
    shutdown: Shutdown,
) -> Result<Running, RunError> {
    let registries = Registries::new();
    let mut base = telemetry::new_registry();
    let readiness = Readiness::default();
    let status = StatusBoard::default();
    let admin_latch = readiness.latch("admin");
    let collectors_latch = readiness.latch("collectors");

    let admin_listener = bind(config.admin.listen, "admin.listen").await?;
    let admin_addr = admin_listener.local_addr().unwrap_or(config.admin.listen);
    let actions_listener = if config.admin.actions_enabled {
        Some(bind(config.admin.actions_listen, "admin.actions_listen").await?)
    } else {
        None
    };
    let actions_addr = actions_listener.as_ref().and_then(|l| l.local_addr().ok());

    let security = admin::security::SecurityMetrics::register(&mut base);
    let admin_guard = Guard::build(
        "admin",
        "admin",
        config.admin.tls.as_ref(),
        &config.admin.auth,
        &config.admin.limits,
        &security,
    )
    .map_err(|e| RunError::Build {
        key: e.key,
        message: e.message,
    })?;
    let admin_tls = admin_guard.is_tls();
    // The actions listener takes the admin server's TLS, credentials and
    // limits, counted under its own name.
    let actions_guard = actions_listener
        .is_some()
        .then(|| {
            let (tls, auth, limits) = (&config.admin.tls, &config.admin.auth, &config.admin.limits);
            Guard::build("admin", "actions", tls.as_ref(), auth, limits, &security)
        })
        .transpose()
        .map_err(|e| RunError::Build {
            key: e.key,
            message: e.message,
        })?;

    let families = CollectorFamilies::register(&mut base);
    let pod = PodInfo::from_env(&config.pod);
    let collectors = BuiltCollectors::build(&config, &pod, &families)?;
    let process = config
        .process
        .enabled
        .then(|| ProcessCollector::build(&config.process, &mut base));
    registries.set(part::BASE, base);
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let mut live = Live::new(
        AppContext {
            registries: registries.clone(),
            status: status.clone(),
            pod: pod.clone(),
            stop: stop.clone(),
            tasks: tasks.clone(),
            shutdown: shutdown.clone(),
        },
        families.clone(),
    );
    if !config.log_metrics.is_empty() || config.statsd.enabled || config.proxy.is_enabled() {
        live.overflow();
    }
    let mut otlp_registry = Registry::default();
    let otlp =
        Otlp::build(&config, &pod, &mut otlp_registry, &status).map_err(|e| RunError::Build {
            key: e.key.into(),
            message: e.message,
        })?;
    registries.set(part::OTLP, otlp_registry);
    live.set_otlp(otlp.clone());
    let (rules, rules_registry) = live.build_rules(&config)?;
    live.install_rules(rules, rules_registry);
    let access = live.access_log(&config);
    let pipeline = live.build_pipeline(&config, access)?;
    let pipeline_latch = pipeline.is_some().then(|| readiness.latch("pipeline"));
    let statsd = build_statsd(&config, &mut live)?;
    let statsd_addr = statsd.as_ref().and_then(|s| s.local_addr().ok());
    let (spans, span_exporter) = match &otlp {
        Some(otlp) if config.otlp.traces.enabled && config.proxy.is_enabled() => {
            let dropped = otlp.client.metrics().spans_dropped.clone();
            let (queue, exporter) = SpanQueue::channel(&config.otlp.traces, dropped, otlp.clone());
            (Some(queue), Some(exporter))
        }
        _ => (None, None),
    };
    let proxy = build_proxy(&config, &mut live, spans).await?;
    let proxy_addr = proxy.as_ref().and_then(|p| p.local_addr().ok());
    if let Some(proxy) = &proxy {
        live.set_proxy(proxy.handle());
    }

    for watcher in admin_guard.watchers(&stop) {
        tasks.spawn(watcher);
    }
    let state = Arc::new(
        AdminState::new(registries.clone(), readiness, status.clone()).with_guard(admin_guard),
    );
    if let Some(otlp) = otlp.filter(|_| config.otlp.metrics_enabled()) {
        let exporter = MetricsExporter::new(
            registries.clone(),
            otlp,
            config.otlp.metrics.temporality,
            config.otlp.metrics_interval(),
        );
        tasks.spawn(exporter.run(stop.clone()));
    }
    if let Some(exporter) = span_exporter {
        tasks.spawn(exporter.run(stop.clone()));
    }
    tasks.spawn(admin::serve(admin_listener, state, stop.clone()));
    admin_latch.release();
    live.spawn_collectors(collectors);
    Spawner {
        tasks: &tasks,
        metrics: families.scheduler(),
        status: &status,
        stop: &stop,
    }
    .spawn(process);
    collectors_latch.release();
    if let Some(server) = statsd {
        tasks.spawn(server.run(stop.clone()));
    }
    if let Some(proxy) = proxy {
        tasks.spawn(proxy.run(stop.clone(), config.proxy.threads));
    }
    if let Some(pipeline) = pipeline {
        live.spawn_pipeline(pipeline);
    }
    if let Some(latch) = pipeline_latch {
        latch.release();
    }

    let watch = config.reload.watch_config;
    let watch_interval = config.reload.watch_interval;
    let current: CurrentConfig = Arc::new(std::sync::Mutex::new(config));
    let mut config_registry = Registry::default();
    let watch_path = source.as_ref().and_then(|s| s.path.clone());
    let reloader = Reloader::new(
        live,
        current.clone(),
        source,
        status.clone(),
        &mut config_registry,
    );
    registries.set(part::CONFIG, config_registry);
    let reload = reloader.spawn(&tasks, stop.clone());
    tasks.spawn(reload::reload_on_hangup(reload.clone(), stop.clone()));
    if let (Some(listener), Some(guard)) = (actions_listener, actions_guard) {
        for watcher in guard.watchers(&stop) {
            tasks.spawn(watcher);
        }
        tasks.spawn(admin::actions::serve(
            listener,
            Arc::new(guard),
            reload.clone(),
            stop.clone(),
        ));
    }
    if let (true, Some(path)) = (watch, watch_path) {
        tasks.spawn(reload::watch::watch(
            path,
            watch_interval,
            reload.clone(),
            stop.clone(),
        ));
    }
    tracing::info!(
        admin = %admin::describe(admin_addr, admin_tls),
        version = telemetry::VERSION,
        "sidewatch started"
    );
    Ok(Running {
        config: current,
        shutdown,
        admin_addr,
        actions_addr,
        statsd_addr,
        proxy_addr,
        status,
        reload,
        stop,
        tasks,
    })
}

async fn bind(addr: SocketAddr, key: &'static str) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind { key, addr, source })
}

/// Builds the proxy and binds its listener, when enabled; its metrics go
/// on their own registry part. `spans`, when set, receives server spans.
async fn build_proxy(
    config: &Config,
    live: &mut Live,
    spans: Option<SpanQueue>,
) -> Result<Option<Proxy>, RunError> {
    if !config.proxy.is_enabled() {
        return Ok(None);
    }
    let routes = RouteNormalizer::new(&config.routes.templates).map_err(|e| RunError::Build {
        key: "routes.templates".into(),
        message: e.to_string(),
    })?;
    let metrics = ProxyMetrics::new(
        &live.overflow(),
        config.proxy.max_series,
        &config.proxy.effective_duration_buckets(),
    );
    let mut registry = Registry::default();
    metrics.register_on(&mut registry);
    let built = Proxy::build(&config.proxy, routes, metrics, live.access(), spans).await;
    match built {
        Ok(proxy) => {
            live.registries().set(part::PROXY, registry);
            Ok(Some(proxy))
        }
        Err(ProxyError::Bind { addr, source }) => Err(RunError::Bind {
            key: "proxy.listen",
            addr,
            source,
        }),
        Err(e) => Err(RunError::Build {
            key: "proxy.upstream".into(),
            message: e.to_string(),
        }),
    }
}

/// Builds the StatsD intake and binds its socket, when enabled.
fn build_statsd(config: &Config, live: &mut Live) -> Result<Option<StatsdServer>, RunError> {
    if !config.statsd.enabled {
        return Ok(None);
    }
    let (intake, registry) = live.build_statsd_intake(config, None)?;
    let metrics = intake.metrics();
    let server = StatsdServer::bind(
        config.statsd.listen,
        config.statsd.receive_buffer_bytes,
        intake,
    )
    .map_err(|source| RunError::Bind {
        key: "statsd.listen",
        addr: config.statsd.listen,
        source,
    })?;
    live.registries().set(part::STATSD, registry);
    live.set_statsd(server.handle(), metrics);
    Ok(Some(server))
}

impl Running {
    /// The address the admin server is bound to (useful with port 0).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The address the StatsD socket is bound to, when `[statsd]` is enabled.
    pub fn statsd_addr(&self) -> Option<SocketAddr> {
        self.statsd_addr
    }

    /// The address the proxy listens on, when `[proxy]` is on.
    pub fn proxy_addr(&self) -> Option<SocketAddr> {
        self.proxy_addr
    }

    /// The address of the admin actions listener, when enabled.
    pub fn actions_addr(&self) -> Option<SocketAddr> {
        self.actions_addr
    }

    /// Asks for a reload, as SIGHUP does.
    pub fn reload_handle(&self) -> ReloadHandle {
        self.reload.clone()
    }

    /// The collectors' status board.
    pub fn status(&self) -> &StatusBoard {
        &self.status
    }

    /// Runs until shutdown is requested, waits for the app to go (bounded by
    /// the grace period), then stops every task.
    pub async fn wait(self) -> Result<(), RunError> {
        self.shutdown.requested().await;
        let config = self
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        shutdown::wait_for_app(&config).await;
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(STOP_TIMEOUT, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                still_running = self.tasks.len(),
                "tasks did not stop in time"
            );
        }
        tracing::info!("sidewatch stopped");
        Ok(())
    }
}
