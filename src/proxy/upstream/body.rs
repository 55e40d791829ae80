//! The app's response body, read straight off the pinned connection as the
//! client side asks for it (no channel, no buffering beyond one read) and
//! decoded by its framing; a body that ended cleanly hands the connection
//! back for the next request.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::uri::Authority;
use http::{HeaderMap, HeaderName, HeaderValue};
use hyper::body::{Body, Frame, SizeHint};

use super::connection::AppConnection;
use super::head::{Framing, MAX_RESPONSE_HEADERS, MAX_RESPONSE_HEAD_BYTES};
use super::Pinned;

/// Why a response body broke off.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The app closed the connection before the body's end.
    #[error("the app closed the connection mid-body")]
    Truncated,
    /// Reading from the app failed (typically a reset).
    #[error("reading the body from the app failed: {0}")]
    Io(#[from] std::io::Error),
    /// The chunked encoding is broken.
    #[error("invalid chunked body: {0}")]
    InvalidChunk(&'static str),
}

/// Where a chunked body is (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk: the trailer section.
    Trailers,
}

/// What is left of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many bytes.
    Length(u64),
    /// A chunked body, at this point.
    Chunked(Chunk),
    /// Everything until the app closes.
    UntilClose,
    /// Nothing: the body has ended.
    Done,
}

/// One step of decoding what is buffered.
enum Step {
    /// A frame for the client.
    Frame(Frame<Bytes>),
    /// The buffer holds no whole piece: read more.
    NeedMore,
    /// Decoding moved on (a size line, a CRLF); go on.
    Continue,
}

/// The response body of the app connection it reads from.
pub struct AppBody {
    connection: Option<AppConnection>,
    state: State,
    /// Whether the connection can take another request after this body.
    reusable: bool,
    /// Where the connection goes back to, and which upstream it reaches.
    home: (Arc<Pinned>, Authority),
    /// An error held back for one poll (see [`AppBody::fail`]).
    failed: Option<BodyError>,
}

impl std::fmt::Debug for AppBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppBody")
            .field("state", &self.state)
            .finish()
    }
}

impl AppBody {
    /// The body framed by `framing`, read from `connection`.
    pub fn new(
        connection: AppConnection,
        framing: Framing,
        reusable: bool,
        home: (Arc<Pinned>, Authority),
    ) -> Self {
        let state = match framing {
            Framing::Length(0) => State::Done,
            Framing::Length(length) => State::Length(length),
            Framing::Chunked => State::Chunked(Chunk::Size),
            Framing::UntilClose => State::UntilClose,
        };
        let mut body = Self {
            connection: Some(connection),
            state,
            reusable,
            home,
            failed: None,
        };
        body.hand_back_when_done();
        body
    }

    /// Once the body has ended cleanly, the connection goes back to its
    /// client connection's slot (else it is closed with this body).
    fn hand_back_when_done(&mut self) {
        if self.state == State::Done && self.reusable {
            if let Some(mut connection) = self.connection.take() {
                connection.idle();
                let (pinned, upstream) = &self.home;
                pinned.put(upstream.clone(), connection);
            }
        }
    }

