//! The `redis_*` families, named as redis_exporter names them, and how one
//! collection's readings become their samples.

use prometheus_client::registry::Registry;

use super::info::Info;
use crate::telemetry::snapshot::{Kind, Labels, SnapshotFamily};

/// `(metric, INFO field, kind, help)` for the plain one-number metrics.
/// Counter names leave out `_total`; the encoder appends it.
const FROM_INFO: [(&str, &str, Kind, &str); 12] = [
    (
        "redis_blocked_clients",
        "blocked_clients",
        Kind::Gauge,
        "Clients blocked on a blocking call (BLPOP, XREAD, ...)",
    ),
    (
        "redis_rejected_connections",
        "rejected_connections",
        Kind::Counter,
        "Connections rejected because of maxclients",
    ),
    (
        "redis_memory_used_bytes",
        "used_memory",
        Kind::Gauge,
        "Memory allocated by Redis (used_memory)",
    ),
    (
        "redis_memory_max_bytes",
        "maxmemory",
        Kind::Gauge,
        "The maxmemory setting (0 = no limit)",
    ),
    (
        "redis_keyspace_hits",
        "keyspace_hits",
        Kind::Counter,
        "Successful key lookups",
    ),
    (
        "redis_keyspace_misses",
        "keyspace_misses",
        Kind::Counter,
        "Failed key lookups",
    ),
    (
        "redis_commands_processed",
        "total_commands_processed",
        Kind::Counter,
        "Commands processed by the server",
    ),
    (
        "redis_evicted_keys",
        "evicted_keys",
        Kind::Counter,
        "Keys evicted because of maxmemory",
    ),
    (
        "redis_expired_keys",
        "expired_keys",
        Kind::Counter,
        "Keys deleted because they expired",
    ),
    (
        "redis_connections_received",
        "total_connections_received",
        Kind::Counter,
        "Connections accepted by the server",
    ),
    (
        "redis_uptime_in_seconds",
        "uptime_in_seconds",
        Kind::Gauge,
        "Seconds since the server started",
    ),
    (
        "redis_connected_slaves",
        "connected_slaves",
        Kind::Gauge,
        "Replicas connected to this server",
    ),
];

/// What one successful collection read, ready to publish.
#[derive(Debug, Default)]
pub struct Reading {
    /// The parsed `INFO` reply.
    pub info: Info,
    /// `maxclients`, from wherever it could be read.
    pub maxclients: Option<f64>,
    /// Clients connected from this pod, when counted.
    pub pod_clients: Option<u64>,
    /// `PING` round trip in seconds.
    pub ping_seconds: f64,
}

/// Every Redis family; each server replaces its own samples.
#[derive(Debug, Clone)]
pub struct RedisMetrics {
    up: SnapshotFamily,
    connected_clients: SnapshotFamily,
    maxclients: SnapshotFamily,
    db_keys: SnapshotFamily,
    db_keys_expiring: SnapshotFamily,
    instance_info: SnapshotFamily,
    ping: SnapshotFamily,
    from_info: Vec<(SnapshotFamily, &'static str)>,
}

impl RedisMetrics {
    /// Registers the families.
    pub fn register(registry: &mut Registry) -> Self {
        let mut family = |name: &str, help: &str, kind: Kind| {
            SnapshotFamily::register(registry, name, help, kind)
        };
        let up = family(
            "redis_up",
            "Whether the last collection from the Redis server succeeded (1) or not (0)",
            Kind::Gauge,
        );
        let connected_clients = family(
            "redis_connected_clients",
            "Client connections: scope=\"server\" all of them (sidewatch's own included), scope=\"pod\" those from this pod (sidewatch's excluded)",
            Kind::Gauge,
        );
        let maxclients = family(
            "redis_config_maxclients",
            "The maxclients setting",
            Kind::Gauge,
        );
        let db_keys = family("redis_db_keys", "Keys in the database", Kind::Gauge);
        let db_keys_expiring = family(
            "redis_db_keys_expiring",
            "Keys with an expiry in the database",
            Kind::Gauge,
        );
        let instance_info = family(
            "redis_instance_info",
            "The server's version, role and mode; the value is always 1",
            Kind::Gauge,
        );
        let ping = family(
            "sidewatch_redis_ping_seconds",
            "Round-trip time of the last PING in seconds",
            Kind::Gauge,
        );
        let from_info = FROM_INFO
            .iter()
            .map(|(name, field, kind, help)| (family(name, help, *kind), *field))
            .collect();
        Self {
            up,
            connected_clients,
            maxclients,
            db_keys,
            db_keys_expiring,
            instance_info,
            ping,
            from_info,
        }
    }

