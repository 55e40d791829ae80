//! Forwarding one request: identity headers, hop-by-hop headers, the
//! upstream call with its timeout, error answers (502/504), and upgrades
//! (WebSocket) spliced through once both sides have switched protocols.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::Authority;
use http::{request, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;

use super::body::{CountingBody, Exchange, Measured, ResponseBody};
use super::grpc::{self, GRPC_MESSAGE, GRPC_STATUS};
use super::timer::LoopTimer;
use super::upstream::{LoopPool, Pinned, UpstreamError};
use super::{identity, Shared};
use crate::config::proxy::AppHttp2;

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded except for an
/// upgrade (names parsed once: a lookup by `&str` parses it every time).
/// `Trailer` is end to end (RFC 9110 §6.6.2): it stays, so trailers reach
/// clients that accept them (`TE: trailers`).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::UPGRADE,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// The host the client asked for, when `:authority` to the app names the
/// app instead (see [`ready_head`]).
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// A request body of at most this many bytes, with a `Content-Length` and
/// no `Expect`, is read whole and sent with its head on the client
/// connection's own app connection (nginx buffers bodies up to the same
/// size by default); larger and chunked bodies stream through the pool.
const PINNED_BODY_MAX: u64 = 16 * 1024;

/// What a request uses of the event loop serving it.
#[derive(Debug, Clone)]
pub struct OnLoop {
    /// The loop's timer (the upstream response timeout).
    pub timer: LoopTimer,
    /// The loop's keep-alive pool to the app.
    pub pool: Arc<LoopPool>,
}

/// The client end of a connection, as each of its requests needs it.
#[derive(Debug, Clone)]
pub struct Client {
    /// Its address.
    pub addr: SocketAddr,
    /// Its IP as an `X-Forwarded-For` value, made once per connection
    /// (a clone shares it: no formatting and no allocation per request).
    forwarded_for: HeaderValue,
}

impl Client {
    /// The client at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        let forwarded_for = HeaderValue::from_str(&addr.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        Self {
            addr,
            forwarded_for,
        }
    }
}

