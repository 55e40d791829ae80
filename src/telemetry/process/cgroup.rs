//! sidewatch's own container limits from cgroup v2 (`memory.max`, `cpu.max`,
//! `memory.current`).

use std::path::PathBuf;

/// Where to read cgroup v2 files.
#[derive(Debug)]
pub(super) struct Cgroup {
    root: PathBuf,
}

/// What the cgroup files say; `None` where unlimited or unreadable.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Limits {
    pub memory_max: Option<f64>,
    pub memory_current: Option<f64>,
    pub cpu_cores: Option<f64>,
    /// The directory read, or why nothing was (for `/status`).
    pub source: String,
}

impl Cgroup {
    pub(super) fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub(super) fn read(&self) -> Limits {
        let read = |file: &str| std::fs::read_to_string(self.root.join(file)).ok();
        let Some(memory_max) = read("memory.max") else {
            return Limits {
                source: format!("{}: no cgroup v2 memory.max", self.root.display()),
                ..Limits::default()
            };
        };
        Limits {
            memory_max: parse_memory_max(&memory_max),
            memory_current: read("memory.current").and_then(|s| s.trim().parse().ok()),
            cpu_cores: read("cpu.max").as_deref().and_then(parse_cpu_max),
            source: self.root.display().to_string(),
        }
    }
}

fn parse_memory_max(text: &str) -> Option<f64> {
    text.trim().parse().ok()
}

/// `cpu.max` holds `"<quota> <period>"` or `"max <period>"`.
fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut parts = text.split_whitespace();
    let quota: f64 = parts.next()?.parse().ok()?;
    let period: f64 = parts.next()?.parse().ok()?;
    (period > 0.0).then(|| quota / period)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_limits_and_unlimited() {
        assert_eq!(parse_cpu_max("50000 100000\n"), Some(0.5));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_memory_max("134217728\n"), Some(134217728.0));
        assert_eq!(parse_memory_max("max\n"), None);
    }

    #[test]
    fn reads_a_cgroup_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.max"), "1048576\n").unwrap();
        std::fs::write(dir.path().join("memory.current"), "4096\n").unwrap();
        std::fs::write(dir.path().join("cpu.max"), "200000 100000\n").unwrap();
        let limits = Cgroup::new(dir.path().to_owned()).read();
        assert_eq!(
            (limits.memory_max, limits.memory_current, limits.cpu_cores),
            (Some(1048576.0), Some(4096.0), Some(2.0))
        );
        let missing = Cgroup::new(dir.path().join("nope")).read();
        assert_eq!(missing.memory_max, None);
    }
}
