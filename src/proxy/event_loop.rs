//! The proxy's event loops: `proxy.threads` of them, each a single-threaded
//! tokio runtime on a thread of its own that serves the client connections
//! handed to it from start to end. They share nothing per request — no
//! work stealing, no wake-up from one thread to another, one write
//! [`Coalescer`] each — which is how nginx workers and haproxy threads are
//! laid out. Loop 0 also accepts, and deals the connections out in turn;
//! moving one to another loop costs two `epoll_ctl` calls, once per
//! connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::coalesce::Coalescer;
use super::timer::LoopTimer;
use super::{connection_reason, forward, upstream, ProxyHandle, DRAIN_TIMEOUT};
use crate::accept;

/// A connection accepted by loop 0 for another loop to serve.
type Handed = (std::net::TcpStream, SocketAddr);

/// Starts `threads` loops serving what `listener` accepts until `stop`;
/// the receivers resolve as each loop has drained and ended.
pub fn start(
    listener: std::net::TcpListener,
    handle: ProxyHandle,
    builder: auto::Builder<TokioExecutor>,
    stop: CancellationToken,
    threads: usize,
) -> Vec<oneshot::Receiver<()>> {
    let mut ended = Vec::new();
    let mut others = Vec::new();
    for index in 1..threads.max(1) {
        let (to_loop, handed) = mpsc::unbounded_channel::<Handed>();
        let event_loop = EventLoop::new(handle.clone(), builder.clone());
        let stop = stop.clone();
        if let Some(done) = spawn(
            index,
            async move { event_loop.serve_handed(handed, stop).await },
        ) {
            others.push(to_loop);
            ended.push(done);
        }
    }
    let event_loop = EventLoop::new(handle, builder);
    let first = spawn(0, async move {
        match TcpListener::from_std(listener) {
            Ok(listener) => event_loop.serve_accepting(listener, others, stop).await,
            Err(error) => tracing::error!(%error, "proxy: cannot register the listener"),
        }
    });
    ended.extend(first);
    ended
}

/// Runs `serve` on a new thread's single-threaded runtime.
fn spawn(
    index: usize,
    serve: impl std::future::Future<Output = ()> + Send + 'static,
) -> Option<oneshot::Receiver<()>> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, index, "proxy: cannot start an event loop");
            return None;
        }
    };
    let (done, ended) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name(format!("proxy-loop-{index}"))
        .spawn(move || {
            crate::heap::use_own_heap();
            runtime.block_on(serve);
            let _ = done.send(());
        });
    match thread {
        Ok(_) => Some(ended),
        Err(error) => {
            tracing::error!(%error, index, "proxy: cannot start an event loop thread");
            None
        }
    }
}

/// One loop's state: its connections' graceful shutdown, its coalescer,
/// its timer, its idle app connections and its keep-alive pool.
struct EventLoop {
    handle: ProxyHandle,
    builder: auto::Builder<TokioExecutor>,
    graceful: GracefulShutdown,
    coalescer: Coalescer,
    timer: LoopTimer,
    idle: upstream::IdleConnections,
    pool: Arc<upstream::LoopPool>,
}

impl EventLoop {
    fn new(handle: ProxyHandle, mut builder: auto::Builder<TokioExecutor>) -> Self {
        let timer = LoopTimer::default();
        builder.http1().timer(timer.clone());
        let idle = upstream::IdleConnections::new(handle.get().metrics.upstream_idle.clone());
        Self {
            handle,
            builder,
            graceful: GracefulShutdown::new(),
            coalescer: Coalescer::new(),
            timer,
            idle,
            pool: Arc::default(),
        }
    }

