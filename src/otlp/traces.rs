//! Proxy server spans: head sampling ([`Sampler`]), the span of one
//! request ([`ServerSpan`]), a bounded queue the proxy never waits on
//! ([`SpanQueue`]), and the export task batching spans into
//! `ExportTraceServiceRequest`s.
//!
//! A sampled request's span has the trace ID of the request's `traceparent`
//! (the one in its access-log event and its exemplar) and the incoming
//! parent span as parent; the app receives `traceparent` with sidewatch's
//! span as parent and the sampled flag on. An unsampled request's
//! `traceparent` is forwarded as it came (a new one keeps the flag off).

use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{
    span::SpanKind, status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
};
use prometheus_client::metrics::counter::Counter;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::resource::string_attribute;
use super::{unix_nanos, Otlp, Signal};
use crate::config::otlp::OtlpTracesConfig;

/// Head sampling: the incoming sampled flag when `parent_based`, else the
/// trace ID ratio (its last 8 bytes against `ratio` × 2⁶⁴, as the
/// OpenTelemetry `TraceIdRatioBased` sampler).
#[derive(Debug, Clone, Copy)]
pub struct Sampler {
    threshold: u64,
    always: bool,
    parent_based: bool,
}

impl Sampler {
    /// The sampler of `[otlp.traces]`.
    pub fn new(config: &OtlpTracesConfig) -> Self {
        let ratio = config.sample_ratio.clamp(0.0, 1.0);
        Self {
            threshold: (ratio * u64::MAX as f64) as u64,
            always: ratio >= 1.0,
            parent_based: config.parent_based,
        }
    }

    /// Whether a request of trace `trace_id` (32 hex digits) with the
    /// incoming sampled flag `parent` (`None`: no valid `traceparent`) is sampled.
    pub fn sample(&self, trace_id: &str, parent: Option<bool>) -> bool {
        if let (true, Some(sampled)) = (self.parent_based, parent) {
            return sampled;
        }
        if self.always {
            return true;
        }
        let low = trace_id
            .get(16..32)
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .unwrap_or(u64::MAX);
        low < self.threshold
    }
}

/// The proxy's end of span export: a bounded queue; when it is full the
/// span is dropped and counted (the proxy never waits on the exporter).
#[derive(Debug, Clone)]
pub struct SpanQueue {
    tx: mpsc::Sender<Span>,
    dropped: Counter,
    /// The sampler deciding which requests get a span.
    pub sampler: Sampler,
}

impl SpanQueue {
    /// A queue for `[otlp.traces]`, counting drops on `dropped`, and the
    /// exporter reading it.
    pub fn channel(
        config: &OtlpTracesConfig,
        dropped: Counter,
        otlp: Otlp,
    ) -> (Self, SpanExporter) {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let queue = Self {
            tx,
            dropped,
            sampler: Sampler::new(config),
        };
        let exporter = SpanExporter {
            rx,
            otlp,
            batch_max: config.batch_max_spans.max(1),
            batch_timeout: config.batch_timeout,
        };
        (queue, exporter)
    }

    /// Queues a finished span, or counts it as dropped.
    pub fn emit(&self, span: Span) {
        if self.tx.try_send(span).is_err() {
            self.dropped.inc();
        }
    }
}

/// The span of one proxied request, decided at its arrival.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpan {
    /// The trace ID.
    pub trace_id: [u8; 16],
    /// sidewatch's span ID (the parent the app sees).
    pub span_id: [u8; 8],
    /// The incoming parent span, if any.
    pub parent_span_id: Option<[u8; 8]>,
    /// The incoming `tracestate`, forwarded and recorded.
    pub trace_state: String,
    /// When the request arrived.
    pub start: SystemTime,
}

/// What a finished request adds to its span.
#[derive(Debug, Clone)]
pub struct Finished<'a> {
    /// The request method.
    pub method: &'a str,
    /// The normalised route.
    pub route: &'a str,
    /// The path without query.
    pub path: &'a str,
    /// The response status.
    pub status: u16,
    /// The HTTP version the client spoke (`1.1`, `2`).
    pub protocol_version: &'a str,
    /// The client's address.
    pub client_address: Option<std::net::IpAddr>,
    /// Request and response body bytes.
    pub request_bytes: u64,
    /// Response body bytes.
    pub response_bytes: u64,
    /// The `x-request-id`.
    pub request_id: &'a str,
    /// The client went away before the response ended.
    pub aborted: bool,
    /// A gRPC call's status code (its `route` is then `/Service/Method`).
    pub grpc_status: Option<u16>,
}

