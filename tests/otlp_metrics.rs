//! Metric export over OTLP against the in-test receiver
//! (tests/otlp_support: no OpenTelemetry Collector binary can be installed
//! here): gRPC export matching `/metrics` name by name, type by type, with
//! the same histogram bounds, values and exemplars; HTTP/protobuf with gzip
//! resuming after the receiver was down; bad endpoints shown in `/status`
//! and counted while sidewatch keeps serving; bad keys named by `check-config`.

mod otlp_support;
mod proxy_support;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, Metric};
use otlp_support::{Protocol, Receiver};
use support::{client, metric as sample, Sidewatch};

fn metrics_of(request: &ExportMetricsServiceRequest) -> BTreeMap<String, Metric> {
    request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| (m.name.clone(), m.clone()))
        .collect()
}

fn attributes(
    attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue],
) -> BTreeMap<String, String> {
    attrs
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `# TYPE` lines of Prometheus text: name → type.
fn types(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_owned(), t.to_owned()))
        .collect()
}

fn requests_total(request: &ExportMetricsServiceRequest) -> Option<f64> {
    let metric = metrics_of(request).remove("http_requests_total")?;
    let Some(metric::Data::Sum(sum)) = metric.data else {
        return None;
    };
    sum.data_points.iter().find_map(|p| {
        let a = attributes(&p.attributes);
        (a.get("route").map(String::as_str) == Some("/api/orders/{id}")).then_some(())?;
        match p.value {
            Some(number_data_point::Value::AsDouble(v)) => Some(v),
            _ => None,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_export_matches_the_metrics_endpoint() {
    let receiver = Receiver::start(Protocol::Grpc);
    let app = proxy_support::spawn_app().await;
    let extra = format!(
        r#"
[otlp]
endpoint = "{endpoint}"
protocol = "grpc"
headers = {{ x-api-key = "k1" }}
resource = {{ "service.name" = "chat" }}
[otlp.metrics]
interval = "200ms"
"#,
        endpoint = receiver.endpoint()
    );
    let (sidewatch, base) = proxy_support::start(app, &extra).await;
    let http = client();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    for i in 0..10 {
        let r = http
            .get(format!("{base}/api/orders/{i}"))
            .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    receiver
        .wait_async("10 requests counted", Duration::from_secs(10), |seen| {
            seen.metrics.last().and_then(requests_total) == Some(10.0)
        })
        .await;
    // Scrape, then take an export made after the scrape: the request
    // counters and histograms no longer move.
    let text = sidewatch.metrics().await;
    let openmetrics = sidewatch.openmetrics().await;
    let before = receiver.seen(|s| s.metrics.len());
    receiver
        .wait_async("a later export", Duration::from_secs(5), |s| {
            s.metrics.len() > before + 1
        })
        .await;
    let request = receiver.seen(|s| s.metrics.last().cloned().unwrap());
    let exported = metrics_of(&request);

    // A family without samples (such as grpc_server_handled_total before
    // any gRPC call) has nothing to export: OTLP sends no empty metrics.
    let has_samples = |name: &str| {
        text.lines()
            .any(|l| !l.starts_with('#') && l.starts_with(name))
    };
    for (name, kind) in types(&text) {
        if !has_samples(&name) {
            assert_eq!(name, "grpc_server_handled_total", "an empty family");
            continue;
        }
        let metric = exported
            .get(&name)
            .unwrap_or_else(|| panic!("{name} ({kind}) is in /metrics but not exported"));
        match (kind.as_str(), &metric.data) {
            ("counter", Some(metric::Data::Sum(sum))) => {
                assert!(sum.is_monotonic, "{name}");
                assert_eq!(sum.aggregation_temporality, 2, "{name}: cumulative");
            }
            ("gauge", Some(metric::Data::Gauge(_))) => {}
            ("histogram", Some(metric::Data::Histogram(_))) => {}
            (kind, data) => panic!("{name}: {kind} exported as {data:?}"),
        }
    }
    assert!(exported.contains_key("sidewatch_build_info"));
    assert!(exported.contains_key("sidewatch_otlp_exports_total"));

    // Values and bounds of the proxy's histogram, series by series.
    let Some(metric::Data::Histogram(histogram)) = &exported["http_request_duration_seconds"].data
    else {
        panic!("not a histogram");
    };
    let point = histogram
        .data_points
        .iter()
        .find(|p| attributes(&p.attributes)["route"] == "/api/orders/{id}")
        .expect("the orders series");
    let labels = [
        ("method", "GET"),
        ("route", "/api/orders/{id}"),
        ("status", "200"),
    ];
    assert_eq!(
        sample(&text, "http_request_duration_seconds_count", &labels),
        Some(point.count as f64)
    );
    // The text's buckets of that series: (le, cumulative count).
    let text_buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| {
            l.starts_with("http_request_duration_seconds_bucket{")
                && l.contains("route=\"/api/orders/{id}\"")
                && l.contains("status=\"200\"")
        })
        .map(|l| {
            let le = l.split("le=\"").nth(1).unwrap().split('"').next().unwrap();
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            let value = l.rsplit(' ').next().unwrap().parse().unwrap();
            (le, value)
        })
        .collect();
    assert_eq!(
        text_buckets.len(),
        point.explicit_bounds.len() + 1,
        "same bounds"
    );
    assert_eq!(point.bucket_counts.len(), point.explicit_bounds.len() + 1);
    let mut cumulative = 0;
    for (i, (le, value)) in text_buckets.iter().enumerate() {
        cumulative += point.bucket_counts[i];
        let bound = point
            .explicit_bounds
            .get(i)
            .copied()
            .unwrap_or(f64::INFINITY);
        assert_eq!(*le, bound, "bound {i}");
        assert_eq!(*value, cumulative as f64, "bucket le={le}");
    }
    assert_eq!(requests_total(&request), Some(10.0));
    let exemplar = point
        .exemplars
        .first()
        .expect("the histogram's exemplar is exported");
    assert_eq!(hex(&exemplar.trace_id), trace);
    assert!(openmetrics.contains(&format!("trace_id=\"{trace}\"")));

    let resource = attributes(
        &request.resource_metrics[0]
            .resource
            .as_ref()
            .expect("a resource")
            .attributes,
    );
    assert_eq!(resource["service.name"], "chat");
    assert_eq!(receiver.seen(|s| s.api_key.clone()).as_deref(), Some("k1"));
    let success = sample(
        &sidewatch.metrics().await,
        "sidewatch_otlp_exports_total",
        &[("signal", "metrics"), ("outcome", "success")],
    )
    .unwrap();
    assert!(success >= 3.0, "{success}");
    sidewatch.stop().await;
}

fn failed_exports(text: &str) -> f64 {
    sample(
        text,
        "sidewatch_otlp_exports_total",
        &[("signal", "metrics"), ("outcome", "failed")],
    )
    .unwrap_or_default()
}

const NO_PROXY: &str = "[process]\nenabled = false\n[shutdown]\ngrace_period = \"1s\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_export_resumes_after_the_receiver_comes_back() {
    let receiver = Receiver::start(Protocol::Http);
    let config = format!(
        "{NO_PROXY}[otlp]\nendpoint = \"{}\"\nprotocol = \"http/protobuf\"\n[otlp.metrics]\ninterval = \"200ms\"\n",
        receiver.endpoint()
    );
    let sidewatch = Sidewatch::start(&config).await;
    receiver
        .wait_async("a first export", Duration::from_secs(5), |s| {
            !s.metrics.is_empty()
        })
        .await;
    assert!(receiver.seen(|s| s.gzipped), "gzip by default");

    receiver.down();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while failed_exports(&sidewatch.metrics().await) < 2.0 {
        assert!(std::time::Instant::now() < deadline, "failures are counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = sidewatch.status().await;
    let shown = &status["otlp"]["metrics"];
    assert_eq!(shown["ok"], false, "{status}");
    assert!(
        shown["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{status}"
    );
    assert!(shown["endpoint"].as_str().unwrap().ends_with("/v1/metrics"));

    let before = receiver.seen(|s| s.metrics.len());
    receiver.up();
    receiver
        .wait_async("exports again", Duration::from_secs(10), |s| {
            s.metrics.len() > before
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sidewatch.status().await["otlp"]["metrics"]["ok"], true);
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_endpoints_show_in_status_and_never_stop_sidewatch() {
    // TLS to a plain-HTTP receiver, and gRPC to an HTTP/1 receiver.
    let receiver = Receiver::start(Protocol::Http);
    let tls = format!("https://{}", receiver.addr);
    for (endpoint, protocol) in [
        (tls.as_str(), "http/protobuf"),
        (&receiver.endpoint(), "grpc"),
    ] {
        let config = format!(
            "{NO_PROXY}[otlp]\nendpoint = \"{endpoint}\"\nprotocol = \"{protocol}\"\ntimeout = \"1s\"\n[otlp.metrics]\ninterval = \"100ms\"\n"
        );
        let sidewatch = Sidewatch::start(&config).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while failed_exports(&sidewatch.metrics().await) < 3.0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{protocol}: failures counted"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let status = sidewatch.status().await;
        let shown = &status["otlp"]["metrics"];
        assert_eq!(shown["ok"], false, "{status}");
        assert!(shown["failures"].as_u64().unwrap() >= 3, "{status}");
        let error = shown["last_error"].as_str().unwrap_or_default();
        assert!(!error.is_empty(), "{protocol}: {status}");
        assert_eq!(sidewatch.get("/readyz").await.status(), 200);
        sidewatch.stop().await;
    }
    assert!(
        receiver.seen(|s| s.metrics.is_empty()),
        "nothing got through"
    );
}

#[test]
fn check_config_names_bad_otlp_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[otlp]\nendpoint = \"ftp://collector\"\n[otlp.metrics]\ntemporality = \"delta\"\ninterval = \"0s\"\n[otlp.traces]\nenabled = true\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sidewatch"))
        .args(["check-config", path.to_str().unwrap()])
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for key in [
        "otlp.endpoint",
        "otlp.protocol",
        "otlp.metrics.interval",
        "otlp.traces.enabled",
    ] {
        assert!(stderr.contains(&format!("`{key}`")), "{key} in {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_s_own_endpoint_wins_and_is_used_as_it_is() {
    let receiver = Receiver::start(Protocol::Http);
    // The shared endpoint leads nowhere; the metrics endpoint is the whole URL.
    let config = format!(
        "{NO_PROXY}[otlp]\nendpoint = \"http://127.0.0.1:9/unused\"\n[otlp.metrics]\nendpoint = \"{}/v1/metrics\"\ninterval = \"200ms\"\n",
        receiver.endpoint()
    );
    let sidewatch = Sidewatch::start(&config).await;
    receiver
        .wait_async(
            "an export at the metrics endpoint",
            Duration::from_secs(5),
            |s| !s.metrics.is_empty(),
        )
        .await;
    let status = sidewatch.status().await;
    assert_eq!(
        status["otlp"]["metrics"]["endpoint"],
        format!("{}/v1/metrics", receiver.endpoint()),
        "{status}"
    );
    sidewatch.stop().await;
}
