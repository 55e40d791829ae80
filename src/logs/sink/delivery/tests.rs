//! The delivery machinery against an in-memory destination that can fail:
//! an outage drains memory to the disk buffer (so every event read is
//! acknowledged and a crash repeats nothing but what was in flight), and a
//! full disk falls back to retrying from memory.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::sync::mpsc::{self, UnboundedReceiver};

use super::client::{Encoded, Outcome, Transport};
use super::*;
use crate::admin::status::StatusBoard;
use crate::logs::ack::{AckToken, Acked};
use crate::logs::metrics::Metrics;
use crate::logs::stage::tests::event;

/// Encodes the `i` field of each event, comma-separated.
struct Ids;

impl Encode for Ids {
    fn encode(&self, events: &[Event]) -> Encoded {
        let ids: Vec<String> = events
            .iter()
            .map(|e| {
                e.fields
                    .get("i")
                    .and_then(|v| v.as_u64())
                    .unwrap()
                    .to_string()
            })
            .collect();
        Encoded {
            body: Bytes::from(ids.join(",")),
            content_type: "text/plain",
            content_encoding: None,
        }
    }
}

/// A destination that refuses while `down`, rejects every event (400) while
/// `rejecting`, else records the ids it got.
#[derive(Clone, Default)]
struct Destination {
    down: Arc<AtomicBool>,
    rejecting: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    received: Arc<Mutex<Vec<u64>>>,
}

impl Transport for Destination {
    fn send<'a>(
        &'a self,
        body: &'a Encoded,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>> {
        Box::pin(async move {
            self.requests.fetch_add(1, Ordering::Relaxed);
            if self.down.load(Ordering::Relaxed) {
                return Outcome::Retry {
                    reason: "unavailable",
                    after: None,
                    message: "connection refused".into(),
                };
            }
            if self.rejecting.load(Ordering::Relaxed) {
                return Outcome::Rejected {
                    status: 400,
                    message: "bad event".into(),
                };
            }
            let text = std::str::from_utf8(&body.body).unwrap();
            let ids = text.split(',').map(|i| i.parse::<u64>().unwrap());
            self.received.lock().unwrap().extend(ids);
            Outcome::Delivered
        })
    }

    fn describe(&self) -> String {
        "test".into()
    }
}

const BATCH: usize = 10;
const IN_FLIGHT: usize = 2;

struct Built {
    sink: NetworkSink<Ids>,
    metrics: DeliveryMetrics,
    delivered: prometheus_client::metrics::counter::Counter,
}

fn build(dir: &std::path::Path, destination: &Destination, disk_max: u64) -> Built {
    build_with(dir, destination, disk_max, &dir.join("dead.jsonl"))
}

fn build_with(
    dir: &std::path::Path,
    destination: &Destination,
    disk_max: u64,
    dead_letter: &std::path::Path,
) -> Built {
    let config = crate::config::logs::DeliveryConfig {
        batch_max_events: BATCH,
        batch_timeout: Duration::from_millis(20),
        in_flight: IN_FLIGHT,
        retry_initial: Duration::from_millis(10),
        retry_max: Duration::from_millis(40),
        buffer_batches: 2,
        disk_buffer_max_bytes: disk_max,
        ..Default::default()
    };
    let (disk, _) = DiskBuffer::open(&dir.join("buffer"), disk_max).unwrap();
    let sink_metrics = Metrics::register(&mut Registry::default()).sink("test");
    let metrics = DeliveryMetrics::detached("test");
    let parts = Parts {
        endpoint: Box::new(destination.clone()),
        config,
        report: SinkReport {
            name: "test".into(),
            metrics: sink_metrics.clone(),
            status: StatusBoard::default(),
        },
        metrics: metrics.clone(),
        dead_letter: DeadLetter::new("test", dead_letter),
        disk: Some(disk),
    };
    Built {
        sink: NetworkSink::new(Ids, parts),
        metrics,
        delivered: sink_metrics.delivered,
    }
}

/// Writes events `0..n` in batches of `BATCH`, one acknowledgement token
/// per batch; returns the receiver of the acknowledgements.
async fn write(sink: &mut NetworkSink<Ids>, n: u64) -> UnboundedReceiver<Acked> {
    let (tx, acks) = mpsc::unbounded_channel();
    for start in (0..n).step_by(BATCH) {
        let token = AckToken::new(1, start, start + BATCH as u64, tx.clone());
        let mut batch: Vec<Event> = (start..start + BATCH as u64)
            .map(|i| {
                let serde_json::Value::Object(fields) = json!({ "i": i }) else {
                    unreachable!()
                };
                Event::from_fields(fields.into(), event(b"").meta, Some(token.reference()))
            })
            .collect();
        tokio::time::timeout(Duration::from_secs(10), sink.write(&mut batch))
            .await
            .expect("write returns")
            .unwrap();
    }
    acks
}

/// Collects acknowledgements until `count` arrived or `timeout` passed.
async fn acked(acks: &mut UnboundedReceiver<Acked>, count: usize, timeout: Duration) -> Vec<Acked> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while got.len() < count {
        match tokio::time::timeout_at(deadline, acks.recv()).await {
            Ok(Some(acked)) => got.push(acked),
            _ => break,
        }
    }
    got
}

