//! Metric families whose samples are replaced wholesale by their owners on an
//! interval and encoded at scrape time, so a scrape never waits on the network
//! and series that disappear from the source disappear from `/metrics`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// A label set as ordered `(name, value)` pairs.
pub type Labels = Vec<(String, String)>;

/// Whether a snapshot family is a gauge or a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A monotonically increasing total read from elsewhere (name without `_total`).
    Counter,
}

/// A handle to one snapshot family. Each owner (a collector instance, say a
/// server or a target) replaces only its own samples.
#[derive(Debug, Clone)]
pub struct SnapshotFamily {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    help: String,
    kind: Kind,
    samples: RwLock<BTreeMap<String, Vec<(Labels, f64)>>>,
}

impl SnapshotFamily {
    /// Registers a new family on `registry` and returns its handle.
    pub fn register(registry: &mut Registry, name: &str, help: &str, kind: Kind) -> Self {
        let family = Self {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                help: help.to_owned(),
                kind,
                samples: RwLock::new(BTreeMap::new()),
            }),
        };
        registry.register_collector(Box::new(family.clone()));
        family
    }

    /// Replaces every sample `owner` had with `samples`. Label values are
    /// given raw; they are escaped here for the exposition format, once.
    pub fn set(&self, owner: &str, mut samples: Vec<(Labels, f64)>) {
        for (labels, _) in &mut samples {
            for (_, value) in labels.iter_mut() {
                if let Cow::Owned(escaped) = escape_label_value(value) {
                    *value = escaped;
                }
            }
        }
        let mut all = self
            .inner
            .samples
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if samples.is_empty() {
            all.remove(owner);
        } else {
            all.insert(owner.to_owned(), samples);
        }
    }

    /// The value of one series (given raw label values), if present.
    pub fn get(&self, labels: &[(&str, &str)]) -> Option<f64> {
        let all = self.inner.samples.read().unwrap_or_else(|e| e.into_inner());
        all.values().flatten().find_map(|(l, v)| {
            let same = l.len() == labels.len()
                && l.iter()
                    .zip(labels)
                    .all(|((a, b), (c, d))| a == c && *b == escape_label_value(d));
            same.then_some(*v)
        })
    }
}

impl Collector for SnapshotFamily {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let all = self.inner.samples.read().unwrap_or_else(|e| e.into_inner());
        if all.values().all(Vec::is_empty) {
            return Ok(());
        }
        let metric_type = match self.inner.kind {
            Kind::Gauge => MetricType::Gauge,
            Kind::Counter => MetricType::Counter,
        };
        let mut metric =
            encoder.encode_descriptor(&self.inner.name, &self.inner.help, None, metric_type)?;
        let mut samples = all.values().flatten().peekable();
        while let Some((labels, value)) = samples.next() {
            if labels.is_empty() && samples.peek().is_none() {
                // A single unlabelled series: `name 1`, not `name{} 1`.
                return self.encode_value(*value, metric);
            }
            self.encode_value(*value, metric.encode_family(labels)?)?;
        }
        Ok(())
    }
}

impl SnapshotFamily {
    fn encode_value(&self, value: f64, sample: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        match self.inner.kind {
            Kind::Gauge => ConstGauge::new(value).encode(sample),
            Kind::Counter => ConstCounter::new(value).encode(sample),
        }
    }
}

/// Escapes a label value for the text formats (`\\`, `\"`, `\n`).
/// `prometheus-client` writes label values as given, so every value that
/// comes from outside must pass through here.
pub fn escape_label_value(value: &str) -> Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(value);
    }
    let mut escaped = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str(r"\\"),
            '"' => escaped.push_str(r#"\""#),
            '\n' => escaped.push_str(r"\n"),
            c => escaped.push(c),
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn owners_replace_only_their_own_samples() {
        let mut registry = Registry::default();
        let family = SnapshotFamily::register(&mut registry, "checks_up", "Checks.", Kind::Gauge);
        family.set("a", vec![(labels(&[("target", "a")]), 1.0)]);
        family.set("b", vec![(labels(&[("target", "b")]), 0.0)]);
        family.set("a", vec![(labels(&[("target", "a")]), 0.0)]);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("checks_up{target=\"a\"} 0"), "{text}");
        assert!(text.contains("checks_up{target=\"b\"} 0"), "{text}");
        family.set("b", vec![]);
        assert_eq!(family.get(&[("target", "b")]), None);
    }

    #[test]
    fn label_values_from_outside_are_escaped() {
        let mut registry = Registry::default();
        let family = SnapshotFamily::register(&mut registry, "checks_up", "Checks.", Kind::Gauge);
        let raw = "say \"hi\"\\\n";
        family.set("a", vec![(labels(&[("check", raw)]), 1.0)]);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"checks_up{check="say \"hi\"\\\n"} 1"#),
            "{text}"
        );
        assert_eq!(family.get(&[("check", raw)]), Some(1.0));
    }

    #[test]
    fn counters_get_total_and_empty_families_are_omitted() {
        let mut registry = Registry::default();
        let cpu = SnapshotFamily::register(&mut registry, "cpu_seconds", "CPU.", Kind::Counter);
        let _unused = SnapshotFamily::register(&mut registry, "nothing", "Empty.", Kind::Gauge);
        cpu.set("self", vec![(vec![], 1.5)]);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("cpu_seconds_total 1.5"), "{text}");
        assert!(!text.contains("nothing"), "{text}");
    }
}
