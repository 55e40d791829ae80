//! One network sink's HTTP endpoint: the client (TLS trust, timeouts), the
//! fixed headers (auth, tenant, extra) and how an answer is classified.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use url::Url;

use crate::config::logs::LogSinkConfig;

/// Longest `Retry-After` honoured; a longer one waits this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Bytes of an error answer kept for logs, `/status` and dead letters.
const MAX_ANSWER: usize = 1024;

/// An encoded request body.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The body, as sent.
    pub body: Bytes,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its `Content-Encoding`, if compressed.
    pub content_encoding: Option<&'static str>,
}

/// What an attempt to send one batch came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the destination has the events.
    Delivered,
    /// Worth trying again (connect error, timeout, 5xx, 429, auth problems).
    Retry {
        /// The `reason` label of `sidewatch_sink_retries_total`.
        reason: &'static str,
        /// The destination's `Retry-After`, if it gave one.
        after: Option<Duration>,
        /// What happened (never holds a secret).
        message: String,
    },
    /// A 4xx that names the batch itself as bad: split it, or dead-letter
    /// a single event.
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        message: String,
    },
}

/// Sends one encoded batch and classifies the answer: an HTTP [`Endpoint`]
/// (Loki, HTTP sinks) or the OTLP transport (`otlp` sink).
pub trait Transport: Send + Sync + 'static {
    /// Sends `body` once.
    fn send<'a>(
        &'a self,
        body: &'a Encoded,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>>;
    /// Where requests go (for logs and `Debug`; never holds credentials).
    fn describe(&self) -> String;
}

impl Transport for Endpoint {
    fn send<'a>(
        &'a self,
        body: &'a Encoded,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>> {
        Box::pin(Endpoint::send(self, body))
    }

    fn describe(&self) -> String {
        crate::config::mask_url(&self.url)
    }
}

/// Where a network sink sends, and how.
#[derive(Debug, Clone)]
pub struct Endpoint {
    client: reqwest::Client,
    url: Url,
    headers: HeaderMap,
}

impl Endpoint {
    /// Builds the client for `sink`, sending to `url`.
    pub fn build(sink: &LogSinkConfig, url: Url) -> Result<Self, String> {
        let timeout = sink.delivery.request_timeout;
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("sidewatch/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .danger_accept_invalid_certs(sink.insecure_skip_verify);
        if let Some(path) = &sink.ca_file {
            builder = crate::http_client::with_ca_file(builder, path)?;
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        let mut headers = crate::http_client::header_map(&sink.headers)?;
        if let Some(tenant) = &sink.tenant_id {
            let value = HeaderValue::from_str(tenant).map_err(|e| e.to_string())?;
            headers.insert(HeaderName::from_static("x-scope-orgid"), value);
        }
        let authorization = match (&sink.username, &sink.password, &sink.bearer_token) {
            (Some(user), Some(password), _) => Some(format!(
                "Basic {}",
                crate::http_client::base64(format!("{user}:{}", password.expose()).as_bytes())
            )),
            (_, _, Some(token)) => Some(format!("Bearer {}", token.expose())),
            _ => None,
        };
        if let Some(authorization) = authorization {
            let mut value = HeaderValue::from_str(&authorization)
                .map_err(|_| "credentials hold characters not allowed in a header".to_owned())?;
            value.set_sensitive(true);
            headers.insert(http::header::AUTHORIZATION, value);
        }
        Ok(Self {
            client,
            url,
            headers,
        })
    }

    /// The URL requests go to.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// POSTs `body` once and classifies the answer.
    pub async fn send(&self, body: &Encoded) -> Outcome {
        let mut request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(http::header::CONTENT_TYPE, body.content_type)
            .body(body.body.clone());
        if let Some(encoding) = body.content_encoding {
            request = request.header(http::header::CONTENT_ENCODING, encoding);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return transport_error(&error),
        };
        let status = response.status();
        if status.is_success() {
            // Read the (small) answer so the connection can be reused.
            let _ = response.bytes().await;
            return Outcome::Delivered;
        }
        let after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let message = answer(response).await;
        classify(status, after, message)
    }
}

/// What a failed request (no answer) means.
pub(crate) fn transport_error(error: &reqwest::Error) -> Outcome {
    let reason = if error.is_timeout() {
        "timeout"
    } else {
        "unavailable"
    };
    // Without the URL: it may hold credentials.
    let mut message = error_kind(error).to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    Outcome::Retry {
        reason,
        after: None,
        message,
    }
}

/// The kind of a failed request, without its URL (it may hold credentials).
fn error_kind(error: &reqwest::Error) -> &'static str {
    if error.is_connect() {
        "connect error"
    } else if error.is_timeout() {
        "timed out"
    } else if error.is_body() || error.is_decode() {
        "body error"
    } else {
        "request error"
    }
}

/// The start of an error answer's body, as text.
pub(crate) async fn answer(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_ANSWER {
            body.truncate(MAX_ANSWER);
            break;
        }
    }
    let text = String::from_utf8_lossy(&body);
    format!("HTTP {}: {}", response.status().as_u16(), text.trim())
}

/// Sorts an error status into retry or reject. 429 and 5xx are the
/// destination's trouble; 401/403/404/405/407/408 are configuration or
/// transient trouble that splitting cannot fix; any other 4xx (400, 413,
/// 422, ...) is about the batch's content.
pub fn classify(status: StatusCode, after: Option<Duration>, message: String) -> Outcome {
    let code = status.as_u16();
    let reason = match code {
        429 => "throttled",
        503 => "throttled",
        500..=599 => "server_error",
        401 | 403 | 404 | 405 | 407 | 408 => "client_error",
        400..=499 => {
            return Outcome::Rejected {
                status: code,
                message,
            }
        }
        _ => "server_error",
    };
    Outcome::Retry {
        reason,
        after,
        message,
    }
}

/// Parses `Retry-After`: delay seconds or an HTTP date; capped at
/// [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(now).unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        assert_eq!(crate::http_client::base64(b""), "");
        assert_eq!(crate::http_client::base64(b"f"), "Zg==");
        assert_eq!(crate::http_client::base64(b"fo"), "Zm8=");
        assert_eq!(crate::http_client::base64(b"foo"), "Zm9v");
        assert_eq!(crate::http_client::base64(b"user:pass"), "dXNlcjpwYXNz");
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date_and_capped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(parse_retry_after("99999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn statuses_are_retried_or_rejected() {
        let sort = |code: u16| classify(StatusCode::from_u16(code).unwrap(), None, String::new());
        assert!(matches!(
            sort(429),
            Outcome::Retry {
                reason: "throttled",
                ..
            }
        ));
        assert!(matches!(
            sort(503),
            Outcome::Retry {
                reason: "throttled",
                ..
            }
        ));
        assert!(matches!(
            sort(500),
            Outcome::Retry {
                reason: "server_error",
                ..
            }
        ));
        assert!(matches!(
            sort(401),
            Outcome::Retry {
                reason: "client_error",
                ..
            }
        ));
        assert!(matches!(sort(400), Outcome::Rejected { status: 400, .. }));
        assert!(matches!(sort(413), Outcome::Rejected { status: 413, .. }));
    }
}
