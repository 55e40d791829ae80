//! The file source: drives a [`Tailer`], turns its chunks into events with
//! one acknowledgement token per chunk, feeds acknowledgements back, writes
//! checkpoints on an interval and at shutdown, and reports what the tailer
//! does as logs and metrics (the tailer itself has none).

use std::cell::Cell;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::{Source, SourceContext};
use crate::config::logs::{LogSourceConfig, LogsConfig, MultilineConfig};
use crate::logs::ack::{AckToken, Acked};
use crate::logs::event::{EventMeta, Flags, SourceInfo};
use crate::logs::stage::multiline::Joiner;
use crate::logs::tail::checkpoint::{self, Checkpoints};
use crate::logs::tail::{Chunk, FileCounts, Glob, Start, TailEvents, TailOptions, Tailer};
use crate::logs::Event;

/// Bytes read from one file at a time (one chunk, one token).
const CHUNK_BYTES: usize = 64 * 1024;
/// At shutdown, how long the source keeps reading files to their end.
const FINAL_READ: Duration = Duration::from_secs(1);

/// Tails files matching glob patterns.
pub struct FileSource {
    options: TailOptions,
    restored: Option<Checkpoints>,
    state_path: PathBuf,
    info: Arc<SourceInfo>,
    scan_interval: Duration,
    poll_interval: Duration,
    checkpoint_interval: Duration,
    multiline: Option<MultilineConfig>,
}

impl FileSource {
    /// Builds the source and loads its checkpoints. An unreadable checkpoint
    /// file is reported and set aside; files are then read from the beginning
    /// (duplicates rather than loss).
    pub fn build(
        config: &LogSourceConfig,
        logs: &LogsConfig,
        info: Arc<SourceInfo>,
    ) -> Result<Self, String> {
        let globs = |patterns: &[String]| {
            patterns
                .iter()
                .map(|p| Glob::new(p).map_err(|e| format!("{p:?}: {e}")))
                .collect::<Result<Vec<_>, _>>()
        };
        let state_path = logs
            .state_dir
            .join(format!("checkpoints-{}.json", config.effective_name()));
        let restored = match checkpoint::load(&state_path) {
            Ok(restored) => restored,
            Err(error) => {
                tracing::warn!(source = %info.name, %error, "checkpoint file unusable; reading files from the beginning");
                Some(Checkpoints::default())
            }
        };
        Ok(Self {
            options: TailOptions {
                include: globs(&config.include)?,
                exclude: globs(&config.exclude)?,
                read_from: config.read_from,
                max_open_files: config.max_open_files,
                rotate_wait: config.rotate_wait,
                max_line_bytes: logs.stages.parse.max_line_bytes,
                chunk_bytes: CHUNK_BYTES,
            },
            restored,
            state_path,
            info,
            scan_interval: config.scan_interval,
            poll_interval: config.poll_interval,
            checkpoint_interval: config.checkpoint_interval,
            multiline: logs
                .stages
                .multiline
                .enabled
                .then(|| logs.stages.multiline.clone()),
        })
    }
}

struct Running {
    tailer: Tailer,
    reporter: Reporter,
    acks: UnboundedReceiver<Acked>,
    ack_tx: Option<UnboundedSender<Acked>>,
    info: Arc<SourceInfo>,
    state_path: PathBuf,
    last_saved: Option<Checkpoints>,
    multiline: Option<MultilineConfig>,
    joiners: HashMap<u64, Joiner>,
    /// How often the gauges are refreshed while a send waits.
    poll_interval: Duration,
}

