//! The StatsD / DogStatsD line format:
//! `name[,tag=v…|#tag=v…]:value[:value…]|type[|@rate][|#tag:v,…][|c:container][|T…]`.
//! Types: `c` counter, `g` gauge (`+n`/`-n` are deltas), `ms` timer,
//! `h` histogram, `d` distribution, `s` set. Tags may be DogStatsD
//! (`|#k:v`), InfluxDB (`name,k=v`) or Librato (`name#k=v`) style, not mixed.

/// A sample's metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `c`: added to a counter (divided by the sample rate).
    Counter,
    /// `g`: sets a gauge, or moves it when signed (`+3`, `-2`).
    Gauge,
    /// `ms`: observed into a histogram, converted to seconds.
    Timer,
    /// `h` and `d`: observed into a histogram as they are.
    Histogram,
    /// `s`: counts distinct values.
    Set,
}

/// One parsed sample, borrowing from the packet.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// The metric name as sent, without tags.
    pub name: &'a str,
    /// The metric type.
    pub kind: Kind,
    /// The value (for sets, the member's text is in `member`).
    pub value: f64,
    /// A set's member.
    pub member: &'a str,
    /// Gauges: the value is a delta (`+n` / `-n`).
    pub relative: bool,
    /// The sample rate (0 < rate ≤ 1).
    pub rate: f64,
    /// Tag pairs in order of appearance (keys raw).
    pub tags: Vec<(&'a str, &'a str)>,
}

/// Why a line was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Not in the line format.
    #[error("malformed")]
    Malformed,
    /// A DogStatsD event (`_e{…}`) or service check (`_sc|…`).
    #[error("unsupported")]
    Unsupported,
}

/// Parses one line, calling `sample` for each of its samples (a line may
/// carry several values). Nothing is reported for a malformed line.
pub fn parse_line<'a>(line: &'a str, sample: impl FnMut(Sample<'a>)) -> Result<(), LineError> {
    if line.starts_with("_e{") || line.starts_with("_sc|") {
        return Err(LineError::Unsupported);
    }
    let (head, rest) = line.split_once(':').ok_or(LineError::Malformed)?;
    let (name, tags) = name_and_tags(head)?;
    if name.is_empty() {
        return Err(LineError::Malformed);
    }
    let dogstatsd = rest.contains("|#");
    if dogstatsd && !tags.is_empty() {
        return Err(LineError::Malformed);
    }
    // `v1:v2|d|…` (DogStatsD multi-value) or `v1|c:v2|c` (classic).
    let (values, kind_and_rest) = rest.split_once('|').ok_or(LineError::Malformed)?;
    let kind_text = kind_and_rest.split('|').next().unwrap_or_default();
    let samples: Vec<(&str, &str)> = if values.contains(':') {
        if !matches!(kind_text, "ms" | "h" | "d") {
            return Err(LineError::Malformed);
        }
        values.split(':').map(|v| (v, kind_and_rest)).collect()
    } else if dogstatsd || rest.contains("|c:") || rest.contains("|T") {
        // DogStatsD extensions: one sample per line.
        vec![(values, kind_and_rest)]
    } else {
        rest.split(':')
            .map(|s| s.split_once('|').ok_or(LineError::Malformed))
            .collect::<Result<_, _>>()?
    };
    let mut parsed = Vec::with_capacity(samples.len());
    for (value_text, suffix) in samples {
        let mut parts = suffix.split('|');
        let kind = match parts.next() {
            Some("c") => Kind::Counter,
            Some("g") => Kind::Gauge,
            Some("ms") => Kind::Timer,
            Some("h" | "d") => Kind::Histogram,
            Some("s") => Kind::Set,
            _ => return Err(LineError::Malformed),
        };
        let mut rate = 1.0;
        let mut own_tags = tags.clone();
        for part in parts {
            match part.as_bytes().first() {
                Some(b'@') => {
                    rate = part[1..].parse::<f64>().map_err(|_| LineError::Malformed)?;
                    if !(rate > 0.0 && rate <= 1.0) {
                        return Err(LineError::Malformed);
                    }
                }
                Some(b'#') => dogstatsd_tags(&part[1..], &mut own_tags),
                Some(b'c') if part.starts_with("c:") => {}
                Some(b'T') if part[1..].parse::<i64>().is_ok() => {}
                _ => return Err(LineError::Malformed),
            }
        }
        let (value, member) = if kind == Kind::Set {
            if value_text.is_empty() {
                return Err(LineError::Malformed);
            }
            (1.0, value_text)
        } else {
            let value: f64 = value_text.parse().map_err(|_| LineError::Malformed)?;
            if !value.is_finite() || (kind == Kind::Counter && value < 0.0) {
                return Err(LineError::Malformed);
            }
            (value, "")
        };
        parsed.push(Sample {
            name,
            kind,
            value,
            member,
            relative: kind == Kind::Gauge && value_text.starts_with(['+', '-']),
            rate,
            tags: own_tags,
        });
    }
    parsed.into_iter().for_each(sample);
    Ok(())
}

