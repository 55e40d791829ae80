//! A real `redis-server` on a random loopback port, stopped when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The install command named when `redis-server` is missing.
pub const INSTALL: &str = "apt-get install -y redis-server";

/// A running `redis-server`.
pub struct RedisServer {
    /// The TCP port it listens on (the TLS port when started with TLS).
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
    dir: tempfile::TempDir,
    cli_auth: Vec<String>,
}

impl RedisServer {
    /// Starts `redis-server` with `extra` arguments (e.g. `--requirepass pw`).
    pub fn start(extra: &[&str]) -> Self {
        let port = free_port();
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::start_with(port, args)
    }

    /// Starts a TLS-only server (`--port 0 --tls-port N`) with the given
    /// certificate files; the connection to check readiness is plain TCP.
    pub fn start_tls(cert: &str, key: &str, ca: &str) -> Self {
        let port = free_port();
        let args = [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--tls-cert-file",
            cert,
            "--tls-key-file",
            key,
            "--tls-ca-cert-file",
            ca,
            "--tls-auth-clients",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        Self::start_with(port, args)
    }

    fn start_with(port: u16, args: Vec<String>) -> Self {
        super::require_program("redis-server", INSTALL);
        let mut server = Self {
            port,
            args,
            child: None,
            dir: tempfile::tempdir().expect("temp dir"),
            cli_auth: Vec::new(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(&self.args)
            .args(["--dir", &self.dir.path().display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server ({e}): run `{INSTALL}`"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Authenticates `cli` calls (`-a PASSWORD` or `--user U --pass P`).
    pub fn with_cli_auth(mut self, auth: &[&str]) -> Self {
        self.cli_auth = auth.iter().map(|s| s.to_string()).collect();
        self
    }

    /// `redis://127.0.0.1:PORT` with optional user info (`user:pw@`).
    pub fn url(&self, userinfo: &str) -> String {
        format!("redis://{userinfo}127.0.0.1:{}", self.port)
    }

    /// Runs `redis-cli` against the server and returns its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "--no-auth-warning",
            ])
            .args(&self.cli_auth)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}): run `{INSTALL}`"));
        assert!(output.status.success(), "redis-cli {args:?} failed");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Opens a raw client connection and checks the server answers on it
    /// (so it is counted in `connected_clients` before this returns).
    pub fn open_client(&self, auth: Option<&str>) -> TcpStream {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("client connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        if let Some(password) = auth {
            write!(stream, "AUTH {password}\r\n").expect("write");
            read_reply(&mut stream);
        }
        stream.write_all(b"PING\r\n").expect("write");
        assert_eq!(read_reply(&mut stream), "+PONG\r\n");
        stream
    }

    /// Kills the server (as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same arguments.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// A path inside the server's temp dir (for certificates).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn read_reply(stream: &mut TcpStream) -> String {
    let mut buf = [0u8; 256];
    let n = stream.read(&mut buf).expect("reply");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
