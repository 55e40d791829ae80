//! Tailer unit tests: rotation by rename and copytruncate, truncation,
//! restart from checkpoints, acknowledgement bookkeeping.

use std::cell::RefCell;
use std::fs::{self, OpenOptions};
use std::io::Write;

use super::*;

#[derive(Default)]
struct Log(RefCell<Vec<String>>);

impl TailEvents for Log {
    fn file_added(&self, path: &Path, offset: u64, start: Start) {
        self.push(format!("added {} {offset} {start:?}", name(path)));
    }
    fn file_truncated(&self, path: &Path) {
        self.push(format!("truncated {}", name(path)));
    }
    fn file_rotated(&self, path: &Path) {
        self.push(format!("rotated {}", name(path)));
    }
    fn file_released(&self, path: &Path) {
        self.push(format!("released {}", name(path)));
    }
    fn io_error(&self, path: &Path, error: &io::Error) {
        self.push(format!("error {} {error}", name(path)));
    }
    fn file_counts(&self, _: FileCounts) {}
}

impl Log {
    fn push(&self, line: String) {
        self.0.borrow_mut().push(line);
    }
    fn has(&self, line: &str) -> bool {
        self.0.borrow().iter().any(|l| l == line)
    }
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

fn options(dir: &Path, pattern: &str) -> TailOptions {
    TailOptions {
        include: vec![Glob::new(&format!("{}/{pattern}", dir.display())).unwrap()],
        exclude: vec![],
        read_from: ReadFrom::Beginning,
        max_open_files: 16,
        rotate_wait: Duration::ZERO,
        max_line_bytes: 1024,
        chunk_bytes: 4096,
    }
}

fn append(path: &Path, text: &str) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// Reads until nothing is left, acknowledging everything; returns the lines.
fn drain(tailer: &mut Tailer, log: &Log) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let mut chunks = Vec::new();
        let n = tailer.read(&mut chunks, log);
        for chunk in chunks {
            tailer.ack(chunk.stream, chunk.start, true);
            lines.extend(
                chunk
                    .lines
                    .into_iter()
                    .map(|l| String::from_utf8(l.bytes).unwrap()),
            );
        }
        if n == 0 {
            return lines;
        }
    }
}

#[test]
fn rename_rotation_reads_the_old_file_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    append(&app, "a1\na2\n");
    let log = Log::default();
    let mut tailer = Tailer::new(options(dir.path(), "app.log"), None);
    tailer.scan(&log);
    assert_eq!(drain(&mut tailer, &log), ["a1", "a2"]);
    append(&app, "a3\n");
    fs::rename(&app, dir.path().join("app.log.1")).unwrap();
    append(
        &dir.path().join("app.log.1"),
        "a4 (late write through the old descriptor)\n",
    );
    append(&app, "b1\n");
    tailer.scan(&log);
    assert!(log.has("rotated app.log"));
    let lines = drain(&mut tailer, &log);
    assert_eq!(
        lines,
        ["a3", "a4 (late write through the old descriptor)", "b1"]
    );
    // Read to the end and idle: released.
    drain(&mut tailer, &log);
    assert!(log.has("released app.log"));
}

#[test]
fn copytruncate_continues_in_the_copy_without_repeating() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    append(&app, "c1\nc2\n");
    let log = Log::default();
    let mut tailer = Tailer::new(options(dir.path(), "app.log*"), None);
    tailer.scan(&log);
    assert_eq!(drain(&mut tailer, &log), ["c1", "c2"]);
    append(&app, "c3\n");
    // copytruncate before the tailer read c3: c3 survives only in the copy.
    fs::copy(&app, dir.path().join("app.log.1")).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&app)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&app, "d1 is longer than what was there before\n");
    let mut lines = drain(&mut tailer, &log);
    assert!(log.has("truncated app.log"), "{:?}", log.0.borrow());
    tailer.scan(&log);
    assert!(
        log.has("added app.log.1 6 Continuation"),
        "{:?}",
        log.0.borrow()
    );
    lines.extend(drain(&mut tailer, &log));
    lines.sort();
    assert_eq!(lines, ["c3", "d1 is longer than what was there before"]);
}

#[test]
fn truncation_restarts_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    append(&app, "x1\nx2\n");
    let log = Log::default();
    let mut tailer = Tailer::new(options(dir.path(), "app.log"), None);
    tailer.scan(&log);
    drain(&mut tailer, &log);
    fs::OpenOptions::new()
        .write(true)
        .open(&app)
        .unwrap()
        .set_len(0)
        .unwrap();
    assert!(drain(&mut tailer, &log).is_empty());
    append(&app, "y1\n");
    assert_eq!(drain(&mut tailer, &log), ["y1"]);
}

