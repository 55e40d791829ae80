//! The one place log rules read event fields: [`lookup`] with dotted paths
//! split at build time, and conversions of field values to numbers and
//! label text.

use std::borrow::Cow;

use serde_json::Value;

use crate::logs::event::Event;

/// A field name as configured (`latency_ms`, `http.status`), split once.
#[derive(Debug, Clone)]
pub struct FieldPath {
    name: String,
    parts: Vec<String>,
}

impl FieldPath {
    /// Splits a configured field name on dots.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            parts: name.split('.').map(str::to_owned).collect(),
        }
    }

    /// The name as configured.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The value at `path` in `event`: the top-level field of that exact name
/// first (keys may contain dots), else the nested path.
pub fn lookup<'a>(event: &'a Event, path: &FieldPath) -> Option<&'a Value> {
    let fields = &event.fields;
    if let Some(value) = fields.get(&path.name) {
        return Some(value);
    }
    if path.parts.len() < 2 {
        return None;
    }
    let mut current = fields.get(&path.parts[0])?;
    for key in &path.parts[1..] {
        current = current.as_object()?.get(key)?;
    }
    Some(current)
}

/// A field value as a number: JSON numbers, and strings holding one.
pub fn number(value: &Value) -> Option<f64> {
    let n = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}

/// A field value as label text: strings as they are, numbers and booleans
/// written out, null as empty; `None` for objects and arrays.
pub fn text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(true) => Some(Cow::Borrowed("true")),
        Value::Bool(false) => Some(Cow::Borrowed("false")),
        Value::Null => Some(Cow::Borrowed("")),
        Value::Array(_) | Value::Object(_) => None,
    }
}
