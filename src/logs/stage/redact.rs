//! *redact*: mask secrets before anything leaves the pod. Values of secret
//! keys (any depth, case-insensitive) are replaced whole; every string value
//! is checked against the precompiled patterns, each behind a cheap test
//! (the regex engine's literal prefilter; for card numbers, a count of
//! digits). Card numbers are masked only when they pass the Luhn check. Every mask counts in
//! `sidewatch_redactions_total{rule}`.

use prometheus_client::metrics::counter::Counter;
use regex::Regex;
use serde_json::Value;

use super::StageError;
use crate::config::logs::RedactConfig;
use crate::logs::event::Event;
use crate::logs::metrics::Metrics;

/// The built-in patterns; a group named `secret` is what gets masked.
const BUILTIN: [(&str, &str); 4] = [
    (
        "bearer",
        r"(?i)(?-u:\b)bearer[ \t]+(?P<secret>[A-Za-z0-9\-._~+/]+=*)",
    ),
    (
        "url_credentials",
        r"(?i)(?-u:\b)[a-z][a-z0-9+.\-]*://(?P<secret>[^\s:/?#@]+:[^\s/?#@]*)@",
    ),
    (
        "aws_access_key",
        r"(?-u:\b)(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}(?-u:\b)",
    ),
    (
        "card_number",
        r"(?-u:\b)(?:[0-9][ \-]?){12,18}[0-9](?-u:\b)",
    ),
];

#[derive(Debug)]
struct Rule {
    regex: Regex,
    /// The shortest text the pattern can match: shorter strings (most
    /// values in logs: levels, methods, short IDs) skip the gate too.
    min_len: usize,
    gate: Gate,
    luhn: bool,
    count: Counter,
}

impl Rule {
    /// Whether the regex matches `text`, its cheap tests first.
    #[inline]
    fn may_match(&self, text: &str) -> bool {
        text.len() >= self.min_len && self.gate.passes(text) && self.regex.is_match(text)
    }

    /// Whether [`Redact::text`] would mask something of `text` for this rule.
    fn finds_secret(&self, text: &str) -> bool {
        self.may_match(text)
            && self.regex.captures_iter(text).any(|caps| {
                let target = caps.name("secret").or_else(|| caps.get(0));
                !self.luhn || target.is_some_and(|t| luhn(t.as_str()))
            })
    }
}

/// A test far cheaper than the regex that every match must pass; most
/// strings in logs fail all of them and never reach a regex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Contains `bearer` in any case.
    Bearer,
    /// Contains `://` and `@`.
    Url,
    /// Contains an AWS key-id prefix (`AKIA`, `ASIA`, ...).
    Aws,
    /// Holds a run of at least 13 digits, single spaces or dashes between them.
    Card,
    /// No shortcut (custom patterns).
    None,
}

impl Gate {
    fn of(name: &str) -> Self {
        match name {
            "bearer" => Gate::Bearer,
            "url_credentials" => Gate::Url,
            "aws_access_key" => Gate::Aws,
            "card_number" => Gate::Card,
            _ => Gate::None,
        }
    }

    fn passes(self, text: &str) -> bool {
        let bytes = text.as_bytes();
        match self {
            Gate::Bearer => memchr::memchr2_iter(b'b', b'B', bytes).any(|i| {
                bytes
                    .get(i + 1..i + 6)
                    .is_some_and(|r| r.eq_ignore_ascii_case(b"earer"))
            }),
            Gate::Url => {
                memchr::memchr(b'@', bytes).is_some()
                    && memchr::memmem::find(bytes, b"://").is_some()
            }
            Gate::Aws => memchr::memchr_iter(b'A', bytes).any(|i| {
                matches!(
                    bytes.get(i + 1..i + 4),
                    Some(b"KIA" | b"SIA" | b"GPA" | b"IDA" | b"ROA" | b"NPA" | b"NVA" | b"IPA")
                )
            }),
            Gate::Card => has_digit_run(bytes, 13),
            Gate::None => true,
        }
    }
}

/// The redact stage.
#[derive(Debug)]
pub struct Redact {
    keys: Vec<String>,
    /// Bit `n` set: some key is `n` bytes long (bit 63: 63 or more); a
    /// field name of another length is no secret key, without a comparison.
    key_lengths: u64,
    key_count: Counter,
    rules: Vec<Rule>,
    mask: String,
}

