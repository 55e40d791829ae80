//! Which top-level sections of the configuration changed, and whether the
//! running process can take the change without a restart.

use std::collections::BTreeSet;

use crate::config::proxy::ProxyConfig;
use crate::config::Config;

/// Sections whose change needs a restart: they hold listeners that are not
/// rebound (admin), state read once at start (pod identity, the process
/// collector's limits, the own log subscriber, the OTLP exporters and the
/// span queue the proxy holds) or the reload setup itself.
pub const RESTART_ONLY: [&str; 6] = ["admin", "self_log", "pod", "process", "reload", "otlp"];

/// The top-level sections of `Config` that differ between `old` and `new`
/// (compared as their serialized values, so every field counts).
pub fn changed_sections(old: &Config, new: &Config) -> BTreeSet<String> {
    let (Ok(serde_json::Value::Object(old)), Ok(serde_json::Value::Object(new))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return BTreeSet::new();
    };
    old.keys()
        .chain(new.keys())
        .filter(|key| old.get(*key) != new.get(*key))
        .cloned()
        .collect()
}

/// Why `new` cannot be applied to the running process, if it cannot: the
/// changed keys that need a restart.
pub fn needs_restart(changed: &BTreeSet<String>, old: &Config, new: &Config) -> Vec<String> {
    let mut keys: Vec<String> = RESTART_ONLY
        .iter()
        .filter(|s| changed.contains(**s))
        .map(|s| (*s).to_owned())
        .collect();
    if changed.contains("proxy") {
        keys.extend(proxy_restart_keys(&old.proxy, &new.proxy));
    }
    if changed.contains("statsd") {
        let (old, new) = (&old.statsd, &new.statsd);
        for (key, differs) in [
            ("enabled", old.enabled != new.enabled),
            ("listen", old.listen != new.listen),
            (
                "receive_buffer_bytes",
                old.receive_buffer_bytes != new.receive_buffer_bytes,
            ),
        ] {
            if differs {
                keys.push(format!("statsd.{key}"));
            }
        }
    }
    keys
}

/// The proxy's keys that belong to its listener and runtime: turning it on
/// or off, `listen`, `threads`, and the client-side HTTP limits (fixed per
/// connection server).
fn proxy_restart_keys(old: &ProxyConfig, new: &ProxyConfig) -> Vec<String> {
    let mut keys = Vec::new();
    let mut check = |key: &str, differs: bool| {
        if differs {
            keys.push(format!("proxy.{key}"));
        }
    };
    check("enabled", old.is_enabled() != new.is_enabled());
    check("listen", old.listen != new.listen);
    check("threads", old.threads != new.threads);
    check(
        "header_read_timeout",
        old.header_read_timeout != new.header_read_timeout,
    );
    check(
        "max_header_bytes",
        old.max_header_bytes != new.max_header_bytes,
    );
    check("max_headers", old.max_headers != new.max_headers);
    check("max_series", old.max_series != new.max_series);
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_from_str, Format};
    use std::collections::HashMap;

    fn config(text: &str) -> Config {
        load_from_str(text, Format::Toml, &HashMap::new()).unwrap()
    }

    #[test]
    fn only_the_sections_that_differ_are_named() {
        let old = config("[proxy]\nupstream = \"127.0.0.1:1\"\n");
        let new = config(
            "[proxy]\nupstream = \"127.0.0.1:1\"\nduration_buckets = [0.5, 1]\n[[health.targets]]\nname = \"a\"\ntcp = \"127.0.0.1:2\"\n",
        );
        let changed = changed_sections(&old, &new);
        assert_eq!(changed.into_iter().collect::<Vec<_>>(), ["health", "proxy"]);
        assert!(changed_sections(&old, &old).is_empty());
    }

    #[test]
    fn listener_and_restart_only_changes_are_named() {
        let old = config("[proxy]\nupstream = \"127.0.0.1:1\"\n");
        let new = config(
            "[proxy]\nupstream = \"127.0.0.1:1\"\nlisten = \"127.0.0.1:9\"\n[admin]\nlisten = \"127.0.0.1:8\"\n",
        );
        let changed = changed_sections(&old, &new);
        assert_eq!(
            needs_restart(&changed, &old, &new),
            ["admin", "proxy.listen"]
        );
        let buckets = config("[proxy]\nupstream = \"127.0.0.1:2\"\nduration_buckets = [1]\n");
        let changed = changed_sections(&old, &buckets);
        assert!(needs_restart(&changed, &old, &buckets).is_empty());
    }
}
