//! An in-test stand-in for Grafana Loki's push API (no Loki binary can be
//! installed here). It implements the contract sidewatch relies on, as Loki
//! does: `POST /loki/api/v1/push` with `application/x-protobuf` bodies
//! (snappy block format, `logproto.PushRequest`, decoded with its own message
//! structs written from Loki's push.proto) or `application/json` bodies
//! (`{"streams":[{"stream":{..},"values":[["<ns>","line"]]}]}`, optionally
//! `Content-Encoding: gzip`); 204 on success; 400 for malformed bodies, empty
//! label sets and (as a test hook) lines holding a poison marker; 401 when a
//! required tenant/authorization header is missing. Entries of one stream in
//! one request must be in timestamp order (Loki rejects older entries):
//! violations are counted. `POST /ndjson` takes NDJSON for the HTTP sink.
//! Modes simulate outages: `Down` closes the listener and every connection
//! (connections are refused), `Throttle(s)` answers 429 with `Retry-After: s`.

use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use prost::Message;

/// What the server does with requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Accept pushes.
    Up,
    /// Refuse connections.
    Down,
    /// Answer 429 with `Retry-After` seconds.
    Throttle(u64),
    /// Read the request, never answer.
    Hang,
}

/// One accepted entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub labels: String,
    pub ts: i64,
    pub line: String,
}

/// What the server saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub entries: Vec<Entry>,
    pub requests: u64,
    pub throttled: Vec<Instant>,
    pub rejected: u64,
    pub unordered: u64,
    pub protobuf: u64,
    pub json: u64,
    pub gzip: u64,
    pub unauthorized: u64,
}

struct State {
    mode: Mode,
    /// Hang (as [`Mode::Hang`]) once this many entries were accepted.
    hang_after: Option<usize>,
    poison: Option<String>,
    require: Vec<(String, String)>,
    seen: Seen,
}

