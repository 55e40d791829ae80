//! Encoding `/metrics` for the default metric set (three probe targets with
//! checks, the process collector, collector self-metrics), in both formats.
//!
//! Run: `cargo bench --bench metrics_encode`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use sidewatch::collect::health::{HealthCollector, HealthMetrics};
use sidewatch::collect::scheduler::CollectorMetrics;
use sidewatch::collect::Collector;
use sidewatch::config::{HealthTarget, ProcessConfig};
use sidewatch::telemetry::{self, expfmt::Exposition, process::ProcessCollector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A health endpoint answering with three checks.
async fn spawn_health_endpoint() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = stream.read(&mut buf).await;
                let body = r#"{"status":"ok","checks":{"db":"ok","redis":"ok","queue":"fail"}}"#;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    addr
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let registry = runtime.block_on(async {
        let addr = spawn_health_endpoint().await;
        let mut registry = telemetry::new_registry();
        let _collector_metrics = CollectorMetrics::register(&mut registry);
        let health = HealthMetrics::register(&mut registry);
        let mut process = ProcessCollector::build(&ProcessConfig::default(), &mut registry);
        process.collect().await.unwrap();
        for name in ["app", "app-ready", "app-port"] {
            let target = HealthTarget {
                name: name.into(),
                url: Some(format!("http://{addr}/health").parse().unwrap()),
                timeout: Duration::from_secs(1),
                ..HealthTarget::default()
            };
            let mut collector = HealthCollector::build(&target, &health).unwrap();
            let _ = collector.collect().await;
        }
        registry
    });
    let size = telemetry::encode(&registry, Exposition::Prometheus, 0)
        .unwrap()
        .len();
    println!("default metric set: {size} bytes in Prometheus text");
    c.bench_function("encode_prometheus_text", |b| {
        b.iter(|| telemetry::encode(&registry, Exposition::Prometheus, size + size / 8).unwrap())
    });
    c.bench_function("encode_openmetrics", |b| {
        b.iter(|| telemetry::encode(&registry, Exposition::OpenMetrics, size + size / 8).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
