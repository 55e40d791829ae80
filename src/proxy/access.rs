//! Access-log events: one JSON object per proxied request, fed into the log
//! pipeline as the source `proxy` (so it passes correlate, enrich, redact,
//! log rules and every sink like the app's own lines). The proxy never waits
//! on the pipeline: a full queue drops the event and counts it.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;

use crate::logs::event::{EventMeta, Flags, SourceInfo};
use crate::logs::source::{Source, SourceContext};
use crate::logs::{Event, Fields};

/// The log source name of access-log events.
pub const SOURCE_NAME: &str = "proxy";
/// Most events sent to the pipeline in one batch.
const BATCH: usize = 1024;
/// How long the source waits after the first event of a batch for more to
/// queue. Without it, every request would wake the pipeline's thread from
/// the proxy's (a cross-thread wake-up per request, about as costly as the
/// rest of the proxying); with it, one wake-up serves a whole batch.
const LINGER: Duration = Duration::from_millis(10);

/// One finished request, as the access log records it. The proxy hands it
/// over as it is (its strings moved out of the finished exchange, nothing
/// copied); the pipeline's side turns it into fields.
#[derive(Debug, Clone)]
pub struct AccessRecord {
    /// When the response ended.
    pub ended_at: SystemTime,
    /// The request method as sent.
    pub method: http::Method,
    /// The normalised route.
    pub route: String,
    /// The request path, without the query string.
    pub path: String,
    /// The response status (502/504 when the app could not answer).
    pub status: u16,
    /// Seconds from arrival to the response headers.
    pub duration_seconds: f64,
    /// Request body bytes received.
    pub request_bytes: u64,
    /// Response body bytes sent.
    pub response_bytes: u64,
    /// The `x-request-id`.
    pub correlation_id: String,
    /// The trace ID of the forwarded `traceparent`.
    pub trace_id: String,
    /// Whether the client went away before the response ended.
    pub aborted: bool,
}

impl AccessRecord {
    /// The event's fields, `timestamp` (when the request ended, RFC 3339)
    /// first, as app log lines have it.
    pub fn into_fields(self) -> Fields {
        // Room for these 13 fields and the 5 of the pod's identity the enrich
        // stage adds: 18 entries of 56 bytes are 1008 bytes, which glibc
        // serves from its per-thread cache (up to 1032); 20 (1120 bytes) went
        // through the shared arena and its consolidation on every event.
        let mut fields = Fields::with_capacity(18);
        let ended = humantime::format_rfc3339_millis(self.ended_at).to_string();
        fields.insert("timestamp", ended.into());
        fields.insert("level", "info".into());
        fields.insert("message", "proxy access".into());
        fields.insert("kind", "access".into());
        fields.insert("method", self.method.as_str().into());
        fields.insert("route", self.route.into());
        fields.insert("path", self.path.into());
        fields.insert("status", self.status.into());
        fields.insert("duration_seconds", self.duration_seconds.into());
        fields.insert("request_bytes", self.request_bytes.into());
        fields.insert("response_bytes", self.response_bytes.into());
        fields.insert("correlation_id", self.correlation_id.into());
        fields.insert("trace_id", self.trace_id.into());
        if self.aborted {
            fields.insert("aborted", true.into());
        }
        fields
    }
}

