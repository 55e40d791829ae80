//! The record framing and payload codec of a disk buffer segment (format in
//! the module above).

use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{HEADER, MAGIC, MAX_RECORD, VERSION};
use crate::logs::fields::Parsed;
use crate::logs::metrics::SourceMetrics;
use crate::logs::{Event, EventMeta, Fields, Flags, SourceInfo};

/// Reads the record at `*position` (where `reader` stands), advancing
/// both; `None` at the end or at a record that does not check out (length
/// beyond `limit`, torn, bad checksum).
pub(super) fn read_record(
    reader: &mut impl Read,
    position: &mut u64,
    limit: u64,
) -> io::Result<Option<Vec<u8>>> {
    let start = *position;
    let mut head = [0u8; 8];
    if start + 8 > limit || reader.read_exact(&mut head).is_err() {
        return Ok(None);
    }
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len > MAX_RECORD || start + 8 + u64::from(len) > limit {
        return Ok(None);
    }
    let mut payload = vec![0u8; len as usize];
    if reader.read_exact(&mut payload).is_err() || crc32fast::hash(&payload) != crc {
        return Ok(None);
    }
    *position = start + 8 + u64::from(len);
    Ok(Some(payload))
}

/// Decodes a whole segment held in memory, as [`DiskBuffer`] reads one from
/// disk: the header, then records up to the first that does not check out.
/// Returns the events of the records that decode and the length of the valid
/// part (0 when the header is not ours). For fuzzing and tests.
pub fn read_segment(bytes: &[u8]) -> (Vec<Event>, u64) {
    let limit = bytes.len() as u64;
    let mut reader = bytes;
    let mut header = [0u8; HEADER as usize];
    if reader.read_exact(&mut header).is_err()
        || &header[..4] != MAGIC
        || u32::from_le_bytes([header[4], header[5], header[6], header[7]]) != VERSION
    {
        return (Vec::new(), 0);
    }
    let mut position = HEADER;
    let mut sources = Vec::new();
    let mut events = Vec::new();
    while let Ok(Some(payload)) = read_record(&mut reader, &mut position, limit) {
        events.extend(decode(&payload, &mut sources));
    }
    (events, position)
}

/// Appends `event` as one record.
pub(super) fn encode(event: &Event, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; 8]);
    let name = event.meta.source.name.as_bytes();
    let name = &name[..name.len().min(255)];
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    let read_at = event
        .meta
        .read_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(u128::from(u64::MAX)) as u64);
    out.extend_from_slice(&read_at.to_le_bytes());
    out.extend_from_slice(&(event.meta.raw_len.min(u32::MAX as usize) as u32).to_le_bytes());
    event.fields.write_json(out);
    let payload = &out[start + 8..];
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32fast::hash(payload).to_le_bytes();
    out[start..start + 4].copy_from_slice(&len);
    out[start + 4..start + 8].copy_from_slice(&crc);
}

/// The event of one record (sources are shared by name).
pub(super) fn decode(payload: &[u8], sources: &mut Vec<Arc<SourceInfo>>) -> Option<Event> {
    let name_len = usize::from(*payload.first()?);
    let name = std::str::from_utf8(payload.get(1..1 + name_len)?).ok()?;
    let rest = payload.get(1 + name_len..)?;
    let read_at = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
    let raw_len = u32::from_le_bytes(rest.get(8..12)?.try_into().ok()?) as usize;
    let fields = match Fields::parse(std::str::from_utf8(rest.get(12..)?).ok()?).ok()? {
        Parsed::Object(fields) => fields,
        Parsed::Other(_) => return None,
    };
    let source = match sources.iter().find(|s| s.name == name) {
        Some(source) => Arc::clone(source),
        None => {
            let source = Arc::new(SourceInfo {
                name: name.to_owned(),
                metrics: SourceMetrics::detached(),
            });
            sources.push(Arc::clone(&source));
            source
        }
    };
    let meta = EventMeta {
        source,
        path: None,
        read_at: SystemTime::UNIX_EPOCH + Duration::from_nanos(read_at),
        raw_len,
        flags: Flags::default(),
    };
    Some(Event::from_fields(fields, meta, None))
}