impl Source for FileSource {
    async fn run(self, ctx: SourceContext) {
        let (ack_tx, acks) = unbounded_channel();
        let mut running = Running {
            tailer: Tailer::new(self.options, self.restored),
            reporter: Reporter {
                source: self.info.name.clone(),
                info: self.info.clone(),
                counts: Cell::new(FileCounts::default()),
            },
            acks,
            ack_tx: Some(ack_tx),
            info: self.info,
            state_path: self.state_path,
            last_saved: None,
            multiline: self.multiline,
            joiners: HashMap::new(),
            poll_interval: self.poll_interval,
        };
        running.tailer.scan(&running.reporter);
        let mut last_scan = Instant::now();
        let mut last_checkpoint = Instant::now();
        let mut chunks = Vec::new();
        while !ctx.stop.is_cancelled() {
            running.take_acks();
            if last_scan.elapsed() >= self.scan_interval {
                running.tailer.scan(&running.reporter);
                last_scan = Instant::now();
            }
            if last_checkpoint.elapsed() >= self.checkpoint_interval {
                running.save().await;
                last_checkpoint = Instant::now();
            }
            running.update_gauges();
            let read = running.tailer.read(&mut chunks, &running.reporter);
            let flush = running.flush_joiners(false);
            if (!chunks.is_empty() || !flush.is_empty())
                && !running.send(&ctx, &mut chunks, flush).await
            {
                break;
            }
            if read == 0 {
                tokio::select! {
                    () = tokio::time::sleep(self.poll_interval) => {}
                    () = ctx.stop.cancelled() => {}
                    Some(acked) = running.acks.recv() => running.ack(acked),
                }
            } else {
                tokio::task::consume_budget().await;
            }
        }
        // The app is gone (or the grace period is over): read what it wrote
        // last, then wait for the acknowledgements of everything in flight.
        let deadline = Instant::now() + FINAL_READ;
        while !ctx.abort.is_cancelled() && Instant::now() < deadline {
            let read = running.tailer.read(&mut chunks, &running.reporter);
            if read == 0 {
                running
                    .tailer
                    .release_rotated(&mut chunks, &running.reporter);
            }
            let flush = running.flush_joiners(read == 0);
            if (!chunks.is_empty() || !flush.is_empty())
                && !running.send(&ctx, &mut chunks, flush).await
            {
                break;
            }
            if read == 0 {
                break;
            }
        }
        drop(ctx.out);
        running.ack_tx = None;
        loop {
            tokio::select! {
                acked = running.acks.recv() => match acked {
                    Some(acked) => running.ack(acked),
                    None => break,
                },
                () = ctx.abort.cancelled() => break,
                () = tokio::time::sleep(self.checkpoint_interval) => running.save().await,
            }
        }
        running.take_acks();
        running.update_gauges();
        running.save().await;
    }
}

impl Running {
    fn ack(&mut self, acked: Acked) {
        self.tailer.ack(acked.stream, acked.start, acked.delivered);
    }

    fn take_acks(&mut self) {
        while let Ok(acked) = self.acks.try_recv() {
            self.ack(acked);
        }
    }

    /// Sets the lag and unread-bytes gauges.
    fn update_gauges(&self) {
        let lag = self
            .tailer
            .oldest_pending()
            .map_or(0.0, |at| at.elapsed().as_secs_f64());
        self.info.metrics.lag.set(lag);
        let unread = self.tailer.unread_bytes();
        self.info
            .metrics
            .unread
            .set(i64::try_from(unread).unwrap_or(i64::MAX));
    }

    /// Events the multiline joiners hold that are due (all with `all`).
    fn flush_joiners(&mut self, all: bool) -> Vec<Event> {
        let mut out = Vec::new();
        for joiner in self.joiners.values_mut() {
            out.extend(if all {
                joiner.flush()
            } else {
                joiner.flush_expired()
            });
        }
        self.joiners.retain(|_, j| j.is_pending());
        out
    }

