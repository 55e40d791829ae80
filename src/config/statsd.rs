//! `[statsd]`: StatsD / DogStatsD intake over UDP.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::load::ConfigError;
use crate::telemetry::names;

/// The StatsD listener and how its metrics are named and bounded.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatsdConfig {
    /// Listen for StatsD/DogStatsD packets.
    pub enabled: bool,
    /// UDP address to bind (loopback by default: for the app in the pod).
    pub listen: SocketAddr,
    /// Accept a `listen` address that is not loopback (reachable from
    /// outside the pod). Off: such an address is a config error.
    pub allow_remote: bool,
    /// Largest datagram accepted, in bytes; bigger ones are counted as
    /// `oversized` and dropped whole.
    pub max_packet_bytes: usize,
    /// Socket receive buffer asked of the kernel, in bytes (capped by
    /// `net.core.rmem_max`; 0 = the system default): bursts wait there.
    pub receive_buffer_bytes: usize,
    /// Most distinct metric families created from StatsD names; samples of
    /// further names are dropped and counted (`outcome="over_limit"`).
    pub max_metrics: usize,
    /// Most series (label combinations) per family; further ones become `__overflow__`.
    pub max_series_per_family: usize,
    /// Most series over all StatsD families together (bounds memory).
    pub max_series: usize,
    /// Bucket bounds (seconds for timers) of histograms from timers (`ms`,
    /// converted to seconds), histograms (`h`) and distributions (`d`); empty
    /// = the SLO-aligned default of `[[log_metrics]]`.
    pub buckets: Vec<f64>,
    /// Name mappings tried in order (statsd_exporter's glob mappings); names
    /// that match none keep their own name, sanitised (`a.b-c` → `a_b_c`).
    pub mappings: Vec<StatsdMapping>,
}

impl Default for StatsdConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 8125)),
            allow_remote: false,
            max_packet_bytes: 8192,
            receive_buffer_bytes: 4 * 1024 * 1024,
            max_metrics: 1000,
            max_series_per_family: crate::telemetry::cardinality::DEFAULT_LIMIT,
            max_series: 10_000,
            buckets: Vec::new(),
            mappings: Vec::new(),
        }
    }
}

/// What a mapping does with the names it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MappingAction {
    /// Rename (and label) the metric.
    #[default]
    Map,
    /// Drop its samples (counted as `outcome="dropped"`).
    Drop,
}

/// One `[[statsd.mappings]]` entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatsdMapping {
    /// Glob over the dot-separated StatsD name: `*` matches one component
    /// (or part of one), e.g. `api.*.requests`.
    #[serde(rename = "match")]
    pub pattern: String,
    /// The metric name (a counter's `_total` is added when missing).
    pub name: String,
    /// Labels; values may use `$1`, `$2`, … for what the `*`s matched.
    pub labels: BTreeMap<String, String>,
    /// `map` (default) or `drop`.
    pub action: MappingAction,
}

impl StatsdConfig {
    /// Every problem with `[statsd]`.
    pub(crate) fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut push = |key: String, message: String| errors.push(ConfigError { key, message });
        for (key, value) in [
            ("max_packet_bytes", self.max_packet_bytes),
            ("max_metrics", self.max_metrics),
            ("max_series_per_family", self.max_series_per_family),
            ("max_series", self.max_series),
        ] {
            if value == 0 {
                push(format!("statsd.{key}"), "must be at least 1".into());
            }
        }
        if self.enabled && !self.allow_remote && !self.listen.ip().is_loopback() {
            push(
                "statsd.listen".into(),
                format!("{} is not a loopback address: StatsD intake would be reachable from outside the pod; set `statsd.allow_remote = true` to mean it", self.listen),
            );
        }
        if self.max_packet_bytes > 65_535 {
            push(
                "statsd.max_packet_bytes".into(),
                "a UDP datagram holds at most 65535 bytes".into(),
            );
        }
        if self.buckets.iter().any(|b| !b.is_finite() || *b < 0.0)
            || self.buckets.windows(2).any(|w| w[0] >= w[1])
        {
            push(
                "statsd.buckets".into(),
                "bounds must be finite, non-negative and strictly increasing".into(),
            );
        }
        for (i, mapping) in self.mappings.iter().enumerate() {
            let key = format!("statsd.mappings[{i}]");
            let stars = mapping.pattern.matches('*').count();
            if mapping.pattern.is_empty() {
                push(format!("{key}.match"), "must be set".into());
            }
            if mapping.action == MappingAction::Drop {
                continue;
            }
            if !names::is_metric_name(&mapping.name) {
                push(
                    format!("{key}.name"),
                    format!("{:?} is not a valid metric name", mapping.name),
                );
            } else if let Some(owner) = names::reserved_by(&mapping.name, false) {
                push(
                    format!("{key}.name"),
                    format!("{:?} is already registered by {owner}", mapping.name),
                );
            }
            for (label, value) in &mapping.labels {
                if !names::is_label_name(label) {
                    push(
                        format!("{key}.labels.{label}"),
                        "not a valid label name".into(),
                    );
                }
                if placeholders(value).any(|n| n == 0 || n > stars) {
                    push(
                        format!("{key}.labels.{label}"),
                        format!("uses a `$n` beyond the {stars} `*` of the pattern"),
                    );
                }
            }
        }
        errors
    }
}

/// The `$n` placeholders in a mapping label value.
pub fn placeholders(value: &str) -> impl Iterator<Item = usize> + '_ {
    value.split('$').skip(1).filter_map(|rest| {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::{load_from_str, Format};

    #[test]
    fn statsd_errors_are_named_by_key() {
        let errors = load_from_str(
            r#"
            [[log_metrics]]
            name = "jobs_total"
            [logs]
            state_dir = "/tmp"
            [[logs.sources]]
            type = "stdin"
            [[logs.sinks]]
            type = "discard"
            [statsd]
            enabled = true
            max_metrics = 0
            max_packet_bytes = 70000
            buckets = [1, 1]
            [[statsd.mappings]]
            match = "a.*"
            name = "pg_stuff"
            [[statsd.mappings]]
            match = "b.*"
            name = "b"
            labels = { x = "$2", "bad-name" = "1" }
            [[statsd.mappings]]
            match = "c.*"
            name = "jobs_total"
            "#,
            Format::Toml,
            &HashMap::new(),
        )
        .unwrap_err();
        let keys: Vec<&str> = errors.0.iter().map(|e| e.key.as_str()).collect();
        for key in [
            "statsd.max_metrics",
            "statsd.max_packet_bytes",
            "statsd.buckets",
            "statsd.mappings[0].name",
            "statsd.mappings[1].labels.x",
            "statsd.mappings[1].labels.bad-name",
            "statsd.mappings[2].name",
        ] {
            assert!(keys.contains(&key), "{key} missing from {errors}");
        }
    }
}
