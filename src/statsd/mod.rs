//! StatsD / DogStatsD intake (`[statsd]`): UDP datagrams of newline-separated
//! samples become Prometheus families — counters (scaled by the sample
//! rate), gauges (with `+`/`-` deltas), histograms from timers (in seconds),
//! histograms and distributions, and sets (distinct members) — named by the
//! glob mappings, labelled by tags through the cardinality cap, bounded in
//! families and series. Every datagram and sample is counted by outcome.

pub mod mapping;
pub mod parse;
mod server;
pub mod store;

pub use server::{StatsdHandle, StatsdServer};

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::config::log_metrics::DEFAULT_BUCKETS;
use crate::config::statsd::StatsdConfig;
use crate::telemetry::cardinality::{KeyBuilder, OverflowMetrics};
use crate::telemetry::names;
use mapping::{Mapped, Mapper};
use parse::{Kind, LineError, Sample};
use store::{FamilyEntry, Refused, Series, Store};

/// Outcomes of `sidewatch_statsd_packets_total`.
pub const PACKET_OUTCOMES: [&str; 2] = ["ok", "oversized"];
/// Outcomes of `sidewatch_statsd_samples_total`.
pub const SAMPLE_OUTCOMES: [&str; 7] = [
    "ok",
    "malformed",
    "unsupported",
    "conflict",
    "over_limit",
    "dropped",
    "reserved",
];

/// Most histogram observations one sampled timer stands for (`1 / rate`).
const MAX_REPEAT: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// The intake's own counters, looked up once.
#[derive(Debug, Clone)]
pub struct StatsdMetrics {
    packets_family: Family<OutcomeLabel, Counter>,
    samples_family: Family<OutcomeLabel, Counter>,
    packets: [Counter; 2],
    samples: [Counter; 7],
}

impl StatsdMetrics {
    /// Registers `sidewatch_statsd_packets_total` and `sidewatch_statsd_samples_total`.
    pub fn register(registry: &mut Registry) -> Self {
        let packets_family: Family<OutcomeLabel, Counter> = Family::default();
        let samples_family: Family<OutcomeLabel, Counter> = Family::default();
        let metrics = Self {
            packets: PACKET_OUTCOMES
                .map(|outcome| packets_family.get_or_create_owned(&OutcomeLabel { outcome })),
            samples: SAMPLE_OUTCOMES
                .map(|outcome| samples_family.get_or_create_owned(&OutcomeLabel { outcome })),
            packets_family,
            samples_family,
        };
        metrics.register_on(registry);
        metrics
    }

    /// Registers these same handles on `registry` (a rebuilt intake's part,
    /// on reload: the counts carry on).
    pub fn register_on(&self, registry: &mut Registry) {
        registry.register(
            "sidewatch_statsd_packets",
            "StatsD datagrams received, by outcome (ok, oversized: over max_packet_bytes, dropped whole)",
            self.packets_family.clone(),
        );
        registry.register(
            "sidewatch_statsd_samples",
            "StatsD samples received, by outcome (ok, malformed, unsupported: events and service checks, conflict: type or label names differ from the family's, over_limit: max_metrics reached, dropped: by a mapping, reserved: a name sidewatch or a log rule owns)",
            self.samples_family.clone(),
        );
    }
}

/// A raw StatsD name, resolved once and cached.
#[derive(Debug)]
enum Resolved {
    Drop,
    Reserved,
    Metric {
        name: String,
        labels: Vec<(String, String)>,
        /// The family last used, with its label names, to skip the store lookup.
        family: Option<Arc<FamilyEntry>>,
    },
}

/// Turns datagrams into samples in the store. Owned by the intake task.
#[derive(Debug)]
pub struct Intake {
    store: Store,
    mapper: Mapper,
    cache: HashMap<Box<str>, Resolved>,
    cache_limit: usize,
    taken: Arc<[String]>,
    metrics: StatsdMetrics,
    key: KeyBuilder,
    max_packet_bytes: usize,
}

impl Intake {
    /// Builds the intake and registers its store; `taken` are family names
    /// (without `_total`) that log rules own.
    pub fn build(
        config: &StatsdConfig,
        taken: Vec<String>,
        overflow: &OverflowMetrics,
        registry: &mut Registry,
    ) -> Result<Self, String> {
        Self::build_with(config, taken, overflow, registry, None)
    }

    /// [`Intake::build`] counting on `metrics` (registered again on
    /// `registry`) when given, so a rebuilt intake's
    /// `sidewatch_statsd_*` counts carry on; its store starts empty.
    pub fn build_with(
        config: &StatsdConfig,
        taken: Vec<String>,
        overflow: &OverflowMetrics,
        registry: &mut Registry,
        metrics: Option<StatsdMetrics>,
    ) -> Result<Self, String> {
        let mapper =
            Mapper::new(&config.mappings).map_err(|(i, e)| format!("mappings[{i}].match: {e}"))?;
        let buckets = if config.buckets.is_empty() {
            DEFAULT_BUCKETS.to_vec()
        } else {
            config.buckets.clone()
        };
        let store = Store::new(
            config.max_metrics,
            config.max_series_per_family,
            config.max_series,
            buckets,
            overflow.clone(),
        );
        registry.register_collector(Box::new(store.clone()));
        Ok(Self {
            store,
            mapper,
            cache: HashMap::new(),
            cache_limit: config.max_metrics.saturating_mul(4).max(1024),
            taken: taken.into(),
            metrics: match metrics {
                Some(metrics) => {
                    metrics.register_on(registry);
                    metrics
                }
                None => StatsdMetrics::register(registry),
            },
            key: KeyBuilder::default(),
            max_packet_bytes: config.max_packet_bytes,
        })
    }

