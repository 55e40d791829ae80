//! `[otlp]`: OpenTelemetry export (OTLP) of metrics, logs (through a
//! `type = "otlp"` log sink) and proxy spans — one transport for all three.
//!
//! The standard `OTEL_*` variables fill in keys the file leaves unset:
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (alone it turns metric export on), the
//! per-signal `OTEL_EXPORTER_OTLP_{METRICS,LOGS,TRACES}_ENDPOINT` (used as
//! they are, as the OpenTelemetry exporter spec says),
//! `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_EXPORTER_OTLP_HEADERS` and
//! `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds). `OTEL_SERVICE_NAME` and
//! `OTEL_RESOURCE_ATTRIBUTES` are read when the resource is built.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::load::ConfigError;
use super::validate::Errors;
use super::Secret;

/// OTLP export settings shared by every signal.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpConfig {
    /// The collector, e.g. `http://otel-collector:4318` (HTTP/protobuf:
    /// `/v1/metrics`, `/v1/logs`, `/v1/traces` are appended to its path) or
    /// `http://otel-collector:4317` (gRPC). Unset: `OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// else `http://localhost:4318` (4317 for gRPC) when a signal is enabled.
    pub endpoint: Option<String>,
    /// `http/protobuf` (the OpenTelemetry default) or `grpc`. Unset:
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, else `http/protobuf`.
    pub protocol: Option<Protocol>,
    /// Extra request headers (gRPC metadata), e.g. an API key; values are
    /// secrets. `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`) adds names not set here.
    pub headers: BTreeMap<String, Secret>,
    /// `gzip` (the default) or `none`, for every request body.
    pub compression: OtlpCompression,
    /// PEM bundle of CAs trusted for `https://` endpoints (besides the built-in roots).
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (testing only).
    pub insecure_skip_verify: bool,
    /// Longest wait for one export request (connect included).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Resource attributes added to (and winning over) those from the
    /// environment (`service.name`, `k8s.pod.name`, ... see the README).
    pub resource: BTreeMap<String, String>,
    /// Metric export: every metric of the registry, on an interval.
    pub metrics: OtlpMetricsConfig,
    /// Log export (through `type = "otlp"` log sinks): only its endpoint.
    pub logs: OtlpLogsConfig,
    /// Proxy spans: one server span per proxied request.
    pub traces: OtlpTracesConfig,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            protocol: None,
            headers: BTreeMap::new(),
            compression: OtlpCompression::Gzip,
            ca_file: None,
            insecure_skip_verify: false,
            timeout: Duration::from_secs(10),
            resource: BTreeMap::new(),
            metrics: OtlpMetricsConfig::default(),
            logs: OtlpLogsConfig::default(),
            traces: OtlpTracesConfig::default(),
        }
    }
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Protocol {
    /// Protobuf over HTTP POST (`application/x-protobuf`).
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// gRPC unary calls over HTTP/2.
    #[serde(rename = "grpc")]
    Grpc,
}

/// Request body compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OtlpCompression {
    /// gzip (`Content-Encoding` / `grpc-encoding`).
    Gzip,
    /// Uncompressed.
    None,
}

/// How sums and histograms are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Temporality {
    /// Totals since sidewatch started (what Prometheus shows).
    Cumulative,
    /// Changes since the last successful export.
    Delta,
}

/// `[otlp.metrics]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpMetricsConfig {
    /// Export metrics. Unset: on when an endpoint is configured (in the file,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` or the metrics endpoint below).
    pub enabled: Option<bool>,
    /// Where metrics go instead of `otlp.endpoint`, used as it is (HTTP: the
    /// whole URL, nothing appended; gRPC: scheme, host and port). Unset:
    /// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`.
    pub endpoint: Option<String>,
    /// Time between exports. Unset: `OTEL_METRIC_EXPORT_INTERVAL` (ms), else 15 s.
    #[serde(with = "humantime_serde")]
    pub interval: Option<Duration>,
    /// `cumulative` (the default) or `delta`.
    pub temporality: Temporality,
}

