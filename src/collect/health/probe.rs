//! One probe of one target: an HTTP(S) request or a TCP connect, classified
//! into a failure reason.

use std::error::Error as _;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method};
use regex::Regex;
use tokio::net::TcpStream;
use url::Url;

use super::checks::{self, HealthBody};
use super::status::StatusSet;
use crate::config::{mask_url, HealthTarget};

/// Why a probe failed; the `reason` label of `sidewatch_probe_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No answer within the target's timeout.
    Timeout,
    /// Connection refused, reset or closed early; DNS failure.
    Connect,
    /// A status code outside `expected_status`, or a redirect loop.
    Status,
    /// The body did not match, was malformed, or reports the target unhealthy.
    Body,
    /// TLS handshake or certificate failure.
    Tls,
}

impl Reason {
    /// Every reason, to initialise counters at zero.
    pub const ALL: [Reason; 5] = [
        Reason::Timeout,
        Reason::Connect,
        Reason::Status,
        Reason::Body,
        Reason::Tls,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Timeout => "timeout",
            Reason::Connect => "connect",
            Reason::Status => "status",
            Reason::Body => "body",
            Reason::Tls => "tls",
        }
    }
}

/// A probe failure: reason and a message free of secrets.
#[derive(Debug)]
pub struct Failure {
    /// The classified reason.
    pub reason: Reason,
    /// What happened.
    pub message: String,
}

/// What one probe found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// `None` when the target is healthy.
    pub failure: Option<Failure>,
    /// The HTTP status code, when a response arrived.
    pub status_code: Option<u16>,
    /// Per-check results, when the body was a health document.
    pub body: Option<HealthBody>,
}

impl Outcome {
    fn failed(reason: Reason, message: impl Into<String>) -> Self {
        Outcome {
            failure: Some(Failure {
                reason,
                message: message.into(),
            }),
            ..Outcome::default()
        }
    }
}

/// A ready-to-run probe for one target.
#[derive(Debug)]
pub enum Probe {
    /// An HTTP(S) request.
    Http(Box<HttpProbe>),
    /// A TCP connect to `host:port`.
    Tcp(String),
}

/// An HTTP(S) probe with its client built once.
#[derive(Debug)]
pub struct HttpProbe {
    client: reqwest::Client,
    url: Url,
    method: Method,
    headers: HeaderMap,
    statuses: StatusSet,
    body_regex: Option<Regex>,
    max_body_bytes: usize,
    parse_checks: bool,
}

impl Probe {
    /// Builds the probe for a validated target.
    pub fn build(target: &HealthTarget) -> Result<Self, String> {
        let Some(url) = &target.url else {
            return Ok(Probe::Tcp(target.tcp.clone().unwrap_or_default()));
        };
        let redirects = match target.max_redirects {
            0 => reqwest::redirect::Policy::none(),
            n => reqwest::redirect::Policy::limited(n),
        };
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("sidewatch/", env!("CARGO_PKG_VERSION")))
            .timeout(target.timeout)
            .connect_timeout(target.timeout)
            .redirect(redirects)
            .no_proxy()
            // A fresh connection per probe, as blackbox_exporter does: latency
            // includes the connect, and no idle connection is held to the app.
            .pool_max_idle_per_host(0)
            .danger_accept_invalid_certs(target.insecure_skip_verify);
        if let Some(path) = &target.ca_file {
            builder = crate::http_client::with_ca_file(builder, path)?;
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        let mut headers = crate::http_client::header_map(&target.headers)?;
        if let Some(token) = &target.bearer_token {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .map_err(|_| "bearer_token holds characters not allowed in a header".to_owned())?;
            value.set_sensitive(true);
            headers.insert(http::header::AUTHORIZATION, value);
        }
        Ok(Probe::Http(Box::new(HttpProbe {
            client,
            url: url.clone(),
            method: Method::from_bytes(target.method.as_bytes()).map_err(|e| e.to_string())?,
            headers,
            statuses: StatusSet::parse(&target.expected_status)?,
            body_regex: target
                .body_regex
                .as_deref()
                .map(Regex::new)
                .transpose()
                .map_err(|e| e.to_string())?,
            max_body_bytes: target.max_body_bytes,
            parse_checks: target.parse_checks,
        })))
    }

    /// Where the probe goes, with any password masked.
    pub fn describe(&self) -> String {
        match self {
            Probe::Http(http) => mask_url(&http.url),
            Probe::Tcp(addr) => format!("tcp://{addr}"),
        }
    }

    /// Runs the probe once, bounded by `timeout`.
    pub async fn run(&self, timeout: Duration) -> Outcome {
        let probe = async {
            match self {
                Probe::Http(http) => http.run().await,
                Probe::Tcp(addr) => tcp(addr).await,
            }
        };
        tokio::time::timeout(timeout, probe)
            .await
            .unwrap_or_else(|_| {
                Outcome::failed(Reason::Timeout, format!("no answer within {timeout:?}"))
            })
    }
}

impl HttpProbe {
    async fn run(&self) -> Outcome {
        let request = self
            .client
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone());
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => return classify(error),
        };
        let status_code = response.status().as_u16();
        let mut body = Vec::new();
        let mut body_error = None;
        while body.len() < self.max_body_bytes {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = self.max_body_bytes - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) => break,
                Err(error) => {
                    body_error = Some(classify(error));
                    break;
                }
            }
        }
        drop(response);
        let parsed = if self.parse_checks {
            checks::parse(&body)
        } else {
            None
        };
        let failure = if !self.statuses.contains(status_code) {
            Some(Failure {
                reason: Reason::Status,
                message: format!("unexpected status {status_code}"),
            })
        } else if let Some(error) = body_error {
            error.failure
        } else if self
            .body_regex
            .as_ref()
            .is_some_and(|re| !re.is_match(&String::from_utf8_lossy(&body)))
        {
            Some(Failure {
                reason: Reason::Body,
                message: "body does not match body_regex".into(),
            })
        } else if parsed.as_ref().and_then(|b| b.overall) == Some(false) {
            Some(Failure {
                reason: Reason::Body,
                message: "health body reports the target unhealthy".into(),
            })
        } else {
            None
        };
        Outcome {
            failure,
            status_code: Some(status_code),
            body: parsed,
        }
    }
}

async fn tcp(addr: &str) -> Outcome {
    match TcpStream::connect(addr).await {
        Ok(_) => Outcome::default(),
        Err(error) => Outcome::failed(
            Reason::Connect,
            format!("cannot connect to {addr}: {error}"),
        ),
    }
}

/// Maps a client error to a reason, with a message that carries no URL.
fn classify(error: reqwest::Error) -> Outcome {
    let error = error.without_url();
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    let lower = chain.to_ascii_lowercase();
    let is_tls = [
        "certificate",
        "tls",
        "handshake",
        "rustls",
        "corrupt message",
    ]
    .iter()
    .any(|needle| lower.contains(needle));
    let is_parse = ["invalid http", "parse", "invalid status", "invalid header"]
        .iter()
        .any(|needle| lower.contains(needle));
    let reason = if error.is_timeout() {
        Reason::Timeout
    } else if error.is_redirect() {
        chain = format!("redirect loop or too many redirects ({chain})");
        Reason::Status
    } else if is_tls {
        Reason::Tls
    } else if error.is_body() || error.is_decode() || is_parse {
        Reason::Body
    } else {
        Reason::Connect
    };
    Outcome::failed(reason, chain)
}
