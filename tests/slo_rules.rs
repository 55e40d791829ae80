//! The committed SLO assets: generated files up to date with the spec,
//! `promtool check rules` clean, `promtool test rules` passing, every alert
//! with a firing and a quiet unit test and a runbook, dashboards importable
//! as-is, and `sidewatch rules` rejecting bad specs with exit code 2.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sidewatch::slo;

const BIN: &str = env!("CARGO_BIN_EXE_sidewatch");
const INSTALL: &str = "apt-get install -y prometheus";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn alert_names() -> Vec<String> {
    let (spec, alerts) = slo::load(&repo().join(slo::SPEC)).expect("the committed spec is valid");
    let (_, alerting) = slo::groups(&spec, &alerts, &slo::model::Plain);
    alerting
        .iter()
        .flat_map(|g| slo::alerts::names(&g.rules))
        .collect()
}

#[test]
fn committed_outputs_are_up_to_date_with_the_spec() {
    let root = repo();
    let (spec, alerts) = slo::load(&root.join(slo::SPEC)).expect("the committed spec is valid");
    let files = slo::outputs(&root, &spec, &alerts).expect("outputs");
    assert!(
        files.len() >= 3 + 4,
        "rules, alerts, helm template and four dashboards"
    );
    let stale = slo::stale(&root, &files);
    assert!(
        stale.is_empty(),
        "out of date with alert-rules/slos.yaml or dashboards/: {stale:?}; run `cargo run -- rules` and commit"
    );
}

#[test]
fn promtool_check_rules_is_clean() {
    let promtool = support::require_program("promtool", INSTALL);
    let output = Command::new(promtool)
        .args(["check", "rules", slo::RECORDING, slo::ALERTS])
        .current_dir(repo())
        .output()
        .expect("promtool runs");
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    assert!(!text.contains("WARNING"), "{text}");
}

#[test]
fn promtool_unit_tests_pass() {
    let promtool = support::require_program("promtool", INSTALL);
    let tests = test_files();
    assert!(!tests.is_empty());
    let output = Command::new(promtool)
        .args(["test", "rules"])
        .args(&tests)
        .current_dir(repo())
        .output()
        .expect("promtool runs");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn test_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("alert-rules/tests"))
        .expect("alert-rules/tests")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_unit_test_and_a_runbook() {
    let tests: Vec<String> = test_files()
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("read test"))
        .collect();
    let lines: Vec<&str> = tests.iter().flat_map(|t| t.lines()).collect();
    let mut missing = Vec::new();
    for alert in alert_names() {
        let named = format!("alertname: {alert}");
        let quiet = lines
            .iter()
            .any(|l| l.contains(&named) && l.contains("exp_alerts: []"));
        let fires = lines.windows(3).any(|w| {
            w[0].trim_end().ends_with(&named)
                && w[1].contains("exp_alerts:")
                && w[2].contains("exp_labels")
        });
        if !quiet || !fires {
            missing.push(format!("{alert}: quiet test {quiet}, firing test {fires}"));
        }
        let runbook = repo().join("docs/runbooks").join(format!("{alert}.md"));
        let text = std::fs::read_to_string(&runbook).unwrap_or_default();
        if !text.contains(&format!("# {alert}")) {
            missing.push(format!("{alert}: no runbook at {}", runbook.display()));
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
}

/// Every `datasource` object anywhere in `value` refers to the variable.
fn datasource_refs(value: &Value, path: &str, bad: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let here = format!("{path}.{key}");
                if key == "datasource" && child.is_object() {
                    let uid = child["uid"].as_str().unwrap_or_default();
                    if uid != "${datasource}" && uid != "-- Grafana --" {
                        bad.push(format!("{here}: {child}"));
                    }
                }
                datasource_refs(child, &here, bad);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                datasource_refs(child, &format!("{path}[{i}]"), bad);
            }
        }
        _ => {}
    }
}

