//! `[logs]`: the log pipeline — sources, stage options (`stages.rs`) and
//! sinks; validation in `validate.rs`.

mod network;
mod stages;
mod validate;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Secret;

pub use network::*;
pub use stages::*;

/// The log pipeline. Without sources nothing runs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogsConfig {
    /// Directory for file checkpoints; must be writable when a file source is
    /// configured (sidewatch refuses to start otherwise). Mount an `emptyDir`
    /// or a volume here so restarts resume where they stopped.
    pub state_dir: PathBuf,
    /// Where events come from.
    pub sources: Vec<LogSourceConfig>,
    /// Options of the stages every event passes, in order: parse, multiline,
    /// correlate, enrich, redact, filter.
    pub stages: StagesConfig,
    /// Where events go; every event goes to every sink.
    pub sinks: Vec<LogSinkConfig>,
    /// Capacity, in batches, of each queue between sources, stages and sinks.
    /// A full queue stops the sources from reading (files are their own buffer).
    pub queue_batches: usize,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("/var/lib/sidewatch"),
            sources: Vec::new(),
            stages: StagesConfig::default(),
            sinks: Vec::new(),
            queue_batches: 16,
        }
    }
}

/// The kinds of log source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Tail files matching glob patterns, with checkpoints.
    File,
    /// Read the process's standard input (`app | sidewatch run`).
    Stdin,
    /// NDJSON over TCP connections (default `127.0.0.1:4792`).
    Tcp,
    /// `POST /ingest` with NDJSON or a JSON array (default `127.0.0.1:4793`);
    /// answered 200 once the events are acknowledged.
    Http,
}

/// Where tailing starts in files that exist when sidewatch first starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// From the first byte (a sidecar that starts after the app misses nothing).
    Beginning,
    /// From the current end.
    End,
}

/// One `[[logs.sources]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSourceConfig {
    /// Unique name, used as the `source` label and the checkpoint file name
    /// (letters, digits, `-`, `_`). Defaults to the type.
    pub name: String,
    /// `file`, `stdin`, `tcp` or `http`.
    #[serde(rename = "type")]
    pub kind: SourceKind,
    /// File source: glob patterns of files to tail (`*`, `?`, `[abc]` in any
    /// path component), e.g. `/var/log/app/*.log`. Directories that do not
    /// exist yet are waited for.
    pub include: Vec<String>,
    /// File source: glob patterns of files to leave alone (e.g. `*.gz`).
    pub exclude: Vec<String>,
    /// File source: where to start in files present at the first start
    /// (`beginning` or `end`). Files that appear later, and files with a
    /// checkpoint, are always read from the beginning or the checkpoint.
    pub read_from: ReadFrom,
    /// File source: how often the glob patterns are scanned for new files.
    #[serde(with = "humantime_serde")]
    pub scan_interval: Duration,
    /// File source: how often open files are checked for new data when idle.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// File source: at most this many files are open at once; more wait.
    pub max_open_files: usize,
    /// File source: a file that was renamed away or deleted is read to its end
    /// and released once it has not grown for this long.
    #[serde(with = "humantime_serde")]
    pub rotate_wait: Duration,
    /// File source: how often checkpoints are written (also at shutdown).
    #[serde(with = "humantime_serde")]
    pub checkpoint_interval: Duration,
    /// TCP and HTTP sources: the listen address (default `127.0.0.1:4792`
    /// for TCP, `127.0.0.1:4793` for HTTP; loopback, for the app in the pod).
    pub listen: Option<std::net::SocketAddr>,
    /// TCP and HTTP sources: connections served at once; more are closed.
    pub max_connections: usize,
    /// HTTP source: largest request body; a larger one is answered 413.
    pub max_body_bytes: usize,
    /// HTTP source: largest request head (request line + headers, at least
    /// 8192); a larger one is answered 431.
    pub max_header_bytes: usize,
    /// TCP and HTTP sources: accept a `listen` address that is not loopback
    /// (reachable from outside the pod). Off: such an address is a config
    /// error, so intake is never exposed by accident.
    pub allow_remote: bool,
}

impl Default for LogSourceConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            kind: SourceKind::File,
            include: Vec::new(),
            exclude: Vec::new(),
            read_from: ReadFrom::Beginning,
            scan_interval: Duration::from_millis(500),
            poll_interval: Duration::from_millis(100),
            max_open_files: 256,
            rotate_wait: Duration::from_secs(5),
            checkpoint_interval: Duration::from_secs(1),
            listen: None,
            max_connections: 256,
            max_body_bytes: 10 * 1024 * 1024,
            max_header_bytes: 16 * 1024,
            allow_remote: false,
        }
    }
}

impl LogSourceConfig {
    /// The name, or the type when no name is set.
    pub fn effective_name(&self) -> &str {
        match (self.name.as_str(), self.kind) {
            ("", SourceKind::File) => "file",
            ("", SourceKind::Stdin) => "stdin",
            ("", SourceKind::Tcp) => "tcp",
            ("", SourceKind::Http) => "http",
            (name, _) => name,
        }
    }

