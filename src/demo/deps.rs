//! The demo's dependencies: PostgreSQL and Redis are collected when one is
//! reachable at `DATABASE_URL` / `REDIS_URL` or the usual local defaults, and
//! skipped with one log line when not.

use std::time::Duration;

use crate::config::{mask_url, Config, PostgresServer, RedisServer, Secret};

/// PostgreSQL the demo looks for when `DATABASE_URL` is unset.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Redis the demo looks for when `REDIS_URL` is unset.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// How long the reachability check waits for a TCP connect.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Adds a PostgreSQL and a Redis server to `config` for each one reachable.
pub async fn add_reachable(config: &mut Config, lookup: impl Fn(&str) -> Option<String>) {
    let database_url = lookup("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
    match reachable(&database_url, 5432).await {
        Ok(()) => config.postgres.servers.push(PostgresServer {
            name: "demo-postgres".into(),
            dsn: Secret::new(database_url),
            interval: Duration::from_secs(5),
            ..PostgresServer::default()
        }),
        Err(why) => tracing::info!("demo: not collecting PostgreSQL ({why}); set DATABASE_URL to a reachable server to see pg_* metrics"),
    }
    let redis_url = lookup("REDIS_URL").unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned());
    match reachable(&redis_url, 6379).await {
        Ok(()) => config.redis.servers.push(RedisServer {
            name: "demo-redis".into(),
            url: Secret::new(redis_url),
            interval: Duration::from_secs(5),
            ..RedisServer::default()
        }),
        Err(why) => tracing::info!("demo: not collecting Redis ({why}); set REDIS_URL to a reachable server to see redis_* metrics"),
    }
}

/// Whether a TCP connection to the URL's host and port opens; the error
/// names the URL with its password masked.
async fn reachable(url: &str, default_port: u16) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|_| "the URL does not parse".to_owned())?;
    let shown = mask_url(&parsed);
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("{shown} has no host"))?;
    let addr = format!("{host}:{}", parsed.port().unwrap_or(default_port));
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(format!("nothing reachable at {shown}: {error}")),
        Err(_) => Err(format!(
            "nothing answered at {shown} within {CONNECT_TIMEOUT:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn adds_only_what_answers_and_never_shows_the_password() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut config = Config::default();
        add_reachable(&mut config, |name| match name {
            "DATABASE_URL" => Some(format!("postgres://u:pw@{open}/db")),
            "REDIS_URL" => Some(format!("redis://:pw@{closed}")),
            _ => None,
        })
        .await;
        assert_eq!(config.postgres.servers.len(), 1);
        assert!(config.redis.servers.is_empty());
        let why = reachable(&format!("redis://:hunter2@{closed}"), 6379)
            .await
            .unwrap_err();
        assert!(!why.contains("hunter2") && why.contains("***"), "{why}");
    }
}
