//! Proxy server spans over OTLP/HTTP against the in-test receiver
//! (tests/otlp_support: no OpenTelemetry Collector binary can be installed
//! here) and a real app behind the proxy (tests/proxy_support): parent from
//! the incoming `traceparent`, the app seeing sidewatch's span as parent
//! with the sampled flag only when the span is exported, HTTP attributes,
//! error status, and one trace ID shared by the span, the access-log event
//! and the exemplar.

mod otlp_support;
mod proxy_support;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::Span;
use otlp_support::{Protocol, Receiver};
use support::client;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn spans(receiver: &Receiver) -> Vec<Span> {
    receiver.seen(|s| {
        s.traces
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.clone())
            .collect()
    })
}

fn attributes(span: &Span) -> BTreeMap<String, any_value::Value> {
    span.attributes
        .iter()
        .filter_map(|kv| Some((kv.key.clone(), kv.value.as_ref()?.value.clone()?)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_follow_the_incoming_trace_and_link_logs_and_exemplars() {
    let receiver = Receiver::start(Protocol::Http);
    let dir = tempfile::tempdir().unwrap();
    let access = dir.path().join("access.log");
    let app = proxy_support::spawn_app().await;
    let extra = format!(
        r#"
[otlp]
endpoint = "{endpoint}"
protocol = "http/protobuf"
[otlp.metrics]
enabled = false
[otlp.traces]
enabled = true
batch_timeout = "100ms"
[logs]
state_dir = "{state}"
[[logs.sinks]]
type = "file"
path = "{access}"
"#,
        endpoint = receiver.endpoint(),
        state = dir.path().display(),
        access = access.display(),
    );
    let (sidewatch, base) = proxy_support::start(app, &extra).await;
    let http = client();
    let get = |path: &str, traceparent: Option<&str>| {
        let mut request = http.get(format!("{base}{path}"));
        if let Some(tp) = traceparent {
            request = request
                .header("traceparent", tp)
                .header("tracestate", "vendor=1");
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let (status, echoed) = get("/headers", Some(&format!("00-{trace}-{parent}-01"))).await;
    assert_eq!(status, 200);
    let echoed: serde_json::Value = serde_json::from_str(&echoed).unwrap();
    let forwarded = echoed["traceparent"].as_str().unwrap().to_owned();
    // The exemplar (the bucket's latest observation: checked before other
    // requests to the route) carries the span's trace ID.
    let openmetrics = sidewatch.openmetrics().await;
    let exemplar_line = openmetrics
        .lines()
        .find(|l| {
            l.starts_with("http_request_duration_seconds_bucket{")
                && l.contains("route=\"/headers\"")
                && l.contains(trace)
        })
        .unwrap_or_else(|| panic!("no exemplar with {trace}:\n{openmetrics}"));
    assert!(exemplar_line.contains(&format!("trace_id=\"{trace}\"")));
    let unsampled = format!("00-{}-{parent}-00", "a".repeat(32));
    let (_, echoed_unsampled) = get("/headers?u", Some(&unsampled)).await;
    let (_, echoed_new) = get("/headers?new", None).await;
    assert_eq!(get("/fail", None).await.0, 500);

    receiver
        .wait_async("three spans", Duration::from_secs(10), |s| {
            s.traces
                .iter()
                .map(|r| r.resource_spans[0].scope_spans[0].spans.len())
                .sum::<usize>()
                >= 3
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let spans = spans(&receiver);
    assert_eq!(
        spans.len(),
        3,
        "the unsampled request has no span: {spans:?}"
    );

    // The sampled request: its trace, its parent, and the app sees our span.
    let span = spans
        .iter()
        .find(|s| hex(&s.trace_id) == trace)
        .expect("span of the incoming trace");
    assert_eq!(hex(&span.parent_span_id), parent);
    assert_eq!(forwarded, format!("00-{trace}-{}-01", hex(&span.span_id)));
    assert_eq!(span.trace_state, "vendor=1");
    assert_eq!(span.name, "GET /headers");
    assert_eq!(span.kind, 2, "server");
    assert!(span.end_time_unix_nano >= span.start_time_unix_nano && span.start_time_unix_nano > 0);
    let attrs = attributes(span);
    assert_eq!(
        attrs["http.request.method"],
        any_value::Value::StringValue("GET".into())
    );
    assert_eq!(
        attrs["http.route"],
        any_value::Value::StringValue("/headers".into())
    );
    assert_eq!(
        attrs["http.response.status_code"],
        any_value::Value::IntValue(200)
    );
    assert!(attrs.contains_key("client.address"));
    assert_eq!(span.status.as_ref().map(|s| s.code), Some(0));

    // Unsampled: forwarded unchanged. New trace: a root span, flag on.
    let echoed_unsampled: serde_json::Value = serde_json::from_str(&echoed_unsampled).unwrap();
    assert_eq!(echoed_unsampled["traceparent"], unsampled.as_str());
    let echoed_new: serde_json::Value = serde_json::from_str(&echoed_new).unwrap();
    let new = echoed_new["traceparent"].as_str().unwrap();
    assert!(new.ends_with("-01"), "{new}");
    let root = spans
        .iter()
        .find(|s| new.contains(&hex(&s.trace_id)))
        .expect("span of the new trace");
    assert!(root.parent_span_id.is_empty());
    assert!(new.contains(&hex(&root.span_id)));
    let failed = spans
        .iter()
        .find(|s| s.name == "GET /fail")
        .expect("the /fail span");
    assert_eq!(
        failed.status.as_ref().map(|s| s.code),
        Some(2),
        "5xx is an error"
    );

    // The same trace ID in the access-log event.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&access).unwrap_or_default();
        let event = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["trace_id"] == trace);
        if let Some(event) = event {
            assert_eq!(event["route"], "/headers");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no access-log event with {trace}: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = sidewatch.status().await;
    assert_eq!(status["otlp"]["traces"]["ok"], true, "{status}");
    assert!(
        status["otlp"].get("metrics").is_none(),
        "metrics off: {status}"
    );
    sidewatch.stop().await;
}