#[test]
fn checkpoints_follow_the_lowest_unacknowledged_range() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    let mut opts = options(dir.path(), "app.log");
    opts.chunk_bytes = 4096;
    append(&app, "line1\n");
    let log = Log::default();
    let mut tailer = Tailer::new(opts, None);
    tailer.scan(&log);
    let mut first = Vec::new();
    tailer.read(&mut first, &log);
    append(&app, "line2\n");
    let mut second = Vec::new();
    tailer.read(&mut second, &log);
    let offset = |t: &Tailer| t.checkpoints().files[0].offset;
    assert_eq!(offset(&tailer), 0);
    tailer.ack(second[0].stream, second[0].start, true);
    assert_eq!(offset(&tailer), 0, "the first range is still pending");
    tailer.ack(first[0].stream, first[0].start, false);
    assert_eq!(offset(&tailer), 0, "undelivered stays pending");
    assert!(tailer.oldest_pending().is_some());
    tailer.ack(first[0].stream, first[0].start, true);
    assert_eq!(offset(&tailer), 12);
    assert!(!tailer.has_pending());
}

#[test]
fn a_restart_resumes_from_the_checkpoint_and_detects_replaced_files() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    let other = dir.path().join("other.log");
    append(&app, "r1\nr2\n");
    append(&other, "o1\n");
    let log = Log::default();
    let mut tailer = Tailer::new(options(dir.path(), "*.log"), None);
    tailer.scan(&log);
    drain(&mut tailer, &log);
    let saved = tailer.checkpoints();
    drop(tailer);
    append(&app, "r3\n");
    // other.log is replaced by a new file while sidewatch is down.
    fs::remove_file(&other).unwrap();
    append(&other, "n1\n");
    let mut tailer = Tailer::new(options(dir.path(), "*.log"), Some(saved));
    tailer.scan(&log);
    let mut lines = drain(&mut tailer, &log);
    lines.sort();
    assert_eq!(lines, ["n1", "r3"]);
}

#[test]
fn read_from_end_applies_only_to_the_first_start() {
    let dir = tempfile::tempdir().unwrap();
    append(&dir.path().join("a.log"), "old\n");
    let mut opts = options(dir.path(), "*.log");
    opts.read_from = ReadFrom::End;
    let log = Log::default();
    let mut tailer = Tailer::new(opts, None);
    tailer.scan(&log);
    assert!(drain(&mut tailer, &log).is_empty());
    append(&dir.path().join("a.log"), "new\n");
    append(&dir.path().join("b.log"), "later file\n");
    tailer.scan(&log);
    let mut lines = drain(&mut tailer, &log);
    lines.sort();
    assert_eq!(lines, ["later file", "new"]);
}

#[test]
fn open_files_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..5 {
        append(&dir.path().join(format!("{i}.log")), &format!("f{i}\n"));
    }
    let mut opts = options(dir.path(), "*.log");
    opts.max_open_files = 2;
    let log = Log::default();
    let mut tailer = Tailer::new(opts, None);
    let mut lines = Vec::new();
    for _ in 0..5 {
        tailer.scan(&log);
        assert!(tailer.open_count() <= 2);
        lines.extend(drain(&mut tailer, &log));
    }
    lines.sort();
    assert_eq!(lines, ["f0", "f1", "f2", "f3", "f4"]);
}

#[test]
fn a_copy_still_being_written_is_continued_once_complete() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    append(&app, "c1\nc2\n");
    let log = Log::default();
    let mut tailer = Tailer::new(options(dir.path(), "app.log*"), None);
    tailer.scan(&log);
    drain(&mut tailer, &log);
    append(&app, "c3\n");
    let copy = dir.path().join("app.log.1");
    append(&copy, "c1\n"); // the copy has only just begun
    fs::OpenOptions::new()
        .write(true)
        .open(&app)
        .unwrap()
        .set_len(0)
        .unwrap();
    tailer.scan(&log);
    assert!(!log
        .0
        .borrow()
        .iter()
        .any(|l| l.starts_with("added app.log.1")));
    append(&copy, "c2\nc3\n");
    tailer.scan(&log);
    assert!(
        log.has("added app.log.1 6 Continuation"),
        "{:?}",
        log.0.borrow()
    );
    assert_eq!(drain(&mut tailer, &log), ["c3"]);
}

