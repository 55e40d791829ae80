//! Metrics of the network sinks' delivery: request durations, buffers and
//! dead letters. Families are registered once; handles are looked up per
//! sink at build time.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SinkLabel {
    sink: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SinkMedium {
    sink: String,
    medium: &'static str,
}

/// The delivery families, registered once.
#[derive(Debug, Clone)]
pub struct DeliveryFamilies {
    duration: Family<SinkLabel, Histogram>,
    events: Family<SinkMedium, Gauge>,
    bytes: Family<SinkMedium, Gauge>,
    capacity: Family<SinkMedium, Gauge>,
    dead_letter: Family<SinkLabel, Counter>,
    corrupt: Family<SinkLabel, Counter>,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

impl DeliveryFamilies {
    /// Registers the families on `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let families = Self {
            duration: Family::new_with_constructor(duration_histogram),
            events: Family::default(),
            bytes: Family::default(),
            capacity: Family::default(),
            dead_letter: Family::default(),
            corrupt: Family::default(),
        };
        registry.register(
            "sidewatch_sink_batch_duration_seconds",
            "Duration of one network sink request (one batch), send to answer",
            families.duration.clone(),
        );
        registry.register(
            "sidewatch_buffer_events",
            "Events held by a sink's buffer, by medium (memory, disk)",
            families.events.clone(),
        );
        registry.register(
            "sidewatch_buffer_bytes",
            "Bytes of events (as read) held by a sink's buffer, by medium",
            families.bytes.clone(),
        );
        registry.register(
            "sidewatch_buffer_capacity_bytes",
            "Bytes a sink's buffer may hold, by medium; when full the sources are held back",
            families.capacity.clone(),
        );
        registry.register(
            "sidewatch_dead_letter_events",
            "Events a destination rejected one by one, written to the sink's dead-letter file",
            families.dead_letter.clone(),
        );
        registry.register(
            "sidewatch_buffer_corrupt_tails",
            "Disk buffer segments whose tail did not check out (torn or corrupted) and was skipped",
            families.corrupt.clone(),
        );
        families
    }

    /// The handles of sink `sink`.
    pub fn sink(&self, sink: &str) -> DeliveryMetrics {
        let medium = |family: &Family<SinkMedium, Gauge>, medium| {
            family.get_or_create_owned(&SinkMedium {
                sink: sink.to_owned(),
                medium,
            })
        };
        let label = SinkLabel {
            sink: sink.to_owned(),
        };
        DeliveryMetrics {
            duration: self.duration.get_or_create_owned(&label),
            memory_events: medium(&self.events, "memory"),
            memory_bytes: medium(&self.bytes, "memory"),
            memory_capacity: medium(&self.capacity, "memory"),
            disk_events: medium(&self.events, "disk"),
            disk_bytes: medium(&self.bytes, "disk"),
            disk_capacity: medium(&self.capacity, "disk"),
            dead_letter: self.dead_letter.get_or_create_owned(&label),
            corrupt_tails: self.corrupt.get_or_create_owned(&label),
        }
    }
}

/// One sink's delivery handles.
#[derive(Debug, Clone)]
pub struct DeliveryMetrics {
    /// `sidewatch_sink_batch_duration_seconds{sink}`.
    pub duration: Histogram,
    /// `sidewatch_buffer_events{sink,medium="memory"}`.
    pub memory_events: Gauge,
    /// `sidewatch_buffer_bytes{sink,medium="memory"}`.
    pub memory_bytes: Gauge,
    /// `sidewatch_buffer_capacity_bytes{sink,medium="memory"}`.
    pub memory_capacity: Gauge,
    /// `sidewatch_buffer_events{sink,medium="disk"}`.
    pub disk_events: Gauge,
    /// `sidewatch_buffer_bytes{sink,medium="disk"}`.
    pub disk_bytes: Gauge,
    /// `sidewatch_buffer_capacity_bytes{sink,medium="disk"}`.
    pub disk_capacity: Gauge,
    /// `sidewatch_dead_letter_events_total{sink}`.
    pub dead_letter: Counter,
    /// `sidewatch_buffer_corrupt_tails_total{sink}`.
    pub corrupt_tails: Counter,
}

impl DeliveryMetrics {
    /// Handles registered nowhere (tests, benches).
    pub fn detached(sink: &str) -> Self {
        DeliveryFamilies::register(&mut Registry::default()).sink(sink)
    }
}
