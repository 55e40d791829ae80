//! The Loki sink's CPU path and the disk buffer's write rate. Run with
//! `cargo bench --bench loki_sink`.
//!
//! - `loki_sink/stages_then_protobuf_snappy_1000`: 1000 200-byte JSON lines
//!   through parse → correlate → enrich → redact, then grouped into streams,
//!   sorted and encoded as a snappy-compressed protobuf push request.
//! - `disk_buffer/append_fsync_1000`: 1000 such events appended to the disk
//!   buffer with one fsync (what a spilled batch costs), bytes per second.

use std::sync::Arc;
use std::time::SystemTime;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use prometheus_client::registry::Registry;
use sidewatch::config::logs::{LogSinkConfig, StagesConfig};
use sidewatch::config::PodInfo;
use sidewatch::logs::metrics::Metrics;
use sidewatch::logs::sink::delivery::disk::DiskBuffer;
use sidewatch::logs::sink::delivery::Encode;
use sidewatch::logs::sink::loki::LokiEncoder;
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

fn batch(source: &Arc<SourceInfo>, lines: &[Vec<u8>]) -> Vec<Event> {
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
        .collect()
}

fn loki(c: &mut Criterion) {
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
    let encoder = LokiEncoder::new(&LogSinkConfig::default());
    let mut group = c.benchmark_group("loki_sink");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("stages_then_protobuf_snappy_1000", |b| {
        b.iter_batched(
            || batch(&source, &lines),
            |batch| {
                let out = stages.process(batch);
                encoder.encode(&out)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let parsed = stages.process(batch(&source, &lines));
    let dir = tempfile::tempdir().unwrap();
    let (mut disk, _) = DiskBuffer::open(dir.path(), u64::MAX).unwrap();
    disk.append(&parsed).unwrap();
    let bytes = disk.bytes();
    let mut group = c.benchmark_group("disk_buffer");
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("append_fsync_1000", |b| {
        b.iter_custom(|iters| {
            let mut timed = std::time::Duration::ZERO;
            for i in 0..iters {
                let started = std::time::Instant::now();
                disk.append(&parsed).unwrap();
                timed += started.elapsed();
                if i % 50 == 49 {
                    // Untimed: remove what was written so the directory stays small.
                    while let Some(chunk) = disk.read(100_000).unwrap() {
                        disk.delivered(chunk.id);
                    }
                }
            }
            timed
        })
    });
    group.finish();
}

criterion_group!(benches, loki);
criterion_main!(benches);
