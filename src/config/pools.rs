//! `[pools]`: the app's own connection-pool statistics, read from a JSON
//! endpoint it serves (mapped with a preset or JSON pointers) or re-exposed
//! from a Prometheus endpoint it already has (see `collect::pool`).

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use super::load::ConfigError;
use super::Secret;

/// App pool collection.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolsConfig {
    /// The endpoints to read, each with a unique `name` (the `source` label).
    pub sources: Vec<PoolSource>,
}

/// What a pool source's endpoint serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Pool statistics as JSON, mapped by `preset` and/or `mapping`.
    #[default]
    Json,
    /// Prometheus text; the families listed in `families` are re-exposed unchanged.
    Prometheus,
}

/// A built-in mapping for a common pool-stats JSON shape (documented in
/// `collect::pool::presets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// HikariCP's `HikariPoolMXBean` fields (`activeConnections`, ...).
    Hikaricp,
    /// SQLAlchemy `pool.status()` numbers (`size`, `checked_in`, `checked_out`, `overflow`).
    Sqlalchemy,
    /// Go's `database/sql` `DBStats` (`OpenConnections`, `InUse`, `Idle`, ...).
    GoSql,
    /// node-postgres `Pool` counters (`totalCount`, `idleCount`, `waitingCount`).
    NodePostgres,
    /// deadpool's `Status` (`max_size`, `size`, `available`, `waiting`); bb8 apps can serve the same.
    Deadpool,
    /// No built-in mapping: `mapping` says where everything is.
    Custom,
}

/// Unit of a wait-time value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    /// Seconds.
    S,
    /// Milliseconds.
    Ms,
    /// Microseconds.
    Us,
    /// Nanoseconds.
    Ns,
}

impl TimeUnit {
    /// How many seconds one unit is.
    pub fn seconds(self) -> f64 {
        match self {
            TimeUnit::S => 1.0,
            TimeUnit::Ms => 1e-3,
            TimeUnit::Us => 1e-6,
            TimeUnit::Ns => 1e-9,
        }
    }
}

/// Where the numbers are in the JSON, as RFC 6901 JSON pointers (`""` is the
/// whole document, `/pools/0/name` a path). Every field set here overrides
/// the preset's; with `preset = "custom"` these are the whole mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolMapping {
    /// Where the pools are in the document: an array of pool objects, an
    /// object of pools keyed by pool name, or a single pool object.
    pub pools: Option<String>,
    /// Inside an array item: the pool's name (items without it are named by index).
    pub name: Option<String>,
    /// Inside a pool: idle connections.
    pub idle: Option<String>,
    /// Inside a pool: connections in use (checked out, active).
    pub used: Option<String>,
    /// Inside a pool: open connections (idle + used); used to derive whichever of
    /// `idle`/`used` is not mapped.
    pub total: Option<String>,
    /// Inside a pool: the pool's maximum size.
    pub max: Option<String>,
    /// Inside a pool: requests waiting for a connection.
    pub pending: Option<String>,
    /// Inside a pool: time spent waiting for a connection.
    pub wait_time: Option<String>,
    /// Unit of `wait_time` (`s`, `ms`, `us`, `ns`; default `s`).
    pub wait_time_unit: Option<TimeUnit>,
    /// Inside a pool: the number of waits so far. When set, `wait_time` is read
    /// as a running total (like Go's `WaitDuration`) and sidewatch exports the
    /// average wait of the waits since the previous read.
    pub wait_count: Option<String>,
}

/// One endpoint of the app that reports pool statistics.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolSource {
    /// Unique name, used as the `source` label and in the collector name `pool/NAME`.
    pub name: String,
    /// The endpoint, e.g. `http://127.0.0.1:8080/debug/pools`.
    #[serde(serialize_with = "super::secret::serialize_optional_url")]
    pub url: Option<Url>,
    /// `json` (pool statistics) or `prometheus` (re-expose `families`).
    pub kind: SourceKind,
    /// For `json`: the built-in mapping to start from.
    pub preset: Option<Preset>,
    /// For `json`: JSON pointers overriding (or, with `custom`, replacing) the preset's.
    pub mapping: PoolMapping,
    /// For `prometheus`: the families to re-expose, by name as in their `# TYPE`
    /// line (`hikaricp_connections_active`, `http_requests_total`); a trailing
    /// `*` matches a prefix (`hikaricp_*`).
    pub families: Vec<String>,
    /// At most this many pools per read (pool names come from the app); the rest
    /// are dropped and counted in `sidewatch_pool_series_dropped_total`.
    pub max_pools: usize,
    /// For `prometheus`: at most this many series (label sets) per family.
    pub max_series_per_family: usize,
    /// Sent as `Authorization: Bearer <token>`.
    pub bearer_token: Option<Secret>,
    /// Time between reads.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Time allowed for one read.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for PoolSource {
    fn default() -> Self {
        Self {
            name: String::new(),
            url: None,
            kind: SourceKind::Json,
            preset: None,
            mapping: PoolMapping::default(),
            families: Vec::new(),
            max_pools: 32,
            max_series_per_family: 200,
            bearer_token: None,
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(3),
        }
    }
}

/// Family name prefixes sidewatch registers itself; re-exposing them would
/// produce duplicate families (the one list, in `telemetry::names`).
pub use crate::telemetry::names::RESERVED_PREFIXES as RESERVED_FAMILY_PREFIXES;

