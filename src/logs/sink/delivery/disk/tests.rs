use std::path::{Path, PathBuf};

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
    buffer.delivered(first.id);
    assert_eq!(buffer.events(), 5);
    buffer.delivered(second.id);
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
    buffer.delivered(chunk.id);
    buffer.delivered(next.id);
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

/// Events of about 64 KiB each, so a few hundred span segments.
fn large(range: std::ops::Range<u64>) -> Vec<Event> {
    range
        .map(|i| object(json!({"i": i, "pad": "x".repeat(64 * 1024)})))
        .collect()
}

fn read_all(buffer: &mut DiskBuffer) -> Vec<u64> {
    let mut all = Vec::new();
    while let Some(chunk) = buffer.read(7).unwrap() {
        all.extend(ids(&chunk));
    }
    all
}

fn files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

#[test]
fn a_restart_resumes_after_the_delivered_prefix_of_each_segment() {
    const N: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let (mut buffer, _) = DiskBuffer::open(dir.path(), 1 << 30).unwrap();
    for start in (0..N).step_by(10) {
        assert!(buffer.append(&large(start..start + 10)).unwrap());
    }
    assert!(files(dir.path(), "seg").len() >= 2, "spans segments");
    let mut chunks = Vec::new();
    while chunks.last().is_none_or(|c: &Chunk| c.id.segment == 0) {
        chunks.push(buffer.read(10).unwrap().unwrap());
    }
    let second = chunks.pop().unwrap(); // the first chunk of segment 1
    assert!(chunks.len() >= 4);
    let marker = dir.path().join(format!("{:020}.done", 0));

    // Chunk 2 before chunk 1: the prefix does not move until chunk 1 is done.
    buffer.delivered(chunks[1].id);
    assert_eq!(
        marker::read(&marker, 0),
        None,
        "nothing delivered in order yet"
    );
    buffer.delivered(chunks[0].id);
    assert_eq!(marker::read(&marker, 0), Some(chunks[1].id.end));
    // Chunk 4 done, chunk 3 still in flight: the prefix stays at chunk 2.
    buffer.delivered(chunks[3].id);
    assert_eq!(marker::read(&marker, 0), Some(chunks[1].id.end));
    buffer.delivered(second.id);
    let marker_1 = dir.path().join(format!("{:020}.done", 1));
    assert_eq!(marker::read(&marker_1, 1), Some(second.id.end));
    assert_eq!(buffer.events(), N - 20 - 10 - 10);
    drop(buffer); // a crash: chunk 3 and the rest of the reads are lost

    let delivered: Vec<u64> = [&chunks[0], &chunks[1], &second]
        .into_iter()
        .flat_map(ids)
        .collect();
    let expected: Vec<u64> = (0..N).filter(|i| !delivered.contains(i)).collect();
    let (mut buffer, recovered) = DiskBuffer::open(dir.path(), 1 << 30).unwrap();
    assert_eq!(recovered.records, expected.len() as u64);
    assert_eq!(recovered.delivered, 30);
    assert_eq!(buffer.events(), expected.len() as u64);
    assert_eq!(read_all(&mut buffer), expected, "the undelivered, in order");
}

/// One segment of 30 records, 10 of them delivered; the buffer dropped.
fn delivered_ten(dir: &Path) -> (PathBuf, u64) {
    let (mut buffer, _) = DiskBuffer::open(dir, 1 << 20).unwrap();
    assert!(buffer.append(&events(0..30)).unwrap());
    let chunk = buffer.read(10).unwrap().unwrap();
    buffer.delivered(chunk.id);
    let marker = dir.join(format!("{:020}.done", chunk.id.segment));
    assert_eq!(marker::read(&marker, chunk.id.segment), Some(chunk.id.end));
    (marker, chunk.id.end)
}

#[test]
fn a_torn_or_corrupt_marker_is_ignored() {
    for damage in [
        (|bytes: &mut Vec<u8>| bytes.truncate(7)) as fn(&mut Vec<u8>),
        |bytes| bytes[5] ^= 0x01,
        |bytes| bytes.clear(),
        |bytes| bytes.extend_from_slice(b"more"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (marker, _) = delivered_ten(dir.path());
        let mut bytes = std::fs::read(&marker).unwrap();
        damage(&mut bytes);
        std::fs::write(&marker, &bytes).unwrap();
        let (mut buffer, recovered) = DiskBuffer::open(dir.path(), 1 << 20).unwrap();
        assert_eq!((recovered.records, recovered.delivered), (30, 0));
        assert_eq!(read_all(&mut buffer), (0..30).collect::<Vec<_>>());
    }
}

#[test]
fn a_marker_off_a_record_boundary_is_ignored() {
    for shift in [1i64, -1, 10_000] {
        let dir = tempfile::tempdir().unwrap();
        let (marker, end) = delivered_ten(dir.path());
        let offset = end.checked_add_signed(shift).unwrap();
        marker::Marker::open(&marker)
            .unwrap()
            .write(0, offset)
            .unwrap();
        assert_eq!(marker::read(&marker, 0), Some(offset), "checks out");
        let (mut buffer, recovered) = DiskBuffer::open(dir.path(), 1 << 20).unwrap();
        assert_eq!((recovered.records, recovered.delivered), (30, 0));
        assert_eq!(read_all(&mut buffer), (0..30).collect::<Vec<_>>());
    }
    // Below the header, and a marker of another segment.
    let dir = tempfile::tempdir().unwrap();
    let (marker, end) = delivered_ten(dir.path());
    marker::Marker::open(&marker).unwrap().write(0, 0).unwrap();
    let (_, recovered) = DiskBuffer::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(recovered.records, 30);
    marker::Marker::open(&marker)
        .unwrap()
        .write(1, end)
        .unwrap();
    assert_eq!(marker::read(&marker, 0), None, "not segment 0's");
}

#[test]
fn a_valid_marker_resumes_and_markers_go_with_their_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _) = delivered_ten(dir.path());
    let (mut buffer, recovered) = DiskBuffer::open(dir.path(), 1 << 20).unwrap();
    assert_eq!((recovered.records, recovered.delivered), (20, 10));
    let chunk = buffer.read(100).unwrap().unwrap();
    assert_eq!(ids(&chunk), (10..30).collect::<Vec<_>>());
    buffer.delivered(chunk.id);
    assert_eq!(buffer.events(), 0);
    assert!(files(dir.path(), "seg").is_empty());
    assert!(files(dir.path(), "done").is_empty(), "marker deleted too");

    // A marker whose segment is gone is removed at the start, so a new
    // segment of that number does not take it for its own.
    let (marker, _) = delivered_ten(dir.path());
    let segment = files(dir.path(), "seg").remove(0);
    std::fs::remove_file(&segment).unwrap();
    let (mut buffer, recovered) = DiskBuffer::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(recovered, Recovered::default());
    assert!(!marker.exists());
    assert!(buffer.append(&events(100..130)).unwrap());
    drop(buffer);
    let (_, recovered) = DiskBuffer::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(recovered.records, 30);
}