impl Default for OtlpMetricsConfig {
    fn default() -> Self {
        Self {
            enabled: None,
            endpoint: None,
            interval: None,
            temporality: Temporality::Cumulative,
        }
    }
}

/// `[otlp.logs]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpLogsConfig {
    /// Where logs go instead of `otlp.endpoint`, used as it is (HTTP: the
    /// whole URL, nothing appended; gRPC: scheme, host and port). Unset:
    /// `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`.
    pub endpoint: Option<String>,
}

/// `[otlp.traces]`: server spans for requests through the proxy.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpTracesConfig {
    /// Export one server span per proxied request (needs `[proxy]`).
    pub enabled: bool,
    /// Where spans go instead of `otlp.endpoint`, used as it is (HTTP: the
    /// whole URL, nothing appended; gRPC: scheme, host and port). Unset:
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
    pub endpoint: Option<String>,
    /// Share of new traces sampled, 0.0 to 1.0, decided from the trace ID.
    pub sample_ratio: f64,
    /// Follow the incoming `traceparent`'s sampled flag when there is one
    /// (`parentbased_traceidratio`); `false`: the ratio decides every request.
    pub parent_based: bool,
    /// Spans queued for export; when full, further spans are dropped and counted.
    pub queue: usize,
    /// Spans per export request at most.
    pub batch_max_spans: usize,
    /// Longest a finished span waits before it is sent.
    #[serde(with = "humantime_serde")]
    pub batch_timeout: Duration,
}

impl Default for OtlpTracesConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            endpoint: None,
            sample_ratio: 1.0,
            parent_based: true,
            queue: 2048,
            batch_max_spans: 512,
            batch_timeout: Duration::from_secs(1),
        }
    }
}

/// Default metric export interval (the OpenTelemetry SDKs use 60 s; a
/// sidecar scraped every 15 s matches Prometheus instead).
pub const DEFAULT_METRICS_INTERVAL: Duration = Duration::from_secs(15);

impl OtlpConfig {
    /// The protocol in force.
    pub fn effective_protocol(&self) -> Protocol {
        self.protocol.unwrap_or(Protocol::HttpProtobuf)
    }

    /// The endpoint in force (the protocol's localhost default when unset).
    pub fn effective_endpoint(&self) -> String {
        match (&self.endpoint, self.effective_protocol()) {
            (Some(endpoint), _) => endpoint.clone(),
            (None, Protocol::HttpProtobuf) => "http://localhost:4318".into(),
            (None, Protocol::Grpc) => "http://localhost:4317".into(),
        }
    }

    /// Whether metrics are exported.
    pub fn metrics_enabled(&self) -> bool {
        let endpoint = self.endpoint.is_some() || self.metrics.endpoint.is_some();
        self.metrics.enabled.unwrap_or(endpoint)
    }

    /// Time between metric exports.
    pub fn metrics_interval(&self) -> Duration {
        self.metrics.interval.unwrap_or(DEFAULT_METRICS_INTERVAL)
    }

