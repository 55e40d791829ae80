//! `[logs.stages]`: the options of each stage of the log pipeline.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// Values sidewatch writes itself are not searched: an access event's
    /// timestamp, level, message, kind, standard method and trace ID, and
    /// the enrich stage's fields, checked once when the pipeline is built.
    pub builtin: Vec<String>,
    /// Extra patterns: `{ name = "...", regex = "..." }`; a capture group
    /// named `secret`, when present, is masked instead of the whole match.
    /// They search the same values as `builtin`.
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
