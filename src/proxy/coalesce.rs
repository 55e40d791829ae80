//! Write coalescing for the proxy's sockets. A small write (a response
//! head and a short body, a request head) is not sent at once but held
//! until the proxy's event loop has run the tasks that the last batch of
//! I/O readiness woke; then the held writes of every connection go out one
//! after another. The [`Coalescer`]'s flusher task, woken by the first
//! write held, runs after the tasks queued before it, so "then" is the end
//! of that batch, whatever its size, and never a timer.
//!
//! Why: under load one readiness batch carries requests of many client
//! connections. Sent as each is forwarded, some microseconds apart, every
//! write finds the peer (the app, or the client) asleep again and wakes it:
//! a context switch per request on each side. Sent back to back, the first
//! write wakes the peer and the rest arrive while it runs. haproxy sends at
//! the end of its loop iteration and Redis writes replies in `beforeSleep`
//! for the same reason. A lone request pays one task poll.
//!
//! Nothing is lost or reordered: a write too large to hold first sends
//! what is held, then goes straight to the socket; a held write that meets
//! a full socket wakes its connection's task, whose next write, flush or
//! read finishes it with real back-pressure; shutdown sends what is held
//! first.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// A single write up to this size is held; a larger one goes straight out.
const HOLD_MAX_WRITE: usize = 8 * 1024;
/// At most this much is held per socket: a write that would pass it sends
/// what is held first.
const HOLD_LIMIT: usize = 16 * 1024;
/// A held buffer that grew past this is given back once sent, so an idle
/// connection keeps no large buffer.
const KEEP_CAPACITY: usize = 2 * 1024;

/// The proxy's write coalescer: the sockets with held writes, and the task
/// that sends them (see the module doc). One per proxy event loop.
#[derive(Clone, Debug, Default)]
pub struct Coalescer {
    shared: Arc<Held>,
}

#[derive(Debug, Default)]
struct Held {
    /// Sockets with held bytes, in the order their first write was held.
    outboxes: Mutex<Vec<Arc<Outbox>>>,
    /// Wakes the flusher when the first socket is added.
    wake: Notify,
    /// Set by [`Coalescer::close`]: the flusher sends what is held and ends.
    closed: AtomicBool,
}

impl Coalescer {
    /// A coalescer whose [`flusher`](Self::flusher) is not running yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wraps a connected socket so that its writes are coalesced.
    pub fn wrap(&self, stream: TcpStream) -> CoalescedStream {
        let (read, write) = stream.into_split();
        CoalescedStream {
            read,
            outbox: Arc::new(Outbox {
                state: Mutex::new(OutboxState {
                    write,
                    held: Vec::new(),
                    queued: false,
                    waker: None,
                    error: None,
                }),
            }),
            coalescer: self.clone(),
        }
    }

    /// Sends held writes at the end of each batch until [`close`](Self::close);
    /// spawn it on the runtime the wrapped sockets are polled on.
    pub async fn flusher(self) {
        let mut batch = Vec::new();
        loop {
            self.shared.wake.notified().await;
            std::mem::swap(&mut batch, &mut *lock(&self.shared.outboxes));
            for outbox in batch.drain(..) {
                outbox.send_held();
            }
            if self.shared.closed.load(Ordering::Acquire) && lock(&self.shared.outboxes).is_empty()
            {
                return;
            }
        }
    }

    /// Ends the flusher once it has sent what is held.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }

    /// Adds `outbox` to the next batch.
    fn hold(&self, outbox: Arc<Outbox>) {
        let mut outboxes = lock(&self.shared.outboxes);
        if outboxes.is_empty() {
            self.shared.wake.notify_one();
        }
        outboxes.push(outbox);
    }
}

/// A socket whose small writes wait for the end of the batch (see the
/// module doc); reads go straight to the socket.
#[derive(Debug)]
pub struct CoalescedStream {
    read: OwnedReadHalf,
    outbox: Arc<Outbox>,
    coalescer: Coalescer,
}

