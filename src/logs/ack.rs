//! The acknowledgement path from sinks back to sources.
//!
//! A source gives each batch it reads (a file chunk, a request) one
//! [`AckToken`]; every event of the batch, and every copy of it routed to a
//! sink, holds an [`AckRef`] to it. A sink calls [`Event::delivered`] once it
//! has durably taken the event (written and flushed, fsync'd in a disk
//! buffer, or answered by the remote end — or finally rejected and counted).
//! When the last reference goes, the token reports [`Acked`] to the source:
//! `delivered` is true only if every reference was marked delivered. An
//! event dropped anywhere without that mark (a failed write, an abort at
//! shutdown) makes its whole batch undelivered, so a checkpoint never moves
//! past it and it is read again after a restart: duplicates are possible,
//! loss is not.
//!
//! [`Event::delivered`]: super::Event::delivered

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

/// What a token reports to its source when its last reference is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    /// Which stream the batch came from (a file generation, a connection).
    pub stream: u64,
    /// Start of the batch in the stream (a byte offset for files).
    pub start: u64,
    /// End of the batch in the stream (exclusive).
    pub end: u64,
    /// Whether every event of the batch was delivered.
    pub delivered: bool,
}

/// One batch's acknowledgement, shared by its events.
#[derive(Debug)]
pub struct AckToken {
    stream: u64,
    start: u64,
    end: u64,
    read_at: Instant,
    undelivered: AtomicBool,
    tx: UnboundedSender<Acked>,
}

impl AckToken {
    /// A token for the range `start..end` of `stream`, reported on `tx`.
    pub fn new(stream: u64, start: u64, end: u64, tx: UnboundedSender<Acked>) -> Arc<Self> {
        Arc::new(Self {
            stream,
            start,
            end,
            read_at: Instant::now(),
            undelivered: AtomicBool::new(false),
            tx,
        })
    }

    /// A reference for one event. The creator's own `Arc` does not count:
    /// a batch whose events were all skipped (empty lines) acknowledges at once.
    pub fn reference(self: &Arc<Self>) -> AckRef {
        AckRef {
            token: Some(Arc::clone(self)),
        }
    }

    /// When the batch was read.
    pub fn read_at(&self) -> Instant {
        self.read_at
    }
}

impl Drop for AckToken {
    fn drop(&mut self) {
        let _ = self.tx.send(Acked {
            stream: self.stream,
            start: self.start,
            end: self.end,
            delivered: !self.undelivered.load(Ordering::Acquire),
        });
    }
}

/// One event's (or one sink copy's) hold on its batch's token. Dropping it
/// without [`AckRef::delivered`] marks the batch undelivered.
#[derive(Debug)]
pub struct AckRef {
    token: Option<Arc<AckToken>>,
}

impl AckRef {
    /// Marks this reference delivered and releases it.
    pub fn delivered(mut self) {
        self.token = None;
    }

    /// When the batch this event belongs to was read.
    pub fn read_at(&self) -> Option<Instant> {
        self.token.as_ref().map(|t| t.read_at)
    }
}

impl Clone for AckRef {
    /// A new, separate reference (for a copy routed to another sink).
    fn clone(&self) -> Self {
        Self {
            token: self.token.clone(),
        }
    }
}

impl Drop for AckRef {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            token.undelivered.store(true, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acked_when_every_reference_is_delivered() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let token = AckToken::new(7, 10, 20, tx);
        let a = token.reference();
        let b = a.clone();
        drop(token);
        a.delivered();
        assert!(rx.try_recv().is_err(), "one reference is still out");
        b.delivered();
        let acked = rx.try_recv().unwrap();
        assert_eq!((acked.stream, acked.start, acked.end), (7, 10, 20));
        assert!(acked.delivered);
    }

    #[test]
    fn a_dropped_reference_makes_the_batch_undelivered() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let token = AckToken::new(1, 0, 5, tx);
        let a = token.reference();
        let b = token.reference();
        drop(token);
        a.delivered();
        drop(b);
        assert!(!rx.try_recv().unwrap().delivered);
    }

    #[test]
    fn a_batch_without_events_is_acknowledged_at_once() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        drop(AckToken::new(1, 0, 5, tx));
        assert!(rx.try_recv().unwrap().delivered);
    }
}
