//! Compiled matchers: which events a rule counts.

use regex::Regex;
use serde_json::Value;

use super::field::{self, lookup, FieldPath};
use crate::config::log_metrics::{Matcher as MatcherConfig, Scalar};
use crate::logs::event::Event;

/// A compiled condition on an event.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Matches every event.
    Always,
    /// The field equals a value.
    Equals(FieldPath, Scalar),
    /// The field (as text) matches a regex.
    Regex(FieldPath, Regex),
    /// The field is present (`true`) or absent.
    Exists(FieldPath, bool),
    /// The field is a number within bounds (`None` = unbounded).
    Range {
        /// The field.
        field: FieldPath,
        /// Lower bound and whether it is inclusive.
        low: Option<(f64, bool)>,
        /// Upper bound and whether it is inclusive.
        high: Option<(f64, bool)>,
    },
    /// Every one matches.
    All(Vec<Matcher>),
    /// At least one matches.
    Any(Vec<Matcher>),
    /// The inner one does not match.
    Not(Box<Matcher>),
}

impl Matcher {
    /// Compiles a matcher from a config that passed validation; an invalid
    /// regex is reported as its error text.
    pub fn build(config: &MatcherConfig) -> Result<Self, String> {
        if let Some(list) = &config.all {
            return Ok(Matcher::All(
                list.iter().map(Self::build).collect::<Result<_, _>>()?,
            ));
        }
        if let Some(list) = &config.any {
            return Ok(Matcher::Any(
                list.iter().map(Self::build).collect::<Result<_, _>>()?,
            ));
        }
        if let Some(inner) = &config.not {
            return Ok(Matcher::Not(Box::new(Self::build(inner)?)));
        }
        let Some(name) = &config.field else {
            return Ok(Matcher::Always);
        };
        let field = FieldPath::new(name);
        if let Some(value) = &config.equals {
            return Ok(Matcher::Equals(field, value.clone()));
        }
        if let Some(pattern) = &config.regex {
            let regex = Regex::new(pattern).map_err(|e| format!("invalid regex: {e}"))?;
            return Ok(Matcher::Regex(field, regex));
        }
        if let Some(exists) = config.exists {
            return Ok(Matcher::Exists(field, exists));
        }
        let low = config
            .ge
            .map(|v| (v, true))
            .or(config.gt.map(|v| (v, false)));
        let high = config
            .le
            .map(|v| (v, true))
            .or(config.lt.map(|v| (v, false)));
        Ok(Matcher::Range { field, low, high })
    }

    /// Whether `event` matches.
    pub fn matches(&self, event: &Event) -> bool {
        match self {
            Matcher::Always => true,
            Matcher::Equals(path, expected) => {
                lookup(event, path).is_some_and(|value| equals(value, expected))
            }
            Matcher::Regex(path, regex) => lookup(event, path)
                .and_then(field::text)
                .is_some_and(|text| regex.is_match(&text)),
            Matcher::Exists(path, wanted) => lookup(event, path).is_some() == *wanted,
            Matcher::Range { field, low, high } => {
                let Some(n) = lookup(event, field).and_then(field::number) else {
                    return false;
                };
                let above = match low {
                    Some((bound, true)) => n >= *bound,
                    Some((bound, false)) => n > *bound,
                    None => true,
                };
                let below = match high {
                    Some((bound, true)) => n <= *bound,
                    Some((bound, false)) => n < *bound,
                    None => true,
                };
                above && below
            }
            Matcher::All(list) => list.iter().all(|m| m.matches(event)),
            Matcher::Any(list) => list.iter().any(|m| m.matches(event)),
            Matcher::Not(inner) => !inner.matches(event),
        }
    }
}

fn equals(value: &Value, expected: &Scalar) -> bool {
    match (value, expected) {
        (Value::String(s), Scalar::Text(t)) => s == t,
        (Value::Bool(b), Scalar::Bool(e)) => b == e,
        (Value::String(s), Scalar::Bool(e)) => s == if *e { "true" } else { "false" },
        (Value::Number(_) | Value::String(_), Scalar::Number(e)) => {
            field::number(value).is_some_and(|n| n == *e)
        }
        (Value::Number(n), Scalar::Text(t)) => t.trim().parse::<f64>().ok() == n.as_f64(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::logs::stage::tests::object;

    fn m(toml_text: &str) -> Matcher {
        let config: MatcherConfig = toml::from_str(toml_text).unwrap();
        Matcher::build(&config).unwrap()
    }

    #[test]
    fn equals_compares_strings_numbers_and_booleans() {
        let e = object(
            json!({"level": "error", "status": 500, "code": "404", "ok": true, "n": {"x": 1}}),
        );
        assert!(m(r#"field = "level"
equals = "error""#)
        .matches(&e));
        assert!(!m(r#"field = "level"
equals = "info""#)
        .matches(&e));
        assert!(m("field = \"status\"\nequals = 500").matches(&e));
        assert!(m("field = \"status\"\nequals = \"500\"").matches(&e));
        assert!(m("field = \"code\"\nequals = 404").matches(&e));
        assert!(m("field = \"ok\"\nequals = true").matches(&e));
        assert!(m("field = \"n.x\"\nequals = 1").matches(&e));
        assert!(!m("field = \"missing\"\nequals = 1").matches(&e));
    }

    #[test]
    fn regex_exists_and_ranges() {
        let e = object(json!({"route": "/api/chat", "latency_ms": 250, "slow": "1200"}));
        assert!(m("field = \"route\"\nregex = \"^/api/\"").matches(&e));
        assert!(!m("field = \"route\"\nregex = \"^/admin\"").matches(&e));
        assert!(m("field = \"latency_ms\"\nexists = true").matches(&e));
        assert!(m("field = \"nope\"\nexists = false").matches(&e));
        assert!(m("field = \"latency_ms\"\nge = 250").matches(&e));
        assert!(!m("field = \"latency_ms\"\ngt = 250").matches(&e));
        assert!(m("field = \"latency_ms\"\ngt = 100\nlt = 300").matches(&e));
        assert!(m("field = \"slow\"\ngt = 1000").matches(&e));
        assert!(!m("field = \"route\"\ngt = 0").matches(&e));
    }

    #[test]
    fn all_any_not_combine() {
        let e = object(json!({"level": "warn", "status": 404}));
        let all =
            m(r#"all = [{ field = "level", equals = "warn" }, { field = "status", ge = 400 }]"#);
        assert!(all.matches(&e));
        let any =
            m(r#"any = [{ field = "level", equals = "error" }, { field = "status", ge = 500 }]"#);
        assert!(!any.matches(&e));
        let not = m(r#"not = { field = "level", equals = "error" }"#);
        assert!(not.matches(&e));
        assert!(m("").matches(&e));
    }
}
