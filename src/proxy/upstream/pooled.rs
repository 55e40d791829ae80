//! The keep-alive pools to the app (hyper's, one for HTTP/1.1 and one for
//! HTTP/2) for what cannot take a client connection's own app connection:
//! requests with a larger body, HTTP/2 clients' requests, requests the app
//! gets over HTTP/2 (gRPC) and upgrades. Each event loop has its own: hyper
//! serves each pooled connection from a task spawned on the runtime that
//! opened it, so a pool shared by the loops would hand a request from one
//! loop to a connection task of the other — a cross-thread wake-up each way
//! per request, the kind of hand-off the loops exist to avoid.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::super::body::CountingBody;
use super::IdleLimits;

/// hyper's pooled client, sending request bodies of type `B`.
pub type PooledClient<B = CountingBody> = Client<HttpConnector, B>;

/// What a pool is built with (from `[proxy]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// `proxy.connect_timeout`.
    pub connect_timeout: Duration,
    /// `proxy.pool_idle_timeout`.
    pub idle_timeout: Duration,
    /// `proxy.pool_max_idle`.
    pub max_idle: usize,
}

impl PoolSettings {
    /// The same bounds for the app connections closed client connections
    /// leave behind ([`super::IdleConnections`]).
    pub fn idle_limits(&self) -> IdleLimits {
        IdleLimits {
            max: self.max_idle,
            timeout: self.idle_timeout,
        }
    }
}

/// One event loop's pools, one per protocol to the app, rebuilt when a
/// reload changes their settings (and only then: a reload that keeps them
/// keeps the open connections).
#[derive(Debug)]
pub struct LoopPool<B = CountingBody> {
    current: Mutex<Option<Built<B>>>,
}

/// The clients of one set of settings.
#[derive(Debug)]
struct Built<B> {
    settings: PoolSettings,
    /// HTTP/1.1 keep-alive connections.
    http1: PooledClient<B>,
    /// HTTP/2 (h2c, prior knowledge): each connection carries many requests
    /// at once, so a loop mostly keeps one.
    http2: PooledClient<B>,
}

impl<B> Default for LoopPool<B> {
    fn default() -> Self {
        Self {
            current: Mutex::new(None),
        }
    }
}

impl<B> LoopPool<B>
where
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// The loop's client for `settings`, speaking HTTP/2 to the app when
    /// `http2` is set and HTTP/1.1 otherwise.
    pub fn client(&self, settings: PoolSettings, http2: bool) -> PooledClient<B> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let built = match &mut *current {
            Some(built) if built.settings == settings => built,
            slot => slot.insert(Built {
                settings,
                http1: build(settings, false),
                http2: build(settings, true),
            }),
        };
        if http2 {
            built.http2.clone()
        } else {
            built.http1.clone()
        }
    }
}

fn build<B>(settings: PoolSettings, http2: bool) -> PooledClient<B>
where
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(settings.connect_timeout));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(settings.idle_timeout)
        .pool_max_idle_per_host(settings.max_idle)
        .set_host(false)
        .http2_only(http2)
        .build(connector)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use bytes::Bytes;
    use http::Request;
    use http_body_util::{BodyExt, Empty};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    const SETTINGS: PoolSettings = PoolSettings {
        connect_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(60),
        max_idle: 64,
    };

    /// An app answering every request with a keep-alive `200`; counts the
    /// connections it accepts.
    async fn app() -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buffer).await {
                        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if n == 0 || stream.write_all(answer).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (format!("http://{addr}/"), accepted)
    }

    async fn get(client: &PooledClient<Empty<Bytes>>, uri: &str) {
        let request = Request::get(uri).body(Empty::new()).unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        response.into_body().collect().await.unwrap();
    }

    #[tokio::test]
    async fn the_pool_and_its_connections_are_kept_while_the_settings_are() {
        let (uri, accepted) = app().await;
        let pool = LoopPool::<Empty<Bytes>>::default();
        for _ in 0..3 {
            get(&pool.client(SETTINGS, false), &uri).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection, reused");
        let changed = PoolSettings {
            max_idle: 8,
            ..SETTINGS
        };
        get(&pool.client(changed, false), &uri).await;
        get(&pool.client(changed, false), &uri).await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "new settings, a new pool, one connection again"
        );
    }
}
