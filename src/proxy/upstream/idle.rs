//! App connections outliving their client connection. When an HTTP/1.1
//! client connection closes, its own app connection (idle, its last
//! response ended cleanly) is kept in its event loop's [`IdleConnections`];
//! the next client connection of that loop takes it for its first request
//! instead of opening a TCP connection to the app. haproxy and nginx keep
//! idle server connections the same way: without it, every short-lived
//! client connection costs the app an `accept` and the request a connect
//! round trip.
//!
//! The set is bounded (`proxy.pool_max_idle` per loop, the oldest closed
//! first) and a connection idle for `proxy.pool_idle_timeout` is closed by
//! the loop's [`IdleConnections::close_expired`] task, which sleeps with no
//! wake-ups while the set is empty. A connection the app has closed is
//! found out when taken ([`AppConnection::still_open`]) and dropped.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use http::uri::Authority;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;

use super::connection::AppConnection;

/// The idle app connections of one event loop. Clones share the set.
#[derive(Debug, Clone)]
pub struct IdleConnections {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Oldest kept first.
    kept: Mutex<VecDeque<Kept>>,
    /// Told when the first connection is kept into an empty set.
    first: Notify,
    /// Connections kept, summed over every loop
    /// (`sidewatch_proxy_upstream_idle_connections`).
    count: Gauge,
}

#[derive(Debug)]
struct Kept {
    upstream: Authority,
    connection: AppConnection,
    /// When it is closed unless taken before.
    expires: Instant,
}

/// How many idle connections a loop keeps, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleLimits {
    /// At most this many per loop (`proxy.pool_max_idle`); 0 keeps none.
    pub max: usize,
    /// Each for at most this long after its last response (`proxy.pool_idle_timeout`).
    pub timeout: Duration,
}

impl IdleConnections {
    /// An empty set whose size is counted in `count`.
    pub fn new(count: Gauge) -> Self {
        Self {
            inner: Arc::new(Inner {
                kept: Mutex::new(VecDeque::new()),
                first: Notify::new(),
                count,
            }),
        }
    }

    /// Keeps `connection` to `upstream` (idle since its last response) for
    /// a later client connection, within `limits`.
    pub fn keep(&self, upstream: Authority, connection: AppConnection, limits: IdleLimits) {
        let expires = connection.idle_since() + limits.timeout;
        if limits.max == 0 || expires <= Instant::now() {
            return;
        }
        let mut kept = self.inner.lock();
        while kept.len() >= limits.max {
            drop(kept.pop_front());
            self.inner.count.dec();
        }
        if kept.is_empty() {
            self.inner.first.notify_one();
        }
        kept.push_back(Kept {
            upstream,
            connection,
            expires,
        });
        self.inner.count.inc();
    }

    /// The most recently kept open connection to `upstream`, if any
    /// (`check_now`: see [`AppConnection::still_open`]). Connections passed
    /// over on the way (expired, closed by the app, or to an upstream a
    /// reload replaced) are closed.
    pub fn take(&self, upstream: &Authority, check_now: bool) -> Option<AppConnection> {
        let now = Instant::now();
        let mut kept = self.inner.lock();
        while let Some(candidate) = kept.pop_back() {
            self.inner.count.dec();
            if candidate.expires > now
                && candidate.upstream == *upstream
                && candidate.connection.still_open(check_now)
            {
                return Some(candidate.connection);
            }
        }
        None
    }

    /// Closes every kept connection (the loop is stopping).
    pub fn clear(&self) {
        let mut kept = self.inner.lock();
        self.inner.count.dec_by(kept.len() as i64);
        kept.clear();
    }

    /// Closes connections as they expire, for as long as the loop runs:
    /// spawn it once on the loop's runtime.
    pub async fn close_expired(self) {
        loop {
            let next = {
                let now = Instant::now();
                let mut kept = self.inner.lock();
                let before = kept.len();
                kept.retain(|k| k.expires > now);
                self.inner.count.dec_by((before - kept.len()) as i64);
                kept.iter().map(|k| k.expires).min()
            };
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => self.inner.first.notified().await,
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Kept>> {
        // No code path panics while holding the lock with the set half-changed.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::coalesce::Coalescer;
    use tokio::net::TcpListener;

    const LONG: IdleLimits = IdleLimits {
        max: 2,
        timeout: Duration::from_secs(60),
    };

    /// A listener and `n` connections to it, with the accepted ends (kept
    /// open so the connections stay open).
    async fn connections(n: usize) -> (Authority, Vec<AppConnection>, Vec<tokio::net::TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let coalescer = Coalescer::new();
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let connection = AppConnection::connect(&upstream, Duration::from_secs(1), &coalescer)
                .await
                .unwrap();
            ours.push(connection);
            theirs.push(listener.accept().await.unwrap().0);
        }
        (upstream, ours, theirs)
    }

    #[tokio::test]
    async fn the_newest_is_taken_first_and_the_oldest_goes_past_the_limit() {
        let count = Gauge::default();
        let idle = IdleConnections::new(count.clone());
        let (upstream, ours, _theirs) = connections(3).await;
        let ports: Vec<u16> = ours.iter().map(AppConnection::local_port).collect();
        for connection in ours {
            idle.keep(upstream.clone(), connection, LONG);
        }
        assert_eq!(count.get(), 2, "the limit is 2");
        let newest = idle.take(&upstream, false).unwrap();
        assert_eq!(newest.local_port(), ports[2]);
        let next = idle.take(&upstream, false).unwrap();
        assert_eq!(next.local_port(), ports[1], "the oldest was closed");
        assert!(idle.take(&upstream, false).is_none());
        assert_eq!(count.get(), 0);
    }

    #[tokio::test]
    async fn connections_closed_by_the_app_or_to_another_upstream_are_not_taken() {
        let count = Gauge::default();
        let idle = IdleConnections::new(count.clone());
        let (upstream, mut ours, mut theirs) = connections(2).await;
        let other: Authority = "127.0.0.1:1".parse().unwrap();
        idle.keep(other, ours.pop().unwrap(), LONG);
        assert!(idle.take(&upstream, false).is_none(), "another upstream");
        assert_eq!(count.get(), 0, "and it was closed");

        let mut connection = ours.pop().unwrap();
        connection.set_idle_since(Instant::now() - Duration::from_secs(1));
        idle.keep(upstream.clone(), connection, LONG);
        drop(theirs.pop());
        drop(theirs.pop());
        // The close reaches the socket; `still_open` then sees it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(idle.take(&upstream, false).is_none(), "closed by the app");
    }

    #[tokio::test]
    async fn expired_connections_are_closed_by_the_task_and_none_are_kept_at_max_zero() {
        let count = Gauge::default();
        let idle = IdleConnections::new(count.clone());
        let task = tokio::spawn(idle.clone().close_expired());
        let (upstream, mut ours, _theirs) = connections(2).await;
        let none = IdleLimits { max: 0, ..LONG };
        idle.keep(upstream.clone(), ours.pop().unwrap(), none);
        assert_eq!(count.get(), 0);
        let short = IdleLimits {
            max: 2,
            timeout: Duration::from_millis(100),
        };
        idle.keep(upstream.clone(), ours.pop().unwrap(), short);
        assert_eq!(count.get(), 1);
        let deadline = Instant::now() + Duration::from_secs(5);
        while count.get() != 0 {
            assert!(Instant::now() < deadline, "never closed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(idle.take(&upstream, false).is_none());
        task.abort();
    }
}
