//! Traffic metrics as proxies report them and the control plane stores them: per-minute
//! counts, bytes and latency histograms for each route (and each API key).
//!
//! Latencies go into fixed log-scale buckets (four per power of two of microseconds), so
//! histograms from any number of proxies and minutes merge exactly by adding counts, and
//! percentiles come from the merged counts, never from averaging percentiles.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Buckets below this many microseconds are one microsecond wide.
const LINEAR: u64 = 8;
/// Buckets per power of two above [`LINEAR`].
const PER_OCTAVE: usize = 4;
/// How many buckets a histogram has: 0 µs up to 2^32 µs (71 minutes); longer latencies
/// count in the last bucket.
pub const HISTOGRAM_BUCKETS: usize = 8 + (32 - 3) * PER_OCTAVE;

/// The bucket a latency of `micros` falls in.
pub fn bucket_index(micros: u64) -> usize {
    if micros < LINEAR {
        return micros as usize;
    }
    let octave = 63 - micros.leading_zeros() as usize; // 3 and up
    let sub = ((micros >> (octave - 2)) & 3) as usize;
    (LINEAR as usize + (octave - 3) * PER_OCTAVE + sub).min(HISTOGRAM_BUCKETS - 1)
}

/// The range of bucket `index`, in microseconds: from `lower` (included) to `upper`
/// (excluded).
pub fn bucket_bounds(index: usize) -> (u64, u64) {
    if index < LINEAR as usize {
        return (index as u64, index as u64 + 1);
    }
    let octave = (index - LINEAR as usize) / PER_OCTAVE + 3;
    let sub = ((index - LINEAR as usize) % PER_OCTAVE) as u64;
    let width = 1u64 << (octave - 2);
    let lower = (4 + sub) * width;
    (lower, lower + width)
}

/// Counts of latencies per bucket. Trailing empty buckets are not kept, so a histogram
/// of fast requests is short on the wire and in the database.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Histogram {
    counts: Vec<u64>,
}

/// Refuses more than [`HISTOGRAM_BUCKETS`] counts while reading, so an oversized array
/// costs no memory.
impl<'de> Deserialize<'de> for Histogram {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Counts;
        impl<'de> serde::de::Visitor<'de> for Counts {
            type Value = Histogram;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "at most {HISTOGRAM_BUCKETS} bucket counts")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Histogram, A::Error> {
                let mut counts =
                    Vec::with_capacity(seq.size_hint().unwrap_or(0).min(HISTOGRAM_BUCKETS));
                while let Some(count) = seq.next_element::<u64>()? {
                    if counts.len() == HISTOGRAM_BUCKETS {
                        return Err(serde::de::Error::invalid_length(counts.len() + 1, &self));
                    }
                    counts.push(count);
                }
                Histogram::from_counts(counts)
                    .ok_or_else(|| serde::de::Error::custom("too many buckets"))
            }
        }
        deserializer.deserialize_seq(Counts)
    }
}

impl Histogram {
    /// A histogram of these bucket counts; `None` when there are more than
    /// [`HISTOGRAM_BUCKETS`].
    pub fn from_counts(mut counts: Vec<u64>) -> Option<Histogram> {
        if counts.len() > HISTOGRAM_BUCKETS {
            return None;
        }
        while counts.last() == Some(&0) {
            counts.pop();
        }
        Some(Histogram { counts })
    }

    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    pub fn is_valid(&self) -> bool {
        self.counts.len() <= HISTOGRAM_BUCKETS
    }

    pub fn record(&mut self, micros: u64) {
        self.add_to_bucket(bucket_index(micros), 1);
    }

    /// Adds `count` latencies to bucket `index` (clamped to the last bucket).
    pub fn add_to_bucket(&mut self, index: usize, count: u64) {
        if count == 0 {
            return;
        }
        let index = index.min(HISTOGRAM_BUCKETS - 1);
        if self.counts.len() <= index {
            self.counts.resize(index + 1, 0);
        }
        self.counts[index] = self.counts[index].saturating_add(count);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (index, &count) in other.counts.iter().enumerate() {
            self.add_to_bucket(index, count);
        }
    }

    /// How many latencies were recorded.
    pub fn total(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, &c| a.saturating_add(c))
    }

    /// What was added since `earlier`, a previous reading of the same growing counts.
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let counts = self
            .counts
            .iter()
            .enumerate()
            .map(|(i, c)| c.saturating_sub(earlier.counts.get(i).copied().unwrap_or(0)))
            .collect();
        let mut since = Histogram { counts };
        while since.counts.last() == Some(&0) {
            since.counts.pop();
        }
        since
    }
}

