//! A segment's delivery marker (`<sequence>.done`): how far the segment is
//! delivered, so a restart resumes after it instead of sending the whole
//! segment again.
//!
//! 16 bytes: the magic `SWDA`, the offset (u64 LE) up to which every record
//! is delivered, and a CRC-32 (u32 LE) of the segment's sequence number
//! (u64 LE) followed by those first 12 bytes — a torn or foreign marker does
//! not check out and is ignored (the segment is then read from its start:
//! duplicates, never a loss). It is overwritten in place (one 16-byte
//! `pwrite`) whenever the delivered prefix advances, without an fsync: a
//! process crash keeps it (the page cache survives a SIGKILL); after a power
//! loss it may be older than what was delivered, so a restart may resend up
//! to what the last write-back of the file held.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

const MAGIC: &[u8; 4] = b"SWDA";
const LEN: usize = 16;

/// The marker bytes for `offset` in segment `id`.
fn encode(id: u64, offset: u64) -> [u8; LEN] {
    let mut bytes = [0u8; LEN];
    bytes[..4].copy_from_slice(MAGIC);
    bytes[4..12].copy_from_slice(&offset.to_le_bytes());
    let crc = checksum(id, &bytes[..12]);
    bytes[12..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

fn checksum(id: u64, head: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&id.to_le_bytes());
    hasher.update(head);
    hasher.finalize()
}

/// The offset a marker file records for segment `id`; `None` when there is
/// none or it does not check out.
pub(super) fn read(path: &Path, id: u64) -> Option<u64> {
    let mut file = File::open(path).ok()?;
    let mut bytes = Vec::with_capacity(LEN + 1);
    file.by_ref()
        .take(LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    if bytes.len() != LEN || &bytes[..4] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(bytes[12..].try_into().ok()?);
    if checksum(id, &bytes[..12]) != crc {
        return None;
    }
    Some(u64::from_le_bytes(bytes[4..12].try_into().ok()?))
}

/// The open marker file of one segment.
#[derive(Debug)]
pub(super) struct Marker(File);

impl Marker {
    /// Opens (creating) the marker file at `path`.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        // Only a file left by someone else is longer; keep just where ours goes.
        if file.metadata()?.len() > LEN as u64 {
            file.set_len(LEN as u64)?;
        }
        Ok(Self(file))
    }

    /// Records `offset` for segment `id` (in place, no fsync).
    pub fn write(&self, id: u64, offset: u64) -> io::Result<()> {
        self.0.write_all_at(&encode(id, offset), 0)
    }
}
