//! End to end: `sidewatch demo` (told to fail its health check) with a real
//! PostgreSQL and Redis, sidewatch and the demo app's own request metrics
//! scraped every second by a real Prometheus that loads the generated rule files. Through Prometheus's HTTP API: every rule group
//! loads healthy, every recording rule and every dashboard panel expression
//! (variables substituted) parses and returns data — except those listed in
//! [`NOT_PRODUCED`] with the reason — and `AppHealthCheckFailing` really fires.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::postgres::{free_port, PgServer};
use support::redis::RedisServer;

const BIN: &str = env!("CARGO_BIN_EXE_sidewatch");
const INSTALL: &str = "apt-get install -y prometheus";

/// Metric families this test cannot produce, with why. An expression that
/// returns nothing passes only if it uses one of these and Prometheus holds
/// no series of it (so the list cannot hide a family that starts to exist).
const NOT_PRODUCED: &[(&str, &str)] = &[
    ("container_", "cAdvisor series: no kubelet here"),
    ("kube_", "kube-state-metrics series: no Kubernetes here"),
    ("app_process_", "needs the app as a separate process (shareProcessNamespace); the demo app runs inside sidewatch"),
    ("app_container_", "the app container's limits come from Downward API env vars, unset here"),
    ("sidewatch_container_memory_limit_bytes", "sidewatch runs without a cgroup memory limit here"),
    ("app_request_duration_seconds", "log-derived histogram of the demo's log rules (log-metrics issue)"),
    ("chat_messages_received_total", "work counters of the seeds' chat service; the demo app has no message queue"),
    ("chat_messages_processed_total", "work counters of the seeds' chat service; the demo app has no message queue"),
    ("sidewatch_log_rule_errors_total", "log rules (log-metrics issue)"),
    ("sidewatch_statsd_packets_total", "StatsD intake (log-metrics issue); nothing pushes StatsD here"),
    ("sidewatch_label_overflow_total", "label cap counter (log-metrics issue)"),
    ("sidewatch_sink_retries_total", "network sinks with retries (Loki/OTLP issue); the demo writes to stdout"),
    ("sidewatch_buffer_", "sink disk buffers (Loki/OTLP issue); the demo writes to stdout"),
    ("sidewatch_dead_letter_events_total", "dead-lettering network sinks (Loki/OTLP issue)"),
    ("grpc_server_handled_total", "gRPC calls through the proxy (tests/proxy_grpc.rs); the demo app speaks plain HTTP"),
];

/// Dashboard variables as the test substitutes them. `$metric`/`$label`
/// (business dashboard) use a counter the demo has in place of a business one.
const VARIABLES: &[(&str, &str)] = &[
    ("$__rate_interval", "1m"),
    ("$namespace", "e2e"),
    ("$job", "(sidewatch|demo-app)"),
    ("$pod", "demo-0"),
    ("$metric", "sidewatch_log_events_total"),
    ("$label", "source"),
    ("$topn", "10"),
];

/// Kills a child process when the test ends, however it ends.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Starts the demo misbehaving; returns it and its admin address.
fn start_demo(tmp: &Path, app_port: u16, database_url: &str, redis_url: &str) -> (Reaper, String) {
    let mut child = Command::new(BIN)
        .arg("demo")
        .env_remove("SIDEWATCH_CONFIG")
        .env("SIDEWATCH__ADMIN__LISTEN", "127.0.0.1:0")
        .env("SIDEWATCH_DEMO_APP_ADDR", format!("127.0.0.1:{app_port}"))
        .env("SIDEWATCH_DEMO_FAULT", "health-down")
        .env("SIDEWATCH__POD__IP", "127.0.0.1")
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", redis_url)
        .env("TMPDIR", tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sidewatch demo starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("sidewatch on http://").nth(1) {
                let _ = tx.send(rest.split('/').next().unwrap_or_default().to_owned());
            }
        }
    });
    let reaper = Reaper(child);
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the demo prints its admin address");
    (reaper, addr)
}

