//! One log rule evaluated on one parsed event, with its histogram observe
//! (matcher, value, labels, series lookup, exemplar), and one StatsD datagram
//! through the intake. Run with `cargo bench --bench log_rules`.

use std::sync::Arc;
use std::time::SystemTime;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prometheus_client::registry::Registry;
use sidewatch::config::log_metrics::{LogMetricRule, RoutesConfig};
use sidewatch::config::statsd::StatsdConfig;
use sidewatch::logs::metrics::SourceMetrics;
use sidewatch::logs::rules::LogRules;
use sidewatch::logs::{Event, EventMeta, Flags, SourceInfo};
use sidewatch::statsd::Intake;
use sidewatch::telemetry::cardinality::OverflowMetrics;

#[derive(serde::Deserialize)]
struct Rules {
    log_metrics: Vec<LogMetricRule>,
}

fn rules(toml_text: &str) -> LogRules {
    let rules: Rules = toml::from_str(toml_text).unwrap();
    let mut registry = Registry::default();
    let overflow = OverflowMetrics::register(&mut registry);
    LogRules::build(
        &rules.log_metrics,
        &RoutesConfig::default(),
        "correlation_id",
        &overflow,
        &mut registry,
    )
    .unwrap()
    .unwrap()
}

fn events() -> Vec<Event> {
    let source = Arc::new(SourceInfo {
        name: "bench".into(),
        metrics: SourceMetrics::detached(),
    });
    let methods = ["GET", "POST"];
    let routes = [
        "/api/chat",
        "/api/search",
        "/api/orders/:id",
        "/api/users/:id",
    ];
    (0..1024)
        .map(|i| {
            let value = serde_json::json!({
                "timestamp": "2025-12-07T10:30:00.123Z",
                "level": "info",
                "request_id": format!("req-{i:08x}"),
                "correlation_id": format!("req-{i:08x}"),
                "message": "Chat message processed",
                "method": methods[i % 2],
                "route": routes[i % 4],
                "status": if i % 50 == 0 { 500 } else { 200 },
                "latency_ms": (i * 37) % 3000,
                "intent": "faq",
            });
            let serde_json::Value::Object(fields) = value else {
                unreachable!()
            };
            let meta = EventMeta {
                source: source.clone(),
                path: None,
                read_at: SystemTime::now(),
                raw_len: 200,
                flags: Flags::default(),
            };
            Event::from_fields(fields.into(), meta, None)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let events = events();
    let mut group = c.benchmark_group("log_rules");
    group.throughput(Throughput::Elements(1));
    let mut histogram = rules(
        r#"
        [[log_metrics]]
        name = "http_request_duration_seconds"
        type = "histogram"
        value_field = "latency_ms"
        value_unit = "ms"
        labels = { method = "method", route = "route", status = "status" }
        match = { field = "latency_ms", exists = true }
        "#,
    );
    let mut i = 0;
    group.bench_function("histogram_rule_3_labels_with_exemplar", |b| {
        b.iter(|| {
            i = (i + 1) % events.len();
            histogram.apply(&events[i]);
        })
    });
    let mut counter = rules(
        r#"
        [[log_metrics]]
        name = "chat_messages_total"
        labels = { intent = "intent" }
        match = { field = "route", equals = "/api/chat" }
        "#,
    );
    group.bench_function("counter_rule_1_label", |b| {
        b.iter(|| {
            i = (i + 1) % events.len();
            counter.apply(&events[i]);
        })
    });
    let mut normalised = rules(
        r#"
        [[log_metrics]]
        name = "http_requests_total"
        labels = { method = "method", route = "route", status = "status" }
        route_labels = ["route"]
        "#,
    );
    group.bench_function("counter_rule_route_normalised", |b| {
        b.iter(|| {
            i = (i + 1) % events.len();
            normalised.apply(&events[i]);
        })
    });
    group.finish();

    let mut registry = Registry::default();
    let overflow = OverflowMetrics::register(&mut registry);
    let config: StatsdConfig = toml::from_str(
        "[[mappings]]\nmatch = \"api.*.requests\"\nname = \"api_requests_total\"\nlabels = { endpoint = \"$1\" }\n",
    )
    .unwrap();
    let mut intake = Intake::build(&config, Vec::new(), &overflow, &mut registry).unwrap();
    let packets: Vec<String> = (0..64)
        .map(|i| {
            format!(
                "api.e{}.requests:1|c|@0.5\nqueue.depth:{i}|g\ndb.query:{}|ms|#table:t{},env:prod",
                i % 8,
                i * 3,
                i % 4
            )
        })
        .collect();
    let mut group = c.benchmark_group("statsd");
    group.throughput(Throughput::Elements(1));
    let mut j = 0;
    group.bench_function("datagram_3_samples", |b| {
        b.iter(|| {
            j = (j + 1) % packets.len();
            let p = packets[j].as_bytes();
            intake.packet(p, p.len());
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
