//! The log pipeline: sources → stages → sinks, with acknowledgements flowing
//! back from sinks to sources (see [`ack`]).
//!
//! ```text
//!  source tasks ──bounded──► stages task ──bounded, one per sink──► sink tasks
//!  (tail, stdin)   queue     parse → correlate → enrich →  queues   (stdout, file)
//!        ▲                   redact → filter                            │
//!        └───────────── acks (token dropped after durable write) ◄──────┘
//! ```
//!
//! Every queue is bounded and blocks when full, so a slow sink holds back the
//! stages and then the sources (a tailer just stops reading; files are their
//! own buffer). On shutdown the sources stop reading (after a last read of
//! what the app wrote), the queues drain through the sinks, acknowledgements
//! come back and checkpoints are written, all within [`DRAIN_TIMEOUT`];
//! after it, whatever is still in flight is abandoned unacknowledged (and
//! read again after the restart).

pub mod ack;
pub mod event;
pub mod fields;
pub mod metrics;
pub mod rules;
pub mod sink;
pub mod source;
pub mod stage;
pub mod tail;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::sync::mpsc::{self, Receiver, Sender};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use event::{Event, EventMeta, Flags, SourceInfo};
pub use fields::Fields;

use crate::admin::StatusBoard;
use crate::config::logs::{LogsConfig, SinkKind, SourceKind};
use crate::config::PodInfo;
use metrics::Metrics;
use stage::Stages;

/// How long the pipeline may take to drain after it is told to stop; kept
/// below the app's task stop timeout so checkpoints are always written.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(4);

/// A part of the pipeline that could not be built.
#[derive(Debug, thiserror::Error)]
#[error("`{key}`: {message}")]
pub struct BuildError {
    /// The config key concerned.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// A source built outside `[logs]` (the proxy's access log): its `source`
/// label and how to launch it once the pipeline has made its [`SourceInfo`].
pub struct ExtraSource {
    /// The `source` label.
    pub name: String,
    /// Builds the source from its info.
    pub launch: Box<dyn FnOnce(Arc<SourceInfo>) -> source::Launch + Send>,
}

/// A built pipeline, not started yet.
pub struct Pipeline {
    sources: Vec<source::Launch>,
    stages: Stages,
    sinks: Vec<sink::Launch>,
    queue: usize,
    rules_updates: Option<RulesUpdates>,
}

/// New log rules for a running pipeline's stages task (on reload).
pub type RulesUpdates = tokio::sync::watch::Receiver<Option<rules::LogRules>>;

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("sources", &self.sources.len())
            .field("sinks", &self.sinks.len())
            .finish()
    }
}

impl Pipeline {
    /// Builds every source, stage and sink; `None` when no source is
    /// configured. Checks that the state directory and sink files are writable.
    pub fn build(
        config: &LogsConfig,
        pod: &PodInfo,
        registry: &mut Registry,
        status: &StatusBoard,
    ) -> Result<Option<Self>, BuildError> {
        Self::build_with(config, pod, registry, status, Vec::new(), None)
    }

    /// [`Pipeline::build`] with sources from outside `[logs]` added, and the
    /// OTLP exporter that `otlp` sinks send through.
    pub fn build_with(
        config: &LogsConfig,
        pod: &PodInfo,
        registry: &mut Registry,
        status: &StatusBoard,
        extra: Vec<ExtraSource>,
        otlp: Option<&crate::otlp::Otlp>,
    ) -> Result<Option<Self>, BuildError> {
        if config.sources.is_empty() && extra.is_empty() {
            return Ok(None);
        }
        let metrics = Metrics::register(registry);
        let network =
            needs_network(config).then(|| sink::delivery::DeliveryFamilies::register(registry));
        Self::build_parts(config, pod, &metrics, network.as_ref(), status, extra, otlp)
    }