    /// The intake's self-metrics handles.
    pub fn metrics(&self) -> StatsdMetrics {
        self.metrics.clone()
    }

    /// The largest datagram taken, in bytes.
    pub fn max_packet_bytes(&self) -> usize {
        self.max_packet_bytes
    }

    /// The store (tests, benches).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Handles one datagram (`len` is its size as received, which may exceed
    /// `packet.len()` when the kernel cut it).
    pub fn packet(&mut self, packet: &[u8], len: usize) {
        if len > self.max_packet_bytes {
            self.metrics.packets[1].inc();
            return;
        }
        self.metrics.packets[0].inc();
        for line in packet.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let Ok(line) = std::str::from_utf8(line) else {
                self.metrics.samples[1].inc();
                continue;
            };
            let mut samples = Vec::new();
            match parse::parse_line(line, |s| samples.push(s)) {
                Ok(()) => {
                    for sample in samples {
                        let outcome = self.sample(&sample);
                        self.metrics.samples[outcome].inc();
                    }
                }
                Err(LineError::Malformed) => {
                    self.metrics.samples[1].inc();
                }
                Err(LineError::Unsupported) => {
                    self.metrics.samples[2].inc();
                }
            }
        }
    }

    /// Records one sample; returns its outcome's index in [`SAMPLE_OUTCOMES`].
    fn sample(&mut self, sample: &Sample<'_>) -> usize {
        if !self.cache.contains_key(sample.name) {
            let resolved = self.resolve(sample.name);
            if self.cache.len() >= self.cache_limit {
                return self.record_uncached(resolved, sample);
            }
            self.cache.insert(sample.name.into(), resolved);
        }
        let Some(resolved) = self.cache.get_mut(sample.name) else {
            return 1;
        };
        record(&self.store, &mut self.key, resolved, sample)
    }

    fn record_uncached(&mut self, mut resolved: Resolved, sample: &Sample<'_>) -> usize {
        record(&self.store, &mut self.key, &mut resolved, sample)
    }

    fn resolve(&self, raw: &str) -> Resolved {
        match self.mapper.map(raw) {
            Mapped::Drop => Resolved::Drop,
            Mapped::Metric { name, .. }
                if names::reserved_by(&name, false).is_some() || self.taken.contains(&name) =>
            {
                Resolved::Reserved
            }
            Mapped::Metric { name, labels } => Resolved::Metric {
                name,
                labels,
                family: None,
            },
        }
    }
}

fn record(
    store: &Store,
    key: &mut KeyBuilder,
    resolved: &mut Resolved,
    sample: &Sample<'_>,
) -> usize {
    let (name, labels, cached) = match resolved {
        Resolved::Drop => return 5,
        Resolved::Reserved => return 6,
        Resolved::Metric {
            name,
            labels,
            family,
        } => (name, labels, family),
    };
    // Mapping labels first (they win over tags of the same name), then tags.
    let mut pairs: Vec<(Cow<'_, str>, &str)> = labels
        .iter()
        .map(|(k, v)| (Cow::Borrowed(k.as_str()), v.as_str()))
        .chain(sample.tags.iter().map(|(k, v)| (label_name(k), *v)))
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs.dedup_by(|later, earlier| later.0 == earlier.0);
    let fits = |entry: &FamilyEntry| {
        entry.accepts(sample.kind)
            && entry
                .label_names()
                .iter()
                .map(String::as_str)
                .eq(pairs.iter().map(|p| p.0.as_ref()))
    };
    let entry = match cached {
        Some(entry) if fits(entry) => entry.clone(),
        _ => {
            let label_names: Vec<&str> = pairs.iter().map(|p| p.0.as_ref()).collect();
            match store.family(name, sample.kind, &label_names) {
                Ok(entry) => {
                    *cached = Some(entry.clone());
                    entry
                }
                Err(Refused::Conflict) => return 3,
                Err(Refused::OverLimit) => return 4,
            }
        }
    };
    key.clear();
    for (_, value) in &pairs {
        key.push(value);
    }
    let key = key.as_str();
    match &entry.series {
        Series::Counter(f) => f.with(key, |c| {
            c.inc_by(sample.value / sample.rate);
        }),
        Series::Gauge(f) => f.with(key, |g| {
            if sample.relative {
                g.inc_by(sample.value);
            } else {
                g.set(sample.value);
            }
        }),
        Series::Histogram(f) => {
            let value = if sample.kind == Kind::Timer {
                sample.value / 1000.0
            } else {
                sample.value
            };
            let repeat = ((1.0 / sample.rate).round() as usize).clamp(1, MAX_REPEAT);
            f.with(key, |h| {
                for _ in 0..repeat {
                    h.observe(value);
                }
            });
        }
        Series::Set(f) => f.with(key, |s| s.insert(sample.member)),
    }
    0
}

/// A tag key as a label name: other characters become `_`; names Prometheus
/// reserves (`__*`, `le`, `quantile`) get a `tag_` prefix.
fn label_name(key: &str) -> Cow<'_, str> {
    if names::is_label_name(key) {
        return Cow::Borrowed(key);
    }
    let mut name: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !names::is_label_name(&name) {
        name.insert_str(0, "tag_");
    }
    Cow::Owned(name)
}

#[cfg(test)]
mod tests;