#[test]
fn a_new_file_with_the_same_first_line_is_read_from_the_beginning() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    append(&app, "header\naaaa\nbbbb\n");
    let log = Log::default();
    let mut tailer = Tailer::new(options(dir.path(), "app.log"), None);
    tailer.scan(&log);
    drain(&mut tailer, &log);
    fs::rename(&app, dir.path().join("app.log.1")).unwrap();
    append(&app, "header\nnew\n");
    tailer.scan(&log); // deferred: could be a copy in progress
    tailer.scan(&log); // rotate_wait (0 here) is over: a new file
    assert!(log.has("added app.log 0 Beginning"), "{:?}", log.0.borrow());
    assert_eq!(drain(&mut tailer, &log), ["header", "new"]);
}

#[test]
fn unread_bytes_are_what_the_open_files_hold_beyond_the_read_position() {
    let dir = tempfile::tempdir().unwrap();
    let line = format!("{}\n", "x".repeat(99));
    append(&dir.path().join("a.log"), &line.repeat(100));
    append(&dir.path().join("b.log"), &line.repeat(30));
    let log = Log::default();
    let mut tailer = Tailer::new(options(dir.path(), "*.log"), None);
    assert_eq!(tailer.unread_bytes(), 0, "nothing open yet");
    tailer.scan(&log);
    assert_eq!(tailer.unread_bytes(), 13_000);
    let mut chunks = Vec::new();
    assert_eq!(
        tailer.read(&mut chunks, &log),
        4096 + 3000,
        "a chunk of each"
    );
    assert_eq!(tailer.unread_bytes(), 10_000 - 4096);
    drain(&mut tailer, &log);
    assert_eq!(tailer.unread_bytes(), 0);
    append(&dir.path().join("a.log"), &line.repeat(5));
    append(&dir.path().join("b.log"), "a partial line");
    assert_eq!(tailer.unread_bytes(), 514);
    drain(&mut tailer, &log);
    assert_eq!(
        tailer.unread_bytes(),
        0,
        "a partial line read counts as read"
    );
}

#[test]
fn a_rotation_after_a_restart_repeats_nothing() {
    // The soak's pattern: app.log* with rename rotation, a restart from a
    // checkpoint left behind by pending ranges, then the next rotation while
    // the restarted tailer is still catching up (and the oldest file deleted).
    let dir = tempfile::tempdir().unwrap();
    let path = |n: usize| match n {
        0 => dir.path().join("app.log"),
        n => dir.path().join(format!("app.log.{n}")),
    };
    let rotate = || {
        let _ = fs::remove_file(path(3));
        for n in (0..3).rev() {
            if path(n).exists() {
                fs::rename(path(n), path(n + 1)).unwrap();
            }
        }
    };
    let mut seq = 0;
    let mut write = |lines: usize| {
        let mut text = String::new();
        for _ in 0..lines {
            text.push_str(&format!("{{\"seq\":{seq:06}}}\n"));
            seq += 1;
        }
        append(&path(0), &text);
    };
    let mut opts = options(dir.path(), "app.log*");
    opts.chunk_bytes = 256;
    let log = Log::default();
    let mut tailer = Tailer::new(opts.clone(), None);
    for _ in 0..3 {
        write(50);
        tailer.scan(&log);
        drain(&mut tailer, &log);
        rotate();
    }
    write(50);
    tailer.scan(&log);
    drain(&mut tailer, &log);
    write(30);
    // Read but not acknowledged when the process dies.
    let mut unacked = Vec::new();
    tailer.read(&mut unacked, &log);
    let saved = tailer.checkpoints();
    drop(tailer);
    write(20); // while down
    let mut tailer = Tailer::new(opts, Some(saved));
    tailer.scan(&log);
    let mut after = Vec::new();
    let mut first = Vec::new();
    tailer.read(&mut first, &log); // one chunk: still catching up
    for chunk in first {
        tailer.ack(chunk.stream, chunk.start, true);
        after.extend(
            chunk
                .lines
                .into_iter()
                .map(|l| String::from_utf8(l.bytes).unwrap()),
        );
    }
    rotate();
    write(30);
    for _ in 0..3 {
        tailer.scan(&log);
        after.extend(drain(&mut tailer, &log));
    }
    let mut sorted = after.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        after.len(),
        "a line was read twice after the restart: {after:?}"
    );
    assert_eq!(
        sorted.last().map(String::as_str),
        Some(&*format!("{{\"seq\":{:06}}}", seq - 1))
    );
}

