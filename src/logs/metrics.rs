//! The log pipeline's metrics, registered once; components get handles looked
//! up at build time, so the hot path only increments atomics. Every label
//! value comes from the configuration or a fixed list.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::event::Flags;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SourceOutcome {
    source: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SinkOutcome {
    sink: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SinkReason {
    sink: String,
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StageReason {
    stage: &'static str,
    reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RuleLabel {
    rule: String,
}

/// Every `sidewatch_log*`, `sidewatch_sink*`, `sidewatch_tail*` family.
#[derive(Debug, Clone)]
pub struct Metrics {
    events: Family<SourceOutcome, Counter>,
    bytes: Family<SourceLabel, Counter>,
    lag: Family<SourceLabel, Gauge<f64, AtomicU64>>,
    unread: Family<SourceLabel, Gauge>,
    sink_events: Family<SinkOutcome, Counter>,
    sink_retries: Family<SinkReason, Counter>,
    dropped: Family<StageReason, Counter>,
    tail_files: Family<StateLabel, Gauge>,
    checkpoint_writes: Counter,
    uncorrelated: Counter,
    redactions: Family<RuleLabel, Counter>,
    intake_rejected: super::source::http::RejectFamily,
}

/// The outcomes of `sidewatch_log_events_total`, in priority order (an event
/// with several flags counts under the first that applies).
pub const OUTCOMES: [(&str, Flags); 5] = [
    ("truncated", Flags::TRUNCATED),
    ("invalid_utf8", Flags::INVALID_UTF8),
    ("depth_exceeded", Flags::DEPTH_EXCEEDED),
    ("not_object", Flags::NOT_OBJECT),
    ("parse_error", Flags::PARSE_ERROR),
];

/// The states of `sidewatch_tail_files`.
pub const FILE_STATES: [&str; 3] = ["open", "rotated", "waiting"];

impl Metrics {
    /// Registers every family of the log pipeline.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            events: Family::default(),
            bytes: Family::default(),
            lag: Family::default(),
            unread: Family::default(),
            sink_events: Family::default(),
            sink_retries: Family::default(),
            dropped: Family::default(),
            tail_files: Family::default(),
            checkpoint_writes: Counter::default(),
            uncorrelated: Counter::default(),
            redactions: Family::default(),
            intake_rejected: super::source::http::RejectFamily::register(registry),
        };
        registry.register(
            "sidewatch_log_events",
            "Log events read, by source and outcome (ok, or the first problem found: truncated, invalid_utf8, depth_exceeded, not_object, parse_error)",
            metrics.events.clone(),
        );
        registry.register(
            "sidewatch_log_bytes",
            "Bytes of log lines read, by source",
            metrics.bytes.clone(),
        );
        registry.register(
            "sidewatch_log_lag_seconds",
            "Age of the oldest event read but not yet acknowledged by every sink; 0 when caught up",
            metrics.lag.clone(),
        );
        registry.register(
            "sidewatch_log_unread_bytes",
            "Bytes of a file source's open files not read yet (file size minus read offset, summed); 0 when caught up",
            metrics.unread.clone(),
        );
        registry.register(
            "sidewatch_sink_events",
            "Events handed to a sink, by outcome (delivered, failed)",
            metrics.sink_events.clone(),
        );
        registry.register(
            "sidewatch_sink_retries",
            "Failed sink writes tried again, by sink and reason (io, unavailable, timeout, throttled, server_error, client_error)",
            metrics.sink_retries.clone(),
        );
        registry.register(
            "sidewatch_events_dropped",
            "Events dropped on purpose, by stage and reason",
            metrics.dropped.clone(),
        );
        registry.register(
            "sidewatch_tail_files",
            "Files the tailer tracks, by state (open, rotated: renamed or deleted and read to its end, waiting: over max_open_files)",
            metrics.tail_files.clone(),
        );
        registry.register(
            "sidewatch_checkpoint_writes",
            "Checkpoint files written",
            metrics.checkpoint_writes.clone(),
        );
        registry.register(
            "sidewatch_log_events_uncorrelated",
            "Events in which no correlation ID was found",
            metrics.uncorrelated.clone(),
        );
        registry.register(
            "sidewatch_redactions",
            "Values masked by the redact stage, by rule (key, or the pattern's name)",
            metrics.redactions.clone(),
        );
        for state in FILE_STATES {
            let _ = metrics
                .tail_files
                .get_or_create_owned(&StateLabel { state });
        }
        metrics
    }

    /// Handles for one source.
    pub fn source(&self, source: &str) -> SourceMetrics {
        let outcome = |outcome| {
            self.events.get_or_create_owned(&SourceOutcome {
                source: source.to_owned(),
                outcome,
            })
        };
        let label = SourceLabel {
            source: source.to_owned(),
        };
        SourceMetrics {
            ok: outcome("ok"),
            problems: OUTCOMES.map(|(name, _)| outcome(name)),
            bytes: self.bytes.get_or_create_owned(&label),
            lag: self.lag.get_or_create_owned(&label),
            unread: self.unread.get_or_create_owned(&label),
            tail_files: FILE_STATES
                .map(|state| self.tail_files.get_or_create_owned(&StateLabel { state })),
            checkpoint_writes: self.checkpoint_writes.clone(),
        }
    }

    /// `sidewatch_log_intake_rejected_total`, for the HTTP intake sources.
    pub fn intake_rejected(&self) -> &super::source::http::RejectFamily {
        &self.intake_rejected
    }

    /// Handles for one sink.
    pub fn sink(&self, sink: &str) -> SinkMetrics {
        let outcome = |outcome| {
            self.sink_events.get_or_create_owned(&SinkOutcome {
                sink: sink.to_owned(),
                outcome,
            })
        };
        SinkMetrics {
            delivered: outcome("delivered"),
            failed: outcome("failed"),
            retries: RETRY_REASONS.map(|reason| {
                self.sink_retries.get_or_create_owned(&SinkReason {
                    sink: sink.to_owned(),
                    reason,
                })
            }),
        }
    }

    /// The counter of events dropped by `stage` for `reason`.
    pub fn dropped(&self, stage: &'static str, reason: &str) -> Counter {
        self.dropped.get_or_create_owned(&StageReason {
            stage,
            reason: reason.to_owned(),
        })
    }

    /// The counter of events without a correlation ID.
    pub fn uncorrelated(&self) -> Counter {
        self.uncorrelated.clone()
    }

    /// The counter of redactions by `rule`.
    pub fn redactions(&self, rule: &str) -> Counter {
        self.redactions.get_or_create_owned(&RuleLabel {
            rule: rule.to_owned(),
        })
    }
}

/// One source's handles.
#[derive(Debug, Clone)]
pub struct SourceMetrics {
    ok: Counter,
    problems: [Counter; 5],
    /// `sidewatch_log_bytes_total{source}`.
    pub bytes: Counter,
    /// `sidewatch_log_lag_seconds{source}`.
    pub lag: Gauge<f64, AtomicU64>,
    /// `sidewatch_log_unread_bytes{source}`.
    pub unread: Gauge,
    /// `sidewatch_tail_files{state}` in [`FILE_STATES`] order (shared by all sources).
    pub tail_files: [Gauge; 3],
    /// `sidewatch_checkpoint_writes_total`.
    pub checkpoint_writes: Counter,
}

impl SourceMetrics {
    /// Handles registered nowhere (tests, benches).
    pub fn detached() -> Self {
        Metrics::register(&mut Registry::default()).source("detached")
    }

    /// Counts `n` events with `flags`.
    pub fn count_events(&self, flags: Flags, n: u64) {
        match OUTCOMES.iter().position(|(_, flag)| flags.contains(*flag)) {
            Some(i) => self.problems[i].inc_by(n),
            None => self.ok.inc_by(n),
        };
    }
}

/// One sink's handles.
#[derive(Debug, Clone)]
pub struct SinkMetrics {
    /// Events durably written.
    pub delivered: Counter,
    /// Events a sink rejected for good (not acknowledged; read again after a restart).
    pub failed: Counter,
    /// `sidewatch_sink_retries_total{sink,reason}` in [`RETRY_REASONS`] order.
    retries: [Counter; 6],
}

/// The reasons of `sidewatch_sink_retries_total`.
pub const RETRY_REASONS: [&str; 6] = [
    "io",
    "unavailable",
    "timeout",
    "throttled",
    "server_error",
    "client_error",
];

impl SinkMetrics {
    /// The retry counter for `reason` (one of [`RETRY_REASONS`]).
    pub fn retry(&self, reason: &str) -> &Counter {
        let i = RETRY_REASONS.iter().position(|r| *r == reason).unwrap_or(0);
        &self.retries[i]
    }
}
