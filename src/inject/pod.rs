//! Adding the sidecar to one pod template (`metadata` + `spec`).

use yaml_rust2::Yaml;

use super::sidecar::{self, PodFacts, ADMIN_PORT, CONTAINER_NAME, PROXY_PORT};
use super::yaml::{ensure_map, ensure_seq, get_mut, int, s, set, text};
use super::Options;

/// `disabled` leaves the workload alone.
pub const ANNOTATION_INJECT: &str = "sidewatch.io/inject";
/// The app port (name or number) to take over with the proxy; its presence turns proxy mode on.
pub const ANNOTATION_APP_PORT: &str = "sidewatch.io/app-port";
/// A directory the app writes log files to, shared with sidewatch.
pub const ANNOTATION_LOG_PATH: &str = "sidewatch.io/log-path";
/// The app container's name (default: the first container).
pub const ANNOTATION_APP_CONTAINER: &str = "sidewatch.io/app-container";
/// The pod label the chart's PodMonitor and Service select.
pub const INSTANCE_LABEL: &str = "sidewatch.io/instance";
/// Kubernetes' limit on port names.
const PORT_NAME_MAX: usize = 15;

/// The workload's sidewatch annotations (pod template ones win over the workload's).
#[derive(Debug, Default, Clone)]
pub struct Annotations {
    inject: Option<String>,
    app_port: Option<String>,
    log_path: Option<String>,
    app_container: Option<String>,
}

impl Annotations {
    /// Reads them from a `metadata.annotations` mapping, over `self`.
    pub fn overlay(mut self, metadata: &Yaml) -> Self {
        let a = &metadata["annotations"];
        let get = |key: &str| text(&a[key]);
        self.inject = get(ANNOTATION_INJECT).or(self.inject);
        self.app_port = get(ANNOTATION_APP_PORT).or(self.app_port);
        self.log_path = get(ANNOTATION_LOG_PATH).or(self.log_path);
        self.app_container = get(ANNOTATION_APP_CONTAINER).or(self.app_container);
        self
    }
}

/// What became of a pod template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The sidecar was added; notes for the user.
    Injected(Vec<String>),
    /// Left unchanged, and why.
    Unchanged(String),
}

/// The app port to take over: its number, and the rename of its name.
struct Takeover {
    port: i64,
    index: usize,
    name: Option<String>,
}

/// Adds the sidecar to `template` (a Pod, or a workload's pod template).
pub fn inject(template: &mut Yaml, outer: Annotations, kind: &str, options: &Options) -> Outcome {
    let ann = outer.overlay(&template["metadata"]);
    if ann.inject.as_deref() == Some("disabled") {
        return Outcome::Unchanged(format!("{ANNOTATION_INJECT}: disabled"));
    }
    let spec = &template["spec"];
    if spec.as_hash().is_none() {
        return Outcome::Unchanged("no pod spec".into());
    }
    let has_sidecar = |list: &Yaml| {
        list.as_vec()
            .is_some_and(|l| l.iter().any(|c| c["name"].as_str() == Some(CONTAINER_NAME)))
    };
    if has_sidecar(&spec["containers"]) || has_sidecar(&spec["initContainers"]) {
        return Outcome::Unchanged("already has the sidewatch container".into());
    }
    let Some(containers) = spec["containers"].as_vec().filter(|c| !c.is_empty()) else {
        return Outcome::Unchanged("no containers".into());
    };
    let wanted = ann
        .app_container
        .clone()
        .or_else(|| options.app_container.clone());
    let app_index = match &wanted {
        Some(name) => containers
            .iter()
            .position(|c| c["name"].as_str() == Some(name)),
        None => Some(0),
    };
    let Some(app_index) = app_index else {
        return Outcome::Unchanged(format!(
            "no container named {:?} (set {ANNOTATION_APP_CONTAINER} or --app-container)",
            wanted.unwrap_or_default()
        ));
    };
    let app = &containers[app_index];
    let app_name = text(&app["name"]).unwrap_or_default();
    let mut notes = Vec::new();

    let port_spec = ann.app_port.clone().or_else(|| options.app_port.clone());
    let takeover_on = ann.app_port.is_some() || options.port_takeover;
    let found = find_port(app, port_spec.as_deref());
    let mut facts = PodFacts {
        app_container: app_name.clone(),
        log_path: ann.log_path.clone().or_else(|| options.log_path.clone()),
        app_port: None,
        proxy_port_name: None,
    };
    let mut rename = None;
    if takeover_on {
        match found {
            Some(Takeover {
                port,
                index,
                name: Some(name),
            }) => {
                let new_name = renamed(&name);
                notes.push(format!(
                    "port takeover: app port {name:?} renamed {new_name:?}; sidewatch's proxy ({PROXY_PORT}) is now {name:?}"
                ));
                facts.app_port = Some(port);
                facts.proxy_port_name = Some(name.clone());
                rename = Some((index, name, new_name));
            }
            Some(Takeover {
                port, name: None, ..
            }) => {
                notes.push(format!(
                    "port takeover: app port {port} has no name; point the Service's targetPort at {PROXY_PORT}"
                ));
                facts.app_port = Some(port);
                facts.proxy_port_name = Some("sw-proxy".into());
            }
            None => {
                return Outcome::Unchanged(format!(
                    "port takeover: container {app_name:?} has no port {:?}",
                    port_spec.unwrap_or_else(|| "(none declared)".into())
                ))
            }
        }
    } else if !options.native {
        // A classic sidecar waits on SIGTERM until the app's port closes.
        facts.app_port = found.map(|t| t.port);
    }
    if !options.native && matches!(kind, "Job" | "CronJob") {
        notes.push("a classic sidecar keeps a Job's pod running after the app exits; prefer the native sidecar".into());
    }

    let spec = get_mut(template, "spec").expect("checked above");
    change_app(spec, app_index, rename, facts.log_path.as_deref());
    let container = sidecar::container(options, &facts);
    if options.native {
        if let Some(init) = ensure_seq(spec, "initContainers") {
            init.insert(0, container);
        }
    } else if let Some(list) = ensure_seq(spec, "containers") {
        list.push(container);
    }
    if let Some(volumes) = ensure_seq(spec, "volumes") {
        volumes.extend(sidecar::volumes(options, &facts));
    }
    label_and_annotate(template, options);
    Outcome::Injected(notes)
}

