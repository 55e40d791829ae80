//! Metric export: on an interval, the registry's OpenMetrics text (exactly
//! what `/metrics` serves) becomes one `ExportMetricsServiceRequest`.
//!
//! Names are the Prometheus text names (counters with `_total`, info
//! families as `*_info` gauges), so dashboards that query the Prometheus
//! names find the same series behind a Collector's Prometheus exporter.
//! Counters are monotonic sums, gauges gauges, histograms explicit-bucket
//! histograms with the registry's bounds; exemplars become OTLP exemplars
//! (`trace_id` into the trace-ID field when it is 32 hex digits). With
//! delta temporality each export reports the change since the last
//! *accepted* one (a failed export is folded into the next; a counter that
//! went down restarted and reports its value).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use crate::telemetry::parts::Registries;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric, number_data_point, AggregationTemporality, Exemplar, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use super::openmetrics::{self, Family, Kind, Labels, Sample};
use super::resource::string_attribute;
use super::{hex_id, unix_nanos, Otlp, Signal};
use crate::config::otlp::Temporality;
use crate::telemetry::expfmt::Exposition;

/// What a delta export remembers of a series.
#[derive(Debug, Clone)]
enum Previous {
    Sum(f64),
    Histogram {
        count: u64,
        sum: f64,
        buckets: Vec<u64>,
    },
}

/// Turns registry text into export requests, keeping the delta baseline.
#[derive(Debug)]
pub struct MetricsEncoder {
    temporality: Temporality,
    /// Start of cumulative series (sidewatch's start).
    start: u64,
    /// Delta: the values at the last accepted export, and its time.
    accepted: HashMap<String, Previous>,
    accepted_at: u64,
    /// Delta: the values of the request being sent.
    pending: HashMap<String, Previous>,
    pending_at: u64,
}

impl MetricsEncoder {
    /// An encoder whose cumulative series start at `start`.
    pub fn new(temporality: Temporality, start: SystemTime) -> Self {
        Self {
            temporality,
            start: unix_nanos(start),
            accepted: HashMap::new(),
            accepted_at: unix_nanos(start),
            pending: HashMap::new(),
            pending_at: 0,
        }
    }

