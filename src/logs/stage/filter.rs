//! *filter* (off unless rules are configured): drop events whose field
//! equals one of the listed values, or keep one in N of them. Every drop is
//! counted in `sidewatch_events_dropped_total{stage="filter",reason}`.

use prometheus_client::metrics::counter::Counter;
use serde_json::Value;

use crate::config::logs::FilterConfig;
use crate::logs::event::Event;
use crate::logs::metrics::Metrics;

#[derive(Debug)]
struct Rule {
    name: String,
    path: Vec<String>,
    equals: Vec<String>,
    sample: u32,
    seen: u64,
    dropped: Counter,
}

/// The filter stage.
#[derive(Debug)]
pub struct Filter {
    rules: Vec<Rule>,
}

impl Filter {
    /// Builds the rules with their counters (`reason="drop"` or `"sample"`).
    pub fn new(config: &FilterConfig, metrics: &Metrics) -> Self {
        let rules = config
            .rules
            .iter()
            .map(|rule| Rule {
                name: rule.field.clone(),
                path: rule.field.split('.').map(str::to_owned).collect(),
                equals: rule.equals.clone(),
                sample: rule.sample,
                seen: 0,
                dropped: metrics.dropped("filter", if rule.sample > 1 { "sample" } else { "drop" }),
            })
            .collect();
        Self { rules }
    }

    /// Whether the event goes on; the first matching rule decides.
    pub fn keep(&mut self, event: &Event) -> bool {
        for rule in &mut self.rules {
            let value = event.fields.get(&rule.name).or_else(|| {
                let (first, rest) = rule.path.split_first()?;
                rest.iter()
                    .try_fold(event.fields.get(first)?, |v, key| v.as_object()?.get(key))
            });
            let text = match value {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Bool(b)) => b.to_string(),
                _ => continue,
            };
            if !rule.equals.contains(&text) {
                continue;
            }
            rule.seen += 1;
            let keep = rule.sample > 1 && (rule.seen - 1) % u64::from(rule.sample) == 0;
            if !keep {
                rule.dropped.inc();
            }
            return keep;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;
    use serde_json::json;

    use super::*;
    use crate::config::logs::FilterRule;
    use crate::logs::stage::tests::object;

    fn filter(rules: Vec<FilterRule>) -> Filter {
        Filter::new(
            &FilterConfig { rules },
            &Metrics::register(&mut Registry::default()),
        )
    }

    #[test]
    fn drops_matching_events_and_counts_them() {
        let mut f = filter(vec![FilterRule {
            field: "level".into(),
            equals: vec!["debug".into(), "trace".into()],
            sample: 0,
        }]);
        assert!(!f.keep(&object(json!({"level": "debug"}))));
        assert!(f.keep(&object(json!({"level": "info"}))));
        assert!(f.keep(&object(json!({"message": "no level"}))));
        assert_eq!(f.rules[0].dropped.get(), 1);
    }

    #[test]
    fn samples_one_in_n_and_reaches_nested_fields() {
        let mut f = filter(vec![FilterRule {
            field: "http.status".into(),
            equals: vec!["200".into()],
            sample: 10,
        }]);
        let kept = (0..100)
            .filter(|_| f.keep(&object(json!({"http": {"status": 200}}))))
            .count();
        assert_eq!(kept, 10);
        assert_eq!(f.rules[0].dropped.get(), 90);
    }
}
