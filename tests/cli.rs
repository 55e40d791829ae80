//! The `sidewatch` binary as a user runs it: `--version`, `check-config`
//! (exit 0 or 2, every bad key named), `run` refusing a port in use, SIGTERM
//! draining to exit 0, a second signal aborting, and `demo` serving data.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sidewatch");

/// A running sidewatch that is killed if the test fails before it exits, so
/// a failed test never leaves a process holding a port (the demo app's
/// 127.0.0.1:4799) for the tests after it.
struct Running(Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn sidewatch(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("SIDEWATCH_CONFIG")
        .output()
        .expect("sidewatch runs")
}

fn write_config(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A plain HTTP/1.0 GET over std, returning the body.
fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("sidewatch did not exit within {timeout:?}");
}

/// Reads stderr until the admin URL is logged; returns `host:port`.
fn admin_addr(child: &mut Child) -> String {
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some(start) = line.find("http://") {
                let rest = &line[start + 7..];
                if let Some(end) = rest.find("/metrics") {
                    let _ = tx.send(rest[..end].to_owned());
                }
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("sidewatch logs its admin address")
}

#[test]
fn version_names_the_revision() {
    let out = sidewatch(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("sidewatch {}", env!("CARGO_PKG_VERSION")))
            && text.contains("revision"),
        "{text}"
    );
}

#[test]
fn example_config_checks_out_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let token = write_config(&dir, "token", "s3cret-token-value\n");
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sidewatch.example.toml"
    ))
    .unwrap();
    let with_secret = example.replace(
        "# bearer_token = { file = \"/var/run/secrets/app/token\" }",
        &format!("bearer_token = {{ file = \"{}\" }}", token.display()),
    );
    assert_ne!(example, with_secret, "the example shows bearer_token");
    let path = write_config(&dir, "sidewatch.toml", &with_secret);
    let out = sidewatch(&["check-config", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("bearer_token = \"***\""), "{stdout}");
    assert!(!stdout.contains("s3cret-token-value"), "{stdout}");
    assert!(stdout.contains("listen = \"0.0.0.0:4790\""), "{stdout}");
}

#[test]
fn check_config_names_every_bad_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("unknown key", "[admin]\nlisen = \"0.0.0.0:1\"\n", "admin.lisen"),
        ("wrong type", "[shutdown]\ngrace_period = 5\n", "shutdown.grace_period"),
        ("bad address", "[admin]\nlisten = \"localhost\"\n", "admin.listen"),
        ("bad url", "[[health.targets]]\nname = \"a\"\nurl = \"::\"\n", "health.targets[0].url"),
        ("bad regex", "[[health.targets]]\nname = \"a\"\ntcp = \"h:1\"\nbody_regex = \"(\"\n", "health.targets[0].body_regex"),
        (
            "missing secret file",
            "[[health.targets]]\nname = \"a\"\ntcp = \"h:1\"\nbearer_token = { file = \"/nonexistent/t\" }\n",
            "health.targets[0].bearer_token",
        ),
        ("yaml type error", "process:\n  enabled: maybe\n", "process.enabled"),
    ];
    for (what, text, key) in cases {
        let ext = if what.starts_with("yaml") {
            "yaml"
        } else {
            "toml"
        };
        let path = write_config(&dir, &format!("c.{ext}"), text);
        let out = sidewatch(&["check-config", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(
            stderr.contains(&format!("`{key}`")),
            "{what}: expected `{key}` in: {stderr}"
        );
    }
    // Several problems are reported together.
    let path = write_config(
        &dir,
        "many.toml",
        "[[health.targets]]\nname = \"a\"\nurl = \"ftp://x/\"\ntimeout = \"0s\"\n[self_log]\nlevel = \"==\"\n",
    );
    let out = sidewatch(&["check-config", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("3 errors"), "{stderr}");
}

#[test]
fn run_refuses_a_port_in_use_with_exit_2() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .arg("run")
        .env("SIDEWATCH__ADMIN__LISTEN", &addr)
        .env_remove("SIDEWATCH_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("admin.listen") && stderr.contains(&addr),
        "{stderr}"
    );
}

#[test]
fn sigterm_drains_until_the_app_is_gone_and_a_second_signal_aborts() {
    // The "app" keeps its port open, so the drain waits for it.
    let app = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let spawn = || {
        Command::new(BIN)
            .arg("run")
            .env("SIDEWATCH__ADMIN__LISTEN", "127.0.0.1:0")
            .env(
                "SIDEWATCH__SHUTDOWN__APP_ADDR",
                app.local_addr().unwrap().to_string(),
            )
            .env("SIDEWATCH__SHUTDOWN__GRACE_PERIOD", "30s")
            .env_remove("SIDEWATCH_CONFIG")
            .stderr(Stdio::piped())
            .spawn()
            .map(Running)
            .unwrap()
    };

    let mut child = spawn();
    let _ = admin_addr(&mut child);
    signal(&child, "TERM");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited while the app was still there"
    );
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(5)), Some(130));

    let mut child = spawn();
    let _ = admin_addr(&mut child);
    signal(&child, "TERM");
    std::thread::sleep(Duration::from_millis(300));
    drop(app);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), Some(0));
}