/// A metric name with its `(key, value)` tags.
type NameAndTags<'a> = (&'a str, Vec<(&'a str, &'a str)>);

/// Splits InfluxDB (`name,k=v`) and Librato (`name#k=v`) tags off the name.
fn name_and_tags(head: &str) -> Result<NameAndTags<'_>, LineError> {
    let mut tags = Vec::new();
    match head.find([',', '#']) {
        None => Ok((head, tags)),
        Some(i) => {
            for tag in head[i + 1..].split(',') {
                let (k, v) = tag.split_once('=').ok_or(LineError::Malformed)?;
                if k.is_empty() || v.is_empty() {
                    return Err(LineError::Malformed);
                }
                tags.push((k, v));
            }
            Ok((&head[..i], tags))
        }
    }
}

/// DogStatsD tags `k:v,k2:v2`; a tag without a value (`env`) is skipped.
fn dogstatsd_tags<'a>(text: &'a str, tags: &mut Vec<(&'a str, &'a str)>) {
    for tag in text.split(',') {
        let tag = tag.strip_prefix('#').unwrap_or(tag);
        if let Some((k, v)) = tag.split_once(':') {
            if !k.is_empty() && !v.is_empty() {
                tags.push((k, v));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Vec<Sample<'_>>, LineError> {
        let mut out = Vec::new();
        parse_line(line, |s| out.push(s))?;
        Ok(out)
    }

    #[test]
    fn statsd_exporter_corpus_shapes() {
        let s = parse("foo:2|c|@0.1").unwrap();
        assert_eq!(
            (s[0].name, s[0].kind, s[0].value, s[0].rate),
            ("foo", Kind::Counter, 2.0, 0.1)
        );
        let s = parse("foo:-3|g").unwrap();
        assert!(s[0].relative && s[0].value == -3.0);
        let s = parse("foo:3|g").unwrap();
        assert!(!s[0].relative);
        let s = parse("foo:+3|g").unwrap();
        assert!(s[0].relative);
        let s = parse("glork:320|ms|@0.5").unwrap();
        assert_eq!((s[0].kind, s[0].rate), (Kind::Timer, 0.5));
        let s = parse("foo:200|ms:300|ms:5|c|@0.1:6|g:7|s").unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(s[4].member, "7");
        let s = parse("foo:100|ms|#tag1:bar,#tag2:baz,novalue").unwrap();
        assert_eq!(s[0].tags, vec![("tag1", "bar"), ("tag2", "baz")]);
        let s = parse("foo,tag1=bar,tag2=baz:100|c").unwrap();
        assert_eq!((s[0].name, s[0].tags.len()), ("foo", 2));
        let s = parse("foo#tag1=bar:100|c").unwrap();
        assert_eq!(s[0].tags, vec![("tag1", "bar")]);
        let s = parse("dist:1:2:3|d|#a:b").unwrap();
        assert_eq!(s.len(), 3);
        assert!(s.iter().all(|x| x.tags == vec![("a", "b")]));
        let s = parse("users:alice|s").unwrap();
        assert_eq!((s[0].kind, s[0].member), (Kind::Set, "alice"));
        let s = parse("foo:1|c|c:83c0a99c0a54c0c187f461c7980e9b57f3f6a8b0c918c8d93df19a9de6f3fe1d|T1656581400").unwrap();
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn malformed_lines_are_refused() {
        for bad in [
            "",
            "foo",
            "foo:",
            ":1|c",
            "foo:1",
            "foo:x|c",
            "foo:1|q",
            "foo:1|c|@x",
            "foo:1|c|@0",
            "foo:1|c|@2",
            "foo:1:2|c",
            "foo,a=b:1|c|#c:d",
            "foo,a:1|c",
            "foo:1|c|x",
            "foo:-1|c",
            "foo:NaN|g",
            "foo:|s",
            "foo:1||c",
        ] {
            assert_eq!(parse(bad).err(), Some(LineError::Malformed), "{bad:?}");
        }
        assert_eq!(
            parse("_e{5,4}:title|text").err(),
            Some(LineError::Unsupported)
        );
        assert_eq!(parse("_sc|redis|0").err(), Some(LineError::Unsupported));
    }
}
