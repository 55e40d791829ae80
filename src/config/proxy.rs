//! `[proxy]`: the reverse proxy in front of the app (off by default).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::validate::Errors;

/// The reverse proxy: every request to `listen` is forwarded to `upstream`
/// and measured (`http_*` RED metrics, request IDs, trace context, access log).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Run the proxy. Also on when `upstream` is set through the environment
    /// (`SIDEWATCH__PROXY__UPSTREAM`) and this key is left unset.
    pub enabled: Option<bool>,
    /// Address the proxy listens on; Services (or a renamed named port) point here.
    pub listen: SocketAddr,
    /// The app: `host:port` of its plain HTTP listener, e.g. `127.0.0.1:8080`.
    pub upstream: String,
    /// Longest wait for a client's request headers (slowloris guard); the
    /// connection is closed after it.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Longest wait for a TCP connection to the app (then `502`).
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest wait for the app's response headers (then `504`).
    #[serde(with = "humantime_serde")]
    pub response_timeout: Duration,
    /// Idle keep-alive connections to the app are closed after this long:
    /// those of the pool (requests with a body, HTTP/2 clients, upgrades)
    /// and those an HTTP/1.1 client connection left behind when it closed
    /// (its own app connection, kept for the next client connection).
    #[serde(with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
    /// At most this many idle connections to the app are kept by the pool,
    /// and as many by each event loop from closed client connections; 0
    /// closes an app connection with its client connection.
    pub pool_max_idle: usize,
    /// Largest request head (request line + headers) in bytes; larger ones get `431`.
    pub max_header_bytes: usize,
    /// Most request headers accepted; more get `431`.
    pub max_headers: usize,
    /// Emit one access-log event per request into the log pipeline (source `proxy`).
    pub access_log: bool,
    /// Events queued for the log pipeline (and at most 16 MiB of their
    /// strings); when full, further events are dropped and counted (the
    /// proxy never waits on the log pipeline). The default, 16384, rides
    /// out 8 s of a stalled pipeline at 2000 req/s; the queue grows only
    /// while events wait (about 200 bytes each) and shrinks back after.
    pub access_log_queue: usize,
    /// Series limit of each `http_*` family (over it: `__overflow__`, counted).
    pub max_series: usize,
    /// Bucket upper bounds of `http_request_duration_seconds`, in seconds,
    /// strictly increasing; empty = the defaults (5 ms … 30 s with the SLO
    /// thresholds exact). Changed on reload, the family starts afresh with the
    /// new buckets; the other `http_*` families carry on.
    pub duration_buckets: Vec<f64>,
    /// Event loops of the proxy, each a thread of its own serving the client
    /// connections dealt to it, sharing nothing per request. 1 (the default)
    /// costs the least CPU and memory on a small sidecar; 2 gets past what
    /// one core can carry (measured: about haproxy's throughput, which also
    /// runs a thread per core).
    pub threads: usize,
    /// Which requests reach the app over HTTP/2 (h2c, prior knowledge)
    /// rather than HTTP/1.1: `"grpc"` (the default) sends gRPC requests
    /// (`content-type: application/grpc…`, which need HTTP/2 and trailers)
    /// over HTTP/2 and the rest over HTTP/1.1; `"always"` sends every request
    /// over HTTP/2 (an app that speaks only HTTP/2, such as a gRPC server;
    /// upgrades such as WebSocket stay on HTTP/1.1); `"never"` sends all over
    /// HTTP/1.1.
    pub app_http2: AppHttp2,
}

/// `proxy.app_http2`: which requests reach the app over HTTP/2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppHttp2 {
    /// gRPC requests only (`content-type: application/grpc`, `…+proto`, …;
    /// not gRPC-Web, whose servers speak HTTP/1.1).
    #[default]
    Grpc,
    /// Every request but upgrades.
    Always,
    /// None: the app speaks only HTTP/1.1.
    Never,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            enabled: None,
            listen: SocketAddr::from(([0, 0, 0, 0], 4791)),
            upstream: String::new(),
            header_read_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(60),
            pool_idle_timeout: Duration::from_secs(60),
            pool_max_idle: 64,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            access_log: true,
            access_log_queue: 16_384,
            max_series: 1000,
            duration_buckets: Vec::new(),
            threads: 1,
            app_http2: AppHttp2::Grpc,
        }
    }
}

impl ProxyConfig {
    /// The bucket bounds of `http_request_duration_seconds` in use.
    pub fn effective_duration_buckets(&self) -> Vec<f64> {
        if self.duration_buckets.is_empty() {
            super::log_metrics::DEFAULT_BUCKETS.to_vec()
        } else {
            self.duration_buckets.clone()
        }
    }

