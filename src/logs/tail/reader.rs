//! Splitting a byte stream into lines with bounded memory: a line longer than
//! the limit keeps its first `max_line_bytes` and the rest is skipped up to
//! the next newline, never buffered. CRLF endings are stripped. Offsets are
//! tracked so a caller knows the byte range every line came from.

use memchr::memchr_iter;

/// One complete line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The line without its ending (cut at the limit when `truncated`).
    pub bytes: Vec<u8>,
    /// The line was longer than the limit.
    pub truncated: bool,
    /// The line's length as read, without its ending.
    pub len: usize,
}

/// Splits a stream into lines; feed it what is read, in order.
#[derive(Debug)]
pub struct LineSplitter {
    partial: Vec<u8>,
    partial_len: usize,
    max: usize,
    /// Offset of the first byte of the pending partial line.
    line_start: u64,
    /// Offset just past the last byte fed.
    position: u64,
}

impl LineSplitter {
    /// A splitter for a stream positioned at `position`, with lines limited
    /// to `max_line_bytes`.
    pub fn new(max_line_bytes: usize, position: u64) -> Self {
        Self {
            partial: Vec::new(),
            partial_len: 0,
            max: max_line_bytes,
            line_start: position,
            position,
        }
    }

    /// Offset where the pending partial line starts: everything before it
    /// was returned as complete lines.
    pub fn line_start(&self) -> u64 {
        self.line_start
    }

    /// Offset just past the last byte fed.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Whether part of a line is pending.
    pub fn has_partial(&self) -> bool {
        self.partial_len > 0
    }

    /// Feeds the next bytes of the stream, appending complete lines to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<Line>) {
        let mut from = 0;
        for newline in memchr_iter(b'\n', data) {
            let segment = &data[from..newline];
            let line = if self.partial_len == 0 && segment.len() <= self.max {
                Line {
                    bytes: strip_cr(segment).to_vec(),
                    truncated: false,
                    len: strip_cr(segment).len(),
                }
            } else {
                self.append(segment);
                self.take_line()
            };
            out.push(line);
            from = newline + 1;
        }
        self.append(&data[from..]);
        self.position += data.len() as u64;
        self.line_start = self.position - self.partial_len as u64;
    }

    /// Ends the stream: the pending partial line, if any, as a line.
    pub fn finish(&mut self) -> Option<Line> {
        if self.partial_len == 0 {
            return None;
        }
        let line = self.take_line();
        self.line_start = self.position;
        Some(line)
    }

    /// Forgets everything and restarts at `position` (after a truncation).
    pub fn reset(&mut self, position: u64) {
        self.partial = Vec::new();
        self.partial_len = 0;
        self.line_start = position;
        self.position = position;
    }

    fn append(&mut self, segment: &[u8]) {
        let room = self.max.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&segment[..segment.len().min(room)]);
        self.partial_len += segment.len();
    }

    fn take_line(&mut self) -> Line {
        let truncated = self.partial_len > self.max;
        let mut len = self.partial_len;
        let mut bytes = std::mem::take(&mut self.partial);
        if !truncated && bytes.last() == Some(&b'\r') {
            bytes.pop();
            len -= 1;
        }
        self.partial_len = 0;
        Line {
            bytes,
            truncated,
            len,
        }
    }
}

fn strip_cr(segment: &[u8]) -> &[u8] {
    segment.strip_suffix(b"\r").unwrap_or(segment)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(splitter: &mut LineSplitter, data: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        splitter.feed(data, &mut out);
        out.into_iter().map(|l| l.bytes).collect()
    }

    #[test]
    fn splits_across_feeds_and_tracks_offsets() {
        let mut s = LineSplitter::new(100, 10);
        assert_eq!(lines(&mut s, b"ab\ncd"), vec![b"ab".to_vec()]);
        assert_eq!((s.line_start(), s.position()), (13, 15));
        assert_eq!(
            lines(&mut s, b"e\r\n\nf\n"),
            vec![b"cde".to_vec(), vec![], b"f".to_vec()]
        );
        assert_eq!((s.line_start(), s.position()), (21, 21));
        assert!(!s.has_partial());
    }

    #[test]
    fn long_lines_are_truncated_without_buffering_the_rest() {
        let mut s = LineSplitter::new(4, 0);
        let mut out = Vec::new();
        s.feed(b"abcdefgh", &mut out);
        assert!(out.is_empty());
        assert!(s.partial.capacity() < 64);
        s.feed(&[b'x'; 10_000], &mut out);
        s.feed(b"z\nok\n", &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].bytes, b"abcd");
        assert!(out[0].truncated);
        assert_eq!(out[0].len, 10_009);
        assert_eq!(out[1].bytes, b"ok");
        assert!(!out[1].truncated);
        assert_eq!(s.line_start(), 10_013);
        let long_in_one = lines(&mut s, b"123456789\n");
        assert_eq!(long_in_one, vec![b"1234".to_vec()]);
    }

    #[test]
    fn finish_returns_the_partial_line() {
        let mut s = LineSplitter::new(100, 0);
        assert!(lines(&mut s, b"tail").is_empty());
        assert_eq!(s.finish().unwrap().bytes, b"tail");
        assert_eq!(s.line_start(), 4);
        assert_eq!(s.finish(), None);
    }
}