#[test]
fn demo_serves_moving_data() {
    let mut child = Running(
        Command::new(BIN)
            .arg("demo")
            .env("SIDEWATCH__ADMIN__LISTEN", "127.0.0.1:0")
            .env("SIDEWATCH__STATSD__LISTEN", "127.0.0.1:0")
            .env("SIDEWATCH__PROXY__LISTEN", "127.0.0.1:0")
            .env_remove("SIDEWATCH_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let addr = admin_addr(&mut child);
    let fetch = || {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(text) = http_get(&addr, "/metrics") {
                let count = support::metric(
                    &text,
                    "sidewatch_probe_duration_seconds_count",
                    &[("target", "demo-app")],
                );
                if count.is_some_and(|c| c >= 2.0) {
                    return text;
                }
            }
            assert!(Instant::now() < deadline, "demo never produced probe data");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let text = fetch();
    assert!(
        support::metric(
            &text,
            "sidewatch_health_check_up",
            &[("target", "demo-app"), ("check", "db")]
        )
        .is_some(),
        "{text}"
    );
    assert_eq!(
        support::metric(&text, "sidewatch_target_up", &[("target", "demo-tcp")]),
        Some(1.0),
        "{text}"
    );
    let pool = |state: &str| {
        support::metric(
            &text,
            "db_client_connection_count",
            &[
                ("source", "demo-app"),
                ("pool_name", "primary"),
                ("state", state),
            ],
        )
    };
    let (idle, used) = (pool("idle"), pool("used"));
    assert!(idle.is_some() && used.is_some(), "{text}");
    assert_eq!(
        support::metric(
            &text,
            "db_client_connection_max",
            &[("source", "demo-app"), ("pool_name", "primary")]
        ),
        Some(10.0),
        "{text}"
    );
    // The traffic goes through the proxy (RED metrics per route) and the
    // demo's log lines become metrics (examples/log-metrics.toml); the first
    // proxied requests may still be in flight when the probes have run twice.
    let deadline = Instant::now() + Duration::from_secs(15);
    let derived = loop {
        let text = http_get(&addr, "/metrics").unwrap_or_default();
        if text.contains("http_requests_total{") && text.contains("chat_messages_total{") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no proxy request metrics or no log-derived metrics:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        derived.contains("route=\"/api/orders/{id}\"") || derived.contains("route=\"/api/chat\""),
        "{derived}"
    );
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), Some(0));
}

#[test]
fn sigterm_is_answered_when_stderr_is_closed() {
    // As behind `sidewatch run 2>&1 | head -1`: once the reader is gone,
    // every log write fails; sidewatch must still stop on SIGTERM.
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&dir, "sw.toml", "[admin]\nlisten = \"127.0.0.1:0\"\n");
    let mut child = Running(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(&config)
            .env_remove("SIDEWATCH_CONFIG")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.stderr.take().unwrap();
    let addr = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            let rest = &line[line.find("http://")? + 7..];
            Some(rest[..rest.find("/metrics")?].to_owned())
        })
        .expect("sidewatch logs its admin address");
    // The reader (and with it the pipe's read end) is dropped here.
    assert_eq!(http_get(&addr, "/healthz").as_deref(), Some("ok\n"));
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), Some(0));
}
