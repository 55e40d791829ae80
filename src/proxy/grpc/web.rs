//! gRPC-Web (browsers' gRPC, over HTTP/1.1 as often as HTTP/2): the call's
//! status travels at the end of the response body, in a frame of its own
//! (flag bit `0x80`) holding the trailers as HTTP/1 header lines, unless a
//! trailers-only response puts `grpc-status` in the head. In the `-text`
//! variant the whole body is base64, possibly in several padded pieces.
//! See the protocol's spec, `PROTOCOL-WEB.md` in grpc/grpc.

use base64::Engine as _;

/// Most bytes of a trailer frame read for the status: trailers are a few
/// short lines; a longer frame is passed through unread.
const MAX_TRAILER_BYTES: usize = 8 * 1024;

/// The two encodings of gRPC-Web's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/grpc-web` (or `+proto`, `+json`): frames as bytes.
    Binary,
    /// `application/grpc-web-text` (or `+proto`): frames in base64.
    Text,
}

impl Encoding {
    /// The content type of the proxy's own trailers-only answer.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Binary => "application/grpc-web+proto",
            Encoding::Text => "application/grpc-web-text+proto",
        }
    }
}

/// The encoding of a gRPC-Web request, by its content type `value`.
pub fn encoding(value: &[u8]) -> Option<Encoding> {
    // The longer name first: `grpc-web` is a prefix of `grpc-web-text`.
    if super::is_type(value, "application/grpc-web-text") {
        Some(Encoding::Text)
    } else if super::is_type(value, "application/grpc-web") {
        Some(Encoding::Binary)
    } else {
        None
    }
}

/// Reads a gRPC-Web response body as it streams past, to find the status
/// in its trailer frame. It keeps at most a frame header, a partial base64
/// group and the trailer frame (up to [`MAX_TRAILER_BYTES`]); message
/// frames are skipped by length, never held.
#[derive(Debug)]
pub struct StatusReader {
    encoding: Encoding,
    /// Base64 characters of a group not yet complete (`Text` only).
    pending: Vec<u8>,
    state: State,
    /// Set once the body is not what gRPC-Web frames look like.
    gave_up: bool,
}

#[derive(Debug)]
enum State {
    /// Reading a frame's 5-byte header (flag, big-endian length).
    Header(Vec<u8>),
    /// Skipping this many bytes of a message frame.
    Message(usize),
    /// Reading the trailer frame: its length and what arrived of it.
    Trailers(usize, Vec<u8>),
    /// The status was read.
    Done,
}

impl StatusReader {
    /// A reader for a body in `encoding`.
    pub fn new(encoding: Encoding) -> Self {
        Self {
            encoding,
            pending: Vec::new(),
            state: State::Header(Vec::with_capacity(5)),
            gave_up: false,
        }
    }

    /// The body's encoding.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Reads the next piece of the body; returns the call's status once the
    /// trailer frame with a `grpc-status` line is complete.
    pub fn feed(&mut self, data: &[u8]) -> Option<u16> {
        if self.gave_up || matches!(self.state, State::Done) {
            return None;
        }
        match self.encoding {
            Encoding::Binary => self.frames(data),
            Encoding::Text => self.text(data),
        }
    }

    /// Decodes whole base64 groups of 4 characters (each may end in
    /// padding, as every piece of a multi-piece body does) and reads them.
    fn text(&mut self, data: &[u8]) -> Option<u16> {
        let mut found = None;
        for &c in data {
            self.pending.push(c);
            if self.pending.len() < 4 {
                continue;
            }
            let mut bytes = [0u8; 3];
            let decoded = base64::engine::general_purpose::STANDARD
                .decode_slice(&self.pending, &mut bytes)
                .ok();
            self.pending.clear();
            let Some(len) = decoded else {
                self.gave_up = true;
                return None;
            };
            found = found.or(self.frames(&bytes[..len]));
            if found.is_some() || self.gave_up {
                return found;
            }
        }
        found
    }

