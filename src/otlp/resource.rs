//! The OTLP resource: who the telemetry is about. From lowest to highest
//! precedence: the Downward API env (`service.version`, `k8s.pod.name`,
//! `k8s.namespace.name`, `k8s.node.name`, `k8s.container.name`, and
//! `service.name` = the app's container name), `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_SERVICE_NAME`, then `[otlp.resource]`.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::config::logs::EnrichConfig;
use crate::config::otlp::{parse_key_values, OtlpConfig};
use crate::config::PodInfo;

/// Builds the resource, reading the environment through `lookup`.
pub fn build(
    config: &OtlpConfig,
    enrich: &EnrichConfig,
    pod: &PodInfo,
    lookup: impl Fn(&str) -> Option<String>,
) -> Resource {
    let get = |name: &str| {
        lookup(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let mut attributes = BTreeMap::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            attributes.insert(key.to_owned(), value);
        }
    };
    let container = get(&enrich.container_env);
    put(
        "service.name",
        Some(
            container
                .clone()
                .unwrap_or_else(|| "unknown_service".into()),
        ),
    );
    put("service.version", get(&enrich.app_version_env));
    put("k8s.pod.name", pod.name.clone());
    put("k8s.namespace.name", pod.namespace.clone());
    put("k8s.node.name", pod.node.clone());
    put("k8s.container.name", container);
    if let Some(text) = get("OTEL_RESOURCE_ATTRIBUTES") {
        match parse_key_values(&text) {
            Ok(pairs) => {
                for (key, value) in pairs {
                    attributes.insert(key, value);
                }
            }
            // The spec: on a malformed value, discard all of it.
            Err(error) => tracing::warn!(%error, "OTEL_RESOURCE_ATTRIBUTES ignored"),
        }
    }
    if let Some(name) = get("OTEL_SERVICE_NAME") {
        attributes.insert("service.name".into(), name);
    }
    for (key, value) in &config.resource {
        attributes.insert(key.clone(), value.clone());
    }
    Resource {
        attributes: attributes
            .into_iter()
            .map(|(key, value)| string_attribute(key, value))
            .collect(),
        ..Resource::default()
    }
}

/// A string-valued attribute.
pub fn string_attribute(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn attributes(resource: &Resource) -> BTreeMap<String, String> {
        resource
            .attributes
            .iter()
            .map(|kv| {
                let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(s)) => s.clone(),
                    other => format!("{other:?}"),
                };
                (kv.key.clone(), value)
            })
            .collect()
    }

    #[test]
    fn downward_api_then_otel_variables_then_config() {
        let env: HashMap<&str, &str> = [
            ("SIDEWATCH_CONTAINER_NAME", "chat"),
            ("SIDEWATCH_APP_VERSION", "1.2.3"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod,k8s.node.name=override",
            ),
            ("OTEL_SERVICE_NAME", "chat-api"),
        ]
        .into();
        let pod = PodInfo {
            name: Some("chat-7d9".into()),
            namespace: Some("shop".into()),
            node: Some("node-1".into()),
            ip: None,
        };
        let mut config = OtlpConfig::default();
        config.resource.insert("team".into(), "payments".into());
        let resource = build(&config, &EnrichConfig::default(), &pod, |name| {
            env.get(name).map(|v| v.to_string())
        });
        let got = attributes(&resource);
        assert_eq!(got["service.name"], "chat-api");
        assert_eq!(got["service.version"], "1.2.3");
        assert_eq!(got["k8s.pod.name"], "chat-7d9");
        assert_eq!(got["k8s.namespace.name"], "shop");
        assert_eq!(got["k8s.node.name"], "override");
        assert_eq!(got["k8s.container.name"], "chat");
        assert_eq!(got["deployment.environment"], "prod");
        assert_eq!(got["team"], "payments");
    }

    #[test]
    fn without_anything_the_service_is_unknown() {
        let resource = build(
            &OtlpConfig::default(),
            &EnrichConfig::default(),
            &PodInfo::default(),
            |_| None,
        );
        assert_eq!(attributes(&resource).len(), 1);
        assert_eq!(attributes(&resource)["service.name"], "unknown_service");
    }
}
