//! The stdin source: `app | sidewatch run`. Lines are not acknowledged (a
//! pipe cannot be re-read); the source ends at end of input (and when every
//! source has ended, sidewatch stops), or at shutdown after passing on a
//! last line that lacks its newline.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::{Source, SourceContext};
use crate::logs::event::{EventMeta, Flags, SourceInfo};
use crate::logs::tail::{Line, LineSplitter};
use crate::logs::Event;

/// Bytes read at a time.
const READ_BYTES: usize = 64 * 1024;

/// Reads lines from standard input (or any reader, for tests).
pub struct StdinSource<R = tokio::io::Stdin> {
    reader: R,
    info: Arc<SourceInfo>,
    max_line_bytes: usize,
}

impl StdinSource {
    /// A source reading the process's standard input.
    pub fn new(info: Arc<SourceInfo>, max_line_bytes: usize) -> Self {
        Self::with_reader(tokio::io::stdin(), info, max_line_bytes)
    }
}

impl<R: AsyncRead + Unpin + Send + 'static> StdinSource<R> {
    /// A source reading `reader`.
    pub fn with_reader(reader: R, info: Arc<SourceInfo>, max_line_bytes: usize) -> Self {
        Self {
            reader,
            info,
            max_line_bytes,
        }
    }
}

impl<R: AsyncRead + Unpin + Send + 'static> Source for StdinSource<R> {
    async fn run(mut self, ctx: SourceContext) {
        let mut splitter = LineSplitter::new(self.max_line_bytes, 0);
        let mut buffer = vec![0u8; READ_BYTES];
        loop {
            let read = tokio::select! {
                read = self.reader.read(&mut buffer) => read,
                () = ctx.stop.cancelled() => {
                    // A last line without its newline is still a line.
                    let _ = send(&self.info, &ctx, splitter.finish().into_iter().collect()).await;
                    break;
                }
            };
            let mut lines = Vec::new();
            match read {
                Ok(0) | Err(_) => {
                    lines.extend(splitter.finish());
                    let _ = send(&self.info, &ctx, lines).await;
                    break;
                }
                Ok(n) => {
                    self.info.metrics.bytes.inc_by(n as u64);
                    splitter.feed(&buffer[..n], &mut lines);
                }
            }
            if !send(&self.info, &ctx, lines).await {
                break;
            }
        }
    }
}

async fn send(info: &Arc<SourceInfo>, ctx: &SourceContext, lines: Vec<Line>) -> bool {
    if lines.is_empty() {
        return true;
    }
    let read_at = SystemTime::now();
    let batch = lines
        .into_iter()
        .map(|line| {
            let mut flags = Flags::default();
            if line.truncated {
                flags.insert(Flags::TRUNCATED);
            }
            let meta = EventMeta {
                source: info.clone(),
                path: None,
                read_at,
                raw_len: line.len,
                flags,
            };
            Event::from_line(line.bytes, meta, None)
        })
        .collect();
    tokio::select! {
        sent = ctx.out.send(batch) => sent.is_ok(),
        () = ctx.abort.cancelled() => false,
    }
}
