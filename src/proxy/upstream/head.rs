//! HTTP/1.1 message heads on the app connection (RFC 9112): the request
//! head written to the app, the response head parsed from it (httparse,
//! hyper's own parser) and the response body's framing (§6.3).

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{request, Method, StatusCode};

use super::UpstreamError;

/// Most response header fields taken (hyper's client default is 100).
pub const MAX_RESPONSE_HEADERS: usize = 128;
/// Longest response head taken, in bytes.
pub const MAX_RESPONSE_HEAD_BYTES: usize = 64 * 1024;

/// How a response body ends (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length` bytes (0 for HEAD, 204 and 304).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the app closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    /// The status (never 1xx: interim responses are skipped).
    pub status: StatusCode,
    /// The header fields as sent (values share the read buffer's memory).
    pub headers: HeaderMap,
    /// How its body ends.
    pub framing: Framing,
    /// Whether the connection can take another request after the body.
    pub reusable: bool,
}

/// Writes the head of a bodiless request into `out`: request line in origin
/// form, then every header field. hyper's server parser has validated the
/// method, target and every field, so they are written as they are.
pub fn encode_request(head: &request::Parts, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    let target = head.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &head.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Parses one response head off the front of `buf`: `Ok(None)` while it is
/// incomplete; interim (1xx) responses come back too, for the caller to skip.
pub fn parse_response(
    buf: &mut BytesMut,
    method: &Method,
) -> Result<Option<ResponseHead>, UpstreamError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut parsed = httparse::Response::new(&mut fields);
    let length = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_RESPONSE_HEAD_BYTES => {
            return Err(UpstreamError::InvalidResponse("response head too large"))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(UpstreamError::InvalidResponse(
                "too many response header fields",
            ))
        }
        Err(_) => return Err(UpstreamError::InvalidResponse("malformed response head")),
    };
    let status = parsed
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or(UpstreamError::InvalidResponse("invalid status code"))?;
    let http11 = parsed.version == Some(1);
    // Where each field's name and value sit in the head (kept on the stack:
    // no allocation per response), so values can share the head's memory.
    let start = buf.as_ptr() as usize;
    let mut spans = [((0, 0), (0, 0)); MAX_RESPONSE_HEADERS];
    let count = parsed.headers.len();
    for (span, field) in spans.iter_mut().zip(parsed.headers.iter()) {
        let name = field.name.as_ptr() as usize - start;
        let value = field.value.as_ptr() as usize - start;
        *span = (
            (name, name + field.name.len()),
            (value, value + field.value.len()),
        );
    }
    let head: Bytes = buf.split_to(length).freeze();
    let mut headers = HeaderMap::with_capacity(count);
    for ((name_from, name_to), (value_from, value_to)) in spans.into_iter().take(count) {
        let name = HeaderName::from_bytes(&head[name_from..name_to])
            .map_err(|_| UpstreamError::InvalidResponse("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(value_from..value_to))
            .map_err(|_| UpstreamError::InvalidResponse("invalid header value"))?;
        headers.append(name, value);
    }
    let (framing, clean) = framing(method, status, &headers)?;
    let reusable = clean && framing != Framing::UntilClose && keeps_alive(http11, &headers);
    Ok(Some(ResponseHead {
        status,
        headers,
        framing,
        reusable,
    }))
}

/// The body's framing, and whether it leaves the connection clean (a
/// message with both `Transfer-Encoding` and `Content-Length` must be
/// followed by a close, RFC 9112 §6.3).
fn framing(
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
) -> Result<(Framing, bool), UpstreamError> {
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::Length(0), true));
    }
    let has_length = headers.contains_key(header::CONTENT_LENGTH);
    if headers.contains_key(header::TRANSFER_ENCODING) {
        let last = tokens(headers, &header::TRANSFER_ENCODING).last();
        let framing = match last {
            Some(coding) if coding.eq_ignore_ascii_case("chunked") => Framing::Chunked,
            _ => Framing::UntilClose,
        };
        return Ok((framing, !has_length));
    }
    if !has_length {
        return Ok((Framing::UntilClose, true));
    }
    let mut length = None;
    for value in tokens(headers, &header::CONTENT_LENGTH) {
        let parsed = (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
            .then(|| value.parse::<u64>().ok())
            .flatten()
            .ok_or(UpstreamError::InvalidResponse("invalid content-length"))?;
        if length.is_some_and(|l| l != parsed) {
            return Err(UpstreamError::InvalidResponse("conflicting content-length"));
        }
        length = Some(parsed);
    }
    let length = length.ok_or(UpstreamError::InvalidResponse("invalid content-length"))?;
    Ok((Framing::Length(length), true))
}

