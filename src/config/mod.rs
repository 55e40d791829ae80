//! The typed configuration tree.
//!
//! Every section and field has a default, so an empty file (or no file) is a
//! valid configuration. Unknown keys are rejected (`deny_unknown_fields`), and
//! every error names the key path it concerns. The doc comments on these
//! structs are the configuration reference (see `sidewatch.example.toml`).

pub mod admin;
mod load;
pub mod log_metrics;
pub mod logs;
pub mod otlp;
mod pools;
mod postgres;
pub mod proxy;
mod redis;
mod secret;
pub mod statsd;
mod validate;

pub use load::{load, load_from_str, ConfigError, ConfigErrors, Format};
pub use pools::{
    PoolMapping, PoolSource, PoolsConfig, Preset, SourceKind, TimeUnit, RESERVED_FAMILY_PREFIXES,
};
pub use postgres::{PostgresConfig, PostgresServer};
pub use redis::{RedisConfig, RedisEndpoint, RedisServer};
pub use secret::{mask_url, Secret};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

/// The whole sidewatch configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The admin server: `/metrics`, `/healthz`, `/readyz`, `/status`.
    pub admin: AdminConfig,
    /// sidewatch's own log output (not the app's logs).
    pub self_log: SelfLogConfig,
    /// What happens on SIGTERM.
    pub shutdown: ShutdownConfig,
    /// Health probes against the app (and anything else reachable).
    pub health: HealthConfig,
    /// Process and container metrics for sidewatch itself and the app.
    pub process: ProcessConfig,
    /// Where the pod's identity (name, namespace, node, IP) is read from.
    pub pod: PodConfig,
    /// The log pipeline: sources, stages, sinks (`[logs]`).
    pub logs: logs::LogsConfig,
    /// PostgreSQL servers to collect from (`pg_*` metrics).
    pub postgres: PostgresConfig,
    /// Redis servers to collect from (`redis_*` metrics).
    pub redis: RedisConfig,
    /// The app's own connection-pool statistics (`db_client_connection_*`).
    pub pools: PoolsConfig,
    /// Metrics derived from log events (`[[log_metrics]]`), evaluated after *correlate*.
    pub log_metrics: Vec<log_metrics::LogMetricRule>,
    /// Route templates for normalising request paths into route labels.
    pub routes: log_metrics::RoutesConfig,
    /// StatsD / DogStatsD intake over UDP (`[statsd]`).
    pub statsd: statsd::StatsdConfig,
    /// The reverse proxy in front of the app (`[proxy]`, off by default).
    pub proxy: proxy::ProxyConfig,
    /// OpenTelemetry export over OTLP (`[otlp]`): metrics, proxy spans, and
    /// the transport of `type = "otlp"` log sinks.
    pub otlp: otlp::OtlpConfig,
    /// Hot reload: watching the config file (`[reload]`).
    pub reload: ReloadConfig,
}

/// Hot reload (SIGHUP, `POST /-/reload`, and optionally watching the file).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReloadConfig {
    /// Watch the config file and reload when its content changes. The path is
    /// resolved anew at every check, so a Kubernetes ConfigMap update (which
    /// swaps the directory's `..data` symlink) is seen.
    pub watch_config: bool,
    /// How often the file's content hash is compared while `watch_config` is on.
    #[serde(with = "humantime_serde")]
    pub watch_interval: Duration,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        Self {
            watch_config: false,
            watch_interval: Duration::from_secs(5),
        }
    }
}

impl Config {
    /// Whether the proxy runs and feeds access-log events into the log
    /// pipeline: only when `[[logs.sinks]]` gives them somewhere to go.
    pub fn proxy_access_log(&self) -> bool {
        self.proxy.is_enabled() && self.proxy.access_log && !self.logs.sinks.is_empty()
    }
}

/// The admin HTTP server.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Address the admin server binds (`/metrics`, `/healthz`, `/readyz`, `/status`).
    pub listen: SocketAddr,
    /// Serve HTTPS (`[admin.tls]`); off when the section is absent.
    pub tls: Option<admin::TlsConfig>,
    /// Credentials for `/metrics` and `/status` (`[admin.auth]`); none by default.
    pub auth: admin::AuthConfig,
    /// Request size limits (`[admin.limits]`).
    pub limits: admin::LimitsConfig,
    /// Serve the admin actions (`POST /-/reload`) on `actions_listen`.
    pub actions_enabled: bool,
    /// Address of the admin actions listener (keep it on loopback).
    pub actions_listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 4790)),
            tls: None,
            auth: admin::AuthConfig::default(),
            limits: admin::LimitsConfig::default(),
            actions_enabled: false,
            actions_listen: SocketAddr::from(([127, 0, 0, 1], 4794)),
        }
    }
}

/// sidewatch's own diagnostic logs, written to stderr.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SelfLogConfig {
    /// Minimum level: `error`, `warn`, `info`, `debug` or `trace`. `RUST_LOG`, when set, wins.
    pub level: String,
    /// `json` (one object per line, the default) or `text` (for humans).
    pub format: SelfLogFormat,
}

impl Default for SelfLogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: SelfLogFormat::Json,
        }
    }
}

/// Output format of sidewatch's own logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SelfLogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// Shutdown behaviour.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// After SIGTERM, keep working until the app is gone or this much time has
    /// passed, then stop intake, flush and exit. Keep it below the pod's
    /// `terminationGracePeriodSeconds`.
    #[serde(with = "humantime_serde")]
    pub grace_period: Duration,
    /// A TCP address of the app (for example `127.0.0.1:8080`). After SIGTERM,
    /// once it refuses connections the app is taken to be gone. When neither
    /// this nor `process.app_process_name` is set, sidewatch stops at once.
    pub app_addr: Option<SocketAddr>,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            grace_period: Duration::from_secs(25),
            app_addr: None,
        }
    }
}

