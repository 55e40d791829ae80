//! The components a reload can rebuild — collectors, log rules, the log
//! pipeline, the proxy's request state — built at start and rebuilt from a
//! new configuration, each in its own generation of tasks.

use std::collections::BTreeSet;

use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::StatusBoard;
use crate::app::RunError;
use crate::collect::health::{HealthCollector, HealthMetrics};
use crate::collect::pool::{PoolCollector, PoolMetrics};
use crate::collect::postgres::{PostgresCollector, PostgresMetrics};
use crate::collect::redis::{RedisCollector, RedisMetrics};
use crate::collect::scheduler::{self, CollectorMetrics};
use crate::collect::Collector;
use crate::config::{Config, PodInfo};
use crate::logs::rules::LogRules;
use crate::logs::sink::delivery::DeliveryFamilies;
use crate::logs::{BuildError, ExtraSource, Pipeline};
use crate::proxy::{AccessLog, ProxyHandle, ProxyMetrics};
use crate::shutdown::Shutdown;
use crate::statsd::{Intake, StatsdHandle, StatsdMetrics};
use crate::telemetry::cardinality::OverflowMetrics;
use crate::telemetry::parts::Registries;
use crate::telemetry::route::RouteNormalizer;

/// Registry part names, in exposition order.
pub mod part {
    /// Build info, collectors, process.
    pub const BASE: &str = "base";
    /// `sidewatch_label_overflow_total`.
    pub const OVERFLOW: &str = "overflow";
    /// The log rules' families.
    pub const LOG_RULES: &str = "log_metrics";
    /// The log pipeline's own families.
    pub const LOGS: &str = "logs";
    /// Network sinks' delivery families.
    pub const LOGS_NETWORK: &str = "logs_network";
    /// StatsD intake.
    pub const STATSD: &str = "statsd";
    /// The proxy's `http_*` and `sidewatch_proxy_*` families.
    pub const PROXY: &str = "proxy";
    /// `sidewatch_config_*`.
    pub const CONFIG: &str = "config";
}

/// One generation of a component's tasks: stopped and awaited as a whole.
#[derive(Debug)]
struct Generation {
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Generation {
    fn new(parent: &CancellationToken) -> Self {
        Self {
            stop: parent.child_token(),
            tasks: TaskTracker::new(),
        }
    }

    /// Closes the tracker and lets the app's supervisor wait for it too.
    fn seal(&self, app: &TaskTracker) {
        self.tasks.close();
        let tasks = self.tasks.clone();
        app.spawn(async move { tasks.wait().await });
    }

    /// Stops the tasks (the pipeline drains) and waits until they are done.
    async fn stop(self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// The collectors' metric families, registered once at start; rebuilt
/// collectors publish into the same handles.
#[derive(Debug, Clone)]
pub struct CollectorFamilies {
    scheduler: CollectorMetrics,
    health: HealthMetrics,
    postgres: PostgresMetrics,
    redis: RedisMetrics,
    pools: PoolMetrics,
}

impl CollectorFamilies {
    /// Registers every collector family on `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        Self {
            scheduler: CollectorMetrics::register(registry),
            health: HealthMetrics::register(registry),
            postgres: PostgresMetrics::register(registry),
            redis: RedisMetrics::register(registry),
            pools: PoolMetrics::register(registry),
        }
    }

    /// The scheduler's self-metrics.
    pub fn scheduler(&self) -> &CollectorMetrics {
        &self.scheduler
    }
}

/// Every configured interval collector, built, not running.
pub struct BuiltCollectors {
    health: Vec<HealthCollector>,
    postgres: Vec<PostgresCollector>,
    redis: Vec<RedisCollector>,
    pools: Vec<PoolCollector>,
}

impl BuiltCollectors {
    /// Every collector's name, with the health target's name for probes.
    fn names(&self) -> Vec<(String, Option<String>)> {
        let mut names: Vec<(String, Option<String>)> = self
            .health
            .iter()
            .map(|c| (c.name().to_owned(), Some(c.target().to_owned())))
            .collect();
        names.extend(self.postgres.iter().map(|c| (c.name().to_owned(), None)));
        names.extend(self.redis.iter().map(|c| (c.name().to_owned(), None)));
        names.extend(self.pools.iter().map(|c| (c.name().to_owned(), None)));
        names
    }