/// Prometheus scraping sidewatch (job `sidewatch`) and the demo app's own
/// request metrics (job `demo-app`), both as pod `e2e/demo-0`.
fn start_prometheus(dir: &Path, port: u16, sidewatch: &str, app: &str) -> Reaper {
    let program = support::require_program("prometheus", INSTALL);
    let rules = repo().join("alert-rules");
    let mut config = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
         rule_files: ['{}', '{}']\n\
         scrape_configs:\n",
        rules.join("recording.yaml").display(),
        rules.join("alerts.yaml").display(),
    );
    for (job, target) in [("sidewatch", sidewatch), ("demo-app", app)] {
        config.push_str(&format!(
            "  - job_name: {job}\n    static_configs:\n      \
             - {{targets: ['{target}'], labels: {{namespace: e2e, pod: demo-0}}}}\n"
        ));
    }
    let file = dir.join("prometheus.yml");
    std::fs::write(&file, config).expect("write prometheus.yml");
    let child = Command::new(program)
        .arg(format!("--config.file={}", file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts");
    Reaper(child)
}

/// `GET /api/v1/<path>` as JSON (`None` while Prometheus is not answering).
async fn api(base: &str, path: &str, query: &[(&str, &str)]) -> Option<Value> {
    let response = support::client()
        .get(format!("{base}/api/v1/{path}"))
        .query(query)
        .send()
        .await
        .ok()?;
    serde_json::from_str(&response.text().await.ok()?).ok()
}

/// Polls `check` every 500 ms until it returns `Some`, or panics with `what`.
async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every panel expression of every dashboard, with its dashboard and title.
fn panel_expressions() -> Vec<(String, String)> {
    let mut found = Vec::new();
    for path in sidewatch::slo::dashboards(&repo()).expect("dashboards") {
        let text = std::fs::read_to_string(repo().join(&path)).expect("read dashboard");
        let dashboard: Value = serde_json::from_str(&text).expect("dashboard JSON");
        let panels = dashboard["panels"].as_array().cloned().unwrap_or_default();
        for panel in panels.iter().chain(
            panels
                .iter()
                .flat_map(|p| p["panels"].as_array().into_iter().flatten()),
        ) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    let mut expr = expr.to_owned();
                    for (name, value) in VARIABLES {
                        expr = expr.replace(name, value);
                    }
                    found.push((
                        format!(
                            "{} / {}",
                            path.display(),
                            panel["title"].as_str().unwrap_or("?")
                        ),
                        expr,
                    ));
                }
            }
        }
    }
    found
}

/// Every recording rule's name and expression in the generated file.
fn recording_rules() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(repo().join(sidewatch::slo::RECORDING)).expect("recording rules");
    let mut rules = Vec::new();
    let mut record = None;
    for line in text.lines().map(str::trim) {
        let unquote = |s: &str| s.trim().trim_matches('\'').replace("''", "'");
        if let Some(name) = line.strip_prefix("- record:") {
            record = Some(unquote(name));
        } else if let (Some(expr), Some(name)) = (line.strip_prefix("expr:"), record.take()) {
            rules.push((format!("recording rule {name}"), unquote(expr)));
        }
    }
    rules
}

/// `expr` followed by the expressions of the recorded series it reads, recursively.
fn expand(expr: &str, rules: &[(String, String)]) -> String {
    let mut text = expr.to_owned();
    for (name, rule) in rules {
        let record = name.trim_start_matches("recording rule ");
        if expr.contains(record) && rule != expr {
            text.push(' ');
            text.push_str(&expand(rule, rules));
        }
    }
    text
}

