//! The log stage chain (parse → correlate → enrich → redact) on 200-byte
//! JSON lines, per event. Run with `cargo bench --bench log_stages`.

use std::sync::Arc;
use std::time::SystemTime;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use prometheus_client::registry::Registry;
use sidewatch::config::logs::StagesConfig;
use sidewatch::config::PodInfo;
use sidewatch::logs::metrics::Metrics;
use sidewatch::logs::stage::Stages;
use sidewatch::logs::{Event, EventMeta, Flags, SourceInfo};

fn line(i: usize) -> Vec<u8> {
    let mut line = format!(
        r#"{{"timestamp":"2025-12-07T10:30:00.123Z","level":"info","request_id":"req-{i:08x}","message":"Chat message processed","intent":"faq","latency_ms":145,"user":"u-{i}","route":"/api/chat"}}"#
    )
    .into_bytes();
    line.resize(200, b' ');
    line
}

fn stages(c: &mut Criterion) {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let pod = PodInfo {
        name: Some("chatbot-service-xyz".into()),
        namespace: Some("chatbot-prod".into()),
        node: Some("node-1".into()),
        ip: None,
    };
    let mut stages = Stages::build(&StagesConfig::default(), &pod, |_| None, &metrics).unwrap();
    let source = Arc::new(SourceInfo {
        name: "bench".into(),
        metrics: metrics.source("bench"),
    });
    let lines: Vec<Vec<u8>> = (0..1000).map(line).collect();
    let mut group = c.benchmark_group("log_stages");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("parse_correlate_enrich_redact_encode_1000", |b| {
        b.iter_batched(
            || {
                lines
                    .iter()
                    .map(|l| {
                        let meta = EventMeta {
                            source: source.clone(),
                            path: None,
                            read_at: SystemTime::now(),
                            raw_len: l.len(),
                            flags: Flags::default(),
                        };
                        Event::from_line(l.clone(), meta, None)
                    })
                    .collect::<Vec<_>>()
            },
            |batch| {
                let out = stages.process(batch);
                let mut buffer = Vec::with_capacity(out.len() * 300);
                for event in &out {
                    sidewatch::logs::sink::encode_json_line(event, &mut buffer);
                }
                buffer
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
