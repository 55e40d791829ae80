//! The HTTP intake source: `POST /ingest` with NDJSON (one JSON object per
//! line) or a JSON array of objects (default `127.0.0.1:4793`). A request
//! is answered `200 {"accepted": N}` only once every one of its events is
//! acknowledged by every sink (so a client that got 200 knows they are
//! safe); `503` with `Retry-After` when the pipeline stays full or the events
//! could not be made safe (try again); `413` for a body over
//! `max_body_bytes`, `431` for a request head over `max_header_bytes`,
//! `400` for a malformed JSON array, `404`/`405` otherwise. 413s and 431s
//! are counted in `sidewatch_log_intake_rejected_total{source,reason}`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::tcp::events;
use super::{Source, SourceContext};
use crate::logs::ack::AckToken;
use crate::logs::event::SourceInfo;
use crate::logs::tail::{Line, LineSplitter};

/// Longest wait for room in the pipeline before answering 503.
const ENQUEUE_WAIT: Duration = Duration::from_secs(1);
/// What `Retry-After` says on a 503.
const RETRY_AFTER: &str = "1";
/// Longest wait for a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `POST /ingest`.
#[derive(Debug)]
pub struct HttpSource {
    listener: std::net::TcpListener,
    info: Arc<SourceInfo>,
    limits: HttpLimits,
    rejected: Rejected,
}

/// The size limits of an HTTP source.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Longer lines are cut and flagged.
    pub max_line_bytes: usize,
    /// Larger bodies are answered `413`.
    pub max_body_bytes: usize,
    /// Larger request heads are answered `431` (at least 8192).
    pub max_header_bytes: usize,
    /// Connections served at once.
    pub max_connections: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
struct SourceReason {
    source: String,
    reason: &'static str,
}

/// `sidewatch_log_intake_rejected_total{source,reason}`, registered with the
/// pipeline's metrics (series appear once an HTTP source is configured).
#[derive(Debug, Clone)]
pub struct RejectFamily(Family<SourceReason, Counter>);

impl RejectFamily {
    /// Registers the family.
    pub fn register(registry: &mut prometheus_client::registry::Registry) -> Self {
        let family = Family::default();
        registry.register(
            "sidewatch_log_intake_rejected",
            "Requests an HTTP log intake refused for their size, by source and reason (body_too_large: 413, header_too_large: 431)",
            family.clone(),
        );
        Self(family)
    }

    /// The counters of source `name`.
    pub fn source(&self, name: &str) -> Rejected {
        let get = |reason| {
            self.0.get_or_create_owned(&SourceReason {
                source: name.to_owned(),
                reason,
            })
        };
        Rejected {
            body: get("body_too_large"),
            header: get("header_too_large"),
        }
    }
}

/// One HTTP source's refusal counters.
#[derive(Debug, Clone, Default)]
pub struct Rejected {
    body: Counter,
    header: Counter,
}

