//! `[[log_metrics]]`: metrics derived from log events (counters, histograms
//! with exemplars, gauges), and `[routes]`: route templates for normalising
//! request paths into route labels.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::load::ConfigError;
use crate::telemetry::names;

/// The default histogram buckets, in seconds: SLO thresholds (0.25, 0.5, 1,
/// 2, 5, 10 s) are exact bounds, so "share of requests under 2 s" is exact.
pub const DEFAULT_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
];

/// What a rule records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    /// Counts matching events (or adds `value_field`); name ends in `_total`.
    #[default]
    Counter,
    /// Observes `value_field` (scaled) into buckets, with a `trace_id` exemplar.
    Histogram,
    /// Sets the last seen value of `value_field`.
    Gauge,
}

/// One `[[log_metrics]]` rule.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogMetricRule {
    /// The metric name (unique; counters end in `_total`; may not be a name
    /// sidewatch registers itself, like `sidewatch_*`, `pg_*`, `redis_*`).
    pub name: String,
    /// `counter` (default), `histogram` or `gauge`.
    #[serde(rename = "type")]
    pub kind: RuleKind,
    /// The `# HELP` text; defaults to a description of the rule.
    pub help: String,
    /// Which events count; empty matches every event.
    #[serde(rename = "match")]
    pub matcher: Matcher,
    /// Labels: label name → event field (dotted names reach nested
    /// objects). A missing field gives an empty value.
    pub labels: BTreeMap<String, String>,
    /// Labels (from `labels`) whose values are request paths, normalised to
    /// routes (`[routes]` templates, else ID-like segments → `{id}`).
    pub route_labels: Vec<String>,
    /// Field holding the value: needed for histograms and gauges; for a
    /// counter, added instead of 1.
    pub value_field: Option<String>,
    /// Unit of `value_field` for conversion to base units: `s`, `ms`, `us`
    /// or `ns` (→ seconds). Exclusive with `scale`.
    pub value_unit: Option<String>,
    /// Factor the value is multiplied by (e.g. `0.001`). Exclusive with `value_unit`.
    pub scale: Option<f64>,
    /// Histogram bucket upper bounds, increasing, non-negative; empty = the
    /// SLO-aligned default (0.005 … 0.25, 0.5, 1, 2, 5, 10, 30 s).
    pub buckets: Vec<f64>,
    /// Most series (label value combinations) kept; further ones are recorded
    /// as `__overflow__`.
    pub max_series: usize,
}

/// A condition on an event: exactly one of a field test (`field` with
/// `equals`, `regex`, `exists`, or a numeric comparison `gt`/`ge`/`lt`/`le`,
/// which may be combined into a range), or a combination (`all`, `any`,
/// `not`). An empty matcher matches everything.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Matcher {
    /// The field tested (dotted names reach nested objects).
    pub field: Option<String>,
    /// The field equals this string, number or boolean (numbers compare
    /// numerically, also against numeric strings).
    pub equals: Option<Scalar>,
    /// The field (as text) matches this regex.
    pub regex: Option<String>,
    /// The field is present (`true`) or absent (`false`).
    pub exists: Option<bool>,
    /// The field is a number (or numeric string) greater than this.
    pub gt: Option<f64>,
    /// … greater than or equal to this.
    pub ge: Option<f64>,
    /// … less than this.
    pub lt: Option<f64>,
    /// … less than or equal to this.
    pub le: Option<f64>,
    /// Every one of these matches.
    pub all: Option<Vec<Matcher>>,
    /// At least one of these matches.
    pub any: Option<Vec<Matcher>>,
    /// This does not match.
    pub not: Option<Box<Matcher>>,
}

/// A configured value to compare with.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Scalar {
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Number(f64),
    /// A string.
    Text(String),
}

/// `[routes]`: how request paths become route labels.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutesConfig {
    /// Route templates tried first, in order, e.g. `/users/{id}`,
    /// `/orders/{id}/items`; `{name}` matches one path segment.
    pub templates: Vec<String>,
}

impl LogMetricRule {
    /// How values are scaled: multiplied by the first number, then divided
    /// by the second. Units divide (`148 / 1000` is exactly the double
    /// nearest 0.148, where `148 * 0.001` is not), `scale` multiplies.
    pub fn scaling(&self) -> (f64, f64) {
        match (self.scale, self.value_unit.as_deref()) {
            (Some(scale), _) => (scale, 1.0),
            (None, Some("ms")) => (1.0, 1e3),
            (None, Some("us")) => (1.0, 1e6),
            (None, Some("ns")) => (1.0, 1e9),
            _ => (1.0, 1.0),
        }
    }

    /// The bucket bounds in use.
    pub fn effective_buckets(&self) -> Vec<f64> {
        if self.buckets.is_empty() {
            DEFAULT_BUCKETS.to_vec()
        } else {
            self.buckets.clone()
        }
    }

