//! The HTTP sink: each batch POSTed as NDJSON (`application/x-ndjson`, one
//! JSON object per line, gzip unless `compression = "none"`) to any endpoint
//! that takes it (Vector's or Fluent Bit's HTTP sources, a custom
//! collector). Delivery is the shared machinery in [`super::delivery`].

use bytes::Bytes;

use super::delivery::client::Encoded;
use super::delivery::Encode;
use super::encode_json_line;
use super::loki::gzip;
use crate::config::logs::Compression;
use crate::logs::Event;

/// Encodes batches as NDJSON.
#[derive(Debug, Clone, Copy)]
pub struct NdjsonEncoder {
    /// Body compression.
    pub compression: Compression,
}

impl Encode for NdjsonEncoder {
    fn encode(&self, events: &[Event]) -> Encoded {
        let mut body = Vec::with_capacity(events.len() * 256);
        for event in events {
            encode_json_line(event, &mut body);
        }
        let (body, content_encoding) = match self.compression {
            Compression::Gzip => (gzip(&body), Some("gzip")),
            Compression::None => (body, None),
        };
        Encoded {
            body: Bytes::from(body),
            content_type: "application/x-ndjson",
            content_encoding,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::logs::stage::tests::object;

    #[test]
    fn one_object_per_line() {
        let encoder = NdjsonEncoder {
            compression: Compression::None,
        };
        let events = [object(json!({"a": 1})), object(json!({"b": "x"}))];
        let encoded = encoder.encode(&events);
        assert_eq!(&encoded.body[..], b"{\"a\":1}\n{\"b\":\"x\"}\n");
        assert_eq!(encoded.content_type, "application/x-ndjson");
    }
}
