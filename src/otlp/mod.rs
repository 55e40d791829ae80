//! OpenTelemetry export over OTLP: metrics from the one registry
//! ([`metrics`]), log records through the `otlp` log sink ([`logs`]), and
//! the proxy's server spans ([`traces`]), all through one transport
//! ([`transport`]) with one resource ([`resource`]).
//!
//! There is no second metrics system: each export encodes the registry
//! (the same OpenMetrics text `/metrics` is made from, [`openmetrics`]) into
//! `opentelemetry-proto` messages, so every metric registered anywhere is
//! exported without extra code.

pub mod logs;
pub mod metrics;
pub mod openmetrics;
pub mod resource;
pub mod traces;
pub mod transport;

use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::admin::StatusBoard;
use crate::config::otlp::OtlpConfig;
use crate::config::Config;
use crate::config::PodInfo;

/// The three OTLP signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// Metrics.
    Metrics,
    /// Log records.
    Logs,
    /// Spans.
    Traces,
}

impl Signal {
    /// The `signal` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
            Signal::Traces => "traces",
        }
    }

    /// The HTTP/protobuf path below the endpoint.
    pub fn http_path(self) -> &'static str {
        match self {
            Signal::Metrics => "v1/metrics",
            Signal::Logs => "v1/logs",
            Signal::Traces => "v1/traces",
        }
    }

    /// The gRPC method path.
    pub fn grpc_path(self) -> &'static str {
        match self {
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SignalOutcome {
    signal: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SignalLabel {
    signal: &'static str,
}

/// The outcomes of `sidewatch_otlp_exports_total`.
pub const OUTCOMES: [&str; 4] = ["success", "partial", "failed", "rejected"];

/// The exporter's own metrics.
#[derive(Debug, Clone)]
pub struct OtlpMetrics {
    exports: Family<SignalOutcome, Counter>,
    duration: Family<SignalLabel, Histogram>,
    rejected: Family<SignalLabel, Counter>,
    /// `sidewatch_otlp_spans_dropped_total`: spans dropped on a full queue.
    pub spans_dropped: Counter,
}

impl OtlpMetrics {
    /// Registers the families on `registry`, with every series of the
    /// `signals` in use at 0.
    pub fn register(registry: &mut Registry, signals: &[Signal]) -> Self {
        let metrics = Self {
            exports: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 15))
            }),
            rejected: Family::default(),
            spans_dropped: Counter::default(),
        };
        registry.register(
            "sidewatch_otlp_exports",
            "OTLP export requests by signal and outcome (success, partial: accepted with items rejected, failed: not accepted, rejected: refused for its content)",
            metrics.exports.clone(),
        );
        registry.register(
            "sidewatch_otlp_export_duration_seconds",
            "Duration of one OTLP export request, send to answer",
            metrics.duration.clone(),
        );
        registry.register(
            "sidewatch_otlp_rejected_items",
            "Data points, log records or spans an OTLP receiver rejected in partial-success answers",
            metrics.rejected.clone(),
        );
        if signals.contains(&Signal::Traces) {
            registry.register(
                "sidewatch_otlp_spans_dropped",
                "Proxy spans dropped because the export queue was full",
                metrics.spans_dropped.clone(),
            );
        }
        for signal in signals {
            for outcome in OUTCOMES {
                metrics.exports(*signal, outcome);
            }
            metrics.duration(*signal);
            metrics.rejected(*signal);
        }
        metrics
    }

    /// Handles registered nowhere (tests, benches).
    pub fn detached() -> Self {
        Self::register(&mut Registry::default(), &[])
    }

    fn exports(&self, signal: Signal, outcome: &'static str) -> Counter {
        self.exports.get_or_create_owned(&SignalOutcome {
            signal: signal.as_str(),
            outcome,
        })
    }

    fn duration(&self, signal: Signal) -> Histogram {
        self.duration.get_or_create_owned(&SignalLabel {
            signal: signal.as_str(),
        })
    }

    fn rejected(&self, signal: Signal) -> Counter {
        self.rejected.get_or_create_owned(&SignalLabel {
            signal: signal.as_str(),
        })
    }
}

/// What every signal's exporter shares: the client and the resource.
#[derive(Debug, Clone)]
pub struct Otlp {
    /// The transport.
    pub client: Arc<transport::Client>,
    /// The resource every request carries.
    pub resource: Arc<Resource>,
}

impl Otlp {
    /// The signals `config` turns on (logs: an `otlp` log sink exists).
    pub fn signals(config: &Config) -> Vec<Signal> {
        let mut signals = Vec::new();
        if config.otlp.metrics_enabled() {
            signals.push(Signal::Metrics);
        }
        if config
            .logs
            .sinks
            .iter()
            .any(|s| s.kind == crate::config::logs::SinkKind::Otlp)
        {
            signals.push(Signal::Logs);
        }
        if config.otlp.traces.enabled {
            signals.push(Signal::Traces);
        }
        signals
    }

    /// Builds the transport and resource when any signal is on, registering
    /// the exporter's metrics and `/status` entries.
    pub fn build(
        config: &Config,
        pod: &PodInfo,
        registry: &mut Registry,
        status: &StatusBoard,
    ) -> Result<Option<Self>, transport::BuildError> {
        let signals = Self::signals(config);
        if signals.is_empty() {
            return Ok(None);
        }
        let metrics = OtlpMetrics::register(registry, &signals);
        let client = transport::Client::build(&config.otlp, metrics, status.clone())?;
        for signal in &signals {
            client.register(*signal);
        }
        let resource = resource::build(&config.otlp, &config.logs.stages.enrich, pod, |name| {
            std::env::var(name).ok()
        });
        Ok(Some(Self {
            client: Arc::new(client),
            resource: Arc::new(resource),
        }))
    }

    /// The `[otlp]` config's client and resource for tests and benches.
    pub fn detached(config: &OtlpConfig) -> Result<Self, transport::BuildError> {
        let client =
            transport::Client::build(config, OtlpMetrics::detached(), StatusBoard::default())?;
        Ok(Self {
            client: Arc::new(client),
            resource: Arc::new(Resource::default()),
        })
    }
}

/// The instrumentation scope of everything sidewatch exports.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "sidewatch".into(),
        version: crate::telemetry::VERSION.into(),
        ..InstrumentationScope::default()
    }
}

/// Nanoseconds since the Unix epoch.
pub fn unix_nanos(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

/// Decodes 2×`N` lowercase or uppercase hex digits into `N` bytes, refusing
/// all-zero IDs (invalid in W3C trace context and OTLP).
pub fn hex_id<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.as_bytes();
    if text.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = (digit(text[2 * i])? << 4) | digit(text[2 * i + 1])?;
    }
    out.iter().any(|b| *b != 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_variable_alone_turns_metric_export_on_in_the_demo() {
        let env = std::collections::HashMap::from([(
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
            "http://collector:4318".to_owned(),
        )]);
        let config = crate::demo::config(&env).unwrap();
        assert_eq!(Otlp::signals(&config), vec![Signal::Metrics]);
        let plain = crate::demo::config(&std::collections::HashMap::new()).unwrap();
        assert!(Otlp::signals(&plain).is_empty());
    }

    #[test]
    fn hex_ids_are_checked() {
        assert_eq!(hex_id::<2>("0aFf"), Some([0x0a, 0xff]));
        assert_eq!(hex_id::<2>("0000"), None);
        assert_eq!(hex_id::<2>("0g00"), None);
        assert_eq!(hex_id::<2>("000"), None);
    }
}
