//! The proxy's metrics: the standard request families (DESIGN.md "Metric
//! names"), every label set through the cardinality cap, and
//! `sidewatch_proxy_*` counters for what goes wrong.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::config::log_metrics::DEFAULT_BUCKETS;
use crate::logs::rules::{ExemplarHistogram, TraceLabel};
use crate::telemetry::cardinality::{CappedFamily, OverflowMetrics};

/// Methods kept as they are in the `method` label; any other is `OTHER`.
pub const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Size buckets in bytes: 64 B × 4ⁿ up to 256 MiB.
pub const SIZE_BUCKETS: [f64; 12] = [
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262144.0,
    1048576.0,
    4194304.0,
    16777216.0,
    67108864.0,
    268435456.0,
];

/// Why a request could not be forwarded (`reason` of
/// `sidewatch_proxy_upstream_errors_total`): `connect` (refused or
/// unreachable → 502), `connect_timeout` (→ 502), `timeout` (no response
/// headers in time → 504), `closed` (the app closed or reset the connection
/// before answering → 502), `invalid_response` (the app's response head is
/// not valid HTTP/1.1 → 502), `reset` (the app's response body broke off),
/// `client_body` (the client's small request body, read whole before it is
/// sent, broke off → 400; the app saw nothing).
pub const UPSTREAM_REASONS: [&str; 7] = [
    "connect",
    "connect_timeout",
    "timeout",
    "closed",
    "invalid_response",
    "reset",
    "client_body",
];

/// Why a client connection ended in error (`reason` of
/// `sidewatch_proxy_connection_errors_total`): `header_timeout`
/// (slowloris), `header_too_large` (answered `431`), `malformed` (answered
/// `400`), `io` (reset, disconnect mid-request).
pub const CONNECTION_REASONS: [&str; 4] = ["header_timeout", "header_too_large", "malformed", "io"];

type ReasonFamily = Family<[(&'static str, &'static str); 1], Counter>;

/// Handles to every proxy metric, registered at build time.
#[derive(Debug, Clone)]
pub struct ProxyMetrics {
    requests: CappedFamily<Counter>,
    duration: CappedFamily<ExemplarHistogram>,
    request_size: CappedFamily<Histogram>,
    response_size: CappedFamily<Histogram>,
    /// `http_requests_in_flight`.
    pub in_flight: Gauge,
    upstream_errors: ReasonFamily,
    connection_errors: ReasonFamily,
    /// `sidewatch_proxy_client_aborts_total`: responses the client went away from.
    pub client_aborts: Counter,
    /// `sidewatch_proxy_access_log_dropped_total`: events not queued (queue full).
    pub access_log_dropped: Counter,
    /// `sidewatch_proxy_upstream_idle_connections`: app connections kept
    /// open after their client connection closed, for the next one.
    pub upstream_idle: Gauge,
    /// `grpc_server_handled_total{grpc_service,grpc_method,grpc_code}`.
    grpc_handled: CappedFamily<Counter>,
}

impl ProxyMetrics {
    /// Registers the families with the default duration buckets; each keeps
    /// at most `limit` series.
    pub fn register(registry: &mut Registry, overflow: &OverflowMetrics, limit: usize) -> Self {
        let metrics = Self::new(overflow, limit, &DEFAULT_BUCKETS);
        metrics.register_on(registry);
        metrics
    }

    /// Creates the families (not registered yet): each keeps at most `limit`
    /// series; `buckets` are the duration histogram's bounds.
    pub fn new(overflow: &OverflowMetrics, limit: usize, buckets: &[f64]) -> Self {
        let names = || vec!["method".into(), "route".into(), "status".into()];
        let requests = CappedFamily::new(
            names(),
            limit,
            overflow.counter("http_requests_total"),
            Counter::default,
        );
        let size = |name: &str| {
            CappedFamily::new(names(), limit, overflow.counter(name), || {
                Histogram::new(SIZE_BUCKETS)
            })
        };
        let (request_size, response_size) = (
            size("http_request_size_bytes"),
            size("http_response_size_bytes"),
        );
        let metrics = Self {
            requests,
            duration: duration_family(overflow, limit, buckets),
            request_size,
            response_size,
            in_flight: Gauge::default(),
            upstream_errors: Family::default(),
            connection_errors: Family::default(),
            client_aborts: Counter::default(),
            access_log_dropped: Counter::default(),
            upstream_idle: Gauge::default(),
            grpc_handled: CappedFamily::new(
                vec![
                    "grpc_service".into(),
                    "grpc_method".into(),
                    "grpc_code".into(),
                ],
                limit,
                overflow.counter("grpc_server_handled_total"),
                Counter::default,
            ),
        };
        for reason in UPSTREAM_REASONS {
            let _ = metrics.upstream_errors.get_or_create(&[("reason", reason)]);
        }
        for reason in CONNECTION_REASONS {
            let _ = metrics
                .connection_errors
                .get_or_create(&[("reason", reason)]);
        }
        metrics
    }

