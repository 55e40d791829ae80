//! `[logs]`: the log pipeline — sources, stage options (`stages.rs`) and
//! sinks; validation in `validate.rs`.

mod stages;
mod validate;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use stages::*;

/// The log pipeline. Without sources nothing runs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogsConfig {
    /// Directory for file checkpoints; must be writable when a file source is
    /// configured (sidewatch refuses to start otherwise). Mount an `emptyDir`
    /// or a volume here so restarts resume where they stopped.
    pub state_dir: PathBuf,
    /// Where events come from.
    pub sources: Vec<LogSourceConfig>,
    /// Options of the stages every event passes, in order: parse, multiline,
    /// correlate, enrich, redact, filter.
    pub stages: StagesConfig,
    /// Where events go; every event goes to every sink.
    pub sinks: Vec<LogSinkConfig>,
    /// Capacity, in batches, of each queue between sources, stages and sinks.
    /// A full queue stops the sources from reading (files are their own buffer).
    pub queue_batches: usize,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("/var/lib/sidewatch"),
            sources: Vec::new(),
            stages: StagesConfig::default(),
            sinks: Vec::new(),
            queue_batches: 16,
        }
    }
}

/// The kinds of log source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Tail files matching glob patterns, with checkpoints.
    File,
    /// Read the process's standard input (`app | sidewatch run`).
    Stdin,
}

/// Where tailing starts in files that exist when sidewatch first starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// From the first byte (a sidecar that starts after the app misses nothing).
    Beginning,
    /// From the current end.
    End,
}

/// One `[[logs.sources]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSourceConfig {
    /// Unique name, used as the `source` label and the checkpoint file name
    /// (letters, digits, `-`, `_`). Defaults to the type.
    pub name: String,
    /// `file` or `stdin`.
    #[serde(rename = "type")]
    pub kind: SourceKind,
    /// File source: glob patterns of files to tail (`*`, `?`, `[abc]` in any
    /// path component), e.g. `/var/log/app/*.log`. Directories that do not
    /// exist yet are waited for.
    pub include: Vec<String>,
    /// File source: glob patterns of files to leave alone (e.g. `*.gz`).
    pub exclude: Vec<String>,
    /// File source: where to start in files present at the first start
    /// (`beginning` or `end`). Files that appear later, and files with a
    /// checkpoint, are always read from the beginning or the checkpoint.
    pub read_from: ReadFrom,
    /// File source: how often the glob patterns are scanned for new files.
    #[serde(with = "humantime_serde")]
    pub scan_interval: Duration,
    /// File source: how often open files are checked for new data when idle.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// File source: at most this many files are open at once; more wait.
    pub max_open_files: usize,
    /// File source: a file that was renamed away or deleted is read to its end
    /// and released once it has not grown for this long.
    #[serde(with = "humantime_serde")]
    pub rotate_wait: Duration,
    /// File source: how often checkpoints are written (also at shutdown).
    #[serde(with = "humantime_serde")]
    pub checkpoint_interval: Duration,
}

impl Default for LogSourceConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            kind: SourceKind::File,
            include: Vec::new(),
            exclude: Vec::new(),
            read_from: ReadFrom::Beginning,
            scan_interval: Duration::from_millis(500),
            poll_interval: Duration::from_millis(100),
            max_open_files: 256,
            rotate_wait: Duration::from_secs(5),
            checkpoint_interval: Duration::from_secs(1),
        }
    }
}

impl LogSourceConfig {
    /// The name, or the type when no name is set.
    pub fn effective_name(&self) -> &str {
        match (self.name.as_str(), self.kind) {
            ("", SourceKind::File) => "file",
            ("", SourceKind::Stdin) => "stdin",
            (name, _) => name,
        }
    }
}

/// The kinds of log sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// JSON lines on standard output (for node-level collectors).
    Stdout,
    /// JSON lines in a local file with size-based rotation.
    File,
    /// Nothing: events are only used for `[[log_metrics]]`, then acknowledged.
    Discard,
}

/// When the file sink calls fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// Never; the data is in the kernel once written, which survives a crash
    /// of sidewatch but not of the machine.
    Never,
    /// After every batch, before acknowledging it.
    Batch,
}

/// One `[[logs.sinks]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSinkConfig {
    /// Unique name, used as the `sink` label. Defaults to the type.
    pub name: String,
    /// `stdout`, `file`, or `discard` (forward nothing; for `[[log_metrics]]` only).
    #[serde(rename = "type")]
    pub kind: SinkKind,
    /// File sink: the file written; rotated files get `.1`, `.2`, ... appended.
    pub path: Option<PathBuf>,
    /// File sink: rotate when the file would grow beyond this size (0 = never).
    pub max_bytes: u64,
    /// File sink: rotated files kept.
    pub max_files: usize,
    /// File sink: `never` or `batch`.
    pub fsync: Fsync,
}

impl Default for LogSinkConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            kind: SinkKind::Stdout,
            path: None,
            max_bytes: 100 * 1024 * 1024,
            max_files: 5,
            fsync: Fsync::Never,
        }
    }
}

impl LogSinkConfig {
    /// The name, or the type when no name is set.
    pub fn effective_name(&self) -> &str {
        match (self.name.as_str(), self.kind) {
            ("", SinkKind::Stdout) => "stdout",
            ("", SinkKind::File) => "file",
            ("", SinkKind::Discard) => "discard",
            (name, _) => name,
        }
    }
}

/// Names of the built-in redaction patterns.
pub const BUILTIN_REDACTIONS: [&str; 4] =
    ["bearer", "url_credentials", "aws_access_key", "card_number"];
