//! The PostgreSQL metric families (postgres_exporter's names) and how one
//! run's [`Snapshot`] becomes their samples.
//!
//! postgres_exporter exposes its `pg_stat_database_*` totals as counters
//! *without* a `_total` suffix. The registry's encoder always appends
//! `_total` to counters, so those families are exported as gauges under the
//! exact postgres_exporter names: existing dashboards, mixins and `rate()`
//! queries keep working (PromQL does not check the type).

use std::collections::BTreeMap;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::queries::{ActivityRow, Snapshot, DATABASE_COLUMNS};
use crate::telemetry::snapshot::{Kind, Labels, SnapshotFamily};

/// The `state` values postgres_exporter reports (as 0 when no backend is in them).
pub const STATES: [&str; 6] = [
    "active",
    "idle",
    "idle in transaction",
    "idle in transaction (aborted)",
    "fastpath function call",
    "disabled",
];

/// The `state` of backends whose state this role may not see.
pub const UNKNOWN_STATE: &str = "unknown";

/// Label set of `pg_up`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ServerLabels {
    /// The configured server name.
    pub server: String,
}

/// Every PostgreSQL family; each server owns its own samples.
#[derive(Debug, Clone)]
pub struct PostgresMetrics {
    /// `pg_up`.
    pub up: Family<ServerLabels, Gauge>,
    ping: SnapshotFamily,
    max_connections: SnapshotFamily,
    superuser_reserved: SnapshotFamily,
    start_time: SnapshotFamily,
    is_replica: SnapshotFamily,
    replication_lag: SnapshotFamily,
    activity_count: SnapshotFamily,
    activity_max_tx: SnapshotFamily,
    activity_waiting: SnapshotFamily,
    database: Vec<SnapshotFamily>,
}

impl PostgresMetrics {
    /// Registers every family.
    pub fn register(registry: &mut Registry) -> Self {
        let up = Family::default();
        registry.register(
            "pg_up",
            "Whether the last collection from the PostgreSQL server succeeded (1) or not (0)",
            up.clone(),
        );
        let mut gauge =
            |name: &str, help: &str| SnapshotFamily::register(registry, name, help, Kind::Gauge);
        Self {
            up,
            ping: gauge(
                "sidewatch_postgres_ping_seconds",
                "Round trip of SELECT 1 on sidewatch's connection, in seconds",
            ),
            max_connections: gauge(
                "pg_settings_max_connections",
                "Server setting max_connections",
            ),
            superuser_reserved: gauge(
                "pg_settings_superuser_reserved_connections",
                "Server setting superuser_reserved_connections",
            ),
            start_time: gauge(
                "pg_postmaster_start_time_seconds",
                "Time at which the postmaster started, in Unix seconds",
            ),
            is_replica: gauge(
                "pg_replication_is_replica",
                "Whether the server is a standby (1) or a primary (0)",
            ),
            replication_lag: gauge(
                "pg_replication_lag_seconds",
                "Replication lag behind the primary in seconds (0 on a primary)",
            ),
            activity_count: gauge(
                "pg_stat_activity_count",
                "Client backends by database and state; scope=\"server\" counts all, scope=\"pod\" those from this pod's IP",
            ),
            activity_max_tx: gauge(
                "pg_stat_activity_max_tx_duration",
                "Age of the oldest open transaction by database and state, in seconds",
            ),
            activity_waiting: gauge(
                "pg_stat_activity_waiting_count",
                "Client backends waiting on a lock (wait_event_type Lock), by database",
            ),
            database: DATABASE_COLUMNS
                .iter()
                .map(|(name, help)| gauge(name, help))
                .collect(),
        }
    }

    /// Removes every sample of `server` except `pg_up` (a server that cannot
    /// be read reports nothing stale).
    pub fn clear(&self, server: &str) {
        for family in self.families() {
            family.set(server, Vec::new());
        }
    }