    /// Turns chunks into one batch (after `first`) and sends it; false when
    /// the pipeline is gone.
    async fn send(
        &mut self,
        ctx: &SourceContext,
        chunks: &mut Vec<Chunk>,
        first: Vec<Event>,
    ) -> bool {
        let Some(ack_tx) = &self.ack_tx else {
            return false;
        };
        let read_at = SystemTime::now();
        let mut batch = first;
        batch.reserve(chunks.iter().map(|c| c.lines.len()).sum());
        let mut bytes = 0;
        for chunk in chunks.drain(..) {
            let token = AckToken::new(chunk.stream, chunk.start, chunk.end, ack_tx.clone());
            bytes += chunk.end - chunk.start;
            for line in chunk.lines {
                let mut flags = Flags::default();
                if line.truncated {
                    flags.insert(Flags::TRUNCATED);
                }
                let meta = EventMeta {
                    source: self.info.clone(),
                    path: Some(chunk.path.clone()),
                    read_at,
                    raw_len: line.len,
                    flags,
                };
                let event = Event::from_line(line.bytes, meta, Some(token.reference()));
                match &self.multiline {
                    None => batch.push(event),
                    Some(config) => {
                        let joiner = match self.joiners.entry(chunk.stream) {
                            Entry::Occupied(e) => e.into_mut(),
                            Entry::Vacant(e) => match Joiner::new(config) {
                                Ok(joiner) => e.insert(joiner),
                                Err(_) => {
                                    batch.push(event);
                                    continue;
                                }
                            },
                        };
                        batch.extend(joiner.push(event));
                    }
                }
            }
        }
        self.info.metrics.bytes.inc_by(bytes);
        if batch.is_empty() {
            return true;
        }
        // Held back (a full pipeline): the gauges still follow the files and
        // the acknowledgements.
        let send = ctx.out.send(batch);
        tokio::pin!(send);
        loop {
            tokio::select! {
                biased;
                sent = &mut send => return sent.is_ok(),
                () = ctx.abort.cancelled() => return false,
                () = tokio::time::sleep(self.poll_interval) => {
                    self.take_acks();
                    self.update_gauges();
                }
            }
        }
    }

    /// Writes the checkpoint file when it changed (off the async threads).
    async fn save(&mut self) {
        self.take_acks();
        let checkpoints = self.tailer.checkpoints();
        if self.last_saved.as_ref() == Some(&checkpoints) {
            return;
        }
        let path = self.state_path.clone();
        let to_save = checkpoints.clone();
        let result = tokio::task::spawn_blocking(move || checkpoint::save(&path, &to_save)).await;
        match result {
            Ok(Ok(())) => {
                self.info.metrics.checkpoint_writes.inc();
                self.last_saved = Some(checkpoints);
            }
            Ok(Err(error)) => {
                tracing::warn!(source = %self.info.name, %error, "cannot write checkpoint")
            }
            Err(error) => {
                tracing::warn!(source = %self.info.name, %error, "checkpoint writer failed")
            }
        }
    }
}

/// Logs and metrics for what the tailer does.
struct Reporter {
    source: String,
    info: Arc<SourceInfo>,
    counts: Cell<FileCounts>,
}

impl TailEvents for Reporter {
    fn file_added(&self, path: &Path, offset: u64, start: Start) {
        tracing::info!(source = %self.source, path = %path.display(), offset, ?start, "tailing file");
    }

    fn file_truncated(&self, path: &Path) {
        tracing::info!(source = %self.source, path = %path.display(), "file truncated; reading from the start");
    }

    fn file_rotated(&self, path: &Path) {
        tracing::info!(source = %self.source, path = %path.display(), "file renamed away or deleted; reading it to the end");
    }

    fn file_released(&self, path: &Path) {
        tracing::debug!(source = %self.source, path = %path.display(), "file released");
    }

    fn io_error(&self, path: &Path, error: &io::Error) {
        tracing::warn!(source = %self.source, path = %path.display(), %error, "cannot read file");
    }

    fn file_counts(&self, counts: FileCounts) {
        let old = self.counts.replace(counts);
        let gauges = &self.info.metrics.tail_files;
        for (gauge, (new, old)) in gauges.iter().zip([
            (counts.open, old.open),
            (counts.rotated, old.rotated),
            (counts.waiting, old.waiting),
        ]) {
            gauge.inc_by(new as i64 - old as i64);
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.file_counts(FileCounts::default());
    }
}
