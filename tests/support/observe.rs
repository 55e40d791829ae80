//! Observing a running sidewatch: many series at once in one scrape, a
//! collector's `/status` entry, everything it logs, and secret leaks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{client, metric, Sidewatch};

/// How long the waits below poll before failing.
pub const WAIT: Duration = Duration::from_secs(20);

/// A metric name and its exact label set.
pub type Series = (String, Vec<(String, String)>);

/// A [`Series`] from borrowed parts.
pub fn series(name: &str, labels: &[(&str, &str)]) -> Series {
    (
        name.to_owned(),
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// Borrowed label pairs, as [`metric`] takes them.
pub fn as_refs(labels: &[(String, String)]) -> Vec<(&str, &str)> {
    labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Polls `/metrics` until every series has its value in the same scrape;
/// returns that scrape, or panics listing what differs.
pub async fn wait_for_all(sidewatch: &Sidewatch, expected: &[(Series, f64)]) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = sidewatch.metrics().await;
        let wrong: BTreeMap<String, Option<f64>> = expected
            .iter()
            .filter_map(|((name, labels), want)| {
                let got = metric(&text, name, &as_refs(labels));
                (got != Some(*want)).then(|| (format!("{name}{labels:?} want {want}"), got))
            })
            .collect();
        if wrong.is_empty() {
            return text;
        }
        if Instant::now() > deadline {
            panic!("series never matched: {wrong:#?}\nlast scrape:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `/status` until the collector's entry satisfies `accept`.
pub async fn wait_for_status(
    sidewatch: &Sidewatch,
    collector: &str,
    accept: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let body = sidewatch
            .get("/status")
            .await
            .text()
            .await
            .expect("status body");
        let status: serde_json::Value = serde_json::from_str(&body).expect("status JSON");
        let entry = &status["collectors"][collector];
        if accept(entry) {
            return entry.clone();
        }
        if Instant::now() > deadline {
            panic!("{collector} never reached the expected status: {status:#}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Nothing sidewatch served (`/metrics` in both formats, `/status`) or logged
/// holds any of `secrets`.
pub async fn assert_no_secret(sidewatch: &Sidewatch, logs: &Mutex<Vec<u8>>, secrets: &[&str]) {
    let openmetrics = client()
        .get(format!("http://{}/metrics", sidewatch.addr))
        .header("accept", "application/openmetrics-text")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    let status = sidewatch.get("/status").await.text().await.expect("status");
    let served = [sidewatch.metrics().await, openmetrics, status];
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    for secret in secrets {
        for text in served.iter().chain([&logged]) {
            assert!(!text.contains(secret), "a secret leaked:\n{text}");
        }
    }
}

/// Everything sidewatch logs in this test binary, at debug level (where
/// failed collector runs are logged with their messages).
pub fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || LogWriter(writer.clone()))
            .try_init();
        buffer
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
