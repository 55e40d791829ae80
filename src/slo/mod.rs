//! `sidewatch rules`: one SLO spec (`alert-rules/slos.yaml`) generates the
//! recording rules, the alert rules, the Helm chart's PrometheusRule template
//! (thresholds as `.Values` references) and the chart's copies of the
//! dashboards, so no PromQL is copied by hand.

pub mod alerts;
pub mod catalog;
pub mod cli;
pub mod model;
pub mod recording;
pub mod spec;
pub mod validate;
pub mod yaml;

use std::path::{Path, PathBuf};

use model::{Ctx, Group, Render};

pub use validate::{load, parse, Resolved};

/// The spec, relative to the repository root.
pub const SPEC: &str = "alert-rules/slos.yaml";
/// Generated recording rules.
pub const RECORDING: &str = "alert-rules/recording.yaml";
/// Generated alert rules.
pub const ALERTS: &str = "alert-rules/alerts.yaml";
/// Generated Helm template.
pub const HELM_TEMPLATE: &str = "helm/sidewatch/templates/prometheusrule.yaml";
/// Dashboards, and the chart's copies of them.
pub const DASHBOARDS: &str = "dashboards";
/// Where the chart reads the dashboards from (`.Files.Glob`).
pub const HELM_DASHBOARDS: &str = "helm/sidewatch/dashboards";

/// Failures of `sidewatch rules` other than an invalid spec.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// Reading the dashboards or writing an output failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The recording groups, then the alert groups.
pub fn groups(
    spec: &spec::Spec,
    alerts: &[Resolved],
    render: &dyn Render,
) -> (Vec<Group>, Vec<Group>) {
    let ctx = Ctx {
        spec,
        alerts,
        render,
    };
    let recording = vec![
        Group {
            name: "sidewatch-slo-requests".into(),
            rules: recording::requests(&ctx),
        },
        Group {
            name: "sidewatch-slo-dependencies".into(),
            rules: recording::dependencies(&ctx),
        },
        Group {
            name: "sidewatch-slo-thresholds".into(),
            rules: recording::thresholds(&ctx),
        },
    ];
    let alerting = vec![Group {
        name: "sidewatch-alerts".into(),
        rules: alerts::alerts(&ctx),
    }];
    (recording, alerting)
}

/// Every output file (path relative to `root`, content) for the spec.
pub fn outputs(
    root: &Path,
    spec: &spec::Spec,
    alerts: &[Resolved],
) -> Result<Vec<(PathBuf, String)>, RulesError> {
    let (recording, alerting) = groups(spec, alerts, &model::Plain);
    let (helm_recording, helm_alerting) = groups(spec, alerts, &model::Helm);
    let helm: Vec<Group> = helm_recording.into_iter().chain(helm_alerting).collect();
    let mut files = vec![
        (PathBuf::from(RECORDING), yaml::rule_file(&recording)),
        (PathBuf::from(ALERTS), yaml::rule_file(&alerting)),
        (PathBuf::from(HELM_TEMPLATE), yaml::helm_template(&helm)),
    ];
    for dashboard in dashboards(root)? {
        let path = root.join(&dashboard);
        let text =
            std::fs::read_to_string(&path).map_err(|source| RulesError::Io { path, source })?;
        let name = dashboard.file_name().unwrap_or_default();
        files.push((Path::new(HELM_DASHBOARDS).join(name), text));
    }
    Ok(files)
}

/// `dashboards/*.json` under `root`, sorted, relative to `root`.
pub fn dashboards(root: &Path) -> Result<Vec<PathBuf>, RulesError> {
    let dir = root.join(DASHBOARDS);
    let entries = std::fs::read_dir(&dir).map_err(|source| RulesError::Io {
        path: dir.clone(),
        source,
    })?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter_map(|p| p.strip_prefix(root).ok().map(Path::to_path_buf))
        .collect();
    found.sort();
    Ok(found)
}

/// Outputs whose file under `root` is missing or differs, and chart copies
/// of dashboards that no longer exist.
pub fn stale(root: &Path, files: &[(PathBuf, String)]) -> Vec<PathBuf> {
    let mut stale: Vec<PathBuf> = files
        .iter()
        .filter(|(path, text)| {
            std::fs::read_to_string(root.join(path)).ok().as_deref() != Some(text.as_str())
        })
        .map(|(path, _)| path.clone())
        .collect();
    stale.extend(orphans(root, files));
    stale
}

/// `helm/sidewatch/dashboards/*.json` files that are not outputs.
fn orphans(root: &Path, files: &[(PathBuf, String)]) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root.join(HELM_DASHBOARDS)) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.path().strip_prefix(root).ok().map(Path::to_path_buf))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter(|p| !files.iter().any(|(out, _)| out == p))
        .collect()
}

/// Writes the outputs under `root`, creating directories, and removes chart
/// copies of dashboards that no longer exist.
pub fn write(root: &Path, files: &[(PathBuf, String)]) -> Result<(), RulesError> {
    for orphan in orphans(root, files) {
        let path = root.join(orphan);
        std::fs::remove_file(&path).map_err(|source| RulesError::Io { path, source })?;
    }
    for (path, text) in files {
        let path = root.join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| RulesError::Io {
                path: dir.into(),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| RulesError::Io { path, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_entry_renders_in_both_forms() {
        let business = "business: {received: a_total, processed: b_total}\nresources: sidewatch\n";
        for text in ["{}", business] {
            let (spec, alerts) = parse(text).unwrap();
            for render in [&model::Plain as &dyn Render, &model::Helm] {
                let (_, alerting) = groups(&spec, &alerts, render);
                let names = alerts::names(&alerting[0].rules);
                assert_eq!(names.len(), alerts.len() + 2, "{names:?}");
            }
        }
    }

    #[test]
    fn helm_template_references_values() {
        let (spec, alerts) = parse("{}").unwrap();
        let (r, a) = groups(&spec, &alerts, &model::Helm);
        let text = yaml::helm_template(&[r, a].concat());
        assert!(text.starts_with("{{- if .Values.prometheusRule.enabled }}\n"));
        assert!(text.contains("> {{ .Values.prometheusRule.slo.latencyP95Threshold | default 2 }}"));
        assert!(
            text.contains("{{ .Values.prometheusRule.slo.availabilityObjective | default 99.9 }}")
        );
        assert!(text.contains("{{`{{ $value | humanizeDuration }}`}}"));
        assert!(!text.contains("> 2\n"));
    }
}