    /// The per-signal endpoints (config key, value), set or not, in the
    /// order metrics, logs, traces.
    pub fn signal_endpoints(&self) -> [(&'static str, Option<&str>); 3] {
        [
            ("otlp.metrics.endpoint", self.metrics.endpoint.as_deref()),
            ("otlp.logs.endpoint", self.logs.endpoint.as_deref()),
            ("otlp.traces.endpoint", self.traces.endpoint.as_deref()),
        ]
    }

    /// Fills keys left unset from the standard `OTEL_*` variables in `env`;
    /// a malformed variable is an error on the key it would set.
    pub(crate) fn apply_env(&mut self, env: &HashMap<String, String>) -> Vec<ConfigError> {
        let mut errors = Errors::default();
        let get = |name: &str| env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        if self.endpoint.is_none() {
            self.endpoint = get("OTEL_EXPORTER_OTLP_ENDPOINT").map(str::to_owned);
        }
        for (endpoint, variable) in [
            (
                &mut self.metrics.endpoint,
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            ),
            (&mut self.logs.endpoint, "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"),
            (
                &mut self.traces.endpoint,
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            ),
        ] {
            if endpoint.is_none() {
                *endpoint = get(variable).map(str::to_owned);
            }
        }
        if self.protocol.is_none() {
            match get("OTEL_EXPORTER_OTLP_PROTOCOL") {
                None => {}
                Some("grpc") => self.protocol = Some(Protocol::Grpc),
                Some("http/protobuf") => self.protocol = Some(Protocol::HttpProtobuf),
                Some(other) => errors.push(
                    "otlp.protocol",
                    format!("OTEL_EXPORTER_OTLP_PROTOCOL={other:?}: use grpc or http/protobuf (http/json is not supported)"),
                ),
            }
        }
        if let Some(headers) = get("OTEL_EXPORTER_OTLP_HEADERS") {
            match parse_key_values(headers) {
                Ok(pairs) => {
                    for (name, value) in pairs {
                        self.headers
                            .entry(name)
                            .or_insert_with(|| Secret::new(value));
                    }
                }
                Err(e) => errors.push("otlp.headers", format!("OTEL_EXPORTER_OTLP_HEADERS: {e}")),
            }
        }
        if self.metrics.interval.is_none() {
            if let Some(ms) = get("OTEL_METRIC_EXPORT_INTERVAL") {
                match ms.parse::<u64>() {
                    Ok(ms) => self.metrics.interval = Some(Duration::from_millis(ms)),
                    Err(_) => errors.push(
                        "otlp.metrics.interval",
                        format!("OTEL_METRIC_EXPORT_INTERVAL={ms:?}: expected milliseconds"),
                    ),
                }
            }
        }
        errors.0
    }

    /// Every problem in `[otlp]`.
    pub(crate) fn validate(&self, errors: &mut Errors) {
        if let Err(e) = parse_endpoint(&self.effective_endpoint()) {
            errors.push("otlp.endpoint", e);
        }
        for (key, endpoint) in self.signal_endpoints() {
            if let Some(Err(e)) = endpoint.map(parse_endpoint) {
                errors.push(key, e);
            }
        }
        for (name, value) in &self.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err()
                || http::HeaderValue::from_str(value.expose()).is_err()
            {
                errors.push(format!("otlp.headers.{name}"), "not a valid HTTP header");
            }
        }
        errors.positive("otlp.timeout", self.timeout);
        if self.metrics_interval() < Duration::from_millis(100) {
            errors.push("otlp.metrics.interval", "must be at least 100ms");
        }
        errors.readable("otlp.ca_file", self.ca_file.as_deref());
        let traces = &self.traces;
        if !(0.0..=1.0).contains(&traces.sample_ratio) {
            errors.push("otlp.traces.sample_ratio", "must be between 0.0 and 1.0");
        }
        if traces.queue == 0 {
            errors.push("otlp.traces.queue", "must be at least 1");
        }
        if traces.batch_max_spans == 0 {
            errors.push("otlp.traces.batch_max_spans", "must be at least 1");
        }
        errors.positive("otlp.traces.batch_timeout", traces.batch_timeout);
        for name in self.resource.keys() {
            if name.is_empty() {
                errors.push("otlp.resource", "attribute names must not be empty");
            }
        }
    }
}

