//! No configured secret ever leaves the process: a sidewatch configured with
//! a PostgreSQL password (in a URL DSN and in a key=value DSN), a Redis
//! password, a health probe's bearer token and URL password, Loki basic auth,
//! an HTTP sink's bearer token and the admin bearer token runs against
//! dependencies that are down (so every error path is taken), and its
//! `/status`, `/metrics`, its own log (debug level) and `check-config`'s
//! output for valid and broken configs are searched for every one of them.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sidewatch");

/// Every secret of the config; none may appear in any output.
const SECRETS: [&str; 8] = [
    "PgUrlPass-9a1",
    "PgKvPass-5c2",
    "RedisPass-7d3",
    "HealthToken-2e4",
    "HealthUrlPass-8f5",
    "LokiPass-1b6",
    "SinkToken-4a7",
    "AdminToken-6c8",
];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

fn assert_clean(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{secret} leaked into {what}:\n{text}"
        );
    }
}

fn config(dir: &Path, admin: u16, intake: u16, down: u16) -> String {
    format!(
        r#"
[admin]
listen = "127.0.0.1:{admin}"
[admin.auth]
token_file = "{dir}/admin-token"
[self_log]
level = "debug"
[[postgres.servers]]
name = "url"
dsn = "postgres://monitor:PgUrlPass-9a1@127.0.0.1:{down}/postgres"
interval = "300ms"
timeout = "1s"
[[postgres.servers]]
name = "kv"
dsn = "host=127.0.0.1 port={down} user=monitor password=PgKvPass-5c2 dbname=postgres"
interval = "300ms"
timeout = "1s"
[[redis.servers]]
name = "cache"
url = "redis://sidewatch:RedisPass-7d3@127.0.0.1:{down}/0"
interval = "300ms"
timeout = "1s"
[[health.targets]]
name = "app"
url = "http://probe:HealthUrlPass-8f5@127.0.0.1:{down}/health"
bearer_token = "HealthToken-2e4"
interval = "300ms"
[logs]
state_dir = "{dir}/state"
[[logs.sources]]
type = "http"
listen = "127.0.0.1:{intake}"
[[logs.sinks]]
name = "loki"
type = "loki"
url = "http://127.0.0.1:{down}"
username = "loki"
password = "LokiPass-1b6"
[logs.sinks.delivery]
retry_initial = "100ms"
retry_max = "200ms"
disk_buffer_max_bytes = 0
[[logs.sinks]]
name = "collector"
type = "http"
url = "http://127.0.0.1:{down}/logs"
bearer_token = "SinkToken-4a7"
[logs.sinks.delivery]
retry_initial = "100ms"
retry_max = "200ms"
disk_buffer_max_bytes = 0
"#,
        dir = dir.display()
    )
}

/// GET over plain TCP with the admin token; the body, when there is one.
fn get(addr: &str, path: &str) -> Option<String> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer AdminToken-6c8\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
}

#[test]
fn status_metrics_and_the_process_log_never_show_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("state")).unwrap();
    std::fs::write(dir.path().join("admin-token"), "AdminToken-6c8\n").unwrap();
    let (admin, intake, down) = (free_port(), free_port(), free_port());
    let path = dir.path().join("sidewatch.toml");
    std::fs::write(&path, config(dir.path(), admin, intake, down)).unwrap();

    let check = Command::new(BIN)
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        stdout.contains("***"),
        "secrets are shown masked:\n{stdout}"
    );
    assert_clean("check-config output", &stdout);

    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let admin = format!("127.0.0.1:{admin}");
    // Events for the sinks to fail on (the request waits for acks; do not).
    let intake = format!("127.0.0.1:{intake}");
    std::thread::spawn(move || {
        use std::io::Write;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut stream) = std::net::TcpStream::connect(&intake) {
                let body = "{\"msg\":\"hello\"}\n";
                let _ = write!(
                    stream,
                    "POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                std::thread::sleep(Duration::from_secs(3));
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    // Wait until every collector failed and both sinks retried.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, metrics) = loop {
        let status = get(&admin, "/status").unwrap_or_default();
        let metrics = get(&admin, "/metrics").unwrap_or_default();
        let failed = ["url", "kv", "cache", "app"]
            .iter()
            .all(|name| status.contains(&format!("/{name}\"")))
            && metrics.contains("sidewatch_sink_retries_total{sink=\"loki\"")
            && metrics.contains("sidewatch_sink_retries_total{sink=\"collector\"");
        if failed && status.matches("\"last_error\": \"").count() >= 4 {
            break (status, metrics);
        }
        assert!(
            Instant::now() < deadline,
            "errors never showed up; /status:\n{status}\n/metrics:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_clean("/status", &status);
    assert_clean("/metrics", &metrics);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let _ = child.wait();
    assert!(
        log.lines().count() > 5,
        "the process log has content:\n{log}"
    );
    assert_clean("the process log", &log);
}

#[test]
fn check_config_errors_never_show_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("state")).unwrap();
    std::fs::write(dir.path().join("admin-token"), "AdminToken-6c8\n").unwrap();
    let good = config(dir.path(), 1, 2, 3);
    let broken = [
        // Unparsable DSNs and URLs that hold the password.
        good.replace("@127.0.0.1:3/postgres", "@[::1/postgres"),
        good.replace("port=3 user", "port=notaport user"),
        good.replace("@127.0.0.1:3/0", "@127.0.0.1:notaport/0"),
        good.replace("@127.0.0.1:3/health", "@/health"),
        // Mistakes next to the secrets.
        good.replace(
            "password = \"LokiPass-1b6\"",
            "password = \"LokiPass-1b6\"\nbearer_token = \"SinkToken-4a7\"",
        ),
        good.replace("interval = \"300ms\"", "interval = 5"),
        good.replace(
            "bearer_token = \"HealthToken-2e4\"",
            "bearer_token = [\"HealthToken-2e4\"]",
        ),
        good.replace(
            "name = \"cache\"",
            "name = \"cache\"\nunknown = \"RedisPass-7d3x\"",
        ),
        // The admin token file is a directory, then the auth is doubled.
        good.replace(
            &format!("{}/admin-token", dir.path().display()),
            &format!("{}/state", dir.path().display()),
        ),
        good.replace(
            "[admin.auth]",
            "[admin.auth]\nusername = \"AdminToken-6c8\"\npassword = \"AdminToken-6c8\"",
        ),
    ];
    for (i, text) in broken.iter().enumerate() {
        let path = dir.path().join(format!("broken-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        for args in [&["check-config"][..], &["run", "--config"][..]] {
            let output = Command::new(BIN).args(args).arg(&path).output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "case {i} {args:?}: {stderr}");
            assert!(
                stderr.contains('`'),
                "case {i}: the error names a key: {stderr}"
            );
            let shown = format!("{stderr}{}", String::from_utf8_lossy(&output.stdout));
            assert_clean(&format!("case {i} {args:?}"), &shown);
        }
    }
}