    /// [`Pipeline::build_with`] on metric families registered beforehand,
    /// so a rebuilt pipeline (on reload) carries on counting where the old
    /// one stopped. `network` must be set when [`needs_network`] says so.
    pub fn build_parts(
        config: &LogsConfig,
        pod: &PodInfo,
        metrics: &Metrics,
        network: Option<&sink::delivery::DeliveryFamilies>,
        status: &StatusBoard,
        extra: Vec<ExtraSource>,
        otlp: Option<&crate::otlp::Otlp>,
    ) -> Result<Option<Self>, BuildError> {
        if config.sources.is_empty() && extra.is_empty() {
            return Ok(None);
        }
        if config.sources.iter().any(|s| s.kind == SourceKind::File) {
            tail::checkpoint::check_state_dir(&config.state_dir).map_err(|e| BuildError {
                key: "logs.state_dir".into(),
                message: format!(
                    "{} is not a writable directory: {e}",
                    config.state_dir.display()
                ),
            })?;
        }
        let mut sources = Vec::new();
        for (i, source) in config.sources.iter().enumerate() {
            let name = source.effective_name();
            let info = Arc::new(SourceInfo {
                name: name.to_owned(),
                metrics: metrics.source(name),
            });
            let max_line = config.stages.parse.max_line_bytes;
            sources.push(match source.kind {
                SourceKind::File => {
                    let built = source::file::FileSource::build(source, config, info).map_err(
                        |message| BuildError {
                            key: format!("logs.sources[{i}]"),
                            message,
                        },
                    )?;
                    source::launch(built)
                }
                SourceKind::Stdin => {
                    source::launch(source::stdin::StdinSource::new(info, max_line))
                }
                SourceKind::Tcp | SourceKind::Http => {
                    let addr = source.effective_listen();
                    let error = |e: std::io::Error| BuildError {
                        key: format!("logs.sources[{i}].listen"),
                        message: format!("cannot listen on {addr}: {e}"),
                    };
                    if source.kind == SourceKind::Tcp {
                        let built = source::tcp::TcpSource::bind(
                            addr,
                            info,
                            max_line,
                            source.max_connections,
                        )
                        .map_err(error)?;
                        source::launch(built)
                    } else {
                        let limits = source::http::HttpLimits {
                            max_line_bytes: max_line,
                            max_body_bytes: source.max_body_bytes,
                            max_header_bytes: source.max_header_bytes,
                            max_connections: source.max_connections,
                        };
                        let rejected = metrics.intake_rejected().source(name);
                        let built = source::http::HttpSource::bind(addr, info, limits, rejected)
                            .map_err(error)?;
                        source::launch(built)
                    }
                }
            });
        }
        for source in extra {
            let info = Arc::new(SourceInfo {
                metrics: metrics.source(&source.name),
                name: source.name,
            });
            sources.push((source.launch)(info));
        }
        let stages = Stages::build(
            &config.stages,
            pod,
            |name| std::env::var(name).ok(),
            metrics,
        )
        .map_err(|e| BuildError {
            key: e.key,
            message: e.message,
        })?;
        let mut sinks = Vec::new();
        for (i, sink) in config.sinks.iter().enumerate() {
            let name = sink.effective_name().to_owned();
            let report = sink::SinkReport {
                metrics: metrics.sink(&name),
                name,
                status: status.clone(),
            };
            sinks.push(match (sink.kind, &sink.path) {
                (SinkKind::File, Some(path)) => {
                    sink::file::FileSink::check(path).map_err(|e| BuildError {
                        key: format!("logs.sinks[{i}].path"),
                        message: format!("cannot write {}: {e}", path.display()),
                    })?;
                    let built =
                        sink::file::FileSink::new(path, sink.max_bytes, sink.max_files, sink.fsync);
                    sink::launch(built, report)
                }
                (SinkKind::File, None) => {
                    return Err(BuildError {
                        key: format!("logs.sinks[{i}].path"),
                        message: "must be set".into(),
                    })
                }
                (SinkKind::Stdout, _) => sink::launch(sink::stdout::StdoutSink::default(), report),
                (SinkKind::Discard, _) => sink::launch(sink::discard::DiscardSink, report),
                (SinkKind::Otlp, _) => {
                    let (Some(families), Some(otlp)) = (network, otlp) else {
                        return Err(BuildError {
                            key: format!("logs.sinks[{i}].type"),
                            message: "the OTLP exporter was not built".into(),
                        });
                    };
                    sink::otlp::build(
                        sink,
                        &config.stages.parse.message_field,
                        &config.state_dir,
                        report,
                        families,
                        otlp,
                    )
                    .map_err(|(key, message)| BuildError {
                        key: format!("logs.sinks[{i}].{key}"),
                        message,
                    })?
                }
                (SinkKind::Loki | SinkKind::Http, _) => {
                    let Some(families) = network else {
                        return Err(BuildError {
                            key: format!("logs.sinks[{i}]"),
                            message: "network sink built without its metric families".into(),
                        });
                    };
                    sink::network::build(sink, &config.state_dir, report, families).map_err(
                        |(key, message)| BuildError {
                            key: format!("logs.sinks[{i}].{key}"),
                            message,
                        },
                    )?
                }
            });
        }
        Ok(Some(Self {
            sources,
            stages,
            sinks,
            queue: config.queue_batches.max(1),
            rules_updates: None,
        }))
    }

