//! The last good snapshot on disk, so a proxy restarted while the control plane is away
//! still serves. Written to a temporary file, synced, then renamed over the old one: a
//! crash leaves either the old snapshot or the new one, never half of one. A damaged file
//! is caught by the snapshot's content hash on load.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::AsyncWriteExt as _;

use gatehouse_model::ConfigSnapshot;

const FILE: &str = "snapshot.json";

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Loads the cached snapshot. `Ok(None)` when there is none; `Err` when one exists but
/// cannot be trusted.
pub async fn load(dir: &Path) -> anyhow::Result<Option<ConfigSnapshot>> {
    let bytes = match tokio::fs::read(path(dir)).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(Some(ConfigSnapshot::decode(&bytes)?))
}

/// Replaces the cached snapshot with `bytes` (an encoded snapshot already verified). The
/// file is readable by its owner only: later snapshots hold key hashes.
pub async fn store(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    store_file(dir, FILE, bytes).await
}

/// Replaces `dir/name` with `bytes`, atomically and durably, readable by its owner only.
pub async fn store_file(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    tokio::fs::create_dir_all(dir).await?;
    let final_path = dir.join(name);
    // Unique per process and write, so proxies sharing a folder never share a temp file.
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let temp_path = dir.join(format!("{name}.{}.{n}.tmp", std::process::id()));
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let written = async {
        let mut file = options.open(&temp_path).await?;
        file.write_all(bytes).await?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&temp_path, &final_path).await?;
        // The rename itself is durable only once the folder is synced.
        #[cfg(unix)]
        tokio::fs::File::open(dir).await?.sync_all().await?;
        Ok(())
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&temp_path).await;
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stored_snapshot_loads_back_and_a_damaged_one_is_refused() {
        let dir = tempfile_dir();
        assert!(load(&dir).await.expect("no file is fine").is_none());
        let snapshot = ConfigSnapshot::new(7, Vec::new(), Vec::new(), Vec::new());
        store(&dir, &snapshot.encode()).await.expect("stored");
        assert_eq!(load(&dir).await.expect("loads"), Some(snapshot.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(path(&dir))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let encoded = snapshot.encode();
        std::fs::write(path(&dir), &encoded[..encoded.len() - 3]).expect("truncate");
        assert!(load(&dir).await.is_err());
        let leftovers = std::fs::read_dir(&dir).expect("dir").count();
        assert_eq!(leftovers, 1, "temporary files left behind");
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("gatehouse-cache-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }
}
