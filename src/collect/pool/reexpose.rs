//! Re-exposing selected families read from the app's Prometheus endpoint on
//! sidewatch's `/metrics`, so the app needs no second scrape config.
//!
//! Names, label sets and values are kept as read. Types are kept too, within
//! what `prometheus-client` can write: a counter whose samples do not end in
//! `_total` (which OpenMetrics requires) and a summary (which it has no type
//! for) are written as untyped series under their original names, so
//! queries keep working. Histogram `le` values are written in canonical float
//! form (`1` becomes `1.0`), which `histogram_quantile` reads the same.
//! Timestamps are dropped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::promtext::{Family, Sample, Type};

type Labels = Vec<(String, String)>;

/// The families each source re-exposes, encoded at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Reexposed {
    sources: Arc<RwLock<BTreeMap<String, Vec<Family>>>>,
}

impl Reexposed {
    /// Replaces everything `source` re-exposes.
    pub fn set(&self, source: &str, families: Vec<Family>) {
        let mut sources = self.sources.write().unwrap_or_else(|e| e.into_inner());
        if families.is_empty() {
            sources.remove(source);
        } else {
            sources.insert(source.to_owned(), families);
        }
    }
}

/// Whether `name` is selected by one of `patterns` (exact, or `prefix*`).
/// A counter may be named with or without its `_total`.
pub fn selected(name: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => {
            p == name
                || name.strip_suffix("_total") == Some(p)
                || p.strip_suffix("_total") == Some(name)
        }
    })
}

/// Keeps the families `patterns` select, each with at most `max_series`
/// series (label sets, `le`/`quantile` aside); returns them and how many
/// series were dropped.
pub fn select(families: Vec<Family>, patterns: &[String], max_series: usize) -> (Vec<Family>, u64) {
    let mut dropped = 0;
    let kept = families
        .into_iter()
        .filter(|family| selected(&family.name, patterns) && !family.samples.is_empty())
        .map(|mut family| {
            let mut series = HashSet::new();
            family.samples.retain(|sample| {
                let key = series_key(&sample.labels);
                if series.contains(&key) || series.len() < max_series {
                    series.insert(key);
                    true
                } else {
                    dropped += 1;
                    false
                }
            });
            family
        })
        .collect();
    (kept, dropped)
}

fn series_key(labels: &Labels) -> Labels {
    labels
        .iter()
        .filter(|(k, _)| k != "le" && k != "quantile")
        .cloned()
        .collect()
}

impl Collector for Reexposed {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let sources = self.sources.read().unwrap_or_else(|e| e.into_inner());
        // Two sources may select the same family (overlapping prefixes): the first wins.
        let mut written = HashSet::new();
        for family in sources.values().flatten() {
            if written.insert(family.name.as_str()) {
                encode_family(&mut encoder, family)?;
            }
        }
        Ok(())
    }
}

fn encode_family(encoder: &mut DescriptorEncoder, family: &Family) -> fmt::Result {
    let help = if family.help.is_empty() {
        "Re-exposed from the app's metrics endpoint"
    } else {
        family.help.as_str()
    };
    match family.kind {
        Type::Counter => {
            let base = family.name.strip_suffix("_total").unwrap_or(&family.name);
            let total = format!("{base}_total");
            if family.samples.iter().all(|s| s.name == total) {
                simple(encoder, base, help, MetricType::Counter, &family.samples)
            } else {
                untyped(encoder, &family.name, help, &family.samples)
            }
        }
        Type::Gauge => {
            let samples = named(&family.samples, &family.name);
            simple(encoder, &family.name, help, MetricType::Gauge, &samples)
        }
        Type::Untyped => untyped(encoder, &family.name, help, &family.samples),
        Type::Histogram => histogram(encoder, &family.name, help, &family.samples),
        Type::Summary => {
            for suffix in ["", "_sum", "_count"] {
                let name = format!("{}{suffix}", family.name);
                untyped(encoder, &name, help, &named(&family.samples, &name))?;
            }
            Ok(())
        }
    }
}

fn named(samples: &[Sample], name: &str) -> Vec<Sample> {
    samples.iter().filter(|s| s.name == name).cloned().collect()
}

fn untyped(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[Sample],
) -> fmt::Result {
    simple(
        encoder,
        name,
        help,
        MetricType::Unknown,
        &named(samples, name),
    )
}

/// A family of one-value series: counter, gauge or untyped.
fn simple(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: &[Sample],
) -> fmt::Result {
    if samples.is_empty() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    let value = |value: f64, sample: MetricEncoder<'_>| match kind {
        MetricType::Counter => ConstCounter::new(value).encode(sample),
        _ => ConstGauge::new(value).encode(sample),
    };
    if let [only] = samples {
        if only.labels.is_empty() {
            return value(only.value, metric);
        }
    }
    for sample in samples {
        value(sample.value, metric.encode_family(&sample.labels)?)?;
    }
    Ok(())
}

#[derive(Default)]
struct Series {
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: Option<f64>,
}

fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[Sample],
) -> fmt::Result {
    let (bucket, sum, count) = (
        format!("{name}_bucket"),
        format!("{name}_sum"),
        format!("{name}_count"),
    );
    let mut order: Vec<Labels> = Vec::new();
    let mut series: HashMap<Labels, Series> = HashMap::new();
    for sample in samples {
        let key = series_key(&sample.labels);
        let entry = series.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            Series::default()
        });
        if sample.name == bucket {
            let le = sample
                .labels
                .iter()
                .find(|(k, _)| k == "le")
                .map(|(_, v)| v.as_str());
            if let Some(le) = le.and_then(|le| le.parse::<f64>().ok()) {
                entry.buckets.push((le, sample.value));
            }
        } else if sample.name == sum {
            entry.sum = sample.value;
        } else if sample.name == count {
            entry.count = Some(sample.value);
        }
    }
    if order.is_empty() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    let single_unlabelled = order.len() == 1 && order[0].is_empty();
    for labels in &order {
        let Some(entry) = series.get_mut(labels) else {
            continue;
        };
        entry.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let count = entry
            .count
            .or_else(|| entry.buckets.last().map(|b| b.1))
            .unwrap_or(0.0);
        if entry.buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
            entry.buckets.push((f64::INFINITY, count));
        }
        // The encoder takes per-bucket counts and accumulates them itself.
        let mut previous = 0.0;
        let buckets: Vec<(f64, u64)> = entry
            .buckets
            .iter()
            .map(|&(le, cumulative)| {
                let bucket = (cumulative - previous).max(0.0) as u64;
                previous = cumulative.max(previous);
                (if le == f64::INFINITY { f64::MAX } else { le }, bucket)
            })
            .collect();
        let count = count.max(0.0) as u64;
        let no_exemplars: Option<&HashMap<usize, Exemplar<Labels, f64>>> = None;
        if single_unlabelled {
            metric.encode_histogram(entry.sum, count, &buckets, no_exemplars)?;
        } else {
            metric.encode_family(labels)?.encode_histogram(
                entry.sum,
                count,
                &buckets,
                no_exemplars,
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;

    use super::*;
    use crate::collect::pool::promtext;

    const APP: &str = r#"# HELP hikaricp_connections_active Active connections
# TYPE hikaricp_connections_active gauge
hikaricp_connections_active{pool="main"} 3
hikaricp_connections_active{pool="odd \"q\""} 1
# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code="200"} 10
http_requests_total{code="500"} 1
# TYPE legacy_counter counter
legacy_counter 4
# HELP latency_seconds Latency.
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} 5
latency_seconds_bucket{le="1"} 6
latency_seconds_bucket{le="+Inf"} 7
latency_seconds_sum 1.5
latency_seconds_count 7
# TYPE rpc_seconds summary
rpc_seconds{quantile="0.5"} 0.2
rpc_seconds_sum 10
rpc_seconds_count 50
# TYPE other gauge
other 1
"#;

    fn encoded(patterns: &[&str], max_series: usize) -> (String, u64) {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        let (families, dropped) = select(promtext::parse(APP).unwrap(), &patterns, max_series);
        let reexposed = Reexposed::default();
        reexposed.set("app", families);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(reexposed));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let mut prometheus = String::new();
        crate::telemetry::expfmt::openmetrics_to_prometheus(&text, &mut prometheus);
        (prometheus, dropped)
    }

    #[test]
    fn keeps_names_labels_and_types() {
        let (text, dropped) = encoded(
            &[
                "hikaricp_*",
                "http_requests_total",
                "legacy_counter",
                "latency_seconds",
                "rpc_seconds",
            ],
            100,
        );
        assert_eq!(dropped, 0);
        for line in [
            "# TYPE hikaricp_connections_active gauge",
            "hikaricp_connections_active{pool=\"main\"} 3",
            "hikaricp_connections_active{pool=\"odd \\\"q\\\"\"} 1",
            "# HELP http_requests_total Requests.",
            "# TYPE http_requests_total counter",
            "http_requests_total{code=\"500\"} 1",
            "# TYPE legacy_counter untyped",
            "legacy_counter 4",
            "# TYPE latency_seconds histogram",
            "latency_seconds_bucket{le=\"0.1\"} 5",
            "latency_seconds_bucket{le=\"1.0\"} 6",
            "latency_seconds_bucket{le=\"+Inf\"} 7",
            "latency_seconds_count 7",
            "rpc_seconds{quantile=\"0.5\"} 0.2",
            "rpc_seconds_count 50",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(!text.contains("other"), "{text}");
    }

    #[test]
    fn caps_series_per_family() {
        let (text, dropped) = encoded(&["hikaricp_connections_active"], 1);
        assert_eq!(dropped, 1);
        assert!(text.contains("pool=\"main\""), "{text}");
        assert!(!text.contains("odd"), "{text}");
    }

    #[test]
    fn selection_by_name_prefix_and_total() {
        let patterns = vec!["http_requests".to_owned(), "db_*".to_owned()];
        assert!(selected("http_requests_total", &patterns));
        assert!(selected("db_pool_size", &patterns));
        assert!(!selected("http_requests_in_flight", &patterns));
    }
}
