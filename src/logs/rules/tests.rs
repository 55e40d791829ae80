//! Unit tests of log rules: every metric type, labels, errors, exemplars.

use prometheus_client::registry::Registry;
use serde_json::json;

use super::*;
use crate::config::log_metrics::LogMetricRule;
use crate::logs::stage::tests::object;

fn build(rules_toml: &str) -> (LogRules, Registry) {
    #[derive(serde::Deserialize)]
    struct Rules {
        log_metrics: Vec<LogMetricRule>,
    }
    let rules: Rules = toml::from_str(rules_toml).unwrap();
    let mut registry = Registry::default();
    let overflow = OverflowMetrics::register(&mut registry);
    let routes = RoutesConfig {
        templates: vec!["/users/{id}".into()],
    };
    let built = LogRules::build(
        &rules.log_metrics,
        &routes,
        "correlation_id",
        &overflow,
        &mut registry,
    )
    .unwrap()
    .unwrap();
    (built, registry)
}

fn openmetrics(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text
}

#[test]
fn counter_counts_matching_events_by_label() {
    let (mut rules, registry) = build(
        r#"
        [[log_metrics]]
        name = "chat_messages_total"
        labels = { intent = "intent" }
        match = { field = "route", equals = "/api/chat" }
        "#,
    );
    for intent in ["faq", "faq", "billing"] {
        rules.apply(&object(json!({"route": "/api/chat", "intent": intent})));
    }
    rules.apply(&object(json!({"route": "/api/search", "intent": "search"})));
    let text = openmetrics(&registry);
    assert!(text.contains("# TYPE chat_messages counter"), "{text}");
    assert!(
        text.contains(r#"chat_messages_total{intent="faq"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"chat_messages_total{intent="billing"} 1"#),
        "{text}"
    );
    assert!(!text.contains("search"), "{text}");
}

#[test]
fn counter_with_value_field_adds_values_and_rejects_bad_ones() {
    let (mut rules, registry) = build(
        r#"
        [[log_metrics]]
        name = "bytes_sent_total"
        value_field = "bytes"
        "#,
    );
    rules.apply(&object(json!({"bytes": 100})));
    rules.apply(&object(json!({"bytes": "50.5"})));
    rules.apply(&object(json!({"bytes": "lots"})));
    rules.apply(&object(json!({"bytes": -3})));
    rules.apply(&object(json!({"other": 1})));
    let text = openmetrics(&registry);
    assert!(text.contains("bytes_sent_total 150.5"), "{text}");
    for reason in ["not_numeric", "negative_value", "missing_field"] {
        let line = format!(
            r#"sidewatch_log_rule_errors_total{{rule="bytes_sent_total",reason="{reason}"}} 1"#
        );
        assert!(text.contains(&line), "{line} in {text}");
    }
}

#[test]
fn histogram_scales_units_uses_slo_buckets_and_carries_exemplars() {
    let (mut rules, registry) = build(
        r#"
        [[log_metrics]]
        name = "app_request_duration_seconds"
        type = "histogram"
        value_field = "latency_ms"
        value_unit = "ms"
        labels = { route = "path" }
        route_labels = ["route"]
        "#,
    );
    rules.apply(&object(json!({"path": "/users/42?x=1", "latency_ms": 800, "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "correlation_id": "c-1"})));
    rules.apply(&object(
        json!({"path": "/users/43", "latency_ms": 2000, "correlation_id": "c-2"}),
    ));
    let text = openmetrics(&registry);
    for bound in ["0.25", "0.5", "1.0", "2.0", "5.0", "10.0"] {
        assert!(
            text.contains(&format!("le=\"{bound}\"")),
            "bucket {bound} in {text}"
        );
    }
    assert!(
        text.contains(r#"app_request_duration_seconds_bucket{le="2.0",route="/users/{id}"} 2 # {trace_id="c-2"} 2.0 "#),
        "{text}"
    );
    assert!(
        text.contains(r#"app_request_duration_seconds_bucket{le="0.5",route="/users/{id}"} 0"#),
        "{text}"
    );
    assert!(
        text.contains(r#"le="1.0",route="/users/{id}"} 1 # {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"} 0.8 "#),
        "the trace ID wins over the correlation ID: {text}"
    );
    assert!(
        text.contains(r#"app_request_duration_seconds_sum{route="/users/{id}"} 2.8"#),
        "{text}"
    );
}

#[test]
fn gauge_keeps_the_last_value() {
    let (mut rules, registry) = build(
        r#"
        [[log_metrics]]
        name = "queue_depth"
        type = "gauge"
        value_field = "queue.depth"
        labels = { queue = "queue.name" }
        "#,
    );
    for depth in [5, 9, 3] {
        rules.apply(&object(json!({"queue": {"name": "jobs", "depth": depth}})));
    }
    let text = openmetrics(&registry);
    assert!(text.contains(r#"queue_depth{queue="jobs"} 3.0"#), "{text}");
}

#[test]
fn hostile_label_values_and_trace_ids_are_escaped_and_bounded() {
    let (mut rules, registry) = build(
        r#"
        [[log_metrics]]
        name = "hostile_seconds"
        type = "histogram"
        value_field = "v"
        labels = { who = "who" }
        [[log_metrics]]
        name = "objects_total"
        labels = { who = "who" }
        "#,
    );
    let long_id = format!("id\"\n{}", "x".repeat(300));
    rules.apply(&object(
        json!({"v": 1, "who": "a\"b\nc\\", "trace_id": long_id}),
    ));
    rules.apply(&object(json!({"v": 1, "who": {"nested": 1}})));
    let text = openmetrics(&registry);
    assert!(text.contains(r#"who="a\"b\nc\\""#), "{text}");
    let exemplar = text
        .split("# {trace_id=\"")
        .nth(1)
        .unwrap()
        .split("\"}")
        .next()
        .unwrap();
    assert_eq!(
        exemplar,
        format!("id\\\"\\n{}", "x".repeat(MAX_TRACE_ID_CHARS - 4))
    );
    assert!(
        text.contains(
            r#"sidewatch_log_rule_errors_total{rule="objects_total",reason="bad_label"} 1"#
        ),
        "{text}"
    );
}

#[test]
fn any_and_all_matchers_select_events() {
    let (mut rules, registry) = build(
        r#"
        [[log_metrics]]
        name = "app_log_problems_total"
        labels = { level = "level" }
        match = { any = [{ field = "level", equals = "error" }, { all = [{ field = "level", equals = "warn" }, { field = "status", ge = 400 }] }] }
        "#,
    );
    rules.apply(&object(json!({"level": "error"})));
    rules.apply(&object(json!({"level": "warn", "status": 404})));
    rules.apply(&object(json!({"level": "warn"})));
    rules.apply(&object(json!({"level": "info", "status": 500})));
    let text = openmetrics(&registry);
    assert!(
        text.contains(r#"app_log_problems_total{level="error"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"app_log_problems_total{level="warn"} 1"#),
        "{text}"
    );
    assert!(!text.contains(r#"level="info""#), "{text}");
}
