//! The real binary's proxy with two event loops and the access log on. In
//! the binary (not in this test process) the loops allocate from heaps of
//! their own (`src/allocator.rs`) while the log pipeline's threads stay on
//! glibc, and blocks cross between them: request strings into the access
//! log, bodies grown and freed on either side. A mix of small requests,
//! uploads of many sizes and streamed downloads on 16 concurrent keep-alive
//! connections must all be answered correctly, counted once and logged
//! once, with the process still up.

mod proxy_support;
mod support;

use std::time::{Duration, Instant};

use proxy_support::process::Process;
use proxy_support::spawn_app;
use support::client;

/// Concurrent clients, and requests each sends.
const CLIENTS: usize = 16;
const REQUESTS: usize = 60;

/// The sum of every `http_requests_total` series in `metrics`.
fn requests_counted(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn two_loops_with_the_access_log_answer_count_and_log_every_request() {
    let app = spawn_app().await;
    let log = std::sync::Arc::new(std::sync::OnceLock::new());
    let log_path = log.clone();
    let sidewatch = Process::start_with(app, move |dir| {
        let path = dir.join("access.jsonl");
        let text = format!(
            "threads = 2\naccess_log = true\n[[logs.sinks]]\ntype = \"file\"\npath = \"{}\"\n",
            path.display()
        );
        log_path.set(path).unwrap();
        text
    })
    .await;
    let base = format!("http://{}", sidewatch.proxy);

    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let base = base.clone();
        clients.push(tokio::spawn(async move {
            let http = client();
            for r in 0..REQUESTS {
                match r % 3 {
                    0 => {
                        let reply = http.get(format!("{base}/x/{c}-{r}")).send().await.unwrap();
                        assert_eq!(reply.status(), 200);
                        assert_eq!(reply.text().await.unwrap(), "x");
                    }
                    1 => {
                        let size = (c * REQUESTS + r) * 997 % 300_000;
                        let reply = http
                            .post(format!("{base}/upload"))
                            .body(vec![b'u'; size])
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(reply.status(), 200);
                        assert_eq!(reply.text().await.unwrap(), size.to_string());
                    }
                    _ => {
                        let chunks = 1 + r % 4;
                        let reply = http
                            .get(format!("{base}/download?{chunks}"))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(reply.status(), 200);
                        assert_eq!(reply.bytes().await.unwrap().len(), chunks * 64 * 1024);
                    }
                }
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }

    let sent = (CLIENTS * REQUESTS) as f64;
    let metrics = sidewatch.metrics().await.expect("sidewatch is still up");
    assert_eq!(requests_counted(&metrics), sent, "{metrics}");

    // Every request's event reaches the file sink once.
    let path = log.get().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(15);
    let logged = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let logged: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|e: &serde_json::Value| e["kind"] == "access")
            .collect();
        if logged.len() >= CLIENTS * REQUESTS || Instant::now() > deadline {
            break logged;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(logged.len(), CLIENTS * REQUESTS);
    let ids: std::collections::HashSet<&str> = logged
        .iter()
        .map(|e| e["correlation_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), CLIENTS * REQUESTS, "a request logged twice");
    let uploads = logged.iter().filter(|e| e["path"] == "/upload").count();
    assert_eq!(uploads, CLIENTS * REQUESTS / 3);
    assert!(sidewatch.metrics().await.is_some(), "sidewatch went down");
}
