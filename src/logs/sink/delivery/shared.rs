//! What the batcher, its requests and the sink's `write` share: sending one
//! batch until it is delivered (retries, splitting, dead letters), buffer
//! accounting, and the disk buffer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::client::{Outcome, Transport};
use super::dead_letter::DeadLetter;
use super::disk::{Chunk, ChunkId, DiskBuffer};
use super::{DeliveryMetrics, Encode};
use crate::backoff::Backoff;
use crate::config::logs::DeliveryConfig;
use crate::logs::event::deliver_all;
use crate::logs::sink::SinkReport;
use crate::logs::Event;

/// Where a batch came from: memory, or a chunk of the disk buffer.
#[derive(Debug, Clone, Copy)]
pub(super) enum Origin {
    Memory,
    Disk(ChunkId),
}

pub(super) struct Shared<E> {
    pub encoder: E,
    pub endpoint: Box<dyn Transport>,
    pub config: DeliveryConfig,
    pub report: SinkReport,
    pub metrics: DeliveryMetrics,
    pub dead_letter: DeadLetter,
    pub disk: Option<Mutex<DiskBuffer>>,
    /// Woken when events were spilled to disk.
    pub spilled: tokio::sync::Notify,
    /// Cancelled when the sink flushes at shutdown: batches that fail from
    /// then on go to the disk buffer (acknowledged) instead of being retried.
    pub closing: tokio_util::sync::CancellationToken,
    /// Woken when requests start failing (a blocked write may spill then).
    pub failed: tokio::sync::Notify,
    pub failing: AtomicBool,
    /// Whether the disk buffer holds unread records (kept beside the lock so
    /// the batcher never waits on a disk write to find out).
    pub disk_unread: AtomicBool,
}

/// The size of an event as accounted in batches and buffers.
pub(super) fn size(event: &Event) -> usize {
    event.meta.raw_len.max(1)
}

impl<E: Encode> Shared<E> {
    pub fn hold(&self, events: &[Event]) {
        self.metrics.memory_events.inc_by(events.len() as i64);
        self.metrics
            .memory_bytes
            .inc_by(events.iter().map(size).sum::<usize>() as i64);
    }

    pub fn release(&self, events: &[Event]) {
        self.metrics.memory_events.dec_by(events.len() as i64);
        self.metrics
            .memory_bytes
            .dec_by(events.iter().map(size).sum::<usize>() as i64);
    }

    /// Runs `op` on the disk buffer (blocking: call from `spawn_blocking`)
    /// and updates its gauges.
    pub fn with_disk<T>(&self, op: impl FnOnce(&mut DiskBuffer) -> T) -> Option<T> {
        let disk = self.disk.as_ref()?;
        let mut disk = disk.lock().unwrap_or_else(|e| e.into_inner());
        let result = op(&mut disk);
        self.disk_unread.store(disk.has_unread(), Ordering::Release);
        self.metrics.disk_events.set(disk.events() as i64);
        self.metrics.disk_bytes.set(disk.bytes() as i64);
        Some(result)
    }

    /// Whether the disk buffer holds unread records.
    pub fn disk_unread(&self) -> bool {
        self.disk
            .as_ref()
            .is_some_and(|disk| disk.lock().unwrap_or_else(|e| e.into_inner()).has_unread())
    }

    /// Writes `events` to the disk buffer and acknowledges them; gives them
    /// back when there is no room (or the write failed).
    pub async fn spill(self: &Arc<Self>, events: Vec<Event>) -> Option<Vec<Event>> {
        if self.disk.is_none() {
            return Some(events);
        }
        let shared = Arc::clone(self);
        let (events, result) = match tokio::task::spawn_blocking(move || {
            let result = shared.with_disk(|disk| disk.append(&events));
            (events, result)
        })
        .await
        {
            Ok(done) => done,
            Err(error) => {
                // The events went down with the task, unacknowledged: read again after a restart.
                tracing::error!(sink = %self.report.name, %error, "disk buffer write panicked");
                return None;
            }
        };
        match result {
            Some(Ok(true)) => {
                self.release(&events);
                self.report.metrics.delivered.inc_by(events.len() as u64);
                deliver_all(events);
                self.spilled.notify_one();
                None
            }
            Some(Ok(false)) | None => Some(events),
            Some(Err(error)) => {
                self.report.metrics.retry("io").inc();
                tracing::warn!(sink = %self.report.name, %error, "cannot write to the disk buffer; holding the sources back instead");
                Some(events)
            }
        }
    }

    /// Reads the next chunk of the disk buffer (blocking).
    pub fn read_disk(&self) -> Option<Chunk> {
        match self.with_disk(|disk| disk.read(self.config.batch_max_events))? {
            Ok(chunk) => chunk,
            Err(error) => {
                tracing::warn!(sink = %self.report.name, %error, "cannot read the disk buffer");
                None
            }
        }
    }

