//! `[logs]`: the log pipeline — sources, stage options and sinks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// `file` or `stdin`.
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
        }
    }
}

impl LogSourceConfig {
    /// The name, or the type when no name is set.
    pub fn effective_name(&self) -> &str {
        match (self.name.as_str(), self.kind) {
            ("", SourceKind::File) => "file",
            ("", SourceKind::Stdin) => "stdin",
            (name, _) => name,
        }
    }
}

/// Options of each stage.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StagesConfig {
    /// Turning lines into JSON objects.
    pub parse: ParseConfig,
    /// Joining continuation lines (stack traces) into one event.
    pub multiline: MultilineConfig,
    /// Finding the correlation ID.
    pub correlate: CorrelateConfig,
    /// Adding the pod's identity and static fields.
    pub enrich: EnrichConfig,
    /// Masking secrets.
    pub redact: RedactConfig,
    /// Dropping or sampling events.
    pub filter: FilterConfig,
}

/// The parse stage.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParseConfig {
    /// Longer lines are truncated to this many bytes and flagged
    /// `sidewatch.truncated`; the rest of the line is skipped, never buffered.
    pub max_line_bytes: usize,
    /// Field that holds a line that is not a JSON object.
    pub message_field: String,
}

impl Default for ParseConfig {
    fn default() -> Self {
        Self {
            max_line_bytes: 256 * 1024,
            message_field: "message".into(),
        }
    }
}

/// The multiline stage (per file or stream, before parsing).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MultilineConfig {
    /// Join continuation lines to the line before them.
    pub enabled: bool,
    /// A line matching this regex continues the previous one.
    pub continuation: String,
    /// A joined event stops growing at this size; further lines start a new one.
    pub max_event_bytes: usize,
    /// A pending event is emitted when no line has arrived for this long.
    #[serde(with = "humantime_serde")]
    pub flush_timeout: Duration,
}

impl Default for MultilineConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            continuation: r"^(\s|Caused by:|at )".into(),
            max_event_bytes: 1024 * 1024,
            flush_timeout: Duration::from_secs(1),
        }
    }
}

/// The correlate stage.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorrelateConfig {
    /// Look for a correlation ID at all.
    pub enabled: bool,
    /// Fields searched in order; a dotted name also matches nested objects
    /// (`http.request_id`). A `traceparent` value is parsed (W3C) and its trace ID used.
    pub fields: Vec<String>,
    /// Field the canonical correlation ID is written to (originals are kept).
    pub target: String,
}

impl Default for CorrelateConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            fields: [
                "request_id",
                "correlation_id",
                "x_request_id",
                "x-request-id",
                "trace_id",
                "traceparent",
                "http.request_id",
            ]
            .map(String::from)
            .to_vec(),
            target: "correlation_id".into(),
        }
    }
}

/// The enrich stage.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnrichConfig {
    /// Add the pod's identity (`pod`, `namespace`, `node`, `container`,
    /// `app_version`) from the Downward API env (see `[pod]`).
    pub pod: bool,
    /// Env var holding the app container's name.
    pub container_env: String,
    /// Env var holding the app's version.
    pub app_version_env: String,
    /// Static fields added to every event.
    pub fields: BTreeMap<String, String>,
    /// Replace fields the app already set (by default the app's value wins).
    pub overwrite: bool,
}

impl Default for EnrichConfig {
    fn default() -> Self {
        Self {
            pod: true,
            container_env: "SIDEWATCH_CONTAINER_NAME".into(),
            app_version_env: "SIDEWATCH_APP_VERSION".into(),
            fields: BTreeMap::new(),
            overwrite: false,
        }
    }
}

/// The redact stage.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedactConfig {
    /// Mask secrets at all.
    pub enabled: bool,
    /// Values of these keys are masked at any depth (case-insensitive).
    pub keys: Vec<String>,
    /// Built-in patterns applied to every string value: `bearer`,
    /// `url_credentials`, `aws_access_key`, `card_number` (Luhn-checked).
    pub builtin: Vec<String>,
    /// Extra patterns: `{ name = "...", regex = "..." }`; a capture group
    /// named `secret`, when present, is masked instead of the whole match.
    pub patterns: Vec<RedactPattern>,
    /// What masked values are replaced with.
    pub mask: String,
}

impl Default for RedactConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            keys: [
                "password",
                "passwd",
                "secret",
                "token",
                "authorization",
                "api_key",
                "cookie",
                "set-cookie",
            ]
            .map(String::from)
            .to_vec(),
            builtin: ["bearer", "url_credentials", "aws_access_key", "card_number"]
                .map(String::from)
                .to_vec(),
            patterns: Vec::new(),
            mask: "[REDACTED]".into(),
        }
    }
}

/// A custom redaction pattern.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedactPattern {
    /// The `rule` label of `sidewatch_redactions_total`.
    pub name: String,
    /// The regex.
    pub regex: String,
}

/// The filter stage (off unless rules are given).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterConfig {
    /// Rules, checked in order; the first that matches decides.
    pub rules: Vec<FilterRule>,
}

/// One filter rule: events whose `field` equals one of `equals` are dropped,
/// or, with `sample = N`, one in N is kept.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterRule {
    /// The field compared (dotted names reach into nested objects).
    pub field: String,
    /// Values that match (strings; numbers and booleans compare by their text).
    pub equals: Vec<String>,
    /// Keep one matching event in this many instead of dropping all (0 = drop all).
    pub sample: u32,
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
    /// `stdout`, `file`, or `discard` (forward nothing; for `[[log_metrics]]` only).
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
            (name, _) => name,
        }
    }
}

