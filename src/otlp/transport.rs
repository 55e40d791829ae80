//! The one OTLP transport every signal uses: HTTP/protobuf (`POST
//! /v1/{signal}`) or gRPC unary calls, both over one reqwest client (TLS
//! trust, extra headers and timeouts as every outgoing client of sidewatch).
//!
//! gRPC is framed here (5-byte message prefix, `grpc-encoding: gzip`,
//! `grpc-status` from the trailers or a trailers-only answer) rather than
//! through tonic: that is all a unary export needs, and the binary stays
//! small. The tests check it against a tonic server.
//!
//! Every answer is classified like the network log sinks' ([`Outcome`]),
//! counted (`sidewatch_otlp_exports_total`, `..._export_duration_seconds`)
//! and shown in `/status`; a partial success is accepted (never retried,
//! as the OTLP spec says) and its rejected items are counted.

use std::io::Read as _;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::BodyExt as _;
use prost::Message as _;
use url::Url;

use super::{OtlpMetrics, Signal};
use crate::admin::status::ExportResult;
use crate::admin::StatusBoard;
use crate::config::otlp::{parse_endpoint, OtlpCompression, OtlpConfig, Protocol};
use crate::logs::sink::delivery::client::{self, Encoded, Outcome, Transport};

/// The shape shared by the three `Export*ServiceResponse` messages:
/// field 1 is the partial success, whose field 1 is the rejected count
/// (`rejected_log_records`, `rejected_data_points`, `rejected_spans`) and
/// field 2 the error message.
#[derive(Clone, PartialEq, prost::Message)]
struct ExportResponse {
    #[prost(message, optional, tag = "1")]
    partial_success: Option<PartialSuccess>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PartialSuccess {
    #[prost(int64, tag = "1")]
    rejected: i64,
    #[prost(string, tag = "2")]
    error_message: String,
}

/// Sends OTLP export requests.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    protocol: Protocol,
    base: Url,
    /// `otlp.{metrics,logs,traces}.endpoint`, used as they are.
    signal_endpoints: [Option<Url>; 3],
    headers: HeaderMap,
    gzip: bool,
    timeout: Duration,
    metrics: OtlpMetrics,
    status: StatusBoard,
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("`{key}`: {message}")]
pub struct BuildError {
    /// The config key concerned.
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

impl Client {
    /// Builds the client from `[otlp]`.
    pub fn build(
        config: &OtlpConfig,
        metrics: OtlpMetrics,
        status: StatusBoard,
    ) -> Result<Self, BuildError> {
        let err = |key, message| BuildError { key, message };
        let base =
            parse_endpoint(&config.effective_endpoint()).map_err(|e| err("otlp.endpoint", e))?;
        let mut signal_endpoints = [None, None, None];
        for (slot, (key, endpoint)) in signal_endpoints.iter_mut().zip(config.signal_endpoints()) {
            *slot = endpoint
                .map(parse_endpoint)
                .transpose()
                .map_err(|e| err(key, e))?;
        }
        let protocol = config.effective_protocol();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("sidewatch/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .no_proxy()
            .no_gzip()
            .redirect(reqwest::redirect::Policy::none())
            .danger_accept_invalid_certs(config.insecure_skip_verify);
        let cleartext = std::iter::once(&base)
            .chain(signal_endpoints.iter().flatten())
            .any(|url| url.scheme() == "http");
        if protocol == Protocol::Grpc && cleartext {
            // Cleartext gRPC is HTTP/2 with prior knowledge (h2c).
            builder = builder.http2_prior_knowledge();
        }
        if let Some(path) = &config.ca_file {
            builder = crate::http_client::with_ca_file(builder, path)
                .map_err(|e| err("otlp.ca_file", e))?;
        }
        let http = builder
            .build()
            .map_err(|e| err("otlp", format!("cannot build HTTP client: {e}")))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|e| err("otlp.headers", e.to_string()))?;
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_| err("otlp.headers", format!("{name}: not a valid header value")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(Self {
            http,
            protocol,
            base,
            signal_endpoints,
            headers,
            gzip: config.compression == OtlpCompression::Gzip,
            timeout: config.timeout,
            metrics,
            status,
        })
    }

    /// The exporter's metric handles.
    pub fn metrics(&self) -> &OtlpMetrics {
        &self.metrics
    }

    /// Where `signal` is sent.
    pub fn url(&self, signal: Signal) -> Url {
        let own = match signal {
            Signal::Metrics => &self.signal_endpoints[0],
            Signal::Logs => &self.signal_endpoints[1],
            Signal::Traces => &self.signal_endpoints[2],
        };
        if let Some(url) = own {
            let mut url = url.clone();
            if self.protocol == Protocol::Grpc {
                url.set_path(signal.grpc_path());
            }
            return url;
        }
        let mut url = self.base.clone();
        match self.protocol {
            Protocol::HttpProtobuf => {
                let path = format!(
                    "{}/{}",
                    url.path().trim_end_matches('/'),
                    signal.http_path()
                );
                url.set_path(&path);
            }
            Protocol::Grpc => url.set_path(signal.grpc_path()),
        }
        url
    }

    /// Adds `signal` to `/status` (the endpoint shown with credentials masked).
    pub fn register(&self, signal: Signal) {
        self.status
            .register_otlp(signal.as_str(), crate::config::mask_url(&self.url(signal)));
    }

    /// Sends one export request holding the protobuf `message`, records it,
    /// and classifies the answer.
    pub async fn export(&self, signal: Signal, message: &[u8]) -> Outcome {
        let started = Instant::now();
        let (outcome, accepted) = match self.protocol {
            Protocol::HttpProtobuf => self.send_http(signal, message).await,
            Protocol::Grpc => self.send_grpc(signal, message).await,
        };
        self.metrics
            .duration(signal)
            .observe(started.elapsed().as_secs_f64());
        let label = match (&outcome, accepted) {
            (Outcome::Delivered, Some(partial))
                if partial.rejected > 0 || !partial.error_message.is_empty() =>
            {
                let rejected = u64::try_from(partial.rejected).unwrap_or_default();
                self.metrics.rejected(signal).inc_by(rejected);
                tracing::warn!(signal = signal.as_str(), rejected, error = %partial.error_message, "OTLP receiver accepted an export in part");
                self.status.otlp_export(
                    signal.as_str(),
                    ExportResult::Accepted {
                        rejected,
                        message: partial.error_message,
                    },
                );
                "partial"
            }
            (Outcome::Delivered, _) => {
                self.status.otlp_export(
                    signal.as_str(),
                    ExportResult::Accepted {
                        rejected: 0,
                        message: String::new(),
                    },
                );
                "success"
            }
            (Outcome::Retry { message, .. }, _) => {
                self.status
                    .otlp_export(signal.as_str(), ExportResult::Failed(message.clone()));
                "failed"
            }
            (Outcome::Rejected { message, .. }, _) => {
                self.status
                    .otlp_export(signal.as_str(), ExportResult::Failed(message.clone()));
                "rejected"
            }
        };
        self.metrics.exports(signal, label).inc();
        outcome
    }

    async fn send_http(&self, signal: Signal, message: &[u8]) -> (Outcome, Option<PartialSuccess>) {
        let mut request = self
            .http
            .post(self.url(signal))
            .headers(self.headers.clone())
            .header(http::header::CONTENT_TYPE, "application/x-protobuf");
        request = if self.gzip {
            request
                .header(http::header::CONTENT_ENCODING, "gzip")
                .body(crate::logs::sink::loki::gzip(message))
        } else {
            request.body(message.to_vec())
        };
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return (client::transport_error(&error), None),
        };
        let status = response.status();
        if status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            // An empty or non-protobuf answer (some proxies) is a full success.
            let partial = ExportResponse::decode(body)
                .ok()
                .and_then(|r| r.partial_success);
            return (Outcome::Delivered, partial);
        }
        let after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| client::parse_retry_after(v, std::time::SystemTime::now()));
        let message = client::answer(response).await;
        (client::classify(status, after, message), None)
    }

    async fn send_grpc(&self, signal: Signal, message: &[u8]) -> (Outcome, Option<PartialSuccess>) {
        let (flag, payload) = if self.gzip {
            (1u8, crate::logs::sink::loki::gzip(message))
        } else {
            (0u8, message.to_vec())
        };
        let mut body = Vec::with_capacity(payload.len() + 5);
        body.push(flag);
        body.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        body.extend_from_slice(&payload);
        let mut request = self
            .http
            .post(self.url(signal))
            .version(http::Version::HTTP_2)
            .headers(self.headers.clone())
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(http::header::TE, "trailers")
            .header(
                "grpc-timeout",
                format!("{}m", self.timeout.as_millis().max(1)),
            )
            .body(body);
        if self.gzip {
            request = request.header("grpc-encoding", "gzip");
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return (client::transport_error(&error), None),
        };
        let status = response.status();
        if status != http::StatusCode::OK {
            let message = client::answer(response).await;
            let outcome = client::classify(status, None, format!("not a gRPC answer: {message}"));
            // A gRPC endpoint never answers with another HTTP status for the
            // content: whatever it is, splitting cannot fix it.
            let outcome = match outcome {
                Outcome::Rejected { message, .. } => Outcome::Retry {
                    reason: "client_error",
                    after: None,
                    message,
                },
                other => other,
            };
            return (outcome, None);
        }
        let response: http::Response<reqwest::Body> = response.into();
        let (parts, body) = response.into_parts();
        let collected = match body.collect().await {
            Ok(collected) => collected,
            Err(error) => {
                return (
                    Outcome::Retry {
                        reason: "unavailable",
                        after: None,
                        message: format!("gRPC answer cut off: {error}"),
                    },
                    None,
                )
            }
        };
        let trailers = collected.trailers().cloned().unwrap_or_default();
        let data = collected.to_bytes();
        // A trailers-only answer carries the status in the headers.
        let code = grpc_header(&trailers, "grpc-status")
            .or_else(|| grpc_header(&parts.headers, "grpc-status"));
        let message = grpc_header(&trailers, "grpc-message")
            .or_else(|| grpc_header(&parts.headers, "grpc-message"))
            .map(|m| {
                percent_encoding::percent_decode_str(&m)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .unwrap_or_default();
        match code.as_deref().map(str::parse::<u32>) {
            Some(Ok(0)) => {
                let partial = decode_grpc_message(data)
                    .and_then(|m| ExportResponse::decode(m).ok())
                    .and_then(|r| r.partial_success);
                (Outcome::Delivered, partial)
            }
            Some(Ok(code)) => (grpc_outcome(code, message), None),
            _ => (
                Outcome::Retry {
                    reason: "server_error",
                    after: None,
                    message: "gRPC answer without grpc-status".into(),
                },
                None,
            ),
        }
    }
}

fn grpc_header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The message of a unary gRPC answer (the first length-prefixed frame).
fn decode_grpc_message(mut data: Bytes) -> Option<Bytes> {
    if data.len() < 5 {
        return None;
    }
    let compressed = data.get_u8() == 1;
    let len = data.get_u32() as usize;
    if data.len() < len {
        return None;
    }
    let message = data.split_to(len);
    if !compressed {
        return Some(message);
    }
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&message[..])
        .read_to_end(&mut plain)
        .ok()?;
    Some(Bytes::from(plain))
}

