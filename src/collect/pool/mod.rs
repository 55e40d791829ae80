//! The app pool collector: reads the app's own connection-pool statistics
//! from a JSON endpoint (mapped by a preset or JSON pointers, see
//! [`presets`]) into OpenTelemetry semantic-convention names, or re-exposes
//! selected families from the app's Prometheus endpoint (see [`reexpose`]).
//!
//! Metrics: `db_client_connection_count{source,pool_name,state="idle|used"}`,
//! `db_client_connection_max{source,pool_name}`,
//! `db_client_connection_pending_requests{source,pool_name}`,
//! `db_client_connection_wait_time_seconds{source,pool_name}` (when reported),
//! `sidewatch_pool_series_dropped_total{source}`. Failure reasons: `connect`,
//! `timeout`, `status`, `shape` (the JSON does not match the mapping; the
//! failing pointer is in `/status`).

pub mod mapping;
pub mod presets;
mod promtext;
mod reexpose;

use std::collections::HashMap;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde_json::json;
use url::Url;

use self::mapping::PoolStats;
use self::presets::Mapping;
use self::reexpose::Reexposed;
use super::{CollectError, Collected, Collector};
use crate::config::{mask_url, PoolSource, Preset, SourceKind};
use crate::telemetry::snapshot::{Kind, Labels, SnapshotFamily};

/// The largest body read from a pool endpoint.
const MAX_BODY_BYTES: usize = 8 << 20;
/// Pool names longer than this are cut (they become label values).
const MAX_NAME_CHARS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

/// The pool families every source writes to.
#[derive(Debug, Clone)]
pub struct PoolMetrics {
    count: SnapshotFamily,
    max: SnapshotFamily,
    pending: SnapshotFamily,
    wait: SnapshotFamily,
    dropped: Family<SourceLabels, Counter>,
    reexposed: Reexposed,
}

impl PoolMetrics {
    /// Registers the families (and the collector that writes re-exposed ones).
    pub fn register(registry: &mut Registry) -> Self {
        let mut gauge =
            |name: &str, help: &str| SnapshotFamily::register(registry, name, help, Kind::Gauge);
        let metrics = Self {
            count: gauge("db_client_connection_count", "Connections in the app's pool by state (idle, used), as the app reports them"),
            max: gauge("db_client_connection_max", "The maximum number of connections the app's pool allows"),
            pending: gauge("db_client_connection_pending_requests", "Requests waiting for a connection from the app's pool"),
            wait: gauge("db_client_connection_wait_time_seconds", "Time requests waited for a connection from the pool, as the app reports it (for running totals: the average wait since the previous read)"),
            dropped: Family::default(),
            reexposed: Reexposed::default(),
        };
        registry.register(
            "sidewatch_pool_series_dropped",
            "Pools (JSON) or series (Prometheus) dropped because a source reported more than its limit",
            metrics.dropped.clone(),
        );
        registry.register_collector(Box::new(metrics.reexposed.clone()));
        metrics
    }
}

enum Reader {
    Json {
        mapping: Box<Mapping>,
        /// Per pool: the last (wait total, wait count), for running totals.
        previous_waits: HashMap<String, (f64, f64)>,
    },
    Prometheus {
        families: Vec<String>,
        max_series: usize,
    },
}

/// Reads one pool source on its interval.
pub struct PoolCollector {
    name: String,
    source: String,
    url: Url,
    bearer: Option<http::HeaderValue>,
    client: reqwest::Client,
    interval: Duration,
    timeout: Duration,
    max_pools: usize,
    reader: Reader,
    metrics: PoolMetrics,
    dropped: Counter,
}

impl std::fmt::Debug for PoolCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolCollector")
            .field("name", &self.name)
            .field("url", &mask_url(&self.url))
            .finish_non_exhaustive()
    }
}

