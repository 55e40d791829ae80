//! The PostgreSQL collector against real PostgreSQL 15 servers (one per
//! test, started by the test as the `postgres` user): exact connection
//! counts by database, state and scope; missing privileges; one connection
//! per server; every failure reason; outage and recovery; and no password in
//! anything sidewatch served or logged.

mod support;

use std::time::{Duration, Instant};

use support::observe::{
    as_refs, assert_no_secret, captured_logs, series, wait_for_all, wait_for_status, Series, WAIT,
};
use support::postgres::PgServer;
use support::{metric, spawn_target, Behaviour, Sidewatch};
const WATCHER_PW: &str = "wAtch3r-S3cret-pw";
const LIMITED_PW: &str = "l1mited-S3cret-pw";
const WRONG_PW: &str = "wr0ng-S3cret-pw";
const APP_PW: &str = "app-pw";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_backends_by_database_state_and_scope() {
    let logs = captured_logs();
    let pg = PgServer::start(&["max_connections=40", "deadlock_timeout=100ms"]);
    pg.psql(&format!(
        "CREATE ROLE watcher LOGIN PASSWORD '{WATCHER_PW}' IN ROLE pg_monitor; \
         CREATE ROLE limited LOGIN PASSWORD '{LIMITED_PW}'; \
         CREATE ROLE app LOGIN PASSWORD '{APP_PW}'"
    ));
    pg.psql("CREATE DATABASE appdb OWNER app");
    let admin = pg.local("postgres", "postgres").await;
    let setup = pg.tcp("app", APP_PW, "appdb").await;
    setup
        .batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1); CREATE TABLE d (id int PRIMARY KEY); INSERT INTO d VALUES (1), (2)")
        .await
        .expect("tables");
    drop(setup);
    make_one_deadlock(&pg).await;

    let sidewatch = Sidewatch::start(&format!(
        r#"
        [process]
        enabled = false
        [pod]
        ip = "127.0.0.1"
        [[postgres.servers]]
        name = "main"
        dsn = "postgres://watcher:{WATCHER_PW}@127.0.0.1:{port}/postgres?sslmode=disable"
        databases = ["appdb", "postgres", "nosuchdb"]
        interval = "300ms"
        timeout = "2s"
        [[postgres.servers]]
        name = "limited"
        dsn = "host=127.0.0.1 port={port} user=limited password='{LIMITED_PW}' dbname=postgres"
        interval = "300ms"
        "#,
        port = pg.port
    ))
    .await;

    // The app's connections: 3 idle (one over the Unix socket, so not from the
    // pod's IP), 2 idle in a transaction, 1 in an aborted transaction, 1 holding
    // a lock in a transaction, and 1 blocked on that lock.
    let mut clients = Vec::new();
    for _ in 0..2 {
        clients.push(pg.tcp("app", APP_PW, "appdb").await);
    }
    clients.push(pg.local("app", "appdb").await);
    for _ in 0..2 {
        let client = pg.tcp("app", APP_PW, "appdb").await;
        client
            .batch_execute("BEGIN; SELECT 1")
            .await
            .expect("begin");
        clients.push(client);
    }
    let aborted = pg.tcp("app", APP_PW, "appdb").await;
    aborted.batch_execute("BEGIN").await.expect("begin");
    assert!(aborted.batch_execute("SELECT 1/0").await.is_err());
    clients.push(aborted);
    let locker = pg.tcp("app", APP_PW, "appdb").await;
    locker
        .batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    clients.push(locker);
    let waiter = pg.tcp("app", APP_PW, "appdb").await;
    let blocked = tokio::spawn(async move {
        let result = waiter.batch_execute("BEGIN; UPDATE t SET id = 2").await;
        (waiter, result)
    });

    let count = |server, datname, state, scope| {
        series(
            "pg_stat_activity_count",
            &[
                ("server", server),
                ("datname", datname),
                ("state", state),
                ("scope", scope),
            ],
        )
    };
    let waiting = |datname, scope| {
        series(
            "pg_stat_activity_waiting_count",
            &[("server", "main"), ("datname", datname), ("scope", scope)],
        )
    };
    let expected = vec![
        (count("main", "appdb", "idle", "server"), 3.0),
        (count("main", "appdb", "idle", "pod"), 2.0),
        (count("main", "appdb", "idle in transaction", "server"), 3.0),
        (count("main", "appdb", "idle in transaction", "pod"), 3.0),
        (
            count("main", "appdb", "idle in transaction (aborted)", "server"),
            1.0,
        ),
        (
            count("main", "appdb", "idle in transaction (aborted)", "pod"),
            1.0,
        ),
        (count("main", "appdb", "active", "server"), 1.0),
        (count("main", "appdb", "active", "pod"), 1.0),
        (count("main", "appdb", "disabled", "server"), 0.0),
        (waiting("appdb", "server"), 1.0),
        (waiting("appdb", "pod"), 1.0),
        (waiting("postgres", "server"), 0.0),
        // The test's own superuser session (Unix socket) and the "limited"
        // collector's connection (TCP); "main" does not count itself.
        (count("main", "postgres", "idle", "server"), 2.0),
        (count("main", "postgres", "idle", "pod"), 1.0),
        // Without pg_monitor, other roles' backends have no visible state.
        (count("limited", "appdb", "unknown", "server"), 8.0),
        (count("limited", "postgres", "unknown", "server"), 2.0),
        (count("limited", "appdb", "idle", "pod"), 0.0),
        (db("pg_stat_database_numbackends", "appdb"), 8.0),
        (db("pg_stat_database_deadlocks", "appdb"), 1.0),
        (
            series("pg_settings_max_connections", &[("server", "main")]),
            40.0,
        ),
        (
            series(
                "pg_settings_superuser_reserved_connections",
                &[("server", "main")],
            ),
            3.0,
        ),
        (
            series("pg_replication_is_replica", &[("server", "main")]),
            0.0,
        ),
        (series("pg_up", &[("server", "main")]), 1.0),
        (series("pg_up", &[("server", "limited")]), 1.0),
    ];
    let text = wait_for_all(&sidewatch, &expected).await;

    let value = |name: &str, labels: &[(&str, &str)]| {
        metric(&text, name, labels).unwrap_or_else(|| panic!("{name}{labels:?} missing:\n{text}"))
    };
    let tx_age = |state| {
        value(
            "pg_stat_activity_max_tx_duration",
            &[
                ("server", "main"),
                ("datname", "appdb"),
                ("state", state),
                ("scope", "server"),
            ],
        )
    };
    assert!(tx_age("idle in transaction") > 0.0);
    assert_eq!(tx_age("idle"), 0.0);
    assert!(
        value(
            "pg_database_size_bytes",
            &[("server", "main"), ("datname", "appdb")]
        ) > 1e6
    );
    assert!(
        value(
            "pg_stat_database_xact_commit",
            &[("server", "main"), ("datname", "appdb")]
        ) > 0.0
    );
    assert!(value("sidewatch_postgres_ping_seconds", &[("server", "main")]) > 0.0);
    let started = value("pg_postmaster_start_time_seconds", &[("server", "main")]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(now - started > 0.0 && now - started < 600.0, "{started}");
    // Only the configured databases: no template, no other.
    assert_eq!(
        metric(
            &text,
            "pg_stat_database_numbackends",
            &[("server", "main"), ("datname", "template1")]
        ),
        None
    );
    // postgres_exporter's names exactly (gauges, no _total).
    assert!(
        text.contains("# TYPE pg_stat_database_xact_commit gauge"),
        "{text}"
    );

    // The limited role's run is degraded, not failed.
    let status = wait_for_status(&sidewatch, "postgres/limited", |entry| {
        entry["runs"].as_u64() >= Some(5) && !entry["degraded"].is_null()
    })
    .await;
    let degraded = status["degraded"].as_str().unwrap_or_default();
    assert!(
        degraded.contains("insufficient privilege to see 10 backends")
            && degraded.contains("pg_monitor"),
        "{status}"
    );
    assert_eq!(status["up"], true);

    // Exactly one connection per configured server, however many runs.
    let main = wait_for_status(&sidewatch, "postgres/main", |e| {
        e["runs"].as_u64() >= Some(5)
    })
    .await;
    assert_eq!(main["degraded"], "databases not found: nosuchdb", "{main}");
    assert_eq!(main["up"], true);
    let rows = admin
        .query(
            "SELECT usename::text, count(*) FROM pg_stat_activity WHERE application_name = 'sidewatch' GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .expect("count sidewatch connections");
    let per_role: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        per_role,
        [("limited".to_owned(), 1), ("watcher".to_owned(), 1)]
    );

    assert_no_secret(&sidewatch, &logs, &[WATCHER_PW, LIMITED_PW]).await;
    blocked.abort();
    drop(clients);
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_has_its_reason_and_recovery_is_prompt() {
    let logs = captured_logs();
    let pg = PgServer::start(&[]);
    pg.psql(&format!(
        "CREATE ROLE watcher LOGIN PASSWORD '{WATCHER_PW}' IN ROLE pg_monitor"
    ));
    let hang = spawn_target(Behaviour::Hang).await;
    let server = |name: &str, dsn: String, timeout: &str| {
        format!("[[postgres.servers]]\nname = \"{name}\"\ndsn = \"{dsn}\"\ninterval = \"300ms\"\ntimeout = \"{timeout}\"\n")
    };
    let port = pg.port;
    let mut toml = "[process]\nenabled = false\n".to_owned();
    toml += &server(
        "db",
        format!("postgres://watcher:{WATCHER_PW}@127.0.0.1:{port}/postgres"),
        "1s",
    );
    toml += &server(
        "wrongpw",
        format!("postgres://watcher:{WRONG_PW}@127.0.0.1:{port}/postgres"),
        "1s",
    );
    toml += &server(
        "notls",
        format!("postgres://watcher:{WATCHER_PW}@127.0.0.1:{port}/postgres?sslmode=require"),
        "1s",
    );
    toml += &server(
        "hang",
        format!("postgres://watcher:{WATCHER_PW}@{hang}/postgres"),
        "300ms",
    );
    let sidewatch = Sidewatch::start(&toml).await;

    let errors = |name: &str, reason: &str| {
        series(
            "sidewatch_collector_errors_total",
            &[("collector", name), ("reason", reason)],
        )
    };
    let up = |name: &str| series("pg_up", &[("server", name)]);
    wait_for_all(
        &sidewatch,
        &[
            (up("db"), 1.0),
            (up("wrongpw"), 0.0),
            (up("notls"), 0.0),
            (up("hang"), 0.0),
        ],
    )
    .await;
    for (collector, reason) in [
        ("postgres/wrongpw", "auth"),
        ("postgres/notls", "tls"),
        ("postgres/hang", "timeout"),
    ] {
        let (name, labels) = errors(collector, reason);
        sidewatch
            .wait_for_metric(&name, &as_refs(&labels), WAIT, |v| v >= 1.0)
            .await;
    }

    tokio::task::block_in_place(|| pg.stop());
    let (name, labels) = errors("postgres/db", "connect");
    sidewatch
        .wait_for_metric(&name, &as_refs(&labels), WAIT, |v| v >= 1.0)
        .await;
    let text = wait_for_all(&sidewatch, &[(up("db"), 0.0)]).await;
    assert_eq!(
        metric(&text, "pg_settings_max_connections", &[("server", "db")]),
        None,
        "stale series remain:\n{text}"
    );
    let status = wait_for_status(&sidewatch, "postgres/db", |e| e["up"] == false).await;
    assert_eq!(status["last_error_reason"], "connect", "{status}");

    tokio::task::block_in_place(|| pg.start_again());
    let restarted = Instant::now();
    wait_for_all(&sidewatch, &[(up("db"), 1.0)]).await;
    // Interval 300 ms: back well within a few intervals, not after a long backoff.
    assert!(
        restarted.elapsed() < Duration::from_secs(3),
        "{:?}",
        restarted.elapsed()
    );

    let log_text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        log_text.contains("28P01"),
        "the auth failure was not logged:\n{log_text}"
    );
    assert_no_secret(&sidewatch, &logs, &[WATCHER_PW, WRONG_PW]).await;
    sidewatch.stop().await;
}

