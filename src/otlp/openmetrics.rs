//! Reads the registry's OpenMetrics text (what `prometheus-client` writes for
//! `/metrics`) back into families and samples, without copying, so the OTLP
//! exporter sees exactly what a scrape sees — collectors, snapshot families
//! and exemplars included.

use std::borrow::Cow;

/// The type of a family (`# TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `counter`: samples `NAME_total` (and `NAME_created`).
    Counter,
    /// `gauge`.
    Gauge,
    /// `histogram`: `NAME_bucket{le}`, `NAME_sum`, `NAME_count`.
    Histogram,
    /// `info`: `NAME_info`, always 1.
    Info,
    /// `unknown` and anything else: exported as a gauge.
    Unknown,
}

/// A label set: names and unescaped values, in order.
pub type Labels<'a> = Vec<(&'a str, Cow<'a, str>)>;

/// One family.
#[derive(Debug, Clone)]
pub struct Family<'a> {
    /// The family name (counters without `_total`).
    pub name: &'a str,
    /// Its type.
    pub kind: Kind,
    /// Its help text.
    pub help: &'a str,
    /// Its unit (`# UNIT`), empty when none.
    pub unit: &'a str,
    /// Its samples in order.
    pub samples: Vec<Sample<'a>>,
}

/// One sample line.
#[derive(Debug, Clone)]
pub struct Sample<'a> {
    /// The sample name (`NAME_total`, `NAME_bucket`, ...).
    pub name: &'a str,
    /// Its labels.
    pub labels: Labels<'a>,
    /// Its value.
    pub value: f64,
    /// Its exemplar, if any.
    pub exemplar: Option<Exemplar<'a>>,
}

/// An exemplar: ` # {labels} value [timestamp]`.
#[derive(Debug, Clone)]
pub struct Exemplar<'a> {
    /// Its labels (sidewatch: `trace_id`).
    pub labels: Labels<'a>,
    /// The observed value.
    pub value: f64,
    /// Unix seconds, when given.
    pub timestamp: Option<f64>,
}

/// Parses OpenMetrics text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Family<'_>> {
    let mut families: Vec<Family<'_>> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (Some(keyword), Some(name)) = (parts.next(), parts.next()) else {
                continue;
            };
            let value = parts.next().unwrap_or_default();
            if families.last().is_none_or(|f| f.name != name) {
                families.push(Family {
                    name,
                    kind: Kind::Unknown,
                    help: "",
                    unit: "",
                    samples: Vec::new(),
                });
            }
            let Some(family) = families.last_mut() else {
                continue;
            };
            match keyword {
                "HELP" => family.help = value,
                "UNIT" => family.unit = value,
                "TYPE" => {
                    family.kind = match value {
                        "counter" => Kind::Counter,
                        "gauge" => Kind::Gauge,
                        "histogram" => Kind::Histogram,
                        "info" => Kind::Info,
                        _ => Kind::Unknown,
                    }
                }
                _ => {}
            }
        } else if line.is_empty() || line.starts_with('#') {
            continue;
        } else if let Some(sample) = parse_sample(line) {
            match families.last_mut() {
                Some(family) if sample.name.starts_with(family.name) => family.samples.push(sample),
                _ => families.push(Family {
                    name: sample.name,
                    kind: Kind::Unknown,
                    help: "",
                    unit: "",
                    samples: vec![sample],
                }),
            }
        }
    }
    families
}

fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if rest.starts_with('{') {
        let (parsed, after) = parse_labels(rest)?;
        labels = parsed;
        rest = after;
    }
    let rest = rest.trim_start();
    let (value_text, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let value = parse_value(value_text)?;
    let exemplar = rest
        .find("# {")
        .and_then(|at| parse_exemplar(&rest[at + 2..]));
    Some(Sample {
        name,
        labels,
        value,
        exemplar,
    })
}

fn parse_exemplar(text: &str) -> Option<Exemplar<'_>> {
    let (labels, rest) = parse_labels(text)?;
    let mut words = rest.split_whitespace();
    let value = parse_value(words.next()?)?;
    let timestamp = words.next().and_then(parse_value);
    Some(Exemplar {
        labels,
        value,
        timestamp,
    })
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        other => other.parse().ok(),
    }
}

/// Parses `{a="x",b="y"}` at the start of `text`; returns the labels and
/// what follows the closing brace.
fn parse_labels(text: &str) -> Option<(Labels<'_>, &str)> {
    let mut rest = text.strip_prefix('{')?;
    let mut labels = Vec::new();
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = rest.find('=')?;
        let name = rest[..eq].trim();
        rest = rest[eq + 1..].strip_prefix('"')?;
        let bytes = rest.as_bytes();
        let mut i = 0;
        let mut escaped = false;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => {
                    escaped = true;
                    i += 1;
                }
                b'"' => break,
                _ => {}
            }
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        let raw = &rest[..i];
        let value = if escaped {
            Cow::Owned(unescape(raw))
        } else {
            Cow::Borrowed(raw)
        };
        labels.push((name, value));
        rest = &rest[i + 1..];
    }
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_exemplars() {
        let text = "# HELP requests Requests.\n# TYPE requests counter\nrequests_total{route=\"/a \\\"b\\\"\",m=\"GET\"} 3 # {trace_id=\"abc\"} 1.0 1700000000.5\n\
                    # HELP build Build.\n# TYPE build info\nbuild_info{version=\"1\"} 1\n\
                    # HELP latency_seconds Latency.\n# TYPE latency_seconds histogram\n# UNIT latency_seconds seconds\n\
                    latency_seconds_sum 0.2\nlatency_seconds_count 1\nlatency_seconds_bucket{le=\"0.5\"} 1 # {trace_id=\"x\"} 0.2\nlatency_seconds_bucket{le=\"+Inf\"} 1\n# EOF\n";
        let families = parse(text);
        assert_eq!(families.len(), 3);
        let requests = &families[0];
        assert_eq!((requests.name, requests.kind), ("requests", Kind::Counter));
        let sample = &requests.samples[0];
        assert_eq!(sample.name, "requests_total");
        assert_eq!(sample.labels[0], ("route", Cow::Borrowed("/a \"b\"")));
        assert_eq!(sample.value, 3.0);
        let exemplar = sample.exemplar.as_ref().unwrap();
        assert_eq!(exemplar.labels[0].1, "abc");
        assert_eq!(exemplar.timestamp, Some(1_700_000_000.5));
        assert_eq!(families[1].kind, Kind::Info);
        let latency = &families[2];
        assert_eq!((latency.kind, latency.unit), (Kind::Histogram, "seconds"));
        assert_eq!(latency.samples.len(), 4);
        assert_eq!(latency.samples[3].value, 1.0);
        assert_eq!(latency.samples[3].labels[0].1, "+Inf");
        assert!(latency.samples[2].exemplar.is_some());
    }
}
