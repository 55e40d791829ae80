//! The demo app's own `/metrics`, as an instrumented app exports them
//! (prom-client style): `http_requests_total` and the
//! `http_request_duration_seconds` histogram by `method`, `route`, `status`,
//! with the SLO thresholds 0.5, 1, 2 and 5 s as exact bucket bounds.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency buckets in seconds; the SLO thresholds are exact bounds.
pub const BUCKETS: [f64; 11] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0];

/// A request's labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: String,
}

/// The demo app's request metrics (cheap to clone; shared by connections).
#[derive(Debug, Clone)]
pub struct AppMetrics {
    registry: Arc<Mutex<Registry>>,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RequestLabels, Histogram>,
}

impl Default for AppMetrics {
    fn default() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let durations =
            Family::<RequestLabels, Histogram>::new_with_constructor(|| Histogram::new(BUCKETS));
        let mut registry = Registry::default();
        registry.register(
            "http_requests",
            "Requests served by the demo app",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Request duration of the demo app, in seconds",
            durations.clone(),
        );
        Self {
            registry: Arc::new(Mutex::new(registry)),
            requests,
            durations,
        }
    }
}

impl AppMetrics {
    /// Counts one request and its duration.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let labels = RequestLabels {
            method: method.to_owned(),
            route: route.to_owned(),
            status: status.to_string(),
        };
        self.requests.get_or_create(&labels).inc();
        self.durations.get_or_create(&labels).observe(seconds);
    }

    /// The OpenMetrics text (Prometheus scrapes it as such).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_requests_and_exact_slo_buckets() {
        let metrics = AppMetrics::default();
        metrics.observe("GET", "/api/chat", 500, 1.5);
        let text = metrics.encode();
        assert!(
            text.contains(
                "http_requests_total{method=\"GET\",route=\"/api/chat\",status=\"500\"} 1"
            ),
            "{text}"
        );
        for le in ["0.5", "1.0", "2.0", "5.0"] {
            assert!(
                text.contains(&format!("le=\"{le}\"")),
                "{le} missing: {text}"
            );
        }
    }
}
