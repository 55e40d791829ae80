//! *enrich*: the pod's identity from the Downward API env (`pod`,
//! `namespace`, `node`, `container`, `app_version`) and static fields from
//! config. The app's own fields win unless `overwrite` is set.

use std::borrow::Cow;

use serde_json::Value;

use crate::config::logs::EnrichConfig;
use crate::config::PodInfo;
use crate::logs::event::Event;
use crate::logs::fields::Key;

/// The enrich stage: a precomputed list of fields.
#[derive(Debug)]
pub struct Enrich {
    /// The identity names are borrowed, so adding them to an event copies
    /// only the value; each is vetted or not (see [`Enrich::vet`]).
    fields: Vec<(Key, Value, bool)>,
    overwrite: bool,
}

impl Enrich {
    /// Builds the field list once; `lookup` reads environment variables.
    pub fn new(
        config: &EnrichConfig,
        pod: &PodInfo,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let mut fields = Vec::new();
        if config.pod {
            let env = |name: &str| {
                lookup(name)
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
            };
            let identity = [
                ("pod", pod.name.clone()),
                ("namespace", pod.namespace.clone()),
                ("node", pod.node.clone()),
                ("container", env(&config.container_env)),
                ("app_version", env(&config.app_version_env)),
            ];
            for (name, value) in identity {
                if let Some(value) = value {
                    fields.push((Cow::Borrowed(name), Value::String(value), false));
                }
            }
        }
        for (name, value) in &config.fields {
            fields.retain(|(n, _, _)| n != name);
            fields.push((
                Cow::Owned(name.clone()),
                Value::String(value.clone()),
                false,
            ));
        }
        Self {
            fields,
            overwrite: config.overwrite,
        }
    }

    /// Whether there is nothing to add.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Marks the fields that `clean` passes as vetted: redact checked them
    /// once (they are the same on every event) and skips them after.
    pub fn vet(&mut self, clean: impl Fn(&str, &str) -> bool) {
        for (name, value, vetted) in &mut self.fields {
            *vetted = value.as_str().is_some_and(|v| clean(name, v));
        }
    }

    /// Adds the fields.
    pub fn apply(&self, event: &mut Event) {
        for (name, value, vetted) in &self.fields {
            if !self.overwrite {
                event.fields.insert_absent(name, || value.clone(), *vetted);
            } else if *vetted {
                event.fields.insert_vetted(name.clone(), value.clone());
            } else {
                event.fields.insert(name.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::logs::stage::tests::object;

    fn pod() -> PodInfo {
        PodInfo {
            name: Some("chatbot-xyz".into()),
            namespace: Some("chatbot-prod".into()),
            node: None,
            ip: None,
        }
    }

    #[test]
    fn adds_identity_and_static_fields_without_overwriting() {
        let mut config = EnrichConfig::default();
        config.fields.insert("team".into(), "chat".into());
        let stage = Enrich::new(&config, &pod(), |name| {
            (name == "SIDEWATCH_APP_VERSION").then(|| "1.4.2".to_owned())
        });
        let mut e = object(json!({"message": "m", "namespace": "app-set"}));
        stage.apply(&mut e);
        assert_eq!(e.fields["pod"], "chatbot-xyz");
        assert_eq!(e.fields["namespace"], "app-set");
        assert_eq!(e.fields["app_version"], "1.4.2");
        assert_eq!(e.fields["team"], "chat");
        assert!(!e.fields.contains_key("node"));
    }

    #[test]
    fn overwrites_when_configured() {
        let config = EnrichConfig {
            overwrite: true,
            ..EnrichConfig::default()
        };
        let stage = Enrich::new(&config, &pod(), |_| None);
        let mut e = object(json!({"namespace": "app-set"}));
        stage.apply(&mut e);
        assert_eq!(e.fields["namespace"], "chatbot-prod");
    }

    #[test]
    fn nothing_to_add_outside_kubernetes() {
        let stage = Enrich::new(&EnrichConfig::default(), &PodInfo::default(), |_| None);
        assert!(stage.is_empty());
    }
}
