//! Request ids: unique per process start and cheap: a random prefix and a counter.

use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderValue;

/// The header every response (and every upstream request) carries.
pub const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

pub struct RequestIds {
    prefix: [u8; 8],
    next: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        let mut prefix = [0u8; 8];
        let random: u32 = rand::random();
        hex_into(u64::from(random), &mut prefix);
        RequestIds {
            prefix,
            next: AtomicU64::new(1),
        }
    }
}

fn hex_into(mut n: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n & 0xf) as usize];
        n >>= 4;
    }
}

impl RequestIds {
    /// `pppppppp-cccccccccccccccc`: 25 visible ASCII bytes.
    pub fn next(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut buf = [b'-'; 25];
        buf[..8].copy_from_slice(&self.prefix);
        hex_into(n, &mut buf[9..]);
        HeaderValue::from_bytes(&buf).unwrap_or(HeaderValue::from_static("0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ_and_look_alike() {
        let ids = RequestIds::default();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        assert_eq!(a.len(), 25);
        assert!(a.to_str().expect("ascii").ends_with("0000000000000001"));
    }
}