    /// Replaces `server`'s samples with `snapshot`'s; returns the number of
    /// backends whose state this role may not see.
    pub fn publish(&self, server: &str, snapshot: &Snapshot, pod_known: bool) -> f64 {
        let one = |value: f64| vec![(labels(&[("server", server)]), value)];
        let settings = &snapshot.settings;
        self.ping.set(server, one(snapshot.ping.as_secs_f64()));
        self.max_connections
            .set(server, one(settings.max_connections));
        self.superuser_reserved
            .set(server, one(settings.superuser_reserved_connections));
        self.start_time
            .set(server, one(settings.start_time_seconds));
        self.is_replica
            .set(server, one(f64::from(u8::from(settings.is_replica))));
        self.replication_lag
            .set(server, one(settings.replication_lag_seconds));

        let datnames: Vec<&str> = snapshot
            .databases
            .iter()
            .map(|d| d.datname.as_str())
            .collect();
        let activity = Activity::aggregate(&snapshot.activity, &datnames, pod_known);
        self.activity_count
            .set(server, activity.count_samples(server));
        self.activity_max_tx
            .set(server, activity.max_tx_samples(server));
        self.activity_waiting
            .set(server, activity.waiting_samples(server));

        for (i, family) in self.database.iter().enumerate() {
            let samples = snapshot
                .databases
                .iter()
                .filter_map(|db| {
                    let value = db.values.get(i).copied().flatten()?;
                    Some((
                        labels(&[("server", server), ("datname", &db.datname)]),
                        value,
                    ))
                })
                .collect();
            family.set(server, samples);
        }
        activity.invisible
    }

    fn families(&self) -> impl Iterator<Item = &SnapshotFamily> {
        [
            &self.ping,
            &self.max_connections,
            &self.superuser_reserved,
            &self.start_time,
            &self.is_replica,
            &self.replication_lag,
            &self.activity_count,
            &self.activity_max_tx,
            &self.activity_waiting,
        ]
        .into_iter()
        .chain(&self.database)
    }
}

