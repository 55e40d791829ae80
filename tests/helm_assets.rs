//! The chart's assets and uses, with the real `helm` and `promtool`: the
//! PrometheusRule through `promtool check rules` and against `alert-rules/`,
//! dashboards as ConfigMaps (and against `dashboards/`), another chart
//! including the sidecar templates, and the demo values run for real.
//! Tools: `bash scripts/k8s-tools.sh`, `apt-get install prometheus`.

mod k8s_support;

use std::path::Path;
use std::process::Command;

use k8s_support::*;
use yaml_rust2::Yaml;

#[test]
fn prometheus_rule_passes_promtool() {
    let docs = template(&[], &[]);
    let rules = of_kind(&docs, "PrometheusRule");
    assert_eq!(rules.len(), 1, "one PrometheusRule by default");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    let mut groups = yaml_rust2::yaml::Hash::new();
    groups.insert(
        Yaml::String("groups".into()),
        rules[0]["spec"]["groups"].clone(),
    );
    std::fs::write(&file, dump(&Yaml::Hash(groups))).unwrap();
    let out = run(
        "promtool",
        &["check", "rules", file.to_str().unwrap()],
        "apt-get install -y prometheus",
    );
    assert!(
        out.status.success(),
        "promtool check rules:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Copies a directory tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn dashboards_render_as_labelled_config_maps_and_zero_files_render_none() {
    let dir = tempfile::tempdir().unwrap();
    let chart_copy = dir.path().join("sidewatch");
    copy_tree(&chart(), &chart_copy);
    let dashboards = chart_copy.join("dashboards");
    std::fs::create_dir_all(&dashboards).unwrap();
    for entry in std::fs::read_dir(&dashboards).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let none = docs(&template_at(&chart_copy, &[], &[]).unwrap());
    assert!(!none
        .iter()
        .any(|d| d["metadata"]["labels"]["grafana_dashboard"]
            .as_str()
            .is_some()));
    std::fs::write(
        dashboards.join("SLO_overview.json"),
        "{\"title\": \"SLO overview\", \"panels\": []}\n",
    )
    .unwrap();
    let one = docs(&template_at(&chart_copy, &[], &["dashboards.folder=Team A"]).unwrap());
    let cm: Vec<&Yaml> = one
        .iter()
        .filter(|d| d["metadata"]["labels"]["grafana_dashboard"].as_str() == Some("1"))
        .collect();
    assert_eq!(cm.len(), 1);
    assert_eq!(
        cm[0]["metadata"]["name"].as_str(),
        Some("demo-sidewatch-dashboard-slo-overview")
    );
    assert_eq!(
        cm[0]["metadata"]["annotations"]["grafana_folder"].as_str(),
        Some("Team A")
    );
    let json = cm[0]["data"]["SLO_overview.json"].as_str().unwrap();
    assert!(json.contains("\"title\": \"SLO overview\""), "{json}");
    kubernetes_validate(&one, &["1.33.0"], "dashboards");
    let off = docs(&template_at(&chart_copy, &[], &["dashboards.enabled=false"]).unwrap());
    assert!(!off
        .iter()
        .any(|d| d["metadata"]["labels"]["grafana_dashboard"]
            .as_str()
            .is_some()));
}

#[test]
fn chart_dashboards_match_the_repository_dashboards() {
    let repo_dashboards = repo().join("dashboards");
    for entry in std::fs::read_dir(&repo_dashboards).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let copy = chart().join("dashboards").join(path.file_name().unwrap());
        let want = std::fs::read(&path).unwrap();
        let have = std::fs::read(&copy).unwrap_or_default();
        assert!(
            want == have,
            "{} drifted from {} (re-run the generator)",
            copy.display(),
            path.display()
        );
    }
}

