//! The Redis collector: one long-lived connection per configured server,
//! and each interval `PING`, `INFO`, `CONFIG GET maxclients` and (for the
//! pod's share) `CLIENT LIST`, exported under redis_exporter's names.
//!
//! **Why a hand-written RESP client rather than the `redis` crate.** The
//! collector sends seven commands (`AUTH`, `CLIENT SETNAME`, `SELECT`,
//! `PING`, `INFO`, `CONFIG GET`, `CLIENT LIST`) over one connection it owns,
//! in RESP2 (no `HELLO` needed: `AUTH user password` covers ACL users on
//! Redis 6+, `AUTH password` older servers), and reads four reply types.
//! That is ~150 lines with a limit on every length (see [`resp`]), and TLS
//! reuses the `rustls`/`tokio-rustls` stack `reqwest` already brings. The
//! `redis` crate (`tokio-comp`, `tokio-rustls-comp`) would add its own parser
//! (`combine`), connection managers, pub/sub, scripting and cluster code and
//! their dependencies — compile time and binary size for a sidecar that must
//! stay small — while hiding what the collector must control: exactly one
//! connection, its name, when it reconnects, and which failures are auth
//! errors rather than protocol ones.
//!
//! **Connection.** Opened on the first run, named `sidewatch` (`CLIENT
//! SETNAME`), kept across runs. A run whose connection turns out to be dead
//! (the server restarted) reconnects at once; failed connects back off
//! exponentially from 1 s with jitter, up to `reconnect_backoff_max`
//! (default half the interval, so a server that returns is collected again
//! at the next run); a run inside the back-off fails as `connect` without
//! touching the network.
//!
//! **Own connection.** `redis_connected_clients{scope="server"}` is the
//! server's `connected_clients`, which includes sidewatch's connection
//! (redis_exporter does not subtract its own either); `scope="pod"` counts
//! the `CLIENT LIST` entries from the pod's IP *except* sidewatch's.

mod conn;
mod info;
mod metrics;
mod resp;
mod tls;

pub use metrics::RedisMetrics;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_rustls::TlsConnector;

use self::conn::{is_auth_error, Connection, RedisError, CLIENT_NAME};
use self::info::Info;
use self::metrics::Reading;
use self::resp::Value;
use super::{CollectError, Collected, Collector};
use crate::backoff::Backoff;
use crate::config::{RedisEndpoint, RedisServer};

/// The first reconnect delay; it doubles per failure up to the configured maximum.
const BACKOFF_BASE: Duration = Duration::from_secs(1);

/// Where `redis_config_maxclients` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MaxclientsSource {
    ConfigGet,
    Info,
    Configured,
    Unknown,
}

impl MaxclientsSource {
    fn as_str(self) -> &'static str {
        match self {
            MaxclientsSource::ConfigGet => "config_get",
            MaxclientsSource::Info => "info",
            MaxclientsSource::Configured => "configured",
            MaxclientsSource::Unknown => "unknown",
        }
    }
}

/// Collects one Redis server.
pub struct RedisCollector {
    name: String,
    server: String,
    endpoint: RedisEndpoint,
    tls: Option<TlsConnector>,
    interval: Duration,
    timeout: Duration,
    configured_maxclients: Option<u64>,
    pod_ip: Option<IpAddr>,
    pod_clients: bool,
    metrics: RedisMetrics,
    connection: Option<Connection>,
    connects: u64,
    backoff: Backoff,
    /// The last connect failure, reported while the backoff holds.
    last_connect_error: String,
}

impl std::fmt::Debug for RedisCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCollector")
            .field("name", &self.name)
            .field("url", &self.endpoint.display)
            .finish_non_exhaustive()
    }
}

impl RedisCollector {
    /// Builds the collector for a validated server; `pod_ip` is the pod's
    /// address for `scope="pod"`, when known.
    pub fn build(
        server: &RedisServer,
        pod_ip: Option<IpAddr>,
        metrics: &RedisMetrics,
    ) -> Result<Self, String> {
        let endpoint = server.endpoint()?;
        let tls = match endpoint.tls {
            true => Some(tls::connector(
                server.ca_file.as_deref(),
                server.insecure_skip_verify,
            )?),
            false => None,
        };
        Ok(Self {
            name: format!("redis/{}", server.name),
            server: server.name.clone(),
            endpoint,
            tls,
            interval: server.interval,
            timeout: server.timeout,
            configured_maxclients: server.maxclients,
            pod_ip,
            pod_clients: server.pod_clients,
            metrics: metrics.clone(),
            connection: None,
            connects: 0,
            backoff: Backoff::new(
                BACKOFF_BASE,
                server.reconnect_backoff_max.unwrap_or(server.interval / 2),
            ),
            last_connect_error: String::new(),
        })
    }

