//! The TCP intake source: NDJSON over plain TCP connections (default
//! `127.0.0.1:4792`, for the app in the same pod). Lines are not
//! acknowledged to the client (TCP has no answer); back-pressure instead: a
//! full pipeline stops this source reading, the socket buffers fill and the
//! client's writes block. Over-long lines are cut and flagged; a client may
//! disconnect at any point (a last line without its newline is still a line).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use super::{Source, SourceContext};
use crate::logs::ack::AckToken;
use crate::logs::event::{EventMeta, Flags, SourceInfo};
use crate::logs::tail::{Line, LineSplitter};
use crate::logs::Event;

/// Bytes read at a time per connection.
const READ_BYTES: usize = 64 * 1024;

/// Accepts connections and reads NDJSON lines from each.
#[derive(Debug)]
pub struct TcpSource {
    listener: std::net::TcpListener,
    info: Arc<SourceInfo>,
    max_line_bytes: usize,
    max_connections: usize,
}

impl TcpSource {
    /// Binds `addr` now (so a taken port is a start-up error).
    pub fn bind(
        addr: SocketAddr,
        info: Arc<SourceInfo>,
        max_line_bytes: usize,
        max_connections: usize,
    ) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(Self {
            listener,
            info,
            max_line_bytes,
            max_connections,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl Source for TcpSource {
    async fn run(self, ctx: SourceContext) {
        let listener = match TcpListener::from_std(self.listener) {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(source = %self.info.name, %error, "cannot listen");
                return;
            }
        };
        let slots = Arc::new(Semaphore::new(self.max_connections));
        let connections = TaskTracker::new();
        loop {
            let (stream, peer) = tokio::select! {
                () = ctx.stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(source = %self.info.name, %error, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                tracing::warn!(source = %self.info.name, %peer, limit = self.max_connections, "too many connections; closing");
                continue;
            };
            let info = Arc::clone(&self.info);
            let ctx = SourceContext {
                out: ctx.out.clone(),
                stop: ctx.stop.clone(),
                abort: ctx.abort.clone(),
            };
            let max_line = self.max_line_bytes;
            connections.spawn(async move {
                read_connection(stream, &info, &ctx, max_line).await;
                drop(slot);
            });
        }
        drop(listener);
        connections.close();
        connections.wait().await;
    }
}

/// Reads one connection until it closes or intake stops.
async fn read_connection(
    mut stream: TcpStream,
    info: &Arc<SourceInfo>,
    ctx: &SourceContext,
    max_line: usize,
) {
    let mut splitter = LineSplitter::new(max_line, 0);
    let mut buffer = vec![0u8; READ_BYTES];
    loop {
        let read = tokio::select! {
            read = stream.read(&mut buffer) => read,
            () = ctx.stop.cancelled() => {
                let _ = send(info, ctx, splitter.finish().into_iter().collect()).await;
                return;
            }
        };
        let mut lines = Vec::new();
        match read {
            Ok(0) | Err(_) => {
                lines.extend(splitter.finish());
                let _ = send(info, ctx, lines).await;
                return;
            }
            Ok(n) => {
                info.metrics.bytes.inc_by(n as u64);
                splitter.feed(&buffer[..n], &mut lines);
            }
        }
        // Not reading while this waits: back-pressure reaches the client.
        if !send(info, ctx, lines).await {
            return;
        }
    }
}

/// Turns lines into events of `info`, holding `token` when given.
pub(super) fn events(
    info: &Arc<SourceInfo>,
    lines: Vec<Line>,
    token: Option<&Arc<AckToken>>,
) -> Vec<Event> {
    let read_at = SystemTime::now();
    lines
        .into_iter()
        .map(|line| {
            let mut flags = Flags::default();
            if line.truncated {
                flags.insert(Flags::TRUNCATED);
            }
            let meta = EventMeta {
                source: Arc::clone(info),
                path: None,
                read_at,
                raw_len: line.len,
                flags,
            };
            Event::from_line(line.bytes, meta, token.map(AckToken::reference))
        })
        .collect()
}

async fn send(info: &Arc<SourceInfo>, ctx: &SourceContext, lines: Vec<Line>) -> bool {
    let batch = events(info, lines, None);
    if batch.is_empty() {
        return true;
    }
    tokio::select! {
        sent = ctx.out.send(batch) => sent.is_ok(),
        () = ctx.abort.cancelled() => false,
    }
}
