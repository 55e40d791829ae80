//! The Helm chart, checked with the real `helm` (lint --strict, template),
//! `kubernetes-validate --strict` for every supported Kubernetes version,
//! `promtool check rules` on the PrometheusRule, and `sidewatch check-config`
//! on the rendered config. Tools: `bash scripts/k8s-tools.sh`, `apt-get install prometheus`.

mod k8s_support;

use std::path::Path;
use std::process::Command;

use k8s_support::*;
use yaml_rust2::Yaml;

/// Renders the chart at `chart` with value files (relative to the chart) and `--set`s.
fn template_at(chart: &Path, files: &[&str], sets: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(helm());
    cmd.arg("template")
        .arg("demo")
        .arg(chart)
        .args(["--namespace", "team"]);
    for file in files {
        cmd.arg("-f").arg(chart.join(file));
    }
    for set in sets {
        cmd.args(["--set", set]);
    }
    let out = cmd.output().expect("run helm");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn template(files: &[&str], sets: &[&str]) -> Vec<Yaml> {
    let text = template_at(&chart(), files, sets)
        .unwrap_or_else(|e| panic!("helm template {files:?} {sets:?} failed:\n{e}"));
    docs(&text)
}

fn of_kind<'a>(docs: &'a [Yaml], kind_name: &str) -> Vec<&'a Yaml> {
    docs.iter().filter(|d| kind(d) == kind_name).collect()
}

/// The value variants CI renders: (name, value files, native sidecar).
const VARIANTS: &[(&str, &[&str], bool)] = &[
    ("default", &[], true),
    ("demo", &["values-demo.yaml"], true),
    (
        "classic",
        &["values-demo.yaml", "ci/classic-values.yaml"],
        false,
    ),
    (
        "serviceMonitor",
        &["values-demo.yaml", "ci/servicemonitor-values.yaml"],
        true,
    ),
    ("everything off", &["ci/off-values.yaml"], true),
    (
        "annotations + proxy",
        &["ci/annotations-proxy-values.yaml"],
        true,
    ),
];

