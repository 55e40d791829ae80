//! Access-log events: one JSON object per proxied request, fed into the log
//! pipeline as the source `proxy` (so it passes correlate, enrich, redact,
//! log rules and every sink like the app's own lines). The proxy never waits
//! on the pipeline: a full queue drops the event and counts it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

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
        let mut fields = Fields::with_capacity(20);
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

/// The proxy's end: queues events without waiting.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: mpsc::Sender<AccessRecord>,
    dropped: Counter,
}

impl AccessLog {
    /// A queue of `capacity` events (drops are counted once the proxy is
    /// built, see [`AccessLog::with_dropped`]).
    pub fn channel(capacity: usize) -> (Self, AccessSource) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let dropped = Counter::default();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        (Self { tx, dropped }, AccessSource { rx, info: None })
    }

    /// The same queue counting drops on `dropped` instead.
    pub fn with_dropped(mut self, dropped: Counter) -> Self {
        self.dropped = dropped;
        self
    }

    /// Queues one event, or counts it as dropped.
    pub fn emit(&self, record: AccessRecord) {
        if self.tx.try_send(record).is_err() {
            self.dropped.inc();
        }
    }
}

/// The pipeline's end: a [`Source`] reading the queue. Clones share the
/// queue, which one running source holds at a time: a pipeline rebuilt on
/// reload starts reading where the old one, drained, let go.
#[derive(Debug, Clone)]
pub struct AccessSource {
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<AccessRecord>>>,
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

    async fn send(&self, ctx: &SourceContext, batch: Vec<AccessRecord>) -> bool {
        let batch: Vec<Event> = batch.into_iter().filter_map(|f| self.event(f)).collect();
        if batch.is_empty() {
            return true;
        }
        tokio::select! {
            sent = ctx.out.send(batch) => sent.is_ok(),
            () = ctx.abort.cancelled() => false,
        }
    }
}

impl Source for AccessSource {
    async fn run(self, ctx: SourceContext) {
        let shared = self.rx.clone();
        let mut rx = tokio::select! {
            rx = shared.lock() => rx,
            () = ctx.stop.cancelled() => return,
        };
        loop {
            let first = tokio::select! {
                first = rx.recv() => first,
                () = ctx.stop.cancelled() => {
                    // What is queued at stop still goes out.
                    let _ = self.drain(&ctx, &mut rx, Vec::new()).await;
                    return;
                }
            };
            let Some(first) = first else { return };
            tokio::select! {
                () = tokio::time::sleep(LINGER) => {}
                () = ctx.stop.cancelled() => {}
            }
            if !self.drain(&ctx, &mut rx, vec![first]).await {
                return;
            }
        }
    }
}

impl AccessSource {
    /// Sends `batch` and everything queued behind it, [`BATCH`] events at a
    /// time; false once the pipeline is gone.
    async fn drain(
        &self,
        ctx: &SourceContext,
        rx: &mut mpsc::Receiver<AccessRecord>,
        mut batch: Vec<AccessRecord>,
    ) -> bool {
        loop {
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                return true;
            }
            let full = batch.len() == BATCH;
            if !self.send(ctx, std::mem::take(&mut batch)).await {
                return false;
            }
            if !full {
                return true;
            }
        }
    }
}