fn db(name: &str, datname: &str) -> Series {
    series(name, &[("server", "main"), ("datname", datname)])
}

/// Two transactions that each hold a row the other wants: PostgreSQL cancels one.
async fn make_one_deadlock(pg: &PgServer) {
    let first = pg.tcp("app", APP_PW, "appdb").await;
    let second = pg.tcp("app", APP_PW, "appdb").await;
    first
        .batch_execute("BEGIN; UPDATE d SET id = id WHERE id = 1")
        .await
        .expect("row 1");
    second
        .batch_execute("BEGIN; UPDATE d SET id = id WHERE id = 2")
        .await
        .expect("row 2");
    let waiting = tokio::spawn(async move {
        let result = first
            .batch_execute("UPDATE d SET id = id WHERE id = 2")
            .await;
        (first, result)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second_result = second
        .batch_execute("UPDATE d SET id = id WHERE id = 1")
        .await;
    let (first, first_result) = waiting.await.expect("first");
    assert!(
        first_result.is_err() != second_result.is_err(),
        "exactly one is the deadlock victim"
    );
    for client in [first, second] {
        client.batch_execute("ROLLBACK").await.expect("rollback");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_modes_check_certificates_as_libpq_does() {
    let pg = PgServer::start_tls();
    pg.psql(&format!(
        "CREATE ROLE watcher LOGIN PASSWORD '{WATCHER_PW}' IN ROLE pg_monitor"
    ));
    let (port, ca) = (pg.port, pg.ca_file());
    let ca = ca.display();
    let url =
        |query: &str| format!("postgres://watcher:{WATCHER_PW}@127.0.0.1:{port}/postgres?{query}");
    let servers = [
        // libpq: require without a root certificate encrypts, checks nothing.
        ("require", url("sslmode=require"), ""),
        // The certificate names db.example only: verify-ca ignores the name...
        ("verify-ca", url(&format!("sslmode=verify-ca&sslrootcert={ca}")), ""),
        // ...verify-full does not, unless the host name is db.example.
        ("verify-full-ip", url(&format!("sslmode=verify-full&sslrootcert={ca}")), ""),
        (
            "verify-full-name",
            format!("host=db.example hostaddr=127.0.0.1 port={port} user=watcher password={WATCHER_PW} dbname=postgres sslmode=verify-full sslrootcert='{ca}'"),
            "",
        ),
        // The web PKI roots do not know the test CA.
        ("unknown-ca", url("sslmode=verify-full"), ""),
        // ca_file is a root certificate, as sslrootcert is.
        ("ca-file", url("sslmode=require"), &*format!("ca_file = \"{ca}\"")),
    ];
    let mut toml = "[process]\nenabled = false\n".to_owned();
    for (name, dsn, extra) in &servers {
        toml += &format!("[[postgres.servers]]\nname = \"{name}\"\ndsn = \"{dsn}\"\ninterval = \"300ms\"\ntimeout = \"2s\"\n{extra}\n");
    }
    let sidewatch = Sidewatch::start(&toml).await;
    let up = |name: &str| series("pg_up", &[("server", name)]);
    wait_for_all(
        &sidewatch,
        &[
            (up("require"), 1.0),
            (up("verify-ca"), 1.0),
            (up("verify-full-ip"), 0.0),
            (up("verify-full-name"), 1.0),
            (up("unknown-ca"), 0.0),
            (up("ca-file"), 1.0),
        ],
    )
    .await;
    for name in ["verify-full-ip", "unknown-ca"] {
        let status = wait_for_status(&sidewatch, &format!("postgres/{name}"), |e| {
            !e["last_error_reason"].is_null()
        })
        .await;
        assert_eq!(status["last_error_reason"], "tls", "{status}");
    }
    let admin = pg.local("postgres", "postgres").await;
    let row = admin
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'sidewatch'",
            &[],
        )
        .await
        .expect("ssl status");
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (4, 4));
    sidewatch.stop().await;
}
