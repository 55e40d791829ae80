//! Reload under load, against the real binary: a writer appends ~20k JSON
//! lines/s to a tailed file and a client sends ~500 requests/s through the
//! proxy (to a real HTTP app on loopback, tests/proxy_support) while a
//! reload changes the file sink's path, a log rule's buckets (and adds a
//! rule) and the proxy's duration buckets. Every line must arrive (in the
//! old or the new sink file), every request must succeed, the unchanged
//! counters must carry on, and the new buckets must show.

mod logs_support;
mod proxy_support;
mod reload_support;
mod support;

use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logs_support::{delivered_ids, line, Layout};
use reload_support::{admin_section, free_port, replace, Proc};
use support::metric;

const LINES_PER_SECOND: u64 = 20_000;
const REQUESTS_PER_SECOND: u64 = 500;
const LOAD: Duration = Duration::from_secs(5);

struct Knobs<'a> {
    sink: &'a Path,
    rule_buckets: &'a str,
    proxy_buckets: &'a str,
    extra_rule: &'a str,
}

fn config(
    layout: &Layout,
    admin: u16,
    actions: u16,
    proxy: u16,
    app: SocketAddr,
    k: &Knobs,
) -> String {
    format!(
        r#"{head}
[logs]
state_dir = "{state}"
[[logs.sources]]
name = "app"
include = ["{logs}/app.log"]
scan_interval = "100ms"
poll_interval = "20ms"
[[logs.sinks]]
name = "out"
type = "file"
path = "{sink}"
max_bytes = 0
[routes]
templates = ["/api/orders/{{id}}"]
[proxy]
listen = "127.0.0.1:{proxy}"
upstream = "{app}"
duration_buckets = {proxy_buckets}
[[log_metrics]]
name = "app_lines_total"
match = {{ field = "seq", exists = true }}
[[log_metrics]]
name = "app_latency_seconds"
type = "histogram"
value_field = "latency_ms"
value_unit = "ms"
match = {{ field = "seq", exists = true }}
buckets = {rule_buckets}
{extra_rule}
"#,
        head = admin_section(admin, actions),
        state = layout.state().display(),
        logs = layout.logs().display(),
        sink = k.sink.display(),
        proxy_buckets = k.proxy_buckets,
        rule_buckets = k.rule_buckets,
        extra_rule = k.extra_rule,
    )
}

/// Appends `total` lines at about `LINES_PER_SECOND`, in 10 ms batches.
fn write_lines(path: &Path, total: u64) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let per_batch = LINES_PER_SECOND / 100;
    let start = Instant::now();
    let mut id = 0;
    let mut batch = String::new();
    while id < total {
        batch.clear();
        for _ in 0..per_batch.min(total - id) {
            batch.push_str(&line(id, 0, id));
            id += 1;
        }
        file.write_all(batch.as_bytes()).unwrap();
        let due = start + Duration::from_millis(10 * id / per_batch);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

/// Sends `total` requests at about `REQUESTS_PER_SECOND`; returns what
/// went wrong with those that failed.
async fn send_requests(base: String, total: u64) -> Vec<String> {
    let client = support::client();
    let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / REQUESTS_PER_SECOND));
    let mut requests = Vec::new();
    for i in 0..total {
        tick.tick().await;
        let (client, failed, url) = (
            client.clone(),
            failed.clone(),
            format!("{base}/api/orders/{i}"),
        );
        requests.push(tokio::spawn(async move {
            let problem = match client.get(&url).send().await {
                Ok(r) if r.status() == 200 => match r.text().await {
                    Ok(t) if t == "order" => None,
                    Ok(t) => Some(format!("body {t:?}")),
                    Err(e) => Some(format!("body error: {e:?}")),
                },
                Ok(r) => Some(format!("status {}", r.status())),
                Err(e) => Some(format!("error: {e:?}")),
            };
            if let Some(problem) = problem {
                failed.lock().unwrap().push(format!("{url}: {problem}"));
            }
        }));
    }
    for request in requests {
        request.await.unwrap();
    }
    let failed = failed.lock().unwrap().clone();
    failed
}