    /// The open connection, opening one (subject to back-off) if there is none.
    async fn connection(&mut self) -> Result<&mut Connection, RedisError> {
        if let Some(wait) = self.backoff.remaining(Instant::now()) {
            return Err(RedisError::Backoff {
                wait,
                last: self.last_connect_error.clone(),
            });
        }
        match self.connection {
            Some(ref mut connection) => Ok(connection),
            None => {
                let started = Instant::now();
                match Connection::open(&self.endpoint, self.tls.as_ref(), self.timeout.mul_f64(0.8))
                    .await
                {
                    Ok(connection) => {
                        self.connects += 1;
                        self.backoff.reset();
                        Ok(self.connection.insert(connection))
                    }
                    Err(error) => {
                        self.backoff.failed(started);
                        self.last_connect_error = self.scrub(&error.to_string());
                        Err(error)
                    }
                }
            }
        }
    }

    /// One collection; on a dead kept connection, reconnects once and retries.
    async fn read(&mut self) -> Result<(Reading, serde_json::Value, Option<String>), RedisError> {
        let fresh = self.connection.is_none();
        let started = Instant::now();
        let ping = self.connection().await?.command(&[b"PING"]).await;
        let ping = match ping {
            Err(RedisError::Io(_)) if !fresh => {
                // The server closed the idle connection (restart, idle timeout).
                self.connection = None;
                let started = Instant::now();
                let reply = self.connection().await?.command(&[b"PING"]).await?;
                (reply, started.elapsed())
            }
            other => (other?, started.elapsed()),
        };
        match ping.0 {
            Value::Simple(_) | Value::Bulk(_) => {}
            Value::Error(e) if is_auth_error(&e) => return Err(RedisError::Auth(e)),
            other => {
                return Err(RedisError::Protocol(format!(
                    "unexpected PING reply {other:?}"
                )))
            }
        }
        let want_clients = self.pod_clients && self.pod_ip.is_some();
        let mut commands: Vec<Vec<&[u8]>> =
            vec![vec![b"INFO"], vec![b"CONFIG", b"GET", b"maxclients"]];
        if want_clients {
            commands.push(vec![b"CLIENT", b"LIST"]);
        }
        let connection = self.connection().await?;
        let named = connection.named;
        let mut replies = connection.pipeline(&commands).await?.into_iter();
        let info = match replies.next() {
            Some(Value::Error(e)) if is_auth_error(&e) => return Err(RedisError::Auth(e)),
            Some(reply) => reply
                .text()
                .map(|text| Info::parse(&text))
                .ok_or_else(|| RedisError::Protocol(format!("INFO replied {reply:?}")))?,
            None => return Err(RedisError::Protocol("no reply to INFO".into())),
        };
        let (maxclients, source, config_error) =
            pick_maxclients(replies.next(), &info, self.configured_maxclients);
        let config_error = config_error.map(|e| self.scrub(&e));
        let mut degraded = Vec::new();
        let pod_clients = match (want_clients, replies.next()) {
            (false, _) => None,
            (true, Some(Value::Error(e))) => {
                degraded.push(format!(
                    "CLIENT LIST refused ({}): no scope=\"pod\" count",
                    self.scrub(&e)
                ));
                None
            }
            (true, Some(reply)) => match (reply.text(), self.pod_ip) {
                (Some(list), Some(ip)) => Some(info::count_clients_from(&list, ip, CLIENT_NAME)),
                _ => return Err(RedisError::Protocol("CLIENT LIST reply is not text".into())),
            },
            (true, None) => return Err(RedisError::Protocol("no reply to CLIENT LIST".into())),
        };
        if source == MaxclientsSource::Unknown {
            degraded.push("maxclients unknown: CONFIG GET refused and INFO lacks it; set `maxclients` in the config".into());
        }
        let details = json!({
            "server": self.endpoint.display,
            "redis_version": info.text("redis_version"),
            "role": info.text("role"),
            "maxclients_source": source.as_str(),
            "config_get_error": config_error,
            "pod_ip": self.pod_ip.map(|ip| ip.to_string()),
            "pod_clients": pod_clients,
            "connection_named": named,
            "connects": self.connects,
        });
        let reading = Reading {
            info,
            maxclients,
            pod_clients,
            ping_seconds: ping.1.as_secs_f64(),
        };
        let degraded = (!degraded.is_empty()).then(|| degraded.join("; "));
        Ok((reading, details, degraded))
    }

