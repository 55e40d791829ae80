//! Delivery shared by the network sinks (Loki, HTTP).
//!
//! ```text
//!  Sink::write ──bounded (buffer_batches)──► batcher ──► up to `in_flight` requests
//!                                           (size / age)     retry with backoff + jitter,
//!                                                            Retry-After on 429/503;
//!                                                            4xx → split → dead letter
//! ```
//!
//! [`NetworkSink::write`] moves the events into a bounded channel; a batcher
//! task cuts batches by count, bytes and age and sends several at once. A
//! batch is retried until the destination takes it, so an outage holds
//! events in memory up to the bound, then the sink's `write` stops returning,
//! its queue fills and the sources stop reading (files are their own buffer):
//! nothing is dropped. A 4xx that names the content (400, 413, 422, ...) is
//! split in halves until the bad events stand alone; each is written to the
//! dead-letter file, counted, and acknowledged, so one bad event never blocks
//! the stream. Events are acknowledged once the destination answered 2xx (or
//! they are dead-lettered).

pub mod client;
pub mod dead_letter;
pub mod disk;
pub mod metrics;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc::{self, Receiver, Sender};
use tokio::task::JoinHandle;

use super::{Sink, SinkError, SinkReport};
use crate::backoff::Backoff;
use crate::config::logs::DeliveryConfig;
use crate::logs::event::deliver_all;
use crate::logs::Event;
use client::{Encoded, Endpoint, Outcome};
use dead_letter::DeadLetter;
pub use metrics::{DeliveryFamilies, DeliveryMetrics};

/// How a network sink turns a batch of events into a request body.
pub trait Encode: Send + Sync + 'static {
    /// Encodes `events` (never empty) as one request.
    fn encode(&self, events: &[Event]) -> Encoded;
}

/// Everything the batcher and its requests share.
struct Shared<E> {
    encoder: E,
    endpoint: Endpoint,
    config: DeliveryConfig,
    report: SinkReport,
    metrics: DeliveryMetrics,
    dead_letter: DeadLetter,
    failing: AtomicBool,
}

/// The size of an event as accounted in batches and buffers.
fn size(event: &Event) -> usize {
    event.meta.raw_len.max(1)
}

impl<E: Encode> Shared<E> {
    fn hold(&self, events: &[Event]) {
        self.metrics.memory_events.inc_by(events.len() as i64);
        self.metrics
            .memory_bytes
            .inc_by(events.iter().map(size).sum::<usize>() as i64);
    }

    fn release(&self, events: &[Event]) {
        self.metrics.memory_events.dec_by(events.len() as i64);
        self.metrics
            .memory_bytes
            .dec_by(events.iter().map(size).sum::<usize>() as i64);
    }

    fn succeeded(&self) {
        if self.failing.swap(false, Ordering::AcqRel) {
            tracing::info!(sink = %self.report.name, "sink delivers again");
            self.report.status.sink_recovered(&self.report.name);
        }
    }

    /// Sends one batch until it is delivered, splitting it on a 4xx and
    /// dead-lettering single rejected events.
    async fn deliver(&self, events: Vec<Event>) {
        let mut work = vec![events];
        while let Some(events) = work.pop() {
            let encoded = self.encoder.encode(&events);
            let mut backoff = Backoff::new(self.config.retry_initial, self.config.retry_max);
            loop {
                let started = Instant::now();
                let outcome = self.endpoint.send(&encoded).await;
                self.metrics
                    .duration
                    .observe(started.elapsed().as_secs_f64());
                match outcome {
                    Outcome::Delivered => {
                        self.succeeded();
                        self.report.metrics.delivered.inc_by(events.len() as u64);
                        self.release(&events);
                        deliver_all(events);
                        break;
                    }
                    Outcome::Retry {
                        reason,
                        after,
                        message,
                    } => {
                        self.report.metrics.retry(reason).inc();
                        self.report
                            .status
                            .sink_failed(&self.report.name, reason, message.clone());
                        self.failing.store(true, Ordering::Release);
                        backoff.failed(started);
                        let wait = after.unwrap_or_else(|| {
                            backoff.remaining(Instant::now()).unwrap_or_default()
                        });
                        tracing::warn!(sink = %self.report.name, error = %message, events = events.len(), retry_in = ?wait, "sink request failed; retrying");
                        tokio::time::sleep(wait).await;
                    }
                    Outcome::Rejected { status, message } => {
                        self.succeeded();
                        if events.len() > 1 {
                            let mut first = events;
                            let second = first.split_off(first.len() / 2);
                            work.push(second);
                            work.push(first);
                        } else {
                            self.dead_letter(events, status, &message);
                        }
                        break;
                    }
                }
            }
        }
    }

    fn dead_letter(&self, events: Vec<Event>, status: u16, message: &str) {
        self.release(&events);
        for event in events {
            match self.dead_letter.write(&event, status, message) {
                Ok(()) => {
                    self.metrics.dead_letter.inc();
                    tracing::warn!(sink = %self.report.name, status, error = %message, file = %self.dead_letter.path().display(), "destination rejected an event; dead-lettered");
                    event.delivered();
                }
                Err(error) => {
                    // Not acknowledged: read again after a restart.
                    self.report.metrics.failed.inc();
                    tracing::error!(sink = %self.report.name, %error, file = %self.dead_letter.path().display(), "cannot write a rejected event to the dead-letter file");
                }
            }
        }
    }
}