    /// Builds the health, PostgreSQL, Redis and pool collectors of `config`.
    pub fn build(
        config: &Config,
        pod: &PodInfo,
        families: &CollectorFamilies,
    ) -> Result<Self, RunError> {
        Ok(Self {
            health: build_each("health.targets", &config.health.targets, |target| {
                HealthCollector::build(target, &families.health)
            })?,
            postgres: build_each("postgres.servers", &config.postgres.servers, |server| {
                PostgresCollector::build(server, pod.ip, &families.postgres)
            })?,
            redis: build_each("redis.servers", &config.redis.servers, |server| {
                RedisCollector::build(server, pod.ip, &families.redis)
            })?,
            pools: build_each("pools.sources", &config.pools.sources, |source| {
                PoolCollector::build(source, &families.pools)
            })?,
        })
    }
}

/// The app-wide things every generation hangs off.
#[derive(Debug, Clone)]
pub struct AppContext {
    /// The registry parts `/metrics` encodes.
    pub registries: Registries,
    /// The `/status` board.
    pub status: StatusBoard,
    /// The pod's identity (read once at start).
    pub pod: PodInfo,
    /// Cancelled when sidewatch stops.
    pub stop: CancellationToken,
    /// The app's supervisor.
    pub tasks: TaskTracker,
    /// Triggered when the pipeline ends on its own (stdin closed).
    pub shutdown: Shutdown,
}

/// The running rebuildable components.
pub struct Live {
    ctx: AppContext,
    families: CollectorFamilies,
    collectors: Option<Generation>,
    /// The running collectors' names (and health targets).
    collector_names: Vec<(String, Option<String>)>,
    overflow: Option<OverflowMetrics>,
    /// The rules in use; the running pipeline holds a clone sharing handles.
    rules: Option<LogRules>,
    logs: Option<crate::logs::metrics::Metrics>,
    network: Option<DeliveryFamilies>,
    pipeline: Option<Generation>,
    /// Swaps the running pipeline's rules in place.
    rules_tx: Option<tokio::sync::watch::Sender<Option<LogRules>>>,
    access: Option<AccessLog>,
    proxy: Option<ProxyHandle>,
    statsd: Option<(StatsdHandle, StatsdMetrics)>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("pipeline", &self.pipeline.is_some())
            .field("proxy", &self.proxy.is_some())
            .finish()
    }
}

impl Live {
    /// No components yet; `families` are the collectors' registered families.
    pub fn new(ctx: AppContext, families: CollectorFamilies) -> Self {
        Self {
            ctx,
            families,
            collectors: None,
            collector_names: Vec::new(),
            overflow: None,
            rules: None,
            logs: None,
            network: None,
            pipeline: None,
            rules_tx: None,
            access: None,
            proxy: None,
            statsd: None,
        }
    }

    /// Builds a StatsD intake for `config` on a fresh registry part (not
    /// installed yet), counting on `metrics` when given.
    pub fn build_statsd_intake(
        &mut self,
        config: &Config,
        metrics: Option<StatsdMetrics>,
    ) -> Result<(Intake, Registry), RunError> {
        let overflow = self.overflow();
        let mut registry = Registry::default();
        let intake = Intake::build_with(
            &config.statsd,
            statsd_taken(config),
            &overflow,
            &mut registry,
            metrics,
        )
        .map_err(|message| RunError::Build {
            key: "statsd".into(),
            message,
        })?;
        Ok((intake, registry))
    }

    /// Remembers the bound StatsD server's handle and its intake's metrics.
    pub fn set_statsd(&mut self, handle: StatsdHandle, metrics: StatsdMetrics) {
        self.statsd = Some((handle, metrics));
    }