/// Names of the built-in redaction patterns.
pub const BUILTIN_REDACTIONS: [&str; 4] =
    ["bearer", "url_credentials", "aws_access_key", "card_number"];

impl LogsConfig {
    /// Every problem in `[logs]`, each with its dotted key.
    pub(crate) fn validate(&self) -> Vec<super::load::ConfigError> {
        let mut errors = Vec::new();
        let mut push =
            |key: String, message: String| errors.push(super::load::ConfigError { key, message });
        if self.queue_batches == 0 {
            push("logs.queue_batches".into(), "must be at least 1".into());
        }
        if !self.sources.is_empty() && self.sinks.is_empty() {
            push(
                "logs.sinks".into(),
                "at least one sink is needed when sources are configured".into(),
            );
        }
        let mut names = std::collections::HashSet::new();
        let mut stdin = 0;
        for (i, source) in self.sources.iter().enumerate() {
            let key = format!("logs.sources[{i}]");
            let name = source.effective_name();
            if !valid_name(name) {
                push(
                    format!("{key}.name"),
                    format!("{name:?}: use letters, digits, `-` and `_` only"),
                );
            } else if !names.insert(name) {
                push(
                    format!("{key}.name"),
                    format!("duplicate source name {name:?}"),
                );
            }
            match source.kind {
                SourceKind::File => {
                    if source.include.is_empty() {
                        push(
                            format!("{key}.include"),
                            "at least one glob pattern is needed".into(),
                        );
                    }
                    for (field, patterns) in
                        [("include", &source.include), ("exclude", &source.exclude)]
                    {
                        for (j, pattern) in patterns.iter().enumerate() {
                            if let Err(e) = crate::logs::tail::Glob::new(pattern) {
                                push(format!("{key}.{field}[{j}]"), e.to_string());
                            }
                        }
                    }
                    for (field, value) in [
                        ("scan_interval", source.scan_interval),
                        ("poll_interval", source.poll_interval),
                        ("checkpoint_interval", source.checkpoint_interval),
                    ] {
                        if value.is_zero() {
                            push(format!("{key}.{field}"), "must be greater than zero".into());
                        }
                    }
                    if source.max_open_files == 0 {
                        push(format!("{key}.max_open_files"), "must be at least 1".into());
                    }
                }
                SourceKind::Stdin => {
                    stdin += 1;
                    if stdin > 1 {
                        push(
                            format!("{key}.type"),
                            "only one stdin source is possible".into(),
                        );
                    }
                    if !source.include.is_empty() {
                        push(
                            format!("{key}.include"),
                            "only for `type = \"file\"`".into(),
                        );
                    }
                }
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, sink) in self.sinks.iter().enumerate() {
            let key = format!("logs.sinks[{i}]");
            let name = sink.effective_name();
            if !valid_name(name) {
                push(
                    format!("{key}.name"),
                    format!("{name:?}: use letters, digits, `-` and `_` only"),
                );
            } else if !names.insert(name) {
                push(
                    format!("{key}.name"),
                    format!("duplicate sink name {name:?}"),
                );
            }
            match (sink.kind, &sink.path) {
                (SinkKind::File, None) => push(format!("{key}.path"), "must be set".into()),
                (SinkKind::Stdout | SinkKind::Discard, Some(_)) => {
                    push(format!("{key}.path"), "only for `type = \"file\"`".into())
                }
                _ => {}
            }
            if sink.kind == SinkKind::File && sink.max_bytes > 0 && sink.max_files == 0 {
                push(
                    format!("{key}.max_files"),
                    "must be at least 1 when max_bytes is set".into(),
                );
            }
        }
        let stages = &self.stages;
        if stages.parse.max_line_bytes < 1024 {
            push(
                "logs.stages.parse.max_line_bytes".into(),
                "must be at least 1024".into(),
            );
        }
        if stages.parse.message_field.is_empty() {
            push(
                "logs.stages.parse.message_field".into(),
                "must be set".into(),
            );
        }
        if let Err(e) = regex::Regex::new(&stages.multiline.continuation) {
            push(
                "logs.stages.multiline.continuation".into(),
                format!("invalid regex: {e}"),
            );
        }
        if stages.multiline.flush_timeout.is_zero() {
            push(
                "logs.stages.multiline.flush_timeout".into(),
                "must be greater than zero".into(),
            );
        }
        if stages.correlate.target.is_empty() {
            push("logs.stages.correlate.target".into(), "must be set".into());
        }
        for (i, name) in stages.redact.builtin.iter().enumerate() {
            if !BUILTIN_REDACTIONS.contains(&name.as_str()) {
                push(
                    format!("logs.stages.redact.builtin[{i}]"),
                    format!(
                        "unknown pattern {name:?}; known: {}",
                        BUILTIN_REDACTIONS.join(", ")
                    ),
                );
            }
        }
        for (i, pattern) in stages.redact.patterns.iter().enumerate() {
            let key = format!("logs.stages.redact.patterns[{i}]");
            if !valid_name(&pattern.name) {
                push(
                    format!("{key}.name"),
                    "must be set (letters, digits, `-`, `_`)".into(),
                );
            }
            if let Err(e) = regex::Regex::new(&pattern.regex) {
                push(format!("{key}.regex"), format!("invalid regex: {e}"));
            }
        }
        for (i, rule) in stages.filter.rules.iter().enumerate() {
            let key = format!("logs.stages.filter.rules[{i}]");
            if rule.field.is_empty() {
                push(format!("{key}.field"), "must be set".into());
            }
            if rule.equals.is_empty() {
                push(
                    format!("{key}.equals"),
                    "at least one value is needed".into(),
                );
            }
        }
        errors
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
