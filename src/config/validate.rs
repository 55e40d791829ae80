//! Whole-config checks that serde cannot express. Every problem is reported,
//! not just the first.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use super::load::ConfigError;
use super::{Config, HealthTarget};
use crate::collect::health::StatusSet;

/// Returns every problem found; empty means the config is valid.
pub(crate) fn validate(config: &Config) -> Vec<ConfigError> {
    let mut errors = Errors::default();
    if tracing_subscriber::EnvFilter::try_new(&config.self_log.level).is_err() {
        errors.push(
            "self_log.level",
            "expected error, warn, info, debug or trace",
        );
    }
    errors.positive("process.interval", config.process.interval);
    super::admin::validate(
        "admin",
        config.admin.tls.as_ref(),
        &config.admin.auth,
        &config.admin.limits,
        &mut errors,
    );
    if config.reload.watch_config {
        errors.positive("reload.watch_interval", config.reload.watch_interval);
    }
    let mut names = HashSet::new();
    for (i, target) in config.health.targets.iter().enumerate() {
        let key = format!("health.targets[{i}]");
        errors.name(&format!("{key}.name"), &target.name, &mut names);
        validate_target(&key, target, &mut errors);
    }
    config.postgres.validate(&mut errors);
    config.redis.validate(&mut errors);
    errors.0.extend(config.pools.validate());
    errors.0.extend(config.logs.validate());
    errors.0.extend(super::log_metrics::validate(
        &config.log_metrics,
        &config.routes,
        !config.logs.sources.is_empty() || config.proxy_access_log(),
    ));
    errors.0.extend(config.statsd.validate());
    clashes_between_rules_and_statsd(config, &mut errors);
    config.proxy.validate(&mut errors);
    clashes_with_the_proxy(config, &mut errors);
    config.otlp.validate(&mut errors);
    if config.otlp.traces.enabled && !config.proxy.is_enabled() {
        errors.push(
            "otlp.traces.enabled",
            "spans come from the proxy: turn `[proxy]` on (set `proxy.upstream`)",
        );
    }
    errors.0
}

/// With the proxy on, it owns the `http_*` request families: neither a log
/// rule nor a StatsD mapping may register them.
fn clashes_with_the_proxy(config: &Config, errors: &mut Errors) {
    use crate::telemetry::names::reserved_by;
    if !config.proxy.is_enabled() {
        return;
    }
    let named = config
        .log_metrics
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("log_metrics[{i}].name"), &r.name))
        .chain(
            config
                .statsd
                .mappings
                .iter()
                .enumerate()
                .map(|(i, m)| (format!("statsd.mappings[{i}].name"), &m.name)),
        );
    for (key, name) in named {
        if reserved_by(name, false).is_some() {
            continue; // reported by the section's own check
        }
        if let Some(owner) = reserved_by(name, true) {
            errors.push(
                key,
                format!("{name:?} is already registered by {owner}; drop this rule while `[proxy]` is on"),
            );
        }
    }
}

/// A StatsD mapping may not produce a family a log rule registers.
fn clashes_between_rules_and_statsd(config: &Config, errors: &mut Errors) {
    use crate::telemetry::names::family_base;
    for (i, mapping) in config.statsd.mappings.iter().enumerate() {
        if let Some(rule) = config
            .log_metrics
            .iter()
            .find(|r| family_base(&r.name) == family_base(&mapping.name))
        {
            errors.push(
                format!("statsd.mappings[{i}].name"),
                format!(
                    "{:?} is already registered by log rule {:?}",
                    mapping.name, rule.name
                ),
            );
        }
    }
}