#[test]
fn dashboards_are_importable_as_is() {
    let paths = slo::dashboards(&repo()).expect("dashboards");
    assert_eq!(paths.len(), 4, "{paths:?}");
    let mut uids = Vec::new();
    let mut problems = Vec::new();
    for path in &paths {
        let name = path.display().to_string();
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(repo().join(path)).expect("read"))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut problem = |what: String| problems.push(format!("{name}: {what}"));
        if dashboard["schemaVersion"].as_u64().unwrap_or(0) < 39 {
            problem("schemaVersion below 39".into());
        }
        let uid = dashboard["uid"].as_str().unwrap_or_default();
        if uid.is_empty() || uid.len() > 40 {
            problem(format!("uid {uid:?}"));
        }
        uids.push(uid.to_owned());
        if dashboard["tags"].as_array().is_none_or(|t| t.is_empty()) {
            problem("no tags".into());
        }
        if dashboard["links"].as_array().is_none_or(|l| l.is_empty()) {
            problem("no links to the other dashboards".into());
        }
        let vars = dashboard["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let var = |n: &str| vars.iter().find(|v| v["name"] == n).cloned();
        match var("datasource") {
            Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
            other => problem(format!("datasource variable: {other:?}")),
        }
        for needed in ["namespace", "job", "pod"] {
            if var(needed).is_none() {
                problem(format!("no {needed} variable"));
            }
        }
        let mut bad = Vec::new();
        datasource_refs(&dashboard, "", &mut bad);
        for b in bad {
            problem(format!("hard-coded datasource {b}"));
        }
        let panels = dashboard["panels"].as_array().cloned().unwrap_or_default();
        for panel in panels.iter().filter(|p| p["type"] != "row") {
            let title = panel["title"].as_str().unwrap_or("?");
            if panel["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .is_none_or(str::is_empty)
            {
                problem(format!("panel {title:?} has no unit"));
            }
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                problem(format!("panel {title:?} has no query"));
            }
            for target in targets {
                if target["legendFormat"].as_str().is_none_or(str::is_empty) {
                    problem(format!("panel {title:?} has a query without a legend"));
                }
            }
        }
        let runbook_links = panels
            .iter()
            .flat_map(|p| p["links"].as_array().cloned().unwrap_or_default())
            .count();
        if name.contains("service-overview") && runbook_links == 0 {
            problem("no runbook links".into());
        }
    }
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), paths.len(), "dashboard uids must be distinct");
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Runs `sidewatch rules` on a spec in a scratch root; returns (exit code, stderr).
fn rules_with(spec: &str, root: &Path) -> (Option<i32>, String) {
    let file = root.join("slos.yaml");
    std::fs::write(&file, spec).expect("write spec");
    let output = Command::new(BIN)
        .args(["rules", "--root"])
        .arg(root)
        .arg("--spec")
        .arg(&file)
        .output()
        .expect("sidewatch runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_specs_name_the_field_and_exit_2() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(root.path().join("dashboards")).expect("dashboards dir");
    for (spec, field) in [
        ("availability: {objective: 100}\n", "availability.objective"),
        (
            "alerts:\n  latency_p95: {threshold: -2}\n",
            "alerts.latency_p95.threshold",
        ),
        (
            "alerts:\n  latency_p42: {threshold: 1}\n",
            "alerts.latency_p42",
        ),
        (
            "alerts:\n  errors_5xx: {window: 1m, for: 5m}\n",
            "alerts.errors_5xx.window",
        ),
        ("alerts:\n  cpu: {severity: page}\n", "alerts.cpu.severity"),
    ] {
        let (code, stderr) = rules_with(spec, root.path());
        assert_eq!(code, Some(2), "{spec}: {stderr}");
        assert!(stderr.contains(&format!("`{field}`")), "{spec}: {stderr}");
    }
    assert!(
        !root.path().join(slo::ALERTS).exists(),
        "nothing is written for a bad spec"
    );
    // A valid non-default spec: another selector, sidewatch's resource series.
    let spec = "selector: 'namespace=\"chat\"'\nresources: sidewatch\n\
                business: {received: in_total, processed: out_total}\n\
                alerts:\n  latency_p95: {threshold: 1}\n  cpu: {enabled: false}\n";
    let (code, stderr) = rules_with(spec, root.path());
    assert_eq!(code, Some(0), "{stderr}");
    let alerts = std::fs::read_to_string(root.path().join(slo::ALERTS)).expect("alerts written");
    assert!(alerts.contains("p95_rate5m > 1'"), "{alerts}");
    assert!(
        alerts.contains("app_process_resident_memory_bytes{namespace=\"chat\"}"),
        "{alerts}"
    );
    assert!(alerts.contains("up{namespace=\"chat\"} == 0"), "{alerts}");
    assert!(
        !alerts.contains("ContainerCpuHigh") && alerts.contains("WorkStalled"),
        "{alerts}"
    );
    let promtool = support::require_program("promtool", INSTALL);
    let output = Command::new(promtool)
        .args(["check", "rules", slo::RECORDING, slo::ALERTS])
        .current_dir(root.path())
        .output()
        .expect("promtool runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let check = Command::new(BIN)
        .args(["rules", "--check", "--root"])
        .arg(root.path())
        .arg("--spec")
        .arg(root.path().join("slos.yaml"))
        .output()
        .expect("runs");
    assert_eq!(check.status.code(), Some(0), "fresh outputs pass --check");
    let orphan = root.path().join(slo::HELM_DASHBOARDS).join("gone.json");
    std::fs::create_dir_all(orphan.parent().expect("dir")).expect("mkdir");
    std::fs::write(&orphan, "{}").expect("write");
    let check = Command::new(BIN)
        .args(["rules", "--check", "--root"])
        .arg(root.path())
        .arg("--spec")
        .arg(root.path().join("slos.yaml"))
        .output()
        .expect("runs");
    assert_eq!(
        check.status.code(),
        Some(1),
        "a copy of a removed dashboard is stale"
    );
    std::fs::remove_file(&orphan).expect("remove");
    std::fs::write(root.path().join(slo::ALERTS), "stale").expect("write");
    let check = Command::new(BIN)
        .args(["rules", "--check", "--root"])
        .arg(root.path())
        .arg("--spec")
        .arg(root.path().join("slos.yaml"))
        .output()
        .expect("runs");
    assert_eq!(check.status.code(), Some(1), "a stale output fails --check");
}
