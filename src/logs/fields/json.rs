//! An event's fields as JSON text: parsed from a line (the top level into
//! [`Fields`], nested values as serde_json's) and written back as the same
//! text serde_json would write.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Number, Value};

use super::{Fields, Parsed, PARSE_CAPACITY};

impl Fields {
    /// Parses one JSON text (an object, or any other value); trailing
    /// characters are an error.
    pub fn parse(text: &str) -> Result<Parsed, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let parsed = de::Deserializer::deserialize_any(&mut deserializer, TopLevel)?;
        deserializer.end()?;
        Ok(parsed)
    }
}

impl Fields {
    /// Appends the fields as one JSON object to `out`: the same text as
    /// serializing them with serde_json, but a key or string value that
    /// needs no escape (nearly all of them) is copied in one piece, where
    /// serde_json looks each byte up in its escape table.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, (key, value)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_str(key, out);
            out.push(b':');
            match value {
                Value::String(text) => write_json_str(text, out),
                // Writing to memory cannot fail.
                other => {
                    let _ = serde_json::to_writer(&mut *out, other);
                }
            }
        }
        out.push(b'}');
    }
}

/// Appends `text` as a JSON string: in one piece when no byte of it needs
/// an escape (a quote, a backslash, a control character), else as serde_json
/// writes it.
fn write_json_str(text: &str, out: &mut Vec<u8>) {
    // A branch-free test over every byte, which the compiler vectorises.
    let plain = text.bytes().fold(true, |plain, b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (key, value) in &self.entries {
            map.serialize_entry(&**key, value)?;
        }
        map.end()
    }
}

/// Builds the top level of a line: [`Fields`] for an object, a plain
/// `Value` for anything else; nested values are serde_json's.
struct TopLevel;

impl<'de> Visitor<'de> for TopLevel {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Parsed, A::Error> {
        let mut entries = Vec::with_capacity(PARSE_CAPACITY);
        while let Some(key) = access.next_key::<String>()? {
            entries.push((Cow::Owned(key), access.next_value::<Value>()?));
        }
        Ok(Parsed::Object(Fields { entries, vetted: 0 }))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Parsed, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = access.next_element_seed(ValueSeed)? {
            items.push(item);
        }
        Ok(Parsed::Other(Value::Array(items)))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Parsed, E> {
        Ok(Parsed::Other(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Parsed, E> {
        Ok(Parsed::Other(Value::Number(v.into())))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Parsed, E> {
        Ok(Parsed::Other(Value::Number(v.into())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Parsed, E> {
        Ok(Parsed::Other(
            Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Parsed, E> {
        Ok(Parsed::Other(Value::String(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Parsed, E> {
        Ok(Parsed::Other(Value::String(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Parsed, E> {
        Ok(Parsed::Other(Value::Null))
    }
}

/// Deserializes one nested `Value`.
struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        serde::Deserialize::deserialize(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::logs::fields::tests::object;

    #[test]
    fn parses_objects_in_order_and_writes_them_back_unchanged() {
        let text = r#"{"z":1,"level":"info","a":{"b":[1,2.5,"x"]},"n":null,"t":true}"#;
        let fields = object(text);
        assert_eq!(
            fields.keys().collect::<Vec<_>>(),
            ["z", "level", "a", "n", "t"]
        );
        assert_eq!(fields["a"]["b"][2], "x");
        assert_eq!(serde_json::to_string(&fields).unwrap(), text);
    }

    #[test]
    fn other_values_and_errors() {
        assert_eq!(
            Fields::parse("[1,{\"a\":2}]").unwrap(),
            Parsed::Other(json!([1, {"a": 2}]))
        );
        assert_eq!(Fields::parse(" 42 ").unwrap(), Parsed::Other(json!(42)));
        assert_eq!(Fields::parse("-1.5").unwrap(), Parsed::Other(json!(-1.5)));
        assert_eq!(Fields::parse("\"s\"").unwrap(), Parsed::Other(json!("s")));
        assert_eq!(Fields::parse("null").unwrap(), Parsed::Other(Value::Null));
        assert_eq!(Fields::parse("false").unwrap(), Parsed::Other(json!(false)));
        for bad in ["", "{", r#"{"a":1} x"#, "{\"a\":}", "[1,]", "nul"] {
            assert!(Fields::parse(bad).is_err(), "{bad:?}");
        }
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        assert!(Fields::parse(&deep).is_err(), "recursion limit applies");
    }

    #[test]
    fn write_json_writes_what_serde_json_does() {
        let texts = [
            "",
            "plain /path?x=1 ünïcödé ✓",
            "quote \" and backslash \\",
            "tab\tnew\nline\r\u{1}\u{1f}\u{7f}",
            "\u{2028}\u{2029} <script>",
        ];
        let mut fields = Fields::new();
        for (i, text) in texts.iter().enumerate() {
            fields.push(format!("k{i}"), json!(text));
            fields.push(text.to_string(), json!(i));
        }
        fields.push("nested", json!({"a": [1, 2.5, null, true, "x\"y"]}));
        fields.push("n", json!(-0.000_181));
        let mut out = b"before ".to_vec();
        fields.write_json(&mut out);
        let expected = format!("before {}", serde_json::to_string(&fields).unwrap());
        assert_eq!(String::from_utf8(out).unwrap(), expected);
        let mut empty = Vec::new();
        Fields::new().write_json(&mut empty);
        assert_eq!(empty, b"{}");
    }
}
