//! The one connection to one server: opening it, and turning every client
//! error into a [`Failure`] whose reason is a bounded label and whose message
//! never holds the password.

use std::error::Error as _;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::config::Host;
use tokio_postgres::error::{DbError, SqlState};
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::dsn::{self, Verify};
use super::queries::Statements;
use super::tls;
use crate::config::PostgresServer;

/// The `application_name` of sidewatch's connection.
pub const APPLICATION_NAME: &str = "sidewatch";

/// Why a run failed: the `reason` label of `sidewatch_collector_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Refused, reset, unreachable, closed, shutting down, too many connections.
    Connect,
    /// The login was refused: password, role, `pg_hba.conf`, unknown database.
    Auth,
    /// No answer within the timeout, or `statement_timeout` cancelled a query.
    Timeout,
    /// A query failed or returned rows of an unexpected shape.
    Query,
    /// TLS handshake or certificate failure.
    Tls,
}

impl Reason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Connect => "connect",
            Reason::Auth => "auth",
            Reason::Timeout => "timeout",
            Reason::Query => "query",
            Reason::Tls => "tls",
        }
    }
}

/// A classified failure with a secret-free message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The reason label.
    pub reason: Reason,
    /// What happened.
    pub message: String,
}

impl Failure {
    /// A failure with this reason and message.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// Everything needed to (re)connect to one server.
pub struct Target {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    statement_timeout: Duration,
    password: Option<String>,
    describe: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The tokio-postgres config would show the password.
        f.debug_struct("Target")
            .field("server", &self.describe)
            .finish_non_exhaustive()
    }
}

/// An open connection with its statements prepared. Dropping it closes the
/// connection.
#[derive(Debug)]
pub struct Session {
    /// The client half.
    pub client: Client,
    /// The statements the collector runs.
    pub statements: Statements,
    io: IoTask,
}

impl Session {
    /// Whether the server closed the connection (or it broke).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed() || self.io.0.is_finished()
    }
}

/// The task that drives the connection's socket; owned by its [`Session`]
/// and aborted with it, so no task outlives the collector.
#[derive(Debug)]
struct IoTask(JoinHandle<Result<(), tokio_postgres::Error>>);

impl Drop for IoTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Target {
    /// Builds the target for a validated server.
    pub fn build(server: &PostgresServer) -> Result<Self, String> {
        let dsn = dsn::parse(server.dsn.expose()).map_err(|e| e.to_string())?;
        // A `ca_file` is a root certificate, as `sslrootcert` is: libpq then checks the chain.
        let verify = match (dsn.verify, &server.ca_file) {
            (Verify::Nothing, Some(_)) => Verify::Chain,
            (verify, _) => verify,
        };
        let roots = server.ca_file.clone().or(dsn.root_cert);
        let tls = tls::connector(verify, roots.as_deref())?;
        let mut config = dsn.config;
        config
            .application_name(APPLICATION_NAME)
            .connect_timeout(server.timeout);
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .filter(|p| !p.is_empty());
        Ok(Self {
            describe: describe(&config),
            config,
            tls,
            statement_timeout: server.timeout,
            password,
        })
    }

    /// Where the target is, for `/status`: hosts, database and user, no password.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Opens the connection, sets `statement_timeout` and prepares the statements.
    pub async fn connect(&self) -> Result<Session, Failure> {
        let (client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| self.failure(&e))?;
        let io = IoTask(tokio::spawn(connection));
        let timeout_ms = self.statement_timeout.as_millis().max(1);
        client
            .batch_execute(&format!("SET statement_timeout = {timeout_ms}"))
            .await
            .map_err(|e| self.failure(&e))?;
        let statements = Statements::prepare(&client)
            .await
            .map_err(|e| self.failure(&e))?;
        Ok(Session {
            client,
            statements,
            io,
        })
    }

    /// Classifies a client error; the message is built from the error's kind,
    /// SQLSTATE and server message, with the password masked should it appear.
    pub fn failure(&self, error: &tokio_postgres::Error) -> Failure {
        let failure = classify(error);
        match &self.password {
            Some(password) => Failure {
                message: failure.message.replace(password.as_str(), "***"),
                ..failure
            },
            None => failure,
        }
    }
}