fn validate_target(key: &str, target: &HealthTarget, errors: &mut Errors) {
    match (&target.url, &target.tcp) {
        (Some(_), Some(_)) => errors.push(key, "set either `url` or `tcp`, not both"),
        (None, None) => errors.push(key, "set `url` (HTTP probe) or `tcp` (connect probe)"),
        (Some(url), None) if !matches!(url.scheme(), "http" | "https") => errors.push(
            format!("{key}.url"),
            format!("scheme must be http or https, not {:?}", url.scheme()),
        ),
        (None, Some(tcp)) if !is_host_port(tcp) => errors.push(
            format!("{key}.tcp"),
            format!("expected host:port, got {tcp:?}"),
        ),
        _ => {}
    }
    if http::Method::from_bytes(target.method.as_bytes()).is_err() {
        errors.push(
            format!("{key}.method"),
            format!("not an HTTP method: {:?}", target.method),
        );
    }
    for (name, value) in &target.headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || http::HeaderValue::from_str(value).is_err()
        {
            errors.push(format!("{key}.headers.{name}"), "not a valid HTTP header");
        }
    }
    if let Err(e) = StatusSet::parse(&target.expected_status) {
        errors.push(format!("{key}.expected_status"), e);
    }
    errors.positive(&format!("{key}.timeout"), target.timeout);
    errors.positive(&format!("{key}.interval"), target.interval);
    if let Some(pattern) = &target.body_regex {
        if let Err(e) = regex::Regex::new(pattern) {
            errors.push(format!("{key}.body_regex"), format!("invalid regex: {e}"));
        }
    }
    errors.readable(&format!("{key}.ca_file"), target.ca_file.as_deref());
}

/// Whether a configured name can be a label value as it is.
fn is_label_safe(name: &str) -> bool {
    name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c))
}

fn is_host_port(value: &str) -> bool {
    match value.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0),
        None => false,
    }
}

/// Problems found so far, each tied to its key; sections add to it.
#[derive(Default)]
pub(crate) struct Errors(pub(crate) Vec<ConfigError>);

impl Errors {
    /// Records a problem with `key`.
    pub(crate) fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            key: key.into(),
            message: message.into(),
        });
    }

    /// `value` must be greater than zero.
    pub(crate) fn positive(&mut self, key: &str, value: Duration) {
        if value.is_zero() {
            self.push(key, "must be greater than zero");
        }
    }

    /// A component's `name`: set, usable as a label value as it is, and
    /// unique among the names `seen` so far in its list.
    pub(crate) fn name<'a>(&mut self, key: &str, name: &'a str, seen: &mut HashSet<&'a str>) {
        if name.is_empty() {
            self.push(key, "must be set");
        } else if !is_label_safe(name) {
            self.push(
                key,
                "use letters, digits and - _ . : / only (it becomes a label value)",
            );
        } else if !seen.insert(name) {
            self.push(key, format!("duplicate name {name:?}"));
        }
    }

    /// An optional file that must be readable.
    pub(crate) fn readable(&mut self, key: &str, path: Option<&Path>) {
        if let Some(path) = path {
            if let Err(e) = std::fs::read(path) {
                self.push(key, format!("cannot read {}: {e}", path.display()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::{load_from_str, Format};

    fn keys(text: &str) -> Vec<String> {
        let errors = load_from_str(text, Format::Toml, &HashMap::new()).unwrap_err();
        errors.0.into_iter().map(|e| e.key).collect()
    }

    #[test]
    fn reports_every_error_with_its_key() {
        let keys = keys(
            r#"
            [self_log]
            level = "loud=="
            [[health.targets]]
            name = "a"
            url = "ftp://x/"
            method = "GE T"
            expected_status = ["2xx", "abc"]
            body_regex = "("
            timeout = "0s"
            [[health.targets]]
            name = "a"
            tcp = "nohost"
            "#,
        );
        for expected in [
            "self_log.level",
            "health.targets[0].url",
            "health.targets[0].method",
            "health.targets[0].expected_status",
            "health.targets[0].body_regex",
            "health.targets[0].timeout",
            "health.targets[1].name",
            "health.targets[1].tcp",
        ] {
            assert!(
                keys.iter().any(|k| k == expected),
                "{expected} missing from {keys:?}"
            );
        }
    }

    #[test]
    fn target_needs_url_or_tcp() {
        assert_eq!(
            keys("[[health.targets]]\nname = \"a\"\n"),
            vec!["health.targets[0]"]
        );
    }

    #[test]
    fn bad_url_is_a_parse_error_on_its_key() {
        assert_eq!(
            keys("[[health.targets]]\nname = \"a\"\nurl = \"not a url\"\n"),
            vec!["health.targets[0].url"]
        );
    }
}
