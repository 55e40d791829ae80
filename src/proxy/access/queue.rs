//! The queue between the proxy's loops and the access-log source. Each
//! event is a fixed-size record plus its four strings, copied back to back
//! into one text buffer: a push allocates nothing once the buffers have
//! grown, and every string the proxy allocated is freed on the proxy's own
//! thread. (Moving the strings across instead made each of them a
//! cross-thread free: the proxy's allocator cache never refilled, so every
//! request's allocations went through glibc's shared arena and its lock.)

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use tokio::sync::Notify;

use super::AccessRecord;

/// Most bytes of strings queued at once: a stalled pipeline behind a flood
/// of long paths (up to `proxy.max_header_bytes` each) holds at most this
/// much, whatever `proxy.access_log_queue` allows; further events are
/// dropped and counted like those over the count.
pub(super) const MAX_TEXT_BYTES: usize = 16 * 1024 * 1024;

/// Queued events.
#[derive(Debug, Default)]
pub(super) struct Pending {
    records: Vec<Fixed>,
    /// The strings of `records`, each record's four in a row.
    text: String,
}

/// An event's fixed-size part; its strings are `lengths` bytes of the text
/// buffer from `start` (route, path, correlation ID, trace ID).
#[derive(Debug)]
struct Fixed {
    ended_at: SystemTime,
    method: http::Method,
    status: u16,
    duration_seconds: f64,
    request_bytes: u64,
    response_bytes: u64,
    correlation_id_made: bool,
    grpc_status: Option<u16>,
    aborted: bool,
    start: usize,
    lengths: [usize; 4],
}

impl Pending {
    /// How many events are queued.
    pub(super) fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether none is.
    pub(super) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn push(&mut self, record: &AccessRecord<'_>) {
        let start = self.text.len();
        let strings = [
            record.route,
            record.path,
            record.correlation_id,
            record.trace_id,
        ];
        for s in strings {
            self.text.push_str(s);
        }
        self.records.push(Fixed {
            ended_at: record.ended_at,
            method: record.method.clone(),
            status: record.status,
            duration_seconds: record.duration_seconds,
            request_bytes: record.request_bytes,
            response_bytes: record.response_bytes,
            correlation_id_made: record.correlation_id_made,
            grpc_status: record.grpc_status,
            aborted: record.aborted,
            start,
            lengths: strings.map(str::len),
        });
    }

    /// The event at `index`, borrowing its strings from the buffer.
    pub(super) fn get(&self, index: usize) -> AccessRecord<'_> {
        let fixed = &self.records[index];
        let mut at = fixed.start;
        let [route, path, correlation_id, trace_id] = fixed.lengths.map(|len| {
            let s = &self.text[at..at + len];
            at += len;
            s
        });
        AccessRecord {
            ended_at: fixed.ended_at,
            method: &fixed.method,
            route,
            path,
            status: fixed.status,
            duration_seconds: fixed.duration_seconds,
            request_bytes: fixed.request_bytes,
            response_bytes: fixed.response_bytes,
            correlation_id,
            correlation_id_made: fixed.correlation_id_made,
            trace_id,
            grpc_status: fixed.grpc_status,
            aborted: fixed.aborted,
        }
    }

    /// Empties the buffers, keeping room for `keep` events of about 128
    /// bytes of text each (a busy batch, not the largest burst ever seen).
    pub(super) fn clear(&mut self, keep: usize) {
        self.records.clear();
        self.text.clear();
        self.records.shrink_to(keep);
        self.text.shrink_to(keep * 128);
    }

    /// The events from `from` on, followed by those of `behind`.
    fn rest_then(mut self, from: usize, mut behind: Pending) -> Pending {
        let base = self.records.get(from).map_or(self.text.len(), |f| f.start);
        self.records.drain(..from);
        self.text.drain(..base);
        let shift = self.text.len();
        for fixed in &mut self.records {
            fixed.start -= base;
        }
        for mut fixed in behind.records.drain(..) {
            fixed.start += shift;
            self.records.push(fixed);
        }
        self.text.push_str(&behind.text);
        self
    }
}

