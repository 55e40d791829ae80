//! `[postgres]`: the PostgreSQL servers sidewatch collects from, each over
//! exactly one long-lived connection (see `collect::postgres`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};
use url::Url;

use super::validate::Errors;
use super::{mask_url, Secret};
use crate::collect::postgres::dsn;

/// PostgreSQL collection.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresConfig {
    /// The servers to collect from, each with a unique `name` (the `server` label).
    pub servers: Vec<PostgresServer>,
}

/// One PostgreSQL server.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresServer {
    /// Unique name, used as the `server` label and in the collector name `postgres/NAME`.
    pub name: String,
    /// Connection string: a URL (`postgres://user:password@host:5432/db?sslmode=require`)
    /// or libpq key=value pairs (`host=db user=monitor password=... dbname=postgres`).
    /// `sslmode` is `disable`, `prefer` (the default), `require`, `verify-ca` or
    /// `verify-full`, as in libpq: `prefer`/`require` encrypt without checking the
    /// certificate unless a root certificate is given (`sslrootcert` or `ca_file`).
    /// `application_name` is always `sidewatch`. A secret: a string,
    /// `{ file = ... }` or `{ env = ... }`; URLs are shown with the password masked.
    #[serde(serialize_with = "serialize_masked_dsn")]
    pub dsn: Secret,
    /// Databases whose `pg_stat_database` row and size are exported, and for which
    /// `pg_stat_activity_*` is exported as 0 when nobody is connected. Empty: every
    /// database except templates.
    pub databases: Vec<String>,
    /// Time between collections.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Time allowed for one collection, including a reconnect; also the
    /// connection's `statement_timeout`.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Longest wait between reconnect attempts while the server is unreachable
    /// (attempts back off exponentially from 1 s, with jitter). Default: half the
    /// interval, so a server that comes back is collected again at the next run.
    #[serde(with = "humantime_serde")]
    pub reconnect_backoff_max: Option<Duration>,
    /// PEM file with the CA certificates to trust for TLS, instead of the DSN's
    /// `sslrootcert` (or the built-in web PKI roots for `verify-full`).
    pub ca_file: Option<PathBuf>,
}

impl Default for PostgresServer {
    fn default() -> Self {
        Self {
            name: String::new(),
            dsn: Secret::new(""),
            databases: Vec::new(),
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(5),
            reconnect_backoff_max: None,
            ca_file: None,
        }
    }
}

impl PostgresConfig {
    /// Adds every problem with the `[postgres]` section to `errors`.
    pub(crate) fn validate(&self, errors: &mut Errors) {
        let mut names = HashSet::new();
        for (i, server) in self.servers.iter().enumerate() {
            let key = format!("postgres.servers[{i}]");
            errors.name(&format!("{key}.name"), &server.name, &mut names);
            if let Err(e) = dsn::parse(server.dsn.expose()) {
                errors.push(format!("{key}.dsn"), e.to_string());
            }
            errors.positive(&format!("{key}.interval"), server.interval);
            errors.positive(&format!("{key}.timeout"), server.timeout);
            if let Some(max) = server.reconnect_backoff_max {
                errors.positive(&format!("{key}.reconnect_backoff_max"), max);
            }
            errors.readable(&format!("{key}.ca_file"), server.ca_file.as_deref());
        }
    }
}

/// Serializes a URL DSN with only its password masked; key=value DSNs (and
/// anything that does not parse as a URL) print as `***`.
fn serialize_masked_dsn<S: Serializer>(dsn: &Secret, serializer: S) -> Result<S::Ok, S::Error> {
    match Url::parse(dsn.expose()) {
        Ok(url) if url.scheme().starts_with("postgres") => {
            serializer.serialize_str(&mask_url(&url))
        }
        _ => dsn.serialize(serializer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, dsn: &str) -> PostgresServer {
        PostgresServer {
            name: name.into(),
            dsn: Secret::new(dsn),
            ..PostgresServer::default()
        }
    }

    #[test]
    fn validation_names_each_key_and_never_shows_the_dsn() {
        let config = PostgresConfig {
            servers: vec![
                server("a", "postgres://u:hunter2@h:5432/db?sslmode=bogus"),
                server("a", "host=h password='hunter2"),
                server("", ""),
                server("ok", "postgres://u:hunter2@h/db?sslmode=verify-full"),
            ],
        };
        let mut errors = Errors::default();
        config.validate(&mut errors);
        let errors = errors.0;
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "postgres.servers[0].dsn",
                "postgres.servers[1].name",
                "postgres.servers[1].dsn",
                "postgres.servers[2].name",
                "postgres.servers[2].dsn",
            ]
        );
        for error in &errors {
            assert!(!error.message.contains("hunter2"), "{error:?}");
        }
    }

    #[test]
    fn serializes_with_the_password_masked() {
        let json = serde_json::to_string(&server("db", "postgres://u:hunter2@h:5432/app")).unwrap();
        assert!(json.contains("postgres://u:***@h:5432/app"), "{json}");
        let json = serde_json::to_string(&server("db", "host=h password=hunter2")).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
    }
}
