//! File tailing with checkpoints, free of metrics and async: the file source
//! drives a [`Tailer`] and learns what happens through [`TailEvents`].
//!
//! Identity. A file is tracked by device+inode while it is open, and its
//! content by a *generation*: a stream of bytes with a first-line
//! [`Fingerprint`]. Rename rotation keeps the inode, so reading goes on
//! through the open descriptor to the end. A truncation (size below the read
//! position, or a first line that changed) starts a new generation at 0. A new
//! inode whose fingerprint matches a known generation is a copy of it
//! (copytruncate's rotated file): it continues from that generation's
//! position instead of repeating it.
//!
//! Acknowledgement. Every chunk of lines is one range of its generation;
//! ranges stay pending until acknowledged, and a generation's checkpoint is
//! the start of its lowest pending range (or the end of the last emitted line
//! when none is pending).

pub mod checkpoint;
pub mod discovery;
pub mod fingerprint;
mod open;
mod progress;
pub mod reader;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use discovery::{Glob, GlobError};
pub use fingerprint::Fingerprint;
pub use reader::{Line, LineSplitter};

use checkpoint::{Checkpoints, FileCheckpoint};

use crate::config::logs::ReadFrom;

/// How long a generation whose file is gone stays known, so a copy of it
/// found by a later scan continues it instead of repeating it.
const RETAIN_GONE: Duration = Duration::from_secs(60);
/// One `read` call reads at most this many chunks' worth of bytes.
const READ_BUDGET_CHUNKS: usize = 4;
/// How long checkpoints of files not seen since a restart are kept.
const RETAIN_RESTORED: Duration = Duration::from_secs(600);

/// What the tailer is told to do.
#[derive(Debug, Clone)]
pub struct TailOptions {
    /// Files to tail.
    pub include: Vec<Glob>,
    /// Files to leave alone.
    pub exclude: Vec<Glob>,
    /// Where to start in files present at the first start.
    pub read_from: ReadFrom,
    /// At most this many open files.
    pub max_open_files: usize,
    /// Release a renamed-away or deleted file after it has not grown for this long.
    pub rotate_wait: Duration,
    /// Longer lines are truncated.
    pub max_line_bytes: usize,
    /// Bytes read from one file at a time.
    pub chunk_bytes: usize,
}

/// How a file's start position was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// From the first byte.
    Beginning,
    /// From the end (`read_from = "end"` at the first start).
    End,
    /// From a checkpoint written before a restart.
    Checkpoint,
    /// Continuing a known generation (a copy of a file read before).
    Continuation,
    /// Reopened after being closed for lack of descriptors.
    Reopened,
}

/// How many files are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileCounts {
    /// Open and matched by the patterns.
    pub open: usize,
    /// Renamed away or deleted, being read to the end.
    pub rotated: usize,
    /// Waiting for a descriptor (over `max_open_files`).
    pub waiting: usize,
}

/// What happens to files, for logs and metrics (implemented by the source).
pub trait TailEvents {
    /// A file is being read from `offset`.
    fn file_added(&self, path: &Path, offset: u64, start: Start);
    /// A file was truncated or rewritten; reading restarts at 0.
    fn file_truncated(&self, path: &Path);
    /// A file was renamed away or deleted; it is read to its end.
    fn file_rotated(&self, path: &Path);
    /// A file was read to its end and its descriptor released.
    fn file_released(&self, path: &Path);
    /// A file could not be opened or read.
    fn io_error(&self, path: &Path, error: &io::Error);
    /// The number of files in each state changed.
    fn file_counts(&self, counts: FileCounts);
}

/// Complete lines read from one generation, covering `start..end`.
#[derive(Debug)]
pub struct Chunk {
    /// The generation (the acknowledgement stream).
    pub stream: u64,
    /// Offset of the first line.
    pub start: u64,
    /// Offset just past the last line's ending.
    pub end: u64,
    /// The file's path as last seen.
    pub path: Arc<Path>,
    /// The lines.
    pub lines: Vec<Line>,
}

#[derive(Debug)]
struct Generation {
    fingerprint: Option<Fingerprint>,
    dev: u64,
    ino: u64,
    path: Arc<Path>,
    /// start -> (end, read at)
    pending: BTreeMap<u64, (u64, Instant)>,
    emitted_to: u64,
    parent: Option<u64>,
    attached: bool,
    gone_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Live,
    Rotated,
}

#[derive(Debug)]
struct Tracked {
    generation: u64,
    file: Option<File>,
    splitter: LineSplitter,
    state: State,
    last_change: Instant,
}

type Key = (u64, u64);

