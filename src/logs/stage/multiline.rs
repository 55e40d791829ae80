//! *multiline* (optional): joins continuation lines (by default lines that
//! start with whitespace, `Caused by:` or `at `: stack traces) to the line
//! before them, per stream, before parsing. A joined event stops growing at
//! `max_event_bytes` (it is flagged truncated) and is emitted when the next
//! non-continuation line arrives or after `flush_timeout` of silence.
//!
//! Acknowledgement: a joined event keeps the hold of its first line, the
//! earliest of its lines; since a checkpoint never passes the lowest pending
//! range, that hold alone covers every line in it.

use std::time::{Duration, Instant};

use regex::bytes::Regex;

use crate::config::logs::MultilineConfig;
use crate::logs::event::{Event, Flags};

/// Joins the lines of one stream.
#[derive(Debug)]
pub struct Joiner {
    continuation: Regex,
    max_bytes: usize,
    timeout: Duration,
    pending: Option<(Event, Instant)>,
}

impl Joiner {
    /// A joiner; the config passed validation, so the regex compiles.
    pub fn new(config: &MultilineConfig) -> Result<Self, regex::Error> {
        Ok(Self {
            continuation: Regex::new(&config.continuation)?,
            max_bytes: config.max_event_bytes,
            timeout: config.flush_timeout,
            pending: None,
        })
    }

    /// Takes the next unparsed line of the stream; returns the event that is
    /// complete because of it, if any.
    pub fn push(&mut self, event: Event) -> Option<Event> {
        let line = event.raw.as_deref().unwrap_or_default();
        if let Some((pending, at)) = &mut self.pending {
            if self.continuation.is_match(line) {
                let raw = pending.raw.get_or_insert_with(Vec::new);
                let full = pending.meta.flags.contains(Flags::TRUNCATED);
                if !full && raw.len() + 1 + line.len() <= self.max_bytes {
                    raw.push(b'\n');
                    raw.extend_from_slice(line);
                    pending.meta.raw_len += 1 + event.meta.raw_len;
                    pending.meta.flags.insert(Flags::MULTILINE);
                } else {
                    pending.meta.flags.insert(Flags::TRUNCATED);
                }
                *at = Instant::now();
                event.delivered();
                return None;
            }
        }
        self.pending
            .replace((event, Instant::now()))
            .map(|(event, _)| event)
    }

    /// The pending event, if it has waited longer than the flush timeout.
    pub fn flush_expired(&mut self) -> Option<Event> {
        match &self.pending {
            Some((_, at)) if at.elapsed() >= self.timeout => self.flush(),
            _ => None,
        }
    }

    /// The pending event, whatever its age.
    pub fn flush(&mut self) -> Option<Event> {
        self.pending.take().map(|(event, _)| event)
    }

    /// Whether an event is pending.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::stage::tests::event;

    fn joiner(max: usize, timeout: Duration) -> Joiner {
        Joiner::new(&MultilineConfig {
            enabled: true,
            max_event_bytes: max,
            flush_timeout: timeout,
            ..MultilineConfig::default()
        })
        .unwrap()
    }

    fn text(e: &Event) -> String {
        String::from_utf8_lossy(e.raw.as_deref().unwrap()).into_owned()
    }

    #[test]
    fn joins_a_stack_trace() {
        let mut j = joiner(1024, Duration::from_secs(1));
        assert!(j.push(event(b"Exception in thread main")).is_none());
        assert!(j.push(event(b"\tat a.b(C.java:1)")).is_none());
        assert!(j.push(event(b"Caused by: x")).is_none());
        assert!(j.push(event(b"  at d.e(F.java:2)")).is_none());
        let done = j.push(event(b"next line")).unwrap();
        assert_eq!(
            text(&done),
            "Exception in thread main\n\tat a.b(C.java:1)\nCaused by: x\n  at d.e(F.java:2)"
        );
        assert!(done.meta.flags.contains(Flags::MULTILINE));
        assert_eq!(text(&j.flush().unwrap()), "next line");
    }

    #[test]
    fn stops_growing_at_the_limit() {
        let mut j = joiner(20, Duration::from_secs(1));
        j.push(event(b"0123456789"));
        j.push(event(b" 123456789"));
        j.push(event(b" abc"));
        let done = j.flush().unwrap();
        assert_eq!(text(&done), "0123456789");
        assert!(done.meta.flags.contains(Flags::TRUNCATED));
    }

    #[test]
    fn flushes_after_the_timeout() {
        let mut j = joiner(1024, Duration::from_millis(20));
        j.push(event(b"alone"));
        assert!(j.flush_expired().is_none());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(text(&j.flush_expired().unwrap()), "alone");
        assert!(!j.is_pending());
    }
}
