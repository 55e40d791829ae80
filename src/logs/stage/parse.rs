//! *parse*: one JSON object per line. Anything else is kept, flagged, never
//! dropped: a non-JSON line becomes `{"message": <line>,
//! "sidewatch.parse_error": true}`, a JSON array or scalar is wrapped in the
//! message field (`sidewatch.not_object`), invalid UTF-8 is replaced lossily
//! (`sidewatch.invalid_utf8`), a line cut at `max_line_bytes` says
//! `sidewatch.truncated`, and nesting beyond serde_json's recursion limit
//! (128) is detected and kept as text (`sidewatch.depth_exceeded`). CRLF is
//! stripped by the reader; empty lines are skipped and counted.

use std::borrow::Cow;

use prometheus_client::metrics::counter::Counter;
use serde_json::Value;

use crate::logs::event::{Event, Flags};
use crate::logs::fields::{Fields, Parsed};

/// serde_json refuses input nested deeper than this.
pub const MAX_DEPTH: usize = 128;

/// The fields that carry flags, in output.
pub const FLAG_FIELDS: [(&str, Flags); 5] = [
    ("sidewatch.parse_error", Flags::PARSE_ERROR),
    ("sidewatch.truncated", Flags::TRUNCATED),
    ("sidewatch.invalid_utf8", Flags::INVALID_UTF8),
    ("sidewatch.not_object", Flags::NOT_OBJECT),
    ("sidewatch.depth_exceeded", Flags::DEPTH_EXCEEDED),
];

/// The parse stage.
#[derive(Debug)]
pub struct Parse {
    message_field: String,
    empty: Counter,
}

impl Parse {
    /// A parse stage writing non-JSON lines to `message_field`, counting
    /// skipped empty lines on `empty`.
    pub fn new(message_field: &str, empty: Counter) -> Self {
        Self {
            message_field: message_field.to_owned(),
            empty,
        }
    }

    /// Parses the event's raw line; false when the line is empty (skip it).
    pub fn apply(&self, event: &mut Event) -> bool {
        let Some(raw) = event.raw.take() else {
            return true;
        };
        if raw.iter().all(u8::is_ascii_whitespace) {
            self.empty.inc();
            return false;
        }
        let flags = &mut event.meta.flags;
        let text: Cow<'_, str> = match std::str::from_utf8(&raw) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => {
                flags.insert(Flags::INVALID_UTF8);
                String::from_utf8_lossy(&raw)
            }
        };
        let parsed = if flags.contains(Flags::TRUNCATED) {
            None
        } else {
            Fields::parse(&text).ok()
        };
        event.fields = match parsed {
            Some(Parsed::Object(fields)) => fields,
            Some(Parsed::Other(other)) => {
                flags.insert(Flags::NOT_OBJECT);
                let mut map = Fields::with_capacity(2);
                map.insert(self.message_field.clone(), other);
                map
            }
            None => {
                flags.insert(Flags::PARSE_ERROR);
                if !flags.contains(Flags::TRUNCATED) && depth_exceeds(text.as_bytes(), MAX_DEPTH) {
                    flags.insert(Flags::DEPTH_EXCEEDED);
                }
                let mut map = Fields::with_capacity(2);
                map.insert(self.message_field.clone(), Value::String(text.into_owned()));
                map
            }
        };
        let flags = event.meta.flags;
        if !flags.is_empty() {
            for (name, flag) in FLAG_FIELDS {
                if flags.contains(flag) {
                    event.fields.insert(name, Value::Bool(true));
                }
            }
        }
        event.meta.source.metrics.count_events(flags, 1);
        true
    }
}

/// Whether JSON-ish `text` nests brackets deeper than `limit` (strings are
/// skipped; stops at the first level over the limit).
pub fn depth_exceeds(text: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::stage::tests::{event, source};

    fn parse(line: &[u8]) -> Option<Event> {
        let stage = Parse::new("message", Counter::default());
        let mut e = event(line);
        stage.apply(&mut e).then_some(e)
    }

    fn flag(e: &Event, name: &str) -> bool {
        e.fields.get(name) == Some(&Value::Bool(true))
    }

    #[test]
    fn objects_pass_unchanged_in_order() {
        let e = parse(br#"{"z":1,"level":"info","a":{"b":[1,2]}}"#).unwrap();
        let keys: Vec<_> = e.fields.keys().collect();
        assert_eq!(keys, ["z", "level", "a"]);
        assert!(e.meta.flags.is_empty());
    }

    #[test]
    fn non_json_becomes_a_flagged_message() {
        let e = parse(b"plain text {oops").unwrap();
        assert_eq!(e.fields["message"], "plain text {oops");
        assert!(flag(&e, "sidewatch.parse_error"));
        let e = parse(br#"{"a":1} trailing"#).unwrap();
        assert!(flag(&e, "sidewatch.parse_error"));
    }

    #[test]
    fn arrays_and_scalars_are_wrapped() {
        for (line, value) in [
            (&b"[1,2]"[..], serde_json::json!([1, 2])),
            (b"42", serde_json::json!(42)),
            (b"\"s\"", serde_json::json!("s")),
            (b"null", Value::Null),
        ] {
            let e = parse(line).unwrap();
            assert_eq!(e.fields["message"], value);
            assert!(flag(&e, "sidewatch.not_object"));
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_and_flagged() {
        let e = parse(b"{\"msg\":\"caf\xe9\"}").unwrap();
        assert_eq!(e.fields["msg"], "caf\u{fffd}");
        assert!(flag(&e, "sidewatch.invalid_utf8"));
        let e = parse(b"\xff\xfe garbage \x00\x01").unwrap();
        assert!(flag(&e, "sidewatch.invalid_utf8") && flag(&e, "sidewatch.parse_error"));
    }

    #[test]
    fn deep_nesting_is_detected_not_crashing() {
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        let e = parse(deep.as_bytes()).unwrap();
        assert!(flag(&e, "sidewatch.depth_exceeded") && flag(&e, "sidewatch.parse_error"));
        let ok = format!("{{\"a\":{}1{}}}", "[".repeat(100), "]".repeat(100));
        assert!(parse(ok.as_bytes()).unwrap().meta.flags.is_empty());
        assert!(!depth_exceeds(br#"{"s":"[[[[[[[[[[[[["}"#, 3));
    }

    #[test]
    fn truncated_lines_are_kept_as_text() {
        let mut e = event(br#"{"a":"cut her"#);
        e.meta.flags.insert(Flags::TRUNCATED);
        assert!(Parse::new("message", Counter::default()).apply(&mut e));
        assert_eq!(e.fields["message"], r#"{"a":"cut her"#);
        assert!(flag(&e, "sidewatch.truncated"));
    }

    #[test]
    fn empty_lines_are_skipped_and_counted() {
        let counter = Counter::default();
        let stage = Parse::new("message", counter.clone());
        assert!(!stage.apply(&mut event(b"")));
        assert!(!stage.apply(&mut event(b"  \t")));
        assert_eq!(counter.get(), 2);
        let _ = source();
    }
}