    /// Ends the body with `error`, reported at the next poll: this one
    /// returns `Pending` (and wakes at once) so that the client side first
    /// flushes what it holds — a head and data that arrived just before the
    /// app broke off reach the client before the cut.
    fn fail(
        &mut self,
        error: BodyError,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.connection = None;
        self.failed = Some(error);
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Decodes the next piece of the body from `buf`.
    fn step(state: &mut State, buf: &mut BytesMut) -> Result<Step, BodyError> {
        match *state {
            State::Done => Ok(Step::Continue),
            State::Length(left) => Ok(data_step(state, buf, left, |rest| match rest {
                0 => State::Done,
                rest => State::Length(rest),
            })),
            State::UntilClose => Ok(match buf.is_empty() {
                true => Step::NeedMore,
                false => Step::Frame(Frame::data(buf.split().freeze())),
            }),
            State::Chunked(chunk) => step_chunked(state, chunk, buf),
        }
    }
}

/// A data frame of up to `left` buffered bytes (nothing buffered: read
/// more); `next` gives the state from the bytes left after it.
fn data_step(
    state: &mut State,
    buf: &mut BytesMut,
    left: u64,
    next: impl FnOnce(u64) -> State,
) -> Step {
    if buf.is_empty() {
        return Step::NeedMore;
    }
    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
    *state = next(left - n as u64);
    Step::Frame(Frame::data(buf.split_to(n).freeze()))
}

fn step_chunked(state: &mut State, chunk: Chunk, buf: &mut BytesMut) -> Result<Step, BodyError> {
    match chunk {
        Chunk::Size => match httparse::parse_chunk_size(buf) {
            Ok(httparse::Status::Complete((used, size))) => {
                buf.advance(used);
                *state = State::Chunked(if size == 0 {
                    Chunk::Trailers
                } else {
                    Chunk::Data(size)
                });
                Ok(Step::Continue)
            }
            Ok(httparse::Status::Partial) if buf.len() > 4096 => {
                Err(BodyError::InvalidChunk("chunk-size line too long"))
            }
            Ok(httparse::Status::Partial) => Ok(Step::NeedMore),
            Err(_) => Err(BodyError::InvalidChunk("invalid chunk size")),
        },
        Chunk::Data(left) => Ok(data_step(state, buf, left, |rest| match rest {
            0 => State::Chunked(Chunk::DataEnd),
            rest => State::Chunked(Chunk::Data(rest)),
        })),
        Chunk::DataEnd if buf.len() < 2 => Ok(Step::NeedMore),
        Chunk::DataEnd if &buf[..2] == b"\r\n" => {
            buf.advance(2);
            *state = State::Chunked(Chunk::Size);
            Ok(Step::Continue)
        }
        Chunk::DataEnd => Err(BodyError::InvalidChunk("chunk data not followed by CRLF")),
        Chunk::Trailers => {
            let mut fields = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
            match httparse::parse_headers(buf, &mut fields) {
                Ok(httparse::Status::Complete((used, fields))) => {
                    let trailers = trailer_map(fields);
                    buf.advance(used);
                    *state = State::Done;
                    Ok(match trailers {
                        Some(trailers) => Step::Frame(Frame::trailers(trailers)),
                        None => Step::Continue,
                    })
                }
                Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEAD_BYTES => {
                    Err(BodyError::InvalidChunk("trailer section too large"))
                }
                Ok(httparse::Status::Partial) => Ok(Step::NeedMore),
                Err(_) => Err(BodyError::InvalidChunk("invalid trailer section")),
            }
        }
    }
}

/// The trailer fields, `None` when there are none (or none valid).
fn trailer_map(fields: &[httparse::Header<'_>]) -> Option<HeaderMap> {
    let map: HeaderMap = fields
        .iter()
        .filter_map(|f| {
            let name = HeaderName::from_bytes(f.name.as_bytes()).ok()?;
            Some((name, HeaderValue::from_bytes(f.value).ok()?))
        })
        .collect();
    (!map.is_empty()).then_some(map)
}

impl Body for AppBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if let Some(error) = this.failed.take() {
            return Poll::Ready(Some(Err(error)));
        }
        loop {
            if this.state == State::Done {
                this.hand_back_when_done();
                return Poll::Ready(None);
            }
            let Some(connection) = this.connection.as_mut() else {
                return Poll::Ready(None);
            };
            match Self::step(&mut this.state, connection.buffer()) {
                Ok(Step::Frame(frame)) => {
                    this.hand_back_when_done();
                    return Poll::Ready(Some(Ok(frame)));
                }
                Ok(Step::Continue) => continue,
                Ok(Step::NeedMore) => {}
                Err(error) => return this.fail(error, cx),
            }
            match ready!(connection.poll_read(cx)) {
                Ok(0) if this.state == State::UntilClose => {
                    this.state = State::Done;
                    this.connection = None;
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(BodyError::Truncated, cx),
                Ok(_) => {}
                Err(error) => return this.fail(BodyError::Io(error), cx),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Done => SizeHint::with_exact(0),
            State::Length(left) => SizeHint::with_exact(left),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes all of `input` from `state`: the data, the trailers, where
    /// decoding stopped.
    fn decode(mut state: State, input: &[u8]) -> (Vec<u8>, Option<HeaderMap>, State) {
        let mut buf = BytesMut::from(input);
        let (mut data, mut trailers) = (Vec::new(), None);
        while state != State::Done {
            match AppBody::step(&mut state, &mut buf).unwrap() {
                Step::Frame(frame) => match frame.into_data() {
                    Ok(bytes) => data.extend_from_slice(&bytes),
                    Err(frame) => trailers = frame.into_trailers().ok(),
                },
                Step::Continue => {}
                Step::NeedMore => break,
            }
        }
        (data, trailers, state)
    }

    #[test]
    fn chunked_bodies_decode_with_extensions_and_trailers() {
        let body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: abc\r\n\r\n";
        let (data, trailers, state) = decode(State::Chunked(Chunk::Size), body);
        assert_eq!(data, b"hello world");
        assert_eq!(trailers.unwrap()["x-checksum"], "abc");
        assert_eq!(state, State::Done);
        let (data, trailers, state) = decode(State::Chunked(Chunk::Size), b"2\r\nok\r\n0\r\n\r\n");
        assert_eq!(
            (data.as_slice(), trailers, state),
            (&b"ok"[..], None, State::Done)
        );
    }

    #[test]
    fn a_chunked_body_split_anywhere_decodes_the_same() {
        let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        for cut in 0..body.len() {
            let mut state = State::Chunked(Chunk::Size);
            let mut buf = BytesMut::from(&body[..cut]);
            let mut data = Vec::new();
            let mut rest = &body[cut..];
            while state != State::Done {
                match AppBody::step(&mut state, &mut buf).unwrap() {
                    Step::Frame(frame) => data.extend_from_slice(&frame.into_data().unwrap()),
                    Step::Continue => {}
                    Step::NeedMore => {
                        assert!(!rest.is_empty(), "stuck at cut {cut}");
                        buf.extend_from_slice(&rest[..1]);
                        rest = &rest[1..];
                    }
                }
            }
            assert_eq!(data, b"hello world", "cut {cut}");
        }
    }

    #[test]
    fn a_length_body_stops_at_its_length() {
        let mut buf = BytesMut::from(&b"abcdefXYZ"[..]);
        let mut state = State::Length(6);
        let Ok(Step::Frame(frame)) = AppBody::step(&mut state, &mut buf) else {
            panic!("no frame")
        };
        assert_eq!(frame.into_data().unwrap(), "abcdef");
        assert_eq!(state, State::Done);
        assert_eq!(&buf[..], b"XYZ", "the rest is not this body's");
    }

    #[test]
    fn broken_chunked_bodies_are_errors() {
        for bad in [
            &b"zz\r\n"[..],
            b"5\r\nhelloXX",
            b"5\r\nhello\r\n0\r\nbad header\r\n\r\n",
        ] {
            let mut state = State::Chunked(Chunk::Size);
            let mut buf = BytesMut::from(bad);
            let result = loop {
                match AppBody::step(&mut state, &mut buf) {
                    Ok(Step::NeedMore) => break Ok(()),
                    Ok(_) => continue,
                    Err(error) => break Err(error),
                }
            };
            assert!(result.is_err(), "{bad:?}");
        }
    }
}