/// Tails the files matching a set of patterns. Not async: each call does a
/// bounded amount of file I/O.
#[derive(Debug)]
pub struct Tailer {
    options: TailOptions,
    files: HashMap<Key, Tracked>,
    order: Vec<Key>,
    next: usize,
    waiting: VecDeque<(Key, PathBuf)>,
    deferred: HashMap<Key, Instant>,
    generations: HashMap<u64, Generation>,
    next_generation: u64,
    restored: Vec<FileCheckpoint>,
    restored_at: Instant,
    first_start: bool,
    first_scan: bool,
    buffer: Vec<u8>,
    counts: FileCounts,
}

impl Tailer {
    /// A tailer; `restored` is the checkpoint document of an earlier run
    /// (`None` on the first start).
    pub fn new(options: TailOptions, restored: Option<Checkpoints>) -> Self {
        Self {
            buffer: vec![0; options.chunk_bytes.max(4096)],
            options,
            files: HashMap::new(),
            order: Vec::new(),
            next: 0,
            waiting: VecDeque::new(),
            deferred: HashMap::new(),
            generations: HashMap::new(),
            next_generation: 1,
            first_start: restored.is_none(),
            restored: restored.map(|c| c.files).unwrap_or_default(),
            restored_at: Instant::now(),
            first_scan: true,
            counts: FileCounts::default(),
        }
    }

    /// Expands the patterns: new files are opened (or queued), files gone
    /// from the patterns are read to their end and then released.
    pub fn scan(&mut self, events: &dyn TailEvents) {
        let mut paths = Vec::new();
        for glob in &self.options.include {
            glob.scan(&mut paths);
        }
        paths.sort();
        paths.dedup();
        paths.retain(|p| !self.options.exclude.iter().any(|g| g.matches(p)));
        let mut seen = HashSet::new();
        for path in paths {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let key = (meta.dev(), meta.ino());
            if !seen.insert(key) {
                continue;
            }
            if let Some(tracked) = self.files.get_mut(&key) {
                let generation = self.generations.get_mut(&tracked.generation);
                if let Some(generation) = generation {
                    if *generation.path != *path {
                        generation.path = Arc::from(path.as_path());
                    }
                }
                tracked.state = State::Live;
                if tracked.file.is_none()
                    && meta.len() != tracked.splitter.position()
                    && !self.waiting.iter().any(|(k, _)| *k == key)
                {
                    self.waiting.push_back((key, path));
                }
            } else if !self.waiting.iter().any(|(k, _)| *k == key) {
                self.waiting.push_back((key, path));
            }
        }
        self.waiting.retain(|(key, _)| seen.contains(key));
        let now = Instant::now();
        let mut gone = Vec::new();
        for (key, tracked) in &mut self.files {
            if seen.contains(key) || tracked.state == State::Rotated {
                continue;
            }
            if tracked.file.is_some() {
                tracked.state = State::Rotated;
                tracked.last_change = now;
                if let Some(g) = self.generations.get(&tracked.generation) {
                    events.file_rotated(&g.path);
                }
            } else {
                gone.push(*key);
            }
        }
        for key in gone {
            self.release(key, None, events);
        }
        self.open_waiting(events);
        self.first_scan = false;
        self.collect_garbage();
        self.report_counts(events);
    }

    /// Reads at most one chunk from each open file (and a few chunks in
    /// all), appending chunks with complete lines to `out`. Returns the
    /// number of bytes read.
    pub fn read(&mut self, out: &mut Vec<Chunk>, events: &dyn TailEvents) -> usize {
        let mut total = 0;
        let keys: Vec<Key> = self.order.clone();
        let n = keys.len();
        for i in 0..n {
            let key = keys[(self.next + i) % n];
            total += self.read_one(key, out, events);
            if total >= READ_BUDGET_CHUNKS * self.options.chunk_bytes {
                break; // bounds one batch; the next call starts elsewhere
            }
        }
        if n > 0 {
            self.next = (self.next + 1) % n;
        }
        total
    }

