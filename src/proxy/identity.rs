//! Request identity: `x-request-id` (UUID v7 when the client sent none) and
//! W3C trace context (`traceparent` honoured as sent, created when missing
//! or invalid, with the sampled flag off: only when sidewatch samples the
//! request and exports its span does the app see the flag on, with
//! sidewatch's span as parent — see [`ensure_traced`]).

use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use rand::Rng;

use crate::otlp::traces::{Sampler, ServerSpan};

/// The request ID header.
pub const REQUEST_ID: &str = "x-request-id";
/// The W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C vendor trace state header, dropped with an invalid `traceparent`.
pub const TRACESTATE: &str = "tracestate";
/// The header names above, parsed once (a lookup by `&str` parses the name
/// on every request).
const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static(REQUEST_ID);
const TRACEPARENT_HEADER: HeaderName = HeaderName::from_static(TRACEPARENT);
const TRACESTATE_HEADER: HeaderName = HeaderName::from_static(TRACESTATE);
/// Longest client-sent request ID kept; a longer one is replaced.
pub const MAX_REQUEST_ID_BYTES: usize = 200;

/// A request's identity after [`ensure`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The `x-request-id` forwarded to the app (the correlation ID).
    pub request_id: String,
    /// Whether sidewatch made `request_id` (a UUID v7) because the client
    /// sent none it could keep.
    pub request_id_made: bool,
    /// The 32-hex-digit trace ID of the forwarded `traceparent`.
    pub trace_id: String,
    /// The server span, when the request is sampled for export.
    pub span: Option<ServerSpan>,
}

/// Makes sure `headers` carry an `x-request-id` and a valid `traceparent`
/// (adding them when missing), and returns both IDs.
pub fn ensure(headers: &mut HeaderMap) -> Identity {
    ensure_traced(headers, None)
}