impl PoolCollector {
    /// Builds the collector for a validated source.
    pub fn build(source: &PoolSource, metrics: &PoolMetrics) -> Result<Self, String> {
        let url = source.url.clone().ok_or("`url` must be set")?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("sidewatch/", env!("CARGO_PKG_VERSION")))
            .timeout(source.timeout)
            .no_proxy()
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        let bearer = source
            .bearer_token
            .as_ref()
            .map(|token| {
                let mut value = http::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| {
                        "bearer_token holds characters not allowed in a header".to_owned()
                    })?;
                value.set_sensitive(true);
                Ok::<_, String>(value)
            })
            .transpose()?;
        let reader = match source.kind {
            SourceKind::Json => Reader::Json {
                mapping: Box::new(presets::resolve(
                    source.preset.unwrap_or(Preset::Custom),
                    &source.mapping,
                )),
                previous_waits: HashMap::new(),
            },
            SourceKind::Prometheus => Reader::Prometheus {
                families: source.families.clone(),
                max_series: source.max_series_per_family,
            },
        };
        Ok(Self {
            name: format!("pool/{}", source.name),
            source: source.name.clone(),
            url,
            bearer,
            client,
            interval: source.interval,
            timeout: source.timeout,
            max_pools: source.max_pools,
            reader,
            dropped: metrics.dropped.get_or_create_owned(&SourceLabels {
                source: source.name.clone(),
            }),
            metrics: metrics.clone(),
        })
    }

    /// GETs the endpoint; the body, or a failure with its reason.
    async fn fetch(&self) -> Result<Vec<u8>, CollectError> {
        let accept = match self.reader {
            Reader::Json { .. } => "application/json",
            Reader::Prometheus { .. } => "text/plain;version=0.0.4;q=1,*/*;q=0.1",
        };
        let mut request = self
            .client
            .get(self.url.clone())
            .header(http::header::ACCEPT, accept);
        if let Some(bearer) = &self.bearer {
            request = request.header(http::header::AUTHORIZATION, bearer.clone());
        }
        let classify = |error: reqwest::Error| {
            let reason = if error.is_timeout() {
                "timeout"
            } else {
                "connect"
            };
            CollectError::new(reason, error.without_url().to_string())
        };
        let mut response = request.send().await.map_err(classify)?;
        let status = response.status();
        if !status.is_success() {
            return Err(CollectError::new(
                "status",
                format!("unexpected status {}", status.as_u16()),
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(CollectError::new(
                    "shape",
                    format!("body larger than {MAX_BODY_BYTES} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn clear(&self) {
        for family in [
            &self.metrics.count,
            &self.metrics.max,
            &self.metrics.pending,
            &self.metrics.wait,
        ] {
            family.set(&self.source, Vec::new());
        }
        self.metrics.reexposed.set(&self.source, Vec::new());
    }

    fn read_json(&mut self, body: &[u8]) -> Result<Collected, CollectError> {
        let Reader::Json {
            mapping,
            previous_waits,
        } = &mut self.reader
        else {
            return Err(CollectError::new("shape", "not a JSON source"));
        };
        let document: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| CollectError {
                reason: "shape",
                message: format!("body is not JSON: {e}"),
                details: json!({ "url": mask_url(&self.url), "pointer": "" }),
            })?;
        let (pools, extra) = mapping::read(&document, mapping, self.max_pools).map_err(|e| CollectError {
            reason: "shape",
            message: format!("pool JSON does not match the mapping at {e}"),
            details: json!({ "url": mask_url(&self.url), "pointer": e.pointer, "problem": e.problem }),
        })?;
        self.dropped.inc_by(extra as u64);
        let mut samples = Samples::default();
        for pool in &pools {
            let name = label_value(&pool.name);
            let wait = average_wait(pool, previous_waits);
            samples.add(&self.source, &name, pool, wait);
        }
        previous_waits.retain(|name, _| pools.iter().any(|p| &p.name == name));
        self.metrics.count.set(&self.source, samples.count);
        self.metrics.max.set(&self.source, samples.max);
        self.metrics.pending.set(&self.source, samples.pending);
        self.metrics.wait.set(&self.source, samples.wait);
        let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
        Ok(Collected {
            degraded: (extra > 0).then(|| {
                format!(
                    "{extra} pools beyond max_pools = {} dropped",
                    self.max_pools
                )
            }),
            details: json!({ "url": mask_url(&self.url), "pools": names, "pools_dropped": extra }),
        })
    }

    fn read_prometheus(&mut self, body: &[u8]) -> Result<Collected, CollectError> {
        let Reader::Prometheus {
            families,
            max_series,
        } = &self.reader
        else {
            return Err(CollectError::new("shape", "not a Prometheus source"));
        };
        let text = String::from_utf8_lossy(body);
        let parsed = promtext::parse(&text).map_err(|e| CollectError {
            reason: "shape",
            message: format!("not Prometheus text: {e}"),
            details: json!({ "url": mask_url(&self.url), "line": e.line }),
        })?;
        let (selected, dropped) = reexpose::select(parsed, families, *max_series);
        self.dropped.inc_by(dropped);
        let names: Vec<String> = selected.iter().map(|f| f.name.clone()).collect();
        self.metrics.reexposed.set(&self.source, selected);
        Ok(Collected {
            degraded: (dropped > 0)
                .then(|| format!("{dropped} series beyond max_series_per_family dropped")),
            details: json!({ "url": mask_url(&self.url), "families": names, "series_dropped": dropped }),
        })
    }
}

/// The gauge value for the wait time: as read, or for running totals
/// (`wait_count` mapped) the average wait since the previous read.
fn average_wait(pool: &PoolStats, previous: &mut HashMap<String, (f64, f64)>) -> Option<f64> {
    let total = pool.wait_time?;
    let Some(count) = pool.wait_count else {
        return Some(total);
    };
    let last = previous.insert(pool.name.clone(), (total, count))?;
    let (waited, waits) = (total - last.0, count - last.1);
    if waited < 0.0 || waits < 0.0 {
        None // The counters were reset (app restart).
    } else if waits == 0.0 {
        Some(0.0)
    } else {
        Some(waited / waits)
    }
}

#[derive(Default)]
struct Samples {
    count: Vec<(Labels, f64)>,
    max: Vec<(Labels, f64)>,
    pending: Vec<(Labels, f64)>,
    wait: Vec<(Labels, f64)>,
}

impl Samples {
    fn add(&mut self, source: &str, name: &str, pool: &PoolStats, wait: Option<f64>) {
        let labels = |state: Option<&str>| -> Labels {
            let mut labels = vec![
                ("source".to_owned(), source.to_owned()),
                ("pool_name".to_owned(), name.to_owned()),
            ];
            if let Some(state) = state {
                labels.push(("state".to_owned(), state.to_owned()));
            }
            labels
        };
        self.count.push((labels(Some("idle")), pool.idle));
        self.count.push((labels(Some("used")), pool.used));
        let optional = [
            (&mut self.max, pool.max),
            (&mut self.pending, pool.pending),
            (&mut self.wait, wait),
        ];
        for (samples, value) in optional {
            if let Some(value) = value {
                samples.push((labels(None), value));
            }
        }
    }
}

/// A pool name as a label value: cut to a bounded length, control
/// characters dropped (snapshot families escape the rest).
fn label_value(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect()
}

impl Collector for PoolCollector {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "pool"
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn timeout(&self) -> Duration {
        // The HTTP client bounds itself; this only guards against a bug there.
        self.timeout + Duration::from_secs(1)
    }

    async fn collect(&mut self) -> Result<Collected, CollectError> {
        let result = match self.fetch().await {
            Ok(body) => match self.reader {
                Reader::Json { .. } => self.read_json(&body),
                Reader::Prometheus { .. } => self.read_prometheus(&body),
            },
            Err(error) => Err(error),
        };
        result.map_err(|mut error| {
            self.clear();
            if error.details.is_null() {
                error.details = json!({ "url": mask_url(&self.url) });
            }
            error
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(wait_time: f64, wait_count: f64) -> PoolStats {
        PoolStats {
            name: "p".into(),
            idle: 1.0,
            used: 1.0,
            max: None,
            pending: None,
            wait_time: Some(wait_time),
            wait_count: Some(wait_count),
        }
    }

    #[test]
    fn running_wait_totals_become_the_average_since_the_last_read() {
        let mut previous = HashMap::new();
        assert_eq!(average_wait(&stats(1.0, 2.0), &mut previous), None);
        assert_eq!(average_wait(&stats(4.0, 5.0), &mut previous), Some(1.0));
        assert_eq!(average_wait(&stats(4.0, 5.0), &mut previous), Some(0.0));
        assert_eq!(average_wait(&stats(0.5, 1.0), &mut previous), None);
        let mut direct = stats(0.25, 0.0);
        direct.wait_count = None;
        assert_eq!(average_wait(&direct, &mut previous), Some(0.25));
    }

    #[test]
    fn pool_names_are_bounded_and_cleaned() {
        assert_eq!(label_value("a\"b\\c\nd\u{7}"), "a\"b\\cd");
        assert_eq!(label_value(&"x".repeat(500)).len(), MAX_NAME_CHARS);
    }
}
