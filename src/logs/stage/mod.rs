//! The fixed chain every event passes, in order: parse → correlate → enrich →
//! redact → filter (multiline runs per stream inside the sources, before
//! parse). Each stage is a small unit with its own tests; [`Stages`] runs them
//! per event so an event is touched while it is hot in the cache.

pub mod correlate;
pub mod enrich;
pub mod filter;
pub mod multiline;
pub mod parse;
pub mod redact;

use crate::config::logs::StagesConfig;
use crate::config::PodInfo;

use super::event::Event;
use super::metrics::Metrics;

/// A stage that could not be built from a config that passed validation.
#[derive(Debug, thiserror::Error)]
#[error("`{key}`: {message}")]
pub struct StageError {
    /// The config key concerned.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// The stage chain.
#[derive(Debug)]
pub struct Stages {
    parse: parse::Parse,
    correlate: Option<correlate::Correlate>,
    enrich: Option<enrich::Enrich>,
    redact: Option<redact::Redact>,
    filter: Option<filter::Filter>,
    rules: Option<crate::logs::rules::LogRules>,
}

impl Stages {
    /// Builds every stage; `lookup` reads environment variables (enrich).
    pub fn build(
        config: &StagesConfig,
        pod: &PodInfo,
        lookup: impl Fn(&str) -> Option<String>,
        metrics: &Metrics,
    ) -> Result<Self, StageError> {
        let correlate = config
            .correlate
            .enabled
            .then(|| correlate::Correlate::new(&config.correlate, metrics.uncorrelated()));
        let mut enrich = enrich::Enrich::new(&config.enrich, pod, lookup);
        let redact = if config.redact.enabled {
            Some(redact::Redact::new(&config.redact, metrics)?)
        } else {
            None
        };
        if let Some(redact) = &redact {
            enrich.vet(|key, value| redact.leaves_alone(key, value));
        }
        let filter =
            (!config.filter.rules.is_empty()).then(|| filter::Filter::new(&config.filter, metrics));
        Ok(Self {
            parse: parse::Parse::new(
                &config.parse.message_field,
                metrics.dropped("parse", "empty_line"),
            ),
            correlate,
            enrich: (!enrich.is_empty()).then_some(enrich),
            redact,
            filter,
            rules: None,
        })
    }

    /// Adds the log-derived metric rules, evaluated after redact, before filter.
    pub fn set_rules(&mut self, rules: Option<crate::logs::rules::LogRules>) {
        self.rules = rules;
    }

    /// Runs every stage over a batch. Events a stage drops (empty lines,
    /// filtered) are acknowledged, as they are dealt with.
    pub fn process(&mut self, batch: Vec<Event>) -> Vec<Event> {
        let mut out = Vec::with_capacity(batch.len());
        for mut event in batch {
            if !self.parse.apply(&mut event) {
                event.delivered();
                continue;
            }
            if let Some(stage) = &self.correlate {
                stage.apply(&mut event);
            }
            if let Some(stage) = &self.enrich {
                stage.apply(&mut event);
            }
            if let Some(stage) = &self.redact {
                stage.apply(&mut event);
            }
            if let Some(rules) = &mut self.rules {
                rules.apply(&event);
            }
            if let Some(stage) = &mut self.filter {
                if !stage.keep(&event) {
                    event.delivered();
                    continue;
                }
            }
            out.push(event);
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use crate::logs::event::{Event, EventMeta, Flags, SourceInfo};
    use crate::logs::metrics::SourceMetrics;

    /// A source for unit tests.
    pub fn source() -> Arc<SourceInfo> {
        Arc::new(SourceInfo {
            name: "test".into(),
            metrics: SourceMetrics::detached(),
        })
    }

    /// An unparsed event for unit tests.
    pub fn event(line: &[u8]) -> Event {
        let meta = EventMeta {
            source: source(),
            path: None,
            read_at: SystemTime::now(),
            raw_len: line.len(),
            flags: Flags::default(),
        };
        Event::from_line(line.to_vec(), meta, None)
    }

    /// A parsed event for unit tests.
    pub fn object(value: serde_json::Value) -> Event {
        let mut e = event(b"");
        e.raw = None;
        e.fields = match value {
            serde_json::Value::Object(map) => map.into(),
            _ => panic!("object expected"),
        };
        e
    }

    #[test]
    fn enrich_values_are_vetted_once_unless_redact_would_mask_them() {
        use prometheus_client::registry::Registry;

        let mut config = crate::config::logs::StagesConfig::default();
        let secret = "Bearer eyJhbGciOiJIUzI1NiJ9";
        config.enrich.fields.insert("note".into(), secret.into());
        let pod = crate::config::PodInfo {
            name: Some("web-1".into()),
            ..crate::config::PodInfo::default()
        };
        let metrics = crate::logs::metrics::Metrics::register(&mut Registry::default());
        let mut stages = super::Stages::build(&config, &pod, |_| None, &metrics).unwrap();
        let mut out = stages.process(vec![object(serde_json::json!({"message": "m"}))]);
        let fields = &mut out[0].fields;
        assert_eq!(fields["pod"], "web-1");
        assert_eq!(fields["note"], "Bearer [REDACTED]", "masked on every event");
        let vetted: Vec<_> = fields
            .iter_mut_vetted()
            .map(|(k, _, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(
            vetted,
            [
                ("message".into(), false),
                ("pod".into(), true),
                ("note".into(), false)
            ]
        );
    }
}