    /// `sidewatch_label_overflow_total`, registered on its own part the first
    /// time something needs it.
    pub fn overflow(&mut self) -> OverflowMetrics {
        if let Some(overflow) = &self.overflow {
            return overflow.clone();
        }
        let mut registry = Registry::default();
        let overflow = OverflowMetrics::register(&mut registry);
        self.ctx.registries.set(part::OVERFLOW, registry);
        self.overflow = Some(overflow.clone());
        overflow
    }

    /// Spawns `built` as the collectors' new generation. Collectors that
    /// were running before and are not in `built` are forgotten: their
    /// `/status` entry, `sidewatch_collector_up`/`_duration_seconds` and,
    /// for health targets, every `sidewatch_target_*`/probe series.
    pub fn spawn_collectors(&mut self, built: BuiltCollectors) {
        let names = built.names();
        for (name, target) in std::mem::take(&mut self.collector_names) {
            if names.iter().any(|(n, _)| *n == name) {
                continue;
            }
            self.ctx.status.remove(&name);
            self.families.scheduler.forget(&name);
            if let Some(target) = target {
                self.families.health.forget(&target);
            }
        }
        self.collector_names = names;
        let generation = Generation::new(&self.ctx.stop);
        let spawner = Spawner {
            tasks: &generation.tasks,
            metrics: &self.families.scheduler,
            status: &self.ctx.status,
            stop: &generation.stop,
        };
        spawner.spawn(built.health);
        spawner.spawn(built.postgres);
        spawner.spawn(built.redis);
        spawner.spawn(built.pools);
        generation.seal(&self.ctx.tasks);
        self.collectors = Some(generation);
    }

    /// Builds the log rules of `config` (reusing the handles of unchanged
    /// rules) on a fresh registry part, not installed yet.
    pub fn build_rules(
        &mut self,
        config: &Config,
    ) -> Result<(Option<LogRules>, Registry), RunError> {
        let mut registry = Registry::default();
        if config.log_metrics.is_empty() {
            return Ok((None, registry));
        }
        let overflow = self.overflow();
        let rules = LogRules::build_reusing(
            &config.log_metrics,
            &config.routes,
            &config.logs.stages.correlate.target,
            &overflow,
            &mut registry,
            self.rules.as_ref(),
        )
        .map_err(build_error)?;
        Ok((rules, registry))
    }

    /// Installs rules built by [`Live::build_rules`].
    pub fn install_rules(&mut self, rules: Option<LogRules>, registry: Registry) {
        if rules.is_some() {
            self.ctx.registries.set(part::LOG_RULES, registry);
        } else {
            self.ctx.registries.remove(part::LOG_RULES);
        }
        self.rules = rules;
    }

    /// Builds the pipeline of `config` with the installed rules, reading
    /// the access-log queue `access` (from [`access_log`]) when the proxy's
    /// access log is on. The pipeline's families are registered once.
    pub fn build_pipeline(
        &mut self,
        config: &Config,
        (access, extra): (Option<AccessLog>, Vec<ExtraSource>),
    ) -> Result<Option<Pipeline>, RunError> {
        if config.logs.sources.is_empty() && extra.is_empty() {
            self.access = None;
            return Ok(None);
        }
        let metrics = self
            .logs
            .get_or_insert_with(|| {
                let mut registry = Registry::default();
                let metrics = crate::logs::metrics::Metrics::register(&mut registry);
                self.ctx.registries.set(part::LOGS, registry);
                metrics
            })
            .clone();
        if crate::logs::needs_network(&config.logs) && self.network.is_none() {
            let mut registry = Registry::default();
            self.network = Some(DeliveryFamilies::register(&mut registry));
            self.ctx.registries.set(part::LOGS_NETWORK, registry);
        }
        let pipeline = Pipeline::build_parts(
            &config.logs,
            &self.ctx.pod,
            &metrics,
            self.network.as_ref(),
            &self.ctx.status,
            extra,
        )
        .map_err(build_error)?
        .map(|pipeline| pipeline.with_rules(self.rules.clone()));
        self.access = access;
        Ok(pipeline)
    }

