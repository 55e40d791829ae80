//! The disk buffer of one network sink: the events of an outage (while
//! requests fail, memory drains here; see the module above), in size-capped
//! segment files under the state directory.
//!
//! A segment (`<sequence>.seg`) starts with the magic `SWDB` and a format
//! version (u32 LE, now 1), then records: payload length (u32 LE), CRC-32 of
//! the payload (u32 LE), payload (source name length u8, source name, read
//! time in ns u64 LE, raw length u32 LE, the fields as JSON). An event is
//! acknowledged to its source once its record is fsync'd. Segments are read
//! record by record (never loaded whole); a record that does not check out
//! ends its segment's readable part (a corrupt or torn tail), which is
//! skipped and counted.
//!
//! [`DiskBuffer::read`] hands out chunks in file order; they may be
//! delivered in any order (several are in flight). Each segment's delivered
//! prefix — the end of the last chunk before which every chunk is delivered —
//! is kept in its marker file `<sequence>.done` (see [`marker`]: magic,
//! offset, checksum), rewritten in place whenever the prefix advances and
//! not fsync'd. A segment is deleted (with its marker) once every record in
//! it is delivered. Segments left by an earlier run are read first after a
//! restart, each from its marker's offset: a marker that does not check out,
//! or whose offset is not the start of a record (or the end of the valid
//! part), is ignored and the segment read from its start. So a process crash
//! (SIGKILL) resends only the chunks that were in flight; after a power loss
//! the marker may be older than what was delivered, and what lies after it
//! is sent again (never lost).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::logs::{Event, SourceInfo};

mod marker;
mod record;
use marker::Marker;
pub use record::read_segment;
use record::{decode, encode, read_record};

const MAGIC: &[u8; 4] = b"SWDB";
/// The segment format version written.
pub const VERSION: u32 = 1;
const HEADER: u64 = 8;
/// A segment is closed once it grows beyond this.
const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
/// Larger records are taken as corruption.
const MAX_RECORD: u32 = 64 * 1024 * 1024;

/// One segment file.
#[derive(Debug)]
struct Segment {
    id: u64,
    /// Bytes that hold valid records (header included).
    len: u64,
    /// Size of the file on disk (counted against the cap).
    file_len: u64,
    /// Records in the valid part not yet read.
    unread: u64,
    /// Records read and not yet delivered.
    outstanding: u64,
    /// Where the next unread record starts.
    read_pos: u64,
    /// Every record before this is delivered (what its marker records).
    delivered_to: u64,
    /// Chunks read and not yet part of the delivered prefix, in file order.
    chunks: VecDeque<Pending>,
    /// Its marker file, once opened by this run.
    marker: Option<Marker>,
}

impl Segment {
    fn new(id: u64, len: u64, file_len: u64, unread: u64, start: u64) -> Self {
        Self {
            id,
            len,
            file_len,
            unread,
            outstanding: 0,
            read_pos: start,
            delivered_to: start,
            chunks: VecDeque::new(),
            marker: None,
        }
    }
}

/// A chunk handed out by [`DiskBuffer::read`], being delivered or done.
#[derive(Debug)]
struct Pending {
    end: u64,
    records: u64,
    done: bool,
}

/// What [`DiskBuffer::open`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Records left by an earlier run, not yet delivered (read again).
    pub records: u64,
    /// Records of those segments that the earlier run delivered (before
    /// their markers' offsets; not read again).
    pub delivered: u64,
    /// Segments whose tail did not check out (skipped).
    pub corrupt_tails: u64,
    /// Bytes skipped in those tails.
    pub corrupt_bytes: u64,
}

/// Names a chunk handed out by [`DiskBuffer::read`], for
/// [`DiskBuffer::delivered`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkId {
    /// The segment it came from.
    pub segment: u64,
    /// Where its last record ends in that segment.
    pub end: u64,
}

/// A batch read from the buffer: deliver it, then [`DiskBuffer::delivered`].
#[derive(Debug)]
pub struct Chunk {
    /// Which chunk it is.
    pub id: ChunkId,
    /// Its events (without acknowledgement: they were acknowledged when written).
    pub events: Vec<Event>,
    /// Records consumed (an undecodable one is consumed without an event).
    pub records: u64,
}

/// Size-capped, checksummed segments in one directory.
#[derive(Debug)]
pub struct DiskBuffer {
    dir: PathBuf,
    max_bytes: u64,
    segments: VecDeque<Segment>,
    writer: Option<File>,
    reader: Option<(u64, BufReader<File>)>,
    next_id: u64,
    sources: Vec<Arc<SourceInfo>>,
    buffer: Vec<u8>,
}

