//! Opening files: choosing where reading starts (a known generation's
//! continuation, a checkpoint, the beginning or the end) and keeping the
//! number of open descriptors bounded.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::{
    new_generation, Fingerprint, Key, LineSplitter, ReadFrom, Start, State, TailEvents, Tailer,
    Tracked,
};

impl Tailer {
    pub(super) fn open_waiting(&mut self, events: &dyn TailEvents) {
        for _ in 0..self.waiting.len() {
            if self.open_count() >= self.options.max_open_files {
                break;
            }
            let Some((key, path)) = self.waiting.pop_front() else {
                break;
            };
            match File::open(&path) {
                Ok(file) => {
                    if !self.open(key, &path, file, events) {
                        self.waiting.push_back((key, path));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => events.io_error(&path, &e),
            }
        }
        self.deferred
            .retain(|key, _| self.waiting.iter().any(|(k, _)| k == key));
        if !self.waiting.is_empty() {
            self.close_idle();
        }
    }

    /// Opens a waiting file; false when the decision is deferred (see
    /// [`Tailer::start_of`]) and the file stays waiting.
    fn open(&mut self, key: Key, path: &Path, mut file: File, events: &dyn TailEvents) -> bool {
        let Ok(meta) = file.metadata() else {
            return true;
        };
        if (meta.dev(), meta.ino()) != key {
            return true; // replaced between scan and open; the next scan sees it
        }
        let size = meta.len();
        let fingerprint = Fingerprint::read(&file).ok().flatten();
        let path: Arc<Path> = Arc::from(path);
        if let Some(tracked) = self.files.get_mut(&key) {
            // Reopening a file closed for lack of descriptors.
            let same = self
                .generations
                .get(&tracked.generation)
                .is_some_and(|g| g.fingerprint.is_none() || g.fingerprint == fingerprint);
            let position = tracked.splitter.position();
            if same && size >= position && file.seek(SeekFrom::Start(position)).is_ok() {
                tracked.file = Some(file);
                tracked.last_change = Instant::now();
                events.file_added(&path, position, Start::Reopened);
                return true;
            }
            self.release(key, None, events);
        }
        let Some((offset, start, parent)) = self.start_of(key, fingerprint, size) else {
            self.deferred.entry(key).or_insert_with(Instant::now);
            return false;
        };
        self.deferred.remove(&key);
        if file.seek(SeekFrom::Start(offset)).is_err() {
            return true;
        }
        let id = self.next_generation;
        self.next_generation += 1;
        self.generations.insert(
            id,
            new_generation(fingerprint, key.0, key.1, path.clone(), offset, parent),
        );
        self.files.insert(
            key,
            Tracked {
                generation: id,
                file: Some(file),
                splitter: LineSplitter::new(self.options.max_line_bytes, offset),
                state: State::Live,
                last_change: Instant::now(),
            },
        );
        self.order.push(key);
        events.file_added(&path, offset, start);
        true
    }

    /// Where reading a newly found file starts. `None` defers the decision:
    /// the file has the first line of a known generation but is shorter than
    /// what was read of it — most likely a copy still being written
    /// (copytruncate) — so it waits up to `rotate_wait` to grow; after
    /// that it is taken as a new file that happens to start the same way.
    fn start_of(
        &self,
        key: Key,
        fingerprint: Option<Fingerprint>,
        size: u64,
    ) -> Option<(u64, Start, Option<u64>)> {
        if let Some(fp) = fingerprint {
            let known = self
                .generations
                .iter()
                .filter(|(_, g)| g.fingerprint == Some(fp) && g.emitted_to <= size)
                .max_by_key(|(_, g)| g.emitted_to);
            if let Some((id, g)) = known {
                return Some((g.emitted_to, Start::Continuation, Some(*id)));
            }
            let longer =
                self.generations
                    .values()
                    .any(|g| g.fingerprint == Some(fp) && g.emitted_to > size)
                    || self.restored.iter().any(|r| {
                        r.fingerprint == Some(fp) && r.offset > size && (r.dev, r.ino) != key
                    });
            let waited = self
                .deferred
                .get(&key)
                .is_some_and(|since| since.elapsed() >= self.options.rotate_wait);
            if longer && !waited {
                return None;
            }
        }
        let exact = self
            .restored
            .iter()
            .find(|r| (r.dev, r.ino) == key && r.fingerprint == fingerprint);
        let copy = || {
            self.restored
                .iter()
                .filter(|r| fingerprint.is_some() && r.fingerprint == fingerprint)
                .filter(|r| r.offset <= size)
                .max_by_key(|r| r.offset)
        };
        if let Some(r) = exact.or_else(copy) {
            let offset = if r.offset <= size { r.offset } else { 0 };
            return Some((offset, Start::Checkpoint, None));
        }
        if self.first_start && self.first_scan && self.options.read_from == ReadFrom::End {
            return Some((size, Start::End, None));
        }
        Some((0, Start::Beginning, None))
    }

    /// Closes the open file that has been idle longest, so a waiting file can
    /// be opened; it is reopened when it grows.
    fn close_idle(&mut self) {
        let idle = self
            .files
            .iter()
            .filter(|(_, t)| {
                t.file.is_some()
                    && t.state == State::Live
                    && !t.splitter.has_partial()
                    && t.last_change.elapsed() >= self.options.rotate_wait
            })
            .min_by_key(|(_, t)| t.last_change)
            .map(|(k, _)| *k);
        if let Some(key) = idle {
            if let Some(tracked) = self.files.get_mut(&key) {
                tracked.file = None;
            }
        }
    }
}
