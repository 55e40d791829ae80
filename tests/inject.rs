//! `sidewatch inject` as a process: golden files per kind (tests/inject/*.yaml
//! → *.out.yaml + *.stderr; `SIDEWATCH_BLESS=1` rewrites them), idempotency,
//! output valid under `kubernetes-validate --strict`, bad input, `--dry-run`,
//! and the same sidecar as the Helm chart renders.

mod k8s_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use k8s_support::*;

fn fixtures() -> Vec<PathBuf> {
    let dir = repo().join("tests/inject");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.ends_with(".yaml") && !name.ends_with(".out.yaml")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 8, "fixtures missing in {}", dir.display());
    files
}

/// The fixture's `# args:` line.
fn args_of(fixture: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(fixture).unwrap();
    let line = text.lines().next().unwrap_or_default();
    let args = line
        .strip_prefix("# args:")
        .unwrap_or_else(|| panic!("{}: first line must be `# args: ...`", fixture.display()));
    args.split_whitespace().map(str::to_owned).collect()
}

/// Runs `sidewatch inject ARGS` with `stdin`.
fn inject(args: &[String], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
        .arg("inject")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn out_text(output: &Output) -> (String, String) {
    (
        String::from_utf8(output.stdout.clone()).unwrap(),
        String::from_utf8(output.stderr.clone()).unwrap(),
    )
}

fn golden(fixture: &Path, ext: &str) -> PathBuf {
    fixture.with_extension(ext)
}

#[test]
fn golden_files_per_kind() {
    let bless = std::env::var_os("SIDEWATCH_BLESS").is_some();
    let mut failures = Vec::new();
    for fixture in fixtures() {
        let input = std::fs::read_to_string(&fixture).unwrap();
        let output = inject(&args_of(&fixture), &input);
        let (stdout, stderr) = out_text(&output);
        assert!(output.status.success(), "{}: {stderr}", fixture.display());
        for (ext, have) in [("out.yaml", &stdout), ("stderr", &stderr)] {
            let path = golden(&fixture, ext);
            if bless {
                std::fs::write(&path, have).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&path).unwrap_or_default();
            if &want != have {
                failures.push(format!(
                    "{} differs (SIDEWATCH_BLESS=1 to accept):\n--- want\n{want}\n--- have\n{have}",
                    path.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_second_run_changes_nothing() {
    for fixture in fixtures() {
        let args = args_of(&fixture);
        let input = std::fs::read_to_string(&fixture).unwrap();
        let (once, _) = out_text(&inject(&args, &input));
        let (twice, notes) = out_text(&inject(&args, &once));
        assert_eq!(once, twice, "{}: not idempotent", fixture.display());
        let (diff, _) = out_text(&inject(&[args, vec!["--dry-run".into()]].concat(), &once));
        assert_eq!(
            diff,
            "",
            "{}: second dry run shows changes",
            fixture.display()
        );
        if once.contains("name: sidewatch\n") {
            assert!(
                notes.contains("already has the sidewatch container"),
                "{}: {notes}",
                fixture.display()
            );
        }
    }
}

#[test]
fn output_is_valid_for_every_supported_kubernetes_version() {
    for fixture in fixtures() {
        let args = args_of(&fixture);
        let (stdout, _) = out_text(&inject(&args, &std::fs::read_to_string(&fixture).unwrap()));
        let versions = if args.iter().any(|a| a == "--classic") {
            CLASSIC_VERSIONS
        } else {
            NATIVE_VERSIONS
        };
        kubernetes_validate(&docs(&stdout), versions, &fixture.display().to_string());
    }
}

#[test]
fn every_workload_kind_gets_the_sidecar_and_its_pieces() {
    for fixture in fixtures() {
        let args = args_of(&fixture);
        let (stdout, _) = out_text(&inject(&args, &std::fs::read_to_string(&fixture).unwrap()));
        let mut workloads = Vec::new();
        for doc in docs(&stdout) {
            match kind(&doc) {
                "List" => workloads.extend(doc["items"].as_vec().unwrap().iter().cloned()),
                _ => workloads.push(doc),
            }
        }
        for doc in workloads.iter().filter(|d| {
            matches!(
                kind(d),
                "Deployment"
                    | "StatefulSet"
                    | "DaemonSet"
                    | "ReplicaSet"
                    | "Job"
                    | "CronJob"
                    | "Pod"
            )
        }) {
            let name = doc["metadata"]["name"].as_str().unwrap_or_default();
            if name == "legacy" {
                assert!(stdout.contains("sidewatch.io/inject: disabled"));
                assert!(
                    container(&pod_spec(doc)["initContainers"], "sidewatch").is_none(),
                    "disabled workload injected"
                );
                continue;
            }
            let spec = pod_spec(doc);
            let what = format!("{} {}/{name}", fixture.display(), kind(doc));
            let classic = args.iter().any(|a| a == "--classic");
            let list = if classic {
                &spec["containers"]
            } else {
                &spec["initContainers"]
            };
            let sidecar =
                container(list, "sidewatch").unwrap_or_else(|| panic!("{what}: no sidecar"));
            if name == "done" {
                continue; // injected before: left alone
            }
            assert_secure(sidecar, &what);
            let env = env_names(sidecar);
            for var in DOWNWARD_ENV {
                assert!(env.iter().any(|e| e == var), "{what}: {var} missing");
            }
            let volumes: Vec<&str> = spec["volumes"]
                .as_vec()
                .unwrap()
                .iter()
                .filter_map(|v| v["name"].as_str())
                .collect();
            assert!(
                volumes.contains(&"sidewatch-config") && volumes.contains(&"sidewatch-state"),
                "{what}: {volumes:?}"
            );
        }
    }
}

#[test]
fn invalid_yaml_exits_2_with_line_and_column_and_prints_nothing() {
    let output = inject(
        &[],
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [broken\nspec: {}\n",
    );
    let (stdout, stderr) = out_text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("<stdin>: invalid YAML at line 5 column"),
        "{stderr}"
    );

    // A bad second file: nothing of the good first one is written either.
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &good,
        std::fs::read_to_string(repo().join("tests/inject/pod.yaml")).unwrap(),
    )
    .unwrap();
    std::fs::write(&bad, "a: 1\n  b: 2\n").unwrap();
    let output = inject(
        &[
            good.display().to_string(),
            "-f".into(),
            bad.display().to_string(),
        ],
        "",
    );
    let (stdout, stderr) = out_text(&output);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("bad.yaml: invalid YAML at line 2 column 4"),
        "{stderr}"
    );

    let output = inject(&[dir.path().join("missing.yaml").display().to_string()], "");
    assert_eq!(output.status.code(), Some(2));
    assert!(out_text(&output).1.contains("cannot read"));
}

#[test]
fn dry_run_prints_a_unified_diff_of_the_additions() {
    let fixture = repo().join("tests/inject/multi.yaml");
    let output = inject(
        &["--dry-run".into()],
        &std::fs::read_to_string(&fixture).unwrap(),
    );
    let (stdout, stderr) = out_text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.starts_with("--- <stdin>: document 2 (Deployment/shop)\n+++ <stdin>: document 2 (Deployment/shop) injected\n@@ "), "{stdout}");
    assert!(
        !stdout.contains("ConfigMap") && !stdout.contains("Ingress"),
        "unchanged documents are not in the diff"
    );
    assert!(
        stdout.contains("+      initContainers:\n+        - name: sidewatch\n"),
        "{stdout}"
    );
    assert!(
        stderr.contains("document 1 (ConfigMap/shop-config): passed through unchanged"),
        "{stderr}"
    );
}

#[test]
fn inject_adds_the_same_sidecar_as_the_chart() {
    let out = Command::new(helm())
        .args(["template", "sidewatch"])
        .arg(chart())
        .args([
            "--set",
            "demo.enabled=true",
            "--set",
            "app.containerName=shop",
            "--set",
            "logs.enabled=true",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = docs(&String::from_utf8_lossy(&out.stdout));
    let deploy = rendered.iter().find(|d| kind(d) == "Deployment").unwrap();
    let from_chart = container(&pod_spec(deploy)["initContainers"], "sidewatch")
        .unwrap()
        .clone();
    let chart_volumes = pod_spec(deploy)["volumes"].clone();
    let config_map = rendered.iter().find(|d| kind(d) == "ConfigMap").unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();

    let input = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: shop}\nspec:\n  selector: {matchLabels: {app: shop}}\n  template:\n    metadata: {labels: {app: shop}}\n    spec:\n      containers: [{name: shop, image: \"shop:1\"}]\n";
    let args: Vec<String> = [
        "--config-map",
        &config_map,
        "--log-path",
        "/var/log/app",
        "--image",
        from_chart["image"].as_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (stdout, stderr) = out_text(&inject(&args, input));
    let injected = &docs(&stdout)[0];
    let from_inject = container(&pod_spec(injected)["initContainers"], "sidewatch")
        .unwrap_or_else(|| panic!("{stderr}"));
    for key in [
        "image",
        "restartPolicy",
        "args",
        "ports",
        "env",
        "livenessProbe",
        "readinessProbe",
        "resources",
        "securityContext",
        "volumeMounts",
    ] {
        assert_eq!(
            canonical(&from_chart[key]),
            canonical(&from_inject[key]),
            "{key} differs between chart and inject"
        );
    }
    assert_eq!(
        canonical(&chart_volumes),
        canonical(&pod_spec(injected)["volumes"]),
        "volumes differ"
    );
}
