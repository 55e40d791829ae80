//! An event's top-level fields: a small ordered map backed by a vector.
//!
//! Log objects have tens of keys. A linear scan over them beats hashing —
//! serde_json's map hashes every key with SipHash and grows its table while
//! parsing, which cost about a sixth of the whole log path — and the vector
//! keeps the app's field order. Parsing reserves room for the fields the
//! stages add, so an event's map is allocated once. Nested objects stay
//! serde_json values.
//!
//! A key written twice in one line is kept twice, so the line is forwarded
//! as written; lookups see the last one, as serde_json, jq and JavaScript's
//! `JSON.parse` do.

use std::borrow::Cow;
use std::fmt;
use std::ops::Index;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Number, Value};

/// Room reserved when parsing: a typical line's fields plus what the
/// correlate and enrich stages add.
const PARSE_CAPACITY: usize = 16;

/// A field name: borrowed when it is a `'static` name (those sidewatch
/// writes itself, such as the access log's: no allocation per event), owned
/// when it comes from a line or the configuration.
pub type Key = Cow<'static, str>;

/// The top-level fields of an event, in order.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    entries: Vec<(Key, Value)>,
    /// Bit `i` set: entry `i` is *vetted*, a value sidewatch wrote itself
    /// that holds no secret (an access event's timestamp or trace ID, a pod
    /// name redact checked once), which redact's patterns skip; its secret
    /// keys still apply. Changing an entry clears its bit; entries past the
    /// 64th are never vetted.
    vetted: u64,
}

/// Two events' fields are equal when their entries are, vetted or not.
impl PartialEq for Fields {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

/// The bit of entry `index` in [`Fields::vetted`] (none past the 64th).
fn bit(index: usize) -> u64 {
    1u64.checked_shl(index as u32).unwrap_or(0)
}

/// What a line parsed to.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// A JSON object.
    Object(Fields),
    /// Any other JSON value (an array or a scalar).
    Other(Value),
}

impl Fields {
    /// No fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// No fields, with room for `capacity`.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity),
            vetted: 0,
        }
    }

    /// Parses one JSON text (an object, or any other value); trailing
    /// characters are an error.
    pub fn parse(text: &str) -> Result<Parsed, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let parsed = de::Deserializer::deserialize_any(&mut deserializer, TopLevel)?;
        deserializer.end()?;
        Ok(parsed)
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.entries.iter().rposition(|(k, _)| k == key)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.position(key).map(|i| &self.entries[i].1)
    }

    /// The value of `key`, to change it (no longer vetted).
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        let i = self.position(key)?;
        self.vetted &= !bit(i);
        Some(&mut self.entries[i].1)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Sets `key` to `value` (in place when present, else at the end) and
    /// returns the value it replaced.
    pub fn insert(&mut self, key: impl Into<Key> + AsRef<str>, value: Value) -> Option<Value> {
        self.insert_at(key, value).1
    }

    /// [`Fields::insert`] of a vetted value (see [`Fields::push_vetted`]).
    pub fn insert_vetted(
        &mut self,
        key: impl Into<Key> + AsRef<str>,
        value: Value,
    ) -> Option<Value> {
        let (i, replaced) = self.insert_at(key, value);
        self.vetted |= bit(i);
        replaced
    }

    /// Inserts `value` (not vetted); returns where it went and what it replaced.
    fn insert_at(
        &mut self,
        key: impl Into<Key> + AsRef<str>,
        value: Value,
    ) -> (usize, Option<Value>) {
        match self.position(key.as_ref()) {
            Some(i) => {
                self.vetted &= !bit(i);
                (i, Some(std::mem::replace(&mut self.entries[i].1, value)))
            }
            None => {
                self.entries.push((key.into(), value));
                (self.entries.len() - 1, None)
            }
        }
    }

    /// Appends `key` without looking for an earlier copy: for building an
    /// object whose keys are known to be distinct (an access-log event), where
    /// [`Fields::insert`]'s search is wasted. A repeated key is kept twice, as
    /// in a parsed line.
    pub fn push(&mut self, key: impl Into<Key>, value: Value) {
        self.entries.push((key.into(), value));
    }

    /// [`Fields::push`] of a vetted value: one sidewatch wrote itself from
    /// text that holds no secret (a timestamp it formatted, a log level, a
    /// trace ID it checked as 32 hex digits), which redact's patterns skip.
    pub fn push_vetted(&mut self, key: impl Into<Key>, value: Value) {
        self.vetted |= bit(self.entries.len());
        self.push(key, value);
    }

    /// Appends `key` unless it is present (one search, the key taken as it
    /// is: a borrowed name stays unallocated), vetted or not; whether it did.
    pub fn insert_absent(
        &mut self,
        key: &Key,
        value: impl FnOnce() -> Value,
        vetted: bool,
    ) -> bool {
        if self.contains_key(key) {
            return false;
        }
        if vetted {
            self.push_vetted(key.clone(), value());
        } else {
            self.push(key.clone(), value());
        }
        true
    }

    /// Removes `key` (every copy of it) and returns its last value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let mut removed = None;
        // The entries after a removed one move down: vet none of them again.
        self.vetted = 0;
        self.entries.retain_mut(|(k, v)| {
            if k == key {
                removed = Some(std::mem::take(v));
                false
            } else {
                true
            }
        });
        removed
    }

    /// The fields in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (&**k, v))
    }

    /// The fields in order, values mutable (and none vetted any more).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut Value)> {
        self.vetted = 0;
        self.entries.iter_mut().map(|(k, v)| (&**k, v))
    }

    /// The fields in order, values mutable, each with whether it is vetted
    /// (which stays as it is): for redact, which masks only secrets.
    pub fn iter_mut_vetted(&mut self) -> impl Iterator<Item = (&str, &mut Value, bool)> {
        let vetted = self.vetted;
        self.entries
            .iter_mut()
            .enumerate()
            .map(move |(i, (k, v))| (&**k, v, vetted & bit(i) != 0))
    }

    /// The keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| &**k)
    }
}

