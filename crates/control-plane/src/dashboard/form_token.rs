//! Tokens of the forms shown before sign-in (sign-in and setup).
//!
//! Without a session the server has nothing to compare a form's token with, so the token
//! proves itself: a random nonce and the time it was issued, with an HMAC-SHA256 of both
//! under a key the control plane keeps in its database ([`crate::repo::secrets`]). It
//! travels in a `SameSite=Strict` cookie and in the form (double submit). Matching the
//! two is not enough: anything that can write a cookie for this host (a page on another
//! port, a sibling subdomain) could plant a matching pair and sign a browser in to an
//! account of its choosing. It cannot sign one without the key, so an unsigned, altered or
//! expired token is refused. The key lives in the database, not in the process, so a form
//! served by one replica is accepted by any other.

use chrono::Utc;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::sync::OnceCell;

use crate::repo::secrets;

/// How long a form token is good for (the cookie that carries it lives as long).
pub const LIFETIME: chrono::Duration = chrono::Duration::hours(12);
/// How far in the future a token's issue time may be: replicas' clocks differ a little.
const CLOCK_SLACK_SECS: i64 = 60;
/// The name of the key in `control_plane_secrets`.
const KEY_NAME: &str = "form";
/// Random bytes per token.
const NONCE_LEN: usize = 16;
/// Tells this use of the key from any other it may be put to later.
const CONTEXT: &[u8] = b"gatehouse pre-session form\0";

/// The key form tokens are signed with, read (or made) once per process.
#[derive(Default)]
pub struct FormKey {
    key: OnceCell<[u8; 32]>,
}

impl FormKey {
    /// The key of this database; the first call reads it, or creates it if none exists.
    pub async fn get(&self, pool: &sqlx::PgPool) -> sqlx::Result<&[u8; 32]> {
        self.key
            .get_or_try_init(|| async {
                let candidate = rand::random::<[u8; 32]>();
                let stored = secrets::get_or_create(pool, KEY_NAME, &candidate).await?;
                <[u8; 32]>::try_from(stored.as_slice())
                    .map_err(|_| sqlx::Error::Decode("a stored secret is not 32 bytes".into()))
            })
            .await
    }
}

/// The MAC of a token's nonce and issue time; `None` only if HMAC refused the key, which
/// it does for no length.
fn mac(key: &[u8; 32], nonce: &str, issued: &str) -> Option<[u8; 32]> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
    mac.update(CONTEXT);
    mac.update(nonce.as_bytes());
    mac.update(b".");
    mac.update(issued.as_bytes());
    Some(mac.finalize().into_bytes().into())
}

/// A new token: `<nonce>.<issued, Unix seconds>.<mac>`, all in cookie-safe characters.
pub fn issue(key: &[u8; 32]) -> String {
    issue_at(key, Utc::now().timestamp())
}

fn issue_at(key: &[u8; 32], issued: i64) -> String {
    let nonce = hex::encode(rand::random::<[u8; NONCE_LEN]>());
    let issued = issued.to_string();
    // Without a MAC the token is one `verify` refuses, never one it accepts.
    let mac = mac(key, &nonce, &issued).map_or_else(String::new, hex::encode);
    format!("{nonce}.{issued}.{mac}")
}

/// True when `token` was issued with `key` less than [`LIFETIME`] ago.
pub fn verify(key: &[u8; 32], token: &str) -> bool {
    verify_at(key, token, Utc::now().timestamp())
}

fn verify_at(key: &[u8; 32], token: &str, now: i64) -> bool {
    let mut parts = token.split('.');
    let (Some(nonce), Some(issued), Some(presented), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(at) = issued.parse::<i64>() else {
        return false;
    };
    let fresh = at <= now.saturating_add(CLOCK_SLACK_SECS)
        && now.saturating_sub(at) < LIFETIME.num_seconds();
    let Ok(presented) = hex::decode(presented) else {
        return false;
    };
    if !fresh || nonce.len() != NONCE_LEN * 2 || presented.len() != 32 {
        return false;
    }
    mac(key, nonce, issued).is_some_and(|mac| mac.as_slice().ct_eq(presented.as_slice()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn a_token_issued_with_the_key_verifies_and_nothing_else_does() {
        let now = 1_800_000_000;
        let token = issue_at(&KEY, now);
        assert!(verify_at(&KEY, &token, now));
        assert!(verify_at(&KEY, &token, now + LIFETIME.num_seconds() - 1));
        // Expired, or from the future.
        assert!(!verify_at(&KEY, &token, now + LIFETIME.num_seconds()));
        assert!(!verify_at(&KEY, &token, now - CLOCK_SLACK_SECS - 1));
        // Another key, or any altered part.
        assert!(!verify_at(&[8; 32], &token, now));
        let (nonce, rest) = token.split_once('.').expect("nonce");
        let (issued, tag) = rest.split_once('.').expect("issued");
        let flipped = format!(
            "{}{}",
            &nonce[..31],
            if nonce.ends_with('0') { '1' } else { '0' }
        );
        for forged in [
            format!("{flipped}.{issued}.{tag}"),
            format!("{nonce}.{}.{tag}", now + 1),
            format!("{nonce}.{issued}.{}", "0".repeat(64)),
            format!("{nonce}.{issued}.{tag}.x"),
            format!("{nonce}.{issued}"),
            "0".repeat(64),
            String::new(),
        ] {
            assert!(!verify_at(&KEY, &forged, now), "{forged}");
        }
    }

    #[test]
    fn tokens_differ_and_fit_in_a_cookie() {
        let a = issue(&KEY);
        let b = issue(&KEY);
        assert_ne!(a, b);
        assert!(
            a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'),
            "{a}"
        );
    }
}