impl PoolsConfig {
    /// Every problem with the `[pools]` section.
    pub(crate) fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut names = HashSet::new();
        let mut families = HashSet::new();
        for (i, source) in self.sources.iter().enumerate() {
            let key = format!("pools.sources[{i}]");
            let mut push = |field: &str, message: String| {
                errors.push(ConfigError {
                    key: if field.is_empty() {
                        key.clone()
                    } else {
                        format!("{key}.{field}")
                    },
                    message,
                })
            };
            if source.name.is_empty() {
                push("name", "must be set".into());
            } else if !names.insert(source.name.as_str()) {
                push("name", format!("duplicate source name {:?}", source.name));
            }
            match &source.url {
                None => push("url", "must be set".into()),
                Some(url) if !matches!(url.scheme(), "http" | "https") => push(
                    "url",
                    format!("scheme must be http or https, not {:?}", url.scheme()),
                ),
                Some(_) => {}
            }
            for (field, value) in [("interval", source.interval), ("timeout", source.timeout)] {
                if value.is_zero() {
                    push(field, "must be greater than zero".into());
                }
            }
            if source.max_pools == 0 {
                push("max_pools", "must be at least 1".into());
            }
            match source.kind {
                SourceKind::Json => validate_json(source, &mut push),
                SourceKind::Prometheus => {
                    if source.max_series_per_family == 0 {
                        push("max_series_per_family", "must be at least 1".into());
                    }
                    validate_families(source, &mut families, &mut push);
                }
            }
        }
        errors
    }
}

fn validate_json(source: &PoolSource, push: &mut impl FnMut(&str, String)) {
    if !source.families.is_empty() {
        push("families", "only for kind = \"prometheus\"".into());
    }
    let m = &source.mapping;
    match source.preset {
        None => push(
            "preset",
            "set a preset (hikaricp, sqlalchemy, go_sql, node_postgres, deadpool) or custom with a mapping".into(),
        ),
        Some(Preset::Custom) => {
            let known = [&m.idle, &m.used, &m.total].iter().filter(|f| f.is_some()).count();
            if known < 2 {
                push(
                    "mapping",
                    "a custom mapping needs two of `idle`, `used` and `total`".into(),
                );
            }
        }
        Some(_) => {}
    }
    let pointers = [
        ("pools", &m.pools),
        ("name", &m.name),
        ("idle", &m.idle),
        ("used", &m.used),
        ("total", &m.total),
        ("max", &m.max),
        ("pending", &m.pending),
        ("wait_time", &m.wait_time),
        ("wait_count", &m.wait_count),
    ];
    for (field, pointer) in pointers {
        if let Some(pointer) = pointer {
            if !pointer.is_empty() && !pointer.starts_with('/') {
                push(
                    &format!("mapping.{field}"),
                    format!("{pointer:?} is not a JSON pointer (it must be empty or start with /)"),
                );
            }
        }
    }
}

fn validate_families<'a>(
    source: &'a PoolSource,
    seen: &mut HashSet<&'a str>,
    push: &mut impl FnMut(&str, String),
) {
    if source.preset.is_some() || source.mapping != PoolMapping::default() {
        push("preset", "only for kind = \"json\"".into());
    }
    if source.families.is_empty() {
        push("families", "list the families to re-expose".into());
    }
    for (j, family) in source.families.iter().enumerate() {
        let field = format!("families[{j}]");
        let prefix_match = family.ends_with('*');
        let name = family.strip_suffix('*').unwrap_or(family);
        let valid = !name.is_empty()
            && name.chars().enumerate().all(|(k, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (k > 0 && c.is_ascii_digit())
            });
        if !valid {
            push(
                &field,
                format!("{family:?} is not a metric name (or prefix*)"),
            );
        } else if let Some(prefix) = RESERVED_FAMILY_PREFIXES
            .iter()
            .find(|p| name.starts_with(**p) || (prefix_match && p.starts_with(name)))
        {
            push(
                &field,
                format!("{family:?} may overlap sidewatch's own {prefix}* families"),
            );
        } else if !seen.insert(family.as_str()) {
            push(
                &field,
                format!("{family:?} is re-exposed by another source too"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::{load_from_str, Format};

    fn keys(text: &str) -> Vec<String> {
        match load_from_str(text, Format::Toml, &HashMap::new()) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.0.into_iter().map(|e| e.key).collect(),
        }
    }

    #[test]
    fn presets_and_custom_mappings() {
        assert!(keys(
            "[[pools.sources]]\nname = \"a\"\nurl = \"http://x/p\"\npreset = \"hikaricp\"\n"
        )
        .is_empty());
        assert_eq!(
            keys("[[pools.sources]]\nname = \"a\"\nurl = \"http://x/p\"\n"),
            ["pools.sources[0].preset"]
        );
        assert_eq!(
            keys("[[pools.sources]]\nname = \"a\"\nurl = \"http://x/p\"\npreset = \"custom\"\nmapping = { idle = \"idle\" }\n"),
            ["pools.sources[0].mapping", "pools.sources[0].mapping.idle"]
        );
    }

    #[test]
    fn prometheus_families_are_checked() {
        let text = "[[pools.sources]]\nname = \"a\"\nurl = \"ftp://x/\"\nkind = \"prometheus\"\nfamilies = [\"ok_total\", \"hikaricp_*\", \"process_cpu_seconds_total\", \"1bad\", \"ok_total\"]\ninterval = \"0s\"\n";
        assert_eq!(
            keys(text),
            [
                "pools.sources[0].url",
                "pools.sources[0].interval",
                "pools.sources[0].families[2]",
                "pools.sources[0].families[3]",
                "pools.sources[0].families[4]",
            ]
        );
    }
}