/// The shared queue.
#[derive(Debug)]
pub(super) struct Queue {
    pending: Mutex<Pending>,
    capacity: usize,
    /// Notified by a push onto an empty queue (a permit is kept when the
    /// source is not waiting yet, so no push is missed).
    pub(super) ready: Notify,
    /// How many queued events make a batch worth sending at once.
    flush_at: usize,
    /// Notified by the push that brings the queue to `flush_at` events: the
    /// source stops lingering and sends them.
    pub(super) full: Notify,
    /// Held by the running source: a pipeline rebuilt on reload starts
    /// reading once the old one, drained, has let go.
    pub(super) reader: tokio::sync::Mutex<()>,
}

impl Queue {
    /// A queue that holds up to `capacity` events, and asks for them to be
    /// sent once `flush_at` (at most half of `capacity`) are queued.
    pub(super) fn new(capacity: usize, flush_at: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            pending: Mutex::new(Pending::default()),
            capacity,
            ready: Notify::new(),
            flush_at: flush_at.min(capacity / 2).max(1),
            full: Notify::new(),
            reader: tokio::sync::Mutex::new(()),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock cannot leave the buffers broken.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a copy of `record`; false when the queue is full (in events,
    /// or in bytes: [`MAX_TEXT_BYTES`]).
    pub(super) fn push(&self, record: &AccessRecord<'_>) -> bool {
        let text = record.route.len()
            + record.path.len()
            + record.correlation_id.len()
            + record.trace_id.len();
        let mut pending = self.lock();
        if pending.len() >= self.capacity || pending.text.len() + text > MAX_TEXT_BYTES {
            return false;
        }
        pending.push(record);
        let queued = pending.len();
        drop(pending);
        if queued == 1 {
            self.ready.notify_one();
        }
        if queued == self.flush_at {
            self.full.notify_one();
        }
        true
    }

    /// Swaps the queued events for `spare` (emptied, capacity kept).
    pub(super) fn take(&self, spare: Pending) -> Pending {
        std::mem::replace(&mut *self.lock(), spare)
    }

    /// Puts the events of `taken` from `from` on back in front of those
    /// queued since, in order.
    pub(super) fn put_back(&self, taken: Pending, from: usize) {
        let mut pending = self.lock();
        let behind = std::mem::take(&mut *pending);
        *pending = taken.rest_then(from, behind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(path: &'a str, id: &'a str) -> AccessRecord<'a> {
        AccessRecord {
            ended_at: SystemTime::UNIX_EPOCH,
            method: &http::Method::GET,
            route: "/r/:id",
            path,
            status: 200,
            duration_seconds: 0.5,
            request_bytes: 1,
            response_bytes: 2,
            correlation_id: id,
            correlation_id_made: false,
            trace_id: "",
            grpc_status: None,
            aborted: false,
        }
    }

    #[test]
    fn records_read_back_as_pushed_strings_and_all() {
        let mut pending = Pending::default();
        pending.push(&record("/r/1", "a"));
        pending.push(&record("/r/22", "ünïcode"));
        let second = pending.get(1);
        assert_eq!(
            (
                second.route,
                second.path,
                second.correlation_id,
                second.trace_id
            ),
            ("/r/:id", "/r/22", "ünïcode", "")
        );
        assert_eq!(pending.get(0).path, "/r/1");
    }

    #[test]
    fn the_queued_strings_are_bounded_in_bytes_too() {
        let queue = Queue::new(1000, 500);
        let long = "/".repeat(MAX_TEXT_BYTES / 4);
        let pushed = (0..10).filter(|_| queue.push(&record(&long, "id"))).count();
        assert_eq!(pushed, 3, "the fourth would pass {MAX_TEXT_BYTES} bytes");
        assert!(
            queue.push(&record("/short", "id")),
            "a short one still fits"
        );
        assert!(queue.lock().text.len() <= MAX_TEXT_BYTES);
    }

    #[test]
    fn put_back_keeps_order_ahead_of_what_queued_since() {
        let queue = Queue::new(10, 5);
        for (path, id) in [("/1", "a"), ("/2", "b"), ("/3", "c")] {
            assert!(queue.push(&record(path, id)));
        }
        let taken = queue.take(Pending::default());
        assert!(queue.push(&record("/4", "d")));
        queue.put_back(taken, 1);
        let pending = queue.lock();
        let got: Vec<_> = (0..pending.len())
            .map(|i| {
                (
                    pending.get(i).path.to_owned(),
                    pending.get(i).correlation_id.to_owned(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("/2".into(), "b".into()),
                ("/3".into(), "c".into()),
                ("/4".into(), "d".into())
            ]
        );
    }
}