/// Latencies of a set of requests: their histogram, sum and extremes, in microseconds.
/// `min_us` and `max_us` mean nothing while the histogram is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    pub buckets: Histogram,
    pub sum_us: u64,
    pub min_us: u64,
    pub max_us: u64,
}

impl Latency {
    pub fn count(&self) -> u64 {
        self.buckets.total()
    }

    pub fn record(&mut self, micros: u64) {
        let micros = micros.min(MAX_LATENCY_US);
        self.min_us = if self.count() == 0 {
            micros
        } else {
            self.min_us.min(micros)
        };
        self.max_us = self.max_us.max(micros);
        self.buckets.record(micros);
        self.sum_us = self.sum_us.saturating_add(micros);
    }

    pub fn merge(&mut self, other: &Latency) {
        if other.count() == 0 {
            return;
        }
        if self.count() == 0 {
            self.min_us = other.min_us;
        }
        self.min_us = self.min_us.min(other.min_us);
        self.max_us = self.max_us.max(other.max_us);
        self.buckets.merge(&other.buckets);
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }

    /// The latency below which a fraction `q` of the recorded ones fall, in microseconds,
    /// interpolated within its bucket, narrowed to the smallest and largest recorded.
    /// `None` when nothing was recorded.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
        // The rank of the wanted latency, 1-based: the ceil(q * total)-th smallest.
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut below = 0u64;
        for (index, &count) in self.buckets.counts().iter().enumerate() {
            if count == 0 {
                continue;
            }
            if below + count >= rank {
                let (lower, upper) = bucket_bounds(index);
                let lower = lower.max(self.min_us).min(self.max_us) as f64;
                let upper = upper.min(self.max_us).max(self.min_us) as f64;
                let within = (rank - below) as f64 / count as f64;
                return Some(lower + within * (upper - lower).max(0.0));
            }
            below += count;
        }
        Some(self.max_us as f64)
    }

    /// What was added since `earlier`, a previous reading of the same growing counts;
    /// the extremes are this reading's.
    pub fn since(&self, earlier: &Latency) -> Latency {
        Latency {
            buckets: self.buckets.since(&earlier.buckets),
            sum_us: self.sum_us.saturating_sub(earlier.sum_us),
            min_us: self.min_us,
            max_us: self.max_us,
        }
    }

    /// Makes the extremes agree with the buckets when they were read while requests were
    /// being recorded: a minimum or maximum outside the first or last non-empty bucket is
    /// moved to that bucket's edge.
    pub fn repair(&mut self) {
        let counts = self.buckets.counts();
        let (Some(first), Some(last)) = (
            counts.iter().position(|&c| c > 0),
            counts.iter().rposition(|&c| c > 0),
        ) else {
            return;
        };
        let (first_lower, first_upper) = bucket_bounds(first);
        let (last_lower, last_upper) = bucket_bounds(last);
        if !(first_lower..first_upper).contains(&self.min_us) {
            self.min_us = first_lower;
        }
        if !(last_lower..last_upper).contains(&self.max_us) {
            self.max_us = last_upper - 1;
        }
    }

    /// The mean, when anything was recorded.
    pub fn mean(&self) -> Option<f64> {
        let total = self.count();
        (total > 0).then(|| self.sum_us as f64 / total as f64)
    }
}

/// What a set of requests added up to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// Requests answered (every status).
    pub count: u64,
    pub errors_4xx: u64,
    pub errors_5xx: u64,
    /// Request body bytes received.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// From receiving each request to the last byte of its response.
    pub latency: Latency,
    /// From sending a request upstream to receiving the response headers, for the
    /// requests that reached an integration.
    pub integration: Latency,
}

/// The most requests one entry may count: a million a second for a minute, a thousand
/// times over. More is not a real report.
pub const MAX_ENTRY_COUNT: u64 = 60_000_000_000;
/// The longest latency counted, in microseconds (71 minutes); longer ones count as this.
pub const MAX_LATENCY_US: u64 = 1 << 32;
/// The most bytes one request may account for, either way: 1 TiB.
pub const MAX_BYTES_PER_REQUEST: u64 = 1 << 40;