/// Handles one request from `client`; `pinned` is the client connection's
/// own app connection (used for its plain HTTP/1 requests).
pub async fn handle(
    shared: Arc<Shared>,
    client: Client,
    pinned: Arc<Pinned>,
    on_loop: OnLoop,
    mut request: Request<Incoming>,
) -> Result<Response<Measured>, Infallible> {
    let started = Instant::now();
    let sampler = shared.spans.as_ref().map(|spans| &spans.sampler);
    let identity = identity::ensure_traced(request.headers_mut(), sampler);
    let http1 = request.version() <= Version::HTTP_11;
    let call = grpc::Call::of(request.headers(), !http1);
    let grpc_call = call == Some(grpc::Call::Grpc);
    let mut exchange = Exchange::start(
        shared.clone(),
        started,
        request.method(),
        request.uri().path(),
        call,
        identity,
    );
    if exchange.traced() {
        exchange.client(client.addr, request.version());
    }
    let upgrade = is_upgrade(request.headers());
    let app_http2 = !upgrade
        && match shared.app_http2 {
            AppHttp2::Grpc => grpc_call,
            AppHttp2::Always => true,
            AppHttp2::Never => false,
        };
    let client_side = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    // HTTP/1 requests without a body, or with a small one, take the client
    // connection's own app connection.
    let small_body = body
        .size_hint()
        .exact()
        .is_some_and(|length| length <= PINNED_BODY_MAX)
        && !parts.headers.contains_key(header::EXPECT);
    let pinned_path = http1 && !upgrade && !app_http2 && (body.is_end_stream() || small_body);
    let uri = if pinned_path {
        // Sent as written: the request line must be in origin form.
        origin_form(&parts.uri)
    } else {
        // The pool finds the connection by the URI's authority, sends it
        // over HTTP/2 as `:authority` (and origin form over HTTP/1.1):
        // the host the client asked for, within the loop's bound.
        let host = app_http2
            .then(|| asked_host(&parts))
            .flatten()
            .filter(|host| on_loop.pool.admits(host));
        absolute_uri(host.as_ref().unwrap_or(&shared.upstream), &parts.uri)
    };
    ready_head(&mut parts, uri, app_http2, upgrade, &client);
    let call = async {
        if pinned_path {
            let whole = read_whole(body, &exchange.request_bytes).await?;
            let response = pinned
                .send(&shared.upstream, shared.connect_timeout, &parts, &whole)
                .await?;
            Ok(response.map(ResponseBody::Pinned))
        } else {
            let broke_off = Arc::new(AtomicBool::new(false));
            let body = CountingBody::new(body, exchange.request_bytes.clone(), broke_off.clone());
            let response = on_loop
                .pool
                .client(shared.pool_settings, &shared.upstream, app_http2)
                .request(Request::from_parts(parts, body))
                .await
                .map_err(|error| {
                    if broke_off.load(Ordering::Relaxed) {
                        UpstreamError::ClientBody(error.into())
                    } else {
                        UpstreamError::Pool(error)
                    }
                })?;
            Ok(response.map(ResponseBody::Pooled))
        }
    };
    let mut answer = match on_loop
        .timer
        .timeout_at(started + shared.response_timeout, call)
        .await
    {
        Some(Ok(response)) => response,
        Some(Err(error)) => {
            let error: UpstreamError = error;
            let reason = error.reason();
            shared.metrics.upstream_error(reason);
            tracing::debug!(%error, reason, "proxy: upstream request failed");
            let status = match error {
                UpstreamError::ClientBody(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::BAD_GATEWAY,
            };
            return Ok(error_response(status, exchange));
        }
        None => {
            shared.metrics.upstream_error("timeout");
            return Ok(error_response(StatusCode::GATEWAY_TIMEOUT, exchange));
        }
    };
    exchange.head(answer.status().as_u16());
    exchange.read_grpc_status(answer.headers()); // a trailers-only response
    match client_side {
        Some(client_side) if answer.status() == StatusCode::SWITCHING_PROTOCOLS => {
            let upstream_side = hyper::upgrade::on(&mut answer);
            shared.tunnels.spawn(tunnel(client_side, upstream_side));
        }
        _ => strip_hop_by_hop(answer.headers_mut()),
    }
    Ok(answer.map(|body| Measured::new(body, exchange)))
}

/// Readies a request head for the app: `uri`, the version it goes over
/// (HTTP/2 when `app_http2`), `Host` (or `:authority`), hop-by-hop headers
/// (kept for an `upgrade`), `x-forwarded-for`, and over HTTP/2
/// `x-forwarded-host`.
fn ready_head(
    parts: &mut request::Parts,
    uri: Uri,
    app_http2: bool,
    upgrade: bool,
    client: &Client,
) {
    let authority = std::mem::replace(&mut parts.uri, uri).authority().cloned();
    if app_http2 {
        parts.version = Version::HTTP_2;
        // The URI's authority is sent as `:authority`; a `Host` that
        // differs from it is not allowed (RFC 9113 §8.3.1). When it names
        // the app instead of the host the client asked for (past the
        // loop's bound), that host goes in `x-forwarded-host`, as proxies
        // that rewrite it send it, unless a proxy before sidewatch set one.
        let host = parts
            .headers
            .remove(header::HOST)
            .or_else(|| authority.and_then(|a| HeaderValue::from_str(a.as_str()).ok()));
        let sent = parts.uri.authority().map(Authority::as_str);
        if let Some(host) = host.filter(|host| host.to_str().ok() != sent) {
            if !parts.headers.contains_key(&X_FORWARDED_HOST) {
                parts.headers.insert(X_FORWARDED_HOST, host);
            }
        }
    } else {
        parts.version = Version::HTTP_11;
        if !parts.headers.contains_key(header::HOST) {
            if let Some(value) = authority.and_then(|a| HeaderValue::from_str(a.as_str()).ok()) {
                parts.headers.insert(header::HOST, value);
            }
        }
    }
    let trailers = app_http2 && accepts_trailers(&parts.headers);
    if !upgrade {
        strip_hop_by_hop(&mut parts.headers);
    }
    if trailers {
        // `TE` is hop-by-hop, but gRPC servers require `te: trailers`, the
        // one value HTTP/2 allows (RFC 9113 §8.2.2): kept for the app.
        parts
            .headers
            .insert(header::TE, HeaderValue::from_static("trailers"));
    }
    append_forwarded_for(&mut parts.headers, client);
}

/// The whole of a small request body (empty for none), counted into `count`.
async fn read_whole(body: Incoming, count: &AtomicU64) -> Result<Bytes, UpstreamError> {
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    let whole = body
        .collect()
        .await
        .map_err(|error| UpstreamError::ClientBody(error.into()))?
        .to_bytes();
    count.fetch_add(whole.len() as u64, Ordering::Relaxed);
    Ok(whole)
}

/// Copies bytes both ways between the upgraded client and app connections
/// until either side closes.
async fn tunnel(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(%error, "proxy: upgrade failed");
            return;
        }
    };
    let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(%error, "proxy: upgraded connection ended with an error");
    }
}

