//! The discard sink: takes every event and forwards none, for pipelines that
//! only derive metrics from logs (`[[log_metrics]]`) and leave shipping the
//! logs themselves to someone else. Events are acknowledged at once, so file
//! checkpoints advance.

use super::{Sink, SinkError};
use crate::logs::event::{deliver_all, Event};

/// Drops every event, acknowledged.
#[derive(Debug, Default)]
pub struct DiscardSink;

impl Sink for DiscardSink {
    async fn write(&mut self, batch: Vec<Event>) -> Result<(), SinkError> {
        deliver_all(batch);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
