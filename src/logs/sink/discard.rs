//! The discard sink: takes every event and forwards none, for pipelines that
//! only derive metrics from logs (`[[log_metrics]]`) and leave shipping the
//! logs themselves to someone else. Events are acknowledged at once (the
//! driver marks them delivered), so file checkpoints advance.

use super::{Sink, SinkError};
use crate::logs::event::Event;

/// Drops every event, acknowledged.
#[derive(Debug, Default)]
pub struct DiscardSink;

impl Sink for DiscardSink {
    async fn write(&mut self, _batch: &mut Vec<Event>) -> Result<(), SinkError> {
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