    /// The series limit in use.
    pub fn effective_max_series(&self) -> usize {
        if self.max_series == 0 {
            crate::telemetry::cardinality::DEFAULT_LIMIT
        } else {
            self.max_series
        }
    }
}

/// Every problem with `[[log_metrics]]` and `[routes]`; `has_sources` says
/// whether any log source exists to feed the rules.
pub(crate) fn validate(
    rules: &[LogMetricRule],
    routes: &RoutesConfig,
    has_sources: bool,
) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if let Err(e) = crate::telemetry::route::RouteNormalizer::new(&routes.templates) {
        errors.push(ConfigError {
            key: "routes.templates".into(),
            message: e.to_string(),
        });
    }
    if !rules.is_empty() && !has_sources {
        errors.push(ConfigError {
            key: "log_metrics".into(),
            message: "rules need events: configure `[[logs.sources]]`".into(),
        });
    }
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (i, rule) in rules.iter().enumerate() {
        let key = format!("log_metrics[{i}]");
        let mut push = |field: &str, message: String| {
            errors.push(ConfigError {
                key: if field.is_empty() {
                    key.clone()
                } else {
                    format!("{key}.{field}")
                },
                message: format!("rule {:?}: {message}", rule.name),
            })
        };
        check_rule(rule, &mut push);
        if names::is_metric_name(&rule.name) {
            let base = names::family_base(&rule.name);
            if let Some(other) = seen.insert(base, &rule.name) {
                push("name", format!("clashes with rule {other:?} (same family)"));
            }
        }
    }
    errors
}

fn check_rule(rule: &LogMetricRule, push: &mut impl FnMut(&str, String)) {
    let name = rule.name.as_str();
    if name.is_empty() {
        push("name", "must be set".into());
    } else if !names::is_metric_name(name) {
        push(
            "name",
            "not a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)".into(),
        );
    } else if let Some(owner) = names::reserved_by(name, false) {
        push("name", format!("{name:?} is already registered by {owner}"));
    } else {
        match rule.kind {
            RuleKind::Counter if !name.ends_with("_total") => {
                push("name", "a counter's name must end in `_total`".into())
            }
            RuleKind::Histogram | RuleKind::Gauge if name.ends_with("_total") => {
                push("name", "`_total` is for counters only".into())
            }
            _ => {}
        }
        if rule.kind == RuleKind::Histogram
            && ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name.ends_with(s))
        {
            push("name", "must not end in _bucket, _sum or _count".into());
        }
    }
    for label in rule.labels.keys() {
        if !names::is_label_name(label) {
            push(
                &format!("labels.{label}"),
                "not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, not __*, le or quantile)".into(),
            );
        }
    }
    for (i, label) in rule.route_labels.iter().enumerate() {
        if !rule.labels.contains_key(label) {
            push(
                &format!("route_labels[{i}]"),
                format!("{label:?} is not one of `labels`"),
            );
        }
    }
    match (rule.kind, &rule.value_field) {
        (RuleKind::Histogram | RuleKind::Gauge, None) => {
            push("value_field", "needed for histograms and gauges".into())
        }
        (_, Some(field)) if field.is_empty() => push("value_field", "must not be empty".into()),
        _ => {}
    }
    if rule.value_unit.is_some() && rule.scale.is_some() {
        push(
            "scale",
            "set either `value_unit` or `scale`, not both".into(),
        );
    }
    if let Some(unit) = &rule.value_unit {
        if !matches!(unit.as_str(), "s" | "ms" | "us" | "ns") {
            push("value_unit", format!("{unit:?}: expected s, ms, us or ns"));
        }
    }
    if rule.scale.is_some_and(|s| !s.is_finite() || s <= 0.0) {
        push("scale", "must be a positive number".into());
    }
    if rule.kind != RuleKind::Histogram && !rule.buckets.is_empty() {
        push("buckets", "only histograms have buckets".into());
    }
    if rule.buckets.iter().any(|b| !b.is_finite() || *b < 0.0) {
        push("buckets", "bounds must be finite and non-negative".into());
    } else if rule.buckets.windows(2).any(|w| w[0] >= w[1]) {
        push("buckets", "bounds must be strictly increasing".into());
    }
    check_matcher(&rule.matcher, "match", push);
}

