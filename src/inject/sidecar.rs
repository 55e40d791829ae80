//! The sidecar container and pod volumes `inject` adds — the same container
//! the Helm chart's `sidewatch.container` template renders.

use yaml_rust2::Yaml;

use super::yaml::{map, s};
use super::Options;

/// The sidecar container's name; a pod that has it is already injected.
pub const CONTAINER_NAME: &str = "sidewatch";
/// The admin port (`/metrics`, `/healthz`, `/readyz`, `/status`) and its name.
pub const ADMIN_PORT: i64 = 4790;
/// The admin port's name (PodMonitor/ServiceMonitor endpoints use it).
pub const ADMIN_PORT_NAME: &str = "sw-admin";
/// The proxy listener (proxy mode).
pub const PROXY_PORT: i64 = 4791;
/// Where the config ConfigMap is mounted.
const CONFIG_DIR: &str = "/etc/sidewatch";
/// sidewatch's state directory (checkpoints, disk buffers): an emptyDir.
const STATE_DIR: &str = "/var/lib/sidewatch";
/// Volume names.
pub const CONFIG_VOLUME: &str = "sidewatch-config";
/// The state emptyDir.
pub const STATE_VOLUME: &str = "sidewatch-state";
/// The shared log emptyDir.
pub const LOGS_VOLUME: &str = "sidewatch-logs";

/// What the sidecar needs to know about the pod it joins.
#[derive(Debug, Clone, Default)]
pub struct PodFacts {
    /// The app container's name.
    pub app_container: String,
    /// The shared log directory, when tailing.
    pub log_path: Option<String>,
    /// The app's port number on loopback, when known.
    pub app_port: Option<i64>,
    /// The proxy port's name, in proxy mode.
    pub proxy_port_name: Option<String>,
}

fn field_env(name: &str, path: &str) -> Yaml {
    map([
        ("name", s(name)),
        (
            "valueFrom",
            map([("fieldRef", map([("fieldPath", s(path))]))]),
        ),
    ])
}

fn limit_env(name: &str, container: &str, resource: &str, divisor: Option<&str>) -> Yaml {
    let mut reference = map([("containerName", s(container)), ("resource", s(resource))]);
    if let (Some(d), Yaml::Hash(h)) = (divisor, &mut reference) {
        h.insert(s("divisor"), s(d));
    }
    map([
        ("name", s(name)),
        ("valueFrom", map([("resourceFieldRef", reference)])),
    ])
}

fn probe(path: &str, period: i64) -> Yaml {
    map([
        (
            "httpGet",
            map([("path", s(path)), ("port", s(ADMIN_PORT_NAME))]),
        ),
        ("periodSeconds", Yaml::Integer(period)),
        ("timeoutSeconds", Yaml::Integer(3)),
        ("failureThreshold", Yaml::Integer(3)),
    ])
}

fn port(name: &str, number: i64) -> Yaml {
    map([
        ("name", s(name)),
        ("containerPort", Yaml::Integer(number)),
        ("protocol", s("TCP")),
    ])
}

fn mount(name: &str, path: &str, read_only: bool) -> Yaml {
    let mut m = map([("name", s(name)), ("mountPath", s(path))]);
    if let (true, Yaml::Hash(h)) = (read_only, &mut m) {
        h.insert(s("readOnly"), Yaml::Boolean(true));
    }
    m
}

