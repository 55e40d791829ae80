//! Builds every component from the config, binds every listener before
//! anything starts, spawns the tasks under one supervisor and shuts them down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{self, AdminState, Readiness, StatusBoard};
use crate::collect::health::{HealthCollector, HealthMetrics};
use crate::collect::pool::{PoolCollector, PoolMetrics};
use crate::collect::postgres::{PostgresCollector, PostgresMetrics};
use crate::collect::redis::{RedisCollector, RedisMetrics};
use crate::collect::scheduler::{self, CollectorMetrics};
use crate::collect::Collector;
use crate::config::{Config, PodInfo};
use crate::logs::rules::LogRules;
use crate::logs::ExtraSource;
use crate::otlp::metrics::MetricsExporter;
use crate::otlp::traces::SpanQueue;
use crate::otlp::Otlp;
use crate::proxy::{AccessLog, Proxy, ProxyError};
use crate::shutdown::{self, Shutdown};
use crate::statsd::{Intake, StatsdServer};
use crate::telemetry::cardinality::OverflowMetrics;
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
    config: Config,
    shutdown: Shutdown,
    admin_addr: SocketAddr,
    statsd_addr: Option<SocketAddr>,
    proxy_addr: Option<SocketAddr>,
    status: StatusBoard,
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// Builds and starts every component. Nothing is spawned unless everything
/// could be built and bound.
pub async fn start(config: Config, shutdown: Shutdown) -> Result<Running, RunError> {
    let mut registry = telemetry::new_registry();
    let readiness = Readiness::default();
    let status = StatusBoard::default();
    let admin_latch = readiness.latch("admin");
    let collectors_latch = readiness.latch("collectors");

    let admin_listener = TcpListener::bind(config.admin.listen)
        .await
        .map_err(|source| RunError::Bind {
            key: "admin.listen",
            addr: config.admin.listen,
            source,
        })?;
    let admin_addr = admin_listener.local_addr().unwrap_or(config.admin.listen);

    let collector_metrics = CollectorMetrics::register(&mut registry);
    let pod = PodInfo::from_env(&config.pod);
    let health_metrics = HealthMetrics::register(&mut registry);
    let health = build_each("health.targets", &config.health.targets, |target| {
        HealthCollector::build(target, &health_metrics)
    })?;
    let postgres_metrics = PostgresMetrics::register(&mut registry);
    let postgres = build_each("postgres.servers", &config.postgres.servers, |server| {
        PostgresCollector::build(server, pod.ip, &postgres_metrics)
    })?;
    let redis_metrics = RedisMetrics::register(&mut registry);
    let redis = build_each("redis.servers", &config.redis.servers, |server| {
        RedisCollector::build(server, pod.ip, &redis_metrics)
    })?;
    let pool_metrics = PoolMetrics::register(&mut registry);
    let pools = build_each("pools.sources", &config.pools.sources, |source| {
        PoolCollector::build(source, &pool_metrics)
    })?;
    let process = config
        .process
        .enabled
        .then(|| ProcessCollector::build(&config.process, &mut registry));
    let overflow =
        if config.log_metrics.is_empty() && !config.statsd.enabled && !config.proxy.is_enabled() {
            OverflowMetrics::register(&mut prometheus_client::registry::Registry::default())
        } else {
            OverflowMetrics::register(&mut registry)
        };
    let build_error = |e: crate::logs::BuildError| RunError::Build {
        key: e.key,
        message: e.message,
    };
    let rules = LogRules::build(
        &config.log_metrics,
        &config.routes,
        &config.logs.stages.correlate.target,
        &overflow,
        &mut registry,
    )
    .map_err(build_error)?;
    let otlp = Otlp::build(&config, &pod, &mut registry, &status).map_err(|e| RunError::Build {
        key: e.key.into(),
        message: e.message,
    })?;
    let (access, extra) = access_log(&config);
    let pipeline = crate::logs::Pipeline::build_with(
        &config.logs,
        &pod,
        &mut registry,
        &status,
        extra,
        otlp.as_ref(),
    )
    .map_err(build_error)?
    .map(|pipeline| pipeline.with_rules(rules));
    let pipeline_latch = pipeline.is_some().then(|| readiness.latch("pipeline"));
    let statsd = build_statsd(&config, &overflow, &mut registry)?;
    let statsd_addr = statsd.as_ref().and_then(|s| s.local_addr().ok());
    let (spans, span_exporter) = match &otlp {
        Some(otlp) if config.otlp.traces.enabled && config.proxy.is_enabled() => {
            let dropped = otlp.client.metrics().spans_dropped.clone();
            let (queue, exporter) = SpanQueue::channel(&config.otlp.traces, dropped, otlp.clone());
            (Some(queue), Some(exporter))
        }
        _ => (None, None),
    };
    let proxy = build_proxy(&config, access, spans, &overflow, &mut registry).await?;
    let proxy_addr = proxy.as_ref().and_then(|p| p.local_addr().ok());

    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let registry = Arc::new(registry);
    let state = Arc::new(AdminState::new(registry.clone(), readiness, status.clone()));
    if let Some(otlp) = otlp.filter(|_| config.otlp.metrics_enabled()) {
        let exporter = MetricsExporter::new(
            registry,
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
    let collectors = Collectors {
        tasks: &tasks,
        metrics: &collector_metrics,
        status: &status,
        stop: &stop,
    };
    collectors.spawn(health);
    collectors.spawn(postgres);
    collectors.spawn(redis);
    collectors.spawn(pools);
    collectors.spawn(process);
    collectors_latch.release();
    if let Some(server) = statsd {
        tasks.spawn(server.run(stop.clone()));
    }
    if let Some(proxy) = proxy {
        tasks.spawn(proxy.run(stop.clone(), config.proxy.threads));
    }
    if let Some(pipeline) = pipeline {
        // `app | sidewatch run`: when the input ends, so does sidewatch.
        let ended = pipeline.spawn(&tasks, stop.clone());
        let (shutdown, stop) = (shutdown.clone(), stop.clone());
        tasks.spawn(async move {
            tokio::select! {
                () = ended.cancelled() => shutdown.trigger(),
                () = stop.cancelled() => {}
            }
        });
    }
    if let Some(latch) = pipeline_latch {
        latch.release();
    }
    tracing::info!(
        admin = %admin::describe(admin_addr),
        health_targets = config.health.targets.len(),
        version = telemetry::VERSION,
        "sidewatch started"
    );
    Ok(Running {
        config,
        shutdown,
        admin_addr,
        statsd_addr,
        proxy_addr,
        status,
        stop,
        tasks,
    })
}

/// The proxy's access-log queue and the log source reading it, when the
/// proxy runs with access logs on.
fn access_log(config: &Config) -> (Option<AccessLog>, Vec<ExtraSource>) {
    if !config.proxy_access_log() {
        return (None, Vec::new());
    }
    let (access, source) = AccessLog::channel(config.proxy.access_log_queue);
    let extra = ExtraSource {
        name: crate::proxy::access::SOURCE_NAME.into(),
        launch: Box::new(move |info| crate::logs::source::launch(source.with_info(info))),
    };
    (Some(access), vec![extra])
}

/// Builds the proxy and binds its listener, when enabled.
async fn build_proxy(
    config: &Config,
    access: Option<AccessLog>,
    spans: Option<SpanQueue>,
    overflow: &OverflowMetrics,
    registry: &mut prometheus_client::registry::Registry,
) -> Result<Option<Proxy>, RunError> {
    if !config.proxy.is_enabled() {
        return Ok(None);
    }
    let routes = RouteNormalizer::new(&config.routes.templates).map_err(|e| RunError::Build {
        key: "routes.templates".into(),
        message: e.to_string(),
    })?;
    match Proxy::build(&config.proxy, routes, overflow, registry, access, spans).await {
        Ok(proxy) => Ok(Some(proxy)),
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
fn build_statsd(
    config: &Config,
    overflow: &OverflowMetrics,
    registry: &mut prometheus_client::registry::Registry,
) -> Result<Option<StatsdServer>, RunError> {
    if !config.statsd.enabled {
        return Ok(None);
    }
    let mut taken: Vec<String> = config
        .log_metrics
        .iter()
        .map(|rule| crate::telemetry::names::family_base(&rule.name).to_owned())
        .collect();
    if config.proxy.is_enabled() {
        for family in crate::telemetry::names::PROXY_FAMILIES {
            taken.push(family.to_owned());
            taken.push(crate::telemetry::names::family_base(family).to_owned());
        }
    }
    let intake = Intake::build(&config.statsd, taken, overflow, registry).map_err(|message| {
        RunError::Build {
            key: "statsd".into(),
            message,
        }
    })?;
    StatsdServer::bind(
        config.statsd.listen,
        config.statsd.receive_buffer_bytes,
        intake,
    )
    .map(Some)
    .map_err(|source| RunError::Bind {
        key: "statsd.listen",
        addr: config.statsd.listen,
        source,
    })
}

/// Builds one collector per configured item; an error names `key[i]`.
fn build_each<T, C>(
    key: &str,
    items: &[T],
    build: impl Fn(&T) -> Result<C, String>,
) -> Result<Vec<C>, RunError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            build(item).map_err(|message| RunError::Build {
                key: format!("{key}[{i}]"),
                message,
            })
        })
        .collect()
}

/// What every collector task is spawned with.
struct Collectors<'a> {
    tasks: &'a TaskTracker,
    metrics: &'a CollectorMetrics,
    status: &'a StatusBoard,
    stop: &'a CancellationToken,
}

impl Collectors<'_> {
    /// Spawns a scheduler task for each collector.
    fn spawn<C: Collector>(&self, collectors: impl IntoIterator<Item = C>) {
        for collector in collectors {
            self.tasks.spawn(scheduler::run(
                collector,
                self.metrics.clone(),
                self.status.clone(),
                self.stop.clone(),
            ));
        }
    }
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

    /// The collectors' status board.
    pub fn status(&self) -> &StatusBoard {
        &self.status
    }

    /// Runs until shutdown is requested, waits for the app to go (bounded by
    /// the grace period), then stops every task.
    pub async fn wait(self) -> Result<(), RunError> {
        self.shutdown.requested().await;
        shutdown::wait_for_app(&self.config).await;
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
