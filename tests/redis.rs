//! The Redis collector against real `redis-server`s on random loopback ports:
//! exact client counts (server-wide and this pod's), AUTH with a password and
//! with an ACL user, `CONFIG` renamed away, a crash and a restart, TLS, and
//! passwords that never show in anything sidewatch serves.

mod support;
mod test_certs;

use std::time::Duration;

use support::redis::RedisServer;
use support::{metric, spawn_target, Behaviour, Sidewatch};

const WAIT: Duration = Duration::from_secs(15);

fn server_toml(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[[redis.servers]]\nname = \"{name}\"\nurl = \"{url}\"\ninterval = \"200ms\"\ntimeout = \"1s\"\n{extra}\n"
    )
}

async fn wait_up(sidewatch: &Sidewatch, server: &str, up: f64) {
    sidewatch
        .wait_for_metric("redis_up", &[("server", server)], WAIT, |v| v == up)
        .await;
}

/// Connections on the server named `sidewatch`.
fn sidewatch_connections(server: &RedisServer) -> usize {
    server
        .cli(&["CLIENT", "LIST"])
        .lines()
        .filter(|line| line.split(' ').any(|field| field == "name=sidewatch"))
        .count()
}

/// Asserts that no secret appears in `/metrics` or `/status`.
async fn assert_never_served(sidewatch: &Sidewatch, secrets: &[&str]) {
    let served = sidewatch.metrics().await + &sidewatch.get("/status").await.text().await.unwrap();
    for secret in secrets {
        assert!(!served.contains(secret), "{secret} served:\n{served}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_clients_exactly_and_survives_a_restart() {
    let mut redis = RedisServer::start(&["--maxclients", "321"]);
    redis.cli(&["SET", "plain", "1"]);
    redis.cli(&["SET", "expiring", "1", "EX", "600"]);
    redis.cli(&["-n", "2", "SET", "other-db", "1"]);
    let clients: Vec<_> = (0..5).map(|_| redis.open_client(None)).collect();
    let toml = format!(
        "[pod]\nip = \"127.0.0.1\"\n{}",
        server_toml("cache", &redis.url(""), "")
    );
    let sidewatch = Sidewatch::start(&toml).await;
    wait_up(&sidewatch, "cache", 1.0).await;

    let text = sidewatch.metrics().await;
    let value = |name: &str, labels: &[(&str, &str)]| {
        metric(&text, name, labels).unwrap_or_else(|| panic!("{name}{labels:?} missing:\n{text}"))
    };
    let server = [("server", "cache")];
    // Five test clients plus sidewatch's own connection, which Redis counts
    // (as redis_exporter's does); the pod's count leaves sidewatch out.
    assert_eq!(
        value(
            "redis_connected_clients",
            &[("server", "cache"), ("scope", "server")]
        ),
        6.0
    );
    assert_eq!(
        value(
            "redis_connected_clients",
            &[("server", "cache"), ("scope", "pod")]
        ),
        5.0
    );
    assert_eq!(value("redis_config_maxclients", &server), 321.0);
    assert_eq!(
        value("redis_db_keys", &[("server", "cache"), ("db", "db0")]),
        2.0
    );
    assert_eq!(
        value(
            "redis_db_keys_expiring",
            &[("server", "cache"), ("db", "db0")]
        ),
        1.0
    );
    assert_eq!(
        value("redis_db_keys", &[("server", "cache"), ("db", "db2")]),
        1.0
    );
    assert_eq!(value("redis_blocked_clients", &server), 0.0);
    assert_eq!(value("redis_memory_max_bytes", &server), 0.0);
    assert!(value("redis_memory_used_bytes", &server) > 0.0);
    assert!(value("redis_commands_processed_total", &server) >= 3.0);
    assert!(value("redis_connections_received_total", &server) >= 6.0);
    for name in [
        "redis_rejected_connections_total",
        "redis_keyspace_hits_total",
        "redis_keyspace_misses_total",
        "redis_evicted_keys_total",
        "redis_expired_keys_total",
        "redis_uptime_in_seconds",
    ] {
        value(name, &server);
    }
    let ping = value("sidewatch_redis_ping_seconds", &server);
    assert!(ping > 0.0 && ping < 1.0, "{ping}");
    let status = sidewatch.status().await;
    let details = &status["collectors"]["redis/cache"]["details"];
    assert_eq!(details["maxclients_source"], "config_get", "{status}");
    assert_eq!(details["connection_named"], true, "{status}");

    // More runs, still one connection.
    let runs = |s: &serde_json::Value| s["collectors"]["redis/cache"]["runs"].as_u64().unwrap();
    let before = runs(&status);
    while runs(&sidewatch.status().await) < before + 3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sidewatch_connections(&redis), 1);
    drop(clients);

    redis.kill();
    wait_up(&sidewatch, "cache", 0.0).await;
    sidewatch
        .wait_for_error("redis/cache", "connect", WAIT)
        .await;
    let text = sidewatch.metrics().await;
    assert!(
        metric(
            &text,
            "redis_connected_clients",
            &[("server", "cache"), ("scope", "server")]
        )
        .is_none(),
        "{text}"
    );

    redis.restart();
    wait_up(&sidewatch, "cache", 1.0).await;
    sidewatch
        .wait_for_metric(
            "redis_connected_clients",
            &[("server", "cache"), ("scope", "pod")],
            WAIT,
            |v| v == 0.0,
        )
        .await;
    assert_eq!(sidewatch_connections(&redis), 1);
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_auth_and_wrong_or_missing_passwords() {
    let password = "s3cret-Redis-pw";
    let wrong = "wr0ng-Redis-pw";
    let redis = RedisServer::start(&["--requirepass", password]).with_cli_auth(&["-a", password]);
    let _client = redis.open_client(Some(password));
    let toml = server_toml("good", &redis.url(&format!(":{password}@")), "")
        + &server_toml("wrong", &redis.url(&format!(":{wrong}@")), "")
        + &server_toml("missing", &redis.url(""), "");
    let sidewatch = Sidewatch::start(&toml).await;
    wait_up(&sidewatch, "good", 1.0).await;
    sidewatch.wait_for_error("redis/wrong", "auth", WAIT).await;
    sidewatch
        .wait_for_error("redis/missing", "auth", WAIT)
        .await;
    wait_up(&sidewatch, "wrong", 0.0).await;
    // The test's client and sidewatch's "good" connection; the failing ones
    // close theirs (one may be caught in the instant it is open).
    sidewatch
        .wait_for_metric(
            "redis_connected_clients",
            &[("server", "good"), ("scope", "server")],
            WAIT,
            |v| v == 2.0,
        )
        .await;
    assert_eq!(sidewatch_connections(&redis), 1);
    let status = sidewatch.status().await;
    let wrong_status = &status["collectors"]["redis/wrong"];
    assert_eq!(wrong_status["last_error_reason"], "auth", "{status}");
    assert!(
        wrong_status["details"]["server"]
            .as_str()
            .unwrap()
            .contains(":***@"),
        "{status}"
    );
    assert_never_served(&sidewatch, &[password, wrong]).await;
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_user_with_only_the_commands_sidewatch_needs() {
    let redis = RedisServer::start(&[]);
    let acl_password = "watcher-Acl-pw";
    redis.cli(&[
        "ACL",
        "SETUSER",
        "watcher",
        "on",
        &format!(">{acl_password}"),
        "+ping",
        "+info",
        "+config|get",
        "+client|setname",
        "+client|list",
    ]);
    let toml = format!(
        "[pod]\nip = \"127.0.0.1\"\n{}{}",
        server_toml("acl", &redis.url(&format!("watcher:{acl_password}@")), ""),
        server_toml("acl-wrong", &redis.url("watcher:nope-Acl-pw@"), "")
    );
    let sidewatch = Sidewatch::start(&toml).await;
    wait_up(&sidewatch, "acl", 1.0).await;
    sidewatch
        .wait_for_error("redis/acl-wrong", "auth", WAIT)
        .await;
    let text = sidewatch.metrics().await;
    assert_eq!(
        metric(&text, "redis_config_maxclients", &[("server", "acl")]),
        Some(10000.0),
        "{text}"
    );
    sidewatch
        .wait_for_metric(
            "redis_connected_clients",
            &[("server", "acl"), ("scope", "pod")],
            WAIT,
            |v| v == 0.0,
        )
        .await;
    let list = redis.cli(&["CLIENT", "LIST"]);
    assert!(
        list.contains("name=sidewatch") && list.contains("user=watcher"),
        "{list}"
    );
    assert_never_served(&sidewatch, &[acl_password, "nope-Acl-pw"]).await;
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renamed_config_command_falls_back_to_info() {
    let redis = RedisServer::start(&["--rename-command", "CONFIG", "", "--maxclients", "123"]);
    let sidewatch =
        Sidewatch::start(&server_toml("managed", &redis.url(""), "maxclients = 77")).await;
    wait_up(&sidewatch, "managed", 1.0).await;
    let text = sidewatch.metrics().await;
    // Redis 7 reports maxclients in INFO, which wins over the configured fallback.
    assert_eq!(
        metric(&text, "redis_config_maxclients", &[("server", "managed")]),
        Some(123.0),
        "{text}"
    );
    let status = sidewatch.status().await;
    let entry = &status["collectors"]["redis/managed"];
    assert_eq!(entry["details"]["maxclients_source"], "info", "{status}");
    assert!(
        entry["details"]["config_get_error"]
            .as_str()
            .unwrap()
            .contains("unknown command"),
        "{status}"
    );
    assert!(entry["degraded"].is_null(), "{status}");
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_servers_get_their_reason() {
    let plain = RedisServer::start(&[]);
    let hanging = spawn_target(Behaviour::Hang).await;
    let not_redis = spawn_target(Behaviour::Immediate(b"HTTP/1.1 400 Bad Request\r\n\r\n")).await;
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let toml = server_toml("hanging", &format!("redis://{hanging}"), "")
        + &server_toml("not-redis", &format!("redis://{not_redis}"), "")
        + &server_toml("refused", &format!("redis://{refused}"), "")
        + &server_toml(
            "tls-to-plain",
            &format!("rediss://127.0.0.1:{}", plain.port),
            "insecure_skip_verify = true",
        );
    let sidewatch = Sidewatch::start(&toml).await;
    for (server, reason) in [
        ("hanging", "timeout"),
        ("not-redis", "protocol"),
        ("refused", "connect"),
        ("tls-to-plain", "tls"),
    ] {
        sidewatch
            .wait_for_error(&format!("redis/{server}"), reason, WAIT)
            .await;
        wait_up(&sidewatch, server, 0.0).await;
    }
    sidewatch.stop().await;
}

/// A TLS-only `redis-server` with a certificate from a test CA made by `openssl`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_ca_file() {
    support::require_program("openssl", "apt-get install -y openssl");
    let dir = tempfile::tempdir().unwrap();
    test_certs::certificates(dir.path());
    let path = |name: &str| dir.path().join(name).display().to_string();
    let redis = RedisServer::start_tls(&path("server.crt"), &path("server.key"), &path("ca.crt"));
    let url = format!("rediss://localhost:{}", redis.port);
    let toml = server_toml("tls", &url, &format!("ca_file = \"{}\"", path("ca.crt")))
        + &server_toml("tls-untrusted", &url, "");
    let sidewatch = Sidewatch::start(&toml).await;
    wait_up(&sidewatch, "tls", 1.0).await;
    sidewatch
        .wait_for_error("redis/tls-untrusted", "tls", WAIT)
        .await;
    sidewatch.stop().await;
}

/// Everything the binary prints (debug logs included), `check-config`'s
/// output and everything it serves is free of the passwords.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_never_prints_or_serves_a_password() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};

    const BIN: &str = env!("CARGO_BIN_EXE_sidewatch");
    let password = "s3cret-Binary-pw";
    let wrong = "wr0ng-Binary-pw";
    let redis = RedisServer::start(&["--requirepass", password]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sidewatch.toml");
    let toml = "[admin]\nlisten = \"127.0.0.1:0\"\n[self_log]\nlevel = \"debug\"\n".to_owned()
        + &server_toml("good", &redis.url(&format!("default:{password}@")), "")
        + &server_toml("wrong", &redis.url(&format!(":{wrong}@")), "");
    std::fs::write(&config, toml).unwrap();

    let checked = Command::new(BIN)
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let mut printed = String::from_utf8_lossy(&checked.stdout).into_owned()
        + &String::from_utf8_lossy(&checked.stderr);
    assert!(printed.contains("default:***@127.0.0.1"), "{printed}");

    let mut child = Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let reader = {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        })
    };
    let deadline = std::time::Instant::now() + WAIT;
    let addr = loop {
        let text = log.lock().unwrap().clone();
        if let Some(rest) = text.find("http://").map(|i| &text[i + 7..]) {
            if let Some(end) = rest.find("/metrics") {
                break rest[..end].to_owned();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no admin address in:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let get = |path: &str| {
        let url = format!("http://{addr}{path}");
        async move {
            support::client()
                .get(url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    loop {
        let text = get("/metrics").await;
        let good = metric(&text, "redis_up", &[("server", "good")]) == Some(1.0);
        let failed = metric(
            &text,
            "sidewatch_collector_errors_total",
            &[("collector", "redis/wrong"), ("reason", "auth")],
        )
        .is_some_and(|v| v >= 2.0);
        if good && failed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never collected:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    printed += &get("/metrics").await;
    printed += &get("/status").await;
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    printed += &log.lock().unwrap();
    assert!(printed.contains("authentication failed"), "{printed}");
    for secret in [password, wrong] {
        assert!(
            !printed.contains(secret),
            "{secret} printed or served:\n{printed}"
        );
    }
}
