//! OTLP export costs. Run with `cargo bench --bench otlp_export`.
//!
//! - `otlp_metrics/encode_10k_series`: a registry of 10 000 series (7000
//!   counters, 2000 gauges, 77 histograms × 13 series) read as OpenMetrics
//!   text, turned into one `ExportMetricsServiceRequest`, protobuf-encoded
//!   and gzipped — the CPU of one export.
//! - `otlp_metrics/export_10k_series_loopback`: the same, sent over
//!   HTTP/protobuf to a loopback receiver that reads the body and answers
//!   200 (the receiver's CPU is on the same machine, so this is an upper bound).
//! - `otlp_logs/encode_1000`: 1000 processed 200-byte JSON events as OTLP
//!   log records, protobuf + gzip.
//! - `otlp_logs/sink_100k_loopback`: 100 000 events through the `otlp` sink
//!   (the shared delivery machinery: batcher, 4 requests in flight) to the
//!   loopback receiver over HTTP/protobuf with gzip; records per second.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use sidewatch::admin::StatusBoard;
use sidewatch::config::logs::{DeliveryConfig, StagesConfig};
use sidewatch::config::otlp::{OtlpConfig, Protocol, Temporality};
use sidewatch::config::PodInfo;
use sidewatch::logs::metrics::Metrics;
use sidewatch::logs::sink::delivery::dead_letter::DeadLetter;
use sidewatch::logs::sink::delivery::{DeliveryMetrics, Encode, NetworkSink, Parts};
use sidewatch::logs::sink::{Sink, SinkReport};
use sidewatch::logs::stage::Stages;
use sidewatch::logs::{Event, EventMeta, Flags, SourceInfo};
use sidewatch::otlp::logs::LogEncoder;
use sidewatch::otlp::metrics::MetricsExporter;
use sidewatch::otlp::transport::LogsTransport;
use sidewatch::otlp::Otlp;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Series {
    route: String,
    status: u16,
}

fn registry() -> Registry {
    let mut registry = sidewatch::telemetry::new_registry();
    let counters = Family::<Series, Counter>::default();
    let gauges = Family::<Series, Gauge>::default();
    let histograms = Family::<Series, Histogram>::new_with_constructor(|| {
        Histogram::new(exponential_buckets(0.005, 2.5, 10))
    });
    for i in 0..7000 {
        let series = Series {
            route: format!("/api/v1/resource{}/{{id}}", i / 5),
            status: 200 + (i % 5) as u16,
        };
        counters.get_or_create(&series).inc_by(i);
    }
    for i in 0..2000 {
        let series = Series {
            route: format!("/queue/{i}"),
            status: 0,
        };
        gauges.get_or_create(&series).set(i as i64);
    }
    for i in 0..77 {
        let series = Series {
            route: format!("/hist/{i}"),
            status: 200,
        };
        let histogram = histograms.get_or_create(&series);
        for j in 0..50 {
            histogram.observe(0.001 * f64::from(j * (i + 1)));
        }
    }
    registry.register("bench_requests", "Requests.", counters);
    registry.register("bench_queue_depth", "Queue depth.", gauges);
    registry.register("bench_duration_seconds", "Durations.", histograms);
    registry
}

/// A loopback HTTP server reading every body and answering 200, on its
/// own thread; returns its endpoint.
fn receiver() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        |request: http::Request<hyper::body::Incoming>| async move {
                            use http_body_util::BodyExt;
                            let _ = request.into_body().collect().await;
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                http_body_util::Full::new(bytes::Bytes::new()),
                            ))
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    format!("http://{addr}")
}

fn otlp(endpoint: &str) -> Otlp {
    Otlp::detached(&OtlpConfig {
        endpoint: Some(endpoint.into()),
        protocol: Some(Protocol::HttpProtobuf),
        ..OtlpConfig::default()
    })
    .unwrap()
}

fn metrics(c: &mut Criterion) {
    let registry = sidewatch::telemetry::parts::Registries::new();
    registry.set("bench", self::registry());
    let endpoint = receiver();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut exporter = MetricsExporter::new(
        registry,
        otlp(&endpoint),
        Temporality::Cumulative,
        Duration::from_secs(15),
    );
    let mut group = c.benchmark_group("otlp_metrics");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("encode_10k_series", |b| {
        b.iter(|| sidewatch::logs::sink::loki::gzip(&exporter.encode_now()))
    });
    group.bench_function("export_10k_series_loopback", |b| {
        b.iter(|| runtime.block_on(exporter.export_once()))
    });
    group.finish();
}

fn line(i: usize) -> Vec<u8> {
    let mut line = format!(
        r#"{{"timestamp":"2025-12-07T10:30:00.123Z","level":"info","request_id":"req-{i:08x}","message":"Chat message processed","intent":"faq","latency_ms":145,"user":"u-{i}","route":"/api/chat"}}"#
    )
    .into_bytes();
    line.resize(200, b' ');
    line
}

fn events(stages: &mut Stages, source: &Arc<SourceInfo>, n: usize) -> Vec<Event> {
    let batch = (0..n)
        .map(|i| {
            let l = line(i);
            let meta = EventMeta {
                source: source.clone(),
                path: None,
                read_at: SystemTime::now(),
                raw_len: l.len(),
                flags: Flags::default(),
            };
            Event::from_line(l, meta, None)
        })
        .collect();
    stages.process(batch)
}

fn logs(c: &mut Criterion) {
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
    let encoder = LogEncoder::new(Arc::default(), "message", &["timestamp".to_owned()]);
    let processed = events(&mut stages, &source, 1000);
    let mut group = c.benchmark_group("otlp_logs");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("encode_1000", |b| {
        b.iter(|| sidewatch::logs::sink::loki::gzip(&encoder.encode(&processed).body))
    });

    let endpoint = receiver();
    let otlp = otlp(&endpoint);
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    const TOTAL: usize = 100_000;
    group.throughput(Throughput::Elements(TOTAL as u64));
    group.sample_size(10);
    group.bench_function("sink_100k_loopback", |b| {
        b.iter_batched(
            || {
                (0..TOTAL / 1000)
                    .map(|_| events(&mut stages, &source, 1000))
                    .collect::<Vec<_>>()
            },
            |batches| {
                let parts = Parts {
                    endpoint: Box::new(LogsTransport(otlp.client.clone())),
                    config: DeliveryConfig::default(),
                    report: SinkReport {
                        name: "otel".into(),
                        metrics: metrics.sink("otel"),
                        status: StatusBoard::default(),
                    },
                    metrics: DeliveryMetrics::detached("otel"),
                    dead_letter: DeadLetter::new("otel", &dir.path().join("dead.jsonl")),
                    disk: None,
                };
                let encoder = encoder.clone();
                runtime.block_on(async move {
                    let started = Instant::now();
                    let mut sink = NetworkSink::new(encoder, parts);
                    for mut batch in batches {
                        sink.write(&mut batch).await.unwrap();
                    }
                    sink.flush().await.unwrap();
                    started.elapsed()
                })
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, metrics, logs);
criterion_main!(benches);
