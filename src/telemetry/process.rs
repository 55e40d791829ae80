//! The process collector: sidewatch's own `process_*` metrics (as
//! client_golang names them), the app's as `app_process_*` when the pod shares
//! its process namespace, and container limits from cgroup v2 (sidewatch's
//! own) and from Downward API env (the app container's).

mod cgroup;

use std::time::Duration;

use prometheus_client::registry::Registry;
use serde_json::json;
use sysinfo::{Pid, Process, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

use crate::collect::{CollectError, Collected, Collector};
use crate::config::ProcessConfig;
use crate::telemetry::snapshot::{Kind, SnapshotFamily};

/// The `process_*`-shaped families for one process, under a name prefix.
#[derive(Debug, Clone)]
struct ProcessFamilies {
    cpu: SnapshotFamily,
    resident: SnapshotFamily,
    virtual_memory: SnapshotFamily,
    open_fds: SnapshotFamily,
    max_fds: SnapshotFamily,
    start_time: SnapshotFamily,
}

impl ProcessFamilies {
    fn register(registry: &mut Registry, prefix: &str, whose: &str) -> Self {
        let mut family = |name: &str, help: &str, kind| {
            SnapshotFamily::register(
                registry,
                &format!("{prefix}_{name}"),
                &format!("{help} ({whose})."),
                kind,
            )
        };
        Self {
            cpu: family(
                "cpu_seconds",
                "Total user and system CPU time spent in seconds",
                Kind::Counter,
            ),
            resident: family(
                "resident_memory_bytes",
                "Resident memory size in bytes",
                Kind::Gauge,
            ),
            virtual_memory: family(
                "virtual_memory_bytes",
                "Virtual memory size in bytes",
                Kind::Gauge,
            ),
            open_fds: family("open_fds", "Number of open file descriptors", Kind::Gauge),
            max_fds: family(
                "max_fds",
                "Maximum number of open file descriptors",
                Kind::Gauge,
            ),
            start_time: family(
                "start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                Kind::Gauge,
            ),
        }
    }

    /// Publishes `process`; returns whether its open FDs were readable.
    fn publish(&self, process: &Process) -> bool {
        let set = |family: &SnapshotFamily, value: f64| family.set("", vec![(vec![], value)]);
        set(&self.cpu, process.accumulated_cpu_time() as f64 / 1000.0);
        set(&self.resident, process.memory() as f64);
        set(&self.virtual_memory, process.virtual_memory() as f64);
        set(&self.start_time, process.start_time() as f64);
        if let Some(limit) = process.open_files_limit() {
            set(&self.max_fds, limit as f64);
        }
        match process.open_files() {
            Some(open) => {
                set(&self.open_fds, open as f64);
                true
            }
            None => false,
        }
    }

    fn clear(&self) {
        for family in [
            &self.cpu,
            &self.resident,
            &self.virtual_memory,
            &self.open_fds,
            &self.max_fds,
            &self.start_time,
        ] {
            family.set("", vec![]);
        }
    }
}

/// Reads process and container metrics on an interval.
#[derive(Debug)]
pub struct ProcessCollector {
    interval: Duration,
    system: System,
    own_pid: Pid,
    own: ProcessFamilies,
    app: ProcessFamilies,
    app_name: Option<String>,
    app_pid: Option<Pid>,
    cgroup: cgroup::Cgroup,
    own_memory_limit: SnapshotFamily,
    own_cpu_limit: SnapshotFamily,
    own_memory_usage: SnapshotFamily,
}

impl ProcessCollector {
    /// Registers the families and reads the app container's limits from the
    /// environment (they do not change while the pod lives).
    pub fn build(config: &ProcessConfig, registry: &mut Registry) -> Self {
        // sysinfo keeps /proc/<pid>/stat files open by default; a sidecar's
        // FD count should not grow with what it watches.
        sysinfo::set_open_files_limit(0);
        let own = ProcessFamilies::register(registry, "process", "sidewatch");
        let app = ProcessFamilies::register(registry, "app_process", "the app");
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            SnapshotFamily::register(registry, name, help, Kind::Gauge)
        };
        let app_memory_limit = gauge(
            registry,
            "app_container_memory_limit_bytes",
            "The app container's memory limit in bytes, from the Downward API.",
        );
        let app_cpu_limit = gauge(
            registry,
            "app_container_cpu_limit_cores",
            "The app container's CPU limit in cores, from the Downward API.",
        );
        if let Some(bytes) = env_number(&config.app_memory_limit_env) {
            app_memory_limit.set("", vec![(vec![], bytes)]);
        }
        if let Some(millicores) = env_number(&config.app_cpu_limit_env) {
            app_cpu_limit.set("", vec![(vec![], millicores / 1000.0)]);
        }
        Self {
            interval: config.interval,
            system: System::new(),
            own_pid: Pid::from_u32(std::process::id()),
            own,
            app,
            app_name: config.app_process_name.clone(),
            app_pid: None,
            cgroup: cgroup::Cgroup::new(config.cgroup_root.clone()),
            own_memory_limit: gauge(
                registry,
                "sidewatch_container_memory_limit_bytes",
                "sidewatch's own container memory limit in bytes (cgroup v2 memory.max).",
            ),
            own_cpu_limit: gauge(
                registry,
                "sidewatch_container_cpu_limit_cores",
                "sidewatch's own container CPU limit in cores (cgroup v2 cpu.max).",
            ),
            own_memory_usage: gauge(
                registry,
                "sidewatch_container_memory_usage_bytes",
                "sidewatch's own container memory usage in bytes (cgroup v2 memory.current).",
            ),
        }
    }

    fn refresh_kind() -> ProcessRefreshKind {
        ProcessRefreshKind::nothing()
            .with_cpu()
            .with_memory()
            .without_tasks()
    }

    /// Finds the app's process by name or command-line substring.
    fn find_app(&mut self, name: &str) -> Option<Pid> {
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing()
                .with_cmd(UpdateKind::OnlyIfNotSet)
                .without_tasks(),
        );
        let own_pid = self.own_pid;
        self.system
            .processes()
            .values()
            .filter(|p| p.pid() != own_pid && p.thread_kind().is_none())
            .find(|p| {
                p.name() == name
                    || p.cmd()
                        .iter()
                        .any(|arg| arg.to_string_lossy().contains(name))
            })
            .map(Process::pid)
    }

    fn collect_app(&mut self, name: String) -> Result<serde_json::Value, String> {
        let alive = self.app_pid.is_some_and(|pid| {
            self.system.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                true,
                Self::refresh_kind(),
            );
            self.system.process(pid).is_some()
        });
        if !alive {
            self.app_pid = self.find_app(&name);
            if let Some(pid) = self.app_pid {
                self.system.refresh_processes_specifics(
                    ProcessesToUpdate::Some(&[pid]),
                    true,
                    Self::refresh_kind(),
                );
            }
        }
        let Some(process) = self.app_pid.and_then(|pid| self.system.process(pid)) else {
            self.app.clear();
            return Err(format!(
                "app process {name:?} is not visible; set shareProcessNamespace: true on the pod"
            ));
        };
        let fds_readable = self.app.publish(process);
        Ok(json!({
            "pid": process.pid().as_u32(),
            "name": process.name().to_string_lossy(),
            "open_fds": if fds_readable { "exported" } else { "skipped: reading another user's FDs needs ptrace rights" },
        }))
    }
}