async fn wait_received(destination: &Destination, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while destination.received.lock().unwrap().len() < count {
        assert!(Instant::now() < deadline, "not all events arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_drains_memory_to_disk_and_a_crash_repeats_nothing() {
    const N: u64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let destination = Destination::default();
    destination.down.store(true, Ordering::Relaxed);
    let mut built = build(dir.path(), &destination, 1 << 20);
    let mut acks = write(&mut built.sink, N).await;
    let got = acked(&mut acks, N as usize / BATCH, Duration::from_secs(10)).await;
    assert_eq!(got.len(), N as usize / BATCH, "every batch acknowledged");
    assert!(got.iter().all(|a| a.delivered), "acknowledged as delivered");
    assert!(destination.requests.load(Ordering::Relaxed) > 0);
    assert!(destination.received.lock().unwrap().is_empty());
    assert_eq!(built.metrics.disk_events.get(), N as i64, "all on disk");
    assert!(
        built.metrics.memory_events.get() <= (IN_FLIGHT * BATCH) as i64,
        "memory holds at most the disk batches in flight: {}",
        built.metrics.memory_events.get()
    );
    assert_eq!(built.delivered.get(), N, "counted once, when spilled");

    // A crash: the sink goes away without a flush; the next run sends the
    // disk buffer, and the source (whose checkpoint passed everything) reads
    // nothing again.
    drop(built);
    destination.down.store(false, Ordering::Relaxed);
    let mut again = build(dir.path(), &destination, 1 << 20);
    again.sink.start();
    wait_received(&destination, N as usize).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while again.metrics.disk_events.get() != 0 {
        assert!(Instant::now() < deadline, "disk buffer not drained");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut received = destination.received.lock().unwrap().clone();
    received.sort_unstable();
    assert_eq!(received, (0..N).collect::<Vec<_>>(), "each event once");
    assert_eq!(again.metrics.memory_events.get(), 0);
    assert_eq!(again.delivered.get(), 0, "already counted by the first run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_disk_full_memory_batches_are_retried_in_memory() {
    const N: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let destination = Destination::default();
    destination.down.store(true, Ordering::Relaxed);
    // Too small for any batch; memory (2 in flight, 1 cut, 2 queued
    // batches) holds them all, so the writes return.
    let mut built = build(dir.path(), &destination, 64);
    let mut acks = write(&mut built.sink, N).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(acks.try_recv().is_err(), "nothing acknowledged while down");
    let requests = destination.requests.load(Ordering::Relaxed);
    // Two requests in flight, backing off 10 → 40 ms: about 25 in 500 ms;
    // a retry loop that does not wait would send thousands.
    assert!(
        (2..=80).contains(&requests),
        "{requests} requests in 500 ms"
    );
    destination.down.store(false, Ordering::Relaxed);
    let got = acked(&mut acks, N as usize / BATCH, Duration::from_secs(10)).await;
    assert_eq!(got.len(), N as usize / BATCH);
    assert!(got.iter().all(|a| a.delivered));
    let mut received = destination.received.lock().unwrap().clone();
    received.sort_unstable();
    assert_eq!(received, (0..N).collect::<Vec<_>>(), "each event once");
    assert_eq!(built.metrics.memory_events.get(), 0);
    assert_eq!(built.delivered.get(), N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_disk_record_that_cannot_be_dead_lettered_stays_in_the_buffer() {
    const N: u64 = 20;
    let dir = tempfile::tempdir().unwrap();
    let destination = Destination::default();
    destination.down.store(true, Ordering::Relaxed);
    let mut built = build(dir.path(), &destination, 1 << 20);
    let mut acks = write(&mut built.sink, N).await;
    assert_eq!(
        acked(&mut acks, N as usize / BATCH, Duration::from_secs(10))
            .await
            .len(),
        2
    );
    drop(built);
    // The aborted batcher may still be inside a retry for a moment: let it
    // go before the destination changes, so it cannot deliver anything.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The next run: every event is rejected and the dead-letter file cannot
    // be created (its directory is a regular file).
    destination.down.store(false, Ordering::Relaxed);
    destination.rejecting.store(true, Ordering::Relaxed);
    std::fs::write(dir.path().join("not-a-dir"), b"").unwrap();
    let unwritable = dir.path().join("not-a-dir").join("dead.jsonl");
    let mut again = build_with(dir.path(), &destination, 1 << 20, &unwritable);
    again.sink.start();
    let deadline = Instant::now() + Duration::from_secs(10);
    // Each record goes alone once its batch was split: N single requests at least.
    while destination.requests.load(Ordering::Relaxed) < 2 + N {
        assert!(Instant::now() < deadline, "the buffer was not sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(again);
    let (disk, recovered) = DiskBuffer::open(&dir.path().join("buffer"), 1 << 20).unwrap();
    assert_eq!(recovered.records, N, "every record kept for the next run");
    assert_eq!(disk.events(), N);
}