/// The README's copy-paste example: a parent chart with sidewatch as a
/// dependency includes the named templates in its own Deployment.
#[test]
fn another_chart_includes_the_sidecar_templates() {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("shop");
    std::fs::create_dir_all(parent.join("templates")).unwrap();
    std::fs::write(
        parent.join("Chart.yaml"),
        format!(
            "apiVersion: v2\nname: shop\nversion: 1.0.0\ndependencies:\n  - name: sidewatch\n    version: 0.1.0\n    repository: file://{}\n",
            chart().display()
        ),
    )
    .unwrap();
    std::fs::write(
        parent.join("values.yaml"),
        "sidewatch:\n  app:\n    containerName: shop\n    port: 8080\n  logs:\n    enabled: true\n  config:\n    health:\n      targets:\n        - name: shop\n          url: http://127.0.0.1:8080/health\n",
    )
    .unwrap();
    std::fs::write(parent.join("templates/deployment.yaml"), INCLUDE_EXAMPLE).unwrap();
    let out = run(
        helm(),
        &["dependency", "build", parent.to_str().unwrap()],
        "bash scripts/k8s-tools.sh",
    );
    assert!(
        out.status.success(),
        "helm dependency build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = docs(&template_at(&parent, &[], &[]).unwrap());
    kubernetes_validate(&docs, NATIVE_VERSIONS, "parent chart");
    let deploy = of_kind(&docs, "Deployment")[0];
    let spec = pod_spec(deploy);
    let sidecar = container(&spec["initContainers"], "sidewatch").expect("sidecar");
    assert_secure(sidecar, "included sidecar");
    let config_volume = spec["volumes"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|v| v["name"].as_str() == Some("sidewatch-config"))
        .unwrap();
    let cm_name = config_volume["configMap"]["name"].as_str().unwrap();
    assert!(
        of_kind(&docs, "ConfigMap")
            .iter()
            .any(|c| c["metadata"]["name"].as_str() == Some(cm_name)),
        "the subchart renders {cm_name}"
    );
    let monitor = of_kind(&docs, "PodMonitor")[0];
    assert_eq!(
        &deploy["spec"]["template"]["metadata"]["labels"]["sidewatch.io/instance"],
        &monitor["spec"]["selector"]["matchLabels"]["sidewatch.io/instance"]
    );
    let app = container(&spec["containers"], "shop").unwrap();
    assert_eq!(
        app["volumeMounts"][0]["mountPath"].as_str(),
        Some("/var/log/app")
    );
}

/// Kept in step with the README's "Kubernetes" section.
const INCLUDE_EXAMPLE: &str = r#"{{- $sw := dict "Values" .Values.sidewatch "Release" .Release "Capabilities" .Capabilities }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
spec:
  selector:
    matchLabels: {app: shop}
  template:
    metadata:
      labels:
        app: shop
        {{- include "sidewatch.podLabels" $sw | nindent 8 }}
      annotations:
        {{- include "sidewatch.podAnnotations" $sw | nindent 8 }}
    spec:
      initContainers:
        {{- include "sidewatch.initContainers" $sw | nindent 8 }}
      containers:
        - name: shop
          image: example/shop:1.0
          ports:
            - {name: http, containerPort: 8080}
          volumeMounts:
            {{- include "sidewatch.appVolumeMounts" $sw | nindent 12 }}
        {{- include "sidewatch.containers" $sw | nindent 8 }}
      volumes:
        {{- include "sidewatch.volumes" $sw | nindent 8 }}
"#;

/// Kills a child process when the test ends, however it ends.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value of the first sample of `name` whose label text contains every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The demo values, run for real: `sidewatch demo --app-only` as the app
/// container and `sidewatch run` with the chart's rendered config as the
/// sidecar (the pod's shared log dir and state dir are temp dirs here).
#[test]
fn demo_values_drive_the_sidecar_against_the_demo_app() {
    let docs = template(&["values-demo.yaml"], &[]);
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let config = config_of(&docs).replace("/var/log/app", logs.to_str().unwrap());
    let config_path = dir.path().join("sidewatch.yaml");
    std::fs::write(&config_path, &config).unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();

    let bin = env!("CARGO_BIN_EXE_sidewatch");
    let _app = Reap(
        Command::new(bin)
            .args(["demo", "--app-only"])
            .env("TMPDIR", &logs)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _sidecar = Reap(
        Command::new(bin)
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .env("SIDEWATCH__ADMIN__LISTEN", admin.to_string())
            .env("SIDEWATCH__LOGS__STATE_DIR", dir.path().join("state"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut last = String::new();
    loop {
        if let Ok(text) = http_get(admin, "/metrics") {
            let up = sample(&text, "sidewatch_target_up", &["target=\"demo-app\""]);
            let events = sample(
                &text,
                "sidewatch_log_events_total",
                &["source=\"app\"", "outcome=\"ok\""],
            );
            let pool = sample(&text, "db_client_connection_max", &["source=\"demo-app\""]);
            if up == Some(1.0) && events.is_some_and(|n| n > 0.0) && pool == Some(10.0) {
                break;
            }
            last = text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the demo values never produced probe, log and pool data:\n{config}\n{last}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

/// A plain HTTP/1.0 GET, body only.
fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default())
}

/// The rule groups of every Prometheus rule file in `alert-rules/` (files
/// with a top-level `groups`; promtool unit-test files are skipped).
fn repository_rule_groups() -> Vec<Yaml> {
    let mut groups = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(repo().join("alert-rules"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    for file in files {
        for doc in docs(&std::fs::read_to_string(&file).unwrap()) {
            if let Some(list) = doc["groups"].as_vec() {
                groups.extend(list.iter().cloned());
            }
        }
    }
    groups
}

#[test]
fn prometheus_rule_matches_the_repository_alert_rules() {
    let repo_groups = repository_rule_groups();
    let docs = template(&[], &[]);
    let rule = of_kind(&docs, "PrometheusRule")[0];
    let chart_groups = rule["spec"]["groups"].as_vec().unwrap();
    if repo_groups.is_empty() {
        // Until `sidewatch rules` (issue 8) writes alert-rules/, the chart has its placeholder.
        assert_eq!(chart_groups[0]["name"].as_str(), Some("sidewatch.sidecar"));
        return;
    }
    for group in &repo_groups {
        let name = group["name"].as_str().unwrap_or_default();
        let in_chart = chart_groups
            .iter()
            .find(|g| g["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("group {name} of alert-rules/ is missing from the chart's PrometheusRule (re-run the generator)"));
        assert_eq!(
            canonical(&in_chart["rules"]),
            canonical(&group["rules"]),
            "group {name}: the chart's PrometheusRule (default values) drifted from alert-rules/"
        );
    }
    assert_eq!(
        chart_groups.len(),
        repo_groups.len(),
        "the chart has groups alert-rules/ does not"
    );
}