    /// Whether the proxy runs: `enabled`, or (when unset) `upstream` is set.
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(!self.upstream.is_empty())
    }

    /// Checks the section (only when enabled).
    pub(crate) fn validate(&self, errors: &mut Errors) {
        if !self.is_enabled() {
            return;
        }
        if self.upstream.is_empty() {
            errors.push(
                "proxy.upstream",
                "must be set when the proxy is enabled (e.g. 127.0.0.1:8080)",
            );
        } else if !is_authority(&self.upstream) {
            errors.push(
                "proxy.upstream",
                format!("expected host:port, got {:?}", self.upstream),
            );
        }
        errors.positive("proxy.header_read_timeout", self.header_read_timeout);
        errors.positive("proxy.connect_timeout", self.connect_timeout);
        errors.positive("proxy.response_timeout", self.response_timeout);
        errors.positive("proxy.pool_idle_timeout", self.pool_idle_timeout);
        if self.max_header_bytes < 8192 {
            errors.push("proxy.max_header_bytes", "must be at least 8192");
        }
        if self.max_headers == 0 {
            errors.push("proxy.max_headers", "must be greater than zero");
        }
        if self.access_log_queue == 0 {
            errors.push("proxy.access_log_queue", "must be greater than zero");
        }
        let buckets = &self.duration_buckets;
        if buckets.iter().any(|b| !b.is_finite() || *b <= 0.0) {
            errors.push(
                "proxy.duration_buckets",
                "bounds must be finite and positive",
            );
        } else if buckets.windows(2).any(|w| w[0] >= w[1]) {
            errors.push(
                "proxy.duration_buckets",
                "bounds must be strictly increasing",
            );
        }
        if self.threads == 0 || self.threads > 64 {
            errors.push("proxy.threads", "must be between 1 and 64");
        }
        if self.max_series == 0 {
            errors.push("proxy.max_series", "must be greater than zero");
        }
    }
}

/// `host:port` with a non-zero port and a host usable in a URL authority.
fn is_authority(value: &str) -> bool {
    let Some((host, port)) = value.rsplit_once(':') else {
        return false;
    };
    !host.is_empty()
        && port.parse::<u16>().is_ok_and(|p| p != 0)
        && format!("http://{value}/").parse::<http::Uri>().is_ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::{load_from_str, Format};

    #[test]
    fn off_by_default_on_with_an_upstream() {
        let config = load_from_str("", Format::Toml, &HashMap::new()).unwrap();
        assert!(!config.proxy.is_enabled());
        let env = HashMap::from([(
            "SIDEWATCH__PROXY__UPSTREAM".to_owned(),
            "127.0.0.1:8080".to_owned(),
        )]);
        let config = load_from_str("", Format::Toml, &env).unwrap();
        assert!(config.proxy.is_enabled());
        assert_eq!(config.proxy.listen.port(), 4791);
    }

    #[test]
    fn app_http2_takes_its_three_values_and_names_itself_otherwise() {
        let load = |value: &str| {
            let text = format!("[proxy]\nupstream = \"127.0.0.1:8080\"\napp_http2 = \"{value}\"\n");
            load_from_str(&text, Format::Toml, &HashMap::new())
        };
        assert_eq!(load("grpc").unwrap().proxy.app_http2, super::AppHttp2::Grpc);
        assert_eq!(
            load("always").unwrap().proxy.app_http2,
            super::AppHttp2::Always
        );
        assert_eq!(
            load("never").unwrap().proxy.app_http2,
            super::AppHttp2::Never
        );
        let errors = load("sometimes").unwrap_err();
        assert_eq!(errors.0[0].key, "proxy.app_http2", "{errors:?}");
    }

    #[test]
    fn bad_values_are_reported_by_key() {
        let text = "[proxy]\nenabled = true\nconnect_timeout = \"0s\"\nmax_headers = 0\n";
        let errors = load_from_str(text, Format::Toml, &HashMap::new()).unwrap_err();
        let keys: Vec<_> = errors.0.iter().map(|e| e.key.as_str()).collect();
        for key in [
            "proxy.upstream",
            "proxy.connect_timeout",
            "proxy.max_headers",
        ] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
        let red = include_str!("../../examples/log-metrics-red.toml");
        let text = format!("{red}\n[proxy]\nupstream = \"127.0.0.1:8080\"\n");
        let errors = load_from_str(&text, Format::Toml, &HashMap::new()).unwrap_err();
        let keys: Vec<_> = errors.0.iter().map(|e| e.key.as_str()).collect();
        for key in ["log_metrics[0].name", "log_metrics[1].name"] {
            let error = errors.0.iter().find(|e| e.key == key);
            assert!(
                error.is_some_and(|e| e.message.contains("proxy")),
                "{keys:?}"
            );
        }
        let text = "[proxy]\nupstream = \"nohost\"\n";
        let errors = load_from_str(text, Format::Toml, &HashMap::new()).unwrap_err();
        assert_eq!(errors.0[0].key, "proxy.upstream");
    }
}