/// [`ensure`], and with a `sampler` (span export on) the sampling decision:
/// a sampled request gets a server span whose ID becomes the parent in the
/// forwarded `traceparent` (flag sampled, `tracestate` kept); an unsampled
/// one is forwarded as [`ensure`] does.
pub fn ensure_traced(headers: &mut HeaderMap, sampler: Option<&Sampler>) -> Identity {
    let Some(sampler) = sampler else {
        return ensure_ids(headers);
    };
    let incoming = headers
        .get(TRACEPARENT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_parent);
    let mut identity = ensure_ids(headers);
    let parent = incoming.map(|(parent, _)| parent);
    let sampled_flag = incoming.map(|(_, flags)| flags & 1 == 1);
    if !sampler.sample(&identity.trace_id, sampled_flag) {
        return identity;
    }
    let Some(trace_id) = crate::otlp::hex_id::<16>(&identity.trace_id) else {
        return identity;
    };
    let span_id = nonzero_u64(&mut rand::rng()).to_be_bytes();
    let value = traceparent(&identity.trace_id, u64::from_be_bytes(span_id), true);
    headers.insert(TRACEPARENT_HEADER, header(&value));
    let trace_state = headers
        .get(TRACESTATE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    identity.span = Some(ServerSpan {
        trace_id,
        span_id,
        parent_span_id: parent,
        trace_state,
        start: SystemTime::now(),
    });
    identity
}

/// The parent span ID and flags of a valid incoming `traceparent`.
fn parse_parent(value: &str) -> Option<([u8; 8], u8)> {
    parse_trace_id(value)?;
    let value = value.trim();
    let parent = crate::otlp::hex_id::<8>(&value[36..52])?;
    let flags = u8::from_str_radix(&value[53..55], 16).ok()?;
    Some((parent, flags))
}

fn ensure_ids(headers: &mut HeaderMap) -> Identity {
    let (request_id, request_id_made) =
        match headers.get(REQUEST_ID_HEADER).map(HeaderValue::to_str) {
            Some(Ok(id)) if !id.trim().is_empty() && id.len() <= MAX_REQUEST_ID_BYTES => {
                (id.to_owned(), false)
            }
            _ => {
                let id = uuid_v7();
                headers.insert(REQUEST_ID_HEADER, header(&id));
                (id, true)
            }
        };
    let trace_id = match headers
        .get(TRACEPARENT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_trace_id)
    {
        Some(trace_id) => trace_id.to_owned(),
        None => {
            let (trace_id, span_id) = {
                let mut rng = rand::rng();
                (nonzero_u128(&mut rng), nonzero_u64(&mut rng))
            };
            let mut hex = [0u8; 32];
            write_hex(&mut hex, trace_id);
            let trace_id = ascii(&hex);
            // Sampled flag off: only a sidewatch that exports the span may set it.
            let value = traceparent(&trace_id, span_id, false);
            headers.insert(TRACEPARENT_HEADER, header(&value));
            // tracestate belongs to the traceparent it came with.
            headers.remove(TRACESTATE_HEADER);
            trace_id
        }
    };
    Identity {
        request_id,
        request_id_made,
        trace_id,
        span: None,
    }
}

fn header(text: &str) -> HeaderValue {
    // Generated values are ASCII hex and dashes.
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// The trace ID of a valid `traceparent` (W3C Trace Context level 1:
/// `version-traceid-parentid-flags`, lowercase hex, IDs not all zero;
/// future versions may append fields).
pub fn parse_trace_id(value: &str) -> Option<&str> {
    let value = value.trim();
    let b = value.as_bytes();
    if b.len() < 55 || (b.len() > 55 && b[55] != b'-') {
        return None;
    }
    let (version, trace, parent, flags) =
        (&value[0..2], &value[3..35], &value[36..52], &value[53..55]);
    let hex = |s: &str| s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    let ok = b[2] == b'-'
        && b[35] == b'-'
        && b[52] == b'-'
        && [version, trace, parent, flags].into_iter().all(hex)
        && version != "ff"
        && (version != "00" || b.len() == 55)
        && trace.bytes().any(|c| c != b'0')
        && parent.bytes().any(|c| c != b'0');
    ok.then_some(trace)
}

/// A UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then random
/// bits, so IDs sort by creation time.
pub fn uuid_v7() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
        & 0xffff_ffff_ffff;
    let random: u128 = rand::rng().random();
    let value = (u128::from(millis) << 80)
        | (0x7 << 76)
        | (((random >> 64) & 0xfff) << 64)
        | (0b10 << 62)
        | (random & 0x3fff_ffff_ffff_ffff);
    let mut text = [b'-'; 36];
    for (from, to) in [
        (0, 0..8),
        (8, 9..13),
        (12, 14..18),
        (16, 19..23),
        (20, 24..36),
    ] {
        let digits = to.len();
        write_hex(&mut text[to], value >> (4 * (32 - from - digits)));
    }
    ascii(&text)
}

/// Writes the low `out.len()` hex digits of `value` (lowercase) into `out`.
fn write_hex(out: &mut [u8], mut value: u128) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for digit in out.iter_mut().rev() {
        *digit = DIGITS[(value & 0xf) as usize];
        value >>= 4;
    }
}

/// `00-<trace_id>-<span_id>-<flags>` with the IDs as lowercase hex.
fn traceparent(trace_id: &str, span_id: u64, sampled: bool) -> String {
    let mut text = *b"00-00000000000000000000000000000000-0000000000000000-00";
    text[3..35].copy_from_slice(trace_id.as_bytes());
    write_hex(&mut text[36..52], u128::from(span_id));
    if sampled {
        text[54] = b'1';
    }
    ascii(&text)
}

/// The text of generated ASCII (hex digits and dashes).
fn ascii(text: &[u8]) -> String {
    String::from_utf8_lossy(text).into_owned()
}

fn nonzero_u128(rng: &mut impl Rng) -> u128 {
    loop {
        let v: u128 = rng.random();
        if v != 0 {
            return v;
        }
    }
}

