//! Delivery shared by the network sinks (Loki, HTTP, OTLP).
//!
//! ```text
//!  Sink::write ──bounded (buffer_batches)──► batcher ──► up to `in_flight` requests
//!       │                                   (size / age)   retry with backoff + jitter,
//!       │ while failing                          │          Retry-After on 429/503;
//!       ▼                                        ▼          4xx → split → dead letter
//!  disk buffer ◄── while failing: queued events and failed memory batches
//!       └────────► batcher (read back; retried in place)
//! ```
//!
//! [`NetworkSink::write`] moves the events into a bounded channel; a batcher
//! task cuts batches by count, bytes and age and sends several at once. A
//! batch is retried until the destination takes it. Events are acknowledged
//! once the destination answered 2xx, once they are fsync'd in the disk
//! buffer, or once they are dead-lettered.
//!
//! During an outage (the last request failed) memory drains to the disk
//! buffer, if the sink has one: a memory batch whose request fails is
//! written there instead of being retried from memory, the batcher moves
//! what it queued there instead of cutting requests that would fail, and
//! `write` puts new events there. So the sources' checkpoints pass
//! everything read, and a crash during an outage repeats only the few
//! batches in flight. Batches read from disk are retried in place (they are
//! safe already); each segment's delivery marker records how far it is
//! delivered, so a crash while the buffer drains repeats only the chunks in
//! flight too. When the disk is full too, memory batches are retried in
//! memory as without a disk buffer: the sink's `write` stops returning, its
//! queue fills and the sources stop reading (files are their own buffer);
//! nothing is dropped. A 4xx that names the content (400, 413, 422, ...) is
//! split in halves until the bad events stand alone; each is written to the
//! dead-letter file, counted, and acknowledged, so one bad event never
//! blocks the stream.

mod batcher;
pub mod client;
pub mod dead_letter;
pub mod disk;
pub mod metrics;
mod shared;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::{self, Receiver, Sender};
use tokio::task::JoinHandle;

use super::{Sink, SinkError, SinkReport};
use crate::config::logs::DeliveryConfig;
use crate::logs::Event;
use client::{Encoded, Transport};
use dead_letter::DeadLetter;
use disk::DiskBuffer;
pub use metrics::{DeliveryFamilies, DeliveryMetrics};
use shared::Shared;

/// How a network sink turns a batch of events into a request body.
pub trait Encode: Send + Sync + 'static {
    /// Encodes `events` (never empty) as one request.
    fn encode(&self, events: &[Event]) -> Encoded;
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
            .field("url", &self.shared.endpoint.describe())
            .finish()
    }
}

/// What a network sink is built from besides its encoder.
pub struct Parts {
    /// Where requests go.
    pub endpoint: Box<dyn Transport>,
    /// Batching and retry settings.
    pub config: DeliveryConfig,
    /// The sink's name, counters and `/status`.
    pub report: SinkReport,
    /// Buffer, duration and dead-letter metrics.
    pub metrics: DeliveryMetrics,
    /// Where rejected events go.
    pub dead_letter: DeadLetter,
    /// Where events go during an outage (none: memory holds them, then the sources are held back).
    pub disk: Option<DiskBuffer>,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field("endpoint", &self.endpoint.describe())
            .field("sink", &self.report.name)
            .finish()
    }
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
        let disk_unread = parts.disk.as_ref().is_some_and(DiskBuffer::has_unread);
        if let Some(disk) = &parts.disk {
            parts
                .metrics
                .disk_capacity
                .set(config.disk_buffer_max_bytes as i64);
            parts.metrics.disk_events.set(disk.events() as i64);
            parts.metrics.disk_bytes.set(disk.bytes() as i64);
        }
        Self {
            shared: Arc::new(Shared {
                encoder,
                endpoint: parts.endpoint,
                config,
                report: parts.report,
                metrics: parts.metrics,
                dead_letter: parts.dead_letter,
                disk: parts.disk.map(Mutex::new),
                spilled: tokio::sync::Notify::new(),
                closing: tokio_util::sync::CancellationToken::new(),
                failed: tokio::sync::Notify::new(),
                failing: AtomicBool::new(false),
                disk_unread: AtomicBool::new(disk_unread),
            }),
            tx: Some(tx),
            rx: Some(rx),
            worker: None,
        }
    }

    /// Starts the batcher (at the latest at the first write), so a disk
    /// buffer left by an earlier run is drained without waiting for new events.
    pub fn start(&mut self) {
        if let Some(rx) = self.rx.take() {
            self.worker = Some(tokio::spawn(batcher::run(Arc::clone(&self.shared), rx)));
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
        let mut events = std::mem::take(batch);
        self.shared.hold(&events);
        let mut spilled_once = false;
        loop {
            // While the destination fails, events go to disk; a slow but
            // healthy destination just holds the sources back.
            if self.shared.failing() && !spilled_once && self.shared.disk.is_some() {
                match self.shared.spill(events).await {
                    None => return Ok(()),
                    Some(back) => {
                        // No room on disk: wait for memory.
                        events = back;
                        spilled_once = true;
                    }
                }
            }
            tokio::select! {
                permit = tx.reserve() => match permit {
                    Ok(permit) => {
                        permit.send(events);
                        return Ok(());
                    }
                    Err(_) => break,
                },
                () = self.shared.failed.notified(), if !spilled_once => {}
            }
        }
        self.shared.release(&events);
        *batch = events;
        Err(SinkError::Unavailable("delivery task ended".into()))
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.start();
        self.shared.closing.cancel();
        self.tx = None;
        if let Some(worker) = self.worker.take() {
            worker
                .await
                .map_err(|e| SinkError::Unavailable(format!("delivery task failed: {e}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