impl ServerSpan {
    /// The OTLP span, named `METHOD route`, with HTTP semantic-convention
    /// attributes; 5xx answers are errors (server spans leave 4xx unset).
    pub fn finish(&self, done: &Finished<'_>, end: SystemTime) -> Span {
        let int = |key: &str, value: i64| KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(value)),
            }),
            ..KeyValue::default()
        };
        let mut attributes = vec![
            string_attribute("http.request.method", done.method),
            string_attribute("http.route", done.route),
            string_attribute("url.path", done.path),
            string_attribute("url.scheme", "http"),
            int("http.response.status_code", i64::from(done.status)),
            string_attribute("network.protocol.name", "http"),
            string_attribute("network.protocol.version", done.protocol_version),
            int("http.request.body.size", done.request_bytes as i64),
            int("http.response.body.size", done.response_bytes as i64),
            string_attribute("http.request.header.x-request-id", done.request_id),
        ];
        if let Some(client) = done.client_address {
            attributes.push(string_attribute("client.address", client.to_string()));
        }
        // A gRPC call: named `Service/Method` with RPC attributes; a server
        // span's error codes are those the server is to blame for.
        let rpc = done.route.strip_prefix('/').unwrap_or(done.route);
        let grpc = done.grpc_status.map(|code| {
            let (service, method) = rpc.split_once('/').unwrap_or_default();
            attributes.push(string_attribute("rpc.system", "grpc"));
            attributes.push(string_attribute("rpc.service", service));
            attributes.push(string_attribute("rpc.method", method));
            attributes.push(int("rpc.grpc.status_code", i64::from(code)));
            matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
        });
        let status = if done.status >= 500 || grpc == Some(true) {
            Status {
                code: StatusCode::Error as i32,
                message: String::new(),
            }
        } else {
            Status::default()
        };
        if done.aborted {
            attributes.push(KeyValue {
                key: "sidewatch.client_aborted".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::BoolValue(true)),
                }),
                ..KeyValue::default()
            });
        }
        Span {
            trace_id: self.trace_id.to_vec(),
            span_id: self.span_id.to_vec(),
            trace_state: self.trace_state.clone(),
            parent_span_id: self.parent_span_id.map(|p| p.to_vec()).unwrap_or_default(),
            // W3C trace flags (sampled) plus "has remote parent" bits.
            flags: 0x01
                | 0x100
                | if self.parent_span_id.is_some() {
                    0x200
                } else {
                    0
                },
            name: match grpc {
                Some(_) => rpc.to_owned(),
                None => format!("{} {}", done.method, done.route),
            },
            kind: SpanKind::Server as i32,
            start_time_unix_nano: unix_nanos(self.start),
            end_time_unix_nano: unix_nanos(end).max(unix_nanos(self.start)),
            attributes,
            status: Some(status),
            ..Span::default()
        }
    }
}

/// The export task: batches of spans by count and age.
#[derive(Debug)]
pub struct SpanExporter {
    rx: mpsc::Receiver<Span>,
    otlp: Otlp,
    batch_max: usize,
    batch_timeout: Duration,
}

impl SpanExporter {
    /// Runs until `stop`, then sends what is queued (bounded by a short
    /// deadline) and returns.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut batch = Vec::with_capacity(self.batch_max);
        loop {
            let deadline = tokio::time::sleep(self.batch_timeout);
            tokio::pin!(deadline);
            let stopping = loop {
                tokio::select! {
                    span = self.rx.recv() => match span {
                        Some(span) => {
                            batch.push(span);
                            if batch.len() >= self.batch_max {
                                break false;
                            }
                        }
                        None => break true,
                    },
                    () = &mut deadline, if !batch.is_empty() => break false,
                    () = stop.cancelled() => break true,
                }
            };
            if stopping {
                while let Ok(span) = self.rx.try_recv() {
                    batch.push(span);
                }
                let last = async {
                    for chunk in batch.chunks(self.batch_max) {
                        self.send(chunk.to_vec()).await;
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(2), last).await;
                return;
            }
            if !batch.is_empty() {
                let spans = std::mem::replace(&mut batch, Vec::with_capacity(self.batch_max));
                self.send(spans).await;
            }
        }
    }

