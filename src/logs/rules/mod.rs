//! Log-derived metrics (`[[log_metrics]]`): each rule matches events and
//! records a counter, a histogram (every observation carrying a `trace_id`
//! exemplar) or a gauge, with labels taken from event fields through the
//! cardinality cap. Families and per-rule handles are created once at build
//! time; evaluating a rule reads fields only through [`field::lookup`].
//!
//! Rules run in the stage chain after *redact* (so correlation and trace
//! IDs are set, and masked secrets can never become label values) and before
//! *filter* (so sampled-out events still count).

pub mod field;
pub mod matcher;

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::config::log_metrics::{LogMetricRule, RoutesConfig, RuleKind};
use crate::logs::event::Event;
use crate::logs::BuildError;
use crate::telemetry::cardinality::{CappedFamily, KeyBuilder, OverflowMetrics};
use crate::telemetry::route::RouteNormalizer;
use crate::telemetry::snapshot::escape_label_value;
use field::{lookup, FieldPath};
use matcher::Matcher;

/// Longest exemplar `trace_id` value: with the label name it stays within
/// OpenMetrics' 128-character limit for an exemplar's label set.
pub const MAX_TRACE_ID_CHARS: usize = 128 - "trace_id".len();

/// Why a rule could not record an event (`reason` of
/// `sidewatch_log_rule_errors_total`).
pub const ERROR_REASONS: [&str; 4] = [
    "missing_field",
    "not_numeric",
    "negative_value",
    "bad_label",
];

/// The exemplar label set: the request's trace ID, else its correlation ID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TraceLabel {
    /// Escaped, at most [`MAX_TRACE_ID_CHARS`] characters.
    pub trace_id: String,
}

impl TraceLabel {
    /// The label for a raw ID (cut and escaped).
    pub fn new(id: &str) -> Self {
        let id = match id.char_indices().nth(MAX_TRACE_ID_CHARS) {
            Some((cut, _)) => &id[..cut],
            None => id,
        };
        Self {
            trace_id: escape_label_value(id).into_owned(),
        }
    }
}

/// A histogram series of a rule.
pub type ExemplarHistogram = HistogramWithExemplars<TraceLabel>;

#[derive(Debug, Clone)]
enum Handles {
    Count(CappedFamily<Counter>),
    Sum(CappedFamily<Counter<f64, AtomicU64>>),
    Histogram(CappedFamily<ExemplarHistogram>),
    Gauge(CappedFamily<Gauge<f64, AtomicU64>>),
}

#[derive(Debug, Clone)]
struct LabelSource {
    field: FieldPath,
    route: bool,
}

#[derive(Debug, Clone)]
struct Rule {
    /// The rule's configuration, to tell an unchanged rule on reload.
    config: serde_json::Value,
    matcher: Matcher,
    labels: Vec<LabelSource>,
    value: Option<FieldPath>,
    /// Multiplier and divisor applied to values ([`LogMetricRule::scaling`]).
    scaling: (f64, f64),
    handles: Handles,
    /// In [`ERROR_REASONS`] order.
    errors: [Counter; 4],
    key: KeyBuilder,
}

