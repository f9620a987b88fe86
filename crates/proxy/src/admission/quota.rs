//! Quotas: how many requests a key may make under a plan in a day, week or month.
//!
//! Each (key, plan) has one counter in the [`QuotaLedger`], shared by every compiled
//! snapshot so a config change loses no count. A counter knows three numbers: the total the
//! control plane last reported (every proxy's use), what this proxy has sent but not yet
//! seen counted, and what it admitted since. A request passes while their sum is under the
//! limit. Without Redis, proxies learn of each other's use through the control plane, so
//! the worst-case overrun is what the other proxies admit in one report interval.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use uuid::Uuid;

/// One key's use of one plan's quota in the current period.
#[derive(Debug, Default)]
pub struct QuotaCounter {
    /// Start of the period counted, in Unix seconds.
    period_start: AtomicI64,
    /// Admitted here and not yet sent.
    local: AtomicU64,
    /// Sent, and not yet seen in a total from the control plane.
    pending: AtomicU64,
    /// The control plane's total for the period, across proxies.
    known: AtomicU64,
}

impl QuotaCounter {
    /// Moves the counter forward to the period starting at `start`, forgetting the old one.
    /// Returns false when `start` is an older period than the counter's (never move back).
    fn roll(&self, start: i64) -> bool {
        loop {
            let current = self.period_start.load(Ordering::Acquire);
            if current == start {
                return true;
            }
            if current > start {
                return false;
            }
            if self
                .period_start
                .compare_exchange(current, start, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.local.store(0, Ordering::Release);
                self.pending.store(0, Ordering::Release);
                self.known.store(0, Ordering::Release);
                return true;
            }
        }
    }

    /// Takes one request of the period starting at `start`, if the quota has room.
    pub fn try_take(&self, start: i64, limit: u64) -> bool {
        if !self.roll(start) {
            // A request dated in a period already over (clock steps): count it as the new one.
            return self.try_take(self.period_start.load(Ordering::Acquire), limit);
        }
        let taken = self.local.fetch_add(1, Ordering::AcqRel) + 1;
        let used =
            self.known.load(Ordering::Acquire) + self.pending.load(Ordering::Acquire) + taken;
        if used > limit {
            self.local.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Counts one request admitted by the shared (Redis) count, for the control plane.
    pub fn record(&self, start: i64) {
        let _ = self.roll(start);
        self.local.fetch_add(1, Ordering::AcqRel);
    }

    /// Moves what was admitted since the last report into `pending`; returns it with the
    /// period it belongs to.
    pub fn drain(&self) -> (i64, u64) {
        let start = self.period_start.load(Ordering::Acquire);
        let delta = self.local.swap(0, Ordering::AcqRel);
        self.pending.fetch_add(delta, Ordering::AcqRel);
        (start, delta)
    }

    /// The control plane counted `delta` of ours, sent for the period starting at `start`.
    pub fn settle(&self, start: i64, delta: u64) {
        if self.period_start.load(Ordering::Acquire) == start {
            let _ = self
                .pending
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                    Some(p.saturating_sub(delta))
                });
        }
    }

    /// The control plane's total for the period starting at `start`; totals of periods
    /// older than the counter's are ignored.
    pub fn learn(&self, start: i64, total: u64) {
        if self.roll(start) {
            self.known.fetch_max(total, Ordering::AcqRel);
        }
    }

    /// Start of the period counted, in Unix seconds.
    pub fn period_start(&self) -> i64 {
        self.period_start.load(Ordering::Acquire)
    }

    /// Everything counted against the quota in the current period.
    pub fn used(&self) -> u64 {
        self.known.load(Ordering::Acquire)
            + self.pending.load(Ordering::Acquire)
            + self.local.load(Ordering::Acquire)
    }
}

/// Every quota counter, by (key, plan). Locked only when a snapshot is compiled and when
/// usage is reported, never by a request.
#[derive(Debug, Default)]
pub struct QuotaLedger {
    counters: Mutex<HashMap<(Uuid, Uuid), Arc<QuotaCounter>>>,
}

