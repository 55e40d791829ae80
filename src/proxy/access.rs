//! Access-log events: one JSON object per proxied request, fed into the log
//! pipeline as the source `proxy` (so it passes correlate, enrich, redact,
//! log rules and every sink like the app's own lines). The proxy never waits
//! on the pipeline: a full queue drops the event and counts it.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;

use crate::logs::event::{EventMeta, Flags, SourceInfo};
use crate::logs::source::{Source, SourceContext};
use crate::logs::{Event, Fields};

mod queue;

use queue::{Pending, Queue};

/// The log source name of access-log events.
pub const SOURCE_NAME: &str = "proxy";
/// Most events sent to the pipeline in one batch.
const BATCH: usize = 1024;
/// How long the source waits after the first event of a batch for more to
/// queue, unless [`BATCH`] events queue sooner (half the queue, if that is
/// smaller). Without it, every request would wake the pipeline's thread from
/// the proxy's (a cross-thread wake-up per request, about as costly as the
/// rest of the proxying); with it, one wake-up serves a whole batch. At
/// 2000 req/s, 10 ms batches of 20 events woke the pipeline's tasks 100
/// times a second, 0.25 context switches per request more than with the
/// access log off; 100 ms (a tenth of Fluent Bit's default flush interval)
/// makes that a tenth, and an access line reaches the sinks within it.
const LINGER: Duration = Duration::from_millis(100);

/// One finished request, as the access log records it, borrowing the
/// finished exchange's strings: the queue copies them (see [`queue`]).
#[derive(Debug, Clone, Copy)]
pub struct AccessRecord<'a> {
    /// When the response ended.
    pub ended_at: SystemTime,
    /// The request method as sent.
    pub method: &'a http::Method,
    /// The normalised route.
    pub route: &'a str,
    /// The request path, without the query string.
    pub path: &'a str,
    /// The response status (502/504 when the app could not answer).
    pub status: u16,
    /// Seconds from arrival to the response headers.
    pub duration_seconds: f64,
    /// Request body bytes received.
    pub request_bytes: u64,
    /// Response body bytes sent.
    pub response_bytes: u64,
    /// The `x-request-id`.
    pub correlation_id: &'a str,
    /// Whether sidewatch made the `x-request-id` (the client sent none).
    pub correlation_id_made: bool,
    /// The trace ID of the forwarded `traceparent`.
    pub trace_id: &'a str,
    /// A gRPC call's status (`grpc-status`; see [`crate::proxy`]'s gRPC notes).
    pub grpc_status: Option<u16>,
    /// Whether the client went away before the response ended.
    pub aborted: bool,
}