impl Redact {
    /// Compiles every pattern once.
    pub fn new(config: &RedactConfig, metrics: &Metrics) -> Result<Self, StageError> {
        let mut patterns = Vec::new();
        for (i, name) in config.builtin.iter().enumerate() {
            let Some((_, regex)) = BUILTIN.iter().find(|(n, _)| n == name) else {
                return Err(StageError {
                    key: format!("logs.stages.redact.builtin[{i}]"),
                    message: format!("unknown pattern {name:?}"),
                });
            };
            patterns.push((
                name.clone(),
                regex.to_string(),
                Gate::of(name),
                format!("logs.stages.redact.builtin[{i}]"),
            ));
        }
        for (i, p) in config.patterns.iter().enumerate() {
            patterns.push((
                p.name.clone(),
                p.regex.clone(),
                Gate::None,
                format!("logs.stages.redact.patterns[{i}].regex"),
            ));
        }
        let mut rules = Vec::new();
        for (name, source, gate, key) in &patterns {
            let regex = Regex::new(source).map_err(|e| StageError {
                key: key.clone(),
                message: format!("invalid regex: {e}"),
            })?;
            // A pattern that can never match has no minimum: it never runs.
            let min_len = regex_syntax::parse(source).map_or(0, |hir| {
                hir.properties().minimum_len().unwrap_or(usize::MAX)
            });
            rules.push(Rule {
                regex,
                min_len,
                gate: *gate,
                luhn: *gate == Gate::Card,
                count: metrics.redactions(name),
            });
        }
        Ok(Self {
            keys: config.keys.iter().map(|k| k.to_ascii_lowercase()).collect(),
            key_lengths: config.keys.iter().fold(0, |bits, k| bits | length_bit(k)),
            key_count: metrics.redactions("key"),
            rules,
            mask: config.mask.clone(),
        })
    }

    /// Masks the event's secrets. Vetted fields (see
    /// [`Fields::push_vetted`](crate::logs::Fields::push_vetted)) skip the
    /// patterns; secret keys mask them too.
    pub fn apply(&self, event: &mut Event) {
        self.entries(event.fields.iter_mut_vetted());
    }

    fn entries<'a>(&self, entries: impl Iterator<Item = (&'a str, &'a mut Value, bool)>) {
        for (key, value, vetted) in entries {
            if self.is_secret_key(key) {
                if !matches!(value, Value::Null) && value.as_str() != Some(&self.mask) {
                    *value = Value::String(self.mask.clone());
                    self.key_count.inc();
                }
            } else if !vetted {
                self.value(value);
            }
        }
    }

    /// Whether `key` is one of the secret keys (any case).
    fn is_secret_key(&self, key: &str) -> bool {
        self.key_lengths & length_bit(key) != 0
            && self.keys.iter().any(|k| k.eq_ignore_ascii_case(key))
    }

    /// Whether `key: value` would come out of this stage unchanged (nothing
    /// counted): a constant field that passes is vetted once instead of
    /// searched on every event.
    pub fn leaves_alone(&self, key: &str, value: &str) -> bool {
        !self.is_secret_key(key) && !self.rules.iter().any(|rule| rule.finds_secret(value))
    }

    fn value(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                if let Some(masked) = self.text(s) {
                    *s = masked;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v)),
            Value::Object(map) => {
                self.entries(map.iter_mut().map(|(k, v)| (k.as_str(), v, false)));
            }
            _ => {}
        }
    }

    /// `text` with every pattern's secrets masked; `None` when nothing matched.
    pub fn text(&self, text: &str) -> Option<String> {
        let mut current: Option<String> = None;
        for rule in &self.rules {
            let haystack = current.as_deref().unwrap_or(text);
            if !rule.may_match(haystack) {
                continue;
            }
            let mut out = String::with_capacity(haystack.len());
            let mut last = 0;
            let mut replaced = false;
            for caps in rule.regex.captures_iter(haystack) {
                let Some(whole) = caps.get(0) else { continue };
                let target = caps.name("secret").unwrap_or(whole);
                if rule.luhn && !luhn(target.as_str()) {
                    continue;
                }
                out.push_str(&haystack[last..target.start()]);
                out.push_str(&self.mask);
                last = target.end();
                replaced = true;
                rule.count.inc();
            }
            if replaced {
                out.push_str(&haystack[last..]);
                current = Some(out);
            }
        }
        current
    }
}