/// The proxy's own answer when the app could not give one. A gRPC call
/// gets it as a gRPC status too, in a trailers-only response (`grpc-status`
/// and `grpc-message` in the head, no body): gRPC clients read that, not the
/// text. The HTTP status stays (502, 504, 400), so the failure still counts
/// as one in `http_requests_total`.
fn error_response(status: StatusCode, mut exchange: Exchange) -> Response<Measured> {
    exchange.head(status.as_u16());
    let text = match status {
        StatusCode::GATEWAY_TIMEOUT => "sidewatch proxy: the app did not answer in time",
        StatusCode::BAD_REQUEST => "sidewatch proxy: the request body broke off",
        _ => "sidewatch proxy: the app is unreachable",
    };
    let mut headers = HeaderMap::new();
    let body = if exchange.is_grpc() {
        // gRPC's own mapping of these HTTP statuses: 400 is INTERNAL, 502
        // and 504 are UNAVAILABLE, a call worth retrying.
        let code = grpc::status_of_http(status.as_u16());
        exchange.set_grpc_status(code);
        let grpc = HeaderValue::from_static(
            exchange
                .grpc_web()
                .map_or("application/grpc", grpc::web::Encoding::content_type),
        );
        headers.insert(header::CONTENT_TYPE, grpc);
        headers.insert(GRPC_STATUS, HeaderValue::from(code));
        // Printable ASCII without `%`: nothing to percent-encode.
        headers.insert(GRPC_MESSAGE, HeaderValue::from_static(text));
        Bytes::new()
    } else {
        let plain = HeaderValue::from_static("text/plain; charset=utf-8");
        headers.insert(header::CONTENT_TYPE, plain);
        Bytes::from(format!("{text}\n"))
    };
    let body = ResponseBody::Own(Full::new(body));
    let mut response = Response::new(Measured::new(body, exchange));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// Whether the request asks to switch protocols (`Connection: upgrade`) to
/// something other than `h2c`. An `Upgrade: h2c` (deprecated by RFC 9113) is
/// declined as RFC 9110 §7.8 allows: the request goes on as plain HTTP/1.1,
/// so it is measured like any other; h2c clients use prior knowledge.
fn is_upgrade(headers: &HeaderMap) -> bool {
    if !headers.contains_key(header::UPGRADE) {
        return false;
    }
    let h2c_only = headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .all(|t| t.trim().eq_ignore_ascii_case("h2c"));
    !h2c_only
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Whether the client accepts trailers (`TE: trailers`, among other codings).
fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("trailers")
        })
}

/// Removes hop-by-hop headers, including those `Connection` names. Most
/// messages carry none but `Connection: keep-alive`, so the names are
/// scanned (no hashing) and only what is there is removed.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.eq_ignore_ascii_case("keep-alive") && !t.eq_ignore_ascii_case("close"))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    while let Some(name) = headers.keys().find(|n| HOP_BY_HOP.contains(n)).cloned() {
        headers.remove(name);
    }
}

fn append_forwarded_for(headers: &mut HeaderMap, client: &Client) {
    let value = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(previous) => {
            let ip = client.forwarded_for.to_str().unwrap_or_default();
            match HeaderValue::from_str(&format!("{previous}, {ip}")) {
                Ok(value) => value,
                Err(_) => return,
            }
        }
        None => client.forwarded_for.clone(),
    };
    headers.insert(X_FORWARDED_FOR, value);
}

/// `original` without scheme and authority: `<path?query>` (or `*`).
fn origin_form(original: &Uri) -> Uri {
    if original.authority().is_none() {
        return original.clone();
    }
    original
        .path_and_query()
        .map_or_else(|| Uri::from_static("/"), |path| Uri::from(path.clone()))
}

/// The host the client asked for: its request's authority (HTTP/2) or
/// `Host` (HTTP/1.1), if it can name a host over HTTP/2 (no user info).
fn asked_host(parts: &request::Parts) -> Option<Authority> {
    let host = match parts.uri.authority() {
        Some(authority) => authority.clone(),
        None => Authority::try_from(parts.headers.get(header::HOST)?.as_bytes()).ok()?,
    };
    (!host.as_str().contains('@')).then_some(host)
}