    /// Removes the password from text that may echo it (a server's error reply).
    fn scrub(&self, text: &str) -> String {
        match &self.endpoint.password {
            Some(password) if !password.expose().is_empty() => {
                text.replace(password.expose(), "***")
            }
            _ => text.to_owned(),
        }
    }
}

/// `maxclients` from `CONFIG GET`, else `INFO` (Redis ≥ 7), else the config;
/// with where it came from and why `CONFIG GET` did not answer.
fn pick_maxclients(
    reply: Option<Value>,
    info: &Info,
    configured: Option<u64>,
) -> (Option<f64>, MaxclientsSource, Option<String>) {
    let (from_config, error) = match reply {
        Some(Value::Array(Some(items))) => {
            let value = items
                .get(1)
                .and_then(Value::text)
                .and_then(|v| v.parse().ok());
            (value, None)
        }
        Some(Value::Error(e)) => (None, Some(e)),
        other => (None, Some(format!("unexpected reply {other:?}"))),
    };
    if let Some(value) = from_config {
        return (Some(value), MaxclientsSource::ConfigGet, None);
    }
    if let Some(value) = info.number("maxclients") {
        return (Some(value), MaxclientsSource::Info, error);
    }
    match configured {
        Some(value) => (Some(value as f64), MaxclientsSource::Configured, error),
        None => (None, MaxclientsSource::Unknown, error),
    }
}

impl Collector for RedisCollector {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn timeout(&self) -> Duration {
        // The run bounds itself; this only guards against a bug there.
        self.timeout + Duration::from_secs(1)
    }

    async fn collect(&mut self) -> Result<Collected, CollectError> {
        let outcome = tokio::time::timeout(self.timeout, self.read()).await;
        let error = match outcome {
            Ok(Ok((reading, details, degraded))) => {
                self.metrics.publish(&self.server, &reading);
                return Ok(Collected { degraded, details });
            }
            Ok(Err(error)) => (error.reason(), self.scrub(&error.to_string())),
            Err(_) => (
                "timeout",
                format!("no complete answer within {:?}", self.timeout),
            ),
        };
        // Whatever failed, the connection's state is unknown: start afresh.
        self.connection = None;
        self.metrics.publish_down(&self.server);
        Err(CollectError {
            reason: error.0,
            message: error.1,
            details: json!({ "server": self.endpoint.display, "connects": self.connects }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::Bulk(Some(text.as_bytes().to_vec()))
    }

    #[test]
    fn maxclients_falls_back_from_config_get_to_info_to_the_config() {
        let info_with = Info::parse("# Clients\nmaxclients:500\n");
        let info_without = Info::parse("# Clients\nconnected_clients:1\n");
        let config_get = Some(Value::Array(Some(vec![bulk("maxclients"), bulk("1000")])));
        let refused = || Some(Value::Error("ERR unknown command 'CONFIG'".into()));
        assert_eq!(
            pick_maxclients(config_get, &info_with, Some(7)),
            (Some(1000.0), MaxclientsSource::ConfigGet, None)
        );
        let (value, source, error) = pick_maxclients(refused(), &info_with, Some(7));
        assert_eq!((value, source), (Some(500.0), MaxclientsSource::Info));
        assert!(error.unwrap().contains("unknown command"));
        let (value, source, _) = pick_maxclients(refused(), &info_without, Some(7));
        assert_eq!((value, source), (Some(7.0), MaxclientsSource::Configured));
        let (value, source, _) = pick_maxclients(refused(), &info_without, None);
        assert_eq!((value, source), (None, MaxclientsSource::Unknown));
    }
}