fn classify(error: &tokio_postgres::Error) -> Failure {
    if let Some(db) = error.as_db_error() {
        return Failure::new(db_reason(db.code()), db_message(db));
    }
    let mut message = error.to_string();
    let mut source = error.source();
    let mut timed_out = false;
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
        }
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    let kind = error.to_string();
    let reason = match kind.as_str() {
        "error performing TLS handshake" => Reason::Tls,
        "authentication error" => Reason::Auth,
        "invalid configuration" if message.contains("password missing") => Reason::Auth,
        "timeout waiting for server" => Reason::Timeout,
        _ if timed_out => Reason::Timeout,
        "error connecting to server"
        | "error communicating with the server"
        | "connection closed"
        | "invalid configuration" => Reason::Connect,
        _ => Reason::Query,
    };
    Failure::new(reason, message)
}

fn db_reason(code: &SqlState) -> Reason {
    let class = &code.code()[..2];
    if class == "28" || *code == SqlState::INVALID_CATALOG_NAME {
        Reason::Auth
    } else if *code == SqlState::QUERY_CANCELED {
        Reason::Timeout
    } else if class == "08" || class == "53" || class == "57" {
        // Connection exceptions, insufficient resources (too many
        // connections), operator intervention (shutdown, starting up).
        Reason::Connect
    } else {
        Reason::Query
    }
}

fn db_message(db: &DbError) -> String {
    format!("{} {}: {}", db.severity(), db.code().code(), db.message())
}

fn describe(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) if name.contains(':') => format!("[{name}]:{port}"),
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(dir) => format!("{}/.s.PGSQL.{port}", dir.display()),
            }
        })
        .collect();
    format!(
        "{}/{} as {}",
        hosts.join(","),
        config.get_dbname().unwrap_or_default(),
        config.get_user().unwrap_or("(default user)")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn server(dsn: &str) -> PostgresServer {
        PostgresServer {
            name: "db".into(),
            dsn: Secret::new(dsn),
            ..PostgresServer::default()
        }
    }

    #[test]
    fn sqlstates_map_to_reasons() {
        assert_eq!(db_reason(&SqlState::INVALID_PASSWORD), Reason::Auth);
        assert_eq!(
            db_reason(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION),
            Reason::Auth
        );
        assert_eq!(db_reason(&SqlState::INVALID_CATALOG_NAME), Reason::Auth);
        assert_eq!(db_reason(&SqlState::QUERY_CANCELED), Reason::Timeout);
        assert_eq!(db_reason(&SqlState::TOO_MANY_CONNECTIONS), Reason::Connect);
        assert_eq!(db_reason(&SqlState::ADMIN_SHUTDOWN), Reason::Connect);
        assert_eq!(db_reason(&SqlState::CANNOT_CONNECT_NOW), Reason::Connect);
        assert_eq!(db_reason(&SqlState::INSUFFICIENT_PRIVILEGE), Reason::Query);
    }

    #[test]
    fn describe_has_no_password() {
        let target = Target::build(&server("postgres://mon:hunter2@db:6432,[::1]/app")).unwrap();
        assert_eq!(target.describe(), "db:6432,[::1]:5432/app as mon");
        let target =
            Target::build(&server("host=/run/pg port=5433 user=x password=hunter2")).unwrap();
        assert_eq!(target.describe(), "/run/pg/.s.PGSQL.5433/ as x");
    }

    #[tokio::test]
    async fn refused_connection_is_connect_and_quotes_no_password() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let target = Target::build(&server(&format!(
            "postgres://u:hunter2@127.0.0.1:{port}/db?sslmode=disable"
        )))
        .unwrap();
        let failure = target.connect().await.unwrap_err();
        assert_eq!(failure.reason, Reason::Connect, "{failure:?}");
        assert!(!failure.message.contains("hunter2"), "{failure:?}");
    }
}
