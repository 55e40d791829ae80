//! The file sink: JSON lines appended to a local file, rotated by size
//! (`path` → `path.1` → … → `path.<max_files>`, the oldest removed). A batch
//! is acknowledged once written (and fsync'd with `fsync = "batch"`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{encode_json_line, Sink, SinkError};
use crate::config::logs::Fsync;
use crate::logs::event::Event;

/// A buffer above this capacity is not kept between batches.
const KEEP_BUFFER: usize = 4 * 1024 * 1024;

/// Appends JSON lines to a file.
#[derive(Debug)]
pub struct FileSink {
    state: Option<Output>,
    buffer: Vec<u8>,
}

#[derive(Debug)]
struct Output {
    path: PathBuf,
    max_bytes: u64,
    max_files: usize,
    fsync: Fsync,
    file: Option<File>,
    size: u64,
}

impl FileSink {
    /// A sink writing to `path` (opened at the first write).
    pub fn new(path: &Path, max_bytes: u64, max_files: usize, fsync: Fsync) -> Self {
        Self {
            state: Some(Output {
                path: path.to_owned(),
                max_bytes,
                max_files,
                fsync,
                file: None,
                size: 0,
            }),
            buffer: Vec::new(),
        }
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
}

impl Output {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(&self.path)?;
            self.size = file.metadata()?.len();
            // A line torn by a crash stays on a line of its own.
            let mut last = [0u8; 1];
            if self.size > 0
                && file.read_exact_at(&mut last, self.size - 1).is_ok()
                && last[0] != b'\n'
            {
                file.write_all(b"\n")?;
                self.size += 1;
            }
            self.file = Some(file);
        }
        if self.max_bytes > 0 && self.size > 0 && self.size + data.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => return Err(io::Error::other("file sink not open")),
        };
        let written = file.write_all(data).and_then(|()| match self.fsync {
            Fsync::Batch => file.sync_data(),
            Fsync::Never => Ok(()),
        });
        if written.is_err() {
            // Reopened at the next try, which first ends a torn line.
            self.file = None;
        }
        written?;
        self.size += data.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        if let Some(file) = self.file.take() {
            file.sync_all()?;
        }
        let numbered = |n: usize| {
            let mut name = self.path.as_os_str().to_owned();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        let _ = std::fs::remove_file(numbered(self.max_files));
        for n in (1..self.max_files).rev() {
            let _ = std::fs::rename(numbered(n), numbered(n + 1));
        }
        std::fs::rename(&self.path, numbered(1))?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        self.file = Some(file);
        Ok(())
    }
}

impl Sink for FileSink {
    async fn write(&mut self, batch: &mut Vec<Event>) -> Result<(), SinkError> {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        for event in batch.iter() {
            encode_json_line(event, &mut buffer);
        }
        let Some(mut output) = self.state.take() else {
            return Err(SinkError::Io(io::Error::other("file sink lost its state")));
        };
        let (output, mut buffer, result) = tokio::task::spawn_blocking(move || {
            let result = output.write(&buffer);
            (output, buffer, result)
        })
        .await
        .map_err(|e| SinkError::Io(io::Error::other(e)))?;
        self.state = Some(output);
        if buffer.capacity() > KEEP_BUFFER {
            buffer = Vec::new();
        }
        self.buffer = buffer;
        result?;
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        if let Some(file) = self.state.as_ref().and_then(|s| s.file.as_ref()) {
            file.sync_data()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::stage::tests::object;

    #[tokio::test]
    async fn writes_lines_and_rotates_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let mut sink = FileSink::new(&path, 100, 2, Fsync::Batch);
        for i in 0..12 {
            let mut batch = vec![object(
                serde_json::json!({"i": i, "pad": "xxxxxxxxxxxxxxxxxxxxxxxxx"}),
            )];
            sink.write(&mut batch).await.unwrap();
        }
        sink.flush().await.unwrap();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let current = read(&path);
        let one = read(&dir.path().join("out.log.1"));
        let two = read(&dir.path().join("out.log.2"));
        assert!(!dir.path().join("out.log.3").exists());
        assert!(current.len() <= 100 && one.len() <= 100 && two.len() <= 100);
        assert!(
            current.ends_with("\"i\":11,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxx\"}\n"),
            "{current}"
        );
        let total = [two, one, current].concat();
        let first: serde_json::Value = serde_json::from_str(total.lines().next().unwrap()).unwrap();
        assert!(first["i"].as_u64().unwrap() > 0, "oldest rotated away");
    }

    #[tokio::test]
    async fn a_failed_write_is_written_again_to_a_reopened_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        std::os::unix::fs::symlink("/dev/full", &path).unwrap();
        let mut sink = FileSink::new(&path, 0, 1, Fsync::Batch);
        let mut batch = vec![object(serde_json::json!({"a": 1}))];
        assert!(matches!(
            sink.write(&mut batch).await,
            Err(SinkError::Io(_))
        ));
        std::fs::remove_file(&path).unwrap();
        sink.write(&mut batch).await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n");
    }
}