/// Takes the next batch (at most `max_events` events and about
/// `max_bytes` bytes, at least one event) from the front of `pending`.
fn take_batch(pending: &mut Vec<Event>, bytes: &mut usize, config: &DeliveryConfig) -> Vec<Event> {
    let mut taken = 0;
    let mut count = 0;
    for event in pending.iter() {
        if count > 0
            && (count >= config.batch_max_events || taken + size(event) > config.batch_max_bytes)
        {
            break;
        }
        taken += size(event);
        count += 1;
    }
    *bytes -= taken;
    let rest = pending.split_off(count);
    std::mem::replace(pending, rest)
}

async fn send<E: Encode>(shared: Arc<Shared<E>>, batch: Vec<Event>) {
    shared.deliver(batch).await;
}

/// The batcher: collects events from `input`, cuts batches and keeps up to
/// `in_flight` of them being delivered; returns once `input` is closed and
/// everything is delivered.
async fn batcher<E: Encode>(shared: Arc<Shared<E>>, mut input: Receiver<Vec<Event>>) {
    let config = shared.config.clone();
    let mut pending: Vec<Event> = Vec::new();
    let mut bytes = 0usize;
    let mut oldest = Instant::now();
    let mut open = true;
    let mut in_flight = FuturesUnordered::new();
    loop {
        let full = pending.len() >= config.batch_max_events || bytes >= config.batch_max_bytes;
        let can_send = in_flight.len() < config.in_flight;
        if can_send && !pending.is_empty() && (full || !open) {
            let batch = take_batch(&mut pending, &mut bytes, &config);
            in_flight.push(send(Arc::clone(&shared), batch));
            oldest = Instant::now();
            continue;
        }
        if !open && pending.is_empty() && in_flight.is_empty() {
            return;
        }
        let due = oldest + config.batch_timeout;
        tokio::select! {
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            batch = input.recv(), if open && !full => match batch {
                Some(batch) => {
                    if pending.is_empty() {
                        oldest = Instant::now();
                    }
                    bytes += batch.iter().map(size).sum::<usize>();
                    pending.extend(batch);
                }
                None => open = false,
            },
            () = tokio::time::sleep_until(due.into()), if can_send && !pending.is_empty() => {
                let batch = take_batch(&mut pending, &mut bytes, &config);
                in_flight.push(send(Arc::clone(&shared), batch));
                oldest = Instant::now();
            }
        }
    }
}

/// A network sink: an encoder plus the shared delivery machinery.
pub struct NetworkSink<E: Encode> {
    shared: Arc<Shared<E>>,
    tx: Option<Sender<Vec<Event>>>,
    rx: Option<Receiver<Vec<Event>>>,
    worker: Option<JoinHandle<()>>,
}

impl<E: Encode> std::fmt::Debug for NetworkSink<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkSink")
            .field("sink", &self.shared.report.name)
            .field("url", &self.shared.endpoint.url().as_str())
            .finish()
    }
}

/// What a network sink is built from besides its encoder.
#[derive(Debug)]
pub struct Parts {
    /// Where requests go.
    pub endpoint: Endpoint,
    /// Batching and retry settings.
    pub config: DeliveryConfig,
    /// The sink's name, counters and `/status`.
    pub report: SinkReport,
    /// Buffer, duration and dead-letter metrics.
    pub metrics: DeliveryMetrics,
    /// Where rejected events go.
    pub dead_letter: DeadLetter,
}

impl<E: Encode> NetworkSink<E> {
    /// A sink sending what `encoder` makes of each batch (the batcher starts
    /// at the first write).
    pub fn new(encoder: E, parts: Parts) -> Self {
        let (tx, rx) = mpsc::channel(parts.config.buffer_batches.max(1));
        let config = parts.config;
        // The memory bound: queued batches plus the batches being cut and sent.
        let capacity = (config.buffer_batches + config.in_flight + 1) * config.batch_max_bytes;
        parts.metrics.memory_capacity.set(capacity as i64);
        Self {
            shared: Arc::new(Shared {
                encoder,
                endpoint: parts.endpoint,
                config,
                report: parts.report,
                metrics: parts.metrics,
                dead_letter: parts.dead_letter,
                failing: AtomicBool::new(false),
            }),
            tx: Some(tx),
            rx: Some(rx),
            worker: None,
        }
    }

    fn start(&mut self) {
        if let Some(rx) = self.rx.take() {
            self.worker = Some(tokio::spawn(batcher(Arc::clone(&self.shared), rx)));
        }
    }
}

impl<E: Encode> Drop for NetworkSink<E> {
    /// An abort: batches still in flight are dropped unacknowledged (and
    /// read again after a restart).
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.abort();
        }
    }
}

impl<E: Encode> Sink for NetworkSink<E> {
    async fn write(&mut self, batch: &mut Vec<Event>) -> Result<(), SinkError> {
        self.start();
        let Some(tx) = &self.tx else {
            return Err(SinkError::Unavailable("sink is closed".into()));
        };
        let events = std::mem::take(batch);
        self.shared.hold(&events);
        if let Err(returned) = tx.send(events).await {
            self.shared.release(&returned.0);
            *batch = returned.0;
            return Err(SinkError::Unavailable("delivery task ended".into()));
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.start();
        self.tx = None;
        if let Some(worker) = self.worker.take() {
            worker
                .await
                .map_err(|e| SinkError::Unavailable(format!("delivery task failed: {e}")))?;
        }
        Ok(())
    }
}
