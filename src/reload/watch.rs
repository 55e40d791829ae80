//! `reload.watch_config`: polls the config file's content and reloads when
//! it changes.
//!
//! A Kubernetes ConfigMap volume holds `..data -> ..2026_12_01_…` and
//! `sidewatch.toml -> ..data/sidewatch.toml`; an update writes a new
//! timestamped directory and swaps the `..data` symlink atomically. Watching
//! the file's inode misses that (the inode of the path never changes, the
//! old target is deleted), so the path is opened anew at every check and
//! its content hash compared: a symlink swap, an in-place write and a
//! rename over the file are all seen, at the cost of one small read every
//! `watch_interval`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::ReloadHandle;

/// The file's content hash, or `None` when it cannot be read.
fn content_hash(path: &Path) -> Option<u32> {
    std::fs::read(path)
        .ok()
        .map(|bytes| crc32fast::hash(&bytes))
}

/// Polls `path` every `interval` until `stop`, reloading through `handle`
/// whenever the content differs from the last content seen.
pub async fn watch(
    path: PathBuf,
    interval: Duration,
    handle: ReloadHandle,
    stop: CancellationToken,
) {
    let path_for_read = path.clone();
    let mut last = tokio::task::spawn_blocking(move || content_hash(&path_for_read))
        .await
        .ok()
        .flatten();
    let mut unreadable_logged = false;
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = stop.cancelled() => return,
        }
        let path_for_read = path.clone();
        let current = tokio::task::spawn_blocking(move || content_hash(&path_for_read))
            .await
            .ok()
            .flatten();
        match current {
            None => {
                if !unreadable_logged {
                    tracing::warn!(path = %path.display(), "watch_config: cannot read the config file; still watching");
                    unreadable_logged = true;
                }
            }
            Some(hash) if Some(hash) != last => {
                unreadable_logged = false;
                last = Some(hash);
                tracing::info!(path = %path.display(), "watch_config: the config file changed; reloading");
                let _ = handle.reload("watch").await;
            }
            Some(_) => unreadable_logged = false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_swap_changes_the_hash_of_the_same_path() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("..2026_a"), dir.path().join("..2026_b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(a.join("sidewatch.toml"), "one").unwrap();
        std::fs::write(b.join("sidewatch.toml"), "two").unwrap();
        let data = dir.path().join("..data");
        std::os::unix::fs::symlink("..2026_a", &data).unwrap();
        let file = dir.path().join("sidewatch.toml");
        std::os::unix::fs::symlink("..data/sidewatch.toml", &file).unwrap();
        let before = content_hash(&file).unwrap();
        let tmp = dir.path().join("..data_tmp");
        std::os::unix::fs::symlink("..2026_b", &tmp).unwrap();
        std::fs::rename(&tmp, &data).unwrap();
        assert_ne!(content_hash(&file).unwrap(), before);
    }
}