/// Sorts a gRPC status as the OTLP spec does: CANCELLED, DEADLINE_EXCEEDED,
/// RESOURCE_EXHAUSTED, ABORTED, OUT_OF_RANGE, UNAVAILABLE and DATA_LOSS are
/// retried; so are UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND and
/// UNIMPLEMENTED (configuration trouble that splitting cannot fix, as 401/403/404
/// for HTTP); the rest (INVALID_ARGUMENT, ...) names the content.
fn grpc_outcome(code: u32, message: String) -> Outcome {
    let message = format!("gRPC status {code} ({}): {message}", grpc_code_name(code));
    let reason = match code {
        8 => "throttled",
        1 | 4 => "timeout",
        10 | 11 | 14 | 15 => "server_error",
        5 | 7 | 12 | 16 => "client_error",
        _ => {
            return Outcome::Rejected {
                status: 400,
                message,
            }
        }
    };
    Outcome::Retry {
        reason,
        after: None,
        message,
    }
}

fn grpc_code_name(code: u32) -> &'static str {
    match code {
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "unknown code",
    }
}

/// The `otlp` log sink's end of the delivery machinery: each encoded batch
/// (an `ExportLogsServiceRequest`, uncompressed) goes out through the client.
#[derive(Debug, Clone)]
pub struct LogsTransport(pub std::sync::Arc<Client>);

