//! A real PostgreSQL 15 server for tests: `initdb` into a temp dir and
//! `pg_ctl` on a random loopback port, run as the `postgres` user (PostgreSQL
//! refuses root). Local (Unix socket) logins are trusted; TCP logins need a
//! password (scram-sha-256), so tests exercise real authentication.

use std::path::{Path, PathBuf};
use std::process::Command;

use tokio_postgres::{Client, NoTls};

/// Where Debian's `postgresql` package puts PostgreSQL 15.
const BIN: &str = "/usr/lib/postgresql/15/bin";

/// A running server; stopped and deleted on drop.
pub struct PgServer {
    dir: tempfile::TempDir,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    options: String,
}

impl PgServer {
    /// Creates and starts a server; `settings` are extra `-c name=value` pairs.
    /// Panics with the install command when PostgreSQL 15 is missing.
    pub fn start(settings: &[&str]) -> Self {
        let server = Self::init(settings);
        server.start_again();
        server
    }

    /// Like [`PgServer::start`], with TLS on: a certificate for `db.example`
    /// (and no other name) signed by a fresh CA, whose file is [`PgServer::ca_file`].
    pub fn start_tls() -> Self {
        let mut server = Self::init(&[]);
        let dir = server.dir.path();
        let ext = dir.join("server.ext");
        std::fs::write(
            &ext,
            "subjectAltName=DNS:db.example\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write ext");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let file = |name: &str| path(&dir.join(name));
        run(Command::new("openssl")
            .args(["req", "-x509"])
            .args(ec)
            .args(["-keyout", &file("ca.key"), "-out", &file("ca.crt")])
            .args(["-days", "2", "-subj", "/CN=sidewatch test CA"]));
        run(Command::new("openssl")
            .arg("req")
            .args(ec)
            .args(["-keyout", &file("server.key"), "-out", &file("server.csr")])
            .args(["-subj", "/CN=db.example"]));
        run(Command::new("openssl")
            .args(["x509", "-req", "-in", &file("server.csr")])
            .args([
                "-CA",
                &file("ca.crt"),
                "-CAkey",
                &file("ca.key"),
                "-CAcreateserial",
            ])
            .args([
                "-out",
                &file("server.crt"),
                "-days",
                "2",
                "-extfile",
                &file("server.ext"),
            ]));
        run(Command::new("chown")
            .arg("postgres")
            .arg(file("server.key")));
        run(Command::new("chmod").arg("600").arg(file("server.key")));
        server.options.push_str(&format!(
            " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            file("server.crt"),
            file("server.key")
        ));
        server.start_again();
        server
    }

    /// The CA certificate (PEM) that signed a TLS server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// `initdb` without starting.
    fn init(settings: &[&str]) -> Self {
        let initdb = Path::new(BIN).join("initdb");
        assert!(
            initdb.is_file(),
            "PostgreSQL 15 is needed by this test and is not installed: run `apt-get install -y postgresql`"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        run(Command::new("chown").arg("postgres").arg(dir.path()));
        run(as_postgres("initdb").args([
            "-D",
            &path(&dir.path().join("data")),
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-U",
            "postgres",
            "--no-sync",
        ]));
        let mut options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            path(dir.path())
        );
        for setting in settings {
            options.push_str(&format!(" -c {setting}"));
        }
        Self { dir, port, options }
    }

    /// The directory holding the server's Unix socket (and its data).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server (`pg_ctl stop -m fast`), waiting until it is down.
    pub fn stop(&self) {
        run(as_postgres("pg_ctl").args(["-D", &self.data(), "-m", "fast", "-w", "stop"]));
    }

    /// Starts a stopped server again, waiting until it accepts connections.
    pub fn start_again(&self) {
        run(as_postgres("pg_ctl").args([
            "-D",
            &self.data(),
            "-o",
            &self.options,
            "-l",
            &path(&self.dir.path().join("log")),
            "-w",
            "start",
        ]));
    }

    /// Runs SQL as the superuser with `psql` in a child process, so statements
    /// holding passwords stay out of the test's own (captured) logs.
    pub fn psql(&self, sql: &str) {
        run(as_postgres("psql").args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            &path(self.dir.path()),
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            sql,
        ]));
    }

    /// Connects over the Unix socket (trusted) as `user` to `db`.
    pub async fn local(&self, user: &str, db: &str) -> Client {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(self.dir.path())
            .port(self.port)
            .user(user)
            .dbname(db);
        spawn(config).await
    }

    /// Connects over TCP to 127.0.0.1 with a password.
    pub async fn tcp(&self, user: &str, password: &str, db: &str) -> Client {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user(user)
            .password(password)
            .dbname(db);
        spawn(config).await
    }

    fn data(&self) -> String {
        path(&self.dir.path().join("data"))
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = as_postgres("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .output();
    }
}

async fn spawn(config: tokio_postgres::Config) -> Client {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .expect("test connects to PostgreSQL");
    tokio::spawn(connection);
    client
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn as_postgres(program: &str) -> Command {
    let mut command = Command::new("runuser");
    command
        .args(["-u", "postgres", "--"])
        .arg(PathBuf::from(BIN).join(program));
    command
}

fn run(command: &mut Command) {
    let output = command.output().expect("command runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn path(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
