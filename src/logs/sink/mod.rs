//! Sinks: where events go. Each implements [`Sink`]; [`drive`] feeds it from
//! its own bounded queue (a slow sink fills its queue, which holds back the
//! stages and then the sources) and counts outcomes.
//!
//! The acknowledgement contract: a sink calls [`Event::delivered`] on each
//! event once it has durably taken it — written and flushed (stdout, file),
//! fsync'd in a disk buffer, or accepted by the remote end; an event it
//! finally rejects (and dead-letters, counting it) is delivered too. An event
//! a sink drops without that call keeps its batch unacknowledged, so the
//! source reads it again after a restart.

pub mod discard;
pub mod file;
pub mod stdout;

use std::future::Future;
use std::pin::Pin;

use tokio::sync::mpsc::Receiver;
use tokio_util::sync::CancellationToken;

use super::metrics::SinkMetrics;
use super::Event;

/// Why a batch could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A local write failed.
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
    /// The destination refused the batch and retrying will not help.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The destination cannot be reached now.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// One kind of sink (stdout, file; Loki, HTTP, OTLP plug in the same way).
pub trait Sink: Send + 'static {
    /// Takes a batch. `Ok` means the sink has taken responsibility for every
    /// event (and marks each [`Event::delivered`] once durable, which for
    /// the local sinks is before returning); `Err` means the events it did
    /// not mark are not acknowledged.
    fn write(&mut self, batch: Vec<Event>) -> impl Future<Output = Result<(), SinkError>> + Send;
    /// Writes out anything buffered (called when the queue closes).
    fn flush(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// A built sink, ready to be started with its queue and the abort signal.
pub type Launch = Box<
    dyn FnOnce(Receiver<Vec<Event>>, CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>>
        + Send,
>;

/// Wraps a sink so the pipeline can start it without knowing its type.
pub fn launch<S: Sink>(sink: S, name: String, metrics: SinkMetrics) -> Launch {
    Box::new(move |queue, abort| Box::pin(drive(sink, name, queue, metrics, abort)))
}

/// Feeds `sink` from `queue` until the queue closes (then flushes) or
/// `abort` (then returns; what is left is not acknowledged).
pub async fn drive<S: Sink>(
    mut sink: S,
    name: String,
    mut queue: Receiver<Vec<Event>>,
    metrics: SinkMetrics,
    abort: CancellationToken,
) {
    loop {
        let batch = tokio::select! {
            biased;
            () = abort.cancelled() => return,
            batch = queue.recv() => match batch {
                Some(batch) => batch,
                None => break,
            },
        };
        let n = batch.len() as u64;
        let result = tokio::select! {
            result = sink.write(batch) => result,
            () = abort.cancelled() => return,
        };
        match result {
            Ok(()) => {
                metrics.delivered.inc_by(n);
            }
            Err(error) => {
                metrics.failed.inc_by(n);
                tracing::warn!(sink = %name, %error, events = n, "sink write failed; the events will be read again after a restart");
            }
        }
    }
    if let Err(error) = sink.flush().await {
        tracing::warn!(sink = %name, %error, "sink flush failed");
    }
}

/// Appends `event` as one JSON line to `out`.
pub fn encode_json_line(event: &Event, out: &mut Vec<u8>) {
    // Serializing a map of `Value`s to memory cannot fail.
    let _ = serde_json::to_writer(&mut *out, &event.fields);
    out.push(b'\n');
}