impl AccessRecord<'_> {
    /// The event's fields, `timestamp` (when the request ended, RFC 3339)
    /// first, as app log lines have it.
    pub fn to_fields(&self) -> Fields {
        // Room for these 13 fields and the 5 of the pod's identity the enrich
        // stage adds: 18 entries of 56 bytes are 1008 bytes, which glibc
        // serves from its per-thread cache (up to 1032); 20 (1120 bytes) went
        // through the shared arena and its consolidation on every event.
        let mut fields = Fields::with_capacity(18);
        // 24 bytes, allocated once (`to_string` grows the string as it writes).
        let mut ended = String::with_capacity(24);
        let _ = write!(ended, "{}", humantime::format_rfc3339_millis(self.ended_at));
        // The names are distinct: appended without a search. What sidewatch
        // wrote itself is vetted (redact's patterns skip it); what the client
        // sent (path, its request ID, an unknown method) is searched as usual.
        fields.push_vetted("timestamp", ended.into());
        fields.push_vetted("level", "info".into());
        fields.push_vetted("message", "proxy access".into());
        fields.push_vetted("kind", "access".into());
        let method = self.method.as_str();
        if crate::proxy::metrics::method_label(self.method) == method {
            fields.push_vetted("method", method.into());
        } else {
            fields.push("method", method.into());
        }
        fields.push("route", self.route.into());
        fields.push("path", self.path.into());
        fields.push("status", self.status.into());
        fields.push("duration_seconds", self.duration_seconds.into());
        fields.push("request_bytes", self.request_bytes.into());
        fields.push("response_bytes", self.response_bytes.into());
        if self.correlation_id_made {
            fields.push_vetted("correlation_id", self.correlation_id.into());
        } else {
            fields.push("correlation_id", self.correlation_id.into());
        }
        // Checked as 32 hex digits, or made (`identity`): an ID, never a secret,
        // though 13 of its digits in a row could pass for a card number.
        fields.push_vetted("trace_id", self.trace_id.into());
        if let Some(code) = self.grpc_status {
            fields.push_vetted("grpc_status", code.into());
        }
        if self.aborted {
            fields.push("aborted", true.into());
        }
        fields
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
        let queue = Arc::new(Queue::new(capacity, BATCH));
        let source = AccessSource {
            queue: queue.clone(),
            info: None,
        };
        let dropped = Counter::default();
        (Self { queue, dropped }, source)
    }

    /// The same queue counting drops on `dropped` instead.
    pub fn with_dropped(mut self, dropped: Counter) -> Self {
        self.dropped = dropped;
        self
    }

    /// Queues a copy of one event, or counts it as dropped (queue full).
    pub fn emit(&self, record: &AccessRecord<'_>) {
        if !self.queue.push(record) {
            self.dropped.inc();
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

    /// The event of `record`, read from the queue at `read_at`.
    fn event(&self, record: &AccessRecord<'_>, read_at: SystemTime) -> Option<Event> {
        let info = self.info.clone()?;
        let meta = EventMeta {
            source: info,
            path: None,
            read_at,
            raw_len: 0,
            flags: Flags::default(),
        };
        Some(Event::from_fields(record.to_fields(), meta, None))
    }
}

impl Source for AccessSource {
    async fn run(self, ctx: SourceContext) {
        let queue = self.queue.clone();
        let _reader = tokio::select! {
            reader = queue.reader.lock() => reader,
            () = ctx.stop.cancelled() => return,
        };
        let mut spare = Pending::default();
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
                    () = queue.full.notified() => {}
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
    /// emptied buffers to swap in next time; `None` once the pipeline is gone.
    async fn send_queued(&self, ctx: &SourceContext, spare: Pending) -> Option<Pending> {
        let mut queued = self.queue.take(spare);
        let mut next = 0;
        while next < queued.len() {
            // A slot first, so events leave the queue only once they can be sent.
            let slot = tokio::select! {
                slot = ctx.out.reserve() => slot.ok(),
                () = ctx.abort.cancelled() => None,
            };
            let Some(slot) = slot else {
                // The pipeline is gone or aborted: what was not sent waits,
                // in order, for the next pipeline's source.
                self.queue.put_back(queued, next);
                return None;
            };
            let end = queued.len().min(next + BATCH);
            // One clock read a batch, as the other sources take one a read.
            let read_at = SystemTime::now();
            // The events go to the sinks' threads to be freed. From glibc's
            // one arena, a batch's allocations and frees crossed threads and
            // overflowed the per-thread caches: every one went through the
            // arena's lock and, freeing, its consolidation (malloc and free
            // took 0.44 µs a request at saturation, about half the
            // pipeline's share: `benches/proxy_profile.sh`). A heap of the
            // thread's own serves them in a few instructions, and takes them
            // back from any thread.
            let batch = crate::heap::with_own_heap(|| {
                (next..end)
                    .filter_map(|i| self.event(&queued.get(i), read_at))
                    .collect()
            });
            slot.send(batch);
            next = end;
        }
        queued.clear(BATCH);
        Some(queued)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    use super::*;

    /// Queues an event for `path`.
    fn emit(log: &AccessLog, path: &str) {
        log.emit(&AccessRecord {
            ended_at: SystemTime::now(),
            method: &http::Method::GET,
            route: "/r",
            path,
            status: 200,
            duration_seconds: 0.001,
            request_bytes: 0,
            response_bytes: 2,
            correlation_id: "id",
            correlation_id_made: false,
            trace_id: "t",
            grpc_status: None,
            aborted: false,
        });
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

    #[test]
    fn only_what_sidewatch_wrote_itself_is_vetted() {
        let vetted = |method: &http::Method, made: bool| -> Vec<String> {
            let mut fields = AccessRecord {
                ended_at: SystemTime::now(),
                method,
                route: "/r",
                path: "/p",
                status: 200,
                duration_seconds: 0.001,
                request_bytes: 0,
                response_bytes: 2,
                correlation_id: "0193a4b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b",
                correlation_id_made: made,
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
                grpc_status: None,
                aborted: false,
            }
            .to_fields();
            fields
                .iter_mut_vetted()
                .filter(|(_, _, vetted)| *vetted)
                .map(|(k, _, _)| k.to_owned())
                .collect()
        };
        let own = [
            "timestamp",
            "level",
            "message",
            "kind",
            "method",
            "trace_id",
        ];
        assert_eq!(vetted(&http::Method::GET, false), own);
        let odd = http::Method::from_bytes(b"AKIAIOSFODNN7EXAMPLE").unwrap();
        let without_method: Vec<_> = own.into_iter().filter(|k| *k != "method").collect();
        assert_eq!(vetted(&odd, false), without_method);
        let mut with_id = own.to_vec();
        with_id.insert(5, "correlation_id");
        assert_eq!(
            vetted(&http::Method::GET, true),
            with_id,
            "a request ID sidewatch made"
        );
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (log, _source) = AccessLog::channel(2);
        for i in 0..5 {
            emit(&log, &format!("/{i}"));
        }
        assert_eq!(log.dropped.get(), 3);
        assert_eq!(log.queue.lock().len(), 2);
    }

    #[tokio::test]
    async fn events_are_batched_in_order_and_the_rest_go_out_at_stop() {
        let (log, source) = AccessLog::channel(100);
        let (stop, task, mut batches) = start(&source);
        emit(&log, "/a");
        emit(&log, "/b");
        let first = tokio::time::timeout(Duration::from_secs(5), batches.recv()).await;
        assert_eq!(paths(&first.unwrap().unwrap()), ["/a", "/b"]);
        emit(&log, "/c");
        stop.cancel();
        task.await.unwrap();
        let mut rest = Vec::new();
        while let Ok(batch) = batches.try_recv() {
            rest.extend(paths(&batch));
        }
        assert_eq!(rest, ["/c"]);
    }

    /// Paused time: how long (virtual) the source held `count` events.
    async fn held_for(count: usize) -> Duration {
        let (log, source) = AccessLog::channel(2 * BATCH);
        let (stop, task, mut batches) = start(&source);
        let began = tokio::time::Instant::now();
        for i in 0..count {
            emit(&log, &format!("/{i}"));
        }
        let batch = batches.recv().await.unwrap();
        let held = began.elapsed();
        assert_eq!(batch.len(), count);
        stop.cancel();
        task.await.unwrap();
        held
    }

    #[tokio::test(start_paused = true)]
    async fn a_few_events_linger_and_a_full_batch_goes_out_at_once() {
        assert!(held_for(3).await >= LINGER, "three events wait for more");
        assert!(
            held_for(BATCH).await < LINGER,
            "a full batch does not wait out the linger"
        );
    }

    #[tokio::test]
    async fn a_source_started_later_sends_what_queued_while_none_ran() {
        let (log, source) = AccessLog::channel(100);
        let (stop, task, mut batches) = start(&source);
        emit(&log, "/before");
        let first = tokio::time::timeout(Duration::from_secs(5), batches.recv()).await;
        assert_eq!(paths(&first.unwrap().unwrap()), ["/before"]);
        stop.cancel();
        task.await.unwrap();
        // As during a reload: events queue with no source running, and only
        // the first of them notified (the old source, now gone).
        emit(&log, "/between-1");
        emit(&log, "/between-2");
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
        emit(&log, "/kept");
        task.await.unwrap();
        emit(&log, "/behind");
        let (stop, task, mut batches) = start(&source);
        let next = tokio::time::timeout(Duration::from_secs(5), batches.recv()).await;
        let next = next.expect("the put-back events were sent").unwrap();
        assert_eq!(paths(&next), ["/kept", "/behind"]);
        stop.cancel();
        task.await.unwrap();
    }
}
