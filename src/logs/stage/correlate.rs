//! *correlate*: find the request's correlation ID in the configured fields
//! (first match wins; dotted names also reach into nested objects), parse a
//! W3C `traceparent` into `trace_id`/`span_id`, and write the canonical ID to
//! the target field. Originals are kept; a field the app set is never replaced.

use prometheus_client::metrics::counter::Counter;
use serde_json::Value;

use crate::config::logs::CorrelateConfig;
use crate::logs::event::Event;
use crate::logs::fields::{Fields, Key};

/// The correlate stage.
#[derive(Debug)]
pub struct Correlate {
    fields: Vec<(String, Vec<String>)>,
    /// Borrowed when it is the default name, so writing it allocates nothing.
    target: Key,
    uncorrelated: Counter,
}

/// A parsed W3C `traceparent` header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent<'a> {
    /// 32 lowercase hex digits.
    pub trace_id: &'a str,
    /// 16 lowercase hex digits.
    pub span_id: &'a str,
}

/// Parses `version-traceid-spanid-flags` (W3C Trace Context); IDs of all
/// zeros and version `ff` are invalid.
pub fn parse_traceparent(value: &str) -> Option<TraceParent<'_>> {
    let value = value.trim();
    let mut parts = value.split('-');
    let (version, trace_id, span_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace_id, 32)
        && hex(span_id, 16)
        && hex(flags, 2)
        && trace_id.bytes().any(|b| b != b'0')
        && span_id.bytes().any(|b| b != b'0')
        && (version != "00" || parts.next().is_none());
    valid.then_some(TraceParent { trace_id, span_id })
}

impl Correlate {
    /// A correlate stage counting events without an ID on `uncorrelated`.
    pub fn new(config: &CorrelateConfig, uncorrelated: Counter) -> Self {
        Self {
            fields: config
                .fields
                .iter()
                .map(|f| (f.clone(), f.split('.').map(str::to_owned).collect()))
                .collect(),
            target: match config.target.as_str() {
                "correlation_id" => Key::Borrowed("correlation_id"),
                other => Key::Owned(other.to_owned()),
            },
            uncorrelated,
        }
    }

    /// Finds and writes the correlation ID.
    pub fn apply(&self, event: &mut Event) {
        let fields = &mut event.fields;
        let (trace_id, span_id) = match fields.get("traceparent").and_then(Value::as_str) {
            Some(value) => match parse_traceparent(value) {
                Some(tp) => (Some(tp.trace_id.to_owned()), Some(tp.span_id.to_owned())),
                None => (None, None),
            },
            None => (None, None),
        };
        if let Some(trace_id) = &trace_id {
            fields.insert_absent(
                &Key::Borrowed("trace_id"),
                || Value::String(trace_id.clone()),
                false,
            );
        }
        if let Some(span_id) = span_id {
            fields.insert_absent(&Key::Borrowed("span_id"), || Value::String(span_id), false);
        }
        // The ID is found borrowed and copied only when the target is
        // missing (an access event, say, has it already).
        let found = self
            .fields
            .iter()
            .find_map(|(name, path)| match lookup(fields, name, path)? {
                Value::String(s) if name == "traceparent" => match &trace_id {
                    Some(trace_id) => Some(Found::Text(trace_id)),
                    None => (!s.trim().is_empty()).then_some(Found::Text(s)),
                },
                Value::String(s) if !s.trim().is_empty() => Some(Found::Text(s)),
                Value::Number(n) => Some(Found::Number(n)),
                _ => None,
            });
        match found {
            Some(found) if !fields.contains_key(&self.target) => {
                let id = match found {
                    Found::Text(text) => text.to_owned(),
                    Found::Number(n) => n.to_string(),
                };
                fields.push(self.target.clone(), Value::String(id));
            }
            Some(_) => {}
            None => {
                self.uncorrelated.inc();
            }
        }
    }
}

/// A correlation ID as found, borrowed from the event.
enum Found<'a> {
    Text(&'a str),
    Number(&'a serde_json::Number),
}

fn lookup<'a>(fields: &'a Fields, name: &str, path: &[String]) -> Option<&'a Value> {
    if let Some(value) = fields.get(name) {
        return Some(value);
    }
    if path.len() < 2 {
        return None;
    }
    let mut current = fields.get(&path[0])?;
    for key in &path[1..] {
        current = current.as_object()?.get(key)?;
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::logs::stage::tests::object;

    fn run(value: Value) -> (Event, u64) {
        let counter = Counter::default();
        let stage = Correlate::new(&CorrelateConfig::default(), counter.clone());
        let mut e = object(value);
        stage.apply(&mut e);
        (e, counter.get())
    }

    #[test]
    fn request_id_becomes_the_correlation_id() {
        let (e, missing) = run(json!({"request_id": "req-abc123", "message": "m"}));
        assert_eq!(e.fields["correlation_id"], "req-abc123");
        assert_eq!(e.fields["request_id"], "req-abc123");
        assert_eq!(missing, 0);
    }

    #[test]
    fn nested_and_hyphenated_fields_are_found() {
        let (e, _) = run(json!({"http": {"request_id": "n-1"}}));
        assert_eq!(e.fields["correlation_id"], "n-1");
        let (e, _) = run(json!({"x-request-id": "h-1"}));
        assert_eq!(e.fields["correlation_id"], "h-1");
        let (e, _) = run(json!({"request_id": 42}));
        assert_eq!(e.fields["correlation_id"], "42");
    }

    #[test]
    fn traceparent_is_parsed() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let (e, _) = run(json!({"traceparent": tp}));
        assert_eq!(e.fields["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(e.fields["span_id"], "00f067aa0ba902b7");
        assert_eq!(
            e.fields["correlation_id"],
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(e.fields["traceparent"], tp);
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "garbage",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_apps_own_correlation_id_is_kept() {
        let (e, _) = run(json!({"request_id": "r", "correlation_id": "c"}));
        assert_eq!(e.fields["correlation_id"], "c");
    }

    #[test]
    fn events_without_an_id_are_counted() {
        let (e, missing) = run(json!({"message": "no id", "request_id": ""}));
        assert!(!e.fields.contains_key("correlation_id"));
        assert_eq!(missing, 1);
    }
}