    /// Adds the log-derived metric rules ([`rules::LogRules`]).
    pub fn with_rules(mut self, rules: Option<rules::LogRules>) -> Self {
        self.stages.set_rules(rules);
        self
    }

    /// Rules sent on the returned channel replace the running stages'
    /// rules from the next batch on, without stopping anything.
    pub fn rules_sender(&mut self) -> tokio::sync::watch::Sender<Option<rules::LogRules>> {
        let (tx, rx) = tokio::sync::watch::channel(None);
        self.rules_updates = Some(rx);
        tx
    }

    /// Starts every task on `tasks`. When `stop` is cancelled the pipeline
    /// drains (see the module doc) within [`DRAIN_TIMEOUT`]. The returned
    /// token is cancelled if the pipeline ends on its own: every source's
    /// input ended (stdin closed) and every sink has written what it got.
    pub fn spawn(self, tasks: &TaskTracker, stop: CancellationToken) -> CancellationToken {
        let ended = CancellationToken::new();
        let pipeline = TaskTracker::new();
        let abort = CancellationToken::new();
        let mut outputs = Vec::new();
        for launch in self.sinks {
            let (tx, rx) = mpsc::channel(self.queue);
            outputs.push(tx);
            pipeline.spawn(launch(rx, abort.clone()));
        }
        let (input_tx, input_rx) = mpsc::channel(self.queue);
        pipeline.spawn(run_stages(
            self.stages,
            input_rx,
            outputs,
            self.rules_updates,
            abort.clone(),
        ));
        for launch in self.sources {
            pipeline.spawn(launch(source::SourceContext {
                out: input_tx.clone(),
                stop: stop.clone(),
                abort: abort.clone(),
            }));
        }
        drop(input_tx);
        pipeline.close();
        let ended_on_its_own = ended.clone();
        tasks.spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = pipeline.wait() => {
                    tracing::info!("every log source has ended and its events are written");
                    ended_on_its_own.cancel();
                    return;
                }
            }
            if tokio::time::timeout(DRAIN_TIMEOUT, pipeline.wait()).await.is_err() {
                tracing::warn!(
                    still_running = pipeline.len(),
                    "log pipeline did not drain in time; unacknowledged events will be read again after restart"
                );
                abort.cancel();
                pipeline.wait().await;
            }
            tracing::info!("log pipeline drained");
        });
        ended
    }
}

/// Whether `config` has a network sink (Loki, HTTP), whose delivery
/// families must then be registered.
pub fn needs_network(config: &LogsConfig) -> bool {
    config
        .sinks
        .iter()
        .any(|s| matches!(s.kind, SinkKind::Loki | SinkKind::Http | SinkKind::Otlp))
}

/// The stages task: runs the chain over each batch and fans it out to every
/// sink's queue (copies for all but the last).
async fn run_stages(
    mut stages: Stages,
    mut input: Receiver<Vec<Event>>,
    outputs: Vec<Sender<Vec<Event>>>,
    mut rules_updates: Option<RulesUpdates>,
    abort: CancellationToken,
) {
    loop {
        let batch = tokio::select! {
            biased;
            () = abort.cancelled() => return,
            batch = input.recv() => match batch {
                Some(batch) => batch,
                None => return,
            },
        };
        if let Some(updates) = &mut rules_updates {
            if updates.has_changed().unwrap_or(false) {
                stages.set_rules(updates.borrow_and_update().clone());
            }
        }
        let batch = stages.process(batch);
        if batch.is_empty() {
            continue;
        }
        let mut batch = Some(batch);
        let last = outputs.len().saturating_sub(1);
        for (i, output) in outputs.iter().enumerate() {
            let copy = if i == last {
                batch.take()
            } else {
                batch.clone()
            };
            let Some(copy) = copy else { continue };
            tokio::select! {
                biased;
                _ = output.send(copy) => {}
                () = abort.cancelled() => return,
            }
        }
    }
}