    /// The access-log queue of the last built pipeline, for the proxy.
    pub fn access(&self) -> Option<AccessLog> {
        self.access.clone()
    }

    /// Starts `pipeline` as the pipeline's new generation.
    pub fn spawn_pipeline(&mut self, mut pipeline: Pipeline) {
        self.rules_tx = Some(pipeline.rules_sender());
        let generation = Generation::new(&self.ctx.stop);
        // `app | sidewatch run`: when the input ends, so does sidewatch.
        let ended = pipeline.spawn(&generation.tasks, generation.stop.clone());
        let (shutdown, stop) = (self.ctx.shutdown.clone(), generation.stop.clone());
        generation.tasks.spawn(async move {
            tokio::select! {
                () = ended.cancelled() => shutdown.trigger(),
                () = stop.cancelled() => {}
            }
        });
        generation.seal(&self.ctx.tasks);
        self.pipeline = Some(generation);
    }

    /// The registry parts.
    pub fn registries(&self) -> &Registries {
        &self.ctx.registries
    }

    /// Remembers the started proxy's handle.
    pub fn set_proxy(&mut self, proxy: ProxyHandle) {
        self.proxy = Some(proxy);
    }

    /// Applies `new` (already validated, no restart-only change): rebuilds
    /// the components whose sections are in `changed` and returns what was
    /// rebuilt. Anything that can fail is built before the running
    /// component is stopped, except the pipeline's listeners and checkpoint
    /// reads, which need the old pipeline gone first; if that build fails
    /// the old configuration's pipeline is started again.
    pub async fn apply(
        &mut self,
        old: &Config,
        new: &Config,
        changed: &BTreeSet<String>,
    ) -> Result<Vec<&'static str>, RunError> {
        let has = |s: &str| changed.contains(s);
        let mut rebuilt = Vec::new();
        let collectors = ["health", "postgres", "redis", "pools"]
            .iter()
            .any(|s| has(s))
            .then(|| BuiltCollectors::build(new, &self.ctx.pod, &self.families))
            .transpose()?;
        // Rules alone are swapped into the running pipeline; anything else
        // in `[logs]` (or the access log turning on or off) rebuilds it.
        let rules_changed = has("log_metrics") || has("routes");
        let pipeline_changed = has("logs")
            || old.proxy_access_log() != new.proxy_access_log()
            || (rules_changed && self.rules_tx.is_none());
        let rules = if pipeline_changed || rules_changed {
            Some(self.build_rules(new)?)
        } else {
            None
        };
        let statsd = match &self.statsd {
            Some((handle, metrics)) if has("statsd") || statsd_taken(old) != statsd_taken(new) => {
                let (handle, metrics) = (handle.clone(), metrics.clone());
                let (intake, registry) = self.build_statsd_intake(new, Some(metrics))?;
                Some((handle, intake, registry))
            }
            _ => None,
        };
        let proxy_changed = has("proxy") || has("routes");
        let mut proxy = match self.proxy.clone() {
            Some(handle) if proxy_changed || pipeline_changed => {
                let routes =
                    RouteNormalizer::new(&new.routes.templates).map_err(|e| RunError::Build {
                        key: "routes.templates".into(),
                        message: e.to_string(),
                    })?;
                let mut metrics = handle.metrics();
                if old.proxy.effective_duration_buckets() != new.proxy.effective_duration_buckets()
                {
                    let overflow = self.overflow();
                    metrics = metrics.with_duration_buckets(
                        &overflow,
                        new.proxy.max_series,
                        &new.proxy.effective_duration_buckets(),
                    );
                }
                Some((handle, routes, metrics))
            }
            _ => None,
        };