    /// Loop 0: accepts until `stop`, serving every `others.len() + 1`-th
    /// connection itself and handing the rest out in turn.
    async fn serve_accepting(
        self,
        listener: TcpListener,
        others: Vec<mpsc::UnboundedSender<Handed>>,
        stop: CancellationToken,
    ) {
        let tasks = self.spawn_tasks();
        let mut turn = 0usize;
        while let Some((stream, peer)) = accept::next_or_stop(&listener, &stop, "proxy").await {
            turn = (turn + 1) % (others.len() + 1);
            match turn.checked_sub(1).map(|other| &others[other]) {
                Some(other) => match stream.into_std() {
                    Ok(stream) => {
                        if let Err(mpsc::error::SendError((stream, peer))) =
                            other.send((stream, peer))
                        {
                            // That loop has ended: serve it here.
                            if let Ok(stream) = TcpStream::from_std(stream) {
                                self.serve_connection(stream, peer);
                            }
                        }
                    }
                    Err(error) => tracing::debug!(%error, %peer, "proxy: cannot hand over"),
                },
                None => self.serve_connection(stream, peer),
            }
        }
        drop(listener);
        drop(others);
        self.drain(tasks).await;
    }

    /// Loops 1..: serve the connections loop 0 hands over until `stop`.
    async fn serve_handed(
        self,
        mut handed: mpsc::UnboundedReceiver<Handed>,
        stop: CancellationToken,
    ) {
        let tasks = self.spawn_tasks();
        loop {
            let (stream, peer) = tokio::select! {
                next = handed.recv() => match next {
                    Some(next) => next,
                    None => break,
                },
                () = stop.cancelled() => break,
            };
            match TcpStream::from_std(stream) {
                Ok(stream) => self.serve_connection(stream, peer),
                Err(error) => tracing::debug!(%error, %peer, "proxy: cannot take over"),
            }
        }
        self.drain(tasks).await;
    }

    /// Starts the loop's own tasks: the write flusher, the timer and the
    /// closing of expired idle app connections.
    fn spawn_tasks(&self) -> LoopTasks {
        LoopTasks {
            flusher: tokio::spawn(self.coalescer.clone().flusher()),
            timer: tokio::spawn(self.timer.clone().run()),
            idle_expiry: tokio::spawn(self.idle.clone().close_expired()),
        }
    }

    /// Serves one client connection on this loop.
    fn serve_connection(&self, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let handle = self.handle.clone();
        let pinned = Arc::new(upstream::Pinned::new(
            self.coalescer.clone(),
            self.idle.clone(),
            handle.get().pool_settings.idle_limits(),
        ));
        let on_loop = forward::OnLoop {
            timer: self.timer.clone(),
            pool: self.pool.clone(),
        };
        let client = forward::Client::new(peer);
        let service = service_fn(move |request| {
            let client = client.clone();
            forward::handle(
                handle.get(),
                client,
                pinned.clone(),
                on_loop.clone(),
                request,
            )
        });
        let connection = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(self.coalescer.wrap(stream)), service)
            .into_owned();
        let connection = self.graceful.watch(connection);
        let handle = self.handle.clone();
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                let reason = connection_reason(&*error);
                handle.get().metrics.connection_error(reason);
                tracing::debug!(%error, %peer, reason, "proxy: client connection error");
            }
        });
    }

    /// Lets in-flight requests finish (bounded by [`DRAIN_TIMEOUT`]), closes
    /// idle connections and tunnels, and sends what is still held.
    async fn drain(self, tasks: LoopTasks) {
        if tokio::time::timeout(DRAIN_TIMEOUT, self.graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("proxy: requests still in flight after the drain timeout");
        }
        let tunnels = self.handle.get().tunnels.clone();
        tunnels.close();
        let _ = tokio::time::timeout(Duration::from_millis(100), tunnels.wait()).await;
        tasks.idle_expiry.abort();
        self.idle.clear();
        self.coalescer.close();
        let _ = tasks.flusher.await;
        tasks.timer.abort(); // no request is left to time out
    }
}

/// The tasks every loop runs beside its connections.
struct LoopTasks {
    flusher: JoinHandle<()>,
    timer: JoinHandle<()>,
    idle_expiry: JoinHandle<()>,
}
