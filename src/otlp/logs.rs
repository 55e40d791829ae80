//! Log events as OTLP log records (the `otlp` log sink's encoder).
//!
//! - `time_unix_nano`: the first of the sink's `timestamp_fields` that
//!   parses (RFC 3339 or epoch s/ms/µs/ns), else the read time;
//!   `observed_time_unix_nano`: the read time. The field used is not repeated
//!   as an attribute.
//! - `severity_text`: `level` (or `severity`, `lvl`) as written;
//!   `severity_number` from it (`trace`…`fatal`, syslog names, pino/bunyan
//!   numbers 10…60).
//! - `body`: the message field (`logs.stages.parse.message_field`, or `msg`).
//! - `trace_id` / `span_id` (32 / 16 hex digits, not all zero) into the
//!   record's trace-context fields, `trace_flags` into `flags`; an invalid
//!   value stays an attribute, so nothing is lost.
//! - every other field: an attribute (objects as key-value lists, arrays as
//!   arrays, integers as ints, other numbers as doubles); the file path as
//!   `log.file.path`.

use std::sync::Arc;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use serde_json::Value;

use super::{hex_id, unix_nanos};
use crate::logs::sink::delivery::client::Encoded;
use crate::logs::sink::delivery::Encode;
use crate::logs::sink::loki::timestamp;
use crate::logs::Event;

/// Fields read as the severity, first present wins.
const LEVEL_FIELDS: [&str; 3] = ["level", "severity", "lvl"];

/// Encodes batches as `ExportLogsServiceRequest`s (uncompressed; the
/// transport compresses).
#[derive(Debug, Clone)]
pub struct LogEncoder {
    resource: Arc<Resource>,
    message_fields: [String; 2],
    timestamp_fields: Vec<String>,
}

impl LogEncoder {
    /// An encoder taking the body from `message_field` (else `msg`) and the
    /// time from the first of `timestamp_fields` that parses.
    pub fn new(resource: Arc<Resource>, message_field: &str, timestamp_fields: &[String]) -> Self {
        Self {
            resource,
            message_fields: [message_field.to_owned(), "msg".to_owned()],
            timestamp_fields: timestamp_fields.to_vec(),
        }
    }

    /// The request for `events`.
    pub fn request(&self, events: &[Event]) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some((*self.resource).clone()),
                scope_logs: vec![ScopeLogs {
                    scope: Some(super::scope()),
                    log_records: events.iter().map(|e| self.record(e)).collect(),
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        }
    }

    /// One event as a log record.
    pub fn record(&self, event: &Event) -> LogRecord {
        let observed = unix_nanos(event.meta.read_at);
        let mut record = LogRecord {
            observed_time_unix_nano: observed,
            attributes: Vec::with_capacity(event.fields.len()),
            ..LogRecord::default()
        };
        let time_field = self.timestamp_fields.iter().find_map(|name| {
            let nanos = event.fields.get(name).and_then(timestamp::parse)?;
            Some((name.as_str(), nanos))
        });
        record.time_unix_nano = match time_field {
            Some((_, nanos)) => u64::try_from(nanos).unwrap_or_default(),
            None => observed,
        };
        let level_field = LEVEL_FIELDS.into_iter().find(|name| {
            matches!(
                event.fields.get(name),
                Some(Value::String(_) | Value::Number(_))
            )
        });
        let body_field = self
            .message_fields
            .iter()
            .map(String::as_str)
            .find(|name| event.fields.contains_key(name));
        for (key, value) in event.fields.iter() {
            if Some(key) == time_field.map(|(name, _)| name) {
                continue;
            }
            if Some(key) == level_field {
                let (text, number) = severity(value);
                record.severity_text = text;
                record.severity_number = number as i32;
                continue;
            }
            if Some(key) == body_field {
                record.body = Some(any(value));
                continue;
            }
            match (key, value) {
                ("trace_id", Value::String(s)) => {
                    if let Some(id) = hex_id::<16>(s) {
                        record.trace_id = id.to_vec();
                        continue;
                    }
                }
                ("span_id", Value::String(s)) => {
                    if let Some(id) = hex_id::<8>(s) {
                        record.span_id = id.to_vec();
                        continue;
                    }
                }
                ("trace_flags", Value::Number(n)) if n.as_u64().is_some_and(|f| f <= 0xff) => {
                    record.flags = n.as_u64().unwrap_or_default() as u32;
                    continue;
                }
                ("trace_flags", Value::String(s)) if s.len() == 2 => {
                    if let Ok(flags) = u8::from_str_radix(s, 16) {
                        record.flags = u32::from(flags);
                        continue;
                    }
                }
                _ => {}
            }
            if value.is_null() {
                continue;
            }
            record.attributes.push(key_value(key, value));
        }
        if let Some(path) = &event.meta.path {
            record.attributes.push(KeyValue {
                key: "log.file.path".into(),
                value: Some(string(path.to_string_lossy().into_owned())),
                ..KeyValue::default()
            });
        }
        record
    }
}

impl Encode for LogEncoder {
    fn encode(&self, events: &[Event]) -> Encoded {
        Encoded {
            body: Bytes::from(self.request(events).encode_to_vec()),
            content_type: "application/x-protobuf",
            content_encoding: None,
        }
    }
}

