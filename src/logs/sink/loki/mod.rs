//! The Loki sink: events pushed to `/loki/api/v1/push`, grouped into streams
//! by a few configured fields (low cardinality; the line keeps every field, so
//! `{app="…"} | json | request_id="…"` works), each entry stamped with the
//! app's timestamp when it parses, else the read time, entries sorted per
//! stream. Encoded as snappy-compressed protobuf (Loki's native format) or
//! JSON (gzip optional). Delivery is the shared machinery in [`super::delivery`].

pub mod proto;
pub mod timestamp;

use std::collections::HashMap;
use std::io::Write;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use prost::Message;
use serde_json::Value;

use super::delivery::client::Encoded;
use super::delivery::Encode;
use crate::config::logs::{Compression, LogSinkConfig, LokiEncoding};
use crate::logs::{Event, Fields};

/// The push path appended to a URL given without one.
pub const PUSH_PATH: &str = "/loki/api/v1/push";
/// Longest label value sent (Loki's default limit is 2048).
const MAX_LABEL_VALUE: usize = 1024;

/// Whether `name` is a valid Loki/Prometheus label name.
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A field name as a label name: other characters become `_`.
fn label_name(field: &str) -> String {
    let mut name: String = field
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// The push URL for a configured Loki URL (the path added when missing).
pub fn push_url(url: &url::Url) -> url::Url {
    let mut url = url.clone();
    if url.path().is_empty() || url.path() == "/" {
        url.set_path(PUSH_PATH);
    }
    url
}

/// Looks up `name` in `fields`: as a key first, then as a dotted path.
fn lookup<'a>(fields: &'a Fields, name: &str) -> Option<&'a Value> {
    if let Some(value) = fields.get(name) {
        return Some(value);
    }
    let mut parts = name.split('.');
    let mut value = fields.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    Some(value)
}

/// Encodes batches as Loki push requests.
#[derive(Debug, Clone)]
pub struct LokiEncoder {
    labels: Vec<(String, String)>,
    static_labels: Vec<(String, String)>,
    timestamp_fields: Vec<String>,
    encoding: LokiEncoding,
    compression: Compression,
}

/// One stream of a request being built.
struct Stream {
    labels: Vec<(String, String)>,
    rendered: String,
    entries: Vec<(i64, String)>,
}

impl LokiEncoder {
    /// The encoder for a `type = "loki"` sink.
    pub fn new(config: &LogSinkConfig) -> Self {
        Self {
            labels: config
                .labels
                .iter()
                .map(|field| (label_name(field), field.clone()))
                .collect(),
            static_labels: config
                .static_labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            timestamp_fields: config.timestamp_fields.clone(),
            encoding: config.encoding,
            compression: config.compression,
        }
    }

    /// The sorted label set of `event`; never empty (`source` when nothing else).
    fn label_set(&self, event: &Event) -> Vec<(String, String)> {
        let mut set = self.static_labels.clone();
        for (name, field) in &self.labels {
            let value = match lookup(&event.fields, field) {
                Some(Value::String(s)) => s.clone(),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
                _ => continue,
            };
            if value.is_empty() {
                continue;
            }
            let mut cut = value.len().min(MAX_LABEL_VALUE);
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            set.retain(|(n, _)| n != name);
            set.push((name.clone(), value[..cut].to_owned()));
        }
        if set.is_empty() {
            set.push(("source".into(), event.meta.source.name.clone()));
        }
        set.sort();
        set
    }

    /// The entry timestamp in nanoseconds: the app's, else the read time.
    fn timestamp(&self, event: &Event) -> i64 {
        self.timestamp_fields
            .iter()
            .find_map(|field| lookup(&event.fields, field).and_then(timestamp::parse))
            .unwrap_or_else(|| {
                event
                    .meta
                    .read_at
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
                    .unwrap_or(0)
            })
    }

    fn streams(&self, events: &[Event]) -> Vec<Stream> {
        let mut streams: Vec<Stream> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for event in events {
            let labels = self.label_set(event);
            let rendered = render(&labels);
            let line = serde_json::to_string(&event.fields).unwrap_or_default();
            let entry = (self.timestamp(event), line);
            match index.get(&rendered) {
                Some(&i) => streams[i].entries.push(entry),
                None => {
                    index.insert(rendered.clone(), streams.len());
                    streams.push(Stream {
                        labels,
                        rendered,
                        entries: vec![entry],
                    });
                }
            }
        }
        for stream in &mut streams {
            // Stable: lines with one timestamp keep their order.
            stream.entries.sort_by_key(|(ts, _)| *ts);
        }
        streams
    }
}

/// A label set in Prometheus text form, as the protobuf push wants it.
fn render(labels: &[(String, String)]) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// Gzips `body` (in memory, cannot fail).
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

impl Encode for LokiEncoder {
    fn encode(&self, events: &[Event]) -> Encoded {
        let streams = self.streams(events);
        match self.encoding {
            LokiEncoding::Protobuf => {
                let request = proto::PushRequest {
                    streams: streams
                        .into_iter()
                        .map(|s| proto::StreamAdapter {
                            labels: s.rendered,
                            entries: s
                                .entries
                                .into_iter()
                                .map(|(ts, line)| proto::EntryAdapter {
                                    timestamp: Some(proto::Timestamp::from_nanos(ts)),
                                    line,
                                })
                                .collect(),
                            hash: 0,
                        })
                        .collect(),
                };
                let raw = request.encode_to_vec();
                let body = snap::raw::Encoder::new()
                    .compress_vec(&raw)
                    .unwrap_or_default();
                Encoded {
                    body: Bytes::from(body),
                    content_type: "application/x-protobuf",
                    content_encoding: None,
                }
            }
            LokiEncoding::Json => {
                let streams: Vec<Value> = streams
                    .into_iter()
                    .map(|s| {
                        let labels: serde_json::Map<String, Value> = s
                            .labels
                            .into_iter()
                            .map(|(k, v)| (k, Value::String(v)))
                            .collect();
                        let values: Vec<Value> = s
                            .entries
                            .into_iter()
                            .map(|(ts, line)| {
                                Value::Array(vec![
                                    Value::String(ts.to_string()),
                                    Value::String(line),
                                ])
                            })
                            .collect();
                        serde_json::json!({"stream": labels, "values": values})
                    })
                    .collect();
                let body = serde_json::to_vec(&serde_json::json!({ "streams": streams }))
                    .unwrap_or_default();
                let (body, content_encoding) = match self.compression {
                    Compression::Gzip => (gzip(&body), Some("gzip")),
                    Compression::None => (body, None),
                };
                Encoded {
                    body: Bytes::from(body),
                    content_type: "application/json",
                    content_encoding,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