impl DiskBuffer {
    /// Opens (creating) the buffer in `dir`, scanning segments left by an
    /// earlier run record by record.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<(Self, Recovered)> {
        std::fs::create_dir_all(dir)?;
        let mut ids = Vec::new();
        let mut markers = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(id) = name.strip_suffix(".seg").and_then(|n| n.parse().ok()) {
                ids.push(id);
            } else if let Some(id) = name.strip_suffix(".done").and_then(|n| n.parse().ok()) {
                markers.push(id);
            }
        }
        ids.sort_unstable();
        // A marker whose segment is gone (deleted just before a crash) must
        // not be taken for a later segment of the same number.
        for id in markers {
            if ids.binary_search(&id).is_err() {
                let _ = std::fs::remove_file(marker_path(dir, id));
            }
        }
        let mut recovered = Recovered::default();
        let mut segments = VecDeque::new();
        for &id in &ids {
            let path = segment_path(dir, id);
            let file_len = std::fs::metadata(&path)?.len();
            let mark = marker::read(&marker_path(dir, id), id);
            let scanned = scan(&path, mark)?;
            let len = scanned.len;
            if len < file_len {
                recovered.corrupt_tails += 1;
                recovered.corrupt_bytes += file_len - len;
                tracing::warn!(file = %path.display(), skipped_bytes = file_len - len, "disk buffer segment has a corrupt tail; skipped");
            }
            let (start, delivered) = match (mark, scanned.before) {
                (Some(offset), Some(before)) => (offset, before),
                (Some(offset), None) => {
                    tracing::warn!(file = %path.display(), offset, "disk buffer delivery marker is not at a record; ignored, the segment is read from its start");
                    let _ = std::fs::remove_file(marker_path(dir, id));
                    (HEADER, 0)
                }
                (None, _) => (HEADER, 0),
            };
            let unread = scanned.records - delivered;
            recovered.records += unread;
            recovered.delivered += delivered;
            if unread == 0 {
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_file(marker_path(dir, id));
                continue;
            }
            segments.push_back(Segment::new(id, len, file_len, unread, start));
        }
        let next_id = ids.last().map_or(0, |id| id + 1);
        Ok((
            Self {
                dir: dir.to_owned(),
                max_bytes,
                segments,
                writer: None,
                reader: None,
                next_id,
                sources: Vec::new(),
                buffer: Vec::new(),
            },
            recovered,
        ))
    }

    fn path(&self, id: u64) -> PathBuf {
        segment_path(&self.dir, id)
    }

    /// Deletes segment `id` and then its marker (a marker left alone is
    /// cleared at the next start).
    fn remove(&self, id: u64) {
        let _ = std::fs::remove_file(self.path(id));
        let _ = std::fs::remove_file(marker_path(&self.dir, id));
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.file_len).sum()
    }

    /// Records not yet delivered (unread or being delivered).
    pub fn events(&self) -> u64 {
        self.segments.iter().map(|s| s.unread + s.outstanding).sum()
    }

    /// Whether records wait to be read.
    pub fn has_unread(&self) -> bool {
        self.segments.iter().any(|s| s.unread > 0)
    }

    /// Appends `events` and syncs them; `Ok(false)` (nothing written) when
    /// they do not fit under the cap.
    pub fn append(&mut self, events: &[Event]) -> io::Result<bool> {
        let mut data = std::mem::take(&mut self.buffer);
        data.clear();
        for event in events {
            encode(event, &mut data);
        }
        let result = self.append_encoded(&data, events.len() as u64);
        if data.capacity() <= 4 * SEGMENT_BYTES as usize {
            self.buffer = data;
        }
        result
    }

    fn append_encoded(&mut self, data: &[u8], records: u64) -> io::Result<bool> {
        let size = data.len() as u64;
        if self.bytes() + size + HEADER > self.max_bytes {
            return Ok(false);
        }
        let rolling = match self.segments.back() {
            Some(last) => self.writer.is_none() || last.file_len + size > SEGMENT_BYTES,
            None => true,
        };
        if rolling {
            let id = self.next_id;
            self.next_id += 1;
            // Never a stale marker for a new segment.
            let _ = std::fs::remove_file(marker_path(&self.dir, id));
            let mut file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(self.path(id))?;
            let mut header = MAGIC.to_vec();
            header.extend_from_slice(&VERSION.to_le_bytes());
            file.write_all(&header)?;
            self.writer = Some(file);
            self.segments
                .push_back(Segment::new(id, HEADER, HEADER, 0, HEADER));
            if let Ok(dir) = File::open(&self.dir) {
                let _ = dir.sync_all();
            }
        }
        let (Some(file), Some(segment)) = (self.writer.as_mut(), self.segments.back_mut()) else {
            return Err(io::Error::other("disk buffer has no open segment"));
        };
        let written = file.write_all(data).and_then(|()| file.sync_data());
        if let Err(error) = written {
            // The partial write (if any) is a torn tail; write a new segment next time.
            segment.file_len = file.metadata().map_or(segment.file_len, |m| m.len());
            self.writer = None;
            return Err(error);
        }
        segment.len += size;
        segment.file_len += size;
        segment.unread += records;
        Ok(true)
    }

    /// Reads unread records (until `max` of them decoded into events) from
    /// the oldest segment holding some: the next chunk in file order.
    pub fn read(&mut self, max: usize) -> io::Result<Option<Chunk>> {
        let max = max.max(1);
        loop {
            let Some(index) = self.segments.iter().position(|s| s.unread > 0) else {
                return Ok(None);
            };
            let id = self.segments[index].id;
            if self.reader.as_ref().map(|(r, _)| *r) != Some(id) {
                let mut file = File::open(self.path(id))?;
                file.seek(SeekFrom::Start(self.segments[index].read_pos))?;
                self.reader = Some((id, BufReader::with_capacity(256 * 1024, file)));
            }
            let Some((_, reader)) = self.reader.as_mut() else {
                return Ok(None);
            };
            let mut events = Vec::new();
            let mut records = 0;
            let segment = &mut self.segments[index];
            while events.len() < max && segment.unread > 0 {
                match read_record(reader, &mut segment.read_pos, segment.len) {
                    Ok(Some(payload)) => {
                        segment.unread -= 1;
                        segment.outstanding += 1;
                        records += 1;
                        if let Some(event) = decode(&payload, &mut self.sources) {
                            events.push(event);
                        }
                    }
                    Ok(None) => segment.unread = 0,
                    Err(error) => {
                        self.reader = None;
                        return Err(error);
                    }
                }
            }
            if records == 0 {
                // The segment ended early (changed under us): the next one.
                continue;
            }
            let end = segment.read_pos;
            segment.chunks.push_back(Pending {
                end,
                records,
                done: false,
            });
            return Ok(Some(Chunk {
                id: ChunkId { segment: id, end },
                events,
                records,
            }));
        }
    }

    /// Marks a chunk delivered (chunks may finish in any order). Advances
    /// its segment's delivered prefix over the chunks done from its front
    /// and records it in the segment's marker; removes segments that are
    /// done.
    pub fn delivered(&mut self, chunk: ChunkId) {
        let marker = marker_path(&self.dir, chunk.segment);
        if let Some(s) = self.segments.iter_mut().find(|s| s.id == chunk.segment) {
            if let Some(pending) = s.chunks.iter_mut().find(|p| p.end == chunk.end && !p.done) {
                pending.done = true;
                s.outstanding = s.outstanding.saturating_sub(pending.records);
            }
            let before = s.delivered_to;
            while let Some(front) = s.chunks.front() {
                if !front.done {
                    break;
                }
                s.delivered_to = front.end;
                s.chunks.pop_front();
            }
            if s.delivered_to != before {
                let written = match &s.marker {
                    Some(file) => file.write(s.id, s.delivered_to),
                    None => Marker::open(&marker).and_then(|file| {
                        let written = file.write(s.id, s.delivered_to);
                        s.marker = Some(file);
                        written
                    }),
                };
                if let Err(error) = written {
                    // Only costs duplicates after a crash.
                    tracing::warn!(file = %marker.display(), %error, "cannot write the disk buffer delivery marker");
                }
            }
        }
        let writing = self.writer.as_ref().and(self.segments.back().map(|s| s.id));
        while let Some(front) = self.segments.front() {
            if front.unread > 0 || front.outstanding > 0 || Some(front.id) == writing {
                break;
            }
            let id = front.id;
            self.segments.pop_front();
            if self.reader.as_ref().map(|(r, _)| *r) == Some(id) {
                self.reader = None;
            }
            self.remove(id);
        }
        // The segment being written is done too: start afresh.
        if let (Some(last), true) = (self.segments.back(), self.writer.is_some()) {
            if last.unread == 0 && last.outstanding == 0 && self.segments.len() == 1 {
                let id = last.id;
                self.segments.clear();
                self.writer = None;
                self.reader = None;
                self.remove(id);
            }
        }
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

fn marker_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.done"))
}

/// What [`scan`] found in a segment.
struct Scanned {
    /// The length of its valid part.
    len: u64,
    /// Its records.
    records: u64,
    /// The records before the offset asked about, if a record starts there
    /// (or the valid part ends there).
    before: Option<u64>,
}

/// Scans a segment record by record, noting whether `mark` (a delivery
/// marker's offset) is at a record boundary.
fn scan(path: &Path, mark: Option<u64>) -> io::Result<Scanned> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut header = [0u8; HEADER as usize];
    if reader.read_exact(&mut header).is_err()
        || &header[..4] != MAGIC
        || u32::from_le_bytes([header[4], header[5], header[6], header[7]]) != VERSION
    {
        return Ok(Scanned {
            len: 0,
            records: 0,
            before: None,
        });
    }
    let mut len = HEADER;
    let mut records = 0;
    let mut before = None;
    loop {
        if mark == Some(len) {
            before = Some(records);
        }
        if read_record(&mut reader, &mut len, file_len)?.is_none() {
            break;
        }
        records += 1;
    }
    Ok(Scanned {
        len,
        records,
        before,
    })
}

#[cfg(test)]
mod tests;
