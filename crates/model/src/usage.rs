//! API keys and usage plans as the proxy enforces them: throttles, quotas, which API
//! stages a plan covers, and which keys belong to which plans.
//!
//! Keys travel only as SHA-256 hashes. A key holds at least 160 random bits, so a fast
//! hash is as safe as a slow one here, and it lets the proxy find a key in O(1).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Days, Months, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::names::StageName;

/// Longest API key accepted, as AWS.
pub const MAX_KEY_LEN: usize = 128;
/// Shortest API key accepted (imported keys), as AWS.
pub const MIN_KEY_LEN: usize = 20;
/// Longest time a full burst may take to refill, in seconds (keeps bucket arithmetic
/// in range).
pub const MAX_REFILL_SECS: f64 = 1e9;
/// Highest throttle rate accepted, per second.
pub const MAX_RATE: f64 = 1_000_000_000.0;

/// True for a syntactically valid key: 20 to 128 characters among letters, digits and
/// `-_.~`. Checked before hashing, so odd header values are refused cheaply.
pub fn is_valid_key(value: &[u8]) -> bool {
    (MIN_KEY_LEN..=MAX_KEY_LEN).contains(&value.len())
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(b))
}

/// The stored and transmitted form of a key.
pub fn hash_key(value: &[u8]) -> [u8; 32] {
    Sha256::digest(value).into()
}

/// A token bucket: `rate` requests per second on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "RawThrottle")]
pub struct Throttle {
    /// Requests per second; `burst / rate` is at most 1e9 seconds.
    #[schema(exclusive_minimum = 0, maximum = 1_000_000_000)]
    pub rate: f64,
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub burst: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThrottle {
    rate: f64,
    burst: i64,
}

impl TryFrom<RawThrottle> for Throttle {
    type Error = String;
    fn try_from(raw: RawThrottle) -> Result<Self, Self::Error> {
        if !(raw.rate.is_finite() && raw.rate > 0.0 && raw.rate <= MAX_RATE) {
            return Err(format!("rate must be above 0 and at most {MAX_RATE}"));
        }
        let burst = u32::try_from(raw.burst)
            .ok()
            .filter(|b| (1..=1_000_000_000).contains(b))
            .ok_or("burst must be between 1 and 1000000000")?;
        if f64::from(burst) / raw.rate > MAX_REFILL_SECS {
            return Err(format!("burst / rate must be at most {MAX_REFILL_SECS} seconds (a full burst refills within 30 years)"));
        }
        Ok(Throttle {
            rate: raw.rate,
            burst,
        })
    }
}

/// The period a quota counts over. Periods start at midnight UTC; weeks on Monday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum QuotaPeriod {
    Day,
    Week,
    Month,
}

impl QuotaPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaPeriod::Day => "DAY",
            QuotaPeriod::Week => "WEEK",
            QuotaPeriod::Month => "MONTH",
        }
    }

    pub fn parse(s: &str) -> Option<QuotaPeriod> {
        match s {
            "DAY" => Some(QuotaPeriod::Day),
            "WEEK" => Some(QuotaPeriod::Week),
            "MONTH" => Some(QuotaPeriod::Month),
            _ => None,
        }
    }

    /// The period containing `at`: its start and its end (exclusive), in UTC.
    pub fn bounds(self, at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let day = at.date_naive();
        let (start, end) = match self {
            QuotaPeriod::Day => (day, day + Days::new(1)),
            QuotaPeriod::Week => {
                let monday = day - Days::new(u64::from(day.weekday().num_days_from_monday()));
                (monday, monday + Days::new(7))
            }
            QuotaPeriod::Month => {
                let first = day.with_day(1).unwrap_or(day);
                (first, first + Months::new(1))
            }
        };
        (
            start.and_time(NaiveTime::MIN).and_utc(),
            end.and_time(NaiveTime::MIN).and_utc(),
        )
    }
}

/// At most `limit` requests per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "RawQuota")]
pub struct Quota {
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub limit: u64,
    pub period: QuotaPeriod,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuota {
    limit: i64,
    period: QuotaPeriod,
}

impl TryFrom<RawQuota> for Quota {
    type Error = String;
    fn try_from(raw: RawQuota) -> Result<Self, Self::Error> {
        let limit = u64::try_from(raw.limit)
            .ok()
            .filter(|l| *l > 0)
            .ok_or("limit must be above 0")?;
        Ok(Quota {
            limit,
            period: raw.period,
        })
    }
}

/// An API stage a plan covers, with throttles for particular routes of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlanStage {
    pub api_id: Uuid,
    pub stage: StageName,
    /// Route key -> throttle, overriding the plan's for that route.
    #[serde(default)]
    pub route_throttles: BTreeMap<String, Throttle>,
}

