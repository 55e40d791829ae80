//! `[redis]`: the Redis servers sidewatch collects from, each over one
//! long-lived connection (see `collect::redis`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};
use url::Url;

use super::validate::Errors;
use super::{mask_url, Secret};

/// Redis collection.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// The servers to collect from, each with a unique `name` (the `server` label).
    pub servers: Vec<RedisServer>,
}

/// One Redis server.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisServer {
    /// Unique name, used as the `server` label and in the collector name `redis/NAME`.
    pub name: String,
    /// `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS.
    /// With a password only, sidewatch sends `AUTH password`; with a user too,
    /// `AUTH user password` (an ACL user). A secret: a string, `{ file = ... }`
    /// or `{ env = ... }`; it is shown with the password masked.
    #[serde(serialize_with = "serialize_masked_url")]
    pub url: Secret,
    /// `maxclients` to export when `CONFIG GET maxclients` is refused (renamed
    /// or disabled on managed Redis) and `INFO` does not report it (Redis < 7).
    pub maxclients: Option<u64>,
    /// Count this pod's connections with `CLIENT LIST` (`scope="pod"`). The
    /// reply lists every client of the server: turn it off for servers with
    /// many thousands of clients.
    pub pod_clients: bool,
    /// Time between collections.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Time allowed for one collection, including a reconnect.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Longest wait between failed reconnects (attempts back off exponentially
    /// from 1 s, with jitter). Default: half the interval, so a server that
    /// comes back is collected again at the next run.
    #[serde(with = "humantime_serde")]
    pub reconnect_backoff_max: Option<Duration>,
    /// PEM file with CA certificates to trust for `rediss://` (instead of the
    /// built-in web PKI roots).
    pub ca_file: Option<PathBuf>,
    /// Skip TLS certificate verification for `rediss://` (testing only).
    pub insecure_skip_verify: bool,
}

impl Default for RedisServer {
    fn default() -> Self {
        Self {
            name: String::new(),
            url: Secret::new(""),
            maxclients: None,
            pod_clients: true,
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(3),
            reconnect_backoff_max: None,
            ca_file: None,
            insecure_skip_verify: false,
        }
    }
}

/// Where and how to connect, parsed from [`RedisServer::url`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisEndpoint {
    /// Host name or IP address (without brackets).
    pub host: String,
    /// TCP port (default 6379).
    pub port: u16,
    /// `rediss://`: connect with TLS.
    pub tls: bool,
    /// ACL user name, when given.
    pub username: Option<String>,
    /// Password, when given.
    pub password: Option<Secret>,
    /// Database index selected after connecting (default 0).
    pub db: u32,
    /// The URL with its password masked, for `/status` and logs.
    pub display: String,
}

impl RedisServer {
    /// Parses the URL; the error message never contains the URL or its password.
    pub fn endpoint(&self) -> Result<RedisEndpoint, String> {
        let url = Url::parse(self.url.expose()).map_err(|e| format!("not a valid URL: {e}"))?;
        let tls = match url.scheme() {
            "redis" => false,
            "rediss" => true,
            other => return Err(format!("scheme must be redis or rediss, not {other:?}")),
        };
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(host) => host.to_string(),
            None => return Err("the URL has no host".into()),
        };
        if url.query().is_some() || url.fragment().is_some() {
            return Err("query parameters and fragments are not supported".into());
        }
        let db = match url.path().trim_start_matches('/') {
            "" => 0,
            db => db
                .parse::<u32>()
                .map_err(|_| format!("the path must be a database number, not {db:?}"))?,
        };
        let decode = |part: &str, what: &str| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| format!("the {what} is not valid percent-encoded UTF-8"))
        };
        let username = match url.username() {
            "" => None,
            user => Some(decode(user, "user name")?),
        };
        let password = url
            .password()
            .map(|p| decode(p, "password").map(Secret::new))
            .transpose()?;
        Ok(RedisEndpoint {
            host,
            port: url.port().unwrap_or(6379),
            tls,
            username,
            password,
            db,
            display: mask_url(&url),
        })
    }
}

impl RedisConfig {
    /// Adds every problem with the `[redis]` section to `errors`.
    pub(crate) fn validate(&self, errors: &mut Errors) {
        let mut names = HashSet::new();
        for (i, server) in self.servers.iter().enumerate() {
            let key = format!("redis.servers[{i}]");
            errors.name(&format!("{key}.name"), &server.name, &mut names);
            if server.url.expose().is_empty() {
                errors.push(format!("{key}.url"), "must be set");
            } else if let Err(e) = server.endpoint() {
                errors.push(format!("{key}.url"), e);
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

/// Serializes the URL secret with only its password masked (or `***` whole
/// when it does not parse).
fn serialize_masked_url<S: Serializer>(url: &Secret, serializer: S) -> Result<S::Ok, S::Error> {
    match Url::parse(url.expose()) {
        Ok(url) => serializer.serialize_str(&mask_url(&url)),
        Err(_) => url.serialize(serializer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(url: &str) -> RedisServer {
        RedisServer {
            name: "cache".into(),
            url: Secret::new(url),
            ..RedisServer::default()
        }
    }

    #[test]
    fn parses_user_password_db_and_tls() {
        let endpoint = server("rediss://app:p%40ss@cache.example:6380/2")
            .endpoint()
            .unwrap();
        assert!(endpoint.tls);
        assert_eq!(
            (endpoint.host.as_str(), endpoint.port, endpoint.db),
            ("cache.example", 6380, 2)
        );
        assert_eq!(endpoint.username.as_deref(), Some("app"));
        assert_eq!(endpoint.password.unwrap().expose(), "p@ss");
        assert_eq!(endpoint.display, "rediss://app:***@cache.example:6380/2");
        let plain = server("redis://:pw@[::1]").endpoint().unwrap();
        assert_eq!((plain.host.as_str(), plain.port), ("::1", 6379));
        assert_eq!(plain.username, None);
    }

    #[test]
    fn errors_never_show_the_password() {
        for url in [
            "http://u:hunter2@h/",
            "redis://u:hunter2@h/x",
            "redis://u:hunter2@h/0?a=b",
            "redis://u:hunter2@:99999",
        ] {
            let error = server(url).endpoint().unwrap_err();
            assert!(!error.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn validation_names_each_key() {
        let config = RedisConfig {
            servers: vec![server("ftp://h"), server(""), RedisServer::default()],
        };
        let mut errors = Errors::default();
        config.validate(&mut errors);
        let keys: Vec<String> = errors.0.into_iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            [
                "redis.servers[0].url",
                "redis.servers[1].name",
                "redis.servers[1].url",
                "redis.servers[2].name",
                "redis.servers[2].url"
            ]
        );
    }

    #[test]
    fn serializes_with_the_password_masked() {
        let json = serde_json::to_string(&server("redis://u:hunter2@h:1/0")).unwrap();
        assert!(json.contains("redis://u:***@h:1/0"), "{json}");
        assert!(!json.contains("hunter2"));
    }
}
