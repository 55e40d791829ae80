use serde_json::json;

use super::*;
use crate::logs::stage::tests::object;

fn events(range: std::ops::Range<u64>) -> Vec<Event> {
    range
        .map(|i| object(json!({"i": i, "pad": "x".repeat(100)})))
        .collect()
}

fn ids(chunk: &Chunk) -> Vec<u64> {
    chunk
        .events
        .iter()
        .map(|e| e.fields.get("i").and_then(|v| v.as_u64()).unwrap())
        .collect()
}

#[test]
fn appends_reads_in_order_and_removes_delivered_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (mut buffer, recovered) = DiskBuffer::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(recovered, Recovered::default());
    assert!(buffer.append(&events(0..10)).unwrap());
    assert!(buffer.append(&events(10..20)).unwrap());
    assert_eq!(buffer.events(), 20);
    let first = buffer.read(15).unwrap().unwrap();
    assert_eq!(ids(&first), (0..15).collect::<Vec<_>>());
    assert_eq!(first.events[0].meta.source.name, "test");
    let second = buffer.read(15).unwrap().unwrap();
    assert_eq!(ids(&second), (15..20).collect::<Vec<_>>());
    assert!(buffer.read(15).unwrap().is_none());
    buffer.delivered(first.segment, 15);
    assert_eq!(buffer.events(), 5);
    buffer.delivered(second.segment, 5);
    assert_eq!(buffer.events(), 0);
    assert_eq!(buffer.bytes(), 0);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "segment removed"
    );
}

#[test]
fn the_cap_refuses_what_does_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let (mut buffer, _) = DiskBuffer::open(dir.path(), 4096).unwrap();
    let mut written = 0;
    while buffer.append(&events(written..written + 5)).unwrap() {
        written += 5;
    }
    assert!(
        written > 0 && buffer.bytes() <= 4096,
        "{written} {}",
        buffer.bytes()
    );
}

#[test]
fn a_restart_reads_what_was_left_and_skips_a_corrupt_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut buffer, _) = DiskBuffer::open(dir.path(), 1 << 20).unwrap();
        assert!(buffer.append(&events(0..50)).unwrap());
    }
    let (mut buffer, recovered) = DiskBuffer::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(recovered.records, 50);
    assert_eq!(recovered.corrupt_tails, 0);
    let chunk = buffer.read(100).unwrap().unwrap();
    assert_eq!(ids(&chunk), (0..50).collect::<Vec<_>>());
    drop(buffer);

    // Flip a byte in the last record, and add a torn record after it.
    let path = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0xff;
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2]);
    std::fs::write(&path, &bytes).unwrap();
    let (mut buffer, recovered) = DiskBuffer::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(recovered.records, 49);
    assert_eq!(recovered.corrupt_tails, 1);
    assert!(recovered.corrupt_bytes > 6);
    let chunk = buffer.read(100).unwrap().unwrap();
    assert_eq!(ids(&chunk), (0..49).collect::<Vec<_>>());
    assert!(
        buffer.append(&events(100..101)).unwrap(),
        "writes a new segment"
    );
    let next = buffer.read(100).unwrap().unwrap();
    assert_eq!(ids(&next), [100]);
    buffer.delivered(chunk.segment, 49);
    buffer.delivered(next.segment, 1);
    assert_eq!(buffer.events(), 0);
}

#[test]
fn a_foreign_file_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("00000000000000000007.seg"),
        b"SWDB\x09\0\0\0junk",
    )
    .unwrap();
    let (mut buffer, recovered) = DiskBuffer::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(recovered.records, 0);
    assert_eq!(recovered.corrupt_tails, 1);
    assert!(buffer.read(10).unwrap().is_none());
    assert!(buffer.append(&events(0..1)).unwrap());
    assert_eq!(ids(&buffer.read(10).unwrap().unwrap()), [0]);
}

#[test]
fn read_segment_reads_what_the_buffer_wrote_up_to_a_bad_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut buffer, _) = DiskBuffer::open(dir.path(), 1 << 20).unwrap();
        assert!(buffer.append(&events(0..5)).unwrap());
    }
    let path = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&path).unwrap();
    let (read, valid) = read_segment(&bytes);
    assert_eq!(valid, bytes.len() as u64);
    let ids: Vec<u64> = read
        .iter()
        .map(|e| e.fields.get("i").and_then(|v| v.as_u64()).unwrap())
        .collect();
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    let whole = bytes.len() as u64;
    bytes.extend_from_slice(&[255, 255, 255, 255, 0, 0]);
    assert_eq!(read_segment(&bytes).1, whole, "a torn tail is not read");
    assert_eq!(read_segment(b"SWDB\x09\0\0\0").1, 0, "another version");
    assert_eq!(read_segment(b"").1, 0);
}
