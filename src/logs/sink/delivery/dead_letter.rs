//! The dead-letter file: events a destination rejected one by one, as JSON
//! lines `{"at", "sink", "status", "error", "event"}`, fsync'd before the
//! event is acknowledged (so a rejected event is never silently lost).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::logs::Event;

/// Longest part of the destination's answer kept with a dead letter.
const MAX_ERROR: usize = 512;

/// Appends rejected events to one file.
#[derive(Debug)]
pub struct DeadLetter {
    sink: String,
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl DeadLetter {
    /// A dead-letter file at `path` for sink `sink` (opened at the first letter).
    pub fn new(sink: &str, path: &Path) -> Self {
        Self {
            sink: sink.to_owned(),
            path: path.to_owned(),
            file: Mutex::new(None),
        }
    }

    /// Where letters go.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks that the file can be opened for appending (creating its directory).
    pub fn check(path: &Path) -> io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(drop)
    }

    /// Writes `event` with the answer that rejected it and syncs the file.
    pub fn write(&self, event: &Event, status: u16, error: &str) -> io::Result<()> {
        let mut cut = error.len().min(MAX_ERROR);
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        let letter = serde_json::json!({
            "at": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            "sink": self.sink,
            "status": status,
            "error": &error[..cut],
            "event": event.fields,
        });
        let mut line = serde_json::to_vec(&letter).map_err(io::Error::other)?;
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if file.is_none() {
            *file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        let Some(open) = file.as_mut() else {
            return Err(io::Error::other("dead-letter file not open"));
        };
        let written = open.write_all(&line).and_then(|()| open.sync_data());
        if written.is_err() {
            *file = None;
        }
        written
    }
}
