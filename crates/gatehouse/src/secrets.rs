//! Tokens `gatehouse up` generates for a fresh install and keeps in its data folder, so a
//! second `up` reuses them. Files are created readable by their owner only.

use std::io::Write as _;
use std::path::Path;

/// A new random token: 32 bytes from the OS generator, hex-encoded, after a prefix that
/// tells what it is for.
pub fn generate(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{prefix}_{}", hex::encode(bytes))
}

/// Reads the token in `dir/name`, or generates one and saves it there.
pub fn load_or_create(dir: &Path, name: &str, prefix: &str) -> anyhow::Result<String> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(existing) if !existing.trim().is_empty() => return Ok(existing.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
    std::fs::create_dir_all(dir)?;
    let token = generate(prefix);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path)?;
    file.write_all(token.as_bytes())?;
    file.sync_all()?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_token_is_reused() {
        let dir = std::env::temp_dir().join(format!("gatehouse-secrets-{}", std::process::id()));
        let first = load_or_create(&dir, "admin-token", "gha").expect("created");
        let second = load_or_create(&dir, "admin-token", "gha").expect("read");
        assert_eq!(first, second);
        assert!(first.starts_with("gha_") && first.len() == 4 + 64);
        // What `up` generates is a valid admin token of the configuration.
        assert_eq!(
            gatehouse_control_plane::auth::admin_token_problem(&first),
            None
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