/// Whether the app keeps the connection open after this response: HTTP/1.1
/// unless `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
fn keeps_alive(http11: bool, headers: &HeaderMap) -> bool {
    let mut connection = tokens(headers, &header::CONNECTION);
    if http11 {
        !connection.any(|t| t.eq_ignore_ascii_case("close"))
    } else {
        connection.any(|t| t.eq_ignore_ascii_case("keep-alive"))
    }
}

/// The comma-separated tokens of every `name` field, trimmed.
fn tokens<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, method: Method) -> Result<Option<ResponseHead>, UpstreamError> {
        let mut buf = BytesMut::from(text);
        parse_response(&mut buf, &method)
    }

    fn head(text: &str) -> ResponseHead {
        parse(text, Method::GET).unwrap().unwrap()
    }

    #[test]
    fn requests_are_written_in_origin_form_with_every_field() {
        let request = http::Request::get("/a/b?c=1")
            .header("host", "app")
            .header("x-request-id", "r1")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let mut out = Vec::new();
        encode_request(&parts, &mut out);
        assert_eq!(
            out,
            b"GET /a/b?c=1 HTTP/1.1\r\nhost: app\r\nx-request-id: r1\r\n\r\n"
        );
        let (parts, ()) = http::Request::options("*").body(()).unwrap().into_parts();
        encode_request(&parts, &mut out);
        assert_eq!(out, b"OPTIONS * HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn a_head_is_parsed_once_complete_and_leaves_the_body_in_the_buffer() {
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\n");
        assert!(parse_response(&mut buf, &Method::GET).unwrap().is_none());
        buf.extend_from_slice(b"\r\nok");
        let head = parse_response(&mut buf, &Method::GET).unwrap().unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.framing, Framing::Length(2));
        assert!(head.reusable);
        assert_eq!(head.headers["x-a"], "1");
        assert_eq!(&buf[..], b"ok");
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let chunked = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(chunked.framing, Framing::Chunked);
        assert!(chunked.reusable);
        let close = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(close.framing, Framing::UntilClose);
        assert!(!close.reusable);
        let both =
            head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n");
        assert_eq!(both.framing, Framing::Chunked);
        assert!(!both.reusable, "TE and CL together: close afterwards");
        let same = head("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n");
        assert_eq!(same.framing, Framing::Length(5));
        for no_body in [
            "HTTP/1.1 204 No Content\r\n\r\n",
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
        ] {
            assert_eq!(head(no_body).framing, Framing::Length(0), "{no_body}");
        }
        let to_head = parse("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", Method::HEAD);
        assert_eq!(to_head.unwrap().unwrap().framing, Framing::Length(0));
    }

    #[test]
    fn keep_alive_depends_on_the_version_and_connection_field() {
        assert!(
            !head("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").reusable
        );
        assert!(!head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").reusable);
        assert!(
            head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").reusable
        );
    }

    #[test]
    fn invalid_heads_are_errors_not_guesses() {
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "NOT HTTP\r\n\r\n",
        ] {
            assert!(
                matches!(
                    parse(bad, Method::GET),
                    Err(UpstreamError::InvalidResponse(_))
                ),
                "{bad:?}"
            );
        }
        let mut huge = BytesMut::from("HTTP/1.1 200 OK\r\n");
        while huge.len() < MAX_RESPONSE_HEAD_BYTES {
            huge.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
        }
        // Over the field limit or the byte limit, never an endless wait.
        assert!(parse_response(&mut huge, &Method::GET).is_err());
    }
}