    /// Publishes a successful collection for `server`.
    pub fn publish(&self, server: &str, reading: &Reading) {
        let labels = |extra: &[(&str, &str)]| -> Labels {
            std::iter::once(("server", server))
                .chain(extra.iter().copied())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        };
        let one = |value: Option<f64>| value.map(|v| (labels(&[]), v)).into_iter().collect();
        let info = &reading.info;
        self.up.set(server, vec![(labels(&[]), 1.0)]);
        let mut clients = Vec::new();
        if let Some(n) = info.number("connected_clients") {
            clients.push((labels(&[("scope", "server")]), n));
        }
        if let Some(n) = reading.pod_clients {
            clients.push((labels(&[("scope", "pod")]), n as f64));
        }
        self.connected_clients.set(server, clients);
        self.maxclients.set(server, one(reading.maxclients));
        self.ping.set(server, one(Some(reading.ping_seconds)));
        for (family, field) in &self.from_info {
            family.set(server, one(info.number(field)));
        }
        let per_db = |pick: fn(&(String, f64, f64)) -> f64| {
            info.keyspace
                .iter()
                .map(|db| (labels(&[("db", &db.0)]), pick(db)))
                .collect()
        };
        self.db_keys.set(server, per_db(|db| db.1));
        self.db_keys_expiring.set(server, per_db(|db| db.2));
        let field = |key: &str| bounded(info.text(key).unwrap_or_default());
        let (version, role, mode) = (field("redis_version"), field("role"), field("redis_mode"));
        self.instance_info.set(
            server,
            vec![(
                labels(&[
                    ("redis_version", &version),
                    ("role", &role),
                    ("redis_mode", &mode),
                ]),
                1.0,
            )],
        );
    }

    /// Publishes a failed collection: `redis_up 0` and no other series, so
    /// stale numbers do not linger.
    pub fn publish_down(&self, server: &str) {
        self.up
            .set(server, vec![(vec![("server".into(), server.into())], 0.0)]);
        for family in [
            &self.connected_clients,
            &self.maxclients,
            &self.db_keys,
            &self.db_keys_expiring,
            &self.instance_info,
            &self.ping,
        ] {
            family.set(server, Vec::new());
        }
        for (family, _) in &self.from_info {
            family.set(server, Vec::new());
        }
    }
}

/// A label value read from the server: short, and only characters that need
/// no escaping in the exposition format.
fn bounded(value: &str) -> String {
    value
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
        .take(32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_and_clears_samples() {
        let mut registry = Registry::default();
        let metrics = RedisMetrics::register(&mut registry);
        let reading = Reading {
            info: Info::parse("# Server\nredis_version:7.0.15\nrole:master\nredis_mode:standalone\n# Clients\nconnected_clients:4\n# Stats\nkeyspace_hits:9\n# Keyspace\ndb0:keys=3,expires=1\n"),
            maxclients: Some(100.0),
            pod_clients: Some(2),
            ping_seconds: 0.001,
        };
        metrics.publish("cache", &reading);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "redis_up{server=\"cache\"} 1",
            "redis_connected_clients{server=\"cache\",scope=\"server\"} 4",
            "redis_connected_clients{server=\"cache\",scope=\"pod\"} 2",
            "redis_config_maxclients{server=\"cache\"} 100",
            "redis_keyspace_hits_total{server=\"cache\"} 9",
            "redis_db_keys{server=\"cache\",db=\"db0\"} 3",
            "redis_db_keys_expiring{server=\"cache\",db=\"db0\"} 1",
            "redis_instance_info{server=\"cache\",redis_version=\"7.0.15\",role=\"master\",redis_mode=\"standalone\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(!text.contains("redis_evicted_keys"), "{text}");
        metrics.publish_down("cache");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("redis_up{server=\"cache\"} 0"), "{text}");
        assert!(!text.contains("redis_connected_clients"), "{text}");
    }

    #[test]
    fn label_values_from_the_server_are_bounded() {
        assert_eq!(bounded("7.0.15"), "7.0.15");
        assert_eq!(bounded("a\"b\\c\nd"), "abcd");
        assert_eq!(bounded(&"x".repeat(100)).len(), 32);
    }
}