    fn read_one(&mut self, key: Key, out: &mut Vec<Chunk>, events: &dyn TailEvents) -> usize {
        let Some(tracked) = self.files.get_mut(&key) else {
            return 0;
        };
        let Some(file) = tracked.file.as_mut() else {
            return 0;
        };
        let Some(generation) = self.generations.get_mut(&tracked.generation) else {
            return 0;
        };
        let read = loop {
            match file.read(&mut self.buffer) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                events.io_error(&generation.path, &e);
                return 0;
            }
        };
        // The first line must still be the one this generation started
        // with: otherwise the file was truncated (and maybe rewritten) and
        // what was just read belongs to new content.
        let truncated = match generation.fingerprint {
            Some(expected) => Fingerprint::read(file).ok().flatten() != Some(expected),
            None => {
                n == 0
                    && file
                        .metadata()
                        .is_ok_and(|m| m.len() < tracked.splitter.position())
            }
        };
        if truncated {
            events.file_truncated(&generation.path);
            let path = generation.path.clone();
            let (dev, ino) = (generation.dev, generation.ino);
            generation.attached = false;
            generation.gone_at = Some(Instant::now());
            let _ = file.seek(SeekFrom::Start(0));
            let fingerprint = Fingerprint::read(file).ok().flatten();
            tracked.splitter.reset(0);
            tracked.last_change = Instant::now();
            let id = self.next_generation;
            self.next_generation += 1;
            tracked.generation = id;
            self.generations
                .insert(id, new_generation(fingerprint, dev, ino, path, 0, None));
            return 0;
        }
        if n == 0 {
            if tracked.state == State::Rotated
                && tracked.last_change.elapsed() >= self.options.rotate_wait
            {
                self.release(key, Some(out), events);
                self.report_counts(events);
            }
            return 0;
        }
        tracked.last_change = Instant::now();
        if generation.fingerprint.is_none() {
            generation.fingerprint = Fingerprint::read(file).ok().flatten();
        }
        let start = tracked.splitter.line_start();
        let mut lines = Vec::new();
        tracked.splitter.feed(&self.buffer[..n], &mut lines);
        let end = tracked.splitter.line_start();
        if !lines.is_empty() {
            generation.pending.insert(start, (end, Instant::now()));
            generation.emitted_to = end;
            out.push(Chunk {
                stream: tracked.generation,
                start,
                end,
                path: generation.path.clone(),
                lines,
            });
        }
        n
    }

    /// Whether any file is open.
    pub fn has_open_files(&self) -> bool {
        self.files.values().any(|t| t.file.is_some())
    }

    /// Stops tracking a file; with `out`, its partial last line (its writer
    /// is done with it) is emitted first.
    fn release(&mut self, key: Key, out: Option<&mut Vec<Chunk>>, events: &dyn TailEvents) {
        let Some(mut tracked) = self.files.remove(&key) else {
            return;
        };
        self.order.retain(|k| *k != key);
        let Some(g) = self.generations.get_mut(&tracked.generation) else {
            return;
        };
        let start = tracked.splitter.line_start();
        if let (Some(out), Some(line)) = (out, tracked.splitter.finish()) {
            let end = tracked.splitter.line_start();
            g.pending.insert(start, (end, Instant::now()));
            g.emitted_to = end;
            out.push(Chunk {
                stream: tracked.generation,
                start,
                end,
                path: g.path.clone(),
                lines: vec![line],
            });
        }
        g.attached = false;
        g.gone_at = Some(Instant::now());
        events.file_released(&g.path);
    }

    /// Releases every file gone from the patterns at once, emitting partial
    /// last lines (used at shutdown, once the app is gone).
    pub fn release_rotated(&mut self, out: &mut Vec<Chunk>, events: &dyn TailEvents) {
        let rotated: Vec<Key> = self
            .files
            .iter()
            .filter(|(_, t)| t.state == State::Rotated)
            .map(|(k, _)| *k)
            .collect();
        for key in rotated {
            self.release(key, Some(&mut *out), events);
        }
        self.report_counts(events);
    }

    fn collect_garbage(&mut self) {
        self.generations.retain(|_, g| {
            g.attached
                || !g.pending.is_empty()
                || g.gone_at.is_some_and(|t| t.elapsed() < RETAIN_GONE)
        });
    }

    fn open_count(&self) -> usize {
        self.files.values().filter(|t| t.file.is_some()).count()
    }

    fn report_counts(&mut self, events: &dyn TailEvents) {
        let mut counts = FileCounts {
            waiting: self.waiting.len(),
            ..FileCounts::default()
        };
        for tracked in self.files.values() {
            match (tracked.state, tracked.file.is_some()) {
                (State::Rotated, _) => counts.rotated += 1,
                (State::Live, true) => counts.open += 1,
                (State::Live, false) => {}
            }
        }
        if counts != self.counts {
            self.counts = counts;
            events.file_counts(counts);
        }
    }
}

fn new_generation(
    fingerprint: Option<Fingerprint>,
    dev: u64,
    ino: u64,
    path: Arc<Path>,
    offset: u64,
    parent: Option<u64>,
) -> Generation {
    Generation {
        fingerprint,
        dev,
        ino,
        path,
        pending: BTreeMap::new(),
        emitted_to: offset,
        parent,
        attached: true,
        gone_at: None,
    }
}

#[cfg(test)]
mod tests;