impl Index<&str> for Fields {
    type Output = Value;

    /// The value of `key`, or `null` when it is absent (as `Value` indexes).
    fn index(&self, key: &str) -> &Value {
        static NULL: Value = Value::Null;
        self.get(key).unwrap_or(&NULL)
    }
}

impl From<Map<String, Value>> for Fields {
    fn from(map: Map<String, Value>) -> Self {
        Self {
            entries: map.into_iter().map(|(k, v)| (Cow::Owned(k), v)).collect(),
            vetted: 0,
        }
    }
}

impl FromIterator<(String, Value)> for Fields {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Self {
            entries: iter.into_iter().map(|(k, v)| (Cow::Owned(k), v)).collect(),
            vetted: 0,
        }
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

    fn object(text: &str) -> Fields {
        match Fields::parse(text).unwrap() {
            Parsed::Object(fields) => fields,
            Parsed::Other(other) => panic!("object expected, got {other}"),
        }
    }

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
    fn repeated_keys_are_kept_and_the_last_one_is_seen() {
        let mut fields = object(r#"{"a":1,"b":2,"a":3}"#);
        assert_eq!(fields["a"], 3);
        assert_eq!(
            serde_json::to_string(&fields).unwrap(),
            r#"{"a":1,"b":2,"a":3}"#
        );
        assert_eq!(fields.insert("a", json!(4)), Some(json!(3)));
        assert_eq!(fields.remove("a"), Some(json!(4)));
        assert_eq!(serde_json::to_string(&fields).unwrap(), r#"{"b":2}"#);
    }

    #[test]
    fn insert_replaces_in_place_or_appends() {
        let mut fields = Fields::from(json!({"a": 1, "b": 2}).as_object().unwrap().clone());
        assert_eq!(fields.insert("a", json!("x")), Some(json!(1)));
        assert_eq!(fields.insert(String::from("c"), json!(3)), None);
        assert!(!fields.insert_absent(&Key::Borrowed("b"), || json!("ignored"), false));
        assert!(fields.insert_absent(&Key::Borrowed("d"), || json!(4), false));
        assert_eq!(
            serde_json::to_string(&fields).unwrap(),
            r#"{"a":"x","b":2,"c":3,"d":4}"#
        );
        assert!(fields.contains_key("d") && !fields.contains_key("e"));
        assert_eq!(fields["e"], Value::Null);
        assert_eq!(fields.len(), 4);
        *fields.get_mut("d").unwrap() = json!(5);
        assert_eq!(fields.get("d"), Some(&json!(5)));
    }

    /// The vetted flags of `fields`, in order.
    fn vetted(fields: &mut Fields) -> Vec<bool> {
        fields.iter_mut_vetted().map(|(_, _, v)| v).collect()
    }

    #[test]
    fn vetted_entries_stay_vetted_until_changed() {
        let mut fields = Fields::new();
        fields.push_vetted("level", json!("info"));
        fields.push("path", json!("/a"));
        fields.insert_vetted("pod", json!("web-1"));
        assert_eq!(vetted(&mut fields), [true, false, true]);
        assert_eq!(
            vetted(&mut fields),
            [true, false, true],
            "reading keeps them"
        );

        fields.insert("pod", json!("other"));
        *fields.get_mut("level").unwrap() = json!("secret");
        assert_eq!(vetted(&mut fields), [false, false, false]);

        fields.insert_vetted("path", json!("/b"));
        assert_eq!(vetted(&mut fields), [false, true, false]);
        fields.iter_mut().for_each(drop);
        assert_eq!(
            vetted(&mut fields),
            [false, false, false],
            "iter_mut may change any"
        );

        fields.insert_vetted("path", json!("/c"));
        fields.remove("level");
        assert_eq!(
            vetted(&mut fields),
            [false, false],
            "remove moves the rest down"
        );
        assert_eq!(
            fields,
            object(r#"{"path":"/c","pod":"other"}"#),
            "equality ignores vetting"
        );
    }

    #[test]
    fn entries_past_the_64th_are_never_vetted() {
        let mut fields = Fields::new();
        for i in 0..70 {
            fields.push_vetted(format!("k{i}"), json!("v"));
        }
        let flags = vetted(&mut fields);
        assert!(flags[..64].iter().all(|&v| v) && flags[64..].iter().all(|&v| !v));
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