impl QuotaLedger {
    /// The counter of `key` under `plan`, created if new.
    pub fn counter(&self, key: Uuid, plan: Uuid) -> Arc<QuotaCounter> {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        counters.entry((key, plan)).or_default().clone()
    }

    /// Forgets counters of keys and plans no longer deployed once their period is over
    /// (longest: a month), so a key disabled and enabled again keeps its count.
    pub fn retain(&self, live: &std::collections::HashSet<(Uuid, Uuid)>, now_unix: i64) {
        let month_ago = now_unix - 32 * 86_400;
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        counters.retain(|id, c| {
            live.contains(id)
                || c.local.load(Ordering::Acquire) > 0
                || c.period_start.load(Ordering::Acquire) >= month_ago
        });
    }

    /// A copy of the counter list, to report from without holding the lock.
    pub fn all(&self) -> Vec<((Uuid, Uuid), Arc<QuotaCounter>)> {
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        counters.iter().map(|(id, c)| (*id, c.clone())).collect()
    }

    pub fn get(&self, key: Uuid, plan: Uuid) -> Option<Arc<QuotaCounter>> {
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        counters.get(&(key, plan)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_counting_what_others_used() {
        let c = QuotaCounter::default();
        c.learn(100, 3);
        assert!(c.try_take(100, 5));
        assert!(c.try_take(100, 5));
        assert!(!c.try_take(100, 5));
        assert_eq!(c.used(), 5);
    }

    #[test]
    fn a_report_in_flight_still_counts_until_the_total_includes_it() {
        let c = QuotaCounter::default();
        for _ in 0..4 {
            assert!(c.try_take(0, 4));
        }
        assert_eq!(c.drain(), (0, 4));
        assert!(!c.try_take(0, 4), "sent but unconfirmed use was forgotten");
        c.learn(0, 4);
        c.settle(0, 4);
        assert_eq!(c.used(), 4);
        assert!(!c.try_take(0, 4));
    }

    #[test]
    fn totals_of_an_older_period_change_nothing() {
        let c = QuotaCounter::default();
        assert!(c.try_take(86_400, 10));
        c.learn(0, 1_000);
        c.settle(0, 5);
        assert_eq!(c.period_start(), 86_400);
        assert_eq!(c.used(), 1);
    }

    #[test]
    fn a_key_is_listed_once_per_interval() {
        let uses = KeyUse::default();
        let used_in = std::sync::atomic::AtomicU32::new(u32::MAX);
        let id = Uuid::nil();
        uses.note(id, &used_in);
        uses.note(id, &used_in);
        assert_eq!(uses.take(), vec![id]);
        assert!(uses.take().is_empty());
        uses.note(id, &used_in);
        assert_eq!(uses.take(), vec![id]);
    }

    #[test]
    fn a_new_period_starts_from_zero() {
        let c = QuotaCounter::default();
        assert!(c.try_take(0, 1));
        assert!(!c.try_take(0, 1));
        assert!(c.try_take(86_400, 1));
    }
}

/// Which keys were used in the current report interval, for their `last_used_at`. A
/// request costs one atomic load in the common case: a key is listed the first time it is
/// seen in an interval, and the interval number moves on at each report, so no flag ever
/// needs clearing and no report scans every key.
#[derive(Debug, Default)]
pub struct KeyUse {
    interval: std::sync::atomic::AtomicU32,
    used: Mutex<Vec<Uuid>>,
}

impl KeyUse {
    /// Notes that the key `id`, whose last interval of use is `used_in`, made a request.
    pub fn note(&self, id: Uuid, used_in: &std::sync::atomic::AtomicU32) {
        let now = self.interval.load(Ordering::Relaxed);
        if used_in.load(Ordering::Relaxed) != now && used_in.swap(now, Ordering::Relaxed) != now {
            self.used.lock().unwrap_or_else(|e| e.into_inner()).push(id);
        }
    }

    /// The keys used since the last call; starts a new interval.
    pub fn take(&self) -> Vec<Uuid> {
        self.interval.fetch_add(1, Ordering::Relaxed);
        std::mem::take(&mut *self.used.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
