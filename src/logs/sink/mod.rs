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

pub mod delivery;
pub mod discard;
pub mod file;
pub mod http;
pub mod loki;
pub mod network;
pub mod otlp;
pub mod stdout;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::Receiver;
use tokio_util::sync::CancellationToken;

use super::event::deliver_all;
use super::metrics::SinkMetrics;
use super::Event;
use crate::admin::StatusBoard;
use crate::backoff::Backoff;

/// Why a batch could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A local write failed (disk full, file removed, pipe closed); retried.
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
    /// The destination refused the batch and retrying will not help.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The destination cannot be reached now; retried.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl SinkError {
    /// The `reason` label of `sidewatch_sink_retries_total`, `None` when
    /// retrying will not help.
    pub fn retry_reason(&self) -> Option<&'static str> {
        match self {
            SinkError::Io(_) => Some("io"),
            SinkError::Unavailable(_) => Some("unavailable"),
            SinkError::Rejected(_) => None,
        }
    }
}

/// One kind of sink (stdout, file; Loki, HTTP, OTLP plug in the same way).
pub trait Sink: Send + 'static {
    /// Writes a batch. `Ok` means the sink has durably taken every event
    /// still in `batch`, and the driver marks them [`Event::delivered`]; a
    /// sink that keeps events to finish later (in flight, in a buffer) moves
    /// them out of `batch` and marks them itself once they are safe. `Err`
    /// means the events still in `batch` were not taken: the driver writes
    /// them again after a backoff (unless the error is [`SinkError::Rejected`]).
    fn write(
        &mut self,
        batch: &mut Vec<Event>,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;
    /// Writes out anything buffered (called when the queue closes).
    fn flush(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// A built sink, ready to be started with its queue and the abort signal.
pub type Launch = Box<
    dyn FnOnce(Receiver<Vec<Event>>, CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>>
        + Send,
>;

/// What a sink's driver reports to: its metric handles and `/status`.
#[derive(Debug, Clone)]
pub struct SinkReport {
    /// The sink's name (`sink` label, `/status` key).
    pub name: String,
    /// Its metric handles.
    pub metrics: SinkMetrics,
    /// Where failures and recoveries are shown.
    pub status: StatusBoard,
}

/// Wraps a sink so the pipeline can start it without knowing its type.
pub fn launch<S: Sink>(sink: S, report: SinkReport) -> Launch {
    report.status.register_sink(&report.name);
    Box::new(move |queue, abort| Box::pin(drive(sink, report, queue, abort)))
}

/// First wait before a failed write is tried again; doubles up to [`RETRY_MAX`].
pub const RETRY_BASE: Duration = Duration::from_millis(100);
/// Longest wait between two tries of a failed write.
pub const RETRY_MAX: Duration = Duration::from_secs(30);

/// Feeds `sink` from `queue` until the queue closes (then flushes) or
/// `abort` (then returns; what is left is not acknowledged). A failed write
/// is tried again, with backoff, until it succeeds: meanwhile the queue
/// fills and holds back the sources (a tailer stops reading; files are their
/// own buffer), so a full disk or a closed pipe delays events, never loses
/// them.
pub async fn drive<S: Sink>(
    mut sink: S,
    report: SinkReport,
    mut queue: Receiver<Vec<Event>>,
    abort: CancellationToken,
) {
    let SinkReport {
        name,
        metrics,
        status,
    } = report;
    let mut backoff = Backoff::new(RETRY_BASE, RETRY_MAX);
    loop {
        let mut batch = tokio::select! {
            biased;
            () = abort.cancelled() => return,
            batch = queue.recv() => match batch {
                Some(batch) => batch,
                None => break,
            },
        };
        loop {
            let started = Instant::now();
            let result = tokio::select! {
                result = sink.write(&mut batch) => result,
                () = abort.cancelled() => return,
            };
            let error = match result {
                Ok(()) => {
                    if backoff.failures() > 0 {
                        tracing::info!(sink = %name, "sink writes again");
                        status.sink_recovered(&name);
                    }
                    backoff.reset();
                    metrics.delivered.inc_by(batch.len() as u64);
                    deliver_all(batch);
                    break;
                }
                Err(error) => error,
            };
            let Some(reason) = error.retry_reason() else {
                metrics.failed.inc_by(batch.len() as u64);
                tracing::warn!(sink = %name, %error, events = batch.len(), "sink rejected a batch; its events will be read again after a restart");
                break;
            };
            metrics.retry(reason).inc();
            status.sink_failed(&name, reason, error.to_string());
            backoff.failed(started);
            let wait = backoff.remaining(Instant::now()).unwrap_or_default();
            tracing::warn!(sink = %name, %error, events = batch.len(), retry_in = ?wait, "sink write failed; retrying");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = abort.cancelled() => return,
            }
        }
    }
    let flushed = tokio::select! {
        flushed = sink.flush() => flushed,
        () = abort.cancelled() => return,
    };
    if let Err(error) = flushed {
        tracing::warn!(sink = %name, %error, "sink flush failed");
    }
}

/// Appends `event` as one JSON line to `out`.
pub fn encode_json_line(event: &Event, out: &mut Vec<u8>) {
    event.fields.write_json(out);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use prometheus_client::registry::Registry;
    use tokio::sync::mpsc;

    use super::*;
    use crate::logs::ack::{AckToken, Acked};
    use crate::logs::metrics::Metrics;
    use crate::logs::stage::tests::event;

    /// A sink whose first `failures` writes fail like a full disk; what it
    /// writes afterwards lands in `written`.
    struct Flaky {
        failures: usize,
        written: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    impl Sink for Flaky {
        async fn write(&mut self, batch: &mut Vec<Event>) -> Result<(), SinkError> {
            if self.failures > 0 {
                self.failures -= 1;
                return Err(SinkError::Io(std::io::Error::other("no space left")));
            }
            let mut written = self.written.lock().unwrap();
            written.extend(batch.iter().map(|e| e.raw.clone().unwrap_or_default()));
            Ok(())
        }

        async fn flush(&mut self) -> Result<(), SinkError> {
            Ok(())
        }
    }

    /// A queue holding one batch of `lines` that share one token, and the
    /// receiver of that token's acknowledgement.
    async fn queued(
        lines: &[&[u8]],
    ) -> (
        mpsc::Sender<Vec<Event>>,
        Receiver<Vec<Event>>,
        mpsc::UnboundedReceiver<Acked>,
    ) {
        let (acks_tx, acks) = mpsc::unbounded_channel();
        let token = AckToken::new(1, 0, 10, acks_tx);
        let batch = lines
            .iter()
            .map(|line| {
                let meta = event(line).meta;
                Event::from_line(line.to_vec(), meta, Some(token.reference()))
            })
            .collect();
        let (tx, rx) = mpsc::channel(1);
        tx.send(batch).await.unwrap();
        (tx, rx, acks)
    }

    fn report(name: &str, metrics: &SinkMetrics, status: &StatusBoard) -> SinkReport {
        SinkReport {
            name: name.into(),
            metrics: metrics.clone(),
            status: status.clone(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failed_writes_are_retried_and_acknowledged_once_written() {
        let metrics = Metrics::register(&mut Registry::default()).sink("flaky");
        let (tx, rx, mut acks) = queued(&[b"one", b"two"]).await;
        drop(tx);
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = Flaky {
            failures: 3,
            written: written.clone(),
        };
        let status = StatusBoard::default();
        drive(
            sink,
            report("flaky", &metrics, &status),
            rx,
            CancellationToken::new(),
        )
        .await;
        let shown = status.report(true, Vec::new()).sinks["flaky"].clone();
        assert!(!shown.retrying && shown.recovered_at.is_some());
        assert_eq!(shown.failures, 3);
        assert_eq!(shown.last_error_reason, Some("io"));
        assert_eq!(*written.lock().unwrap(), [b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(metrics.retry("io").get(), 3);
        assert_eq!(metrics.delivered.get(), 2);
        assert_eq!(metrics.failed.get(), 0);
        assert!(acks.try_recv().unwrap().delivered);
    }

    #[tokio::test(start_paused = true)]
    async fn an_abort_during_retries_leaves_the_batch_unacknowledged() {
        let metrics = Metrics::register(&mut Registry::default()).sink("down");
        let (_tx, rx, mut acks) = queued(&[b"one"]).await;
        let abort = CancellationToken::new();
        let sink = Flaky {
            failures: usize::MAX,
            written: Arc::default(),
        };
        let status = StatusBoard::default();
        let report = report("down", &metrics, &status);
        let driving = tokio::spawn(drive(sink, report, rx, abort.clone()));
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert!(acks.try_recv().is_err(), "still being retried");
        let shown = status.report(true, Vec::new()).sinks["down"].clone();
        assert!(shown.retrying);
        assert_eq!(
            shown.last_error.as_deref(),
            Some("write failed: no space left")
        );
        abort.cancel();
        driving.await.unwrap();
        assert!(!acks.try_recv().unwrap().delivered);
        let retries = metrics.retry("io").get();
        assert!(
            (5..40).contains(&retries),
            "backoff grows to its cap: {retries}"
        );
    }
}
