//! Rotation without loss: 100k lines written by a thread while the "app"
//! rotates its log 10 times by rename and 10 times by copytruncate; every
//! line must reach the file sink (multiset of ids compared), in order within
//! each generation of the file.

mod logs_support;
mod support;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use logs_support::{delivered, ids, line, wait_distinct_ids, Layout};
use support::Sidewatch;

const LINES: u64 = 100_000;
const ROTATIONS: u64 = 20;

fn open(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

/// Writes every line, rotating every LINES/(ROTATIONS+1) lines: even
/// rotations rename, odd ones copy and truncate (as logrotate's
/// copytruncate does, with the app paused so no line falls in between).
fn write_rotating(dir: &Path) {
    let app = dir.join("app.log");
    let mut file = open(&app);
    let per_generation = LINES / (ROTATIONS + 1) + 1;
    let mut generation = 0;
    let mut seq = 0;
    for id in 0..LINES {
        if seq == per_generation {
            generation += 1;
            seq = 0;
            let rotated = dir.join(format!("app.log.{generation}"));
            if generation % 2 == 1 {
                fs::rename(&app, &rotated).unwrap();
                // A last line through the old descriptor, as apps do before reopening.
                file.write_all(line(id, generation - 1, per_generation).as_bytes())
                    .unwrap();
                file = open(&app);
                seq = 0;
                // That line belongs to the old generation; the id is used.
                continue;
            } else {
                fs::copy(&app, &rotated).unwrap();
                file.set_len(0).unwrap();
            }
        }
        file.write_all(line(id, generation, seq).as_bytes())
            .unwrap();
        seq += 1;
        if id % 250 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_survives_rename_and_copytruncate_rotation() {
    let layout = Layout::new();
    let sidewatch = Sidewatch::start(&layout.config("app.log*", "", "")).await;
    let started = Instant::now();
    let logs = layout.logs();
    let writer = std::thread::spawn(move || write_rotating(&logs));
    let out = layout.out();
    let events = tokio::task::spawn_blocking(move || {
        writer.join().unwrap();
        wait_distinct_ids(&out, LINES, Duration::from_secs(120));
        delivered(&out)
    })
    .await
    .unwrap();
    let elapsed = started.elapsed();
    let checkpoints = sidewatch
        .wait_for_metric(
            "sidewatch_checkpoint_writes_total",
            &[],
            Duration::from_secs(5),
            |v| v >= 1.0,
        )
        .await;
    sidewatch.stop().await;

    // Multiset: every id exactly once (rotation must not repeat lines).
    let mut counts: HashMap<u64, u32> = HashMap::new();
    for id in ids(&events) {
        *counts.entry(id).or_default() += 1;
    }
    let duplicates: u32 = counts.values().map(|c| c - 1).sum();
    assert_eq!(counts.len() as u64, LINES);
    assert_eq!(duplicates, 0, "lines delivered twice");

    // Order within each generation of the file.
    let mut last_seq: HashMap<u64, i64> = HashMap::new();
    for event in &events {
        let generation = event["gen"].as_u64().unwrap();
        let seq = event["seq"].as_i64().unwrap();
        let last = last_seq.entry(generation).or_insert(-1);
        assert!(
            seq > *last,
            "generation {generation}: seq {seq} after {last}"
        );
        *last = seq;
    }
    assert_eq!(last_seq.len() as u64, ROTATIONS + 1);
    eprintln!("{LINES} lines through {ROTATIONS} rotations in {elapsed:?}; {checkpoints} checkpoint writes");
}