/// The severity text as written and its number.
pub fn severity(value: &Value) -> (String, SeverityNumber) {
    match value {
        Value::Number(n) => {
            let number = match n.as_u64().unwrap_or_default() {
                0..=10 => SeverityNumber::Trace,
                11..=20 => SeverityNumber::Debug,
                21..=30 => SeverityNumber::Info,
                31..=40 => SeverityNumber::Warn,
                41..=50 => SeverityNumber::Error,
                _ => SeverityNumber::Fatal,
            };
            (n.to_string(), number)
        }
        Value::String(s) => {
            let number = match s.trim().to_ascii_lowercase().as_str() {
                "trace" | "finest" | "finer" => SeverityNumber::Trace,
                "debug" | "dbug" | "fine" | "verbose" => SeverityNumber::Debug,
                "info" | "information" | "informational" | "notice" => SeverityNumber::Info,
                "warn" | "warning" => SeverityNumber::Warn,
                "error" | "err" | "severe" => SeverityNumber::Error,
                "fatal" | "critical" | "crit" | "alert" | "emerg" | "emergency" | "panic" => {
                    SeverityNumber::Fatal
                }
                _ => SeverityNumber::Unspecified,
            };
            (s.clone(), number)
        }
        _ => (String::new(), SeverityNumber::Unspecified),
    }
}

fn string(s: String) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s)),
    }
}

fn key_value(key: &str, value: &Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(any(value)),
        ..KeyValue::default()
    }
}

/// A JSON value as an OTLP `AnyValue`.
pub fn any(value: &Value) -> AnyValue {
    let value = match value {
        Value::Null => None,
        Value::Bool(b) => Some(any_value::Value::BoolValue(*b)),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64().unwrap_or_default()),
        }),
        Value::String(s) => Some(any_value::Value::StringValue(s.clone())),
        Value::Array(items) => Some(any_value::Value::ArrayValue(ArrayValue {
            values: items.iter().map(any).collect(),
        })),
        Value::Object(map) => Some(any_value::Value::KvlistValue(KeyValueList {
            values: map.iter().map(|(k, v)| key_value(k, v)).collect(),
        })),
    };
    AnyValue { value }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::logs::stage::tests::object;

    fn encoder() -> LogEncoder {
        LogEncoder::new(
            Arc::default(),
            "message",
            &["timestamp".to_owned(), "ts".to_owned()],
        )
    }

    fn attribute<'a>(record: &'a LogRecord, key: &str) -> Option<&'a any_value::Value> {
        record
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    #[test]
    fn fields_map_to_the_log_data_model() {
        let event = object(json!({
            "timestamp": "2026-12-01T10:00:00.5Z",
            "level": "WARN",
            "message": "slow query",
            "trace_id": "0af7651916cd43dd8448eb211c80319c",
            "span_id": "b7ad6b7169203331",
            "trace_flags": "01",
            "duration_ms": 1200,
            "ratio": 0.5,
            "ok": false,
            "user": {"id": 7},
            "tags": ["a", "b"],
            "nothing": null,
        }));
        let record = encoder().record(&event);
        assert_eq!(record.time_unix_nano, 1_796_119_200_500_000_000);
        assert_eq!(record.severity_text, "WARN");
        assert_eq!(record.severity_number, SeverityNumber::Warn as i32);
        assert_eq!(
            record.body.clone().and_then(|b| b.value),
            Some(any_value::Value::StringValue("slow query".into()))
        );
        assert_eq!(
            record.trace_id,
            hex_id::<16>("0af7651916cd43dd8448eb211c80319c").unwrap()
        );
        assert_eq!(record.span_id, hex_id::<8>("b7ad6b7169203331").unwrap());
        assert_eq!(record.flags, 1);
        assert_eq!(
            attribute(&record, "duration_ms"),
            Some(&any_value::Value::IntValue(1200))
        );
        assert_eq!(
            attribute(&record, "ratio"),
            Some(&any_value::Value::DoubleValue(0.5))
        );
        assert_eq!(
            attribute(&record, "ok"),
            Some(&any_value::Value::BoolValue(false))
        );
        assert!(matches!(
            attribute(&record, "user"),
            Some(any_value::Value::KvlistValue(_))
        ));
        assert!(matches!(
            attribute(&record, "tags"),
            Some(any_value::Value::ArrayValue(_))
        ));
        for gone in [
            "timestamp",
            "level",
            "message",
            "trace_id",
            "span_id",
            "nothing",
        ] {
            assert!(attribute(&record, gone).is_none(), "{gone}");
        }
    }

    #[test]
    fn invalid_trace_context_stays_an_attribute() {
        let event = object(
            json!({"msg": "x", "trace_id": "req-42", "span_id": "0000000000000000", "level": 50}),
        );
        let record = encoder().record(&event);
        assert!(record.trace_id.is_empty() && record.span_id.is_empty());
        assert_eq!(
            attribute(&record, "trace_id"),
            Some(&any_value::Value::StringValue("req-42".into()))
        );
        assert!(attribute(&record, "span_id").is_some());
        assert_eq!(record.severity_number, SeverityNumber::Error as i32);
        assert_eq!(record.severity_text, "50");
        assert_eq!(record.time_unix_nano, record.observed_time_unix_nano);
        assert!(record.body.is_some(), "msg is the fallback body");
    }
}
