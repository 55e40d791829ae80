//! statsd_exporter-style glob mappings: `api.*.requests` → a metric name and
//! labels filled from what each `*` matched (`$1`, `$2`, …).

use regex::Regex;

use crate::config::statsd::{MappingAction, StatsdMapping};
use crate::telemetry::names;

/// A compiled mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    regex: Regex,
    action: MappingAction,
    name: String,
    labels: Vec<(String, String)>,
}

/// What a StatsD name becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapped {
    /// A metric name and the mapping's labels (sorted by name).
    Metric {
        /// The family name (a counter's `_total` removed; it is added on output).
        name: String,
        /// Labels from the mapping.
        labels: Vec<(String, String)>,
    },
    /// Dropped by a mapping.
    Drop,
}

/// Every mapping, tried in order.
#[derive(Debug, Clone, Default)]
pub struct Mapper {
    mappings: Vec<Mapping>,
}

impl Mapper {
    /// Compiles the configured mappings; a pattern that cannot compile is
    /// reported with its index.
    pub fn new(configs: &[StatsdMapping]) -> Result<Self, (usize, String)> {
        let mappings = configs
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut pattern = String::from("^");
                for (j, literal) in m.pattern.split('*').enumerate() {
                    if j > 0 {
                        pattern.push_str("([^.]*)");
                    }
                    pattern.push_str(&regex::escape(literal));
                }
                pattern.push('$');
                let regex = Regex::new(&pattern).map_err(|e| (i, e.to_string()))?;
                let mut labels: Vec<(String, String)> = m
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                labels.sort();
                Ok(Mapping {
                    regex,
                    action: m.action,
                    name: names::family_base(&m.name).to_owned(),
                    labels,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { mappings })
    }

    /// Maps a StatsD name: the first matching mapping, else the name
    /// sanitised (`a.b-c` → `a_b_c`).
    pub fn map(&self, raw: &str) -> Mapped {
        for mapping in &self.mappings {
            let Some(captures) = mapping.regex.captures(raw) else {
                continue;
            };
            if mapping.action == MappingAction::Drop {
                return Mapped::Drop;
            }
            let labels = mapping
                .labels
                .iter()
                .map(|(k, template)| {
                    let mut value = String::new();
                    captures.expand(template, &mut value);
                    (k.clone(), value)
                })
                .collect();
            return Mapped::Metric {
                name: mapping.name.clone(),
                labels,
            };
        }
        Mapped::Metric {
            name: names::family_base(&names::sanitize_metric_name(raw)).to_owned(),
            labels: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapper(toml_text: &str) -> Mapper {
        #[derive(serde::Deserialize)]
        struct M {
            mappings: Vec<StatsdMapping>,
        }
        let m: M = toml::from_str(toml_text).unwrap();
        Mapper::new(&m.mappings).unwrap()
    }

    #[test]
    fn globs_map_names_and_labels() {
        let m = mapper(
            r#"
            [[mappings]]
            match = "test.dispatcher.*.*.*"
            name = "dispatcher_events_total"
            labels = { processor = "$1", action = "$2", outcome = "$3", job = "test_dispatcher" }
            [[mappings]]
            match = "debug.*"
            action = "drop"
            [[mappings]]
            match = "req-*.done"
            name = "requests_done"
            labels = { kind = "$1" }
            "#,
        );
        assert_eq!(
            m.map("test.dispatcher.FooProcessor.send.success"),
            Mapped::Metric {
                name: "dispatcher_events".into(),
                labels: vec![
                    ("action".into(), "send".into()),
                    ("job".into(), "test_dispatcher".into()),
                    ("outcome".into(), "success".into()),
                    ("processor".into(), "FooProcessor".into()),
                ],
            }
        );
        assert_eq!(m.map("debug.x"), Mapped::Drop);
        assert_eq!(
            m.map("req-fast.done"),
            Mapped::Metric {
                name: "requests_done".into(),
                labels: vec![("kind".into(), "fast".into())]
            }
        );
        // `*` does not cross a dot; unmapped names are sanitised.
        assert_eq!(
            m.map("test.dispatcher.a.b.c.d"),
            Mapped::Metric {
                name: "test_dispatcher_a_b_c_d".into(),
                labels: vec![]
            }
        );
    }
}
