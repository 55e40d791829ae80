//! The components a reload can rebuild — collectors ([`collectors`]), log
//! rules, the log pipeline, the proxy's request state, the StatsD intake —
//! built at start and rebuilt from a new configuration ([`apply`]); the
//! collectors and the pipeline each run in their own generation of tasks.

use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::StatusBoard;
use crate::app::RunError;
use crate::config::{Config, PodInfo};
use crate::logs::rules::LogRules;
use crate::logs::sink::delivery::DeliveryFamilies;
use crate::logs::{BuildError, ExtraSource, Pipeline};
use crate::proxy::{AccessLog, AccessSource, ProxyHandle};
use crate::shutdown::Shutdown;
use crate::statsd::{Intake, StatsdHandle, StatsdMetrics};
use crate::telemetry::cardinality::OverflowMetrics;
use crate::telemetry::parts::Registries;

mod apply;
mod collectors;

pub use collectors::{BuiltCollectors, CollectorFamilies, Spawner};

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
    /// `sidewatch_otlp_*`.
    pub const OTLP: &str = "otlp";
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
    /// The OTLP exporter `type = "otlp"` log sinks send through (built once
    /// at start: `[otlp]` needs a restart).
    otlp: Option<crate::otlp::Otlp>,
    /// The access-log queue shared by every pipeline generation.
    access_queue: Option<(usize, AccessLog, AccessSource)>,
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
            otlp: None,
            access_queue: None,
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
        built.spawn_all(&spawner);
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
            self.otlp.as_ref(),
        )
        .map_err(build_error)?
        .map(|pipeline| pipeline.with_rules(self.rules.clone()));
        self.access = access;
        Ok(pipeline)
    }

    /// Sets the OTLP exporter log pipelines built from now on send through.
    pub fn set_otlp(&mut self, otlp: Option<crate::otlp::Otlp>) {
        self.otlp = otlp;
    }

    /// The access-log queue (and its source, for the pipeline) for `config`.
    pub fn access_log(&mut self, config: &Config) -> (Option<AccessLog>, Vec<ExtraSource>) {
        access_log(&mut self.access_queue, config)
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

/// The proxy's access-log queue and a log source reading it, when the
/// proxy runs with access logs on. The queue outlives pipeline generations:
/// a reload hands the same queue to the new pipeline's source (which starts
/// reading once the old one has drained and let go), so events of requests
/// that finish while the pipeline is rebuilt wait in it instead of being
/// dropped. A changed `proxy.access_log_queue` makes a new queue.
pub fn access_log(
    cached: &mut Option<(usize, AccessLog, AccessSource)>,
    config: &Config,
) -> (Option<AccessLog>, Vec<ExtraSource>) {
    if !config.proxy_access_log() {
        *cached = None;
        return (None, Vec::new());
    }
    let capacity = config.proxy.access_log_queue;
    if cached.as_ref().is_none_or(|(size, _, _)| *size != capacity) {
        let (access, source) = AccessLog::channel(capacity);
        *cached = Some((capacity, access, source));
    }
    let Some((_, access, source)) = cached.as_ref() else {
        return (None, Vec::new());
    };
    let source = source.clone();
    let extra = ExtraSource {
        name: crate::proxy::access::SOURCE_NAME.into(),
        launch: Box::new(move |info| crate::logs::source::launch(source.with_info(info))),
    };
    (Some(access.clone()), vec![extra])
}
