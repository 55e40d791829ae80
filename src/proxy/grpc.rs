//! gRPC calls through the proxy: recognising them, their route
//! (`/package.Service/Method`), and their status, which gRPC carries in
//! `grpc-status` (in the trailers, or in the head of a trailers-only
//! response) while the HTTP status stays `200`; gRPC-Web's status comes at
//! the end of the body instead (see [`web`]).

use http::header::{self, HeaderMap, HeaderName};

pub mod web;

/// The gRPC status header (and trailer).
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// The gRPC status message header (and trailer).
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// The names of gRPC's status codes 0–16, as gRPC's own libraries (and
/// go-grpc-prometheus's `grpc_code` label) spell them.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// `CANCELLED`: the client went away before the call ended.
pub const CANCELED: u16 = 1;
/// `UNKNOWN`.
const UNKNOWN: u16 = 2;
/// `INTERNAL`.
pub const INTERNAL: u16 = 13;
/// `UNAVAILABLE`: worth retrying.
pub const UNAVAILABLE: u16 = 14;

/// What kind of gRPC call a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// gRPC over HTTP/2, its status in the trailers (or a trailers-only head).
    Grpc,
    /// gRPC-Web, its status in the body's trailer frame (see [`web`]).
    Web(web::Encoding),
}

impl Call {
    /// The kind of call `headers` make, if any, by their content type:
    /// `application/grpc` or a subtype (`application/grpc+proto`), with or
    /// without parameters, only over HTTP/2 (`http2`), as gRPC clients
    /// speak nothing else; gRPC-Web's types over either.
    pub fn of(headers: &HeaderMap, http2: bool) -> Option<Call> {
        let value = headers.get(header::CONTENT_TYPE)?.as_bytes();
        if http2 && is_type(value, "application/grpc") {
            Some(Call::Grpc)
        } else {
            web::encoding(value).map(Call::Web)
        }
    }
}

/// Whether content type `value` is `name` or a subtype of it (`name+…`),
/// with or without parameters, in any case.
fn is_type(value: &[u8], name: &str) -> bool {
    value.len() >= name.len()
        && value[..name.len()].eq_ignore_ascii_case(name.as_bytes())
        && matches!(value.get(name.len()), None | Some(b'+' | b';'))
}

/// A gRPC call's path, `/package.Service/Method`, as service and method,
/// when `path` is one. Its route is the path as it stands: names from the
/// service's definition, never IDs (the series cap still bounds them),
/// where the ID rules would take a versioned package such as
/// `foo.v1.Orders` for a token.
pub fn method(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('/')?;
    let (service, method) = rest.split_once('/')?;
    // Each name at most 126 bytes: the route fits `MAX_ROUTE_BYTES` (256).
    let name = |s: &str| {
        !s.is_empty()
            && s.len() <= 126
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    };
    (name(service) && name(method) && !method.contains('.')).then_some((service, method))
}

/// The `grpc-status` in `headers` (trailers, or a trailers-only head).
pub fn status(headers: &HeaderMap) -> Option<u16> {
    headers.get(GRPC_STATUS)?.to_str().ok()?.trim().parse().ok()
}

/// The status a gRPC client derives from a response that ended without a
/// `grpc-status`, by gRPC's HTTP-to-gRPC mapping ("HTTP to gRPC Status Code
/// Mapping" in gRPC's docs).
pub fn status_of_http(status: u16) -> u16 {
    match status {
        400 => INTERNAL,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502..=504 => UNAVAILABLE,
        _ => UNKNOWN,
    }
}

/// The name of status `code` (`Unknown` for codes gRPC does not define).
pub fn code_name(code: u16) -> &'static str {
    CODE_NAMES
        .get(usize::from(code))
        .copied()
        .unwrap_or(CODE_NAMES[usize::from(UNKNOWN)])
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn with(name: &'static str, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn grpc_requests_are_recognised() {
        let call = |value, http2| Call::of(&with("content-type", value), http2);
        for grpc in [
            "application/grpc",
            "application/grpc+proto",
            "Application/GRPC;charset=utf-8",
        ] {
            assert_eq!(call(grpc, true), Some(Call::Grpc), "{grpc}");
            assert_eq!(call(grpc, false), None, "{grpc} over HTTP/1.1");
        }
        for other in ["application/json", "application/grp"] {
            assert_eq!(call(other, true), None, "{other}");
        }
        let web = Some(Call::Web(web::Encoding::Binary));
        assert_eq!(call("application/grpc-web", true), web);
        assert_eq!(call("application/grpc-web", false), web);
        assert_eq!(Call::of(&HeaderMap::new(), true), None);
    }

    #[test]
    fn grpc_paths_are_kept_whole() {
        let path = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
        let expected = (
            "opentelemetry.proto.collector.trace.v1.TraceService",
            "Export",
        );
        assert_eq!(method(path), Some(expected));
        assert_eq!(method("/Health/Check"), Some(("Health", "Check")));
        for not_grpc in [
            "/a", "/a/b/c", "//Check", "/svc/", "/svc/a.b", "/s?x/m", "x/y",
        ] {
            assert_eq!(method(not_grpc), None, "{not_grpc}");
        }
    }

    #[test]
    fn statuses_are_read_mapped_and_named() {
        assert_eq!(status(&with("grpc-status", "14")), Some(14));
        assert_eq!(status(&with("grpc-status", "x")), None);
        assert_eq!(status(&HeaderMap::new()), None);
        assert_eq!(code_name(0), "OK");
        assert_eq!(code_name(14), "Unavailable");
        assert_eq!(code_name(16), "Unauthenticated");
        assert_eq!(code_name(99), "Unknown");
        assert_eq!(status_of_http(502), UNAVAILABLE);
        assert_eq!(status_of_http(504), UNAVAILABLE);
        assert_eq!(status_of_http(400), INTERNAL);
        assert_eq!(status_of_http(404), 12);
        assert_eq!(status_of_http(500), UNKNOWN);
    }
}