    /// Reads decoded frame bytes.
    fn frames(&mut self, mut data: &[u8]) -> Option<u16> {
        while !data.is_empty() {
            match &mut self.state {
                State::Header(header) => {
                    let take = (5 - header.len()).min(data.len());
                    header.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if header.len() == 5 {
                        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
                        let len = len as usize;
                        self.state = if header[0] & 0x80 == 0 {
                            State::Message(len)
                        } else if len <= MAX_TRAILER_BYTES {
                            State::Trailers(len, Vec::with_capacity(len))
                        } else {
                            self.gave_up = true;
                            return None;
                        };
                    }
                }
                State::Message(left) => {
                    let take = (*left).min(data.len());
                    *left -= take;
                    data = &data[take..];
                    if *left == 0 {
                        self.state = State::Header(Vec::with_capacity(5));
                    }
                }
                State::Trailers(len, read) => {
                    let take = (*len - read.len()).min(data.len());
                    read.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if read.len() == *len {
                        let status = trailer_status(read);
                        self.state = State::Done;
                        return status;
                    }
                }
                State::Done => return None,
            }
        }
        None
    }
}

/// The `grpc-status` among trailer lines (`name: value`, CRLF-separated).
fn trailer_status(block: &[u8]) -> Option<u16> {
    block.split(|&b| b == b'\n').find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        let (name, value) = line.split_at(colon);
        if !name.trim_ascii().eq_ignore_ascii_case(b"grpc-status") {
            return None;
        }
        std::str::from_utf8(&value[1..]).ok()?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame: flag, big-endian length, payload.
    fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![flag];
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// Three messages (one empty), then trailers with `grpc-status: code`.
    fn body(code: u16) -> Vec<u8> {
        let mut out = frame(0, b"first message");
        out.extend(frame(0, b""));
        out.extend(frame(0, &[0x80; 300]));
        let trailers = format!("grpc-message: it went\r\nGrpc-Status: {code}\r\n");
        out.extend(frame(0x80, trailers.as_bytes()));
        out
    }

    #[test]
    fn web_requests_are_recognised_by_encoding() {
        let with = |value: &str| encoding(value.as_bytes());
        assert_eq!(with("application/grpc-web"), Some(Encoding::Binary));
        assert_eq!(with("application/grpc-web+proto"), Some(Encoding::Binary));
        assert_eq!(with("Application/gRPC-Web-Text"), Some(Encoding::Text));
        assert_eq!(
            with("application/grpc-web-text+proto"),
            Some(Encoding::Text)
        );
        assert_eq!(with("application/grpc"), None);
        assert_eq!(with("application/grpc-webby"), None);
    }

    #[test]
    fn the_status_is_read_from_the_trailer_frame_however_the_body_is_cut() {
        let whole = body(5);
        for piece in [1, 2, 3, 7, 64, whole.len()] {
            let mut reader = StatusReader::new(Encoding::Binary);
            let found: Vec<u16> = whole.chunks(piece).filter_map(|c| reader.feed(c)).collect();
            assert_eq!(found, [5], "pieces of {piece} bytes");
        }
    }

    #[test]
    fn text_bodies_are_read_whole_or_in_padded_pieces() {
        let engine = base64::engine::general_purpose::STANDARD;
        let whole = body(14);
        let one_piece = engine.encode(&whole).into_bytes();
        // As servers that encode each frame on its own send it.
        let mut pieces = engine.encode(frame(0, b"abc")).into_bytes(); // 8 bytes: padded
        pieces.extend(
            engine
                .encode(frame(0x80, b"grpc-status:0\r\n"))
                .into_bytes(),
        );
        for (text, code) in [(one_piece, 14), (pieces, 0)] {
            for piece in [1, 3, 5, text.len()] {
                let mut reader = StatusReader::new(Encoding::Text);
                let found: Vec<u16> = text.chunks(piece).filter_map(|c| reader.feed(c)).collect();
                assert_eq!(found, [code], "pieces of {piece} characters");
            }
        }
    }

    #[test]
    fn bodies_that_are_not_frames_give_no_status() {
        let mut reader = StatusReader::new(Encoding::Binary);
        assert_eq!(
            reader.feed(b"\x80\xff\xff\xff\xffno trailers this long"),
            None
        );
        assert!(reader.gave_up);
        let mut reader = StatusReader::new(Encoding::Text);
        assert_eq!(reader.feed(b"not base64 at all!"), None);
        assert!(reader.gave_up);
        let mut reader = StatusReader::new(Encoding::Binary);
        assert_eq!(
            reader.feed(&frame(0x80, b"grpc-message: no status\r\n")),
            None
        );
    }
}