impl Transport for LogsTransport {
    fn send<'a>(
        &'a self,
        body: &'a Encoded,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>> {
        Box::pin(self.0.export(Signal::Logs, &body.body))
    }

    fn describe(&self) -> String {
        crate::config::mask_url(&self.0.url(Signal::Logs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(endpoint: &str, protocol: Protocol) -> Client {
        let config = OtlpConfig {
            endpoint: Some(endpoint.into()),
            protocol: Some(protocol),
            ..OtlpConfig::default()
        };
        Client::build(&config, OtlpMetrics::detached(), StatusBoard::default()).unwrap()
    }

    #[test]
    fn signal_urls_follow_the_otlp_exporter_spec() {
        let http = client("http://collector:4318", Protocol::HttpProtobuf);
        assert_eq!(
            http.url(Signal::Metrics).as_str(),
            "http://collector:4318/v1/metrics"
        );
        let prefixed = client("https://gw.example/otlp/", Protocol::HttpProtobuf);
        assert_eq!(
            prefixed.url(Signal::Logs).as_str(),
            "https://gw.example/otlp/v1/logs"
        );
        let grpc = client("http://collector:4317/ignored", Protocol::Grpc);
        assert_eq!(
            grpc.url(Signal::Traces).as_str(),
            "http://collector:4317/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        );
    }

    #[test]
    fn a_signal_s_own_endpoint_is_used_as_it_is() {
        let mut config = OtlpConfig {
            endpoint: Some("http://collector:4318".into()),
            ..OtlpConfig::default()
        };
        config.traces.endpoint = Some("https://traces.example/ingest".into());
        let build = |config: &OtlpConfig| {
            Client::build(config, OtlpMetrics::detached(), StatusBoard::default()).unwrap()
        };
        let http = build(&config);
        assert_eq!(
            http.url(Signal::Traces).as_str(),
            "https://traces.example/ingest"
        );
        assert_eq!(
            http.url(Signal::Logs).as_str(),
            "http://collector:4318/v1/logs"
        );
        config.protocol = Some(Protocol::Grpc);
        let grpc = build(&config);
        assert_eq!(
            grpc.url(Signal::Traces).as_str(),
            "https://traces.example/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        );
    }

    #[test]
    fn grpc_statuses_are_sorted_as_the_spec_says() {
        assert!(matches!(
            grpc_outcome(14, String::new()),
            Outcome::Retry {
                reason: "server_error",
                ..
            }
        ));
        assert!(matches!(
            grpc_outcome(16, String::new()),
            Outcome::Retry {
                reason: "client_error",
                ..
            }
        ));
        assert!(matches!(
            grpc_outcome(3, String::new()),
            Outcome::Rejected { .. }
        ));
    }

    #[test]
    fn grpc_frames_are_read_plain_or_gzipped() {
        let message = ExportResponse {
            partial_success: Some(PartialSuccess {
                rejected: 2,
                error_message: "bad".into(),
            }),
        }
        .encode_to_vec();
        for (flag, payload) in [
            (0u8, message.clone()),
            (1, crate::logs::sink::loki::gzip(&message)),
        ] {
            let mut frame = vec![flag];
            frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            frame.extend_from_slice(&payload);
            let decoded = decode_grpc_message(Bytes::from(frame)).unwrap();
            let response = ExportResponse::decode(decoded).unwrap();
            assert_eq!(response.partial_success.unwrap().rejected, 2);
        }
        assert!(decode_grpc_message(Bytes::from_static(&[0, 0, 0, 0, 9, 1])).is_none());
    }
}