impl HttpSource {
    /// Binds `addr` now (so a taken port is a start-up error).
    pub fn bind(
        addr: SocketAddr,
        info: Arc<SourceInfo>,
        limits: HttpLimits,
        rejected: Rejected,
    ) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(Self {
            listener,
            info,
            limits,
            rejected,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// What every request handler shares.
struct Intake {
    info: Arc<SourceInfo>,
    ctx: SourceContext,
    max_line_bytes: usize,
    max_body_bytes: usize,
    requests: AtomicU64,
    rejected: Rejected,
}

impl Source for HttpSource {
    async fn run(self, ctx: SourceContext) {
        let listener = match TcpListener::from_std(self.listener) {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(source = %self.info.name, %error, "cannot listen");
                return;
            }
        };
        let stop = ctx.stop.clone();
        let abort = ctx.abort.clone();
        let intake = Arc::new(Intake {
            info: Arc::clone(&self.info),
            ctx,
            max_line_bytes: self.limits.max_line_bytes,
            max_body_bytes: self.limits.max_body_bytes,
            requests: AtomicU64::new(0),
            rejected: self.rejected.clone(),
        });
        let slots = Arc::new(Semaphore::new(self.limits.max_connections));
        let graceful = GracefulShutdown::new();
        let connections = tokio_util::task::TaskTracker::new();
        loop {
            let (stream, peer) = tokio::select! {
                () = stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(source = %self.info.name, %error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                tracing::warn!(source = %self.info.name, %peer, "too many connections; closing");
                continue;
            };
            let intake = Arc::clone(&intake);
            let service = service_fn(move |request| {
                let intake = Arc::clone(&intake);
                async move { Ok::<_, Infallible>(handle(&intake, request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(self.limits.max_header_bytes)
                .serve_connection(TokioIo::new(stream), service);
            let connection = graceful.watch(connection);
            let header_rejected = self.rejected.header.clone();
            connections.spawn(async move {
                if let Err(error) = connection.await {
                    if error.is_parse_too_large() {
                        header_rejected.inc();
                    }
                }
                drop(slot);
            });
        }
        drop(listener);
        // Requests in progress get their answer (their events drain through
        // the pipeline) unless the drain is aborted.
        tokio::select! {
            () = graceful.shutdown() => {}
            () = abort.cancelled() => {}
        }
        connections.close();
        tokio::select! {
            () = connections.wait() => {}
            () = abort.cancelled() => {}
        }
    }
}

fn respond(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static(RETRY_AFTER),
        );
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
    }
    response
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    respond(status, serde_json::json!({ "error": message }).to_string())
}

/// The lines of a body: NDJSON, or the elements of a JSON array (each
/// written back as one line, so the parse stage treats both alike).
fn lines(body: &[u8], max_line_bytes: usize) -> Result<Vec<Line>, String> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    let mut out = Vec::new();
    if start.is_some_and(|i| body[i] == b'[') {
        let items: Vec<serde_json::Value> =
            serde_json::from_slice(body).map_err(|e| format!("not a JSON array: {e}"))?;
        let mut splitter = LineSplitter::new(max_line_bytes, 0);
        for item in items {
            let mut line = serde_json::to_vec(&item).map_err(|e| e.to_string())?;
            line.push(b'\n');
            splitter.feed(&line, &mut out);
        }
    } else {
        let mut splitter = LineSplitter::new(max_line_bytes, 0);
        splitter.feed(body, &mut out);
        out.extend(splitter.finish());
    }
    Ok(out)
}

async fn handle(intake: &Intake, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.uri().path() != "/ingest" {
        return error(StatusCode::NOT_FOUND, "only /ingest");
    }
    if request.method() != Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, "POST only");
    }
    if intake.ctx.stop.is_cancelled() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    let body = match Limited::new(request.into_body(), intake.max_body_bytes)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            intake.rejected.body.inc();
            return error(StatusCode::PAYLOAD_TOO_LARGE, "body over max_body_bytes");
        }
        Err(_) => return error(StatusCode::BAD_REQUEST, "body could not be read"),
    };
    intake.info.metrics.bytes.inc_by(body.len() as u64);
    let lines = match lines(&body, intake.max_line_bytes) {
        Ok(lines) => lines,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let count = lines.len();
    if count == 0 {
        return respond(StatusCode::OK, r#"{"accepted":0}"#.into());
    }
    let (acks_tx, mut acks) = tokio::sync::mpsc::unbounded_channel();
    let id = intake.requests.fetch_add(1, Ordering::Relaxed);
    let token = AckToken::new(id, 0, count as u64, acks_tx);
    let batch = events(&intake.info, lines, Some(&token));
    drop(token);
    match tokio::time::timeout(ENQUEUE_WAIT, intake.ctx.out.send(batch)).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return error(StatusCode::SERVICE_UNAVAILABLE, "pipeline closed"),
        Err(_) => return error(StatusCode::SERVICE_UNAVAILABLE, "pipeline full"),
    }
    let acked = tokio::select! {
        acked = acks.recv() => acked,
        () = intake.ctx.abort.cancelled() => None,
    };
    match acked {
        Some(acked) if acked.delivered => {
            respond(StatusCode::OK, format!(r#"{{"accepted":{count}}}"#))
        }
        _ => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "events could not be made safe; send them again",
        ),
    }
}
