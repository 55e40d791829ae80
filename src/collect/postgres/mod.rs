//! The PostgreSQL collector: one per configured server, each holding exactly
//! one connection (`application_name=sidewatch`, with a `statement_timeout`).
//!
//! Each run pings the server and reads its settings, `pg_stat_activity`
//! (server-wide and for this pod's IP) and `pg_stat_database`, and publishes
//! them under postgres_exporter's names (see [`metrics`]). A lost connection
//! is reopened by a later run, at most one attempt per run and with
//! exponential backoff and jitter in between; a run never waits longer than
//! the server's `timeout`.

mod connect;
pub mod dsn;
pub mod metrics;
mod queries;
mod tls;

pub use connect::{Reason, APPLICATION_NAME};
pub use metrics::PostgresMetrics;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;
use serde_json::json;

use self::connect::{Failure, Session, Target};
use self::metrics::ServerLabels;
use super::{CollectError, Collected, Collector};
use crate::backoff::Backoff;
use crate::config::PostgresServer;

/// Collects from one server.
#[derive(Debug)]
pub struct PostgresCollector {
    name: String,
    server: String,
    target: Target,
    databases: Vec<String>,
    pod_ip: Option<IpAddr>,
    interval: Duration,
    timeout: Duration,
    session: Option<Session>,
    backoff: Backoff,
    last_failure: Option<Failure>,
    up: Gauge,
    metrics: PostgresMetrics,
}

impl PostgresCollector {
    /// Builds the collector for a validated server; `pod_ip` attributes
    /// connections to this pod (`scope="pod"`) when known.
    pub fn build(
        server: &PostgresServer,
        pod_ip: Option<IpAddr>,
        metrics: &PostgresMetrics,
    ) -> Result<Self, String> {
        let labels = ServerLabels {
            server: server.name.clone(),
        };
        let backoff_max = server.reconnect_backoff_max.unwrap_or(server.interval / 2);
        Ok(Self {
            name: format!("postgres/{}", server.name),
            server: server.name.clone(),
            target: Target::build(server)?,
            databases: server.databases.clone(),
            pod_ip,
            interval: server.interval,
            timeout: server.timeout,
            session: None,
            backoff: Backoff::new(Duration::from_secs(1), backoff_max),
            last_failure: None,
            up: metrics.up.get_or_create_owned(&labels),
            metrics: metrics.clone(),
        })
    }

    /// Connects if needed (when the backoff allows) and reads one snapshot.
    async fn run(&mut self, deadline: tokio::time::Instant) -> Result<Collected, Failure> {
        // A connection the server closed is reopened at once: the backoff
        // only spaces out attempts that fail.
        if self.session.as_ref().is_some_and(Session::is_closed) {
            self.session = None;
        }
        let session = match self.session.take() {
            Some(session) => session,
            None => self.reconnect(deadline).await?,
        };
        let read = queries::read(
            &session.client,
            &session.statements,
            self.pod_ip,
            &self.databases,
        );
        let snapshot = match tokio::time::timeout_at(deadline, read).await {
            Ok(Ok(snapshot)) => snapshot,
            Ok(Err(error)) => {
                let failure = self.target.failure(&error);
                if !session.is_closed() {
                    self.session = Some(session);
                }
                return Err(failure);
            }
            // The connection may be stuck mid-query: drop it, reconnect next run.
            Err(_) => {
                return Err(Failure::new(
                    Reason::Timeout,
                    format!("no answer within {:?}", self.timeout),
                ));
            }
        };
        self.session = Some(session);
        let invisible = self
            .metrics
            .publish(&self.server, &snapshot, self.pod_ip.is_some());
        Ok(Collected {
            degraded: self.degraded(&snapshot, invisible),
            details: json!({
                "server": self.target.describe(),
                "version": snapshot.settings.version,
                "ping_seconds": snapshot.ping.as_secs_f64(),
                "databases": snapshot.databases.len(),
                "pod_ip": self.pod_ip,
            }),
        })
    }

    /// Why the snapshot is partial, if it is: hidden backends, missing databases.
    fn degraded(&self, snapshot: &queries::Snapshot, invisible: f64) -> Option<String> {
        let mut problems = Vec::new();
        if invisible > 0.0 {
            problems.push(format!(
                "insufficient privilege to see {invisible} backends' state (grant pg_monitor to the role); they are counted as state=\"unknown\""
            ));
        }
        let missing: Vec<&str> = self
            .databases
            .iter()
            .filter(|name| !snapshot.databases.iter().any(|d| &d.datname == *name))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            problems.push(format!("databases not found: {}", missing.join(", ")));
        }
        (!problems.is_empty()).then(|| problems.join("; "))
    }

    /// One connection attempt, unless the backoff says to wait.
    async fn reconnect(&mut self, deadline: tokio::time::Instant) -> Result<Session, Failure> {
        let now = Instant::now();
        if let (Some(wait), Some(last)) = (self.backoff.remaining(now), &self.last_failure) {
            return Err(Failure::new(
                last.reason,
                format!(
                    "{} (next connection attempt in {:.1}s)",
                    last.message,
                    wait.as_secs_f64()
                ),
            ));
        }
        let attempt = tokio::time::timeout_at(deadline, self.target.connect()).await;
        let failure = match attempt {
            Ok(Ok(session)) => {
                self.backoff.reset();
                self.last_failure = None;
                return Ok(session);
            }
            Ok(Err(failure)) => failure,
            Err(_) => Failure::new(
                Reason::Timeout,
                format!("could not connect within {:?}", self.timeout),
            ),
        };
        self.backoff.failed(now);
        self.last_failure = Some(failure.clone());
        Err(failure)
    }
}

impl Collector for PostgresCollector {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn timeout(&self) -> Duration {
        // The run bounds itself; this only guards against a bug there.
        self.timeout + Duration::from_secs(1)
    }

    async fn collect(&mut self) -> Result<Collected, CollectError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        match self.run(deadline).await {
            Ok(collected) => {
                self.up.set(1);
                Ok(collected)
            }
            Err(failure) => {
                self.up.set(0);
                self.metrics.clear(&self.server);
                Err(CollectError {
                    reason: failure.reason.as_str(),
                    message: failure.message,
                    details: json!({ "server": self.target.describe() }),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[tokio::test]
    async fn a_down_server_gets_one_attempt_per_backoff_not_per_run() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = PostgresServer {
            name: "down".into(),
            dsn: Secret::new(format!("postgres://u:hunter2@127.0.0.1:{port}/db")),
            reconnect_backoff_max: Some(Duration::from_secs(60)),
            ..PostgresServer::default()
        };
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = PostgresMetrics::register(&mut registry);
        let mut collector = PostgresCollector::build(&server, None, &metrics).unwrap();
        let first = collector.collect().await.unwrap_err();
        assert_eq!(first.reason, "connect", "{first}");
        assert!(
            !first.message.contains("next connection attempt"),
            "{first}"
        );
        let started = Instant::now();
        let second = collector.collect().await.unwrap_err();
        assert_eq!(second.reason, "connect", "{second}");
        assert!(
            second.message.contains("next connection attempt in"),
            "{second}"
        );
        assert!(started.elapsed() < Duration::from_millis(100));
        assert!(!second.message.contains("hunter2"));
        assert_eq!(collector.up.get(), 0);
    }
}