    /// The same handles (values carry on) with a fresh
    /// `http_request_duration_seconds` family using `buckets` (on reload).
    pub fn with_duration_buckets(
        &self,
        overflow: &OverflowMetrics,
        limit: usize,
        buckets: &[f64],
    ) -> Self {
        let mut metrics = self.clone();
        metrics.duration = duration_family(overflow, limit, buckets);
        metrics
    }

    /// Registers these handles on `registry` (at start, and on the proxy's
    /// new registry part at each reload).
    pub fn register_on(&self, registry: &mut Registry) {
        let metrics = self;
        registry.register(
            "http_requests",
            "Requests answered through the proxy, by method, route and status",
            metrics.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from the request's arrival at the proxy to the response headers, by method, route and status; exemplars carry trace_id",
            metrics.duration.clone(),
        );
        registry.register(
            "http_request_size_bytes",
            "Request body bytes received through the proxy",
            metrics.request_size.clone(),
        );
        registry.register(
            "http_response_size_bytes",
            "Response body bytes sent through the proxy",
            metrics.response_size.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "Requests in the proxy whose response has not ended",
            metrics.in_flight.clone(),
        );
        registry.register(
            "sidewatch_proxy_upstream_errors",
            "Requests the proxy could not complete against the app, by reason",
            metrics.upstream_errors.clone(),
        );
        registry.register(
            "sidewatch_proxy_connection_errors",
            "Client connections that ended in an error, by reason",
            metrics.connection_errors.clone(),
        );
        registry.register(
            "sidewatch_proxy_client_aborts",
            "Responses abandoned because the client went away before their end",
            metrics.client_aborts.clone(),
        );
        registry.register(
            "sidewatch_proxy_access_log_dropped",
            "Access-log events dropped because the log pipeline's queue was full",
            metrics.access_log_dropped.clone(),
        );
        registry.register(
            "grpc_server_handled",
            "gRPC calls answered through the proxy, by service, method and gRPC status code (as go-grpc-prometheus names them, without grpc_type)",
            metrics.grpc_handled.clone(),
        );
        registry.register(
            "sidewatch_proxy_upstream_idle_connections",
            "Idle app connections kept open after their client connection closed, for the next client connection",
            metrics.upstream_idle.clone(),
        );
    }

    /// Counts an upstream failure (`reason` from [`UPSTREAM_REASONS`]).
    pub fn upstream_error(&self, reason: &'static str) {
        self.upstream_errors
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// Counts a client connection error (`reason` from [`CONNECTION_REASONS`]).
    pub fn connection_error(&self, reason: &'static str) {
        self.connection_errors
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// Records a response's head: counts it and observes its duration with
    /// the trace ID as exemplar. `key` holds method, route and status (a
    /// [`crate::telemetry::cardinality::KeyBuilder`] key).
    pub fn response_head(&self, key: &str, seconds: f64, trace_id: &str) {
        self.requests.with(key, |c| {
            c.inc();
        });
        self.duration.with(key, |h| {
            h.observe(seconds, Some(TraceLabel::new(trace_id)), None)
        });
    }

    /// Counts a finished gRPC call; `key` holds service, method and code
    /// name (a [`crate::telemetry::cardinality::KeyBuilder`] key).
    pub fn grpc_handled(&self, key: &str) {
        self.grpc_handled.with(key, |c| {
            c.inc();
        });
    }

    /// Records a finished exchange's body sizes.
    pub fn sizes(&self, key: &str, request_bytes: u64, response_bytes: u64) {
        self.request_size
            .with(key, |h| h.observe(request_bytes as f64));
        self.response_size
            .with(key, |h| h.observe(response_bytes as f64));
    }
}

/// `http_request_duration_seconds` with `buckets`.
fn duration_family(
    overflow: &OverflowMetrics,
    limit: usize,
    buckets: &[f64],
) -> CappedFamily<ExemplarHistogram> {
    let buckets = buckets.to_vec();
    CappedFamily::new(
        vec!["method".into(), "route".into(), "status".into()],
        limit,
        overflow.counter("http_request_duration_seconds"),
        move || ExemplarHistogram::new(buckets.iter().copied()),
    )
}

/// The `method` label: one of [`METHODS`], else `OTHER`.
pub fn method_label(method: &http::Method) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == method.as_str())
        .copied()
        .unwrap_or("OTHER")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_set_are_other() {
        assert_eq!(method_label(&http::Method::GET), "GET");
        assert_eq!(method_label(&http::Method::PATCH), "PATCH");
        let odd = http::Method::from_bytes(b"PROPFIND").unwrap();
        assert_eq!(method_label(&odd), "OTHER");
    }

    #[test]
    fn slo_thresholds_are_exact_bounds() {
        for bound in [0.5, 1.0, 2.0, 5.0] {
            assert!(DEFAULT_BUCKETS.contains(&bound));
        }
    }
}
