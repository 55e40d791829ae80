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

mod json;

use std::borrow::Cow;
use std::ops::Index;

use serde_json::{Map, Value};

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

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;

    /// The fields of `text`, a JSON object.
    pub(crate) fn object(text: &str) -> Fields {
        match Fields::parse(text).unwrap() {
            Parsed::Object(fields) => fields,
            Parsed::Other(other) => panic!("object expected, got {other}"),
        }
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
}