fn bucket_bounds(text: &str, family: &str) -> HashSet<String> {
    let prefix = format!("{family}_bucket{{");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| {
            rest.split("le=\"")
                .nth(1)?
                .split('"')
                .next()
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_loses_nothing_and_keeps_counters() {
    let app = proxy_support::spawn_app().await;
    let layout = Layout::new();
    let (admin, actions, proxy) = (free_port(), free_port(), free_port());
    let (out1, out2) = (
        layout.dir.path().join("out/one.log"),
        layout.dir.path().join("out/two.log"),
    );
    let path = layout.dir.path().join("sidewatch.toml");
    let before = Knobs {
        sink: &out1,
        rule_buckets: "[0.1, 0.2]",
        proxy_buckets: "[0.005, 0.5, 5]",
        extra_rule: "",
    };
    std::fs::write(&path, config(&layout, admin, actions, proxy, app, &before)).unwrap();
    let log = layout.logs().join("app.log");
    std::fs::write(&log, "").unwrap();
    let sw = Proc::start(&path, admin, actions, false).await;

    let lines = LINES_PER_SECOND * LOAD.as_secs();
    let requests = REQUESTS_PER_SECOND * LOAD.as_secs();
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || write_lines(&log, lines))
    };
    let client = tokio::spawn(send_requests(format!("http://127.0.0.1:{proxy}"), requests));

    tokio::time::sleep(LOAD * 2 / 5).await;
    let text = sw.metrics().await;
    let rule_before = metric(&text, "app_lines_total", &[]).unwrap();
    let requests_before = metric(
        &text,
        "http_requests_total",
        &[
            ("method", "GET"),
            ("route", "/api/orders/{id}"),
            ("status", "200"),
        ],
    )
    .unwrap();
    assert!(
        rule_before > 0.0 && requests_before > 0.0,
        "load is flowing"
    );
    let dropped_before = metric(&text, "sidewatch_proxy_access_log_dropped_total", &[]);
    let after = Knobs {
        sink: &out2,
        rule_buckets: "[0.1, 0.15, 0.2]",
        proxy_buckets: "[0.05, 0.5, 5]",
        extra_rule: "[[log_metrics]]\nname = \"app_slow_lines_total\"\nmatch = { field = \"latency_ms\", gt = 100 }\n",
    };
    replace(&path, &config(&layout, admin, actions, proxy, app, &after));
    let reloaded_at = Instant::now();
    let (code, answer) = sw.reload().await;
    let reload_took = reloaded_at.elapsed();
    assert_eq!(code, 200, "{answer}");
    for component in ["log_rules", "log_pipeline", "proxy"] {
        assert!(
            answer["rebuilt"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == component),
            "{component} not rebuilt: {answer}"
        );
    }
    assert_eq!(
        answer["changed"],
        serde_json::json!(["log_metrics", "logs", "proxy"])
    );

    writer.join().unwrap();
    let failed = client.await.unwrap();
    assert!(
        failed.is_empty(),
        "{} proxied requests failed across the reload, e.g. {:?}\n{}",
        failed.len(),
        &failed[..failed.len().min(5)],
        sw.metrics()
            .await
            .lines()
            .filter(|l| l.starts_with("sidewatch_proxy_"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Every line reaches the old or the new sink file.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (seen, duplicates) = loop {
        let mut all = delivered_ids(&out1);
        all.extend(delivered_ids(&out2));
        let total = all.len();
        let seen: HashSet<u64> = all.into_iter().collect();
        if seen.len() as u64 == lines {
            break (seen, total - lines as usize);
        }
        assert!(
            Instant::now() < deadline,
            "{} of {lines} lines delivered",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!((0..lines).all(|id| seen.contains(&id)));
    assert!(!delivered_ids(&out2).is_empty(), "the new sink got lines");
    eprintln!(
        "reload under load: {lines} lines, {requests} requests, reload took {reload_took:?}, {duplicates} lines delivered twice"
    );

    let text = sw.metrics().await;
    // The access-log queue outlives the pipeline generation: events of
    // requests that ended while the pipeline was rebuilt wait in it.
    let dropped_after = metric(&text, "sidewatch_proxy_access_log_dropped_total", &[]);
    assert_eq!(dropped_before, Some(0.0));
    assert_eq!(
        dropped_after,
        Some(0.0),
        "access-log events dropped at the reload"
    );
    // Unchanged metrics carried on over the rebuild.
    let served = metric(
        &text,
        "http_requests_total",
        &[
            ("method", "GET"),
            ("route", "/api/orders/{id}"),
            ("status", "200"),
        ],
    )
    .unwrap();
    assert_eq!(
        served, requests as f64,
        "http_requests_total counts every request"
    );
    let rule = metric(&text, "app_lines_total", &[]).unwrap();
    assert!(
        rule >= lines as f64,
        "unchanged rule carried on: {rule} < {lines}"
    );
    let read = metric(
        &text,
        "sidewatch_log_events_total",
        &[("source", "app"), ("outcome", "ok")],
    )
    .unwrap();
    assert!(read >= lines as f64, "pipeline counter carried on: {read}");
    let sunk = metric(
        &text,
        "sidewatch_sink_events_total",
        &[("sink", "out"), ("outcome", "delivered")],
    )
    .unwrap();
    assert!(sunk >= lines as f64, "sink counter carried on: {sunk}");
    // Changed buckets took effect.
    let rule_bounds = bucket_bounds(&text, "app_latency_seconds");
    assert!(rule_bounds.contains("0.15"), "{rule_bounds:?}");
    let rule_count = metric(&text, "app_latency_seconds_count", &[]).unwrap();
    assert!(
        rule_count < lines as f64,
        "the changed rule started afresh: {rule_count}"
    );
    let proxy_bounds = bucket_bounds(&text, "http_request_duration_seconds");
    assert!(
        proxy_bounds.contains("0.05") && !proxy_bounds.contains("0.005"),
        "{proxy_bounds:?}"
    );
    // The new rule runs.
    assert!(metric(&text, "app_slow_lines_total", &[]).unwrap() > 0.0);
    let status = sw.status().await;
    assert_eq!(status["config"]["last_reload"]["success"], true);
    sw.stop();
}