fn check_matcher(m: &Matcher, key: &str, push: &mut impl FnMut(&str, String)) {
    let tests = usize::from(m.equals.is_some())
        + usize::from(m.regex.is_some())
        + usize::from(m.exists.is_some())
        + usize::from(m.gt.is_some() || m.ge.is_some() || m.lt.is_some() || m.le.is_some());
    let combos =
        usize::from(m.all.is_some()) + usize::from(m.any.is_some()) + usize::from(m.not.is_some());
    let problem = if (m.gt.is_some() && m.ge.is_some()) || (m.lt.is_some() && m.le.is_some()) {
        Some("use one lower bound (gt or ge) and one upper bound (lt or le)")
    } else if combos > 0 && (m.field.is_some() || tests > 0) {
        Some("a field test and all/any/not cannot share one matcher (nest them)")
    } else if combos > 1 {
        Some("use one of all/any/not per matcher (nest them)")
    } else if tests > 1 {
        Some("use one test per matcher (combine several with `all`/`any`)")
    } else if m.field.is_some() && tests == 0 {
        Some("a `field` needs one test: equals, regex, exists or gt/ge/lt/le")
    } else if m.field.is_none() && tests == 1 {
        Some("a test needs a `field`")
    } else if m.field.as_deref() == Some("") {
        Some("`field` must not be empty")
    } else {
        None
    };
    if let Some(problem) = problem {
        push(key, problem.into());
    }
    if let Some(pattern) = &m.regex {
        if let Err(e) = regex::Regex::new(pattern) {
            push(&format!("{key}.regex"), format!("invalid regex: {e}"));
        }
    }
    for (name, list) in [("all", &m.all), ("any", &m.any)] {
        for (i, inner) in list.iter().flatten().enumerate() {
            check_matcher(inner, &format!("{key}.{name}[{i}]"), push);
        }
    }
    if let Some(inner) = &m.not {
        check_matcher(inner, &format!("{key}.not"), push);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::{load_from_str, Format};

    const SOURCE: &str = "[logs]\nstate_dir = \"/tmp\"\n[[logs.sources]]\ntype = \"stdin\"\n[[logs.sinks]]\ntype = \"stdout\"\n";

    fn errors(rules: &str) -> Vec<(String, String)> {
        match load_from_str(&format!("{SOURCE}{rules}"), Format::Toml, &HashMap::new()) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.into_iter().map(|e| (e.key, e.message)).collect(),
        }
    }

    #[test]
    fn a_good_rule_set_loads() {
        let found = errors(
            r#"
            [routes]
            templates = ["/users/{id}"]
            [[log_metrics]]
            name = "app_request_duration_seconds"
            type = "histogram"
            value_field = "latency_ms"
            value_unit = "ms"
            labels = { route = "path", status = "status" }
            route_labels = ["route"]
            match = { all = [{ field = "latency_ms", exists = true }, { not = { field = "route", regex = "^/health" } }] }
            [[log_metrics]]
            name = "chat_messages_total"
            labels = { intent = "intent" }
            "#,
        );
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn invalid_rules_are_named_by_key_and_rule() {
        let found = errors(
            r#"
            [[log_metrics]]
            name = "bad_regex_total"
            match = { field = "x", regex = "(" }
            [[log_metrics]]
            name = "latency_seconds"
            type = "histogram"
            value_field = "ms"
            buckets = [1, 0.5]
            [[log_metrics]]
            name = "pg_up"
            type = "gauge"
            value_field = "x"
            [[log_metrics]]
            name = "9bad"
            [[log_metrics]]
            name = "labels_total"
            labels = { "bad-label" = "x" }
            [[log_metrics]]
            name = "chat_total"
            [[log_metrics]]
            name = "chat_total"
            [[log_metrics]]
            name = "neg_seconds"
            type = "histogram"
            value_field = "v"
            buckets = [-1, 1]
            [[log_metrics]]
            name = "nofield_seconds"
            type = "histogram"
            [[log_metrics]]
            name = "counter_without_suffix"
            [[log_metrics]]
            name = "two_tests_total"
            match = { field = "a", equals = 1, exists = true }
            [[log_metrics]]
            name = "two_bounds_total"
            match = { any = [{ field = "a", gt = 1, ge = 2 }] }
            "#,
        );
        let expect = [
            (
                "log_metrics[0].match.regex",
                "\"bad_regex_total\": invalid regex",
            ),
            ("log_metrics[1].buckets", "strictly increasing"),
            ("log_metrics[2].name", "PostgreSQL collector"),
            ("log_metrics[3].name", "not a valid metric name"),
            ("log_metrics[4].labels.bad-label", "not a valid label name"),
            ("log_metrics[6].name", "clashes with rule \"chat_total\""),
            ("log_metrics[7].buckets", "non-negative"),
            ("log_metrics[8].value_field", "needed"),
            ("log_metrics[9].name", "_total"),
            ("log_metrics[10].match", "one test"),
            ("log_metrics[11].match.any[0]", "one lower bound"),
        ];
        for (key, text) in expect {
            assert!(
                found.iter().any(|(k, m)| k == key && m.contains(text)),
                "{key} / {text} missing from {found:#?}"
            );
        }
    }

    #[test]
    fn an_unknown_type_is_a_parse_error_on_its_key() {
        let found = errors("[[log_metrics]]\nname = \"x_total\"\ntype = \"summary\"\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "log_metrics[0].type");
    }

    #[test]
    fn rules_need_a_log_source() {
        let found = load_from_str(
            "[[log_metrics]]\nname = \"x_total\"\n",
            Format::Toml,
            &HashMap::new(),
        )
        .unwrap_err();
        assert_eq!(found.0[0].key, "log_metrics");
    }
}
