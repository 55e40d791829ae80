//! Exposition formats: Prometheus text 0.0.4 (the default) and OpenMetrics 1.0.
//!
//! `prometheus-client` writes only OpenMetrics. Its output is converted line
//! by line to 0.0.4, which is what `promtool check metrics` parses:
//! counters' `HELP`/`TYPE` lines get the `_total` name their samples carry,
//! info families become gauges named `*_info`, `unknown` becomes `untyped`,
//! and `# UNIT`, `# EOF` and exemplars are dropped.

use std::fmt::Write as _;

/// The content type of Prometheus text format 0.0.4.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The content type of OpenMetrics text format 1.0.
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which text format a scrape gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    /// Prometheus text 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text, with exemplars.
    OpenMetrics,
}

impl Exposition {
    /// Picks the format from an `Accept` header: OpenMetrics when it is
    /// offered with a non-zero quality, otherwise Prometheus text.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Exposition::Prometheus;
        };
        let wants_openmetrics = accept.split(',').any(|part| {
            let mut params = part.split(';').map(str::trim);
            let media = params.next().unwrap_or_default();
            let zero_quality = params.any(|p| p.replace(' ', "") == "q=0");
            media.eq_ignore_ascii_case("application/openmetrics-text") && !zero_quality
        });
        if wants_openmetrics {
            Exposition::OpenMetrics
        } else {
            Exposition::Prometheus
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Exposition::Prometheus => PROMETHEUS_TEXT,
            Exposition::OpenMetrics => OPENMETRICS_TEXT,
        }
    }
}

/// Converts OpenMetrics text (as `prometheus-client` writes it) into
/// Prometheus text 0.0.4, appending to `out`.
pub fn openmetrics_to_prometheus(openmetrics: &str, out: &mut String) {
    let mut pending_help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            pending_help = Some((name, help));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (suffix, kind) = match kind {
                "counter" => ("_total", "counter"),
                "info" => ("_info", "gauge"),
                "unknown" => ("", "untyped"),
                other => ("", other),
            };
            if let Some((help_name, help)) = pending_help.take() {
                let _ = writeln!(out, "# HELP {help_name}{suffix} {help}");
            }
            let _ = writeln!(out, "# TYPE {name}{suffix} {kind}");
        } else if line.starts_with('#') {
            // `# UNIT` and `# EOF` have no 0.0.4 equivalent.
        } else if !line.is_empty() {
            out.push_str(strip_exemplar(line));
            out.push('\n');
        }
    }
}

/// Cuts an OpenMetrics exemplar (` # {labels} value [timestamp]`) off a sample line.
fn strip_exemplar(line: &str) -> &str {
    // Skip the label set, where quoted values may contain anything.
    let bytes = line.as_bytes();
    let mut i = 0;
    let mut in_quotes = false;
    let mut in_labels = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_quotes => i += 1,
            b'"' if in_labels => in_quotes = !in_quotes,
            b'{' if !in_quotes => in_labels = true,
            b'}' if !in_quotes => in_labels = false,
            b'#' if !in_quotes && !in_labels => return line[..i].trim_end(),
            _ => {}
        }
        i += 1;
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_openmetrics_only_when_offered() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(
            Exposition::negotiate(Some(prometheus)),
            Exposition::OpenMetrics
        );
        assert_eq!(
            Exposition::negotiate(Some("text/plain")),
            Exposition::Prometheus
        );
        assert_eq!(Exposition::negotiate(None), Exposition::Prometheus);
        assert_eq!(
            Exposition::negotiate(Some("application/openmetrics-text; q=0")),
            Exposition::Prometheus
        );
    }

    #[test]
    fn converts_counters_info_and_exemplars() {
        let om = "# HELP requests Requests.\n# TYPE requests counter\nrequests_total{route=\"/a # {b}\"} 3 # {trace_id=\"abc\"} 1.0 123\n\
                  # HELP build Build.\n# TYPE build info\nbuild_info{version=\"1\"} 1\n\
                  # HELP latency_seconds Latency.\n# TYPE latency_seconds histogram\n# UNIT latency_seconds seconds\n\
                  latency_seconds_bucket{le=\"0.5\"} 1 # {trace_id=\"x\"} 0.2\nlatency_seconds_sum 0.2\n# EOF\n";
        let mut out = String::new();
        openmetrics_to_prometheus(om, &mut out);
        assert_eq!(
            out,
            "# HELP requests_total Requests.\n# TYPE requests_total counter\nrequests_total{route=\"/a # {b}\"} 3\n\
             # HELP build_info Build.\n# TYPE build_info gauge\nbuild_info{version=\"1\"} 1\n\
             # HELP latency_seconds Latency.\n# TYPE latency_seconds histogram\n\
             latency_seconds_bucket{le=\"0.5\"} 1\nlatency_seconds_sum 0.2\n"
        );
    }

    #[test]
    fn escaped_quotes_in_label_values_do_not_confuse_the_scan() {
        assert_eq!(
            strip_exemplar(r#"a{b="x\" # y"} 1 # {t="1"} 2"#),
            r#"a{b="x\" # y"} 1"#
        );
    }
}
