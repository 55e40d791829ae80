//! Hot reload against the real binary: files that cannot be loaded (broken
//! TOML, a half-written file, a directory, a permission error) keep the old
//! configuration running and show the error in `/status` and
//! `sidewatch_config_last_reload_successful`; a listener change is refused
//! as needing a restart; SIGHUP reloads; with `reload.watch_config` a
//! Kubernetes-ConfigMap-style `..data` symlink swap triggers a reload.

mod reload_support;
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use reload_support::{admin_section, free_port, replace, Proc};

/// A TCP listener the health probes can reach, for as long as the test runs.
fn probe_target() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap()
}

fn targets(target: &std::net::TcpListener, names: &[&str]) -> String {
    let addr = target.local_addr().unwrap();
    names
        .iter()
        .map(|name| {
            format!(
                "[[health.targets]]\nname = \"{name}\"\ntcp = \"{addr}\"\ninterval = \"200ms\"\n"
            )
        })
        .collect()
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next().map(|uid| uid == "0"))
        .unwrap_or(false)
}

/// One failed reload: 400 naming `expect` in the error, `/status` and the
/// gauge say so, and the old config (target `a`, no `b`) still runs.
async fn assert_rejected(sw: &Proc, expect: &str) {
    let (code, answer) = sw.reload().await;
    assert_eq!(code, 400, "{answer}");
    let error = answer["error"].as_str().unwrap_or_default().to_owned();
    assert!(
        error.contains(expect),
        "error {error:?} should mention {expect:?}"
    );
    let status = sw.status().await;
    let last = &status["config"]["last_reload"];
    assert_eq!(last["success"], false, "{status:#}");
    assert_eq!(last["trigger"], "http");
    assert_eq!(last["error"].as_str(), Some(error.as_str()));
    let text = sw.metrics().await;
    assert_eq!(
        support::metric(&text, "sidewatch_config_last_reload_successful", &[]),
        Some(0.0)
    );
    assert!(support::metric(&text, "sidewatch_target_up", &[("target", "a")]).is_some());
    assert!(support::metric(&text, "sidewatch_target_up", &[("target", "b")]).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unloadable_files_keep_the_old_config_and_sighup_reloads() {
    let as_nobody = running_as_root();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("sidewatch.toml");
    let target = probe_target();
    let (admin, actions) = (free_port(), free_port());
    let head = admin_section(admin, actions);
    let old = format!("{head}{}", targets(&target, &["a"]));
    std::fs::write(&path, &old).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let sw = Proc::start(&path, admin, actions, as_nobody).await;
    let start = sw
        .value(
            "sidewatch_config_last_reload_success_timestamp_seconds",
            &[],
        )
        .await
        .expect("success timestamp at start");
    assert!(start > 1.7e9, "{start}");
    assert_eq!(
        sw.value("sidewatch_config_last_reload_successful", &[])
            .await,
        Some(1.0)
    );
    let status = sw.status().await;
    assert_eq!(status["config"]["file"].as_str(), path.to_str());

    let new = format!("{head}{}", targets(&target, &["a", "b"]));
    // Broken TOML.
    replace(&path, &format!("{new}[[health.targets\n"));
    assert_rejected(&sw, "cannot parse configuration").await;
    // Half-written: the writer was caught mid-way (in place, no rename).
    let cut = new.rfind("tcp = \"").unwrap() + 10;
    std::fs::write(&path, &new[..cut]).unwrap();
    assert_rejected(&sw, "configuration").await;
    // A directory where the file was.
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    assert_rejected(&sw, "cannot read").await;
    std::fs::remove_dir(&path).unwrap();
    // Unreadable (sidewatch runs as nobody when the test runs as root).
    std::fs::write(&path, &new).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    assert_rejected(&sw, "ermission denied").await;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    // A valid file whose listener change needs a restart: refused whole.
    let moved = admin_section(free_port(), actions);
    replace(&path, &format!("{moved}{}", targets(&target, &["a", "b"])));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_rejected(&sw, "need a restart: admin").await;
    // An invalid value is reported by key.
    replace(
        &path,
        &format!("{head}{}", targets(&target, &["a", "b"])).replace("200ms", "0s"),
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_rejected(&sw, "health.targets[0].interval").await;
    assert_eq!(
        sw.value("sidewatch_config_reloads_total", &[("result", "failure")])
            .await,
        Some(6.0)
    );

    // SIGHUP with the valid file: target `b` is added, `a` carries on.
    replace(&path, &new);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let runs_before = sw.status().await["collectors"]["health/a"]["runs"]
        .as_u64()
        .unwrap_or(0);
    sw.signal("HUP");
    let status = sw
        .wait_status(Duration::from_secs(10), "SIGHUP reload", |s| {
            s["config"]["last_reload"]["trigger"] == "sighup"
        })
        .await;
    let last = &status["config"]["last_reload"];
    assert_eq!(last["success"], true, "{status:#}");
    assert_eq!(last["changed"], serde_json::json!(["health"]));
    assert_eq!(last["rebuilt"], serde_json::json!(["collectors"]));
    reload_support::wait_until(Duration::from_secs(10), "target b up", || async {
        sw.value("sidewatch_target_up", &[("target", "b")]).await == Some(1.0)
    })
    .await;
    let text = sw.metrics().await;
    assert_eq!(
        support::metric(&text, "sidewatch_config_last_reload_successful", &[]),
        Some(1.0)
    );
    let success = support::metric(
        &text,
        "sidewatch_config_last_reload_success_timestamp_seconds",
        &[],
    )
    .unwrap();
    assert!(success > start, "{success} should be after {start}");
    // The collector's scheduler counters carried on (runs did not restart).
    let runs_after = sw.status().await["collectors"]["health/a"]["runs"]
        .as_u64()
        .unwrap_or(0);
    assert!(runs_after >= runs_before, "{runs_after} < {runs_before}");
    sw.stop();
}

/// A ConfigMap volume as the kubelet writes it: `..<timestamp>/` holds the
/// files, `..data` points at it, the file names point into `..data`; an
/// update writes a new directory, swaps `..data` with a rename and deletes
/// the old directory.
fn configmap_update(dir: &Path, generation: &str, text: &str) {
    let data = dir.join(format!("..{generation}"));
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("sidewatch.toml"), text).unwrap();
    let old = std::fs::read_link(dir.join("..data")).ok();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{generation}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    if !dir.join("sidewatch.toml").exists() {
        std::os::unix::fs::symlink("..data/sidewatch.toml", dir.join("sidewatch.toml")).unwrap();
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_config_follows_a_configmap_symlink_swap() {
    let dir = tempfile::tempdir().unwrap();
    let target = probe_target();
    let (admin, actions) = (free_port(), free_port());
    let head = format!(
        "{}[reload]\nwatch_config = true\nwatch_interval = \"200ms\"\n",
        admin_section(admin, actions)
    );
    configmap_update(
        dir.path(),
        "2026_12_01_a",
        &format!("{head}{}", targets(&target, &["a"])),
    );
    let path = dir.path().join("sidewatch.toml");
    let sw = Proc::start(&path, admin, actions, false).await;
    configmap_update(
        dir.path(),
        "2026_12_01_b",
        &format!("{head}{}", targets(&target, &["a", "b"])),
    );
    let status = sw
        .wait_status(Duration::from_secs(10), "reload after the swap", |s| {
            s["config"]["last_reload"]["trigger"] == "watch"
        })
        .await;
    assert_eq!(
        status["config"]["last_reload"]["success"], true,
        "{status:#}"
    );
    assert_eq!(status["config"]["watch"], true);
    reload_support::wait_until(Duration::from_secs(10), "target b up", || async {
        sw.value("sidewatch_target_up", &[("target", "b")]).await == Some(1.0)
    })
    .await;
    // Removing target `a` drops its series and its /status entry.
    configmap_update(
        dir.path(),
        "2026_12_01_b2",
        &format!("{head}{}", targets(&target, &["b"])),
    );
    reload_support::wait_until(Duration::from_secs(10), "target a forgotten", || async {
        sw.value("sidewatch_target_up", &[("target", "a")])
            .await
            .is_none()
    })
    .await;
    let status = sw.status().await;
    assert!(status["collectors"].get("health/a").is_none(), "{status:#}");
    assert!(status["collectors"].get("health/b").is_some(), "{status:#}");
    let text = sw.metrics().await;
    assert!(support::metric(
        &text,
        "sidewatch_collector_up",
        &[("collector", "health/a")]
    )
    .is_none());
    assert!(!text.contains("target=\"a\""), "{text}");
    // A broken update is seen too, and keeps the running config.
    configmap_update(dir.path(), "2026_12_01_c", "[[health.targets\n");
    let status = sw
        .wait_status(
            Duration::from_secs(10),
            "failed reload after the swap",
            |s| s["config"]["last_reload"]["success"] == false,
        )
        .await;
    assert_eq!(status["config"]["last_reload"]["trigger"], "watch");
    assert_eq!(
        sw.value("sidewatch_target_up", &[("target", "b")]).await,
        Some(1.0)
    );
    sw.stop();
}

fn statsd_config(admin: u16, actions: u16, udp: u16, name: &str, buckets: &str) -> String {
    format!(
        "{}[statsd]\nenabled = true\nlisten = \"127.0.0.1:{udp}\"\nbuckets = {buckets}\n[[statsd.mappings]]\nmatch = \"app.*.requests\"\nname = \"{name}\"\nlabels = {{ endpoint = \"$1\" }}\n",
        admin_section(admin, actions)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statsd_mappings_and_buckets_change_on_the_same_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sidewatch.toml");
    let (admin, actions) = (free_port(), free_port());
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = udp.local_addr().unwrap().port();
    drop(udp);
    std::fs::write(
        &path,
        statsd_config(admin, actions, port, "app_requests_total", "[]"),
    )
    .unwrap();
    let sw = Proc::start(&path, admin, actions, false).await;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let send = |packet: &[u8]| socket.send_to(packet, ("127.0.0.1", port)).unwrap();
    send(b"app.login.requests:1|c\ndb.query:120|ms");
    reload_support::wait_until(Duration::from_secs(10), "first samples", || async {
        sw.value("app_requests_total", &[("endpoint", "login")])
            .await
            == Some(1.0)
    })
    .await;

    replace(
        &path,
        &statsd_config(admin, actions, port, "app_calls_total", "[0.05, 0.5]"),
    );
    let (code, answer) = sw.reload().await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["rebuilt"], serde_json::json!(["statsd"]));
    send(b"app.login.requests:1|c\ndb.query:120|ms");
    reload_support::wait_until(Duration::from_secs(10), "samples after reload", || async {
        sw.value("app_calls_total", &[("endpoint", "login")]).await == Some(1.0)
    })
    .await;
    let text = sw.metrics().await;
    assert!(support::metric(&text, "app_requests_total", &[("endpoint", "login")]).is_none());
    assert_eq!(
        support::metric(&text, "db_query_bucket", &[("le", "0.5")]),
        Some(1.0),
        "new buckets:\n{text}"
    );
    assert!(support::metric(&text, "db_query_bucket", &[("le", "0.25")]).is_none());
    // The intake's own counters carried on over the swap.
    assert_eq!(
        support::metric(
            &text,
            "sidewatch_statsd_packets_total",
            &[("outcome", "ok")]
        ),
        Some(2.0)
    );
    // The socket itself cannot move without a restart.
    let moved = free_port();
    replace(
        &path,
        &statsd_config(admin, actions, moved, "app_calls_total", "[0.05, 0.5]"),
    );
    let (code, answer) = sw.reload().await;
    assert_eq!(code, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("statsd.listen"),
        "{answer}"
    );
    sw.stop();
}

fn intake_config(state: &Path, admin: u16, actions: u16, tcp: u16, buckets: &str) -> String {
    format!(
        r#"{}[logs]
state_dir = "{}"
[[logs.sources]]
name = "intake"
type = "tcp"
listen = "127.0.0.1:{tcp}"
[[logs.sinks]]
name = "null"
type = "discard"
[[log_metrics]]
name = "intake_lines_total"
[[log_metrics]]
name = "intake_latency_seconds"
type = "histogram"
value_field = "latency_ms"
value_unit = "ms"
buckets = {buckets}
"#,
        admin_section(admin, actions),
        state.display()
    )
}

/// A change of log rules alone is swapped into the running pipeline: the
/// TCP intake connection stays open, the unchanged rule carries on and the
/// changed one shows its new buckets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_rules_change_in_place_without_dropping_an_intake_connection() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sidewatch.toml");
    let (admin, actions, tcp) = (free_port(), free_port(), free_port());
    std::fs::write(
        &path,
        intake_config(dir.path(), admin, actions, tcp, "[0.1, 0.2]"),
    )
    .unwrap();
    let sw = Proc::start(&path, admin, actions, false).await;
    let mut client = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    let lines = |n: usize| "{\"latency_ms\":150}\n".repeat(n);
    client.write_all(lines(10).as_bytes()).unwrap();
    reload_support::wait_until(Duration::from_secs(10), "10 lines counted", || async {
        sw.value("intake_lines_total", &[]).await == Some(10.0)
    })
    .await;
    replace(
        &path,
        &intake_config(dir.path(), admin, actions, tcp, "[0.1, 0.15, 0.2]"),
    );
    let (code, answer) = sw.reload().await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["rebuilt"], serde_json::json!(["log_rules"]));
    // The same connection keeps working.
    client.write_all(lines(5).as_bytes()).unwrap();
    reload_support::wait_until(Duration::from_secs(10), "15 lines counted", || async {
        sw.value("intake_lines_total", &[]).await == Some(15.0)
    })
    .await;
    let text = sw.metrics().await;
    assert_eq!(
        support::metric(&text, "intake_latency_seconds_bucket", &[("le", "0.15")]),
        Some(5.0),
        "the new bound is there (cumulative: 0.15 s <= 0.15)"
    );
    assert_eq!(
        support::metric(&text, "intake_latency_seconds_count", &[]),
        Some(5.0),
        "the changed rule started afresh"
    );
    sw.stop();
}
