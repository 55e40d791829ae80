//! The real sidewatch binary with a config file it reloads: start it (as
//! root or, for the permission test, as `nobody` through `setpriv`), ask
//! it to reload over the admin actions listener or with a signal, read
//! `/metrics` and `/status`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{client, metric};

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `[admin]` section with the actions listener on.
pub fn admin_section(admin: u16, actions: u16) -> String {
    format!(
        "[admin]\nlisten = \"127.0.0.1:{admin}\"\nactions_enabled = true\nactions_listen = \"127.0.0.1:{actions}\"\n[process]\nenabled = false\n[shutdown]\ngrace_period = \"1s\"\n"
    )
}

/// A running sidewatch binary; killed on drop.
pub struct Proc {
    child: Option<Child>,
    /// Admin port.
    pub admin: u16,
    /// Admin actions port.
    pub actions: u16,
}

impl Proc {
    /// Starts `sidewatch run --config <config>`; `as_nobody` drops to uid
    /// 65534 first (so file permissions apply even when tests run as root).
    pub async fn start(config: &Path, admin: u16, actions: u16, as_nobody: bool) -> Self {
        let bin = env!("CARGO_BIN_EXE_sidewatch");
        let mut command = if as_nobody {
            let setpriv =
                crate::support::require_program("setpriv", "apt-get install -y util-linux");
            let mut c = Command::new(setpriv);
            c.args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
                bin,
            ]);
            c
        } else {
            Command::new(bin)
        };
        let child = command
            .args(["run", "--config"])
            .arg(config)
            .env_remove("SIDEWATCH_CONFIG")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sidewatch starts");
        let proc = Self {
            child: Some(child),
            admin,
            actions,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while proc.try_metrics().await.is_none() {
            assert!(Instant::now() < deadline, "sidewatch did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        proc
    }

    async fn try_metrics(&self) -> Option<String> {
        let r = client()
            .get(format!("http://127.0.0.1:{}/metrics", self.admin))
            .send()
            .await
            .ok()?;
        r.text().await.ok()
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.try_metrics().await.expect("/metrics answers")
    }

    /// `name{labels}` in `/metrics`, if present.
    pub async fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        metric(&self.metrics().await, name, labels)
    }

    /// The `/status` document.
    pub async fn status(&self) -> serde_json::Value {
        client()
            .get(format!("http://127.0.0.1:{}/status", self.admin))
            .send()
            .await
            .expect("/status answers")
            .text()
            .await
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .expect("/status is JSON")
    }

    /// `POST /-/reload`: the status code and the JSON answer.
    pub async fn reload(&self) -> (u16, serde_json::Value) {
        let r = client()
            .post(format!("http://127.0.0.1:{}/-/reload", self.actions))
            .send()
            .await
            .expect("actions listener answers");
        let code = r.status().as_u16();
        let text = r.text().await.expect("answer body");
        (code, serde_json::from_str(&text).expect("JSON answer"))
    }

    /// Sends `signal` (e.g. `HUP`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let ok = Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal} {pid}");
    }

    /// Waits until `/status` satisfies `accept`; panics after `timeout`.
    pub async fn wait_status(
        &self,
        timeout: Duration,
        what: &str,
        accept: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status().await;
            if accept(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not seen in /status within {timeout:?}; last: {:#}",
                status["config"]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, and the exit code must be 0.
    pub fn stop(mut self) {
        let child = self.child.take().expect("running");
        let pid = child.id();
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        let mut child = child;
        assert_eq!(child.wait().unwrap().code(), Some(0), "clean exit");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Writes `text` to `path` by writing a temp file beside it and renaming
/// it over (what editors and config management do).
pub fn replace(path: &Path, text: &str) {
    let tmp: PathBuf = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Polls `check` until it holds; panics with `what` after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
