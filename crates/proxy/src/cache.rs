//! The last good snapshot on disk, so a proxy restarted while the control plane is away
//! still serves. Written to a temporary file, synced, then renamed over the old one: a
//! crash leaves either the old snapshot or the new one, never half of one. A damaged file
//! is caught by the snapshot's content hash on load.

use std::path::{Path, PathBuf};

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

/// Replaces the cached snapshot with `bytes` (an encoded snapshot already verified).
pub async fn store(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let final_path = path(dir);
    let temp_path = dir.join(format!("{FILE}.tmp"));
    let mut file = tokio::fs::File::create(&temp_path).await?;
    tokio::io::AsyncWriteExt::write_all(&mut file, bytes).await?;
    file.sync_all().await?;
    drop(file);
    tokio::fs::rename(&temp_path, &final_path).await
}
