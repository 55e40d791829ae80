//! The keep-alive pools to the app (hyper's, one for HTTP/1.1 and one for
//! HTTP/2) for what cannot take a client connection's own app connection:
//! requests with a larger body, HTTP/2 clients' requests, requests the app
//! gets over HTTP/2 (gRPC, `proxy.app_http2`) and upgrades. Each event loop
//! has its own: hyper serves each pooled connection from a task spawned on
//! the runtime that opened it, so a pool shared by the loops would hand a
//! request from one loop to a connection task of the other — a cross-thread
//! wake-up each way per request, the kind of hand-off the loops exist to
//! avoid.
//!
//! Every connection dials the app ([`AppConnector`]), whatever authority
//! the request's URI names. hyper keys its pool by that authority and sends
//! it as HTTP/2's `:authority`, so a request to the app over HTTP/2 can
//! carry the host the client asked for, as it carries `Host` over HTTP/1.1
//! ([`LoopPool::admits`] bounds how many hosts a loop keeps apart).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::Authority;
use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tower_service::Service;

use super::super::body::CountingBody;
use super::IdleLimits;

/// hyper's pooled client, sending request bodies of type `B`.
pub type PooledClient<B = CountingBody> = Client<AppConnector, B>;

/// Most hosts a loop's pools keep apart. Each host the app is asked for
/// over HTTP/2 gets connections of its own (hyper's pool is keyed by it),
/// so past this many a client could open a connection to the app per
/// made-up `Host`; requests for further hosts name the app instead, and
/// carry the host in `x-forwarded-host`. A pod is reached under a handful
/// of names (the Service's short and full names, its IP).
const MAX_HOSTS: usize = 16;

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
/// reload changes their settings or the app's address (and only then: a
/// reload that keeps them keeps the open connections).
#[derive(Debug)]
pub struct LoopPool<B = CountingBody> {
    current: Mutex<Option<Built<B>>>,
    /// The hosts requests may name to the app (see [`MAX_HOSTS`]).
    hosts: Mutex<Vec<Authority>>,
}

/// The clients of one set of settings.
#[derive(Debug)]
struct Built<B> {
    settings: PoolSettings,
    /// The app's address, which every connection dials.
    upstream: Authority,
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
            hosts: Mutex::new(Vec::new()),
        }
    }
}

impl<B> LoopPool<B>
where
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// The loop's client for `settings` dialling `upstream`, speaking
    /// HTTP/2 to the app when `http2` is set and HTTP/1.1 otherwise.
    pub fn client(
        &self,
        settings: PoolSettings,
        upstream: &Authority,
        http2: bool,
    ) -> PooledClient<B> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let built = match &mut *current {
            Some(built) if built.settings == settings && built.upstream == *upstream => built,
            slot => slot.insert(Built {
                settings,
                upstream: upstream.clone(),
                http1: build(settings, upstream, false),
                http2: build(settings, upstream, true),
            }),
        };
        if http2 {
            built.http2.clone()
        } else {
            built.http1.clone()
        }
    }
}

impl<B> LoopPool<B> {
    /// Whether a request for `host` may name it to the app: it is one of
    /// the first [`MAX_HOSTS`] hosts this loop saw.
    pub fn admits(&self, host: &Authority) -> bool {
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        if hosts.contains(host) {
            true
        } else if hosts.len() < MAX_HOSTS {
            hosts.push(host.clone());
            true
        } else {
            false
        }
    }
}

/// Dials the app, whatever authority the request's URI names (see the
/// module doc).
#[derive(Debug, Clone)]
pub struct AppConnector {
    dial: HttpConnector,
    /// `http://<upstream>/`.
    app: Uri,
}

impl Service<Uri> for AppConnector {
    type Response = TokioIo<TcpStream>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.dial.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, _named: Uri) -> Self::Future {
        let connecting = self.dial.call(self.app.clone());
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}

fn build<B>(settings: PoolSettings, upstream: &Authority, http2: bool) -> PooledClient<B>
where
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut dial = HttpConnector::new();
    dial.set_connect_timeout(Some(settings.connect_timeout));
    dial.set_nodelay(true);
    let app = Uri::builder()
        .scheme("http")
        .authority(upstream.clone())
        .path_and_query("/")
        .build()
        .unwrap_or_else(|_| Uri::from_static("http://127.0.0.1/"));
    let connector = AppConnector { dial, app };
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
        let upstream: Authority = uri.parse::<Uri>().unwrap().authority().unwrap().clone();
        let pool = LoopPool::<Empty<Bytes>>::default();
        for _ in 0..3 {
            get(&pool.client(SETTINGS, &upstream, false), &uri).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection, reused");
        let changed = PoolSettings {
            max_idle: 8,
            ..SETTINGS
        };
        get(&pool.client(changed, &upstream, false), &uri).await;
        get(&pool.client(changed, &upstream, false), &uri).await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "new settings, a new pool, one connection again"
        );
    }

    #[tokio::test]
    async fn every_connection_dials_the_app_whatever_host_the_uri_names() {
        let (uri, accepted) = app().await;
        let upstream: Authority = uri.parse::<Uri>().unwrap().authority().unwrap().clone();
        let pool = LoopPool::<Empty<Bytes>>::default();
        let client = pool.client(SETTINGS, &upstream, false);
        for _ in 0..2 {
            get(&client, "http://shop.example.com/a").await;
        }
        get(&client, "http://shop.example.com:8080/b").await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "one connection to the app per host named, reused"
        );
    }

    #[test]
    fn a_loop_admits_its_first_hosts_only() {
        let pool = LoopPool::<Empty<Bytes>>::default();
        let host = |i: usize| {
            format!("host-{i}.example.com")
                .parse::<Authority>()
                .unwrap()
        };
        for i in 0..MAX_HOSTS {
            assert!(pool.admits(&host(i)), "host {i}");
        }
        assert!(!pool.admits(&host(MAX_HOSTS)), "one past the bound");
        assert!(pool.admits(&host(0)), "a host admitted before");
        assert!(
            pool.admits(&"HOST-1.example.com".parse().unwrap()),
            "hosts compare as DNS names do, whatever their case"
        );
    }
}
