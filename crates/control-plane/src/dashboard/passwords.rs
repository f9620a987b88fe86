//! Password hashing with argon2id (the crate's defaults: 19 MiB, 2 passes, as OWASP
//! recommends). Hashing takes tens of milliseconds of CPU, so it runs on the blocking pool,
//! never on an async worker, and at most one hash per CPU runs at once: a flood of
//! sign-ins waits its turn (or is told to come back) instead of taking every core and
//! 19 MiB a request.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Shortest password accepted, in characters.
pub const MIN_LEN: usize = 10;
/// Longest password accepted, in bytes: enough for any passphrase, and bounds the work.
pub const MAX_LEN: usize = 1024;

/// Why a password is not acceptable, in words for the form; `None` when it is.
pub fn weakness(password: &str) -> Option<String> {
    if password.chars().count() < MIN_LEN {
        return Some(format!("at least {MIN_LEN} characters"));
    }
    if password.len() > MAX_LEN {
        return Some(format!("at most {MAX_LEN} bytes"));
    }
    None
}

/// Longest a hash waits for a free CPU before the caller is told the server is busy.
const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// Every CPU is hashing and the queue did not move in time.
#[derive(Debug, thiserror::Error)]
#[error("too many password checks at once")]
pub struct Busy;

async fn turn() -> anyhow::Result<OwnedSemaphorePermit> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    let slots = SLOTS.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Arc::new(Semaphore::new(cpus))
    });
    match tokio::time::timeout(QUEUE_WAIT, slots.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(Busy.into()),
    }
}

/// The PHC string (`$argon2id$v=19$...`) of `password` with a fresh salt.
pub async fn hash(password: String) -> anyhow::Result<String> {
    let permit = turn().await?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        hash_now(&password)
    })
    .await?
}

fn hash_now(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| anyhow::anyhow!("encoding a salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
}

/// Whether `password` matches `stored`. With `stored` = `None` (no such user) a hash of a
/// random password is checked instead, so an unknown name takes as long as a wrong
/// password and does not show which names exist.
pub async fn verify(password: String, stored: Option<String>) -> anyhow::Result<bool> {
    let permit = turn().await?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let known = stored.is_some();
        let phc = match stored {
            Some(phc) => phc,
            None => decoy()?.clone(),
        };
        let parsed = PasswordHash::new(&phc)
            .map_err(|e| anyhow::anyhow!("a stored hash is unreadable: {e}"))?;
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(known && matches)
    })
    .await?
}

fn decoy() -> anyhow::Result<&'static String> {
    static DECOY: OnceLock<String> = OnceLock::new();
    if let Some(h) = DECOY.get() {
        return Ok(h);
    }
    let random = hex::encode(rand::random::<[u8; 16]>());
    let h = hash_now(&random)?;
    Ok(DECOY.get_or_init(|| h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse battery".to_owned())
            .await
            .expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify("correct horse battery".to_owned(), Some(h.clone()))
            .await
            .expect("verify"));
        assert!(!verify("wrong horse battery".to_owned(), Some(h))
            .await
            .expect("verify"));
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        assert!(!verify("anything at all".to_owned(), None)
            .await
            .expect("verify"));
    }

    #[test]
    fn short_and_huge_passwords_are_refused() {
        assert!(weakness("short").is_some());
        assert!(weakness(&"x".repeat(MAX_LEN + 1)).is_some());
        assert_eq!(weakness("long enough pass"), None);
    }
}
