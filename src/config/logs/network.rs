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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::{load_from_str, Format};

    fn keys(text: &str) -> Vec<String> {
        match load_from_str(text, Format::Toml, &HashMap::new()) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.0.into_iter().map(|e| e.key).collect(),
        }
    }

    #[test]
    fn network_sinks_and_intake_sources_load_with_every_key() {
        let text = r#"
[logs]
state_dir = "/tmp"
[[logs.sources]]
type = "tcp"
listen = "127.0.0.1:4792"
max_connections = 8
[[logs.sources]]
type = "http"
max_body_bytes = 65536
[[logs.sinks]]
type = "loki"
url = "https://loki:3100"
encoding = "json"
compression = "none"
labels = ["app"]
static_labels = { cluster = "eu" }
timestamp_fields = ["ts"]
tenant_id = "team-a"
username = "u"
password = "p"
headers = { "X-Team" = "chat" }
insecure_skip_verify = true
[logs.sinks.delivery]
batch_max_events = 10
batch_max_bytes = 1000
batch_timeout = "50ms"
in_flight = 2
request_timeout = "1s"
retry_initial = "10ms"
retry_max = "1s"
buffer_batches = 2
disk_buffer_max_bytes = 0
dead_letter_path = "/tmp/dead.jsonl"
[[logs.sinks]]
type = "http"
url = "http://collector/logs"
bearer_token = "t"
"#;
        let config = load_from_str(text, Format::Toml, &HashMap::new()).unwrap();
        let loki = &config.logs.sinks[0];
        assert_eq!(loki.delivery.in_flight, 2);
        assert_eq!(loki.effective_name(), "loki");
        assert_eq!(config.logs.sources[1].effective_listen().port(), 4793);
        assert!(!format!("{loki:?}").contains("\"p\""), "password masked");
    }

    #[test]
    fn bad_network_keys_are_named() {
        let text = r#"
[logs]
state_dir = "/tmp"
[[logs.sources]]
type = "http"
include = ["/x"]
max_connections = 0
[[logs.sinks]]
type = "loki"
username = "u"
static_labels = { "bad-name" = "x" }
[logs.sinks.delivery]
in_flight = 0
retry_max = "0s"
[[logs.sinks]]
type = "http"
url = "ftp://x"
path = "/tmp/x"
"#;
        let mut found = keys(text);
        found.sort();
        assert_eq!(
            found,
            [
                "logs.sinks[0].delivery.in_flight",
                "logs.sinks[0].delivery.retry_max",
                "logs.sinks[0].password",
                "logs.sinks[0].static_labels.bad-name",
                "logs.sinks[0].url",
                "logs.sinks[1].path",
                "logs.sinks[1].url",
                "logs.sources[0].include",
                "logs.sources[0].max_connections",
            ]
        );
    }
}
