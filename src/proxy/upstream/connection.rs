//! One HTTP/1.1 connection to the app, driven from the task of the client
//! connection it is pinned to: write a bodiless request head, read the
//! response head; the body is read on by [`super::AppBody`].

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http::uri::Authority;
use http::{request, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::super::coalesce::{CoalescedStream, Coalescer};
use super::head::{self, ResponseHead};
use super::UpstreamError;

/// Room kept free in the read buffer before each read.
const READ_RESERVE: usize = 16 * 1024;
/// An idle connection is checked for a close from the app before reuse once
/// it has been idle this long (a busy one skips the check, which costs a
/// `recv`; a request that meets a close anyway is covered by the retry in
/// [`super::Pinned::send`]).
const IDLE_CHECK_AFTER: Duration = Duration::from_millis(100);

/// A connection to the app.
#[derive(Debug)]
pub struct AppConnection {
    stream: CoalescedStream,
    /// Bytes read from the app and not consumed yet.
    read: BytesMut,
    /// The request head being written (kept for its capacity).
    head: Vec<u8>,
    /// When the last response ended.
    idle_since: Instant,
}

/// A request that got no response.
#[derive(Debug)]
pub struct Failure {
    /// Whether any byte of a response had arrived.
    pub answered: bool,
    /// What went wrong.
    pub error: UpstreamError,
}

impl AppConnection {
    /// Connects to `upstream` within `timeout`; writes go through `coalescer`.
    pub async fn connect(
        upstream: &Authority,
        timeout: Duration,
        coalescer: &Coalescer,
    ) -> Result<Self, UpstreamError> {
        let stream =
            match tokio::time::timeout(timeout, TcpStream::connect(upstream.as_str())).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) if error.kind() == io::ErrorKind::TimedOut => {
                    return Err(UpstreamError::ConnectTimeout)
                }
                Ok(Err(error)) => return Err(UpstreamError::Connect(error)),
                Err(_) => return Err(UpstreamError::ConnectTimeout),
            };
        let _ = stream.set_nodelay(true);
        Ok(Self {
            stream: coalescer.wrap(stream),
            read: BytesMut::with_capacity(READ_RESERVE),
            head: Vec::with_capacity(1024),
            idle_since: Instant::now(),
        })
    }

    /// Sends the request `request` with its whole `body` (empty for a
    /// bodiless one) and reads the response head, skipping interim (1xx)
    /// responses.
    pub async fn exchange(
        &mut self,
        request: &request::Parts,
        body: &[u8],
    ) -> Result<ResponseHead, Failure> {
        head::encode_request(request, &mut self.head);
        self.head.extend_from_slice(body);
        let unanswered = |error| Failure {
            answered: false,
            error: UpstreamError::Closed(error),
        };
        self.stream
            .write_all(&self.head)
            .await
            .map_err(unanswered)?;
        let mut answered = !self.read.is_empty();
        loop {
            let parsed = head::parse_response(&mut self.read, &request.method)
                .map_err(|error| Failure { answered, error })?;
            match parsed {
                Some(head) if head.status == StatusCode::SWITCHING_PROTOCOLS => {
                    return Err(Failure {
                        answered: true,
                        error: UpstreamError::InvalidResponse("101 to a request without Upgrade"),
                    })
                }
                Some(head) if head.status.is_informational() => continue,
                Some(head) => return Ok(head),
                None => {}
            }
            match poll_fn(|cx| self.poll_read(cx)).await {
                Ok(0) => {
                    let error = io::Error::new(io::ErrorKind::UnexpectedEof, "closed by the app");
                    return Err(Failure {
                        answered,
                        error: UpstreamError::Closed(error),
                    });
                }
                Ok(_) => answered = true,
                Err(error) => {
                    return Err(Failure {
                        answered,
                        error: UpstreamError::Closed(error),
                    })
                }
            }
        }
    }

    /// Reads what the app sent into the read buffer: `Ok(0)` once it closed.
    pub fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.read.capacity() - self.read.len() < READ_RESERVE / 4 {
            self.read.reserve(READ_RESERVE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.read)
    }

    /// The bytes read and not consumed yet.
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.read
    }

    /// Marks the end of a response: the connection is idle from now.
    pub fn idle(&mut self) {
        self.idle_since = Instant::now();
    }

    /// When the last response ended (or the connection was opened).
    pub fn idle_since(&self) -> Instant {
        self.idle_since
    }

    /// Pretends the last response ended at `at`.
    #[cfg(test)]
    pub fn set_idle_since(&mut self, at: Instant) {
        self.idle_since = at;
    }

    /// The local port of the socket, which tells connections apart.
    #[cfg(test)]
    pub fn local_port(&self) -> u16 {
        self.stream.local_port()
    }

    /// Whether an idle connection can take a request: not when the app has
    /// closed it or sent bytes nobody asked for. Connections idle for less
    /// than [`IDLE_CHECK_AFTER`] are taken as open unless `check_now` (a
    /// request that may not be sent twice).
    pub fn still_open(&self, check_now: bool) -> bool {
        if !self.read.is_empty() {
            return false;
        }
        if !check_now && self.idle_since.elapsed() < IDLE_CHECK_AFTER {
            return true;
        }
        // `try_read` costs no syscall unless the reactor saw the socket readable.
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}