/// Health probing.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// The targets to probe, each with a unique `name`.
    pub targets: Vec<HealthTarget>,
}

/// One probe target: exactly one of `url` (HTTP/HTTPS) or `tcp` (connect only).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthTarget {
    /// Unique name, used as the `target` label.
    pub name: String,
    /// HTTP(S) URL to request, e.g. `http://127.0.0.1:8080/health`.
    #[serde(serialize_with = "secret::serialize_optional_url")]
    pub url: Option<Url>,
    /// `host:port` to open a TCP connection to (no request is sent).
    pub tcp: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Extra request headers (not secret; use `bearer_token` for credentials).
    pub headers: BTreeMap<String, String>,
    /// Sent as `Authorization: Bearer <token>`.
    pub bearer_token: Option<Secret>,
    /// Status codes that count as healthy: exact codes (`"204"`) or classes (`"2xx"`).
    pub expected_status: Vec<String>,
    /// Time allowed for one probe, connection to last body byte.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Time between probes.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// When set, the body (up to `max_body_bytes`) must match this regex.
    pub body_regex: Option<String>,
    /// Read at most this many bytes of the body; the rest is discarded.
    pub max_body_bytes: usize,
    /// Export per-check status from a JSON health body (`checks`, Spring Boot
    /// `components`, `application/health+json`).
    pub parse_checks: bool,
    /// Follow at most this many redirects (0 = do not follow).
    pub max_redirects: usize,
    /// PEM file with extra CA certificates to trust for HTTPS.
    pub ca_file: Option<PathBuf>,
    /// Skip TLS certificate verification (testing only).
    pub insecure_skip_verify: bool,
}

impl Default for HealthTarget {
    fn default() -> Self {
        Self {
            name: String::new(),
            url: None,
            tcp: None,
            method: "GET".into(),
            headers: BTreeMap::new(),
            bearer_token: None,
            expected_status: vec!["2xx".into()],
            timeout: Duration::from_secs(3),
            interval: Duration::from_secs(10),
            body_regex: None,
            max_body_bytes: 64 * 1024,
            parse_checks: true,
            max_redirects: 5,
            ca_file: None,
            insecure_skip_verify: false,
        }
    }
}

/// Process and container resource metrics.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessConfig {
    /// Export `process_*` for sidewatch itself and `app_process_*` for the app.
    pub enabled: bool,
    /// Time between refreshes.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Name (or command-line substring) of the app's process. Visible only when
    /// the pod sets `shareProcessNamespace: true`.
    pub app_process_name: Option<String>,
    /// Env var holding the app container's memory limit in bytes (Downward API
    /// `resourceFieldRef: limits.memory`).
    pub app_memory_limit_env: String,
    /// Env var holding the app container's CPU limit in millicores (Downward API
    /// `resourceFieldRef: limits.cpu` with `divisor: 1m`).
    pub app_cpu_limit_env: String,
    /// cgroup v2 directory of sidewatch's own container.
    pub cgroup_root: PathBuf,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(10),
            app_process_name: None,
            app_memory_limit_env: "SIDEWATCH_APP_MEMORY_LIMIT".into(),
            app_cpu_limit_env: "SIDEWATCH_APP_CPU_LIMIT_MILLICORES".into(),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
        }
    }
}

/// The pod's identity, read from environment variables that the Downward API
/// fills (`fieldRef: metadata.name`, `status.podIP`, ...). Used to attribute
/// dependency connections to this pod (`scope="pod"`) and to enrich logs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PodConfig {
    /// Env var holding the pod's name.
    pub name_env: String,
    /// Env var holding the pod's namespace.
    pub namespace_env: String,
    /// Env var holding the node's name.
    pub node_env: String,
    /// Env var holding the pod's IP address.
    pub ip_env: String,
    /// The pod's IP, overriding `ip_env` (outside Kubernetes, tests). It
    /// attributes PostgreSQL/Redis connections to this pod (`scope="pod"`).
    pub ip: Option<std::net::IpAddr>,
}

impl Default for PodConfig {
    fn default() -> Self {
        Self {
            name_env: "SIDEWATCH_POD_NAME".into(),
            namespace_env: "SIDEWATCH_POD_NAMESPACE".into(),
            node_env: "SIDEWATCH_NODE_NAME".into(),
            ip_env: "SIDEWATCH_POD_IP".into(),
            ip: None,
        }
    }
}

/// The pod's identity as read from the environment; each part may be absent
/// (outside Kubernetes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodInfo {
    /// The pod's name.
    pub name: Option<String>,
    /// The pod's namespace.
    pub namespace: Option<String>,
    /// The node's name.
    pub node: Option<String>,
    /// The pod's IP address.
    pub ip: Option<std::net::IpAddr>,
}

impl PodInfo {
    /// Reads the identity through `lookup` (normally `std::env::var`).
    pub fn read(config: &PodConfig, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        Self {
            name: get(&config.name_env),
            namespace: get(&config.namespace_env),
            node: get(&config.node_env),
            ip: config
                .ip
                .or_else(|| get(&config.ip_env).and_then(|ip| ip.parse().ok())),
        }
    }

    /// Reads the identity from the process environment.
    pub fn from_env(config: &PodConfig) -> Self {
        Self::read(config, |name| std::env::var(name).ok())
    }
}
