//! Throttles token guessing on the admin and sync APIs: each client address may fail
//! [`MAX_FAILURES`] authentications per [`WINDOW`]; past that, its calls are answered 429
//! without a token being looked at, until the window ends.
//!
//! An attempt is counted before its token is checked and given back when the token was
//! good, so a burst of attempts sent at once is checked at most [`MAX_FAILURES`] times.
//! Memory is fixed: a table of [`SLOTS`] addresses, each address in the slot its keyed
//! hash names (a hash an outsider cannot aim at a chosen victim's slot). A newcomer takes a
//! slot over only once the slot's window has ended or its address has no failure left,
//! so a flood of other addresses cannot wipe out a guesser's count; and a newcomer is
//! never charged with the failures of the address in its slot, so nobody is locked out by
//! another's guesses.

use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed authentications one address may make per window.
pub const MAX_FAILURES: u32 = 30;
/// How long failures count.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses followed at once.
const SLOTS: usize = 4096;

#[derive(Clone, Copy)]
struct Slot {
    client: IpAddr,
    since: Instant,
    /// Failures, and attempts under way (counted as failures until they succeed).
    count: u32,
}

/// Failed authentications by client address.
pub struct AuthFailures {
    slots: Mutex<Vec<Option<Slot>>>,
    hasher: RandomState,
}

impl Default for AuthFailures {
    fn default() -> Self {
        AuthFailures {
            slots: Mutex::new(vec![None; SLOTS]),
            hasher: RandomState::new(),
        }
    }
}

/// The address as throttled: an IPv6 client is known by its /64, which one machine
/// usually holds whole.
fn key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

impl AuthFailures {
    /// Counts an attempt of `client` before its token is checked: `false` when the address
    /// used up its failures of this window (the token must then not be checked at all).
    pub fn attempt(&self, client: IpAddr) -> bool {
        self.attempt_at(key(client), Instant::now())
    }

    /// The token was good: the attempt counted by [`AuthFailures::attempt`] is given back.
    pub fn succeeded(&self, client: IpAddr) {
        let client = key(client);
        let index = self.index(client);
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots[index].as_mut().filter(|s| s.client == client) {
            slot.count = slot.count.saturating_sub(1);
        }
    }

    fn index(&self, client: IpAddr) -> usize {
        // The remainder is below SLOTS, so it fits a usize.
        (self.hasher.hash_one(client) % SLOTS as u64) as usize
    }

    fn attempt_at(&self, client: IpAddr, now: Instant) -> bool {
        let index = self.index(client);
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut slots[index];
        match slot {
            // A slot whose address failed nothing (its attempts were good) is free.
            Some(s)
                if now.duration_since(s.since) < WINDOW && (s.client == client || s.count > 0) =>
            {
                if s.client != client {
                    // Another address holds this slot for its window: the newcomer is not
                    // followed (its guesses are rare enough to share a slot with nobody).
                    return true;
                }
                if s.count >= MAX_FAILURES {
                    return false;
                }
                s.count += 1;
                true
            }
            _ => {
                *slot = Some(Slot {
                    client,
                    since: now,
                    count: 1,
                });
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn an_address_is_refused_after_its_failures_and_others_go_on() {
        let failures = AuthFailures::default();
        let now = Instant::now();
        let guesser = ip("192.0.2.1");
        for _ in 0..MAX_FAILURES {
            assert!(failures.attempt_at(guesser, now));
        }
        assert!(!failures.attempt_at(guesser, now));
        assert!(failures.attempt_at(ip("192.0.2.2"), now));
        // The window ends: the guesser may try again.
        assert!(failures.attempt_at(guesser, now + WINDOW));
    }

    #[test]
    fn good_tokens_give_their_attempt_back() {
        let failures = AuthFailures::default();
        let client = ip("192.0.2.1");
        for _ in 0..MAX_FAILURES * 3 {
            assert!(failures.attempt(client));
            failures.succeeded(client);
        }
    }

    #[test]
    fn an_ipv6_client_is_known_by_its_slash_64() {
        let failures = AuthFailures::default();
        let now = Instant::now();
        for i in 0..MAX_FAILURES {
            assert!(failures.attempt_at(key(ip(&format!("2001:db8::{i:x}"))), now));
        }
        assert!(!failures.attempt_at(key(ip("2001:db8::ffff:1")), now));
        assert!(failures.attempt_at(key(ip("2001:db8:0:1::1")), now));
    }
}
