//! The real sidewatch binary as a separate process (its own RSS and FDs).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::client;

/// A running sidewatch binary; killed on drop.
pub struct Process {
    child: std::process::Child,
    admin: SocketAddr,
    /// Where its proxy listens.
    pub proxy: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Process {
    /// Starts it with the proxy in front of `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        Self::start_with(upstream, |_| String::new()).await
    }

    /// [`Process::start`] with more config after the `[proxy]` keys:
    /// `extra` gets the process's own temporary directory (for sink files).
    pub async fn start_with(
        upstream: SocketAddr,
        extra: impl FnOnce(&std::path::Path) -> String,
    ) -> Self {
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
        };
        let (admin, proxy) = (free(), free());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sidewatch.toml");
        let text = format!(
            "[admin]\nlisten = \"{admin}\"\n[process]\nenabled = false\n[shutdown]\ngrace_period = \"1s\"\n[proxy]\nlisten = \"{proxy}\"\nupstream = \"{upstream}\"\n{}",
            extra(dir.path())
        );
        std::fs::write(&path, text).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_sidewatch"))
            .args(["run", "--config"])
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let process = Self {
            child,
            admin,
            proxy,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while process.metrics().await.is_none() {
            assert!(Instant::now() < deadline, "sidewatch did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        process
    }

    /// Its `/metrics` text, once it answers.
    pub async fn metrics(&self) -> Option<String> {
        let r = client()
            .get(format!("http://{}/metrics", self.admin))
            .send()
            .await
            .ok()?;
        r.text().await.ok()
    }

    /// A `kB` value from its /proc status (`VmRSS:`).
    pub fn status(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Its open file descriptors.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .unwrap()
            .count()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