fn nonzero_u64(rng: &mut impl Rng) -> u64 {
    loop {
        let v: u64 = rng.random();
        if v != 0 {
            return v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_v7_has_version_variant_and_time_order() {
        let a = uuid_v7();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = uuid_v7();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "7", "{a}");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
        assert!(a < b, "{a} {b}");
    }

    #[test]
    fn ids_are_written_as_format_would() {
        let mut out = [0u8; 32];
        let value = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210_u128;
        write_hex(&mut out, value);
        assert_eq!(std::str::from_utf8(&out).unwrap(), format!("{value:032x}"));
        let trace = format!("{value:032x}");
        assert_eq!(
            traceparent(&trace, 0xab, false),
            format!("00-{trace}-{:016x}-00", 0xab)
        );
        assert!(traceparent(&trace, 1, true).ends_with("-01"));
        let id = uuid_v7();
        let hex: String = id.chars().filter(|c| *c != '-').collect();
        let dashes: Vec<usize> = id.match_indices('-').map(|(i, _)| i).collect();
        assert_eq!(dashes, [8, 13, 18, 23], "{id}");
        assert!(
            hex.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{id}"
        );
    }

    #[test]
    fn request_id_is_added_or_kept() {
        let mut headers = HeaderMap::new();
        let id = ensure(&mut headers);
        assert_eq!(headers[REQUEST_ID], id.request_id.as_str());
        assert!(id.request_id_made);
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("abc-1"));
        let id = ensure(&mut headers);
        assert_eq!(
            (id.request_id.as_str(), id.request_id_made),
            ("abc-1", false)
        );
        assert_eq!(headers[REQUEST_ID], "abc-1");
    }

    #[test]
    fn traceparent_is_kept_or_created_unsampled() {
        let sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static(sent));
        headers.insert(TRACESTATE, HeaderValue::from_static("a=b"));
        let id = ensure(&mut headers);
        assert_eq!(id.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(headers[TRACEPARENT], sent);
        assert_eq!(headers[TRACESTATE], "a=b");

        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static("00-zz-bad"));
        headers.insert(TRACESTATE, HeaderValue::from_static("a=b"));
        let id = ensure(&mut headers);
        let created = headers[TRACEPARENT].to_str().unwrap().to_owned();
        assert_eq!(parse_trace_id(&created), Some(id.trace_id.as_str()));
        assert!(created.ends_with("-00"), "{created}");
        assert!(headers.get(TRACESTATE).is_none());
    }

    #[test]
    fn invalid_traceparents_are_refused() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        ] {
            assert_eq!(parse_trace_id(bad), None, "{bad}");
        }
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
        assert!(parse_trace_id(future).is_some());
    }

    #[test]
    fn sampled_requests_get_a_span_that_parents_the_app() {
        use crate::config::otlp::OtlpTracesConfig;
        let always = Sampler::new(&OtlpTracesConfig::default());
        let sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static(sent));
        let id = ensure_traced(&mut headers, Some(&always));
        assert!(id.span.is_none(), "parent said not sampled");
        assert_eq!(headers[TRACEPARENT], sent, "forwarded unchanged");

        let sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static(sent));
        headers.insert(TRACESTATE, HeaderValue::from_static("a=b"));
        let id = ensure_traced(&mut headers, Some(&always));
        let span = id.span.expect("sampled");
        assert_eq!(
            span.parent_span_id,
            crate::otlp::hex_id::<8>("00f067aa0ba902b7")
        );
        assert_eq!(span.trace_state, "a=b");
        let forwarded = headers[TRACEPARENT].to_str().unwrap().to_owned();
        assert_eq!(parse_trace_id(&forwarded), Some(id.trace_id.as_str()));
        assert!(forwarded.ends_with("-01"), "{forwarded}");
        assert_eq!(
            &forwarded[36..52],
            format!("{:016x}", u64::from_be_bytes(span.span_id))
        );

        let mut headers = HeaderMap::new();
        let id = ensure_traced(&mut headers, Some(&always));
        let span = id.span.expect("new traces sampled at ratio 1");
        assert!(span.parent_span_id.is_none());
        assert!(headers[TRACEPARENT].to_str().unwrap().ends_with("-01"));
    }
}