/// Whether `expr` names a metric starting with `prefix` (not inside a longer name).
fn mentions(expr: &str, prefix: &str) -> bool {
    expr.match_indices(prefix).any(|(at, _)| {
        !expr[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    })
}

/// Checks one expression; `Err` says why it fails.
async fn evaluate(
    base: &str,
    expr: &str,
    rules: &[(String, String)],
) -> Result<Option<String>, String> {
    let answer = api(base, "query", &[("query", expr)])
        .await
        .ok_or("no answer")?;
    if answer["status"] != "success" {
        return Err(format!("does not evaluate: {}", answer["error"]));
    }
    let result = answer["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if result.iter().any(|series| series["value"][1] == "NaN") {
        return Err(format!("returns NaN: {}", answer["data"]));
    }
    if !result.is_empty() {
        return Ok(None);
    }
    let expanded = expand(expr, rules);
    let mut reasons = Vec::new();
    for (prefix, reason) in NOT_PRODUCED {
        if mentions(&expanded, prefix) {
            let count = format!("count({{__name__=~\"{prefix}.*\"}})");
            let present = api(base, "query", &[("query", &count)]).await;
            if present.is_some_and(|a| {
                a["data"]["result"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())
            }) {
                return Err(format!("returns nothing although {prefix}* series exist"));
            }
            reasons.push(*reason);
        }
    }
    if !reasons.is_empty() {
        return Ok(Some(reasons.join("; ")));
    }
    Err("returns nothing".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_and_dashboards_work_against_a_real_prometheus() {
    support::require_program("prometheus", INSTALL);
    let dir = tempfile::tempdir().expect("tempdir");
    let pg = PgServer::start(&[]);
    pg.psql("CREATE ROLE watcher LOGIN PASSWORD 'e2e-pw' IN ROLE pg_monitor");
    let redis = RedisServer::start(&[]);
    let database_url = format!(
        "postgres://watcher:e2e-pw@127.0.0.1:{}/postgres?sslmode=disable",
        pg.port
    );
    let app_port = free_port();
    let (_demo, admin) = start_demo(dir.path(), app_port, &database_url, &redis.url(""));
    let port = free_port();
    let _prometheus = start_prometheus(dir.path(), port, &admin, &format!("127.0.0.1:{app_port}"));
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();

    wait_for("both targets to be up", Duration::from_secs(30), || async {
        let targets = api(&base, "targets", &[]).await?;
        let active = targets["data"]["activeTargets"].as_array()?.clone();
        (active.len() == 2 && active.iter().all(|t| t["health"] == "up")).then_some(())
    })
    .await;
    wait_for(
        "every rule to evaluate healthy",
        Duration::from_secs(30),
        || async {
            let rules = api(&base, "rules", &[]).await?;
            let groups = rules["data"]["groups"].as_array()?.clone();
            let all: Vec<Value> = groups
                .iter()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            let unhealthy: Vec<String> = all
                .iter()
                .filter(|r| r["health"] != "ok")
                .map(|r| format!("{} {}", r["name"], r["lastError"]))
                .collect();
            (groups.len() == 4 && !all.is_empty() && unhealthy.is_empty()).then_some(())
        },
    )
    .await;
    // Traffic: the demo drives its own app; a few Redis lookups give a hit ratio.
    for i in 0..20 {
        redis.cli(&["GET", &format!("key-{i}")]);
    }
    tokio::time::sleep(Duration::from_secs(12)).await;

    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    let rules = recording_rules();
    for (name, expr) in panel_expressions().into_iter().chain(rules.clone()) {
        match evaluate(&base, &expr, &rules).await {
            Ok(None) => {}
            Ok(Some(reason)) => skipped.push(format!("{name}: {reason}")),
            Err(why) => failures.push(format!("{name}: {why}\n    {expr}")),
        }
    }
    eprintln!(
        "expressions left empty, with reasons:\n  {}",
        skipped.join("\n  ")
    );
    assert!(
        failures.is_empty(),
        "{} expressions fail:\n{}",
        failures.len(),
        failures.join("\n")
    );

    let alert = wait_for(
        "AppHealthCheckFailing to fire",
        Duration::from_secs(120),
        || async {
            let alerts = api(&base, "alerts", &[]).await?;
            alerts["data"]["alerts"]
                .as_array()?
                .iter()
                .find(|a| {
                    a["labels"]["alertname"] == "AppHealthCheckFailing"
                        && a["state"] == "firing"
                        && a["labels"]["target"] == "demo-app"
                })
                .cloned()
        },
    )
    .await;
    assert_eq!(alert["labels"]["severity"], "critical", "{alert}");
    assert_eq!(alert["labels"]["namespace"], "e2e", "{alert}");
    let description = alert["annotations"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        description.contains("demo-app") && description.contains("e2e/demo-0"),
        "{alert}"
    );
    assert!(
        alert["annotations"]["runbook_url"]
            .as_str()
            .unwrap_or_default()
            .ends_with("/AppHealthCheckFailing.md"),
        "{alert}"
    );
    let alerts = api(&base, "alerts", &[]).await.expect("alerts");
    for quiet in ["ServiceDown", "PostgresDown", "RedisDown"] {
        assert!(
            !alerts["data"]["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a["labels"]["alertname"] == quiet),
            "{quiet} is pending or firing: {alerts}"
        );
    }
    eprintln!("end to end took {:.0?}", started.elapsed());
}