    /// Encodes OpenMetrics `text` (as of `now`) as one request.
    pub fn encode(
        &mut self,
        text: &str,
        now: SystemTime,
        resource: &opentelemetry_proto::tonic::resource::v1::Resource,
    ) -> ExportMetricsServiceRequest {
        let now = unix_nanos(now);
        self.pending.clear();
        self.pending_at = now;
        let metrics = openmetrics::parse(text)
            .iter()
            .filter_map(|family| self.metric(family, now))
            .collect();
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(resource.clone()),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(super::scope()),
                    metrics,
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            }],
        }
    }

    /// The last encoded request was accepted: it becomes the delta baseline.
    pub fn accepted(&mut self) {
        if self.temporality == Temporality::Delta {
            std::mem::swap(&mut self.accepted, &mut self.pending);
            self.accepted_at = self.pending_at;
        }
    }

    fn temporality(&self) -> i32 {
        match self.temporality {
            Temporality::Cumulative => AggregationTemporality::Cumulative as i32,
            Temporality::Delta => AggregationTemporality::Delta as i32,
        }
    }

    fn series_start(&self) -> u64 {
        match self.temporality {
            Temporality::Cumulative => self.start,
            Temporality::Delta => self.accepted_at,
        }
    }

    fn metric(&mut self, family: &Family<'_>, now: u64) -> Option<Metric> {
        let (name, data) = match family.kind {
            Kind::Counter => {
                let total = format!("{}_total", family.name);
                let points = family
                    .samples
                    .iter()
                    .filter(|s| s.name == total)
                    .map(|s| self.sum_point(&total, s, now))
                    .collect();
                let sum = Sum {
                    data_points: points,
                    aggregation_temporality: self.temporality(),
                    is_monotonic: true,
                };
                (total, metric::Data::Sum(sum))
            }
            Kind::Histogram => {
                let points = self.histogram_points(family, now);
                let histogram = Histogram {
                    data_points: points,
                    aggregation_temporality: self.temporality(),
                };
                (family.name.to_owned(), metric::Data::Histogram(histogram))
            }
            Kind::Gauge | Kind::Info | Kind::Unknown => {
                let name = match family.kind {
                    Kind::Info => format!("{}_info", family.name),
                    _ => family.name.to_owned(),
                };
                let points = family
                    .samples
                    .iter()
                    .map(|s| number_point(s, self.start, now, s.value))
                    .collect();
                (
                    name,
                    metric::Data::Gauge(Gauge {
                        data_points: points,
                    }),
                )
            }
        };
        let empty = match &data {
            metric::Data::Sum(s) => s.data_points.is_empty(),
            metric::Data::Gauge(g) => g.data_points.is_empty(),
            metric::Data::Histogram(h) => h.data_points.is_empty(),
            _ => true,
        };
        (!empty).then(|| Metric {
            unit: unit(family.unit, &name).to_owned(),
            name,
            description: family.help.to_owned(),
            data: Some(data),
            ..Metric::default()
        })
    }

    fn sum_point(&mut self, name: &str, sample: &Sample<'_>, now: u64) -> NumberDataPoint {
        let mut value = sample.value;
        if self.temporality == Temporality::Delta {
            let key = series_key(name, &sample.labels);
            if let Some(Previous::Sum(before)) = self.accepted.get(&key) {
                if value >= *before {
                    value -= before;
                }
            }
            self.pending.insert(key, Previous::Sum(sample.value));
        }
        number_point(sample, self.series_start(), now, value)
    }

    fn histogram_points(&mut self, family: &Family<'_>, now: u64) -> Vec<HistogramDataPoint> {
        struct Series<'s, 'a> {
            labels: Vec<&'s (&'a str, std::borrow::Cow<'a, str>)>,
            bounds: Vec<f64>,
            cumulative: Vec<u64>,
            exemplars: Vec<Exemplar>,
            count: u64,
            sum: f64,
        }
        let bucket = format!("{}_bucket", family.name);
        let sum_name = format!("{}_sum", family.name);
        let count_name = format!("{}_count", family.name);
        let mut order: Vec<Series<'_, '_>> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for sample in &family.samples {
            let labels: Vec<_> = sample.labels.iter().filter(|(k, _)| *k != "le").collect();
            let key = labels
                .iter()
                .map(|(k, v)| format!("{k}={v}\u{1}"))
                .collect::<String>();
            let at = *index.entry(key).or_insert_with(|| {
                order.push(Series {
                    labels: labels.clone(),
                    bounds: Vec::new(),
                    cumulative: Vec::new(),
                    exemplars: Vec::new(),
                    count: 0,
                    sum: 0.0,
                });
                order.len() - 1
            });
            let series = &mut order[at];
            if sample.name == bucket {
                let le = sample.labels.iter().find(|(k, _)| *k == "le");
                let Some(bound) = le.and_then(|(_, v)| match v.as_ref() {
                    "+Inf" => Some(f64::INFINITY),
                    other => other.parse::<f64>().ok(),
                }) else {
                    continue;
                };
                if bound.is_finite() {
                    series.bounds.push(bound);
                }
                series.cumulative.push(sample.value as u64);
                if let Some(e) = &sample.exemplar {
                    series.exemplars.push(exemplar(e, now));
                }
            } else if sample.name == sum_name {
                series.sum = sample.value;
            } else if sample.name == count_name {
                series.count = sample.value as u64;
            }
        }
        let start = self.series_start();
        order
            .into_iter()
            .map(|series| {
                let mut buckets: Vec<u64> = series
                    .cumulative
                    .iter()
                    .scan(0u64, |before, &c| {
                        let n = c.saturating_sub(*before);
                        *before = c;
                        Some(n)
                    })
                    .collect();
                let (mut count, mut sum) = (series.count, series.sum);
                let attributes: Vec<KeyValue> = series
                    .labels
                    .iter()
                    .map(|(k, v)| string_attribute(*k, v.as_ref()))
                    .collect();
                if self.temporality == Temporality::Delta {
                    let owned: Labels<'_> = series.labels.iter().map(|l| (**l).clone()).collect();
                    let key = series_key(family.name, &owned);
                    let current = Previous::Histogram {
                        count,
                        sum,
                        buckets: buckets.clone(),
                    };
                    if let Some(Previous::Histogram {
                        count: c0,
                        sum: s0,
                        buckets: b0,
                    }) = self.accepted.get(&key)
                    {
                        if count >= *c0 && b0.len() == buckets.len() {
                            count -= c0;
                            sum -= s0;
                            for (b, before) in buckets.iter_mut().zip(b0) {
                                *b = b.saturating_sub(*before);
                            }
                        }
                    }
                    self.pending.insert(key, current);
                }
                HistogramDataPoint {
                    attributes,
                    start_time_unix_nano: start,
                    time_unix_nano: now,
                    count,
                    sum: Some(sum),
                    bucket_counts: buckets,
                    explicit_bounds: series.bounds,
                    exemplars: series.exemplars,
                    ..HistogramDataPoint::default()
                }
            })
            .collect()
    }
}

