//! The log pipeline's work on the proxy's access-log events, per event: an
//! event built from its record, the stage chain (with the pod's identity, as
//! in Kubernetes), a JSON line, and the event freed. Requests as `wrk`
//! sends them to `benches/proxy.sh`: `GET /`, no `x-request-id` (sidewatch
//! makes one) and no `traceparent`. Run with
//! `cargo bench --bench access_events`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use prometheus_client::registry::Registry;
use sidewatch::config::logs::StagesConfig;
use sidewatch::config::PodInfo;
use sidewatch::logs::metrics::Metrics;
use sidewatch::logs::stage::Stages;
use sidewatch::logs::{Event, EventMeta, Flags, SourceInfo};
use sidewatch::proxy::access::AccessRecord;
use sidewatch::proxy::identity;

/// The owned strings of one request's record.
struct Request {
    ended_at: SystemTime,
    correlation_id: String,
    trace_id: String,
}

fn access_events(c: &mut Criterion) {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let pod = PodInfo {
        name: Some("chatbot-service-7d9f8b6c4-x2k9p".into()),
        namespace: Some("chatbot-prod".into()),
        node: Some("node-1".into()),
        ip: None,
    };
    let mut stages = Stages::build(&StagesConfig::default(), &pod, |_| None, &metrics).unwrap();
    let source = Arc::new(SourceInfo {
        name: "proxy".into(),
        metrics: metrics.source("proxy"),
    });
    let start = SystemTime::now();
    let requests: Vec<Request> = (0..1000)
        .map(|i| {
            let id = identity::ensure(&mut http::HeaderMap::new());
            Request {
                ended_at: start + Duration::from_micros(i * 20),
                correlation_id: id.request_id,
                trace_id: id.trace_id,
            }
        })
        .collect();
    let mut group = c.benchmark_group("access_events");
    group.throughput(Throughput::Elements(requests.len() as u64));
    group.bench_function("build_stages_encode_free_1000", |b| {
        let mut buffer = Vec::with_capacity(requests.len() * 400);
        b.iter_batched(
            || (),
            |()| {
                let batch: Vec<Event> = requests
                    .iter()
                    .map(|r| {
                        let record = AccessRecord {
                            ended_at: r.ended_at,
                            method: &http::Method::GET,
                            route: "/",
                            path: "/",
                            status: 200,
                            duration_seconds: 0.000_181,
                            request_bytes: 0,
                            response_bytes: 3,
                            correlation_id: &r.correlation_id,
                            correlation_id_made: true,
                            trace_id: &r.trace_id,
                            grpc_status: None,
                            aborted: false,
                        };
                        let meta = EventMeta {
                            source: source.clone(),
                            path: None,
                            read_at: r.ended_at,
                            raw_len: 0,
                            flags: Flags::default(),
                        };
                        Event::from_fields(record.to_fields(), meta, None)
                    })
                    .collect();
                let out = stages.process(batch);
                buffer.clear();
                for event in &out {
                    sidewatch::logs::sink::encode_json_line(event, &mut buffer);
                }
                buffer.len()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, access_events);
criterion_main!(benches);
