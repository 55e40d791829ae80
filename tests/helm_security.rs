//! The chart's admin security values (`admin.tls`, `admin.auth`): checked
//! with the real `helm` (lint --strict, template), `kubernetes-validate`,
//! and `sidewatch check-config` on the rendered config with real test
//! certificates at the mounted paths. Tools: `bash scripts/k8s-tools.sh`.

mod k8s_support;
mod test_certs;

use std::process::Command;

use k8s_support::*;
use yaml_rust2::Yaml;

const SECURED: &str = "ci/secured-values.yaml";

/// The monitor endpoint of `kind` (`PodMonitor` or `ServiceMonitor`).
fn endpoint<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    let monitor = of_kind(docs, kind)[0];
    let list = if kind == "PodMonitor" {
        "podMetricsEndpoints"
    } else {
        "endpoints"
    };
    &monitor["spec"][list][0]
}

#[test]
fn secured_values_lint_and_render_valid_manifests() {
    for files in [
        &[SECURED][..],
        &["values-demo.yaml", SECURED],
        &["values-demo.yaml", "ci/servicemonitor-values.yaml", SECURED],
        &["values-demo.yaml", "ci/classic-values.yaml", SECURED],
    ] {
        assert_lint_strict(files, &format!("{files:?}"));
        let native = !files.contains(&"ci/classic-values.yaml");
        let versions = if native {
            NATIVE_VERSIONS
        } else {
            CLASSIC_VERSIONS
        };
        kubernetes_validate(&template(files, &[]), versions, &format!("{files:?}"));
    }
}

#[test]
fn monitors_scrape_over_https_with_the_token_and_probes_use_https() {
    let docs = template(&["values-demo.yaml", SECURED], &[]);
    let pod = endpoint(&docs, "PodMonitor");
    assert_eq!(pod["scheme"].as_str(), Some("https"), "{}", dump(pod));
    assert_eq!(
        pod["tlsConfig"]["ca"]["secret"]["name"].as_str(),
        Some("app-sidewatch-tls")
    );
    assert_eq!(
        pod["tlsConfig"]["ca"]["secret"]["key"].as_str(),
        Some("ca.crt")
    );
    assert_eq!(
        pod["tlsConfig"]["serverName"].as_str(),
        Some("sidewatch.example.internal")
    );
    assert_eq!(pod["authorization"]["type"].as_str(), Some("Bearer"));
    assert_eq!(
        pod["authorization"]["credentials"]["name"].as_str(),
        Some("app-sidewatch-token")
    );
    assert_eq!(
        pod["authorization"]["credentials"]["key"].as_str(),
        Some("token")
    );

    let spec = pod_spec(of_kind(&docs, "Deployment")[0]);
    let sidecar = container(&spec["initContainers"], "sidewatch").expect("sidecar");
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(
            sidecar[probe]["httpGet"]["scheme"].as_str(),
            Some("HTTPS"),
            "{probe}"
        );
        assert!(
            matches!(
                sidecar[probe]["httpGet"]["path"].as_str(),
                Some("/healthz" | "/readyz")
            ),
            "probes stay on the open paths"
        );
    }
    let mounts = dump(&sidecar["volumeMounts"]);
    assert!(
        mounts.contains("/etc/sidewatch/tls") && mounts.contains("/var/run/secrets/sidewatch"),
        "{mounts}"
    );
    let volumes = dump(&spec["volumes"]);
    assert!(
        volumes.contains("secretName: app-sidewatch-tls")
            && volumes.contains("secretName: app-sidewatch-token"),
        "{volumes}"
    );

    let docs = template(
        &["values-demo.yaml", "ci/servicemonitor-values.yaml", SECURED],
        &[],
    );
    let service = endpoint(&docs, "ServiceMonitor");
    assert_eq!(service["scheme"].as_str(), Some("https"));
    assert_eq!(service["authorization"]["type"].as_str(), Some("Bearer"));

    let docs = template(
        &[SECURED],
        &["admin.tls.verify=false", "admin.auth.tokenSecret="],
    );
    let pod = endpoint(&docs, "PodMonitor");
    assert_eq!(pod["tlsConfig"]["insecureSkipVerify"].as_bool(), Some(true));
    assert!(
        pod["authorization"].is_badvalue(),
        "no token, no authorization"
    );

    let docs = template(&[], &[]);
    let pod = endpoint(&docs, "PodMonitor");
    assert!(
        pod["scheme"].is_badvalue() && pod["tlsConfig"].is_badvalue(),
        "off by default"
    );
}

#[test]
fn tls_without_a_secret_name_fails_with_the_schema_message() {
    let error = template_at(&chart(), &[], &["admin.tls.enabled=true"]).unwrap_err();
    assert!(error.contains("secretName"), "{error}");
}

#[test]
fn rendered_secured_config_is_valid_for_sidewatch() {
    let docs = template(&["values-demo.yaml", SECURED], &[]);
    let config = config_of(&docs);
    assert!(config.contains("/etc/sidewatch/tls/tls.crt"), "{config}");
    assert!(
        config.contains("/var/run/secrets/sidewatch/token"),
        "{config}"
    );
    let dir = tempfile::tempdir().unwrap();
    test_certs::certificates(dir.path());
    std::fs::rename(dir.path().join("server.crt"), dir.path().join("tls.crt")).unwrap();
    std::fs::rename(dir.path().join("server.key"), dir.path().join("tls.key")).unwrap();
    std::fs::write(dir.path().join("token"), "t0ken\n").unwrap();
    let d = dir.path().display().to_string();
    let config = config
        .replace("/etc/sidewatch/tls", &d)
        .replace("/var/run/secrets/sidewatch", &d);
    let path = dir.path().join("sidewatch.yaml");
    std::fs::write(&path, &config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
        .arg("check-config")
        .arg(&path)
        .env("SIDEWATCH__LOGS__STATE_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check-config:\n{stdout}{}\n{config}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("t0ken"), "{stdout}");
}