    /// Sends one batch; a failure is counted and shown in `/status`, and
    /// the batch is dropped (spans are not buffered).
    async fn send(&self, spans: Vec<Span>) {
        let count = spans.len();
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some((*self.otlp.resource).clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(super::scope()),
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        let outcome = self
            .otlp
            .client
            .export(Signal::Traces, &request.encode_to_vec())
            .await;
        if let crate::logs::sink::delivery::client::Outcome::Retry { message, .. }
        | crate::logs::sink::delivery::client::Outcome::Rejected { message, .. } = outcome
        {
            tracing::warn!(error = %message, spans = count, "OTLP span export failed; spans dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_follows_the_parent_then_the_ratio() {
        let config = OtlpTracesConfig {
            sample_ratio: 0.5,
            ..OtlpTracesConfig::default()
        };
        let sampler = Sampler::new(&config);
        let low = "4bf92f3577b34da60000000000000001";
        let high = "4bf92f3577b34da6ffffffffffffff00";
        assert!(sampler.sample(high, Some(true)));
        assert!(!sampler.sample(low, Some(false)));
        assert!(sampler.sample(low, None));
        assert!(!sampler.sample(high, None));
        let ratio_only = Sampler::new(&OtlpTracesConfig {
            parent_based: false,
            sample_ratio: 0.0,
            ..OtlpTracesConfig::default()
        });
        assert!(!ratio_only.sample(low, Some(true)));
    }

    #[test]
    fn spans_carry_http_attributes_and_error_status() {
        let span = ServerSpan {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_span_id: Some([3; 8]),
            trace_state: "a=b".into(),
            start: SystemTime::now(),
        };
        let done = Finished {
            method: "GET",
            route: "/users/{id}",
            path: "/users/7",
            status: 503,
            protocol_version: "1.1",
            client_address: None,
            request_bytes: 0,
            response_bytes: 10,
            request_id: "r-1",
            aborted: false,
            grpc_status: None,
        };
        let out = span.finish(&done, SystemTime::now());
        assert_eq!(out.name, "GET /users/{id}");
        assert_eq!(out.kind, SpanKind::Server as i32);
        assert_eq!(out.parent_span_id, vec![3; 8]);
        assert_eq!(out.status.unwrap().code, StatusCode::Error as i32);
        assert!(out.attributes.iter().any(|kv| kv.key == "http.route"));

        // A gRPC call answered 200 with UNAVAILABLE is an error, named as RPCs are.
        let call = Finished {
            method: "POST",
            route: "/shop.v1.Orders/Create",
            status: 200,
            grpc_status: Some(14),
            ..done
        };
        let out = span.finish(&call, SystemTime::now());
        assert_eq!(out.name, "shop.v1.Orders/Create");
        assert_eq!(out.status.unwrap().code, StatusCode::Error as i32);
        let attribute = |key: &str| out.attributes.iter().find(|kv| kv.key == key).cloned();
        let text = |key| match attribute(key).and_then(|kv| kv.value?.value) {
            Some(any_value::Value::StringValue(text)) => text,
            other => panic!("{key}: {other:?}"),
        };
        assert_eq!(text("rpc.service"), "shop.v1.Orders");
        assert_eq!(text("rpc.method"), "Create");
        let code = attribute("rpc.grpc.status_code").and_then(|kv| kv.value?.value);
        assert_eq!(code, Some(any_value::Value::IntValue(14)));
        let ok = Finished {
            grpc_status: Some(5), // NOT_FOUND: the caller's, not the server's, fault
            ..call
        };
        let out = span.finish(&ok, SystemTime::now());
        assert_ne!(out.status.unwrap().code, StatusCode::Error as i32);
    }
}
