//! The tailer's progress: how much of its open files is still unread, the
//! acknowledgements of the ranges it read, the lag they imply, and the
//! checkpoint document they allow.

use std::time::Instant;

use super::checkpoint::{self, Checkpoints, FileCheckpoint};
use super::{Tailer, RETAIN_RESTORED};

impl Tailer {
    /// Records an acknowledgement. Undelivered ranges stay pending, so the
    /// checkpoint does not move past them in this run.
    pub fn ack(&mut self, stream: u64, start: u64, delivered: bool) {
        if !delivered {
            return;
        }
        if let Some(generation) = self.generations.get_mut(&stream) {
            generation.pending.remove(&start);
        }
    }

    /// Bytes of the open files not read yet: each file's size (one `fstat`
    /// per open file) minus how far it was read, summed.
    pub fn unread_bytes(&self) -> u64 {
        self.files
            .values()
            .filter_map(|t| {
                let size = t.file.as_ref()?.metadata().ok()?.len();
                Some(size.saturating_sub(t.splitter.position()))
            })
            .sum()
    }

    /// When the oldest event read but not acknowledged was read.
    pub fn oldest_pending(&self) -> Option<Instant> {
        self.generations
            .values()
            .filter_map(|g| g.pending.first_key_value().map(|(_, (_, at))| *at))
            .min()
    }

    /// Whether any range is waiting for acknowledgement.
    pub fn has_pending(&self) -> bool {
        self.generations.values().any(|g| !g.pending.is_empty())
    }

    /// The checkpoint document for the current state.
    pub fn checkpoints(&self) -> Checkpoints {
        let mut files: Vec<FileCheckpoint> = self
            .files
            .values()
            .filter_map(|t| {
                let g = self.generations.get(&t.generation)?;
                Some(FileCheckpoint {
                    fingerprint: g.fingerprint,
                    dev: g.dev,
                    ino: g.ino,
                    path: g.path.to_string_lossy().into_owned(),
                    offset: self.checkpoint_offset(t.generation),
                })
            })
            .collect();
        if self.restored_at.elapsed() < RETAIN_RESTORED {
            files.extend(
                self.restored
                    .iter()
                    .filter(|r| !self.files.contains_key(&(r.dev, r.ino)))
                    .cloned(),
            );
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Checkpoints {
            version: checkpoint::VERSION,
            files,
        }
    }

    fn checkpoint_offset(&self, id: u64) -> u64 {
        let Some(g) = self.generations.get(&id) else {
            return 0;
        };
        let own = g.pending.keys().next().copied().unwrap_or(g.emitted_to);
        let parent = g
            .parent
            .and_then(|p| self.generations.get(&p))
            .and_then(|p| p.pending.keys().next().copied());
        parent.map_or(own, |p| own.min(p))
    }
}
