//! A 1 GiB file appearing at once (here: one gigantic line of NUL bytes, as
//! a crashed writer or a preallocated file leaves, then normal lines) is
//! read with bounded memory: the line is cut at `max_line_bytes`, the rest
//! skipped, the lines after it delivered; the real binary's peak RSS stays small.

mod logs_support;

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use logs_support::{wait_delivered, Layout};

const BIN: &str = env!("CARGO_BIN_EXE_sidewatch");
const GIB: u64 = 1024 * 1024 * 1024;

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_gigabyte_file_is_read_with_bounded_memory() {
    let layout = Layout::new();
    let path = layout.logs().join("app.log");
    let mut file = File::create(&path).unwrap();
    file.write_all(b"{\"id\":0}\n").unwrap();
    file.set_len(GIB).unwrap(); // sparse: no disk space used
    file.seek(SeekFrom::End(0)).unwrap();
    file.write_all(b"\n{\"id\":1}\n").unwrap();
    drop(file);

    let config = layout.dir.path().join("sidewatch.toml");
    std::fs::write(&config, layout.config("*.log", "", "")).unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("SIDEWATCH_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let events = wait_delivered(
        &layout.out(),
        Duration::from_secs(300),
        "the line after 1 GiB",
        |e| e.iter().any(|e| e["id"] == 1),
    );
    let peak = peak_rss_kib(child.id());
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));

    assert_eq!(
        events.len(),
        3,
        "{:?}",
        events
            .iter()
            .map(|e| e.to_string().len())
            .collect::<Vec<_>>()
    );
    assert_eq!(events[0]["id"], 0);
    assert_eq!(events[1]["sidewatch.truncated"], true);
    assert_eq!(events[1]["message"].as_str().unwrap().len(), 256 * 1024);
    assert_eq!(events[2]["id"], 1);
    eprintln!("1 GiB file: peak RSS {} MiB", peak / 1024);
    assert!(peak < 96 * 1024, "peak RSS {peak} KiB");
}
