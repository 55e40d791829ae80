//! The cardinality cap for families whose label values come from outside
//! (log fields, routes, StatsD tags): at most `limit` series per family
//! (optionally also drawn from a budget shared by several families); label
//! sets beyond that are recorded on one series whose every label value is
//! [`OVERFLOW`], and counted in `sidewatch_label_overflow_total{metric}`.
//!
//! Label values are escaped for the text formats and cut to
//! [`MAX_VALUE_CHARS`] when the key is built ([`KeyBuilder`]), because
//! `prometheus-client` writes label values as given: a `"` or a newline in a
//! log field can never break `/metrics`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use prometheus_client::encoding::{
    EncodeLabel, EncodeLabelSet, EncodeMetric, LabelSetEncoder, MetricEncoder,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use super::snapshot::escape_label_value;

/// The label value that stands for every value over the cap.
pub const OVERFLOW: &str = "__overflow__";
/// The default series limit per family.
pub const DEFAULT_LIMIT: usize = 1000;
/// Longest label value kept, in characters; longer values are cut.
pub const MAX_VALUE_CHARS: usize = 128;

const SEPARATOR: char = '\0';

/// `sidewatch_label_overflow_total{metric}`, registered once.
#[derive(Debug, Clone)]
pub struct OverflowMetrics {
    family: Family<[(&'static str, String); 1], Counter>,
}

impl OverflowMetrics {
    /// Registers the overflow counter family.
    pub fn register(registry: &mut Registry) -> Self {
        let family = Family::default();
        registry.register(
            "sidewatch_label_overflow",
            "Observations recorded under __overflow__ label values because their family reached its series limit, by metric",
            family.clone(),
        );
        Self { family }
    }

    /// The overflow counter of `metric` (created at 0).
    pub fn counter(&self, metric: &str) -> Counter {
        self.family
            .get_or_create_owned(&[("metric", metric.to_owned())])
    }
}

/// Builds the series key of a label set (values in label-name order),
/// reusing its buffer between events.
#[derive(Debug, Default, Clone)]
pub struct KeyBuilder {
    key: String,
    count: usize,
}

impl KeyBuilder {
    /// An empty key with room for `bytes` (no regrowth while it is built).
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            key: String::with_capacity(bytes),
            count: 0,
        }
    }

    /// Starts a new key.
    pub fn clear(&mut self) {
        self.key.clear();
        self.count = 0;
    }

    /// Appends the next label value (raw; escaped and cut here).
    pub fn push(&mut self, value: &str) {
        self.separate();
        let value = if value.len() <= MAX_VALUE_CHARS {
            value
        } else {
            match value.char_indices().nth(MAX_VALUE_CHARS) {
                Some((cut, _)) => &value[..cut],
                None => value,
            }
        };
        if !value.contains(['\\', '"', '\n', SEPARATOR]) {
            self.key.push_str(value);
        } else if value.contains(SEPARATOR) {
            let cleaned = value.replace(SEPARATOR, "\u{fffd}");
            self.key.push_str(&escape_label_value(&cleaned));
        } else {
            self.key.push_str(&escape_label_value(value));
        }
    }

    /// Appends the next label value written by `Display` (numbers: nothing
    /// to escape, and no intermediate string).
    pub fn push_display(&mut self, value: impl std::fmt::Display) {
        use std::fmt::Write as _;
        self.separate();
        let _ = write!(self.key, "{value}");
    }

    fn separate(&mut self) {
        if self.count > 0 {
            self.key.push(SEPARATOR);
        }
        self.count += 1;
    }

    /// The key built so far.
    pub fn as_str(&self) -> &str {
        &self.key
    }
}

/// A family of series keyed by their label values, capped at a series limit.
pub struct CappedFamily<M> {
    inner: Arc<Inner<M>>,
}

struct Inner<M> {
    names: Box<[String]>,
    series: RwLock<HashMap<Box<str>, M>>,
    limit: usize,
    budget: Option<Arc<AtomicUsize>>,
    overflow_key: Box<str>,
    overflow: Counter,
    make: Box<dyn Fn() -> M + Send + Sync>,
}

impl<M> Clone for CappedFamily<M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<M> std::fmt::Debug for CappedFamily<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CappedFamily")
            .field("names", &self.inner.names)
            .field("limit", &self.inner.limit)
            .finish()
    }
}

impl<M> CappedFamily<M> {
    /// A family with label `names`, at most `limit` series (plus the overflow
    /// series), counting overflows on `overflow`; `make` creates a series.
    pub fn new(
        names: Vec<String>,
        limit: usize,
        overflow: Counter,
        make: impl Fn() -> M + Send + Sync + 'static,
    ) -> Self {
        let mut key = KeyBuilder::default();
        for _ in &names {
            key.push(OVERFLOW);
        }
        Self {
            inner: Arc::new(Inner {
                names: names.into_boxed_slice(),
                series: RwLock::new(HashMap::new()),
                limit,
                budget: None,
                overflow_key: key.as_str().into(),
                overflow,
                make: Box::new(make),
            }),
        }
    }