/// The port named or numbered `wanted` (default: the first one) of a container.
fn find_port(container: &Yaml, wanted: Option<&str>) -> Option<Takeover> {
    let ports = container["ports"].as_vec()?;
    let index = match wanted {
        None => 0,
        Some(w) => ports.iter().position(|p| {
            p["name"].as_str() == Some(w)
                || int(&p["containerPort"]).is_some_and(|n| n.to_string() == w)
        })?,
    };
    let port = ports.get(index)?;
    Some(Takeover {
        port: int(&port["containerPort"])?,
        index,
        name: port["name"].as_str().map(str::to_owned),
    })
}

/// The app's new name for a taken-over port: `app-NAME`, within 15 characters.
fn renamed(name: &str) -> String {
    let mut new = format!("app-{name}");
    new.truncate(PORT_NAME_MAX);
    new.trim_end_matches('-').to_owned()
}

/// Renames the taken-over port (and the app's probes that name it) and mounts the log dir.
fn change_app(
    spec: &mut Yaml,
    app: usize,
    rename: Option<(usize, String, String)>,
    log_path: Option<&str>,
) {
    let Some(Yaml::Array(containers)) = get_mut(spec, "containers") else {
        return;
    };
    let Some(container) = containers.get_mut(app) else {
        return;
    };
    if let Some((index, old, new)) = rename {
        if let Some(Yaml::Array(ports)) = get_mut(container, "ports") {
            if let Some(port) = ports.get_mut(index) {
                set(port, "name", s(new.clone()));
            }
        }
        for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
            for handler in ["httpGet", "tcpSocket", "grpc"] {
                let Some(h) = get_mut(container, probe).and_then(|p| get_mut(p, handler)) else {
                    continue;
                };
                if let Some(port) = get_mut(h, "port") {
                    if port.as_str() == Some(&old) {
                        *port = s(new.clone());
                    }
                }
            }
        }
    }
    if let Some(path) = log_path {
        if let Some(mounts) = ensure_seq(container, "volumeMounts") {
            mounts.push(sidecar::app_log_mount(path));
        }
    }
}

/// The instance label (for the PodMonitor) and, when asked, scrape annotations.
fn label_and_annotate(template: &mut Yaml, options: &Options) {
    let Some(metadata) = ensure_map(template, "metadata") else {
        return;
    };
    if let Some(labels) = ensure_map(metadata, "labels") {
        set(labels, INSTANCE_LABEL, s(options.instance.clone()));
    }
    if options.scrape_annotations {
        if let Some(a) = ensure_map(metadata, "annotations") {
            set(a, "prometheus.io/scrape", s("true"));
            set(a, "prometheus.io/port", s(ADMIN_PORT.to_string()));
            set(a, "prometheus.io/path", s("/metrics"));
        }
    }
}