        if let Some((handle, intake, registry)) = statsd {
            if handle.swap(intake).await {
                self.ctx.registries.set(part::STATSD, registry);
                rebuilt.push("statsd");
            }
        }
        if let Some(built) = collectors {
            if let Some(old) = self.collectors.take() {
                old.stop().await;
            }
            self.spawn_collectors(built);
            rebuilt.push("collectors");
        }
        let rules = match rules {
            Some((rules, registry)) if !pipeline_changed => {
                self.install_rules(rules, registry);
                if let Some(tx) = &self.rules_tx {
                    tx.send_replace(self.rules.clone());
                }
                rebuilt.push("log_rules");
                None
            }
            other => other,
        };
        if let Some((rules, registry)) = rules {
            // The proxy writes into the new access-log queue from now on;
            // the old pipeline drains what is queued in the old one.
            let (access, extra) = access_log(new);
            if let Some((handle, routes, metrics)) = proxy.take() {
                self.swap_proxy(&handle, new, routes, metrics, access.clone())?;
                if proxy_changed {
                    rebuilt.push("proxy");
                }
            }
            if let Some(old) = self.pipeline.take() {
                self.rules_tx = None;
                old.stop().await;
            }
            if rules_changed {
                rebuilt.push("log_rules");
            }
            self.install_rules(rules, registry);
            match self.build_pipeline(new, (access, extra)) {
                Ok(pipeline) => {
                    if let Some(pipeline) = pipeline {
                        self.spawn_pipeline(pipeline);
                    }
                    rebuilt.push("log_pipeline");
                }
                Err(error) => {
                    tracing::error!(%error, "reload: cannot build the new log pipeline; starting the previous one again");
                    let (access, extra) = access_log(old);
                    if let Ok(Some(pipeline)) = self.build_pipeline(old, (access.clone(), extra)) {
                        self.spawn_pipeline(pipeline);
                    }
                    if let Some(handle) = &self.proxy {
                        handle.set_access(access);
                    }
                    return Err(error);
                }
            }
        }
        if let Some((handle, routes, metrics)) = proxy {
            self.swap_proxy(&handle, new, routes, metrics, self.access.clone())?;
            rebuilt.push("proxy");
        }
        Ok(rebuilt)
    }
}

impl Live {
    fn swap_proxy(
        &self,
        handle: &ProxyHandle,
        new: &Config,
        routes: RouteNormalizer,
        metrics: ProxyMetrics,
        access: Option<AccessLog>,
    ) -> Result<(), RunError> {
        let mut registry = Registry::default();
        metrics.register_on(&mut registry);
        handle
            .swap(&new.proxy, routes, metrics, access)
            .map_err(|e| RunError::Build {
                key: "proxy".into(),
                message: e.to_string(),
            })?;
        self.ctx.registries.set(part::PROXY, registry);
        Ok(())
    }
}

fn build_error(e: BuildError) -> RunError {
    RunError::Build {
        key: e.key,
        message: e.message,
    }
}

/// Family names StatsD may not produce: the log rules' and, with the proxy
/// on, the proxy's.
pub fn statsd_taken(config: &Config) -> Vec<String> {
    use crate::telemetry::names::{family_base, PROXY_FAMILIES};
    let mut taken: Vec<String> = config
        .log_metrics
        .iter()
        .map(|rule| family_base(&rule.name).to_owned())
        .collect();
    if config.proxy.is_enabled() {
        for family in PROXY_FAMILIES {
            taken.push(family.to_owned());
            taken.push(family_base(family).to_owned());
        }
    }
    taken
}

/// The proxy's access-log queue and the log source reading it, when the
/// proxy runs with access logs on.
pub fn access_log(config: &Config) -> (Option<AccessLog>, Vec<ExtraSource>) {
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
pub struct Spawner<'a> {
    /// Where the tasks go.
    pub tasks: &'a TaskTracker,
    /// The scheduler's self-metrics.
    pub metrics: &'a CollectorMetrics,
    /// The `/status` board.
    pub status: &'a StatusBoard,
    /// Stops the tasks.
    pub stop: &'a CancellationToken,
}

impl Spawner<'_> {
    /// Spawns a scheduler task for each collector.
    pub fn spawn<C: Collector>(&self, collectors: impl IntoIterator<Item = C>) {
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
