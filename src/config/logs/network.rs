//! Options of the network sinks (Loki, HTTP): encodings and the shared
//! delivery settings (`[logs.sinks.delivery]`).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the Loki sink encodes a push request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LokiEncoding {
    /// `application/x-protobuf`, snappy-compressed (Loki's native format).
    Protobuf,
    /// `application/json` (gzip-compressed unless `compression = "none"`).
    Json,
}

/// Body compression of the JSON-based network sinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// `Content-Encoding: gzip`.
    Gzip,
    /// Sent as is.
    None,
}

/// Batching, concurrency, retries and dead letters of one network sink.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// A batch is sent once it holds this many events...
    pub batch_max_events: usize,
    /// ...or this many bytes of events (as read)...
    pub batch_max_bytes: usize,
    /// ...or its oldest event has waited this long.
    #[serde(with = "humantime_serde")]
    pub batch_timeout: Duration,
    /// Batches sent at once; more wait (and hold back the sources).
    pub in_flight: usize,
    /// Longest wait for one request's answer; a timeout is retried.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// First wait before a failed request is retried; doubles (with jitter)
    /// up to `retry_max`. `Retry-After` on 429/503 is honoured (up to 5 minutes).
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest wait between two tries of a failed request.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// Batches of events held in memory between the sink's queue and the
    /// batcher; when they and every in-flight slot are taken, the sink's
    /// queue fills and the sources stop reading (nothing is dropped).
    pub buffer_batches: usize,
    /// Bytes of events the disk buffer may hold (0 = no disk buffer). When
    /// the memory buffer is full (an outage), events are written there and
    /// acknowledged once fsync'd; they are sent once the destination is back,
    /// also after a restart. When it is full too, the sources are held back.
    pub disk_buffer_max_bytes: u64,
    /// Directory of the disk buffer. Default: `<state_dir>/buffer-<sink>`.
    pub disk_buffer_path: Option<PathBuf>,
    /// JSON-lines file receiving events the destination rejects one by one
    /// (a 4xx for a batch is split until the bad events are isolated).
    /// Default: `<state_dir>/dead-letter-<sink>.jsonl`.
    pub dead_letter_path: Option<PathBuf>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            batch_max_events: 1000,
            batch_max_bytes: 1024 * 1024,
            batch_timeout: Duration::from_secs(1),
            in_flight: 4,
            request_timeout: Duration::from_secs(10),
            retry_initial: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
            buffer_batches: 8,
            disk_buffer_max_bytes: 256 * 1024 * 1024,
            disk_buffer_path: None,
            dead_letter_path: None,
        }
    }
}