    /// Whether the last request failed.
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    fn succeeded(&self) {
        if self.failing.swap(false, Ordering::AcqRel) {
            tracing::info!(sink = %self.report.name, "sink delivers again");
            self.report.status.sink_recovered(&self.report.name);
        }
    }

    /// Sends one batch until it is delivered, splitting it on a 4xx and
    /// dead-lettering single rejected events; then releases its origin. A
    /// memory batch whose request fails goes to the disk buffer when it has
    /// room (it is retried from there), else it is retried here.
    pub async fn deliver(self: Arc<Self>, events: Vec<Event>, origin: Origin) {
        let mut work = vec![events];
        // A rejected event the dead-letter file could not take.
        let mut not_dead_lettered = false;
        while let Some(mut events) = work.pop() {
            if events.is_empty() {
                // Only undecodable disk records: nothing to send.
                continue;
            }
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
                        if matches!(origin, Origin::Memory) {
                            // Events from disk were counted when spilled.
                            self.report.metrics.delivered.inc_by(events.len() as u64);
                        }
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
                        if !self.failing.swap(true, Ordering::AcqRel) {
                            self.failed.notify_one();
                        }
                        backoff.failed(started);
                        let wait = after.unwrap_or_else(|| {
                            backoff.remaining(Instant::now()).unwrap_or_default()
                        });
                        if self.closing.is_cancelled() {
                            work.push(events);
                            self.park(work, origin).await;
                            return;
                        }
                        if matches!(origin, Origin::Memory) && self.disk.is_some() {
                            // Safe on disk (acknowledged), so the sources'
                            // checkpoints pass it; retried from there.
                            match self.spill(events).await {
                                None => break,
                                Some(back) => events = back, // no room: retry from memory
                            }
                        }
                        tracing::warn!(sink = %self.report.name, error = %message, events = events.len(), retry_in = ?wait, "sink request failed; retrying");
                        tokio::select! {
                            () = tokio::time::sleep(wait) => {}
                            () = self.closing.cancelled() => {}
                        }
                    }
                    Outcome::Rejected { status, message } => {
                        self.succeeded();
                        if events.len() > 1 {
                            let mut first = events;
                            let second = first.split_off(first.len() / 2);
                            work.push(second);
                            work.push(first);
                        } else if !self.dead_letter(events, status, &message) {
                            not_dead_lettered = true;
                        }
                        break;
                    }
                }
            }
        }
        if let (Origin::Disk(_), true) = (origin, not_dead_lettered) {
            // Its record stays in the buffer, to be read again after a
            // restart, rather than being lost.
            tracing::error!(sink = %self.report.name, "a rejected event from the disk buffer could not be dead-lettered; it stays in the buffer");
        } else if let Origin::Disk(chunk) = origin {
            let shared = Arc::clone(&self);
            let _ =
                tokio::task::spawn_blocking(move || shared.with_disk(|disk| disk.delivered(chunk)))
                    .await;
        }
    }

    /// At shutdown, with the destination failing: memory batches go to the
    /// disk buffer (acknowledged, sent after the restart); what does not fit
    /// stays unacknowledged (read again from its source). Disk batches just
    /// stay on disk.
    async fn park(self: &Arc<Self>, work: Vec<Vec<Event>>, origin: Origin) {
        if !matches!(origin, Origin::Memory) {
            return;
        }
        for events in work {
            let count = events.len();
            match self.spill(events).await {
                None => {
                    tracing::info!(sink = %self.report.name, events = count, "destination unavailable at shutdown; events kept in the disk buffer");
                }
                Some(events) => self.release(&events),
            }
        }
    }

    /// Writes rejected events to the dead-letter file; false when one
    /// could not be written (it stays unacknowledged).
    fn dead_letter(&self, events: Vec<Event>, status: u16, message: &str) -> bool {
        self.release(&events);
        let mut all_written = true;
        for event in events {
            match self.dead_letter.write(&event, status, message) {
                Ok(()) => {
                    self.metrics.dead_letter.inc();
                    tracing::warn!(sink = %self.report.name, status, error = %message, file = %self.dead_letter.path().display(), "destination rejected an event; dead-lettered");
                    event.delivered();
                }
                Err(error) => {
                    // Not acknowledged: read again after a restart.
                    all_written = false;
                    self.report.metrics.failed.inc();
                    tracing::error!(sink = %self.report.name, %error, file = %self.dead_letter.path().display(), "cannot write a rejected event to the dead-letter file");
                }
            }
        }
        all_written
    }
}