    /// The same family also drawing each new series from `budget` (shared
    /// with other families, so their total stays bounded). Call before use.
    pub fn with_budget(self, budget: Arc<AtomicUsize>) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.budget = Some(budget);
                Self {
                    inner: Arc::new(inner),
                }
            }
            Err(inner) => Self { inner },
        }
    }

    /// The label names, in key order.
    pub fn names(&self) -> &[String] {
        &self.inner.names
    }

    /// Runs `f` on the series for `key` (from a [`KeyBuilder`] with one value
    /// per label name), creating it if the cap allows, else on the overflow
    /// series.
    pub fn with<R>(&self, key: &str, f: impl FnOnce(&M) -> R) -> R {
        {
            let series = self.inner.series.read().unwrap_or_else(|e| e.into_inner());
            if let Some(metric) = series.get(key) {
                return f(metric);
            }
        }
        let mut series = self.inner.series.write().unwrap_or_else(|e| e.into_inner());
        if !series.contains_key(key) {
            let regular =
                series.len() - usize::from(series.contains_key(&*self.inner.overflow_key));
            if regular < self.inner.limit && self.take_budget() {
                series.insert(key.into(), (self.inner.make)());
            } else {
                self.inner.overflow.inc();
                let overflow = series
                    .entry(self.inner.overflow_key.clone())
                    .or_insert_with(|| (self.inner.make)());
                return f(overflow);
            }
        }
        match series.get(key) {
            Some(metric) => f(metric),
            None => unreachable!("the series was just inserted"),
        }
    }

    fn take_budget(&self) -> bool {
        match &self.inner.budget {
            None => true,
            Some(budget) => budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                    left.checked_sub(1)
                })
                .is_ok(),
        }
    }

    /// The number of series, the overflow series included.
    pub fn len(&self) -> usize {
        self.inner
            .series
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Whether no series exists yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One series' labels at encoding time: names zipped with the key's values.
struct Pairs<'a> {
    names: &'a [String],
    key: &'a str,
}

impl EncodeLabelSet for Pairs<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        for (name, value) in self.names.iter().zip(self.key.split(SEPARATOR)) {
            EncodeLabel::encode(&(name.as_str(), value), encoder.encode_label())?;
        }
        Ok(())
    }
}

impl<M: TypedMetric> TypedMetric for CappedFamily<M> {
    const TYPE: MetricType = M::TYPE;
}

impl<M: EncodeMetric + TypedMetric> EncodeMetric for CappedFamily<M> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let series = self.inner.series.read().unwrap_or_else(|e| e.into_inner());
        if self.inner.names.is_empty() {
            // One unlabelled series: `name 1`, not `name{} 1`.
            return match series.values().next() {
                Some(metric) => metric.encode(encoder),
                None => Ok(()),
            };
        }
        for (key, metric) in series.iter() {
            let labels = Pairs {
                names: &self.inner.names,
                key,
            };
            metric.encode(encoder.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    fn family(limit: usize) -> (Registry, CappedFamily<Counter>, Counter) {
        let mut registry = Registry::default();
        let overflow = OverflowMetrics::register(&mut registry).counter("things");
        let family = CappedFamily::new(
            vec!["a".into(), "b".into()],
            limit,
            overflow.clone(),
            Counter::default,
        );
        registry.register("things", "Things.", family.clone());
        (registry, family, overflow)
    }

    #[test]
    fn ten_thousand_values_stay_within_the_cap() {
        let (registry, family, overflow) = family(DEFAULT_LIMIT);
        let mut key = KeyBuilder::default();
        for i in 0..10_000 {
            key.clear();
            key.push(&format!("user-{i}"));
            key.push("x");
            family.with(key.as_str(), |c| c.inc());
        }
        assert_eq!(family.len(), DEFAULT_LIMIT + 1);
        assert_eq!(overflow.get(), 9_000);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"things_total{a="__overflow__",b="__overflow__"} 9000"#),
            "{}",
            &text[..500.min(text.len())]
        );
        assert!(text.contains(r#"sidewatch_label_overflow_total{metric="things"} 9000"#));
        // Known series keep counting after the cap is reached.
        key.clear();
        key.push("user-7");
        key.push("x");
        family.with(key.as_str(), |c| c.inc());
        assert_eq!(overflow.get(), 9_000);
    }

    #[test]
    fn values_are_escaped_and_cut() {
        let (registry, family, _) = family(10);
        let mut key = KeyBuilder::default();
        key.push("say \"hi\"\n\\");
        key.push(&"y".repeat(500));
        family.with(key.as_str(), |c| c.inc());
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        let expected = format!(
            r#"things_total{{a="say \"hi\"\n\\",b="{}"}} 1"#,
            "y".repeat(128)
        );
        assert!(text.contains(&expected), "{text}");
    }

    #[test]
    fn a_shared_budget_bounds_several_families() {
        let budget = Arc::new(AtomicUsize::new(3));
        let make = |name: &str| {
            CappedFamily::new(
                vec![name.into()],
                100,
                Counter::default(),
                Counter::<u64>::default,
            )
            .with_budget(budget.clone())
        };
        let (x, y) = (make("x"), make("y"));
        for i in 0..5 {
            x.with(&i.to_string(), |c| c.inc());
            y.with(&i.to_string(), |c| c.inc());
        }
        assert_eq!(x.len() + y.len(), 3 + 2);
    }
}
