//! `sidewatch inject`: adds the sidecar to Kubernetes manifests, like
//! `linkerd inject`. Reads multi-document YAML (Deployment, StatefulSet,
//! DaemonSet, ReplicaSet, Job, CronJob, Pod, and `List`s of them), adds the
//! sidecar (native by default), its config volume, state and log volumes,
//! Downward API env, the PodMonitor label, scrape annotations and optional
//! port takeover. Idempotent: a pod that already has the `sidewatch`
//! container is left as it is. Documents and keys keep their order and
//! content; comments are lost. Other kinds pass through unchanged with a note.

pub mod cli;
mod diff;
mod pod;
mod sidecar;
pub mod yaml;

use yaml_rust2::Yaml;

pub use pod::{
    ANNOTATION_APP_CONTAINER, ANNOTATION_APP_PORT, ANNOTATION_INJECT, ANNOTATION_LOG_PATH,
    INSTANCE_LABEL,
};
pub use sidecar::{ADMIN_PORT, CONTAINER_NAME, PROXY_PORT};

use pod::{Annotations, Outcome};

/// How to inject.
#[derive(Debug, Clone)]
pub struct Options {
    /// Native sidecar (an init container with `restartPolicy: Always`); false: a classic container.
    pub native: bool,
    /// The sidewatch image.
    pub image: String,
    /// The ConfigMap holding `sidewatch.yaml` (the chart's `<release>-config`).
    pub config_map: String,
    /// The `sidewatch.io/instance` pod label (the chart's full name), which its PodMonitor selects.
    pub instance: String,
    /// The app container (default: the first one); `sidewatch.io/app-container` wins.
    pub app_container: Option<String>,
    /// A log directory to share with the app (an emptyDir); `sidewatch.io/log-path` wins.
    pub log_path: Option<String>,
    /// Proxy mode for every workload (port takeover); `sidewatch.io/app-port` turns it on for one.
    pub port_takeover: bool,
    /// The app port to take over (name or number; default: the app's first port).
    pub app_port: Option<String>,
    /// Add `prometheus.io/*` scrape annotations.
    pub scrape_annotations: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            native: true,
            image: format!("sidewatch/sidewatch:{}", env!("CARGO_PKG_VERSION")),
            config_map: "sidewatch-config".into(),
            instance: "sidewatch".into(),
            app_container: None,
            log_path: None,
            port_takeover: false,
            app_port: None,
            scrape_annotations: true,
        }
    }
}

/// A failure: nothing is written.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// The input is not YAML.
    #[error("{source_name}: invalid YAML at {error}")]
    Yaml {
        /// File name or `<stdin>`.
        source_name: String,
        /// Where and what.
        error: yaml::SyntaxError,
    },
    /// A document would not read back the same once written (the YAML
    /// writer's limits, e.g. a key over 1024 characters once escaped).
    #[error("{label}: cannot be written back as YAML that reads the same")]
    Unwritable {
        /// Which document.
        label: String,
    },
}

/// The result of a run.
#[derive(Debug, Default, Clone)]
pub struct Injected {
    /// The output stream (every document, in order).
    pub yaml: String,
    /// A unified diff of each changed document (for `--dry-run`).
    pub diff: String,
    /// Notes for stderr: documents passed through, port takeovers, warnings.
    pub notes: Vec<String>,
}

/// Injects every document of every input (`(name, text)`), in order.
pub fn run(inputs: &[(String, String)], options: &Options) -> Result<Injected, InjectError> {
    let mut parsed = Vec::with_capacity(inputs.len());
    for (name, text) in inputs {
        let docs = yaml::load(text).map_err(|error| InjectError::Yaml {
            source_name: name.clone(),
            error,
        })?;
        parsed.push((name, docs));
    }
    let mut out = Injected::default();
    for (name, docs) in parsed {
        for (index, mut doc) in docs.into_iter().enumerate() {
            let before = yaml::dump(&doc);
            let label = format!("{name}: document {} ({})", index + 1, describe(&doc));
            process(&mut doc, options, &label, &mut out.notes);
            let Some(after) = yaml::dump_checked(&doc) else {
                return Err(InjectError::Unwritable { label });
            };
            out.diff.push_str(&diff::unified(
                &before,
                &after,
                &label,
                &format!("{label} injected"),
            ));
            out.yaml.push_str(&after);
        }
    }
    Ok(out)
}

/// `Kind/name` of a document.
fn describe(doc: &Yaml) -> String {
    let kind = doc["kind"].as_str().unwrap_or("no kind");
    match doc["metadata"]["name"].as_str() {
        Some(name) => format!("{kind}/{name}"),
        None => kind.to_owned(),
    }
}

/// Injects one document (recursing into `List` items).
fn process(doc: &mut Yaml, options: &Options, label: &str, notes: &mut Vec<String>) {
    let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
    let outer = Annotations::default().overlay(&doc["metadata"]);
    let template = match kind.as_str() {
        "List" => {
            if let Some(Yaml::Array(items)) = yaml::get_mut(doc, "items") {
                for (i, item) in items.iter_mut().enumerate() {
                    let item_label = format!("{label} item {} ({})", i + 1, describe(item));
                    process(item, options, &item_label, notes);
                }
            }
            return;
        }
        "Pod" => Some(doc),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => yaml::get_mut(doc, "spec").and_then(|s| yaml::get_mut(s, "template")),
        "CronJob" => yaml::get_mut(doc, "spec")
            .and_then(|s| yaml::get_mut(s, "jobTemplate"))
            .and_then(|j| yaml::get_mut(j, "spec"))
            .and_then(|s| yaml::get_mut(s, "template")),
        _ => {
            notes.push(format!(
                "{label}: passed through unchanged (not a workload kind)"
            ));
            return;
        }
    };
    let Some(template) = template.filter(|t| t.as_hash().is_some()) else {
        notes.push(format!(
            "{label}: passed through unchanged (no pod template)"
        ));
        return;
    };
    match pod::inject(template, outer, &kind, options) {
        Outcome::Injected(extra) => {
            notes.extend(extra.into_iter().map(|n| format!("{label}: {n}")));
        }
        Outcome::Unchanged(why) => notes.push(format!("{label}: unchanged ({why})")),
    }
}

#[cfg(test)]
mod tests;
