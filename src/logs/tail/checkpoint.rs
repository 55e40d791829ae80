//! Checkpoints on disk: a versioned JSON document written atomically
//! (temporary file → fsync → rename → fsync of the directory), so a crash at
//! any instant leaves either the old or the new checkpoint, never a torn one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fingerprint::Fingerprint;

/// The format version written; older versions would be migrated on load.
pub const VERSION: u32 = 1;

/// Why a checkpoint file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file is not a checkpoint this version understands.
    #[error("{path}: not a valid checkpoint file: {message}")]
    Invalid {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// One file's position: everything before `offset` has been acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheckpoint {
    /// The file's first-line checksum, when it had a complete first line.
    pub fingerprint: Option<Fingerprint>,
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// The path it was last seen under (informational).
    pub path: String,
    /// Byte offset up to which every line was acknowledged.
    pub offset: u64,
}

/// The whole checkpoint document of one source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoints {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// Every tracked file.
    pub files: Vec<FileCheckpoint>,
}

/// Loads `path`; `Ok(None)` when it does not exist (a first start).
pub fn load(path: &Path) -> Result<Option<Checkpoints>, CheckpointError> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CheckpointError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    let invalid = |message: String| CheckpointError::Invalid {
        path: path.to_owned(),
        message,
    };
    let value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| invalid(e.to_string()))?;
    match value.get("version").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(VERSION) => {}
        other => return Err(invalid(format!("unsupported version {other:?}"))),
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| invalid(e.to_string()))
}

/// Writes `checkpoints` to `path` atomically.
pub fn save(path: &Path, checkpoints: &Checkpoints) -> Result<(), CheckpointError> {
    let io_error = |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    };
    let text = serde_json::to_vec(checkpoints).map_err(|e| io_error(io::Error::other(e)))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = File::create(&tmp).map_err(io_error)?;
    file.write_all(&text).map_err(io_error)?;
    file.sync_all().map_err(io_error)?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_error)?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error)?;
    }
    Ok(())
}

/// Checks that `dir` exists (creating it) and is writable, by writing and
/// removing a probe file.
pub fn check_state_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".sidewatch-probe-{}", std::process::id()));
    let mut file = File::create(&probe)?;
    file.write_all(b"probe")?;
    file.sync_all()?;
    drop(file);
    fs::remove_file(&probe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.json");
        assert_eq!(load(&path).unwrap(), None);
        let mut cp = Checkpoints {
            version: VERSION,
            files: vec![FileCheckpoint {
                fingerprint: Fingerprint::of(b"a\n"),
                dev: 1,
                ino: 2,
                path: "/x".into(),
                offset: 42,
            }],
        };
        save(&path, &cp).unwrap();
        assert_eq!(load(&path).unwrap().unwrap(), cp);
        cp.files[0].offset = 50;
        save(&path, &cp).unwrap();
        assert_eq!(load(&path).unwrap().unwrap().files[0].offset, 50);
        assert!(!dir.path().join("cp.json.tmp").exists());
    }

    #[test]
    fn rejects_garbage_and_other_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.json");
        fs::write(&path, b"{not json").unwrap();
        assert!(matches!(load(&path), Err(CheckpointError::Invalid { .. })));
        fs::write(&path, br#"{"version":99,"files":[]}"#).unwrap();
        assert!(matches!(load(&path), Err(CheckpointError::Invalid { .. })));
    }

    #[test]
    fn state_dir_under_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, b"x").unwrap();
        assert!(check_state_dir(&file.join("state")).is_err());
        assert!(check_state_dir(&dir.path().join("new/state")).is_ok());
    }
}
