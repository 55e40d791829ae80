//! What sidewatch asks PostgreSQL (10 or later) each run, and the rows it
//! expects back. The statements are prepared once per connection and the
//! three reads are pipelined, so a run costs two round trips.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};

const PING: &str = "SELECT 1";

const SETTINGS: &str = "\
SELECT current_setting('max_connections')::float8,
       current_setting('superuser_reserved_connections')::float8,
       EXTRACT(EPOCH FROM pg_postmaster_start_time())::float8,
       pg_is_in_recovery(),
       (CASE WHEN NOT pg_is_in_recovery() THEN 0
             WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
             ELSE GREATEST(0, EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()))
        END)::float8,
       current_setting('server_version')";

/// Client backends other than sidewatch's own, grouped. `$1`: the pod IP or NULL.
/// Backends of other roles that this role may not inspect (no `pg_monitor`)
/// show only `datname`: no `state`, `backend_type` or `client_addr`. They
/// are counted with a NULL state (an autovacuum worker may briefly be among them).
const ACTIVITY: &str = "\
SELECT COALESCE(datname, ''),
       state,
       COALESCE(client_addr = $1::text::inet, false),
       count(*)::float8,
       (count(*) FILTER (WHERE wait_event_type = 'Lock'))::float8,
       COALESCE(max(GREATEST(0, EXTRACT(EPOCH FROM now() - xact_start))), 0)::float8
FROM pg_stat_activity
WHERE (backend_type = 'client backend' OR (backend_type IS NULL AND datname IS NOT NULL))
  AND pid <> pg_backend_pid()
GROUP BY 1, 2, 3";

/// Per-database statistics, in the order of [`DATABASE_COLUMNS`]. `$1`: the
/// databases to report, or an empty array for every non-template database.
const DATABASE: &str = "\
SELECT s.datname,
       s.numbackends::float8, s.xact_commit::float8, s.xact_rollback::float8,
       s.blks_read::float8, s.blks_hit::float8, s.tup_returned::float8,
       s.tup_fetched::float8, s.tup_inserted::float8, s.tup_updated::float8,
       s.tup_deleted::float8, s.conflicts::float8, s.temp_files::float8,
       s.temp_bytes::float8, s.deadlocks::float8, s.blk_read_time, s.blk_write_time,
       (CASE WHEN has_database_privilege(d.oid, 'CONNECT')
             THEN pg_database_size(d.oid) END)::float8
FROM pg_stat_database s JOIN pg_database d ON d.oid = s.datid
WHERE NOT d.datistemplate
  AND (cardinality($1::text[]) = 0 OR s.datname = ANY($1::text[]))
ORDER BY s.datname";

/// The per-database families, in the column order of the database query:
/// postgres_exporter's names and help texts.
pub const DATABASE_COLUMNS: [(&str, &str); 17] = [
    (
        "pg_stat_database_numbackends",
        "Number of backends currently connected to this database",
    ),
    (
        "pg_stat_database_xact_commit",
        "Number of transactions in this database that have been committed",
    ),
    (
        "pg_stat_database_xact_rollback",
        "Number of transactions in this database that have been rolled back",
    ),
    (
        "pg_stat_database_blks_read",
        "Number of disk blocks read in this database",
    ),
    (
        "pg_stat_database_blks_hit",
        "Number of times disk blocks were found already in the buffer cache",
    ),
    (
        "pg_stat_database_tup_returned",
        "Number of rows returned by queries in this database",
    ),
    (
        "pg_stat_database_tup_fetched",
        "Number of rows fetched by queries in this database",
    ),
    (
        "pg_stat_database_tup_inserted",
        "Number of rows inserted by queries in this database",
    ),
    (
        "pg_stat_database_tup_updated",
        "Number of rows updated by queries in this database",
    ),
    (
        "pg_stat_database_tup_deleted",
        "Number of rows deleted by queries in this database",
    ),
    (
        "pg_stat_database_conflicts",
        "Number of queries canceled due to conflicts with recovery in this database",
    ),
    (
        "pg_stat_database_temp_files",
        "Number of temporary files created by queries in this database",
    ),
    (
        "pg_stat_database_temp_bytes",
        "Total amount of data written to temporary files by queries in this database",
    ),
    (
        "pg_stat_database_deadlocks",
        "Number of deadlocks detected in this database",
    ),
    (
        "pg_stat_database_blk_read_time",
        "Time spent reading data file blocks by backends in this database, in milliseconds",
    ),
    (
        "pg_stat_database_blk_write_time",
        "Time spent writing data file blocks by backends in this database, in milliseconds",
    ),
    ("pg_database_size_bytes", "Disk space used by the database"),
];

