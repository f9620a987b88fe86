//! Throttling with GCRA (the generic cell rate algorithm, a token bucket in one number):
//! each bucket is a single `AtomicU64` holding its theoretical arrival time, updated with
//! a compare-and-swap loop. No locks, O(1), 8 bytes of state per bucket.
//!
//! A bucket of rate `r` and burst `b` lets `b` requests through at once and then one every
//! `1/r` seconds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use gatehouse_model::Throttle;

/// Nanoseconds since this process first asked for the time: monotonic, fits a u64.
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Lets a log line through at most once a second, so an outage cannot flood the log.
#[derive(Debug, Default)]
pub struct EverySecond {
    /// The second (since the process's epoch, plus one) of the last line let through.
    last: AtomicU64,
}

impl EverySecond {
    pub const fn new() -> EverySecond {
        EverySecond {
            last: AtomicU64::new(0),
        }
    }

    /// True at most once per second.
    pub fn ready(&self) -> bool {
        let now = now_ns() / 1_000_000_000 + 1;
        let last = self.last.load(Ordering::Relaxed);
        now > last
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// A throttle's numbers, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Time between two requests at the sustained rate.
    interval_ns: u64,
    /// How far ahead of now the bucket may run: `burst` intervals.
    capacity_ns: u64,
    /// The throttle as configured, for the `RateLimit-Policy` header.
    pub burst: u32,
    pub per_second: f64,
}

impl Rate {
    pub fn new(throttle: Throttle) -> Rate {
        // Validated rates are within (0, 1e9], so the interval is at least 1 ns.
        let interval_ns = (1e9 / throttle.rate).round().max(1.0) as u64;
        Rate {
            interval_ns,
            capacity_ns: interval_ns.saturating_mul(u64::from(throttle.burst)),
            burst: throttle.burst,
            per_second: throttle.rate,
        }
    }
}

/// What a bucket said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Let through; `remaining` more could pass right now.
    Allowed { remaining: u64 },
    /// Refused; the next request could pass in `retry_after_ns`.
    Limited { retry_after_ns: u64 },
}

/// One bucket's state.
#[derive(Debug, Default)]
pub struct Bucket {
    tat: AtomicU64,
}

impl Bucket {
    /// A bucket that starts where `previous` was, so a config change hands out no fresh
    /// burst; but owing no more than `rate` allows, in case the throttle was raised.
    pub fn resume(previous: Option<&Bucket>, rate: Option<&Rate>, now: u64) -> Bucket {
        let tat = previous.map_or(0, |b| b.tat.load(Ordering::Relaxed));
        let cap = rate.map_or(u64::MAX, |r| now.saturating_add(r.capacity_ns));
        Bucket {
            tat: AtomicU64::new(tat.min(cap)),
        }
    }

    /// Takes one request from the bucket at time `now`, if it can.
    pub fn check(&self, rate: &Rate, now: u64) -> Decision {
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let next = tat.max(now).saturating_add(rate.interval_ns);
            let ahead = next - now;
            if ahead > rate.capacity_ns {
                return Decision::Limited {
                    retry_after_ns: ahead - rate.capacity_ns,
                };
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    return Decision::Allowed {
                        remaining: (rate.capacity_ns - ahead) / rate.interval_ns,
                    }
                }
                Err(actual) => tat = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(per_second: f64, burst: u32) -> Rate {
        Rate::new(Throttle {
            rate: per_second,
            burst,
        })
    }

    #[test]
    fn exactly_burst_requests_pass_at_once_then_one_per_interval() {
        let r = rate(10.0, 5);
        let bucket = Bucket::default();
        let t = 1_000_000_000;
        for expected_remaining in (0..5).rev() {
            assert_eq!(
                bucket.check(&r, t),
                Decision::Allowed {
                    remaining: expected_remaining
                }
            );
        }
        let Decision::Limited { retry_after_ns } = bucket.check(&r, t) else {
            panic!("sixth request passed")
        };
        assert_eq!(retry_after_ns, 100_000_000);
        assert!(matches!(
            bucket.check(&r, t + 99_000_000),
            Decision::Limited { .. }
        ));
        assert!(matches!(
            bucket.check(&r, t + 100_000_000),
            Decision::Allowed { remaining: 0 }
        ));
    }

    #[test]
    fn an_idle_bucket_refills_to_its_burst_and_no_further() {
        let r = rate(100.0, 3);
        let bucket = Bucket::default();
        for _ in 0..3 {
            assert!(matches!(bucket.check(&r, 0), Decision::Allowed { .. }));
        }
        let later = 60_000_000_000;
        assert_eq!(bucket.check(&r, later), Decision::Allowed { remaining: 2 });
    }

    #[test]
    fn concurrent_takers_never_exceed_the_burst() {
        let r = rate(1.0, 1000);
        let bucket = std::sync::Arc::new(Bucket::default());
        let now = now_ns() + 1;
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let bucket = bucket.clone();
                std::thread::spawn(move || {
                    (0..1000)
                        .filter(|_| matches!(bucket.check(&r, now), Decision::Allowed { .. }))
                        .count()
                })
            })
            .collect();
        let passed: usize = handles.into_iter().map(|h| h.join().expect("thread")).sum();
        assert_eq!(passed, 1000);
    }

    #[test]
    fn every_second_lets_one_through_per_second() {
        let gate = EverySecond::new();
        assert!(gate.ready());
        assert!(!gate.ready());
    }

    #[test]
    fn resuming_keeps_the_state_of_the_previous_bucket() {
        let r = rate(1.0, 1);
        let old = Bucket::default();
        assert!(matches!(old.check(&r, 5), Decision::Allowed { .. }));
        let new = Bucket::resume(Some(&old), Some(&r), 5);
        assert!(matches!(new.check(&r, 5), Decision::Limited { .. }));
        // Raised to 1000 a second: the old debt shrinks to what the new rate allows.
        let faster = rate(1000.0, 1);
        let raised = Bucket::resume(Some(&old), Some(&faster), 5);
        assert!(matches!(
            raised.check(&faster, 5 + 1_000_000),
            Decision::Allowed { .. }
        ));
    }
}