/// The bit of `key`'s length in [`Redact::key_lengths`].
fn length_bit(key: &str) -> u64 {
    1 << key.len().min(63)
}

/// Whether `bytes` holds `n` digits in a row, allowing one space or dash
/// between two digits (what the card-number pattern can match).
fn has_digit_run(bytes: &[u8], n: usize) -> bool {
    // Counting digits vectorises; most strings have too few to hold a run.
    if bytes.iter().filter(|b| b.is_ascii_digit()).count() < n {
        return false;
    }
    let mut run = 0;
    let mut after_separator = false;
    for &b in bytes {
        if b.is_ascii_digit() {
            run += 1;
            after_separator = false;
            if run >= n {
                return true;
            }
        } else if (b == b' ' || b == b'-') && run > 0 && !after_separator {
            after_separator = true;
        } else {
            run = 0;
            after_separator = false;
        }
    }
    false
}

/// Whether the digits in `text` pass the Luhn check (13 to 19 digits).
pub fn luhn(text: &str) -> bool {
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let d = d * 2;
                if d > 9 {
                    d - 9
                } else {
                    d
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;
    use serde_json::json;

    use super::*;
    use crate::config::logs::RedactPattern;
    use crate::logs::stage::tests::object;

    fn stage(config: &RedactConfig) -> Redact {
        Redact::new(config, &Metrics::register(&mut Registry::default())).unwrap()
    }

    #[test]
    fn secret_keys_are_masked_at_any_depth() {
        let redact = stage(&RedactConfig::default());
        let mut e = object(json!({
            "user": "bob",
            "Password": "hunter2",
            "http": {"headers": {"Authorization": "Basic xyz", "Set-Cookie": ["a=b"]}},
            "items": [{"api_key": 123}],
            "token": null,
        }));
        redact.apply(&mut e);
        assert_eq!(e.fields["user"], "bob");
        assert_eq!(e.fields["Password"], "[REDACTED]");
        assert_eq!(e.fields["http"]["headers"]["Authorization"], "[REDACTED]");
        assert_eq!(e.fields["http"]["headers"]["Set-Cookie"], "[REDACTED]");
        assert_eq!(e.fields["items"][0]["api_key"], "[REDACTED]");
        assert_eq!(e.fields["token"], Value::Null);
        assert_eq!(redact.key_count.get(), 4);
    }

    #[test]
    fn keys_of_any_length_are_found() {
        let long = "x".repeat(70);
        let config = RedactConfig {
            keys: vec!["Pin".into(), long.to_uppercase()],
            ..RedactConfig::default()
        };
        let redact = stage(&config);
        assert!(redact.is_secret_key("pin") && redact.is_secret_key(&long));
        assert!(!redact.is_secret_key("pins") && !redact.is_secret_key(&"x".repeat(64)));
        assert!(
            !redact.is_secret_key("password"),
            "only the configured keys"
        );
    }

    #[test]
    fn vetted_values_skip_the_patterns_but_not_the_secret_keys() {
        let config = RedactConfig {
            keys: vec!["token".into()],
            ..RedactConfig::default()
        };
        let redact = stage(&config);
        let bearer = "Bearer eyJhbGciOiJIUzI1NiJ9";
        let mut e = object(json!({"note": bearer}));
        e.fields.push_vetted("vetted", json!(bearer));
        e.fields.push_vetted("token", json!("abc"));
        redact.apply(&mut e);
        assert_eq!(e.fields["note"], "Bearer [REDACTED]");
        assert_eq!(e.fields["vetted"], bearer);
        assert_eq!(e.fields["token"], "[REDACTED]");
    }

    #[test]
    fn leaves_alone_tells_what_apply_would_change() {
        let redact = stage(&RedactConfig::default());
        assert!(redact.leaves_alone("pod", "web-7d9f-x2"));
        assert!(!redact.leaves_alone("password", "web-7d9f-x2"));
        assert!(!redact.leaves_alone("note", "Bearer eyJhbGciOiJIUzI1NiJ9"));
        // A 16-digit run that fails the Luhn check is not masked, so it passes.
        assert!(redact.leaves_alone("note", "4111 1111 1111 1112"));
        assert!(!redact.leaves_alone("note", "4111 1111 1111 1111"));
        let counted: u64 = redact.rules.iter().map(|r| r.count.get()).sum();
        assert_eq!(
            counted + redact.key_count.get(),
            0,
            "a check counts nothing"
        );
    }

    #[test]
    fn patterns_mask_only_the_secret() {
        let redact = stage(&RedactConfig::default());
        assert_eq!(
            redact
                .text("call with Authorization: Bearer eyJhbGci.OiJI.UzI1 done")
                .unwrap(),
            "call with Authorization: Bearer [REDACTED] done"
        );
        assert_eq!(
            redact
                .text("connect postgres://app:s3cret@db:5432/x")
                .unwrap(),
            "connect postgres://[REDACTED]@db:5432/x"
        );
        assert_eq!(
            redact.text("key AKIAIOSFODNN7EXAMPLE used").unwrap(),
            "key [REDACTED] used"
        );
        assert_eq!(redact.text("plain message, GET /api -> 200"), None);
        assert_eq!(redact.text("https://example.com/path@v2"), None);
    }

    #[test]
    fn each_pattern_knows_its_shortest_match() {
        let redact = stage(&RedactConfig::default());
        let lengths: Vec<usize> = redact.rules.iter().map(|r| r.min_len).collect();
        // "bearer x", "a://b:@", an AWS key ID, 13 card digits.
        assert_eq!(lengths, [8, 7, 20, 13]);
        // The shortest of each still matches; one character less cannot.
        assert_eq!(
            redact.text("bearer x").as_deref(),
            Some("bearer [REDACTED]")
        );
        assert_eq!(redact.text("a://b:@").as_deref(), Some("a://[REDACTED]@"));
        assert_eq!(redact.text("bearer"), None);
    }

    #[test]
    fn secrets_are_masked_alone_and_in_longer_text() {
        let redact = stage(&RedactConfig::default());
        let secrets = [
            ("bearer abc.def", "bearer [REDACTED]"),
            ("BEARER abc.def", "BEARER [REDACTED]"),
            ("redis://u:p@h", "redis://[REDACTED]@h"),
            ("AKIAIOSFODNN7EXAMPLE", "[REDACTED]"),
            ("4111 1111 1111 1111", "[REDACTED]"),
        ];
        for (secret, masked) in secrets {
            assert_eq!(redact.text(secret).as_deref(), Some(masked), "{secret}");
            let padding = "x".repeat(100);
            let long = format!("{padding} {secret}");
            assert_eq!(
                redact.text(&long),
                Some(format!("{padding} {masked}")),
                "{secret}, long"
            );
        }
        // Two rules on one short string: the second sees the first's output.
        assert_eq!(
            redact.text("bearer abc key AKIAIOSFODNN7EXAMPLE").unwrap(),
            "bearer [REDACTED] key [REDACTED]"
        );
        for clean in ["info", "GET", "/api/users/:id", "2026-12-03T15:54:33.123Z"] {
            assert_eq!(redact.text(clean), None, "{clean}");
        }
    }

    #[test]
    fn card_numbers_must_pass_luhn() {
        let redact = stage(&RedactConfig::default());
        assert_eq!(
            redact.text("paid with 4111 1111 1111 1111 today").unwrap(),
            "paid with [REDACTED] today"
        );
        assert_eq!(
            redact.text("card 4111-1111-1111-1111").unwrap(),
            "card [REDACTED]"
        );
        assert_eq!(redact.text("order 4111111111111112"), None);
        assert_eq!(redact.text("ts 1733567400"), None);
        assert!(luhn("378282246310005") && !luhn("378282246310006"));
        assert!(has_digit_run(b"x 4111-1111 1111-1111", 13));
        assert!(!has_digit_run(b"2025-12-07T10:30:00.123Z", 13));
        assert!(!has_digit_run(b"1234--5678901234", 13));
    }

    #[test]
    fn custom_patterns_count_under_their_name() {
        let config = RedactConfig {
            patterns: vec![RedactPattern {
                name: "ssn".into(),
                regex: r"\b\d{3}-\d{2}-\d{4}\b".into(),
            }],
            ..RedactConfig::default()
        };
        let redact = stage(&config);
        let mut e = object(json!({"message": "ssn 123-45-6789 and 987-65-4321"}));
        redact.apply(&mut e);
        assert_eq!(e.fields["message"], "ssn [REDACTED] and [REDACTED]");
        assert_eq!(redact.rules.last().unwrap().count.get(), 2);
    }
}
