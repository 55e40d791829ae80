//! The disk-buffer record reader: the input as a whole segment file, and
//! the input as the payload of one well-formed record (so the payload
//! decoder is reached past the checksum).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sidewatch::logs::sink::delivery::disk::{read_segment, VERSION};

fuzz_target!(|data: &[u8]| {
    let (_, valid) = read_segment(data);
    assert!(valid <= data.len() as u64);

    let mut segment = Vec::with_capacity(data.len() + 16);
    segment.extend_from_slice(b"SWDB");
    segment.extend_from_slice(&VERSION.to_le_bytes());
    segment.extend_from_slice(&(data.len() as u32).to_le_bytes());
    segment.extend_from_slice(&crc32(data).to_le_bytes());
    segment.extend_from_slice(data);
    let (_, valid) = read_segment(&segment);
    assert_eq!(
        valid,
        segment.len() as u64,
        "a well-formed record is read whole"
    );
});

/// CRC-32 (IEEE), bit by bit: the checksum the segment format uses.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