type ErrorFamily = Family<[(&'static str, String); 2], Counter>;

/// Every configured rule, built. A clone shares the metric handles.
#[derive(Debug, Clone)]
pub struct LogRules {
    rules: Vec<Rule>,
    errors: ErrorFamily,
    routes: RouteNormalizer,
    trace_fields: [FieldPath; 2],
}

impl LogRules {
    /// Registers every rule's family (and `sidewatch_log_rule_errors_total`);
    /// `None` without rules. `correlation_field` is the correlate stage's
    /// target, the exemplar's fallback when an event has no `trace_id`.
    pub fn build(
        rules: &[LogMetricRule],
        routes: &RoutesConfig,
        correlation_field: &str,
        overflow: &OverflowMetrics,
        registry: &mut Registry,
    ) -> Result<Option<Self>, BuildError> {
        Self::build_reusing(rules, routes, correlation_field, overflow, registry, None)
    }

    /// [`LogRules::build`] on reload: a rule whose configuration is the
    /// same as in `previous` keeps its metric handles (its series carry on,
    /// registered again on `registry`); a changed or new rule starts afresh
    /// (new buckets take effect), and a removed rule's family goes away.
    pub fn build_reusing(
        rules: &[LogMetricRule],
        routes: &RoutesConfig,
        correlation_field: &str,
        overflow: &OverflowMetrics,
        registry: &mut Registry,
        previous: Option<&LogRules>,
    ) -> Result<Option<Self>, BuildError> {
        if rules.is_empty() {
            return Ok(None);
        }
        let routes = RouteNormalizer::new(&routes.templates).map_err(|e| BuildError {
            key: "routes.templates".into(),
            message: e.to_string(),
        })?;
        let errors: ErrorFamily = previous.map(|p| p.errors.clone()).unwrap_or_default();
        registry.register(
            "sidewatch_log_rule_errors",
            "Events a log rule matched but could not record, by rule and reason (missing_field, not_numeric, negative_value, bad_label); the event is still forwarded",
            errors.clone(),
        );
        let built = rules
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                let error_counters = ERROR_REASONS.map(|reason| {
                    errors.get_or_create_owned(&[
                        ("rule", rule.name.clone()),
                        ("reason", reason.to_owned()),
                    ])
                });
                let before = previous.and_then(|p| p.rules.iter().find(|r| r.is_config(rule)));
                Rule::build(rule, error_counters, overflow, registry, before).map_err(|message| {
                    BuildError {
                        key: format!("log_metrics[{i}]"),
                        message: format!("rule {:?}: {message}", rule.name),
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(Self {
            rules: built,
            errors,
            routes,
            trace_fields: [
                FieldPath::new("trace_id"),
                FieldPath::new(correlation_field),
            ],
        }))
    }

    /// Evaluates every rule on `event`.
    pub fn apply(&mut self, event: &Event) {
        for rule in &mut self.rules {
            if rule.matcher.matches(event) {
                rule.record(event, &self.routes, &self.trace_fields);
            }
        }
    }
}

impl Rule {
    /// Whether this rule was built from exactly `config`.
    fn is_config(&self, config: &LogMetricRule) -> bool {
        serde_json::to_value(config).is_ok_and(|c| c == self.config)
    }

    fn build(
        config: &LogMetricRule,
        errors: [Counter; 4],
        overflow: &OverflowMetrics,
        registry: &mut Registry,
        previous: Option<&Rule>,
    ) -> Result<Self, String> {
        let snapshot = serde_json::to_value(config).unwrap_or_default();
        let matcher = Matcher::build(&config.matcher)?;
        let names: Vec<String> = config.labels.keys().cloned().collect();
        let labels = config
            .labels
            .iter()
            .map(|(label, field)| LabelSource {
                field: FieldPath::new(field),
                route: config.route_labels.contains(label),
            })
            .collect();
        let limit = config.effective_max_series();
        let overflow = overflow.counter(&config.name);
        let help = if config.help.is_empty() {
            format!("Derived from log events by rule {:?}", config.name)
        } else {
            config.help.replace(['\n', '\r'], " ")
        };
        let unlabelled = names.is_empty();
        let handles = match previous {
            Some(previous) => previous.handles.clone(),
            None => match (config.kind, &config.value_field) {
                (RuleKind::Counter, None) => {
                    Handles::Count(CappedFamily::new(names, limit, overflow, Counter::default))
                }
                (RuleKind::Counter, Some(_)) => Handles::Sum(CappedFamily::new(
                    names,
                    limit,
                    overflow,
                    Counter::<f64, AtomicU64>::default,
                )),
                (RuleKind::Histogram, _) => {
                    let buckets = config.effective_buckets();
                    Handles::Histogram(CappedFamily::new(names, limit, overflow, move || {
                        HistogramWithExemplars::new(buckets.iter().copied())
                    }))
                }
                (RuleKind::Gauge, _) => Handles::Gauge(CappedFamily::new(
                    names,
                    limit,
                    overflow,
                    Gauge::<f64, AtomicU64>::default,
                )),
            },
        };
        match &handles {
            Handles::Count(family) => register(registry, config, &help, family.clone()),
            Handles::Sum(family) => register(registry, config, &help, family.clone()),
            Handles::Histogram(family) => register(registry, config, &help, family.clone()),
            Handles::Gauge(family) => register(registry, config, &help, family.clone()),
        }
        if unlabelled {
            // An unlabelled counter shows 0 from the start.
            match &handles {
                Handles::Count(family) => family.with("", |_| ()),
                Handles::Sum(family) => family.with("", |_| ()),
                Handles::Histogram(_) | Handles::Gauge(_) => {}
            }
        }
        Ok(Self {
            config: snapshot,
            matcher,
            labels,
            value: config.value_field.as_deref().map(FieldPath::new),
            scaling: config.scaling(),
            handles,
            errors,
            key: KeyBuilder::default(),
        })
    }

    /// Counts error `reason` (an index into [`ERROR_REASONS`]).
    fn fail(&self, reason: usize) {
        self.errors[reason].inc();
    }

    fn record(&mut self, event: &Event, routes: &RouteNormalizer, trace_fields: &[FieldPath; 2]) {
        let value = match &self.value {
            None => 1.0,
            Some(path) => match lookup(event, path) {
                None => return self.fail(0),
                Some(value) => match field::number(value) {
                    None => return self.fail(1),
                    Some(n) => n * self.scaling.0 / self.scaling.1,
                },
            },
        };
        if value < 0.0 && matches!(self.handles, Handles::Sum(_)) {
            return self.fail(2);
        }
        self.key.clear();
        for label in &self.labels {
            match lookup(event, &label.field) {
                None => self.key.push(""),
                Some(serde_json::Value::Number(n)) if !label.route => self.key.push_display(n),
                Some(value) => match field::text(value) {
                    None => return self.fail(3),
                    Some(text) if label.route => self.key.push(&routes.normalize(&text)),
                    Some(text) => self.key.push(&text),
                },
            }
        }
        let key = self.key.as_str();
        match &self.handles {
            Handles::Count(family) => family.with(key, |c| {
                c.inc();
            }),
            Handles::Sum(family) => family.with(key, |c| {
                c.inc_by(value);
            }),
            Handles::Gauge(family) => family.with(key, |g| {
                g.set(value);
            }),
            Handles::Histogram(family) => {
                let label = trace_label(event, trace_fields);
                family.with(key, |h| h.observe(value, label, Some(event.meta.read_at)));
            }
        }
    }
}

fn trace_label(event: &Event, trace_fields: &[FieldPath; 2]) -> Option<TraceLabel> {
    trace_fields.iter().find_map(|path| {
        let value = lookup(event, path)?;
        let text = field::text(value)?;
        (!text.trim().is_empty()).then(|| TraceLabel::new(&text))
    })
}

fn register<M: prometheus_client::registry::Metric>(
    registry: &mut Registry,
    config: &LogMetricRule,
    help: &str,
    metric: M,
) {
    let name = match config.kind {
        // prometheus-client adds `_total` to counters itself.
        RuleKind::Counter => crate::telemetry::names::family_base(&config.name),
        _ => &config.name,
    };
    registry.register(name, help, metric);
}

#[cfg(test)]
mod tests;