/// The queue between the proxy's loops and the pipeline: a plain vector
/// under a lock that the source swaps for an empty one each batch. A push is
/// a lock and a `Vec::push` (no allocation once the vectors have grown, where
/// a channel allocates a block every 32 events and crosses threads to free
/// it); only the push that finds the queue empty wakes the source.
#[derive(Debug)]
struct Queue {
    records: Mutex<Vec<AccessRecord>>,
    capacity: usize,
    /// Notified by a push onto an empty queue (a permit is kept when the
    /// source is not waiting yet, so no push is missed).
    ready: Notify,
    /// Held by the running source: a pipeline rebuilt on reload starts
    /// reading once the old one, drained, has let go.
    reader: tokio::sync::Mutex<()>,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Vec<AccessRecord>> {
        // A panic while holding the lock cannot leave the vector broken.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Swaps the queued records for `spare` (empty, capacity kept).
    fn take(&self, spare: Vec<AccessRecord>) -> Vec<AccessRecord> {
        std::mem::replace(&mut *self.lock(), spare)
    }
}

/// The proxy's end: queues events without waiting.
#[derive(Debug, Clone)]
pub struct AccessLog {
    queue: Arc<Queue>,
    dropped: Counter,
}

impl AccessLog {
    /// A queue of `capacity` events (drops are counted once the proxy is
    /// built, see [`AccessLog::with_dropped`]).
    pub fn channel(capacity: usize) -> (Self, AccessSource) {
        let queue = Arc::new(Queue {
            records: Mutex::new(Vec::new()),
            capacity: capacity.max(1),
            ready: Notify::new(),
            reader: tokio::sync::Mutex::new(()),
        });
        let dropped = Counter::default();
        let source = AccessSource {
            queue: queue.clone(),
            info: None,
        };
        (Self { queue, dropped }, source)
    }

    /// The same queue counting drops on `dropped` instead.
    pub fn with_dropped(mut self, dropped: Counter) -> Self {
        self.dropped = dropped;
        self
    }

    /// Queues one event, or counts it as dropped.
    pub fn emit(&self, record: AccessRecord) {
        let mut records = self.queue.lock();
        if records.len() >= self.queue.capacity {
            drop(records);
            self.dropped.inc();
            return;
        }
        let was_empty = records.is_empty();
        records.push(record);
        drop(records);
        if was_empty {
            self.queue.ready.notify_one();
        }
    }
}

/// The pipeline's end: a [`Source`] reading the queue. Clones share the
/// queue, which one running source holds at a time: a pipeline rebuilt on
/// reload starts reading where the old one, drained, let go.
#[derive(Debug, Clone)]
pub struct AccessSource {
    queue: Arc<Queue>,
    info: Option<Arc<SourceInfo>>,
}

impl AccessSource {
    /// The source, labelled with `info` (built by the pipeline).
    pub fn with_info(mut self, info: Arc<SourceInfo>) -> Self {
        self.info = Some(info);
        self
    }

