//! The demo app: a few routes with realistic latencies and some 4xx/5xx, a
//! JSON `/health` with checks that fail now and then, a pool-stats endpoint,
//! one JSON log line per request with its `request_id`, and request metrics
//! on `/metrics`.

use std::convert::Infallible;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rand::Rng;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::metrics::AppMetrics;

/// Lines after which the demo app rotates its log by rename (`app.log` →
/// `app.log.1`), as logrotate would, to show the tailer following it.
const ROTATE_EVERY: u64 = 500;

/// The demo app's JSON log file (shared by its connections), rotated by
/// rename every [`ROTATE_EVERY`] lines.
#[derive(Debug, Clone)]
pub struct LogFile(Arc<Mutex<Log>>);

#[derive(Debug)]
struct Log {
    path: PathBuf,
    file: File,
    lines: u64,
}

impl LogFile {
    /// Opens (creates) the log file for appending.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self(Arc::new(Mutex::new(Log {
            path: path.to_owned(),
            file,
            lines: 0,
        }))))
    }

    fn write(&self, line: &serde_json::Value) {
        let mut log = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(log.file, "{line}");
        log.lines += 1;
        if log.lines % ROTATE_EVERY == 0 {
            let mut rotated = log.path.clone().into_os_string();
            rotated.push(".1");
            let reopened = std::fs::rename(&log.path, &rotated)
                .and_then(|()| OpenOptions::new().create(true).append(true).open(&log.path));
            if let Ok(file) = reopened {
                log.file = file;
            }
        }
    }
}

/// A way the demo app can be told to misbehave (to watch alerts fire).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fault {
    /// Behaves as usual.
    #[default]
    None,
    /// `/health` always reports `fail` with its `db` check failing.
    HealthDown,
    /// Half of the API requests answer 500.
    Errors,
}

impl Fault {
    /// Parses the `SIDEWATCH_DEMO_FAULT` value (unset or empty: none).
    pub fn from_env(value: Option<&str>) -> Result<Self, String> {
        match value.unwrap_or("") {
            "" | "none" => Ok(Fault::None),
            "health-down" => Ok(Fault::HealthDown),
            "errors" => Ok(Fault::Errors),
            other => Err(format!("expected health-down or errors, got {other:?}")),
        }
    }
}

/// Serves the demo app until `stop`.
pub async fn serve(listener: TcpListener, log: LogFile, fault: Fault, stop: CancellationToken) {
    let started = Instant::now();
    let metrics = AppMetrics::default();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            () = stop.cancelled() => return,
        };
        let log = log.clone();
        let metrics = metrics.clone();
        let service = service_fn(move |request| {
            handle(request, log.clone(), metrics.clone(), started, fault)
        });
        let stop = stop.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

async fn handle(
    request: Request<Incoming>,
    log: LogFile,
    metrics: AppMetrics,
    started: Instant,
    fault: Fault,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let begin = Instant::now();
    let path = request.uri().path().to_owned();
    if path == "/metrics" {
        return Ok(Response::builder()
            .header("content-type", crate::telemetry::expfmt::OPENMETRICS_TEXT)
            .body(Full::new(Bytes::from(metrics.encode())))
            .unwrap_or_default());
    }
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("req-{:08x}", rand::rng().random::<u32>()));
    let (status, body, route) = respond(&path, started, fault).await;
    let latency_ms = begin.elapsed().as_millis() as u64;
    // Probes and pool polls are not app traffic: they are not logged or counted.
    if route != "/health" && route != "/debug/pools" {
        let method = request.method().as_str();
        metrics.observe(
            method,
            route,
            status.as_u16(),
            begin.elapsed().as_secs_f64(),
        );
        let level = match status.as_u16() {
            500.. => "error",
            400.. => "warn",
            _ => "info",
        };
        log.write(&json!({
            "timestamp": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            "level": level,
            "request_id": request_id,
            "message": format!("{} {route} -> {}", request.method(), status.as_u16()),
            "method": request.method().as_str(),
            "route": route,
            "path": request.uri().to_string(),
            "status": status.as_u16(),
            "latency_ms": latency_ms,
            "intent": intent_of(&path),
        }));
    }
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-request-id", request_id)
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_default())
}

async fn respond(
    path: &str,
    started: Instant,
    fault: Fault,
) -> (StatusCode, serde_json::Value, &'static str) {
    let (latency, fail_share, route) = match path {
        "/health" if fault == Fault::HealthDown => {
            let body = json!({ "status": "fail", "checks": { "db": "fail", "redis": "ok", "queue": "ok" } });
            return (StatusCode::SERVICE_UNAVAILABLE, body, "/health");
        }
        "/health" => return (StatusCode::OK, health(started), "/health"),
        "/debug/pools" => return (StatusCode::OK, pools(), "/debug/pools"),
        "/api/chat" => ((40, 400), 0.02, "/api/chat"),
        "/api/search" => ((200, 2500), 0.01, "/api/search"),
        p if p.starts_with("/api/orders/") => ((10, 120), 0.0, "/api/orders/:id"),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                json!({"error": "not found"}),
                "unmatched",
            )
        }
    };
    let fail_share = if fault == Fault::Errors {
        0.5
    } else {
        fail_share
    };
    let (status, millis) = {
        let mut rng = rand::rng();
        let millis = rng.random_range(latency.0..=latency.1);
        let status = if rng.random_bool(fail_share) {
            StatusCode::INTERNAL_SERVER_ERROR
        } else if route == "/api/orders/:id" && rng.random_bool(0.08) {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        };
        (status, millis)
    };
    tokio::time::sleep(Duration::from_millis(millis)).await;
    (status, json!({ "ok": status.is_success() }), route)
}

/// `redis` fails in one 20-second window of every seven, `db` in one 30-second
/// window of every ten (then the app reports itself down).
fn health(started: Instant) -> serde_json::Value {
    let secs = started.elapsed().as_secs() + 10;
    let redis = if (secs / 20) % 7 == 3 { "fail" } else { "ok" };
    let db = if (secs / 30) % 10 == 7 { "fail" } else { "ok" };
    let overall = match (db, redis) {
        ("fail", _) => "fail",
        (_, "fail") => "warn",
        _ => "ok",
    };
    json!({ "status": overall, "checks": { "db": db, "redis": redis, "queue": "ok" } })
}

/// Pool stats in HikariCP's `HikariPoolMXBean` shape (sidewatch's `hikaricp`
/// pool preset reads it as is).
fn pools() -> serde_json::Value {
    let mut rng = rand::rng();
    let active: u32 = rng.random_range(1..=9);
    json!({
        "pools": [{
            "poolName": "primary",
            "activeConnections": active,
            "idleConnections": 10 - active,
            "totalConnections": 10,
            "threadsAwaitingConnection": if active > 8 { 2 } else { 0 },
            "maximumPoolSize": 10,
        }],
        "at": SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs(),
    })
}

fn intent_of(path: &str) -> &'static str {
    match path {
        "/api/chat" => ["faq", "billing", "smalltalk"][rand::rng().random_range(0..3)],
        "/api/search" => "search",
        _ => "order",
    }
}