/// The write side of a socket and what is held for it.
#[derive(Debug)]
struct Outbox {
    state: Mutex<OutboxState>,
}

#[derive(Debug)]
struct OutboxState {
    write: OwnedWriteHalf,
    /// Bytes accepted and not sent yet.
    held: Vec<u8>,
    /// Whether this outbox is in the coalescer's next batch.
    queued: bool,
    /// The task that last wrote, woken when its held bytes met a full
    /// socket or an error.
    waker: Option<Waker>,
    /// An error met while sending held bytes, reported by the next call.
    error: Option<io::Error>,
}

impl Outbox {
    fn state(&self) -> MutexGuard<'_, OutboxState> {
        lock(&self.state)
    }

    /// The flusher's part: sends the held bytes; on a full socket or an
    /// error, wakes the connection's task to carry on.
    fn send_held(&self) {
        let mut state = self.state();
        state.queued = false;
        if state.held.is_empty() {
            return;
        }
        // No task of this socket is being polled: a full socket registers
        // nobody here, and the task woken below registers itself.
        let mut cx = Context::from_waker(Waker::noop());
        match state.drain(&mut cx) {
            Poll::Ready(Ok(())) => return,
            Poll::Ready(Err(error)) => state.error = Some(error),
            Poll::Pending => {}
        }
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }
}

impl OutboxState {
    /// Writes out everything held.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            match ready!(Pin::new(&mut self.write).poll_write(cx, &self.held)) {
                Ok(0) => {
                    self.held.clear();
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Ok(n) => {
                    self.held.drain(..n);
                }
                Err(error) => {
                    self.held.clear();
                    return Poll::Ready(Err(error));
                }
            }
        }
        if self.held.capacity() > KEEP_CAPACITY {
            self.held = Vec::new();
        }
        Poll::Ready(Ok(()))
    }

    /// Held bytes the flusher could not send: the caller's task sends them
    /// now, registering for writability.
    fn finish_unqueued(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(error) = self.error.take() {
            return Poll::Ready(Err(error));
        }
        if self.queued {
            return Poll::Ready(Ok(()));
        }
        self.drain(cx)
    }

    fn remember(&mut self, waker: &Waker) {
        match &self.waker {
            Some(known) if known.will_wake(waker) => {}
            _ => self.waker = Some(waker.clone()),
        }
    }
}

impl CoalescedStream {
    /// Reads without waiting: `WouldBlock` unless the socket has bytes (or
    /// a close) to give.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.read.try_read(buf)
    }

    /// The local port of the socket.
    #[cfg(test)]
    pub fn local_port(&self) -> u16 {
        self.read.local_addr().map_or(0, |addr| addr.port())
    }
}

impl AsyncRead for CoalescedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        {
            // A reader waiting for an answer keeps its request moving.
            let mut state = this.outbox.state();
            if let Poll::Ready(Err(error)) = state.finish_unqueued(cx) {
                state.error = Some(error);
            }
        }
        Pin::new(&mut this.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for CoalescedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut state = this.outbox.state();
        ready!(state.finish_unqueued(cx))?;
        if data.len() <= HOLD_MAX_WRITE && state.held.len() + data.len() <= HOLD_LIMIT {
            state.held.extend_from_slice(data);
            state.remember(cx.waker());
            if !state.queued {
                state.queued = true;
                drop(state);
                this.coalescer.hold(this.outbox.clone());
            }
            return Poll::Ready(Ok(data.len()));
        }
        ready!(state.drain(cx))?;
        Pin::new(&mut state.write).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.outbox.state();
        // Held bytes in the next batch count as flushed: they go out when
        // this batch of tasks has run.
        ready!(state.finish_unqueued(cx))?;
        Pin::new(&mut state.write).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.outbox.state();
        if let Some(error) = state.error.take() {
            return Poll::Ready(Err(error));
        }
        ready!(state.drain(cx))?;
        Pin::new(&mut state.write).poll_shutdown(cx)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