/// `pg_stat_activity` rows aggregated per (scope, datname, state).
#[derive(Debug, Default)]
struct Activity {
    /// (count, max tx seconds) by (scope, datname, state).
    by_state: BTreeMap<(&'static str, String, String), (f64, f64)>,
    /// Waiting backends by (scope, datname).
    waiting: BTreeMap<(&'static str, String), f64>,
    /// Backends whose state is hidden from this role.
    invisible: f64,
}

impl Activity {
    fn aggregate(rows: &[ActivityRow], datnames: &[&str], pod_known: bool) -> Self {
        let scopes: &[&'static str] = if pod_known {
            &["server", "pod"]
        } else {
            &["server"]
        };
        let mut activity = Activity::default();
        for scope in scopes {
            for datname in datnames {
                for state in STATES {
                    let key = (*scope, datname.to_string(), state.to_owned());
                    activity.by_state.insert(key, (0.0, 0.0));
                }
                activity.waiting.insert((scope, datname.to_string()), 0.0);
            }
        }
        for row in rows {
            let state = row.state.as_deref().unwrap_or(UNKNOWN_STATE);
            if row.state.is_none() {
                activity.invisible += row.count;
            }
            let row_scopes = if row.in_pod && pod_known {
                scopes
            } else {
                &scopes[..1]
            };
            for scope in row_scopes {
                let key = (*scope, row.datname.clone(), state.to_owned());
                let entry = activity.by_state.entry(key).or_default();
                entry.0 += row.count;
                entry.1 = entry.1.max(row.max_tx_seconds);
                *activity
                    .waiting
                    .entry((scope, row.datname.clone()))
                    .or_default() += row.waiting;
            }
        }
        activity
    }

    fn state_samples(
        &self,
        server: &str,
        value: impl Fn(&(f64, f64)) -> f64,
    ) -> Vec<(Labels, f64)> {
        self.by_state
            .iter()
            .map(|((scope, datname, state), v)| {
                let labels = labels(&[
                    ("server", server),
                    ("datname", datname),
                    ("state", state),
                    ("scope", scope),
                ]);
                (labels, value(v))
            })
            .collect()
    }

    fn count_samples(&self, server: &str) -> Vec<(Labels, f64)> {
        self.state_samples(server, |v| v.0)
    }

    fn max_tx_samples(&self, server: &str) -> Vec<(Labels, f64)> {
        self.state_samples(server, |v| v.1)
    }

    fn waiting_samples(&self, server: &str) -> Vec<(Labels, f64)> {
        self.waiting
            .iter()
            .map(|((scope, datname), v)| {
                let labels = labels(&[("server", server), ("datname", datname), ("scope", scope)]);
                (labels, *v)
            })
            .collect()
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::collect::postgres::queries::{DatabaseRow, Settings};

    fn row(datname: &str, state: Option<&str>, in_pod: bool, count: f64) -> ActivityRow {
        ActivityRow {
            datname: datname.into(),
            state: state.map(Into::into),
            in_pod,
            count,
            waiting: 0.0,
            max_tx_seconds: 0.0,
        }
    }

    fn rows() -> Vec<ActivityRow> {
        vec![
            row("app", Some("idle"), true, 2.0),
            row("app", Some("idle"), false, 1.0),
            ActivityRow {
                waiting: 1.0,
                max_tx_seconds: 5.0,
                ..row("app", Some("active"), true, 1.0)
            },
            row("other", Some("idle"), false, 1.0),
            row("app", None, false, 3.0),
        ]
    }

    fn get(activity: &Activity, key: (&'static str, &str, &str)) -> Option<(f64, f64)> {
        activity
            .by_state
            .get(&(key.0, key.1.to_owned(), key.2.to_owned()))
            .copied()
    }

    #[test]
    fn aggregates_per_scope_with_zeros_for_known_databases() {
        let activity = Activity::aggregate(&rows(), &["app"], true);
        assert_eq!(get(&activity, ("server", "app", "idle")), Some((3.0, 0.0)));
        assert_eq!(get(&activity, ("pod", "app", "idle")), Some((2.0, 0.0)));
        assert_eq!(
            get(&activity, ("server", "app", "active")),
            Some((1.0, 5.0))
        );
        assert_eq!(get(&activity, ("pod", "app", "active")), Some((1.0, 5.0)));
        assert_eq!(
            get(&activity, ("server", "app", "disabled")),
            Some((0.0, 0.0))
        );
        assert_eq!(
            get(&activity, ("server", "app", "unknown")),
            Some((3.0, 0.0))
        );
        assert_eq!(get(&activity, ("pod", "app", "unknown")), None);
        assert_eq!(
            get(&activity, ("server", "other", "idle")),
            Some((1.0, 0.0))
        );
        assert_eq!(get(&activity, ("server", "other", "active")), None);
        assert_eq!(activity.waiting.get(&("pod", "app".to_owned())), Some(&1.0));
        assert_eq!(
            activity.waiting.get(&("server", "other".to_owned())),
            Some(&0.0)
        );
        assert_eq!(activity.invisible, 3.0);
    }

    #[test]
    fn no_pod_scope_without_a_pod_ip() {
        let activity = Activity::aggregate(&rows(), &["app"], false);
        assert!(activity
            .by_state
            .keys()
            .all(|(scope, _, _)| *scope == "server"));
        assert!(activity.waiting.keys().all(|(scope, _)| *scope == "server"));
    }

    #[test]
    fn publishes_exporter_names_and_clears() {
        let mut registry = Registry::default();
        let metrics = PostgresMetrics::register(&mut registry);
        let mut values = vec![Some(1.0); DATABASE_COLUMNS.len()];
        values[DATABASE_COLUMNS.len() - 1] = None;
        let snapshot = Snapshot {
            ping: Duration::from_millis(2),
            settings: Settings {
                max_connections: 100.0,
                superuser_reserved_connections: 3.0,
                start_time_seconds: 1.7e9,
                is_replica: false,
                replication_lag_seconds: 0.0,
                version: "15.1".into(),
            },
            activity: rows(),
            databases: vec![DatabaseRow {
                datname: "app".into(),
                values,
            }],
        };
        assert_eq!(metrics.publish("main", &snapshot, true), 3.0);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for expected in [
            "# TYPE pg_stat_database_xact_commit gauge",
            "pg_stat_database_xact_commit{server=\"main\",datname=\"app\"} 1",
            "pg_settings_max_connections{server=\"main\"} 100",
            "pg_stat_activity_count{server=\"main\",datname=\"app\",state=\"idle in transaction\",scope=\"pod\"} 0",
        ] {
            assert!(text.contains(expected), "{expected} missing from\n{text}");
        }
        assert!(!text.contains("pg_database_size_bytes{"), "{text}");
        metrics.clear("main");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(!text.contains("pg_stat"), "{text}");
    }
}
