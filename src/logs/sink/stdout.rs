//! The stdout sink: JSON lines for node-level collectors, one write per
//! batch, flushed before the batch is acknowledged. sidewatch's own logs go
//! to stderr, so the two never mix.

use std::io::Write;

use super::{encode_json_line, Sink, SinkError};
use crate::logs::event::Event;

/// Writes JSON lines to standard output.
#[derive(Debug, Default)]
pub struct StdoutSink {
    buffer: Vec<u8>,
}

impl Sink for StdoutSink {
    async fn write(&mut self, batch: &mut Vec<Event>) -> Result<(), SinkError> {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        for event in batch.iter() {
            encode_json_line(event, &mut buffer);
        }
        let (buffer, result) = tokio::task::spawn_blocking(move || {
            let mut stdout = std::io::stdout().lock();
            let result = stdout.write_all(&buffer).and_then(|()| stdout.flush());
            (buffer, result)
        })
        .await
        .map_err(|e| SinkError::Io(std::io::Error::other(e)))?;
        self.buffer = buffer;
        result?;
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