    /// The listen address of a TCP or HTTP source (its default when unset).
    pub fn effective_listen(&self) -> std::net::SocketAddr {
        let port = if self.kind == SourceKind::Http {
            4793
        } else {
            4792
        };
        self.listen
            .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    }
}

/// The kinds of log sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// JSON lines on standard output (for node-level collectors).
    Stdout,
    /// JSON lines in a local file with size-based rotation.
    File,
    /// Nothing: events are only used for `[[log_metrics]]`, then acknowledged.
    Discard,
    /// Grafana Loki's push API (`/loki/api/v1/push`).
    Loki,
    /// NDJSON POSTed to any HTTP endpoint.
    Http,
    /// OTLP log records, sent with the `[otlp]` transport (endpoint, protocol,
    /// headers, TLS); batching and retries from `delivery`.
    Otlp,
}

/// When the file sink calls fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// Never; the data is in the kernel once written, which survives a crash
    /// of sidewatch but not of the machine.
    Never,
    /// After every batch, before acknowledging it.
    Batch,
}

/// One `[[logs.sinks]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSinkConfig {
    /// Unique name, used as the `sink` label. Defaults to the type.
    pub name: String,
    /// `stdout`, `file`, `loki`, `http`, `otlp`, or `discard` (forward nothing; for `[[log_metrics]]` only).
    #[serde(rename = "type")]
    pub kind: SinkKind,
    /// File sink: the file written; rotated files get `.1`, `.2`, ... appended.
    pub path: Option<PathBuf>,
    /// File sink: rotate when the file would grow beyond this size (0 = never).
    pub max_bytes: u64,
    /// File sink: rotated files kept.
    pub max_files: usize,
    /// File sink: `never` or `batch`.
    pub fsync: Fsync,
    /// Loki and HTTP sinks: the push URL. For Loki a URL without a path
    /// (`http://loki:3100`) gets `/loki/api/v1/push` appended.
    pub url: Option<url::Url>,
    /// Loki sink: `protobuf` (snappy-compressed, Loki's native format) or `json`.
    pub encoding: LokiEncoding,
    /// Loki (JSON) and HTTP sinks: `gzip` or `none` for the request body.
    pub compression: Compression,
    /// Loki sink: event fields that become stream labels (keep them few and
    /// low-cardinality; dotted names reach nested objects). The line keeps
    /// every field.
    pub labels: Vec<String>,
    /// Loki sink: labels added to every stream.
    pub static_labels: std::collections::BTreeMap<String, String>,
    /// Loki sink: fields holding the app's timestamp, tried in order (RFC 3339
    /// or epoch seconds / milliseconds / microseconds / nanoseconds); the read
    /// time when none parses.
    pub timestamp_fields: Vec<String>,
    /// Loki sink: tenant sent as `X-Scope-OrgID` (multi-tenant Loki).
    pub tenant_id: Option<String>,
    /// Loki and HTTP sinks: user for basic auth (with `password`).
    pub username: Option<String>,
    /// Loki and HTTP sinks: password for basic auth (a secret).
    pub password: Option<Secret>,
    /// Loki and HTTP sinks: token sent as `Authorization: Bearer …` (a secret).
    pub bearer_token: Option<Secret>,
    /// Loki and HTTP sinks: extra request headers.
    pub headers: std::collections::BTreeMap<String, String>,
    /// Loki and HTTP sinks: PEM bundle of CAs trusted for HTTPS (besides the
    /// built-in roots).
    pub ca_file: Option<PathBuf>,
    /// Loki and HTTP sinks: accept any server certificate (testing only).
    pub insecure_skip_verify: bool,
    /// Loki, HTTP and OTLP sinks: batching, retries, buffering and dead letters.
    pub delivery: DeliveryConfig,
}

impl Default for LogSinkConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            kind: SinkKind::Stdout,
            path: None,
            max_bytes: 100 * 1024 * 1024,
            max_files: 5,
            fsync: Fsync::Never,
            url: None,
            encoding: LokiEncoding::Protobuf,
            compression: Compression::Gzip,
            labels: vec!["app".into(), "level".into()],
            static_labels: std::collections::BTreeMap::new(),
            timestamp_fields: ["timestamp", "time", "ts", "@timestamp"]
                .map(String::from)
                .to_vec(),
            tenant_id: None,
            username: None,
            password: None,
            bearer_token: None,
            headers: std::collections::BTreeMap::new(),
            ca_file: None,
            insecure_skip_verify: false,
            delivery: DeliveryConfig::default(),
        }
    }
}

impl LogSinkConfig {
    /// The name, or the type when no name is set.
    pub fn effective_name(&self) -> &str {
        match (self.name.as_str(), self.kind) {
            ("", SinkKind::Stdout) => "stdout",
            ("", SinkKind::File) => "file",
            ("", SinkKind::Discard) => "discard",
            ("", SinkKind::Loki) => "loki",
            ("", SinkKind::Http) => "http",
            ("", SinkKind::Otlp) => "otlp",
            (name, _) => name,
        }
    }
}

/// Names of the built-in redaction patterns.
pub const BUILTIN_REDACTIONS: [&str; 4] =
    ["bearer", "url_credentials", "aws_access_key", "card_number"];
