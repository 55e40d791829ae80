//! `GET /metrics`: Prometheus text by default, OpenMetrics when the `Accept`
//! header asks, gzip when `Accept-Encoding` allows, a logged 500 on failure.

use std::io::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;

use super::AdminState;
use crate::telemetry::{self, expfmt::Exposition};

pub(super) fn handle<B>(state: &AdminState, request: &Request<B>) -> Response<Full<Bytes>> {
    let headers = request.headers();
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Exposition::negotiate(accept);
    let size_hint = state.last_metrics_size.load(Ordering::Relaxed);
    let body = match telemetry::encode_parts(&state.registry, format, size_hint + size_hint / 8) {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "cannot encode metrics");
            return Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .body(Full::new(Bytes::from_static(b"cannot encode metrics\n")))
                .unwrap_or_default();
        }
    };
    state.last_metrics_size.store(body.len(), Ordering::Relaxed);

    let builder = Response::builder()
        .header(header::CONTENT_TYPE, format.content_type())
        .header(header::VARY, "Accept, Accept-Encoding");
    let wants_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_gzip);
    if wants_gzip {
        if let Some(compressed) = gzip(body.as_bytes()) {
            return builder
                .header(header::CONTENT_ENCODING, "gzip")
                .body(Full::new(Bytes::from(compressed)))
                .unwrap_or_default();
        }
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|part| {
        let mut params = part.split(';').map(str::trim);
        let coding = params.next().unwrap_or_default();
        coding.eq_ignore_ascii_case("gzip") && !params.any(|p| p.replace(' ', "") == "q=0")
    })
}

fn gzip(data: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(data.len() / 4), Compression::fast());
    encoder.write_all(data).ok()?;
    encoder.finish().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("deflate, gzip;q=1.0, *;q=0.5"));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip("gzip;q=0"));
    }
}