#[test]
fn lint_strict_passes_for_every_variant() {
    for (name, files, _) in VARIANTS {
        let mut args = vec![
            "lint".to_owned(),
            "--strict".to_owned(),
            chart().display().to_string(),
        ];
        for file in *files {
            args.push("-f".into());
            args.push(chart().join(file).display().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(helm(), &args, "bash scripts/k8s-tools.sh");
        assert!(
            out.status.success(),
            "helm lint --strict ({name}):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_variant_renders_valid_manifests_for_every_supported_version() {
    for (name, files, native) in VARIANTS {
        let docs = template(files, &[]);
        let versions = if *native {
            NATIVE_VERSIONS
        } else {
            CLASSIC_VERSIONS
        };
        kubernetes_validate(&docs, versions, name);
        for doc in docs.iter().filter(|d| is_crd_object(d)) {
            check_crd_object(doc, name);
        }
    }
}

/// Required fields of the Prometheus Operator objects (their CRDs are not in kubernetes-validate).
fn check_crd_object(doc: &Yaml, what: &str) {
    assert_eq!(
        doc["apiVersion"].as_str(),
        Some("monitoring.coreos.com/v1"),
        "{what}"
    );
    assert!(
        doc["metadata"]["name"]
            .as_str()
            .is_some_and(|n| !n.is_empty()),
        "{what}: metadata.name"
    );
    let spec = &doc["spec"];
    match kind(doc) {
        "PodMonitor" | "ServiceMonitor" => {
            let endpoints = if kind(doc) == "PodMonitor" {
                "podMetricsEndpoints"
            } else {
                "endpoints"
            };
            assert!(
                spec["selector"]["matchLabels"]
                    .as_hash()
                    .is_some_and(|h| !h.is_empty()),
                "{what}: selector"
            );
            let endpoint = &spec[endpoints][0];
            assert_eq!(
                endpoint["port"].as_str(),
                Some("sw-admin"),
                "{what}: {endpoints}[0].port"
            );
            assert_eq!(endpoint["path"].as_str(), Some("/metrics"), "{what}: path");
            assert_eq!(
                endpoint["interval"].as_str(),
                Some("30s"),
                "{what}: interval"
            );
        }
        "PrometheusRule" => {
            let groups = spec["groups"].as_vec().expect("spec.groups");
            assert!(!groups.is_empty(), "{what}: no rule groups");
            for group in groups {
                assert!(group["name"].as_str().is_some(), "{what}: group name");
                let rules = group["rules"].as_vec().expect("group rules");
                for rule in rules {
                    assert!(
                        rule["expr"].as_str().is_some() || rule["expr"].as_i64().is_some(),
                        "{what}: expr"
                    );
                    assert!(
                        rule["alert"].as_str().is_some() != rule["record"].as_str().is_some(),
                        "{what}: alert xor record"
                    );
                }
            }
        }
        other => panic!("{what}: unexpected operator kind {other}"),
    }
}

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

#[test]
fn default_is_native_sidecar_with_pod_monitor_rules_and_no_service() {
    let docs = template(&["values-demo.yaml"], &[]);
    assert_eq!(of_kind(&docs, "PodMonitor").len(), 1);
    assert!(of_kind(&docs, "ServiceMonitor").is_empty() && of_kind(&docs, "Service").is_empty());
    assert_eq!(of_kind(&docs, "PrometheusRule").len(), 1);
    let deploy = of_kind(&docs, "Deployment")[0];
    let spec = pod_spec(deploy);
    let sidecar =
        container(&spec["initContainers"], "sidewatch").expect("native sidecar in initContainers");
    assert!(container(&spec["containers"], "sidewatch").is_none());
    assert_eq!(sidecar["restartPolicy"].as_str(), Some("Always"));
    assert_secure(sidecar, "sidecar");
    assert_eq!(
        sidecar["resources"]["requests"]["cpu"].as_str(),
        Some("10m")
    );
    assert_eq!(
        sidecar["resources"]["requests"]["memory"].as_str(),
        Some("16Mi")
    );
    assert_eq!(
        sidecar["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(
        sidecar["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    let env = env_names(sidecar);
    for name in DOWNWARD_ENV {
        assert!(env.iter().any(|e| e == name), "{name} missing in {env:?}");
    }
    let cpu = sidecar["env"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str() == Some("SIDEWATCH_APP_CPU_LIMIT_MILLICORES"))
        .unwrap();
    assert_eq!(
        cpu["valueFrom"]["resourceFieldRef"]["divisor"].as_str(),
        Some("1m")
    );
    assert_eq!(
        cpu["valueFrom"]["resourceFieldRef"]["containerName"].as_str(),
        Some("demo")
    );
    // The log dir is shared (sizeLimit) and the state dir is an emptyDir.
    let volumes = spec["volumes"].as_vec().unwrap();
    let logs = volumes
        .iter()
        .find(|v| v["name"].as_str() == Some("sidewatch-logs"))
        .expect("log volume");
    assert_eq!(logs["emptyDir"]["sizeLimit"].as_str(), Some("256Mi"));
    assert!(volumes
        .iter()
        .any(|v| v["name"].as_str() == Some("sidewatch-state") && !v["emptyDir"].is_badvalue()));
    let app = container(&spec["containers"], "demo").unwrap();
    assert_eq!(app["args"][0].as_str(), Some("demo"));
    assert_eq!(
        app["volumeMounts"][0]["name"].as_str(),
        Some("sidewatch-logs")
    );
    // The PodMonitor selects the pods the sidecar templates label.
    let monitor = of_kind(&docs, "PodMonitor")[0];
    let selector = &monitor["spec"]["selector"]["matchLabels"]["sidewatch.io/instance"];
    assert_eq!(
        &deploy["spec"]["template"]["metadata"]["labels"]["sidewatch.io/instance"],
        selector
    );
}

#[test]
fn variants_switch_sidecar_mode_monitoring_and_assets() {
    let classic = template(&["values-demo.yaml", "ci/classic-values.yaml"], &[]);
    let spec = pod_spec(of_kind(&classic, "Deployment")[0]);
    let sidecar =
        container(&spec["containers"], "sidewatch").expect("classic sidecar in containers");
    assert!(sidecar["restartPolicy"].is_badvalue());
    assert!(spec["initContainers"].is_badvalue());

    let service = template(&["values-demo.yaml", "ci/servicemonitor-values.yaml"], &[]);
    assert!(of_kind(&service, "PodMonitor").is_empty());
    let sm = of_kind(&service, "ServiceMonitor")[0];
    assert_eq!(
        sm["metadata"]["labels"]["release"].as_str(),
        Some("kube-prometheus-stack")
    );
    let svc = of_kind(&service, "Service")[0];
    assert_eq!(svc["spec"]["clusterIP"].as_str(), Some("None"));
    assert_eq!(
        &svc["metadata"]["labels"]["sidewatch.io/metrics"],
        &sm["spec"]["selector"]["matchLabels"]["sidewatch.io/metrics"]
    );

    let off = template(&["ci/off-values.yaml"], &[]);
    let kinds: Vec<&str> = off.iter().map(kind).collect();
    assert_eq!(
        kinds,
        ["ConfigMap"],
        "everything off leaves only the config"
    );

    let proxy = template(&["ci/annotations-proxy-values.yaml"], &[]);
    assert!(of_kind(&proxy, "PodMonitor").is_empty());
    let deploy = of_kind(&proxy, "Deployment")[0];
    let annotations = &deploy["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"].as_str(), Some("true"));
    assert_eq!(annotations["prometheus.io/port"].as_str(), Some("4790"));
    assert_eq!(annotations["prometheus.io/path"].as_str(), Some("/metrics"));
    let sidecar = container(&pod_spec(deploy)["initContainers"], "sidewatch").unwrap();
    let ports = sidecar["ports"].as_vec().unwrap();
    assert!(
        ports.iter().any(
            |p| p["name"].as_str() == Some("http") && p["containerPort"].as_i64() == Some(4791)
        ),
        "{ports:?}"
    );
    let config = config_of(&proxy);
    assert!(config.contains("upstream: 127.0.0.1:4799"), "{config}");
}

/// The rendered sidewatch.yaml.
fn config_of(docs: &[Yaml]) -> String {
    let cm = of_kind(docs, "ConfigMap")
        .into_iter()
        .find(|d| {
            d["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("-config"))
        })
        .expect("config ConfigMap");
    cm["data"]["sidewatch.yaml"]
        .as_str()
        .expect("sidewatch.yaml")
        .to_owned()
}

#[test]
fn rendered_config_is_valid_for_sidewatch_and_secrets_come_from_secret_refs() {
    for files in [
        &["values-demo.yaml"][..],
        &["values-demo.yaml", "ci/servicemonitor-values.yaml"],
        &["ci/classic-values.yaml"],
    ] {
        let docs = template(files, &[]);
        let config = config_of(&docs);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sidewatch.yaml");
        std::fs::write(&path, &config).unwrap();
        let secret_file = dir.path().join("token");
        std::fs::write(&secret_file, "t0ken").unwrap();
        let config = config.replace("/var/run/secrets/app/token", secret_file.to_str().unwrap());
        std::fs::write(&path, &config).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
            .arg("check-config")
            .arg(&path)
            .env(
                "SIDEWATCH_SECRET_POSTGRES_SERVERS_0_DSN",
                "postgres://u:hunter2@127.0.0.1:1/db",
            )
            .env(
                "SIDEWATCH_SECRET_REDIS_SERVERS_0_URL",
                "redis://:hunter2@127.0.0.1:1",
            )
            .env("SIDEWATCH__LOGS__STATE_DIR", dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "check-config {files:?}:\n{stdout}{}\n{config}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!config.contains("hunter2") && !stdout.contains("hunter2"));
    }
    let docs = template(&["ci/servicemonitor-values.yaml"], &[]);
    let config = config_of(&docs);
    assert!(
        config.contains("env: SIDEWATCH_SECRET_POSTGRES_SERVERS_0_DSN"),
        "{config}"
    );
}

#[test]
fn secret_env_vars_read_the_named_secret() {
    let docs = template(&["values-demo.yaml", "ci/servicemonitor-values.yaml"], &[]);
    let sidecar = container(
        &pod_spec(of_kind(&docs, "Deployment")[0])["initContainers"],
        "sidewatch",
    )
    .unwrap();
    let env = sidecar["env"].as_vec().unwrap();
    let dsn = env
        .iter()
        .find(|e| e["name"].as_str() == Some("SIDEWATCH_SECRET_POSTGRES_SERVERS_0_DSN"))
        .expect("dsn env");
    assert_eq!(
        dsn["valueFrom"]["secretKeyRef"]["name"].as_str(),
        Some("app-db")
    );
    assert_eq!(
        dsn["valueFrom"]["secretKeyRef"]["key"].as_str(),
        Some("url")
    );
}

#[test]
fn bad_values_fail_with_the_schema_message() {
    let cases: &[(&str, &str)] = &[
        (
            "sidecar.native=yes",
            "at '/sidecar/native': got string, want boolean",
        ),
        (
            "sidecar.adminPort=http",
            "at '/sidecar/adminPort': got string, want integer",
        ),
        (
            "nosuchkey=1",
            "additional properties 'nosuchkey' not allowed",
        ),
        ("monitoring.mode=scrape", "at '/monitoring/mode'"),
        (
            "config.nosuchsection.x=1",
            "additional properties 'nosuchsection' not allowed",
        ),
        (
            "config.postgres.servers[0].dsn=postgres://u:pw@db/app",
            "at '/config/postgres/servers/0/dsn': got string, want object",
        ),
        (
            "config.redis.servers[0].url=redis://:pw@cache:6379",
            "at '/config/redis/servers/0/url': got string, want object",
        ),
        (
            "config.health.targets[0].bearer_token=abc",
            "at '/config/health/targets/0/bearer_token': got string, want object",
        ),
    ];
    for (set, message) in cases {
        let err = template_at(&chart(), &[], &[set]).expect_err(set);
        assert!(
            err.contains("values don't meet the specifications of the schema"),
            "{set}: {err}"
        );
        assert!(
            err.contains(message),
            "{set}: expected {message:?} in:\n{err}"
        );
    }
}

#[test]
fn native_sidecar_needs_kubernetes_1_29_and_classic_works_on_1_25() {
    let out = Command::new(helm())
        .args(["template", "demo"])
        .arg(chart())
        .args(["--kube-version", "1.28.0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sidecar.native needs Kubernetes >= 1.29")
    );
    let out = Command::new(helm())
        .args(["template", "demo"])
        .arg(chart())
        .args(["--kube-version", "1.25.0", "--set", "sidecar.native=false"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
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

/// Mapping keys sorted (recursively), so key order does not matter in comparisons.
fn canonical(node: &Yaml) -> Yaml {
    match node {
        Yaml::Hash(h) => {
            let mut pairs: Vec<(String, Yaml)> = h
                .iter()
                .map(|(k, v)| (format!("{k:?}"), canonical(v)))
                .collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            Yaml::Hash(
                pairs
                    .into_iter()
                    .map(|(k, v)| (Yaml::String(k), v))
                    .collect(),
            )
        }
        Yaml::Array(items) => Yaml::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}
