//! The `otlp` log sink with the real binary against the in-test OTLP
//! receiver (tests/otlp_support: no OpenTelemetry Collector binary can be
//! installed here): the OTLP log data model (severity, body, attributes,
//! trace context, resource), a receiver that is down and comes back (no
//! line lost, none missing), and partial-success answers (counted, never
//! retried).

mod logs_support;
mod otlp_support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use logs_support::run::{append, config, free_port, metrics, sample, stop, BIN};
use logs_support::{line, Layout};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use otlp_support::{Protocol, Receiver};

/// The running binary; killed if a test fails before stopping it.
struct Running(Option<Child>);

impl Running {
    fn stop(mut self) {
        if let Some(child) = self.0.take() {
            stop(child);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(config: &std::path::Path, env: &[(&str, &str)]) -> Running {
    let mut command = Command::new(BIN);
    command
        .args(["run", "--config"])
        .arg(config)
        .env_remove("SIDEWATCH_CONFIG")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for var in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
    ] {
        command.env_remove(var);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    Running(Some(command.spawn().expect("sidewatch starts")))
}

fn records(requests: &[ExportLogsServiceRequest]) -> Vec<LogRecord> {
    requests
        .iter()
        .flat_map(|r| &r.resource_logs)
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| s.log_records.clone())
        .collect()
}

fn value(kv: &KeyValue) -> Option<&any_value::Value> {
    kv.value.as_ref()?.value.as_ref()
}

fn attrs(record: &LogRecord) -> BTreeMap<String, any_value::Value> {
    record
        .attributes
        .iter()
        .filter_map(|kv| Some((kv.key.clone(), value(kv)?.clone())))
        .collect()
}

fn string(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

fn id_of(record: &LogRecord) -> Option<i64> {
    match attrs(record).get("id") {
        Some(any_value::Value::IntValue(id)) => Some(*id),
        _ => None,
    }
}

fn sink(receiver: &Receiver, protocol: &str, delivery: &str) -> String {
    format!(
        "name = \"otel\"\ntype = \"otlp\"\n[logs.sinks.delivery]\nretry_initial = \"50ms\"\nretry_max = \"300ms\"\n{delivery}\n[otlp]\nendpoint = \"{}\"\nprotocol = \"{protocol}\"\n",
        receiver.endpoint()
    )
}

#[test]
fn records_carry_severity_body_attributes_and_trace_context() {
    let receiver = Receiver::start(Protocol::Grpc);
    let layout = Layout::new();
    let admin = free_port();
    let path = config(&layout, admin, &sink(&receiver, "grpc", ""));
    let app = layout.logs().join("app.log");
    append(
        &app,
        [
            r#"{"timestamp":"2026-12-01T10:00:00.250Z","level":"error","message":"payment failed","trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331","order":{"id":7},"amount":12.5,"retry":3}"#,
            r#"{"level":"debug","msg":"cache miss","trace_id":"not-a-trace","user":"u1"}"#,
            "plain text line",
        ]
        .into_iter()
        .map(|l| format!("{l}\n")),
    );
    let child = spawn(
        &path,
        &[
            ("OTEL_SERVICE_NAME", "payments"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test"),
            ("SIDEWATCH_POD_NAME", "payments-7d9"),
        ],
    );
    receiver.wait("three records", Duration::from_secs(15), |s| {
        records(&s.logs).len() >= 3
    });
    let requests = receiver.seen(|s| s.logs.clone());
    let got = records(&requests);
    let error = &got[0];
    assert_eq!(error.severity_text, "error");
    assert_eq!(error.severity_number, 17);
    assert_eq!(
        error.body.as_ref().and_then(|b| b.value.clone()),
        Some(string("payment failed"))
    );
    assert_eq!(error.time_unix_nano, 1_796_119_200_250_000_000);
    assert!(error.observed_time_unix_nano > 0);
    assert_eq!(
        error.trace_id,
        [
            0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80,
            0x31, 0x9c
        ]
    );
    assert_eq!(
        error.span_id,
        [0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31]
    );
    let a = attrs(error);
    assert_eq!(a["amount"], any_value::Value::DoubleValue(12.5));
    assert_eq!(a["retry"], any_value::Value::IntValue(3));
    assert!(matches!(a["order"], any_value::Value::KvlistValue(_)));
    assert!(a.contains_key("log.file.path"));
    for mapped in ["timestamp", "level", "message", "trace_id", "span_id"] {
        assert!(
            !a.contains_key(mapped),
            "{mapped} is not repeated as an attribute"
        );
    }

    let debug = &got[1];
    assert_eq!(
        (debug.severity_text.as_str(), debug.severity_number),
        ("debug", 5)
    );
    assert_eq!(
        debug.body.as_ref().and_then(|b| b.value.clone()),
        Some(string("cache miss"))
    );
    assert!(
        debug.trace_id.is_empty(),
        "invalid trace ID left out of the field"
    );
    assert_eq!(
        attrs(debug)["trace_id"],
        string("not-a-trace"),
        "and kept as attribute"
    );

    let text = &got[2];
    assert_eq!(
        text.body.as_ref().and_then(|b| b.value.clone()),
        Some(string("plain text line"))
    );

    let resource: BTreeMap<_, _> = requests[0].resource_logs[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .filter_map(|kv| Some((kv.key.clone(), value(kv)?.clone())))
        .collect();
    assert_eq!(resource["service.name"], string("payments"));
    assert_eq!(resource["deployment.environment"], string("test"));
    assert_eq!(resource["k8s.pod.name"], string("payments-7d9"));
    // The answer reaches sidewatch just after the receiver recorded the request.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let delivered = [("sink", "otel"), ("outcome", "delivered")];
    while sample(&metrics(admin), "sidewatch_sink_events_total", &delivered) != Some(3.0) {
        assert!(
            std::time::Instant::now() < deadline,
            "3 events acknowledged"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.stop();
}

#[test]
fn a_receiver_down_then_back_loses_no_line() {
    const LINES: u64 = 5000;
    let receiver = Receiver::start(Protocol::Http);
    receiver.down();
    let layout = Layout::new();
    let admin = free_port();
    let path = config(
        &layout,
        admin,
        &sink(
            &receiver,
            "http/protobuf",
            "batch_max_events = 500\nbuffer_batches = 2\n",
        ),
    );
    let app = layout.logs().join("app.log");
    append(&app, (0..LINES).map(|id| line(id, 0, id)));
    let child = spawn(&path, &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = metrics(admin);
        let failed = sample(
            &text,
            "sidewatch_otlp_exports_total",
            &[("signal", "logs"), ("outcome", "failed")],
        )
        .unwrap_or_default();
        if failed >= 3.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "failed exports counted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = admin_status(admin);
    assert_eq!(status["otlp"]["logs"]["ok"], false, "{status}");
    assert_eq!(status["sinks"]["otel"]["retrying"], true, "{status}");
    receiver.up();
    receiver.wait("every line", Duration::from_secs(30), |s| {
        let ids: BTreeSet<i64> = records(&s.logs).iter().filter_map(id_of).collect();
        ids.len() as u64 == LINES
    });
    child.stop();
    let ids: Vec<i64> = receiver.seen(|s| records(&s.logs).iter().filter_map(id_of).collect());
    let distinct: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(distinct, (0..LINES as i64).collect(), "none missing");
}

#[test]
fn partial_success_is_counted_and_not_retried() {
    let receiver = Receiver::start(Protocol::Grpc);
    receiver.partial(Some(1));
    let layout = Layout::new();
    let admin = free_port();
    let path = config(
        &layout,
        admin,
        &sink(
            &receiver,
            "grpc",
            "batch_max_events = 50\nbatch_timeout = \"200ms\"\n",
        ),
    );
    let app = layout.logs().join("app.log");
    append(&app, (0..200).map(|id| line(id, 0, id)));
    let child = spawn(&path, &[]);
    receiver.wait("200 records", Duration::from_secs(15), |s| {
        records(&s.logs).len() >= 200
    });
    std::thread::sleep(Duration::from_millis(500));
    let requests = receiver.seen(|s| s.logs.len()) as f64;
    let ids: Vec<i64> = receiver.seen(|s| records(&s.logs).iter().filter_map(id_of).collect());
    assert_eq!(
        ids.len(),
        200,
        "each record sent once: a partial success is not retried"
    );
    let text = metrics(admin);
    let labels = [("signal", "logs"), ("outcome", "partial")];
    assert_eq!(
        sample(&text, "sidewatch_otlp_exports_total", &labels),
        Some(requests)
    );
    assert_eq!(
        sample(
            &text,
            "sidewatch_otlp_rejected_items_total",
            &[("signal", "logs")]
        ),
        Some(requests),
        "one rejected record per answer"
    );
    assert_eq!(
        sample(
            &text,
            "sidewatch_sink_events_total",
            &[("sink", "otel"), ("outcome", "delivered")]
        ),
        Some(200.0),
        "acknowledged"
    );
    let status = admin_status(admin);
    assert_eq!(status["otlp"]["logs"]["rejected_items"], requests as u64);
    assert!(status["otlp"]["logs"]["last_partial_error"]
        .as_str()
        .unwrap()
        .contains("refused"));
    child.stop();
}

fn admin_status(port: u16) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"))
}