/// `http://<authority><path?query>`.
fn absolute_uri(authority: &Authority, original: &Uri) -> Uri {
    let path = original
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    Uri::builder()
        .scheme("http")
        .authority(authority.clone())
        .path_and_query(path)
        .build()
        .unwrap_or_else(|_| Uri::from_static("http://127.0.0.1/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        assert!(!is_upgrade(&headers));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
    }

    #[test]
    fn upgrades_are_recognised() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "connection",
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        headers.insert("upgrade", HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&headers));
    }

    #[test]
    fn h2c_upgrades_are_declined_and_their_headers_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "connection",
            HeaderValue::from_static("Upgrade, HTTP2-Settings"),
        );
        headers.insert("upgrade", HeaderValue::from_static("h2c"));
        headers.insert(
            "http2-settings",
            HeaderValue::from_static("AAMAAABkAAQAAP__"),
        );
        headers.insert("accept", HeaderValue::from_static("*/*"));
        assert!(!is_upgrade(&headers));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key("accept"));
    }

    #[test]
    fn trailers_are_recognised() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert("te", HeaderValue::from_static(value));
            headers
        };
        assert!(accepts_trailers(&with("trailers")));
        assert!(accepts_trailers(&with("deflate;q=0.5, Trailers")));
        assert!(!accepts_trailers(&with("gzip")));
        assert!(!accepts_trailers(&HeaderMap::new()));
    }

    #[test]
    fn uris_point_at_the_upstream() {
        let upstream = http::uri::Authority::from_static("127.0.0.1:8080");
        let uri = absolute_uri(&upstream, &Uri::from_static("/a/b?c=1"));
        assert_eq!(uri, "http://127.0.0.1:8080/a/b?c=1");
        let uri = absolute_uri(&upstream, &Uri::from_static("http://example.com/x"));
        assert_eq!(uri, "http://127.0.0.1:8080/x");
        let absolute = Uri::from_static("http://example.com/x?y=1");
        assert_eq!(origin_form(&absolute), "/x?y=1");
        assert_eq!(origin_form(&Uri::from_static("/a?b")), "/a?b");
        assert_eq!(origin_form(&Uri::from_static("*")), "*");
    }

    /// A request head as a client sends it: `uri`, with `host` as `Host`.
    fn head(uri: &'static str, host: Option<&'static str>) -> request::Parts {
        let mut builder = Request::get(uri);
        if let Some(host) = host {
            builder = builder.header(header::HOST, host);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_host_asked_for_is_the_authority_or_host_without_user_info() {
        let asked = |parts: &request::Parts| asked_host(parts).map(|a| a.to_string());
        let http2 = head("http://shop.example.com:8443/x", None);
        assert_eq!(asked(&http2).as_deref(), Some("shop.example.com:8443"));
        let http1 = head("/x", Some("shop.example.com"));
        assert_eq!(asked(&http1).as_deref(), Some("shop.example.com"));
        assert_eq!(asked(&head("/x", None)), None);
        assert_eq!(asked(&head("/x", Some("user@shop.example.com"))), None);
        assert_eq!(asked(&head("/x", Some("not a host"))), None);
    }

    #[test]
    fn over_http2_a_host_the_authority_does_not_carry_goes_in_x_forwarded_host() {
        let client = Client::new(SocketAddr::from(([10, 0, 0, 7], 40000)));
        let upstream = Authority::from_static("127.0.0.1:8080");
        let forwarded_host = |parts: &request::Parts| {
            let value = parts.headers.get(&X_FORWARDED_HOST)?;
            Some(value.to_str().unwrap().to_owned())
        };

        let mut kept = head("/x", Some("shop.example.com"));
        let named = Authority::from_static("shop.example.com");
        let uri = absolute_uri(&named, &kept.uri);
        ready_head(&mut kept, uri, true, false, &client);
        assert_eq!(kept.uri, "http://shop.example.com/x");
        assert!(!kept.headers.contains_key(header::HOST));
        assert_eq!(forwarded_host(&kept), None);

        let mut rewritten = head("/x", Some("shop.example.com"));
        let uri = absolute_uri(&upstream, &rewritten.uri);
        ready_head(&mut rewritten, uri, true, false, &client);
        assert_eq!(rewritten.uri, "http://127.0.0.1:8080/x");
        assert!(!rewritten.headers.contains_key(header::HOST));
        assert_eq!(
            forwarded_host(&rewritten).as_deref(),
            Some("shop.example.com")
        );
    }
}