fn series_key(name: &str, labels: &Labels<'_>) -> String {
    let mut key = String::with_capacity(name.len() + labels.len() * 24);
    key.push_str(name);
    for (k, v) in labels {
        key.push('\u{1}');
        key.push_str(k);
        key.push('=');
        key.push_str(v);
    }
    key
}

fn number_point(sample: &Sample<'_>, start: u64, now: u64, value: f64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: sample
            .labels
            .iter()
            .map(|(k, v)| string_attribute(*k, v.as_ref()))
            .collect(),
        start_time_unix_nano: start,
        time_unix_nano: now,
        exemplars: sample.exemplar.iter().map(|e| exemplar(e, now)).collect(),
        value: Some(number_data_point::Value::AsDouble(value)),
        ..NumberDataPoint::default()
    }
}

fn exemplar(e: &openmetrics::Exemplar<'_>, now: u64) -> Exemplar {
    let mut out = Exemplar {
        time_unix_nano: e
            .timestamp
            .filter(|t| *t > 0.0)
            .map_or(now, |t| (t * 1e9) as u64),
        value: Some(exemplar::Value::AsDouble(e.value)),
        ..Exemplar::default()
    };
    for (key, value) in &e.labels {
        match *key {
            "trace_id" => match hex_id::<16>(value) {
                Some(id) => out.trace_id = id.to_vec(),
                None => out
                    .filtered_attributes
                    .push(string_attribute(*key, value.as_ref())),
            },
            "span_id" => match hex_id::<8>(value) {
                Some(id) => out.span_id = id.to_vec(),
                None => out
                    .filtered_attributes
                    .push(string_attribute(*key, value.as_ref())),
            },
            _ => out
                .filtered_attributes
                .push(string_attribute(*key, value.as_ref())),
        }
    }
    out
}

/// The UCUM unit: from `# UNIT`, else from the name's base-unit suffix.
fn unit<'a>(declared: &'a str, name: &str) -> &'a str {
    let base = name.strip_suffix("_total").unwrap_or(name);
    match declared {
        "seconds" => "s",
        "bytes" => "By",
        "" if base.ends_with("_seconds") => "s",
        "" if base.ends_with("_bytes") => "By",
        other => other,
    }
}

/// The metric export task.
#[derive(Debug)]
pub struct MetricsExporter {
    registry: Registries,
    otlp: Otlp,
    encoder: MetricsEncoder,
    interval: Duration,
    size_hint: usize,
}

impl MetricsExporter {
    /// An exporter of `registry` every `interval`.
    pub fn new(
        registry: Registries,
        otlp: Otlp,
        temporality: Temporality,
        interval: Duration,
    ) -> Self {
        Self {
            registry,
            otlp,
            encoder: MetricsEncoder::new(temporality, SystemTime::now()),
            interval,
            size_hint: 16 * 1024,
        }
    }

    /// Encodes the registry now, as one protobuf request.
    pub fn encode_now(&mut self) -> Vec<u8> {
        let text = match crate::telemetry::encode_parts(
            &self.registry,
            Exposition::OpenMetrics,
            self.size_hint,
        ) {
            Ok(text) => text,
            Err(error) => {
                tracing::error!(%error, "cannot encode metrics for OTLP");
                return Vec::new();
            }
        };
        self.size_hint = text.len() + text.len() / 8;
        self.encoder
            .encode(&text, SystemTime::now(), &self.otlp.resource)
            .encode_to_vec()
    }

    /// Encodes and sends one export; a failure is counted, shown in
    /// `/status` and left for the next interval (never retried in a loop).
    pub async fn export_once(&mut self) {
        let body = self.encode_now();
        if body.is_empty() {
            return;
        }
        match self.otlp.client.export(Signal::Metrics, &body).await {
            crate::logs::sink::delivery::client::Outcome::Delivered => self.encoder.accepted(),
            crate::logs::sink::delivery::client::Outcome::Retry { message, .. }
            | crate::logs::sink::delivery::client::Outcome::Rejected { message, .. } => {
                tracing::warn!(error = %message, "OTLP metric export failed; the next interval tries again");
            }
        }
    }

    /// Exports every interval until `stop`, then once more (bounded by the
    /// request timeout) so the last values are not lost.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + self.interval, self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => self.export_once().await,
                () = stop.cancelled() => break,
            }
        }
        if tokio::time::timeout(FINAL_EXPORT, self.export_once())
            .await
            .is_err()
        {
            tracing::warn!("last OTLP metric export at shutdown timed out");
        }
    }
}

/// Longest wait for the last export at shutdown.
const FINAL_EXPORT: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests;