/// The statements prepared on a connection.
#[derive(Debug)]
pub struct Statements {
    ping: Statement,
    settings: Statement,
    activity: Statement,
    database: Statement,
}

impl Statements {
    /// Prepares every statement (pipelined).
    pub async fn prepare(client: &Client) -> Result<Self, tokio_postgres::Error> {
        let (ping, settings, activity, database) = tokio::try_join!(
            client.prepare(PING),
            client.prepare(SETTINGS),
            client.prepare(ACTIVITY),
            client.prepare(DATABASE),
        )?;
        Ok(Self {
            ping,
            settings,
            activity,
            database,
        })
    }
}

/// Server-wide values.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `max_connections`.
    pub max_connections: f64,
    /// `superuser_reserved_connections`.
    pub superuser_reserved_connections: f64,
    /// When the postmaster started, Unix seconds.
    pub start_time_seconds: f64,
    /// Whether the server is a standby.
    pub is_replica: bool,
    /// Replay lag on a standby, seconds; 0 on a primary or when caught up.
    pub replication_lag_seconds: f64,
    /// `server_version`.
    pub version: String,
}

/// One group of client backends.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityRow {
    /// The database.
    pub datname: String,
    /// `None` when this role may not see the backend's state.
    pub state: Option<String>,
    /// Whether the backends' `client_addr` is the pod's IP.
    pub in_pod: bool,
    /// Number of backends.
    pub count: f64,
    /// How many of them wait on a lock.
    pub waiting: f64,
    /// The age of the oldest open transaction among them, seconds (0 if none).
    pub max_tx_seconds: f64,
}

/// One database's statistics, in the order of [`DATABASE_COLUMNS`]; `None`
/// where the server returned NULL (e.g. no privilege to read the size).
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseRow {
    /// The database.
    pub datname: String,
    /// The values.
    pub values: Vec<Option<f64>>,
}

/// Everything one run read.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Round trip of `SELECT 1`.
    pub ping: Duration,
    /// Server-wide values.
    pub settings: Settings,
    /// Client backends by database, state and pod.
    pub activity: Vec<ActivityRow>,
    /// Per-database statistics.
    pub databases: Vec<DatabaseRow>,
}

/// Runs one collection's queries.
pub async fn read(
    client: &Client,
    statements: &Statements,
    pod_ip: Option<IpAddr>,
    databases: &[String],
) -> Result<Snapshot, tokio_postgres::Error> {
    let started = Instant::now();
    client.query_one(&statements.ping, &[]).await?;
    let ping = started.elapsed();
    let pod_ip = pod_ip.map(|ip| ip.to_string());
    let activity_params: [&(dyn ToSql + Sync); 1] = [&pod_ip];
    let database_params: [&(dyn ToSql + Sync); 1] = [&databases];
    let (settings, activity, database) = tokio::try_join!(
        client.query_one(&statements.settings, &[]),
        client.query(&statements.activity, &activity_params),
        client.query(&statements.database, &database_params),
    )?;
    Ok(Snapshot {
        ping,
        settings: settings_row(&settings)?,
        activity: activity
            .iter()
            .map(activity_row)
            .collect::<Result<_, _>>()?,
        databases: database
            .iter()
            .map(database_row)
            .collect::<Result<_, _>>()?,
    })
}

fn settings_row(row: &Row) -> Result<Settings, tokio_postgres::Error> {
    Ok(Settings {
        max_connections: row.try_get(0)?,
        superuser_reserved_connections: row.try_get(1)?,
        start_time_seconds: row.try_get(2)?,
        is_replica: row.try_get(3)?,
        replication_lag_seconds: row.try_get(4)?,
        version: row.try_get(5)?,
    })
}

fn activity_row(row: &Row) -> Result<ActivityRow, tokio_postgres::Error> {
    Ok(ActivityRow {
        datname: row.try_get(0)?,
        state: row.try_get(1)?,
        in_pod: row.try_get(2)?,
        count: row.try_get(3)?,
        waiting: row.try_get(4)?,
        max_tx_seconds: row.try_get(5)?,
    })
}

fn database_row(row: &Row) -> Result<DatabaseRow, tokio_postgres::Error> {
    let values = (1..=DATABASE_COLUMNS.len())
        .map(|i| row.try_get::<_, Option<f64>>(i))
        .collect::<Result<_, _>>()?;
    Ok(DatabaseRow {
        datname: row.try_get(0)?,
        values,
    })
}
