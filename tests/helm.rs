//! The Helm chart, checked with the real `helm` (lint --strict, template),
//! `kubernetes-validate --strict` for every supported Kubernetes version,
//! `promtool check rules` on the PrometheusRule, and `sidewatch check-config`
//! on the rendered config. Tools: `bash scripts/k8s-tools.sh`, `apt-get install prometheus`.

mod k8s_support;

use std::process::Command;

use k8s_support::*;
use yaml_rust2::Yaml;

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
        assert_lint_strict(files, name);
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

#[test]
fn rendered_config_is_valid_for_sidewatch_and_secrets_come_from_secret_refs() {
    for files in [
        &["values-demo.yaml"][..],
        &["values-demo.yaml", "ci/servicemonitor-values.yaml"],
        &["ci/classic-values.yaml"],
        &["ci/annotations-proxy-values.yaml"],
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