/// A running contract server on a random loopback port.
pub struct LokiServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    streams: Vec<StreamAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StreamAdapter {
    #[prost(string, tag = "1")]
    labels: String,
    #[prost(message, repeated, tag = "2")]
    entries: Vec<EntryAdapter>,
    #[prost(uint64, tag = "3")]
    hash: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    timestamp: Option<Timestamp>,
    #[prost(string, tag = "2")]
    line: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Timestamp {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

impl LokiServer {
    /// Starts the server in `mode`.
    pub fn start(mode: Mode) -> Self {
        Self::start_with(mode, None)
    }

    /// Starts the server in `mode`, speaking TLS with `config`
    /// (`test_certs::server_config`).
    pub fn start_tls(mode: Mode, config: rustls::ServerConfig) -> Self {
        Self::start_with(
            mode,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
    }

    fn start_with(mode: Mode, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = std_listener.local_addr().unwrap();
        drop(std_listener);
        let state = Arc::new(Mutex::new(State {
            mode,
            hang_after: None,
            poison: None,
            require: Vec::new(),
            seen: Seen::default(),
        }));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(serve(addr, shared, stopped, tls));
        });
        let server = Self {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        };
        if mode != Mode::Down {
            server.wait_listening();
        }
        server
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(self.addr).is_err() {
            assert!(Instant::now() < deadline, "contract server does not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `https://addr`.
    pub fn tls_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
        if mode != Mode::Down {
            self.wait_listening();
        }
    }

    /// From when `entries` entries were accepted (in any mode but `Down`),
    /// requests hang as in [`Mode::Hang`]; `None` stops that.
    pub fn set_hang_after(&self, entries: Option<usize>) {
        self.state.lock().unwrap().hang_after = entries;
    }

    /// Requests whose lines contain `marker` are answered 400.
    pub fn set_poison(&self, marker: &str) {
        self.state.lock().unwrap().poison = Some(marker.to_owned());
    }

    /// Requests lacking header `name: value` are answered 401.
    pub fn require_header(&self, name: &str, value: &str) {
        self.state
            .lock()
            .unwrap()
            .require
            .push((name.to_ascii_lowercase(), value.to_owned()));
    }

    /// Runs `f` on what was seen so far.
    pub fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.state.lock().unwrap().seen)
    }

    /// The distinct `id` fields of accepted lines, and how many lines there were.
    pub fn ids(&self) -> (std::collections::BTreeSet<u64>, usize) {
        self.seen(|seen| {
            let ids = seen
                .entries
                .iter()
                .filter_map(|e| {
                    let value: serde_json::Value = serde_json::from_str(&e.line).ok()?;
                    value["id"].as_u64()
                })
                .collect();
            (ids, seen.entries.len())
        })
    }

    /// Waits until `count` distinct ids were accepted; panics after `timeout`.
    pub fn wait_ids(&self, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let (ids, _) = self.ids();
            if ids.len() >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {count} distinct lines reached the contract server within {timeout:?}",
                ids.len()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for LokiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn bind(addr: SocketAddr) -> tokio::net::TcpListener {
    loop {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        if socket.bind(addr).is_ok() {
            if let Ok(listener) = socket.listen(128) {
                return listener;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn serve(
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let mut connections = tokio::task::JoinSet::new();
    let mut listener = None;
    loop {
        let down = state.lock().unwrap().mode == Mode::Down;
        if down {
            listener = None;
            connections.abort_all();
        } else if listener.is_none() {
            listener = Some(bind(addr).await);
        }
        let accept = async {
            match &listener {
                Some(l) => l.accept().await.ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut stopped => return,
            accepted = accept => {
                if let Some((stream, _)) = accepted {
                    let state = state.clone();
                    let tls = tls.clone();
                    connections.spawn(async move {
                        match tls {
                            Some(acceptor) => {
                                if let Ok(stream) = acceptor.accept(stream).await {
                                    connection(stream, state).await;
                                }
                            }
                            None => connection(stream, state).await,
                        }
                    });
                }
            }
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        while connections.try_join_next().is_some() {}
    }
}

async fn connection<S>(stream: S, state: Arc<Mutex<State>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| handle(req, state.clone()));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
}

fn answer(status: u16, body: &str) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap())
}

/// One decoded stream: its labels and (timestamp, line) entries.
type Stream = (String, Vec<(i64, String)>);

/// Decodes a push body into (labels, entries) per stream, as Loki does.
fn decode(content_type: &str, gzip: bool, body: &[u8]) -> Result<Vec<Stream>, String> {
    let body = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .map_err(|e| format!("gzip: {e}"))?;
        out
    } else {
        body.to_vec()
    };
    if content_type.starts_with("application/x-protobuf") {
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&body)
            .map_err(|e| format!("snappy: {e}"))?;
        let request = PushRequest::decode(raw.as_slice()).map_err(|e| format!("protobuf: {e}"))?;
        Ok(request
            .streams
            .into_iter()
            .map(|s| {
                let entries = s
                    .entries
                    .into_iter()
                    .map(|e| {
                        let ts = e
                            .timestamp
                            .map_or(0, |t| t.seconds * 1_000_000_000 + i64::from(t.nanos));
                        (ts, e.line)
                    })
                    .collect();
                (s.labels, entries)
            })
            .collect())
    } else if content_type.starts_with("application/json") {
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("json: {e}"))?;
        let streams = value["streams"].as_array().ok_or("no streams")?;
        let mut out = Vec::new();
        for stream in streams {
            let labels = stream["stream"].as_object().ok_or("no stream labels")?;
            let mut pairs: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}={:?}", v.as_str().unwrap_or_default()))
                .collect();
            pairs.sort();
            let mut entries = Vec::new();
            for value in stream["values"].as_array().ok_or("no values")? {
                let ts: i64 = value[0]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or("timestamp is not a string of nanoseconds")?;
                let line = value[1].as_str().ok_or("line is not a string")?;
                entries.push((ts, line.to_owned()));
            }
            out.push((format!("{{{}}}", pairs.join(", ")), entries));
        }
        Ok(out)
    } else {
        Err(format!("unsupported content type {content_type:?}"))
    }
}

async fn handle(
    request: Request<Incoming>,
    state: Arc<Mutex<State>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return answer(400, "body");
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let hang = {
        let state = state.lock().unwrap();
        state.mode == Mode::Hang
            || state
                .hang_after
                .is_some_and(|entries| state.seen.entries.len() >= entries)
    };
    if hang {
        std::future::pending::<()>().await;
    }
    let mut state = state.lock().unwrap();
    state.seen.requests += 1;
    let mode = state.mode;
    match mode {
        Mode::Down => return answer(503, "down"),
        Mode::Throttle(seconds) => {
            state.seen.throttled.push(Instant::now());
            return Ok(Response::builder()
                .status(429)
                .header("retry-after", seconds.to_string())
                .body(Full::new(Bytes::from_static(b"too many requests")))
                .unwrap());
        }
        Mode::Hang | Mode::Up => {}
    }
    if state
        .require
        .iter()
        .any(|(name, value)| header(name) != *value)
    {
        state.seen.unauthorized += 1;
        return answer(401, "no tenant or credentials");
    }
    let gzip = header("content-encoding") == "gzip";
    if parts.uri.path() == "/ndjson" {
        let mut text = String::new();
        let decoded = if gzip {
            flate2::read::GzDecoder::new(&body[..])
                .read_to_string(&mut text)
                .map(drop)
        } else {
            String::from_utf8(body.to_vec())
                .map(|t| text = t)
                .map_err(std::io::Error::other)
        };
        if decoded.is_err() || header("content-type") != "application/x-ndjson" {
            return answer(400, "not ndjson");
        }
        for line in text.lines() {
            if serde_json::from_str::<serde_json::Value>(line).is_err() {
                return answer(400, "a line is not JSON");
            }
            state.seen.entries.push(Entry {
                labels: String::new(),
                ts: 0,
                line: line.to_owned(),
            });
        }
        return answer(200, "");
    }
    if parts.uri.path() != "/loki/api/v1/push" {
        return answer(404, "not found");
    }
    let content_type = header("content-type");
    let streams = match decode(&content_type, gzip, &body) {
        Ok(streams) => streams,
        Err(error) => {
            state.seen.rejected += 1;
            return answer(400, &error);
        }
    };
    if content_type.contains("protobuf") {
        state.seen.protobuf += 1;
    } else {
        state.seen.json += 1;
    }
    if gzip {
        state.seen.gzip += 1;
    }
    let poison = state.poison.clone();
    for (labels, entries) in &streams {
        if labels.len() < 3 || !labels.starts_with('{') || !labels.contains('=') {
            state.seen.rejected += 1;
            return answer(400, "error at least one label pair is required per stream");
        }
        if let Some(poison) = &poison {
            if entries
                .iter()
                .any(|(_, line)| line.contains(poison.as_str()))
            {
                state.seen.rejected += 1;
                return answer(400, &format!("stream {labels}: entry has an invalid line"));
            }
        }
        if entries.windows(2).any(|w| w[1].0 < w[0].0) {
            state.seen.unordered += 1;
        }
    }
    for (labels, entries) in streams {
        for (ts, line) in entries {
            state.seen.entries.push(Entry {
                labels: labels.clone(),
                ts,
                line,
            });
        }
    }
    answer(204, "")
}