/// The sidecar container.
pub fn container(options: &Options, facts: &PodFacts) -> Yaml {
    let app = facts.app_container.as_str();
    let mut env = vec![
        field_env("SIDEWATCH_POD_NAME", "metadata.name"),
        field_env("SIDEWATCH_POD_NAMESPACE", "metadata.namespace"),
        field_env("SIDEWATCH_NODE_NAME", "spec.nodeName"),
        field_env("SIDEWATCH_POD_IP", "status.podIP"),
        map([("name", s("SIDEWATCH_CONTAINER_NAME")), ("value", s(app))]),
        field_env(
            "SIDEWATCH_APP_VERSION",
            "metadata.labels['app.kubernetes.io/version']",
        ),
        limit_env("SIDEWATCH_APP_MEMORY_LIMIT", app, "limits.memory", None),
        limit_env(
            "SIDEWATCH_APP_CPU_LIMIT_MILLICORES",
            app,
            "limits.cpu",
            Some("1m"),
        ),
    ];
    let value_env = |name: &str, value: String| map([("name", s(name)), ("value", s(value))]);
    if let Some(app_port) = facts.app_port {
        env.push(value_env(
            "SIDEWATCH__SHUTDOWN__APP_ADDR",
            format!("127.0.0.1:{app_port}"),
        ));
    }
    let mut ports = vec![port(ADMIN_PORT_NAME, ADMIN_PORT)];
    if let (Some(name), Some(app_port)) = (&facts.proxy_port_name, facts.app_port) {
        ports.push(port(name, PROXY_PORT));
        env.push(value_env(
            "SIDEWATCH__PROXY__LISTEN",
            format!("0.0.0.0:{PROXY_PORT}"),
        ));
        env.push(value_env(
            "SIDEWATCH__PROXY__UPSTREAM",
            format!("127.0.0.1:{app_port}"),
        ));
    }
    let mut mounts = vec![
        mount(CONFIG_VOLUME, CONFIG_DIR, true),
        mount(STATE_VOLUME, STATE_DIR, false),
    ];
    if let Some(path) = &facts.log_path {
        mounts.push(mount(LOGS_VOLUME, path, true));
    }
    let mut c = map([
        ("name", s(CONTAINER_NAME)),
        ("image", s(options.image.clone())),
        ("imagePullPolicy", s("IfNotPresent")),
    ]);
    let Yaml::Hash(h) = &mut c else {
        return c;
    };
    if options.native {
        h.insert(s("restartPolicy"), s("Always"));
    }
    let config_file = format!("{CONFIG_DIR}/sidewatch.yaml");
    h.insert(
        s("args"),
        Yaml::Array(vec![s("run"), s("--config"), s(config_file)]),
    );
    h.insert(s("ports"), Yaml::Array(ports));
    h.insert(s("env"), Yaml::Array(env));
    h.insert(s("livenessProbe"), probe("/healthz", 10));
    h.insert(s("readinessProbe"), probe("/readyz", 5));
    h.insert(
        s("resources"),
        map([
            ("requests", map([("cpu", s("10m")), ("memory", s("16Mi"))])),
            ("limits", map([("memory", s("64Mi"))])),
        ]),
    );
    h.insert(
        s("securityContext"),
        map([
            ("runAsNonRoot", Yaml::Boolean(true)),
            ("runAsUser", Yaml::Integer(65532)),
            ("runAsGroup", Yaml::Integer(65532)),
            ("readOnlyRootFilesystem", Yaml::Boolean(true)),
            ("allowPrivilegeEscalation", Yaml::Boolean(false)),
            ("capabilities", map([("drop", Yaml::Array(vec![s("ALL")]))])),
            ("seccompProfile", map([("type", s("RuntimeDefault"))])),
        ]),
    );
    h.insert(s("volumeMounts"), Yaml::Array(mounts));
    c
}

/// The pod volumes: config, state and (when tailing) the shared log dir.
pub fn volumes(options: &Options, facts: &PodFacts) -> Vec<Yaml> {
    let empty_dir = |limit: &str| map([("sizeLimit", s(limit))]);
    let mut volumes = vec![
        map([
            ("name", s(CONFIG_VOLUME)),
            ("configMap", map([("name", s(options.config_map.clone()))])),
        ]),
        map([("name", s(STATE_VOLUME)), ("emptyDir", empty_dir("64Mi"))]),
    ];
    if facts.log_path.is_some() {
        volumes.push(map([
            ("name", s(LOGS_VOLUME)),
            ("emptyDir", empty_dir("256Mi")),
        ]));
    }
    volumes
}

/// The app container's mount of the shared log dir.
pub fn app_log_mount(path: &str) -> Yaml {
    mount(LOGS_VOLUME, path, false)
}
