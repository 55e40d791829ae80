//! Streaming bodies that count their bytes as frames pass (nothing is
//! buffered), and the per-request record that settles metrics and the access
//! log once the response has ended — or the client went away.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::access::AccessRecord;
use super::grpc;
use super::identity::Identity;
use super::upstream::AppBody;
use super::Shared;
use crate::telemetry::cardinality::KeyBuilder;

/// The error type of the bodies the proxy sends.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request body on its way to the app, counting bytes into `count`
/// and marking `broke_off` when the client's side of it fails (the client
/// hung up or sent a malformed chunk): the pool's error is then the
/// client's doing, not the app's.
#[derive(Debug)]
pub struct CountingBody {
    inner: Incoming,
    count: Arc<AtomicU64>,
    broke_off: Arc<AtomicBool>,
}

impl CountingBody {
    /// Wraps `inner`.
    pub fn new(inner: Incoming, count: Arc<AtomicU64>, broke_off: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            count,
            broke_off,
        }
    }
}

impl Body for CountingBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.count.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
            }
            Poll::Ready(Some(Err(_))) => self.broke_off.store(true, Ordering::Relaxed),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// One request through the proxy, from arrival until its response ends.
/// Dropping it settles everything: in-flight gauge, sizes, aborts, access log.
pub struct Exchange {
    shared: Arc<Shared>,
    started: Instant,
    method: http::Method,
    /// The request path and its route, kept only when an access-log event
    /// or a span will need them (else empty: no allocation per request).
    path: String,
    route: String,
    /// The series key: method and route from the start, status once known.
    key: KeyBuilder,
    identity: Identity,
    /// Request body bytes seen so far (shared with the [`CountingBody`]).
    pub request_bytes: Arc<AtomicU64>,
    head: Option<Head>,
    response_bytes: u64,
    ended: bool,
    /// For the span: the client's address and HTTP version.
    peer: Option<(std::net::IpAddr, &'static str)>,
    /// A gRPC call's service and method (see [`Exchange::start`]).
    grpc_key: Option<KeyBuilder>,
    /// A gRPC call's `grpc-status`, once seen.
    grpc_status: Option<u16>,
    /// A gRPC-Web call's reader of the status in the response body.
    grpc_web: Option<Box<grpc::web::StatusReader>>,
}

struct Head {
    status: u16,
    seconds: f64,
}

impl Exchange {
    /// Starts the record of a request (counted in flight from here). A
    /// gRPC call (`grpc`, gRPC-Web too) keeps its `/package.Service/Method`
    /// path as its route.
    pub fn start(
        shared: Arc<Shared>,
        started: Instant,
        method: &http::Method,
        path: &str,
        grpc: Option<grpc::Call>,
        identity: Identity,
    ) -> Self {
        shared.metrics.in_flight.inc();
        let grpc_method = grpc.and_then(|_| grpc::method(path));
        let grpc_web = match (grpc, grpc_method) {
            (Some(grpc::Call::Web(encoding)), Some(_)) => {
                Some(Box::new(grpc::web::StatusReader::new(encoding)))
            }
            _ => None,
        };
        let route = match grpc_method {
            Some(_) => std::borrow::Cow::Borrowed(path),
            None => shared.routes.normalize(path),
        };
        // Service and method, the call's `grpc_server_handled_total` series
        // once its status is known.
        let grpc_key = grpc_method.map(|(service, method)| {
            let mut key = KeyBuilder::with_capacity(service.len() + method.len() + 24);
            key.push(service);
            key.push(method);
            key
        });
        let method_label = super::metrics::method_label(method);
        // Method, route and status with their separators, allocated once.
        let mut key = KeyBuilder::with_capacity(method_label.len() + route.len() + 8);
        key.push(method_label);
        key.push(&route);
        let detailed = shared.access.is_some() || shared.spans.is_some();
        let (path, route) = match detailed {
            true => (path.to_owned(), route.into_owned()),
            false => (String::new(), String::new()),
        };
        Self {
            method: method.clone(),
            path,
            route,
            key,
            identity,
            request_bytes: Arc::default(),
            head: None,
            response_bytes: 0,
            ended: false,
            peer: None,
            grpc_key,
            grpc_status: None,
            grpc_web,
            started,
            shared,
        }
    }

    /// Whether the request is a gRPC call (with a `/Service/Method` path).
    pub fn is_grpc(&self) -> bool {
        self.grpc_key.is_some()
    }

    /// Takes a gRPC call's status from `headers` (trailers, or the head of
    /// a trailers-only response) when they carry one.
    pub fn read_grpc_status(&mut self, headers: &http::HeaderMap) {
        if self.is_grpc() {
            if let Some(code) = grpc::status(headers) {
                self.grpc_status = Some(code);
            }
        }
    }

    /// Reads a piece of a gRPC-Web call's response body for its status
    /// (nothing for other requests, or once a status is known).
    fn read_grpc_web(&mut self, data: &[u8]) {
        if let Some(reader) = &mut self.grpc_web {
            if self.grpc_status.is_none() {
                self.grpc_status = reader.feed(data);
            }
        }
    }

    /// The encoding of a gRPC-Web call (`None` for any other request).
    pub fn grpc_web(&self) -> Option<grpc::web::Encoding> {
        self.grpc_web.as_ref().map(|reader| reader.encoding())
    }

