//! Helpers for integration tests: sidewatch in-process on a random port,
//! scriptable HTTP/TCP targets on random loopback ports, and a reader for
//! the Prometheus text format.

#![allow(dead_code)] // each test binary uses a different subset

pub mod observe;
pub mod postgres;
pub mod prometheus;
pub mod redis;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running in-process sidewatch.
pub struct Sidewatch {
    /// Where its admin server listens.
    pub addr: SocketAddr,
    /// Where its StatsD socket listens, when `[statsd]` is enabled.
    pub statsd: Option<SocketAddr>,
    /// Where its proxy listens, when `[proxy]` is on.
    pub proxy: Option<SocketAddr>,
    /// Where its admin actions listener listens, when enabled.
    pub actions: Option<SocketAddr>,
    shutdown: sidewatch::Shutdown,
    task: tokio::task::JoinHandle<Result<(), sidewatch::RunError>>,
}

impl Sidewatch {
    /// Starts sidewatch with `toml` (admin bound to a random loopback port).
    pub async fn start(toml: &str) -> Self {
        let mut env = HashMap::new();
        env.insert(
            "SIDEWATCH__ADMIN__LISTEN".to_owned(),
            "127.0.0.1:0".to_owned(),
        );
        let config = sidewatch::config::load_from_str(toml, sidewatch::config::Format::Toml, &env)
            .expect("test config is valid");
        let shutdown = sidewatch::Shutdown::new();
        let running = sidewatch::start(config, shutdown.clone())
            .await
            .expect("sidewatch starts");
        let addr = running.admin_addr();
        Self {
            addr,
            statsd: running.statsd_addr(),
            proxy: running.proxy_addr(),
            actions: running.actions_addr(),
            shutdown,
            task: tokio::spawn(running.wait()),
        }
    }

    /// GET a path on the admin server.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        client()
            .get(format!("http://{}{path}", self.addr))
            .send()
            .await
            .expect("admin server answers")
    }

    /// The current `/metrics` text (Prometheus 0.0.4).
    pub async fn metrics(&self) -> String {
        self.get("/metrics")
            .await
            .text()
            .await
            .expect("metrics body")
    }

    /// Polls `/metrics` until `name{labels}` has a value satisfying `accept`,
    /// returning it; panics with the last scrape after `timeout`.
    pub async fn wait_for_metric(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        timeout: Duration,
        accept: impl Fn(f64) -> bool,
    ) -> f64 {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.metrics().await;
            if let Some(value) = metric(&text, name, labels) {
                if accept(value) {
                    return value;
                }
            }
            if Instant::now() > deadline {
                panic!("{name}{labels:?} never reached the expected value; last scrape:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The current `/metrics` text in OpenMetrics (as Prometheus asks for it).
    pub async fn openmetrics(&self) -> String {
        client()
            .get(format!("http://{}/metrics", self.addr))
            .header("accept", "application/openmetrics-text; version=1.0.0")
            .send()
            .await
            .expect("admin server answers")
            .text()
            .await
            .expect("metrics body")
    }

    /// The current `/status` document.
    pub async fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.get("/status").await.text().await.expect("status body"))
            .expect("/status is JSON")
    }

    /// Waits until `collector` has failed at least once with `reason`.
    pub async fn wait_for_error(&self, collector: &str, reason: &str, timeout: Duration) {
        self.wait_for_metric(
            "sidewatch_collector_errors_total",
            &[("collector", collector), ("reason", reason)],
            timeout,
            |v| v >= 1.0,
        )
        .await;
    }

    /// Requests shutdown and waits for it to finish.
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.expect("run task").expect("clean shutdown");
    }
}

/// An HTTP client that ignores proxy settings.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// Finds the value of the sample `name{labels}` (labels must match exactly,
/// in any order) in Prometheus text.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (sample_name, label_text) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if sample_name != name {
                return None;
            }
            let mut found: Vec<(String, String)> = label_text
                .split("\",")
                .filter(|p| !p.is_empty())
                .filter_map(|p| {
                    let (k, v) = p.split_once("=\"")?;
                    Some((k.to_owned(), v.trim_end_matches('"').to_owned()))
                })
                .collect();
            let mut wanted: Vec<(String, String)> = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            found.sort();
            wanted.sort();
            (found == wanted).then(|| value.parse().ok()).flatten()
        })
}

/// How a scripted target answers each connection.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// An HTTP response with this status, content type and body.
    Respond {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// Accepts and reads the request, never answers.
    Hang,
    /// Accepts, reads the request, closes without answering.
    Close,
    /// Answers with raw bytes that are not HTTP.
    Garbage(Vec<u8>),
    /// Redirects every request to itself.
    RedirectLoop,
    /// Writes these bytes as soon as the connection opens, without reading
    /// (what a plain-HTTP server does to a TLS client hello).
    Immediate(&'static [u8]),
}

impl Behaviour {
    /// A JSON response.
    pub fn json(status: u16, body: &str) -> Self {
        Behaviour::Respond {
            status,
            content_type: "application/json",
            body: body.as_bytes().to_vec(),
        }
    }
}

/// Starts a target on a random loopback port; it runs until the test's runtime ends.
pub async fn spawn_target(behaviour: Behaviour) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind target");
    let addr = listener.local_addr().expect("target addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(answer(stream, behaviour.clone()));
        }
    });
    addr
}

async fn answer(mut stream: TcpStream, behaviour: Behaviour) {
    if let Behaviour::Immediate(bytes) = behaviour {
        let _ = stream.write_all(bytes).await;
        return;
    }
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    match behaviour {
        Behaviour::Respond {
            status,
            content_type,
            body,
        } => {
            let header = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(header.as_bytes()).await;
            let _ = stream.write_all(&body).await;
        }
        Behaviour::Hang => tokio::time::sleep(Duration::from_secs(3600)).await,
        Behaviour::Close => {}
        Behaviour::Immediate(_) => {}
        Behaviour::Garbage(bytes) => {
            let _ = stream.write_all(&bytes).await;
        }
        Behaviour::RedirectLoop => {
            let _ = stream
                .write_all(b"HTTP/1.1 302 Found\r\nlocation: /loop\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        }
    }
    let _ = stream.shutdown().await;
}

/// Pseudo-random bytes (deterministic, no NUL-free guarantee).
pub fn garbage(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect()
}

/// Fails the test with the install command when `program` is not on PATH.
pub fn require_program(program: &str, install: &str) -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("`{program}` is needed by this test and is not installed: run `{install}`")
        })
}

/// Fails the test unless `promtool check metrics` accepts `text` without a
/// single complaint.
pub fn assert_promtool_clean(promtool: &std::path::Path, text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    check
        .stdin
        .take()
        .expect("promtool stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let output = check.wait_with_output().expect("promtool finishes");
    let complaints = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && complaints.trim().is_empty(),
        "promtool: {complaints}\n{text}"
    );
}
