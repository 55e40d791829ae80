//! A reader for the Prometheus text format 0.0.4 (and the parts of OpenMetrics
//! text an app might send instead), just enough to re-expose families:
//! `# HELP`, `# TYPE`, samples with labels, values; timestamps are dropped.
//! Label values are kept in their escaped form, so they are written back
//! exactly as read.

use std::collections::HashMap;

/// A family's type, from its `# TYPE` line (`untyped` without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// `counter`
    Counter,
    /// `gauge`
    Gauge,
    /// `histogram`
    Histogram,
    /// `summary`
    Summary,
    /// `untyped` / `unknown`
    Untyped,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name (`x`, `x_bucket`, `x_total`, ...).
    pub name: String,
    /// Label pairs; values still escaped as in the source.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

/// A family: its name as in the `# TYPE` line, help, type and samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The family name.
    pub name: String,
    /// Help text, escaped as in the source.
    pub help: String,
    /// The type.
    pub kind: Type,
    /// Its samples, in source order.
    pub samples: Vec<Sample>,
}

/// A line that is not valid exposition text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

/// Parses a whole exposition.
pub fn parse(text: &str) -> Result<Vec<Family>, ParseError> {
    let mut families: Vec<Family> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let error = |problem: &str| ParseError {
            line: n + 1,
            problem: problem.to_owned(),
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.trim_start().splitn(3, [' ', '\t']);
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), help) => {
                    check_name(name).map_err(|p| error(&p))?;
                    let i = family_at(&mut families, &mut index, name);
                    families[i].help = help.unwrap_or_default().trim().to_owned();
                }
                (Some("TYPE"), Some(name), Some(kind)) => {
                    check_name(name).map_err(|p| error(&p))?;
                    let kind = match kind.trim() {
                        "counter" => Type::Counter,
                        "gauge" => Type::Gauge,
                        "histogram" => Type::Histogram,
                        "summary" => Type::Summary,
                        "untyped" | "unknown" => Type::Untyped,
                        other => return Err(error(&format!("unsupported type {other:?}"))),
                    };
                    let i = family_at(&mut families, &mut index, name);
                    families[i].kind = kind;
                }
                _ => {} // Other comments, `# EOF`, `# UNIT`.
            }
            continue;
        }
        let sample = parse_sample(line).map_err(|p| error(&p))?;
        match owner(&sample.name, &families, &index) {
            Some(Some(i)) => families[i].samples.push(sample),
            Some(None) => {} // An OpenMetrics `_created` sample: not re-exposed.
            None => {
                let i = family_at(&mut families, &mut index, &sample.name);
                families[i].samples.push(sample);
            }
        }
    }
    Ok(families)
}

fn family_at(families: &mut Vec<Family>, index: &mut HashMap<String, usize>, name: &str) -> usize {
    *index.entry(name.to_owned()).or_insert_with(|| {
        families.push(Family {
            name: name.to_owned(),
            help: String::new(),
            kind: Type::Untyped,
            samples: Vec::new(),
        });
        families.len() - 1
    })
}

/// The family a sample belongs to: `Some(Some(i))`, `Some(None)` to drop it,
/// `None` when no family is declared for it.
fn owner(name: &str, families: &[Family], index: &HashMap<String, usize>) -> Option<Option<usize>> {
    for (suffix, types) in [
        ("_bucket", &[Type::Histogram][..]),
        ("_sum", &[Type::Histogram, Type::Summary][..]),
        ("_count", &[Type::Histogram, Type::Summary][..]),
        ("_total", &[Type::Counter][..]),
        (
            "_created",
            &[Type::Counter, Type::Histogram, Type::Summary][..],
        ),
    ] {
        if let Some(&i) = name.strip_suffix(suffix).and_then(|base| index.get(base)) {
            if types.contains(&families[i].kind) {
                return Some((suffix != "_created").then_some(i));
            }
        }
    }
    index.get(name).map(|&i| Some(i))
}

fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
        });
    if valid {
        Ok(())
    } else {
        Err(format!("invalid metric name {name:?}"))
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
    let name = &line[..name_end];
    check_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = rest
                .split_once('=')
                .ok_or_else(|| "label without `=`".to_owned())?;
            let key = key.trim();
            let valid = !key.is_empty()
                && key.chars().enumerate().all(|(i, c)| {
                    c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit())
                });
            if !valid {
                return Err(format!("invalid label name {key:?}"));
            }
            let after = after
                .trim_start()
                .strip_prefix('"')
                .ok_or_else(|| "label value must be quoted".to_owned())?;
            let (value, after) = quoted(after)?;
            labels.push((key.to_owned(), value.to_owned()));
            rest = after.trim_start();
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    let mut fields = rest.split_whitespace();
    let value = fields
        .next()
        .ok_or_else(|| "sample without a value".to_owned())?;
    let value = value
        .parse::<f64>()
        .map_err(|_| format!("invalid value {value:?}"))?;
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Splits `text` (just after an opening quote) at its closing quote,
/// returning the still-escaped value and what follows the quote.
fn quoted(text: &str) -> Result<(&str, &str), String> {
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '\\' | '"' | 'n')) => {}
                _ => return Err("invalid escape in label value".into()),
            },
            '"' => return Ok((&text[..i], &text[i + 1..])),
            _ => {}
        }
    }
    Err("unterminated label value".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP hikaricp_connections_active Active connections
# TYPE hikaricp_connections_active gauge
hikaricp_connections_active{pool="main"} 3
hikaricp_connections_active{pool="odd \"name\"\\x"} 1 1700000000000
# TYPE http_requests_total counter
http_requests_total{method="GET",status="200",} 1027
# HELP latency_seconds Latency.
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} 5
latency_seconds_bucket{le="+Inf"} 7
latency_seconds_sum 1.5
latency_seconds_count 7
# TYPE rpc summary
rpc{quantile="0.5"} 0.2
rpc_sum 10
rpc_count 50
stray_metric NaN
"#;

    #[test]
    fn parses_families_with_their_samples() {
        let families = parse(TEXT).unwrap();
        let names: Vec<_> = families
            .iter()
            .map(|f| (f.name.as_str(), f.kind, f.samples.len()))
            .collect();
        assert_eq!(
            names,
            [
                ("hikaricp_connections_active", Type::Gauge, 2),
                ("http_requests_total", Type::Counter, 1),
                ("latency_seconds", Type::Histogram, 4),
                ("rpc", Type::Summary, 3),
                ("stray_metric", Type::Untyped, 1),
            ]
        );
        assert_eq!(families[0].help, "Active connections");
        assert_eq!(
            families[0].samples[1].labels,
            [("pool".to_owned(), r#"odd \"name\"\\x"#.to_owned())]
        );
        assert_eq!(families[1].samples[0].labels.len(), 2);
        assert_eq!(families[2].samples[1].labels[0].1, "+Inf");
        assert_eq!(parse("x +Inf").unwrap()[0].samples[0].value, f64::INFINITY);
        assert!(families[4].samples[0].value.is_nan());
    }

    #[test]
    fn openmetrics_counters_drop_created() {
        let families =
            parse("# TYPE jobs counter\njobs_total 3\njobs_created 1.7e9\n# EOF\n").unwrap();
        assert_eq!(families.len(), 1);
        assert_eq!(families[0].samples.len(), 1);
        assert_eq!(families[0].samples[0].name, "jobs_total");
    }

    #[test]
    fn rejects_malformed_lines() {
        for bad in [
            "1metric 1",
            "m{a=b} 1",
            "m{a=\"b} 1",
            "m{a=\"\\q\"} 1",
            "m{1a=\"b\"} 1",
            "m",
            "m abc",
            "# TYPE m histogramm",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
