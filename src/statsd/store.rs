//! The families StatsD samples create, bounded in number (`max_metrics`) and
//! in series (per family and in total), encoded at scrape time by one
//! [`Collector`]. A family's type and label names are fixed by its first
//! sample; later samples that disagree are refused as conflicts (as
//! statsd_exporter does).

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};

use super::parse::Kind;
use crate::telemetry::cardinality::{CappedFamily, OverflowMetrics};

/// Most distinct members a set series counts; further ones are not counted.
pub const MAX_SET_MEMBERS: usize = 1024;

/// A set series: the number of distinct members seen (by hash).
#[derive(Debug, Default)]
pub struct SetSeries {
    members: Mutex<HashSet<u64>>,
    hasher: RandomState,
}

impl SetSeries {
    /// Adds a member.
    pub fn insert(&self, member: &str) {
        let hash = self.hasher.hash_one(member);
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        if members.len() < MAX_SET_MEMBERS {
            members.insert(hash);
        }
    }

    /// Distinct members counted.
    pub fn len(&self) -> usize {
        self.members.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no member was seen.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl TypedMetric for SetSeries {
    const TYPE: MetricType = MetricType::Gauge;
}

impl EncodeMetric for SetSeries {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&(self.len() as i64))
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

/// The series of one family, by type.
#[derive(Debug)]
pub enum Series {
    /// From `c`.
    Counter(CappedFamily<Counter<f64, AtomicU64>>),
    /// From `g`.
    Gauge(CappedFamily<Gauge<f64, AtomicU64>>),
    /// From `ms`, `h`, `d`.
    Histogram(CappedFamily<Histogram>),
    /// From `s`.
    Set(CappedFamily<SetSeries>),
}

/// One family: its name, its label names and its series.
#[derive(Debug)]
pub struct FamilyEntry {
    /// The family name.
    pub name: String,
    /// The series.
    pub series: Series,
}

impl FamilyEntry {
    /// Whether a sample of `kind` belongs in this family.
    pub fn accepts(&self, kind: Kind) -> bool {
        matches!(
            (&self.series, kind),
            (Series::Counter(_), Kind::Counter)
                | (Series::Gauge(_), Kind::Gauge)
                | (Series::Histogram(_), Kind::Timer | Kind::Histogram)
                | (Series::Set(_), Kind::Set)
        )
    }

    /// The label names, sorted.
    pub fn label_names(&self) -> &[String] {
        match &self.series {
            Series::Counter(f) => f.names(),
            Series::Gauge(f) => f.names(),
            Series::Histogram(f) => f.names(),
            Series::Set(f) => f.names(),
        }
    }
}

/// Why a family could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max_metrics` families exist already.
    OverLimit,
    /// The name exists with another type or other label names.
    Conflict,
}

/// Every StatsD family; shared by the intake (writes) and `/metrics` (reads).
#[derive(Debug, Clone)]
pub struct Store {
    families: Arc<RwLock<BTreeMap<String, Arc<FamilyEntry>>>>,
    max_metrics: usize,
    max_series_per_family: usize,
    budget: Arc<AtomicUsize>,
    buckets: Arc<[f64]>,
    overflow: OverflowMetrics,
}

impl Store {
    /// An empty store.
    pub fn new(
        max_metrics: usize,
        max_series_per_family: usize,
        max_series: usize,
        buckets: Vec<f64>,
        overflow: OverflowMetrics,
    ) -> Self {
        Self {
            families: Arc::default(),
            max_metrics,
            max_series_per_family,
            budget: Arc::new(AtomicUsize::new(max_series)),
            buckets: buckets.into(),
            overflow,
        }
    }

    /// The family `name` for a sample of `kind` with label `names` (sorted),
    /// created if there is room.
    pub fn family(
        &self,
        name: &str,
        kind: Kind,
        names: &[&str],
    ) -> Result<Arc<FamilyEntry>, Refused> {
        let check = |entry: &Arc<FamilyEntry>| {
            let same_labels = entry
                .label_names()
                .iter()
                .map(String::as_str)
                .eq(names.iter().copied());
            if entry.accepts(kind) && same_labels {
                Ok(entry.clone())
            } else {
                Err(Refused::Conflict)
            }
        };
        if let Some(entry) = self
            .families
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return check(entry);
        }
        let mut families = self.families.write().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = families.get(name) {
            return check(entry);
        }
        if families.len() >= self.max_metrics {
            return Err(Refused::OverLimit);
        }
        let labels: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let limit = self.max_series_per_family;
        let overflow = self.overflow.counter(name);
        let budget = self.budget.clone();
        let series = match kind {
            Kind::Counter => Series::Counter(
                CappedFamily::new(labels, limit, overflow, Counter::<f64, AtomicU64>::default)
                    .with_budget(budget),
            ),
            Kind::Gauge => Series::Gauge(
                CappedFamily::new(labels, limit, overflow, Gauge::<f64, AtomicU64>::default)
                    .with_budget(budget),
            ),
            Kind::Timer | Kind::Histogram => {
                let buckets = self.buckets.clone();
                Series::Histogram(
                    CappedFamily::new(labels, limit, overflow, move || {
                        Histogram::new(buckets.iter().copied())
                    })
                    .with_budget(budget),
                )
            }
            Kind::Set => Series::Set(
                CappedFamily::new(labels, limit, overflow, SetSeries::default).with_budget(budget),
            ),
        };
        let entry = Arc::new(FamilyEntry {
            name: name.to_owned(),
            series,
        });
        families.insert(name.to_owned(), entry.clone());
        Ok(entry)
    }

    /// The number of families.
    pub fn len(&self) -> usize {
        self.families
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Whether no family exists yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Collector for Store {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let families = self.families.read().unwrap_or_else(|e| e.into_inner());
        for entry in families.values() {
            let (help, metric_type) = match &entry.series {
                Series::Counter(_) => ("Received over StatsD (counter)", MetricType::Counter),
                Series::Gauge(_) => ("Received over StatsD (gauge)", MetricType::Gauge),
                Series::Histogram(_) => (
                    "Received over StatsD (timer or histogram; timers in seconds)",
                    MetricType::Histogram,
                ),
                Series::Set(_) => (
                    "Received over StatsD (set: distinct members seen)",
                    MetricType::Gauge,
                ),
            };
            let metric = encoder.encode_descriptor(&entry.name, help, None, metric_type)?;
            match &entry.series {
                Series::Counter(f) => f.encode(metric)?,
                Series::Gauge(f) => f.encode(metric)?,
                Series::Histogram(f) => f.encode(metric)?,
                Series::Set(f) => f.encode(metric)?,
            }
        }
        Ok(())
    }
}