#[test]
fn a_rename_missed_by_a_scan_after_a_restart_repeats_nothing() {
    // The soak's hypotheses in deterministic form: a restart with ranges
    // still pending (read position well past the checkpoint); a scan that
    // misses the renamed file (as a directory listing racing the rename
    // can), so it is read to its end and released (`rotate_wait` is 0 here)
    // before the next scan finds it again under its new name; and a new
    // `app.log` whose inode is one the restored checkpoint still lists (as
    // ext4 reuses a freed inode at once), under another fingerprint.
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    let mut seq = 0;
    let mut lines = |n: usize| {
        let mut text = String::new();
        for _ in 0..n {
            text.push_str(&format!("{{\"seq\":{seq:06}}}\n"));
            seq += 1;
        }
        text
    };
    let mut opts = options(dir.path(), "app.log*");
    opts.chunk_bytes = 256;
    let log = Log::default();
    let mut tailer = Tailer::new(opts.clone(), None);
    append(&app, &lines(50));
    tailer.scan(&log);
    drain(&mut tailer, &log);
    append(&app, &lines(30));
    let mut unacked = Vec::new();
    tailer.read(&mut unacked, &log);
    let mut saved = tailer.checkpoints();
    drop(tailer);
    // The file that will be the next app.log, created now so that its
    // inode can be listed in the checkpoint as a file deleted long ago.
    let next = dir.path().join("next");
    fs::write(&next, b"").unwrap();
    let next_ino = fs::metadata(&next).unwrap().ino();
    let stale = |fingerprint, offset| FileCheckpoint {
        fingerprint,
        dev: saved.files[0].dev,
        ino: next_ino,
        path: app.to_string_lossy().into_owned(),
        offset,
    };
    saved
        .files
        .push(stale(Fingerprint::of(b"old first line\n"), 1 << 20));
    let tail_text = lines(20);
    append(&app, &tail_text); // while down
    let mut tailer = Tailer::new(opts, Some(saved.clone()));
    tailer.scan(&log);
    let mut after = Vec::new();
    // Read everything, acknowledge nothing: every range stays pending.
    loop {
        let mut chunks = Vec::new();
        if tailer.read(&mut chunks, &log) == 0 {
            break;
        }
        after.extend(chunks.into_iter().flat_map(|c| c.lines));
    }
    assert!(tailer.has_pending());
    // Renamed away under a name the patterns miss for one scan.
    let hidden = dir.path().join("hidden");
    fs::rename(&app, &hidden).unwrap();
    tailer.scan(&log);
    assert!(log.has("rotated app.log"), "{:?}", log.0.borrow());
    let mut chunks = Vec::new();
    tailer.read(&mut chunks, &log);
    assert!(log.has("released app.log"), "{:?}", log.0.borrow());
    fs::rename(&hidden, dir.path().join("app.log.1")).unwrap();
    fs::rename(&next, &app).unwrap();
    tailer.scan(&log); // the new app.log is still empty
    let new_text = lines(30);
    append(&app, &new_text);
    for _ in 0..3 {
        tailer.scan(&log);
        after.extend(
            std::iter::from_fn(|| {
                let mut chunks = Vec::new();
                (tailer.read(&mut chunks, &log) > 0)
                    .then(|| chunks.into_iter().flat_map(|c| c.lines).collect::<Vec<_>>())
            })
            .flatten(),
        );
    }
    let after: Vec<String> = after
        .into_iter()
        .map(|l| String::from_utf8(l.bytes).unwrap())
        .collect();
    let mut sorted = after.clone();
    sorted.sort();
    sorted.dedup();
    // The paths the hypotheses name were taken: the restored file resumed
    // at its checkpoint, the renamed one was found again after its release
    // (and continued where reading stopped, not at the checkpoint), and the
    // new file on a listed inode was read from its beginning.
    assert!(
        log.has("added app.log 750 Checkpoint"),
        "{:?}",
        log.0.borrow()
    );
    assert!(
        log.has("added app.log.1 1500 Continuation"),
        "{:?}",
        log.0.borrow()
    );
    assert_eq!(
        log.0
            .borrow()
            .iter()
            .filter(|l| *l == "added app.log 0 Beginning")
            .count(),
        2
    );
    assert_eq!(
        sorted.len(),
        after.len(),
        "a line was read twice: {after:?}"
    );
    for line in tail_text.lines().chain(new_text.lines()) {
        assert!(
            sorted.binary_search(&line.to_owned()).is_ok(),
            "{line} lost"
        );
    }
}
