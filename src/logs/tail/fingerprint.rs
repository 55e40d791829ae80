//! File identity beyond device+inode: a checksum of the file's first line
//! (at most [`FINGERPRINT_BYTES`]), so a reused inode, a file truncated and
//! rewritten, and a copy of a file (copytruncate) are told apart or matched.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};

/// The checksum covers the first line, or this many bytes when it is longer.
pub const FINGERPRINT_BYTES: usize = 256;

/// A checksum of a file's first line; absent until the first line is
/// complete (or [`FINGERPRINT_BYTES`] are there), so it never changes as the
/// file grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint {
    /// CRC-32 of the covered bytes.
    pub crc: u32,
    /// How many bytes are covered.
    pub len: u16,
}

impl Fingerprint {
    /// Reads the fingerprint of an open file (positioned reads; the file's
    /// cursor is not moved).
    pub fn read(file: &File) -> io::Result<Option<Fingerprint>> {
        let mut buf = [0u8; FINGERPRINT_BYTES];
        let mut filled = 0;
        while filled < buf.len() {
            match file.read_at(&mut buf[filled..], filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Self::of(&buf[..filled]))
    }

    /// The fingerprint of a file that starts with `head`, if `head` holds a
    /// complete first line or [`FINGERPRINT_BYTES`] bytes.
    pub fn of(head: &[u8]) -> Option<Fingerprint> {
        let covered = match memchr::memchr(b'\n', head) {
            Some(i) => &head[..=i],
            None if head.len() >= FINGERPRINT_BYTES => &head[..FINGERPRINT_BYTES],
            None => return None,
        };
        Some(Fingerprint {
            crc: crc32fast::hash(covered),
            len: covered.len() as u16,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_the_first_line_only() {
        let a = Fingerprint::of(b"first\nsecond\n").unwrap();
        let b = Fingerprint::of(b"first\nother and longer\n").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len, 6);
        assert_ne!(a, Fingerprint::of(b"First\n").unwrap());
    }

    #[test]
    fn absent_until_the_first_line_is_complete() {
        assert_eq!(Fingerprint::of(b""), None);
        assert_eq!(Fingerprint::of(b"partial"), None);
        let long = vec![b'x'; 300];
        assert_eq!(Fingerprint::of(&long).unwrap().len, 256);
    }

    #[test]
    fn reads_from_a_file_without_moving_its_cursor() {
        use std::io::{Seek, Write};
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"hello\nworld\n").unwrap();
        let at = file.stream_position().unwrap();
        let fp = Fingerprint::read(&file).unwrap().unwrap();
        assert_eq!(fp, Fingerprint::of(b"hello\n").unwrap());
        assert_eq!(file.stream_position().unwrap(), at);
    }
}