    fn event(&self, record: AccessRecord) -> Option<Event> {
        let info = self.info.clone()?;
        let meta = EventMeta {
            source: info,
            path: None,
            read_at: SystemTime::now(),
            raw_len: 0,
            flags: Flags::default(),
        };
        Some(Event::from_fields(record.into_fields(), meta, None))
    }
}

impl Source for AccessSource {
    async fn run(self, ctx: SourceContext) {
        let queue = self.queue.clone();
        let _reader = tokio::select! {
            reader = queue.reader.lock() => reader,
            () = ctx.stop.cancelled() => return,
        };
        let mut spare = Vec::new();
        loop {
            // Events an aborted source put back, and those queued behind
            // them, notified no one: look before waiting.
            if queue.lock().is_empty() {
                tokio::select! {
                    () = queue.ready.notified() => {}
                    () = ctx.stop.cancelled() => {}
                }
            }
            if !ctx.stop.is_cancelled() {
                tokio::select! {
                    () = tokio::time::sleep(LINGER) => {}
                    () = ctx.stop.cancelled() => {}
                }
            }
            // What is queued at stop still goes out.
            let Some(emptied) = self.send_queued(&ctx, spare).await else {
                return;
            };
            if ctx.stop.is_cancelled() {
                return;
            }
            spare = emptied;
        }
    }
}

impl AccessSource {
    /// Sends everything queued, [`BATCH`] events at a time, and returns the
    /// emptied vector to swap in next time; `None` once the pipeline is gone.
    async fn send_queued(
        &self,
        ctx: &SourceContext,
        spare: Vec<AccessRecord>,
    ) -> Option<Vec<AccessRecord>> {
        let mut queued = self.queue.take(spare);
        while !queued.is_empty() {
            // A slot first, so a batch is taken off the queue only once it
            // can be sent.
            let slot = tokio::select! {
                slot = ctx.out.reserve() => slot.ok(),
                () = ctx.abort.cancelled() => None,
            };
            let Some(slot) = slot else {
                // The pipeline is gone or aborted: what was not sent waits,
                // in order, for the next pipeline's source.
                self.queue.lock().splice(0..0, queued);
                return None;
            };
            let end = queued.len().min(BATCH);
            slot.send(queued.drain(..end).filter_map(|r| self.event(r)).collect());
        }
        // Keep room for a busy batch, not for the largest burst ever seen.
        queued.shrink_to(BATCH);
        Some(queued)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    use super::*;

    fn record(path: &str) -> AccessRecord {
        AccessRecord {
            ended_at: SystemTime::now(),
            method: http::Method::GET,
            route: "/r".into(),
            path: path.into(),
            status: 200,
            duration_seconds: 0.001,
            request_bytes: 0,
            response_bytes: 2,
            correlation_id: "id".into(),
            trace_id: "t".into(),
            aborted: false,
        }
    }

    /// Starts `source`; returns its stop token, its task and the batches it sends.
    fn start(
        source: &AccessSource,
    ) -> (
        CancellationToken,
        tokio::task::JoinHandle<()>,
        mpsc::Receiver<Vec<Event>>,
    ) {
        let (out, batches) = mpsc::channel(16);
        let stop = CancellationToken::new();
        let ctx = SourceContext {
            out,
            stop: stop.clone(),
            abort: CancellationToken::new(),
        };
        let task = tokio::spawn(
            source
                .clone()
                .with_info(crate::logs::stage::tests::source())
                .run(ctx),
        );
        (stop, task, batches)
    }

    fn paths(batch: &[Event]) -> Vec<String> {
        batch
            .iter()
            .map(|e| e.fields["path"].as_str().unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (log, _source) = AccessLog::channel(2);
        for i in 0..5 {
            log.emit(record(&format!("/{i}")));
        }
        assert_eq!(log.dropped.get(), 3);
        assert_eq!(log.queue.lock().len(), 2);
    }

    #[tokio::test]
    async fn events_are_batched_in_order_and_the_rest_go_out_at_stop() {
        let (log, source) = AccessLog::channel(100);
        let (stop, task, mut batches) = start(&source);
        log.emit(record("/a"));
        log.emit(record("/b"));
        let first = tokio::time::timeout(Duration::from_secs(5), batches.recv()).await;
        assert_eq!(paths(&first.unwrap().unwrap()), ["/a", "/b"]);
        log.emit(record("/c"));
        stop.cancel();
        task.await.unwrap();
        let mut rest = Vec::new();
        while let Ok(batch) = batches.try_recv() {
            rest.extend(paths(&batch));
        }
        assert_eq!(rest, ["/c"]);
    }

    #[tokio::test]
    async fn a_source_started_later_sends_what_queued_while_none_ran() {
        let (log, source) = AccessLog::channel(100);
        let (stop, task, mut batches) = start(&source);
        log.emit(record("/before"));
        let first = tokio::time::timeout(Duration::from_secs(5), batches.recv()).await;
        assert_eq!(paths(&first.unwrap().unwrap()), ["/before"]);
        stop.cancel();
        task.await.unwrap();
        // As during a reload: events queue with no source running, and only
        // the first of them notified (the old source, now gone).
        log.emit(record("/between-1"));
        log.emit(record("/between-2"));
        let (stop, task, mut batches) = start(&source);
        let next = tokio::time::timeout(Duration::from_secs(5), batches.recv()).await;
        assert_eq!(paths(&next.unwrap().unwrap()), ["/between-1", "/between-2"]);
        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn events_a_gone_pipeline_could_not_take_wait_for_the_next() {
        let (log, source) = AccessLog::channel(100);
        let (_stop, task, batches) = start(&source);
        drop(batches);
        log.emit(record("/kept"));
        task.await.unwrap();
        log.emit(record("/behind"));
        let (stop, task, mut batches) = start(&source);
        let next = tokio::time::timeout(Duration::from_secs(5), batches.recv()).await;
        let next = next.expect("the put-back events were sent").unwrap();
        assert_eq!(paths(&next), ["/kept", "/behind"]);
        stop.cancel();
        task.await.unwrap();
    }
}
