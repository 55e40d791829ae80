//! The unit that flows through the pipeline: a JSON object plus where it came
//! from, what was wrong with it, and its hold on the acknowledgement path.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use super::ack::AckRef;
use super::fields::Fields;
use super::metrics::SourceMetrics;

/// A source as events refer to it: its name and its metric handles.
#[derive(Debug)]
pub struct SourceInfo {
    /// The `source` label.
    pub name: String,
    /// Handles for the per-source counters, looked up once at build time.
    pub metrics: SourceMetrics,
}

/// What was wrong with a line, as bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags(u8);

impl Flags {
    /// Not JSON (or not parseable): the line is in the message field.
    pub const PARSE_ERROR: Flags = Flags(1);
    /// Longer than `max_line_bytes`: cut there, the rest skipped.
    pub const TRUNCATED: Flags = Flags(2);
    /// Not valid UTF-8: invalid sequences replaced by U+FFFD.
    pub const INVALID_UTF8: Flags = Flags(4);
    /// Valid JSON but an array or a scalar, wrapped in the message field.
    pub const NOT_OBJECT: Flags = Flags(8);
    /// Nested deeper than the parser allows (128 levels).
    pub const DEPTH_EXCEEDED: Flags = Flags(16);
    /// Joined from several lines by the multiline stage.
    pub const MULTILINE: Flags = Flags(32);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Sets the bits of `other`.
    pub fn insert(&mut self, other: Flags) {
        self.0 |= other.0;
    }

    /// Whether no bit is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Where and when an event was read, and what was wrong with it.
#[derive(Debug, Clone)]
pub struct EventMeta {
    /// The source that read it.
    pub source: Arc<SourceInfo>,
    /// The file it was read from, for file sources.
    pub path: Option<Arc<Path>>,
    /// When it was read.
    pub read_at: SystemTime,
    /// Its size as read, in bytes (without the line ending).
    pub raw_len: usize,
    /// What was wrong with it.
    pub flags: Flags,
}

/// One log event.
#[derive(Debug, Clone)]
pub struct Event {
    /// The JSON object (empty until the parse stage has run on `raw`).
    pub fields: Fields,
    /// The line as read, before parsing; `None` once parsed (or for sources
    /// that deliver objects).
    pub raw: Option<Vec<u8>>,
    /// Where it came from.
    pub meta: EventMeta,
    ack: Option<AckRef>,
}

impl Event {
    /// An unparsed line.
    pub fn from_line(line: Vec<u8>, meta: EventMeta, ack: Option<AckRef>) -> Self {
        Self {
            fields: Fields::new(),
            raw: Some(line),
            meta,
            ack,
        }
    }

    /// An event that is already an object.
    pub fn from_fields(fields: Fields, meta: EventMeta, ack: Option<AckRef>) -> Self {
        Self {
            fields,
            raw: None,
            meta,
            ack,
        }
    }

    /// Marks the event durably taken (or finally rejected and counted) and
    /// releases its hold on the acknowledgement path. An event dropped
    /// without this call keeps its batch from being acknowledged.
    pub fn delivered(mut self) {
        if let Some(ack) = self.ack.take() {
            ack.delivered();
        }
    }

    /// Whether the event takes part in acknowledgement.
    pub fn has_ack(&self) -> bool {
        self.ack.is_some()
    }

    /// Takes the acknowledgement reference out, e.g. to move it to an event
    /// that merges this one (multiline).
    pub fn take_ack(&mut self) -> Option<AckRef> {
        self.ack.take()
    }
}

/// Marks every event of a batch delivered.
pub fn deliver_all(batch: Vec<Event>) {
    for event in batch {
        event.delivered();
    }
}
