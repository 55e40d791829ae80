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
}

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
        if config.sources.iter().any(|s| s.kind == SourceKind::File) {
            tail::checkpoint::check_state_dir(&config.state_dir).map_err(|e| BuildError {
                key: "logs.state_dir".into(),
                message: format!(
                    "{} is not a writable directory: {e}",
                    config.state_dir.display()
                ),
            })?;
        }
        let metrics = Metrics::register(registry);
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
                        let built = source::http::HttpSource::bind(
                            addr,
                            info,
                            max_line,
                            source.max_body_bytes,
                            source.max_connections,
                        )
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
            &metrics,
        )
        .map_err(|e| BuildError {
            key: e.key,
            message: e.message,
        })?;
        let mut sinks = Vec::new();
        let network = config
            .sinks
            .iter()
            .any(|s| matches!(s.kind, SinkKind::Loki | SinkKind::Http | SinkKind::Otlp))
            .then(|| sink::delivery::DeliveryFamilies::register(registry));
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
                    let (Some(families), Some(otlp)) = (&network, otlp) else {
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
                    let Some(families) = &network else {
                        continue;
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
        }))
    }

    /// Adds the log-derived metric rules ([`rules::LogRules`]).
    pub fn with_rules(mut self, rules: Option<rules::LogRules>) -> Self {
        self.stages.set_rules(rules);
        self
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
        pipeline.spawn(run_stages(self.stages, input_rx, outputs, abort.clone()));
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

/// The stages task: runs the chain over each batch and fans it out to every
/// sink's queue (copies for all but the last).
async fn run_stages(
    mut stages: Stages,
    mut input: Receiver<Vec<Event>>,
    outputs: Vec<Sender<Vec<Event>>>,
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