impl Traffic {
    pub fn merge(&mut self, other: &Traffic) {
        self.count = self.count.saturating_add(other.count);
        self.errors_4xx = self.errors_4xx.saturating_add(other.errors_4xx);
        self.errors_5xx = self.errors_5xx.saturating_add(other.errors_5xx);
        self.bytes_in = self.bytes_in.saturating_add(other.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(other.bytes_out);
        self.latency.merge(&other.latency);
        self.integration.merge(&other.integration);
    }

    /// What was added since `earlier`, a previous reading of the same growing counts.
    pub fn since(&self, earlier: &Traffic) -> Traffic {
        Traffic {
            count: self.count.saturating_sub(earlier.count),
            errors_4xx: self.errors_4xx.saturating_sub(earlier.errors_4xx),
            errors_5xx: self.errors_5xx.saturating_sub(earlier.errors_5xx),
            bytes_in: self.bytes_in.saturating_sub(earlier.bytes_in),
            bytes_out: self.bytes_out.saturating_sub(earlier.bytes_out),
            latency: self.latency.since(&earlier.latency),
            integration: self.integration.since(&earlier.integration),
        }
    }

    /// Adds one request.
    pub fn record(&mut self, status: u16, latency_us: u64, integration_us: Option<u64>) {
        self.count += 1;
        match status {
            400..=499 => self.errors_4xx += 1,
            500..=599 => self.errors_5xx += 1,
            _ => {}
        }
        self.latency.record(latency_us);
        if let Some(us) = integration_us {
            self.integration.record(us);
        }
    }

    /// Brings extremes read mid-update back into the buckets (see [`Latency::repair`]).
    pub fn repair(&mut self) {
        self.latency.repair();
        self.integration.repair();
    }

    /// True when nothing at all was counted.
    pub fn is_empty(&self) -> bool {
        self.count == 0 && self.latency.count() == 0 && self.integration.count() == 0
    }

    /// Why these numbers cannot be true, if they cannot.
    pub fn implausible(&self) -> Option<&'static str> {
        if self.is_empty() {
            return Some("nothing counted");
        }
        if self.count > MAX_ENTRY_COUNT
            || self.latency.count() > MAX_ENTRY_COUNT
            || self.integration.count() > MAX_ENTRY_COUNT
        {
            return Some("counts beyond any real minute");
        }
        if self.errors_4xx.saturating_add(self.errors_5xx) > self.count {
            return Some("more errors than requests");
        }
        if !self.latency.buckets.is_valid() || !self.integration.buckets.is_valid() {
            return Some("a histogram has too many buckets");
        }
        // Histograms are not held to the count: a proxy reads its counters one after
        // another while requests finish, so an interval can hold a few latencies of
        // requests counted in the next one, or the other way round.
        // Bounded so that sums of many entries stay far from overflowing 64 bits.
        let requests = self.count.max(self.latency.count()).max(1);
        let bytes = requests.saturating_mul(MAX_BYTES_PER_REQUEST);
        if self.bytes_in > bytes || self.bytes_out > bytes {
            return Some("more bytes than any request carries");
        }
        let micros = requests.saturating_mul(MAX_LATENCY_US);
        if self.latency.sum_us > micros || self.integration.sum_us > micros {
            return Some("latencies beyond any request");
        }
        None
    }
}

/// One route's (or one key's) traffic in one minute, as a proxy saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficEntry {
    /// Start of the minute.
    pub minute: DateTime<Utc>,
    pub api_id: Uuid,
    pub stage: String,
    /// The route that answered; `None` for requests to the stage that no route matched.
    pub route_id: Option<Uuid>,
    /// Set on the entries that count one API key's requests to the stage (whatever the
    /// route); the same requests are also in their route's entry.
    pub key_id: Option<Uuid>,
    #[serde(flatten)]
    pub traffic: Traffic,
}

