//! The RESP2 wire format: encoding commands and parsing replies, with limits
//! so a broken or hostile server cannot make sidewatch allocate without bound.

/// The largest reply accepted (a `CLIENT LIST` of tens of thousands of clients fits).
pub const MAX_REPLY_BYTES: usize = 64 << 20;
/// The deepest nesting of arrays accepted (sidewatch's commands need 1).
const MAX_DEPTH: usize = 4;

/// One reply value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`: an error reply (the command failed; the connection is fine).
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$3\r\nabc`, or `$-1` (nil).
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n...`, or `*-1` (nil).
    Array(Option<Vec<Value>>),
}

impl Value {
    /// The text of a simple or bulk string reply.
    pub fn text(&self) -> Option<String> {
        match self {
            Value::Simple(s) => Some(s.clone()),
            Value::Bulk(Some(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        }
    }
}

/// A reply that does not follow RESP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProtocolError(pub String);

/// Encodes a command as an array of bulk strings.
pub fn encode(args: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses one reply from the start of `buf`: `Ok(None)` when more bytes are
/// needed, else the value and how many bytes it used.
pub fn parse(buf: &[u8]) -> Result<Option<(Value, usize)>, ProtocolError> {
    let mut pos = 0;
    match parse_at(buf, &mut pos, 0)? {
        Some(value) => Ok(Some((value, pos))),
        None => Ok(None),
    }
}

fn parse_at(buf: &[u8], pos: &mut usize, depth: usize) -> Result<Option<Value>, ProtocolError> {
    let Some(line) = read_line(buf, *pos)? else {
        return Ok(None);
    };
    let start = *pos;
    *pos += line.len() + 2;
    let Some((&kind, rest)) = line.split_first() else {
        return Err(ProtocolError("empty reply line".into()));
    };
    let text = || String::from_utf8_lossy(rest).into_owned();
    match kind {
        b'+' => Ok(Some(Value::Simple(text()))),
        b'-' => Ok(Some(Value::Error(text()))),
        b':' => Ok(Some(Value::Integer(number(rest)?))),
        b'$' => {
            let len = number(rest)?;
            if len < 0 {
                return Ok(Some(Value::Bulk(None)));
            }
            let len = usize::try_from(len)
                .ok()
                .filter(|len| *len <= MAX_REPLY_BYTES)
                .ok_or_else(|| ProtocolError(format!("bulk string of {len} bytes is too large")))?;
            if buf.len() < *pos + len + 2 {
                *pos = start;
                return Ok(None);
            }
            if &buf[*pos + len..*pos + len + 2] != b"\r\n" {
                return Err(ProtocolError("bulk string not terminated by CRLF".into()));
            }
            let bytes = buf[*pos..*pos + len].to_vec();
            *pos += len + 2;
            Ok(Some(Value::Bulk(Some(bytes))))
        }
        b'*' => {
            let len = number(rest)?;
            if len < 0 {
                return Ok(Some(Value::Array(None)));
            }
            if depth >= MAX_DEPTH {
                return Err(ProtocolError("arrays nested too deeply".into()));
            }
            // Every element takes at least 3 bytes (`+\r\n`): a length the
            // limit cannot hold is a lie, not a reason to allocate.
            let len = usize::try_from(len)
                .ok()
                .filter(|len| *len <= MAX_REPLY_BYTES / 3)
                .ok_or_else(|| ProtocolError(format!("array of {len} elements is too large")))?;
            let mut items = Vec::with_capacity(len.min(1024));
            for _ in 0..len {
                match parse_at(buf, pos, depth + 1)? {
                    Some(item) => items.push(item),
                    None => {
                        *pos = start;
                        return Ok(None);
                    }
                }
            }
            Ok(Some(Value::Array(Some(items))))
        }
        other => Err(ProtocolError(format!(
            "unexpected reply type byte 0x{other:02x}"
        ))),
    }
}

/// The line starting at `pos`, without its CRLF; `None` if it is incomplete.
fn read_line(buf: &[u8], pos: usize) -> Result<Option<&[u8]>, ProtocolError> {
    let rest = buf.get(pos..).unwrap_or_default();
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(end) => Ok(Some(&rest[..end])),
        None if rest.len() > 64 * 1024 => Err(ProtocolError("reply line too long".into())),
        None => Ok(None),
    }
}

fn number(bytes: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            ProtocolError(format!(
                "not a number: {:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(32)])
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(bytes: &[u8]) -> Value {
        let (value, used) = parse(bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        value
    }

    #[test]
    fn encodes_commands_as_bulk_arrays() {
        let mut out = Vec::new();
        encode(&[b"CONFIG", b"GET", b"maxclients"], &mut out);
        assert_eq!(
            out,
            b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$10\r\nmaxclients\r\n"
        );
    }

    #[test]
    fn parses_every_reply_type() {
        assert_eq!(full(b"+PONG\r\n"), Value::Simple("PONG".into()));
        assert_eq!(
            full(b"-WRONGPASS invalid\r\n"),
            Value::Error("WRONGPASS invalid".into())
        );
        assert_eq!(full(b":-12\r\n"), Value::Integer(-12));
        assert_eq!(full(b"$-1\r\n"), Value::Bulk(None));
        assert_eq!(
            full(b"$4\r\na\r\nb\r\n"),
            Value::Bulk(Some(b"a\r\nb".to_vec()))
        );
        assert_eq!(
            full(b"*2\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n"),
            Value::Array(Some(vec![
                Value::Bulk(Some(b"maxclients".to_vec())),
                Value::Bulk(Some(b"10000".to_vec()))
            ]))
        );
        assert_eq!(full(b"*0\r\n"), Value::Array(Some(vec![])));
    }

    #[test]
    fn incomplete_input_asks_for_more() {
        let whole = b"*2\r\n$3\r\nabc\r\n:1\r\n";
        for cut in 0..whole.len() {
            assert_eq!(parse(&whole[..cut]).unwrap(), None, "cut at {cut}");
        }
        let mut two = whole.to_vec();
        two.extend_from_slice(b"+OK\r\n");
        let (_, used) = parse(&two).unwrap().unwrap();
        assert_eq!(used, whole.len());
    }

    #[test]
    fn rejects_garbage_and_huge_lengths() {
        for bad in [
            &b"?what\r\n"[..],
            b"$abc\r\n",
            b"$99999999999\r\n",
            b"*99999999999\r\n",
            b"$3\r\nabcXY",
            b"\r\n",
            b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