impl Collector for ProcessCollector {
    fn name(&self) -> &str {
        "process"
    }

    fn kind(&self) -> &'static str {
        "process"
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(5)
    }

    async fn collect(&mut self) -> Result<Collected, CollectError> {
        let pid = self.own_pid;
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            Self::refresh_kind(),
        );
        let Some(own) = self.system.process(pid) else {
            return Err(CollectError::new(
                "proc",
                "cannot read /proc for sidewatch itself",
            ));
        };
        self.own.publish(own);

        let limits = self.cgroup.read();
        let publish = |family: &SnapshotFamily, value: Option<f64>| {
            family.set("", value.map(|v| vec![(vec![], v)]).unwrap_or_default());
        };
        publish(&self.own_memory_limit, limits.memory_max);
        publish(&self.own_cpu_limit, limits.cpu_cores);
        publish(&self.own_memory_usage, limits.memory_current);

        let (app, degraded) = match self.app_name.clone() {
            None => (serde_json::Value::Null, None),
            Some(name) => match self.collect_app(name) {
                Ok(details) => (details, None),
                Err(why) => (serde_json::Value::Null, Some(why)),
            },
        };
        Ok(Collected {
            degraded,
            details: json!({ "app_process": app, "cgroup": limits.source }),
        })
    }
}

/// Reads an env var holding a plain number (Downward API `resourceFieldRef` output).
fn env_number(name: &str) -> Option<f64> {
    std::env::var(name)
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| *v > 0.0)
}