/// A usage plan as the proxy needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployedPlan {
    pub id: Uuid,
    pub throttle: Option<Throttle>,
    pub quota: Option<Quota>,
    pub stages: Vec<PlanStage>,
}

/// An enabled key: its hash (hex) and the plans it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployedKey {
    pub id: Uuid,
    pub hash: String,
    #[serde(default)]
    pub plans: Vec<Uuid>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_at_midnight_utc_on_mondays_and_firsts() {
        let at: DateTime<Utc> = "2026-11-26T15:30:00Z".parse().expect("time");
        let (s, e) = QuotaPeriod::Day.bounds(at);
        assert_eq!(
            (s.to_rfc3339(), e.to_rfc3339()),
            (
                "2026-11-26T00:00:00+00:00".into(),
                "2026-11-27T00:00:00+00:00".into()
            )
        );
        let (s, e) = QuotaPeriod::Week.bounds(at);
        assert_eq!(
            (s.to_rfc3339(), e.to_rfc3339()),
            (
                "2026-11-23T00:00:00+00:00".into(),
                "2026-11-30T00:00:00+00:00".into()
            )
        );
        let (s, e) = QuotaPeriod::Month.bounds("2026-12-31T23:59:59Z".parse().expect("time"));
        assert_eq!(
            (s.to_rfc3339(), e.to_rfc3339()),
            (
                "2026-12-01T00:00:00+00:00".into(),
                "2027-01-01T00:00:00+00:00".into()
            )
        );
    }

    #[test]
    fn keys_are_20_to_128_url_safe_characters() {
        assert!(is_valid_key(b"abcdefghijklmnopqrst"));
        assert!(is_valid_key(&[b'a'; 128]));
        for bad in [
            &b"short"[..],
            &[b'a'; 129],
            b"abcdefghijklmnopqrs t",
            b"abcdefghijklmnopqrst\n",
            "ключ-ключ-ключ-ключ-ключ".as_bytes(),
        ] {
            assert!(!is_valid_key(bad), "{bad:?}");
        }
    }

    #[test]
    fn throttles_and_quotas_refuse_zero_negative_and_unknown_values() {
        assert!(serde_json::from_str::<Throttle>(r#"{"rate":10,"burst":20}"#).is_ok());
        assert!(serde_json::from_str::<Throttle>(r#"{"rate":0.5,"burst":1}"#).is_ok());
        for bad in [
            r#"{"rate":1e-11,"burst":1}"#,
            r#"{"rate":0.0001,"burst":2000000}"#,
            r#"{"rate":0,"burst":1}"#,
            r#"{"rate":-1,"burst":1}"#,
            r#"{"rate":1,"burst":0}"#,
            r#"{"rate":1,"burst":-5}"#,
            r#"{"rate":1}"#,
        ] {
            assert!(serde_json::from_str::<Throttle>(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Quota>(r#"{"limit":100,"period":"WEEK"}"#).is_ok());
        for bad in [
            r#"{"limit":0,"period":"DAY"}"#,
            r#"{"limit":-1,"period":"DAY"}"#,
            r#"{"limit":1,"period":"YEAR"}"#,
            r#"{"limit":1,"period":"day"}"#,
        ] {
            assert!(serde_json::from_str::<Quota>(bad).is_err(), "{bad}");
        }
    }
}

/// Requests a proxy admitted under quota since its last report: one entry per key, plan and
/// period. The batch id makes a retried report count once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    pub batch_id: Uuid,
    pub entries: Vec<UsageEntry>,
    /// Keys that made a request since the last report (for `last_used_at`), quota or not.
    #[serde(default)]
    pub used_keys: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEntry {
    pub key_id: Uuid,
    pub plan_id: Uuid,
    pub period_start: DateTime<Utc>,
    pub count: u64,
}

/// The control plane's count of a key's use of a plan in a period, across every proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsageTotal {
    pub key_id: Uuid,
    pub plan_id: Uuid,
    pub period_start: DateTime<Utc>,
    pub used: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageTotals {
    pub totals: Vec<UsageTotal>,
}