/// What a proxy sends: a batch id (a batch sent twice is counted once) and its entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsReport {
    pub batch_id: Uuid,
    pub entries: Vec<TrafficEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_latency_in_order() {
        let mut previous_upper = 0;
        for index in 0..HISTOGRAM_BUCKETS {
            let (lower, upper) = bucket_bounds(index);
            assert_eq!(
                lower, previous_upper,
                "bucket {index} starts where the last ended"
            );
            assert!(upper > lower);
            assert_eq!(bucket_index(lower), index);
            assert_eq!(bucket_index(upper - 1), index);
            previous_upper = upper;
        }
        assert_eq!(previous_upper, 1 << 32);
        assert_eq!(bucket_index(u64::MAX), HISTOGRAM_BUCKETS - 1);
    }

    #[test]
    fn buckets_are_at_most_a_quarter_wide() {
        for index in LINEAR as usize..HISTOGRAM_BUCKETS {
            let (lower, upper) = bucket_bounds(index);
            assert!(
                (upper - lower) * 4 <= lower,
                "bucket {index}: {lower}..{upper}"
            );
        }
    }

    #[test]
    fn quantiles_come_from_merged_counts() {
        let mut fast = Latency::default();
        let mut slow = Latency::default();
        for _ in 0..90 {
            fast.record(1_000);
        }
        for _ in 0..10 {
            slow.record(100_000);
        }
        fast.merge(&slow);
        assert_eq!(fast.count(), 100);
        assert_eq!((fast.min_us, fast.max_us), (1_000, 100_000));
        let p50 = fast.quantile(0.5).expect("p50");
        assert!((896.0..=1_024.0).contains(&p50), "{p50}");
        let p99 = fast.quantile(0.99).expect("p99");
        assert!((98_304.0..=100_000.0).contains(&p99), "{p99}");
        assert_eq!(fast.quantile(1.0), Some(100_000.0));
        assert_eq!(Latency::default().quantile(0.5), None);
    }

    #[test]
    fn quantiles_stay_between_the_smallest_and_largest_recorded() {
        let mut l = Latency::default();
        for us in [301_000, 302_000] {
            l.record(us);
        }
        let p50 = l.quantile(0.5).expect("p50");
        assert!((301_000.0..=302_000.0).contains(&p50), "{p50}");
        assert_eq!(l.mean(), Some(301_500.0));
        let mut spread = Latency::default();
        for us in (1..=1000).map(|i| i * 1000) {
            spread.record(us);
        }
        let p90 = spread.quantile(0.9).expect("p90");
        assert!((900_000.0 * 0.8..=900_000.0 * 1.25).contains(&p90), "{p90}");
    }

    #[test]
    fn extremes_read_mid_update_are_moved_into_the_buckets() {
        let mut l = Latency::default();
        l.record(1_000);
        l.record(1_010);
        l.min_us = 5_000;
        l.max_us = 0;
        l.repair();
        assert_eq!((l.min_us, l.max_us), (896, 1_023));
        let mut fine = Latency::default();
        fine.record(1_000);
        fine.repair();
        assert_eq!((fine.min_us, fine.max_us), (1_000, 1_000));
    }

    #[test]
    fn an_oversized_histogram_is_refused_while_reading() {
        let too_many = serde_json::to_string(&vec![1u64; HISTOGRAM_BUCKETS + 1]).expect("json");
        assert!(serde_json::from_str::<Histogram>(&too_many).is_err());
        let h: Histogram = serde_json::from_str("[1,0,2,0]").expect("valid");
        assert_eq!(h.counts(), &[1, 0, 2]);
    }

    #[test]
    fn trailing_empty_buckets_are_dropped() {
        let h = Histogram::from_counts(vec![1, 0, 2, 0, 0]).expect("valid");
        assert_eq!(h.counts(), &[1, 0, 2]);
        assert!(Histogram::from_counts(vec![0; HISTOGRAM_BUCKETS + 1]).is_none());
    }

    #[test]
    fn implausible_traffic_is_named() {
        let mut t = Traffic {
            count: 2,
            errors_4xx: 2,
            errors_5xx: 1,
            ..Traffic::default()
        };
        assert_eq!(t.implausible(), Some("more errors than requests"));
        assert_eq!(Traffic::default().implausible(), Some("nothing counted"));
        t.errors_5xx = 0;
        t.latency.record(5);
        t.latency.record(7);
        assert_eq!(t.implausible(), None);
        t.bytes_out = 2 * MAX_BYTES_PER_REQUEST + 1;
        assert_eq!(t.implausible(), Some("more bytes than any request carries"));
        t.bytes_out = 0;
        let json = serde_json::to_value(&t).expect("serializes");
        assert_eq!(
            json["latency"],
            serde_json::json!({"buckets": [0, 0, 0, 0, 0, 1, 0, 1], "sum_us": 12, "min_us": 5, "max_us": 7})
        );
    }
}
