//! The process collector against real processes: sidewatch's own
//! `process_*`, the app's `app_process_*` (found by command line, as in a pod
//! with `shareProcessNamespace`), limits from Downward API env and from a
//! cgroup v2 directory.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::{metric, Sidewatch};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_app_and_container_metrics() {
    let marker = format!("sidewatch-test-app-{}", std::process::id());
    let mut app = Command::new("/bin/sh")
        .args(["-c", &format!("read _line; : {marker}")])
        .stdin(Stdio::piped())
        .spawn()
        .expect("start a stand-in app process");

    let cgroup = tempfile::tempdir().unwrap();
    std::fs::write(cgroup.path().join("memory.max"), "268435456\n").unwrap();
    std::fs::write(cgroup.path().join("memory.current"), "1048576\n").unwrap();
    std::fs::write(cgroup.path().join("cpu.max"), "50000 100000\n").unwrap();
    let memory_env = format!("SIDEWATCH_TEST_APP_MEMORY_{}", std::process::id());
    let cpu_env = format!("SIDEWATCH_TEST_APP_CPU_{}", std::process::id());
    std::env::set_var(&memory_env, "536870912");
    std::env::set_var(&cpu_env, "250");

    let sidewatch = Sidewatch::start(&format!(
        "[process]\ninterval = \"200ms\"\napp_process_name = \"{marker}\"\n\
         app_memory_limit_env = \"{memory_env}\"\napp_cpu_limit_env = \"{cpu_env}\"\ncgroup_root = \"{}\"\n",
        cgroup.path().display()
    ))
    .await;
    let wait = Duration::from_secs(10);
    let rss = sidewatch
        .wait_for_metric("process_resident_memory_bytes", &[], wait, |v| v > 0.0)
        .await;
    assert!(rss > 1_000_000.0, "sidewatch's RSS is {rss}");
    let app_rss = sidewatch
        .wait_for_metric("app_process_resident_memory_bytes", &[], wait, |v| v > 0.0)
        .await;
    assert!(
        app_rss < rss,
        "the stand-in app (sh) is smaller than sidewatch: {app_rss} vs {rss}"
    );

    let text = sidewatch.metrics().await;
    let value =
        |name: &str| metric(&text, name, &[]).unwrap_or_else(|| panic!("{name} missing:\n{text}"));
    assert!(value("process_open_fds") >= 3.0);
    assert!(value("process_max_fds") >= value("process_open_fds"));
    assert!(value("process_start_time_seconds") > 1.6e9);
    assert!(
        value("app_process_open_fds") >= 1.0,
        "same user: FDs are readable"
    );
    assert_eq!(value("app_container_memory_limit_bytes"), 536870912.0);
    assert_eq!(value("app_container_cpu_limit_cores"), 0.25);
    assert_eq!(value("sidewatch_container_memory_limit_bytes"), 268435456.0);
    assert_eq!(value("sidewatch_container_cpu_limit_cores"), 0.5);
    assert_eq!(value("sidewatch_container_memory_usage_bytes"), 1048576.0);

    let status: serde_json::Value = sidewatch.status().await;
    let process = &status["collectors"]["process"];
    assert_eq!(
        process["details"]["app_process"]["pid"],
        app.id(),
        "{process}"
    );
    assert!(process["degraded"].is_null(), "{process}");

    // The app goes away: its series go, and /status says why.
    app.kill().unwrap();
    app.wait().unwrap();
    let deadline = std::time::Instant::now() + wait;
    loop {
        let status: serde_json::Value = sidewatch.status().await;
        let degraded = status["collectors"]["process"]["degraded"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if degraded.contains("shareProcessNamespace") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "app exit not noticed: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        metric(
            &sidewatch.metrics().await,
            "app_process_resident_memory_bytes",
            &[]
        ),
        None
    );
    sidewatch.stop().await;
}