    /// Sets a gRPC call's status (the proxy's own answer).
    pub fn set_grpc_status(&mut self, code: u16) {
        self.grpc_status = Some(code);
    }

    /// Whether the request is sampled and gets a span.
    pub fn traced(&self) -> bool {
        self.identity.span.is_some()
    }

    /// Records the client's address and HTTP version (for the span).
    pub fn client(&mut self, peer: std::net::SocketAddr, version: http::Version) {
        let version = match version {
            http::Version::HTTP_09 => "0.9",
            http::Version::HTTP_10 => "1.0",
            http::Version::HTTP_2 => "2",
            http::Version::HTTP_3 => "3",
            _ => "1.1",
        };
        self.peer = Some((peer.ip(), version));
    }

    /// The response head is ready: counts the request and observes its
    /// duration (with the trace ID as exemplar).
    pub fn head(&mut self, status: u16) {
        let seconds = self.started.elapsed().as_secs_f64();
        self.key.push_display(status);
        self.shared
            .metrics
            .response_head(self.key.as_str(), seconds, &self.identity.trace_id);
        self.head = Some(Head { status, seconds });
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let metrics = &self.shared.metrics;
        metrics.in_flight.dec();
        let aborted = !self.ended;
        if aborted {
            metrics.client_aborts.inc();
        }
        let Some(head) = &self.head else {
            return; // the client left before the app answered
        };
        let request_bytes = self.request_bytes.load(Ordering::Relaxed);
        metrics.sizes(self.key.as_str(), request_bytes, self.response_bytes);
        let (status, seconds) = (head.status, head.seconds);
        let grpc_status = self.grpc_key.as_mut().map(|key| {
            // No status seen: the client went away first, or the response
            // was not gRPC's (its HTTP status says what a client makes of it).
            let code = match self.grpc_status {
                Some(code) => code,
                None if aborted => grpc::CANCELED,
                None => grpc::status_of_http(status),
            };
            key.push(grpc::code_name(code));
            metrics.grpc_handled(key.as_str());
            code
        });
        if let (Some(span), Some(spans)) = (&self.identity.span, &self.shared.spans) {
            let done = crate::otlp::traces::Finished {
                method: self.method.as_str(),
                route: &self.route,
                path: &self.path,
                status,
                protocol_version: self.peer.map_or("1.1", |(_, v)| v),
                client_address: self.peer.map(|(ip, _)| ip),
                request_bytes,
                response_bytes: self.response_bytes,
                request_id: &self.identity.request_id,
                aborted,
                grpc_status,
            };
            spans.emit(span.finish(&done, std::time::SystemTime::now()));
        }
        if let Some(access) = &self.shared.access {
            access.emit(&AccessRecord {
                ended_at: std::time::SystemTime::now(),
                method: &self.method,
                route: &self.route,
                path: &self.path,
                status,
                duration_seconds: seconds,
                request_bytes,
                response_bytes: self.response_bytes,
                correlation_id: &self.identity.request_id,
                correlation_id_made: self.identity.request_id_made,
                trace_id: &self.identity.trace_id,
                grpc_status,
                aborted,
            });
        }
    }
}

/// Where a response body comes from.
pub enum ResponseBody {
    /// The pinned app connection (bodiless HTTP/1 requests).
    Pinned(AppBody),
    /// hyper's pool (requests with a body, HTTP/2 clients, upgrades).
    Pooled(Incoming),
    /// The proxy's own error page.
    Own(Full<Bytes>),
}

impl ResponseBody {
    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self {
            Self::Pinned(body) => Pin::new(body).poll_frame(cx).map_err(BoxError::from),
            Self::Pooled(body) => Pin::new(body).poll_frame(cx).map_err(BoxError::from),
            Self::Own(body) => Pin::new(body).poll_frame(cx).map_err(|e| match e {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Pinned(body) => body.is_end_stream(),
            Self::Pooled(body) => body.is_end_stream(),
            Self::Own(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Pinned(body) => body.size_hint(),
            Self::Pooled(body) => body.size_hint(),
            Self::Own(body) => body.size_hint(),
        }
    }
}

/// The response body on its way to the client: the app's (streamed) or the
/// proxy's own error page, counted; its [`Exchange`] ends with it.
pub struct Measured {
    inner: ResponseBody,
    exchange: Exchange,
}

impl Measured {
    /// Wraps the body of `exchange`'s response.
    pub fn new(inner: ResponseBody, mut exchange: Exchange) -> Self {
        if inner.is_end_stream() {
            exchange.ended = true;
        }
        Self { inner, exchange }
    }
}

impl Body for Measured {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = this.inner.poll_inner(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.exchange.response_bytes += data.len() as u64;
                    this.exchange.read_grpc_web(data);
                } else if let Some(trailers) = frame.trailers_ref() {
                    this.exchange.read_grpc_status(trailers);
                }
                if this.inner.is_end_stream() {
                    this.exchange.ended = true;
                }
            }
            Poll::Ready(None) => this.exchange.ended = true,
            Poll::Ready(Some(Err(_))) => {
                // The app broke off mid-body; the client connection is cut.
                this.exchange.ended = true;
                this.exchange.shared.metrics.upstream_error("reset");
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