/// Parses an endpoint: `http` or `https` with a host.
pub fn parse_endpoint(endpoint: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(endpoint).map_err(|e| format!("{endpoint:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme {:?}: use http or https", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("needs a host".into());
    }
    Ok(url)
}

/// Parses the W3C-baggage-like `k=v,k2=v2` lists of `OTEL_EXPORTER_OTLP_HEADERS`
/// and `OTEL_RESOURCE_ATTRIBUTES` (values percent-decoded).
pub fn parse_key_values(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((key, value)) = item.split_once('=') else {
            return Err(format!("{item:?} is not key=value"));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("{item:?} has an empty key"));
        }
        let value = percent_encoding::percent_decode_str(value.trim())
            .decode_utf8()
            .map_err(|_| format!("{item:?}: value is not UTF-8 once decoded"))?;
        pairs.push((key.to_owned(), value.into_owned()));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::{load_from_str, Format};

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_endpoint_variable_alone_turns_metrics_on() {
        let config = load_from_str("", Format::Toml, &HashMap::new()).unwrap();
        assert!(!config.otlp.metrics_enabled());
        let config = load_from_str(
            "",
            Format::Toml,
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b, x-team = chat"),
                ("OTEL_METRIC_EXPORT_INTERVAL", "5000"),
            ]),
        )
        .unwrap();
        let otlp = &config.otlp;
        assert!(otlp.metrics_enabled());
        assert_eq!(otlp.effective_protocol(), Protocol::Grpc);
        assert_eq!(otlp.effective_endpoint(), "http://collector:4317");
        assert_eq!(otlp.headers["api-key"].expose(), "a b");
        assert_eq!(otlp.headers["x-team"].expose(), "chat");
        assert_eq!(otlp.metrics_interval(), Duration::from_secs(5));
    }

    #[test]
    fn the_file_wins_over_the_environment() {
        let text = "[otlp]\nendpoint = \"https://a:4318\"\nheaders = { api-key = \"s3cr3t\" }\n[otlp.metrics]\nenabled = false\ninterval = \"1s\"\n";
        let config = load_from_str(
            text,
            Format::Toml,
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://b:4318"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=env"),
                ("OTEL_METRIC_EXPORT_INTERVAL", "9000"),
            ]),
        )
        .unwrap();
        assert_eq!(config.otlp.effective_endpoint(), "https://a:4318");
        assert_eq!(config.otlp.headers["api-key"].expose(), "s3cr3t");
        assert!(!config.otlp.metrics_enabled());
        assert_eq!(config.otlp.metrics_interval(), Duration::from_secs(1));
        assert!(!format!("{:?}", config.otlp).contains("s3cr3t"), "masked");
    }

    #[test]
    fn bad_keys_and_variables_are_named() {
        let text = "[otlp]\nendpoint = \"ftp://x\"\ntimeout = \"0s\"\nheaders = { \"bad name\" = \"v\" }\n[otlp.traces]\nsample_ratio = 2.0\n";
        let errors = load_from_str(
            text,
            Format::Toml,
            &env(&[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
                ("OTEL_METRIC_EXPORT_INTERVAL", "soon"),
            ]),
        )
        .unwrap_err();
        let mut keys: Vec<_> = errors.0.iter().map(|e| e.key.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "otlp.endpoint",
                "otlp.headers.bad name",
                "otlp.metrics.interval",
                "otlp.protocol",
                "otlp.timeout",
                "otlp.traces.sample_ratio"
            ],
            "{errors}"
        );
        let errors = load_from_str(
            "",
            Format::Toml,
            &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url")]),
        )
        .unwrap_err();
        assert_eq!(errors.0[0].key, "otlp.endpoint");
    }

    #[test]
    fn per_signal_endpoints_come_from_the_file_or_their_variables() {
        let text = "[otlp.traces]\nendpoint = \"https://traces.example/in\"\n";
        let config = load_from_str(
            text,
            Format::Toml,
            &env(&[
                (
                    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                    "http://m:4318/custom/metrics",
                ),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://ignored:4318"),
            ]),
        )
        .unwrap();
        let otlp = &config.otlp;
        assert_eq!(
            otlp.signal_endpoints(),
            [
                (
                    "otlp.metrics.endpoint",
                    Some("http://m:4318/custom/metrics")
                ),
                ("otlp.logs.endpoint", None),
                ("otlp.traces.endpoint", Some("https://traces.example/in")),
            ]
        );
        assert!(
            otlp.metrics_enabled(),
            "a metrics endpoint turns metrics on"
        );
        let errors = load_from_str(
            "",
            Format::Toml,
            &env(&[("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "collector:4318")]),
        )
        .unwrap_err();
        assert_eq!(errors.0[0].key, "otlp.logs.endpoint", "{errors}");
    }

    #[test]
    fn key_value_lists_are_decoded() {
        assert_eq!(
            parse_key_values("a=1,b=x%2Cy,,").unwrap(),
            [("a".into(), "1".into()), ("b".into(), "x,y".into())]
        );
        assert!(parse_key_values("novalue").is_err());
        assert!(parse_key_values("=v").is_err());
    }
}
