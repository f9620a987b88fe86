//! Numbers and values typed in forms, checked with the model's own rules before anything
//! is sent: the admin API's request structs hold the model's checked types (a `Throttle`,
//! a `Quota`, an `Integration`), so a form builds them here. Each part is checked on its
//! own, so an error is known to belong to its field, and reads as the API would word it.

use std::collections::BTreeMap;

use gatehouse_model::{MockIntegration, Quota, QuotaPeriod, Throttle};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// `raw` read as the model reads it from the admin API's JSON, or the model's reason not to.
fn by_model<T: DeserializeOwned>(raw: &impl Serialize) -> Result<T, String> {
    serde_json::to_value(raw)
        .and_then(serde_json::from_value)
        .map_err(|e| e.to_string())
}

/// A throttle as typed: any numbers, even ones no `Throttle` holds.
#[derive(Serialize)]
struct RawThrottle {
    rate: f64,
    burst: i64,
}

/// The part of a throttle at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottlePart {
    Rate,
    Burst,
}

impl ThrottlePart {
    /// The part's name, as the model and the forms call it.
    pub fn name(self) -> &'static str {
        match self {
            ThrottlePart::Rate => "rate",
            ThrottlePart::Burst => "burst",
        }
    }
}

/// A rate of 1 per second lets every burst the model accepts refill in time, and any
/// burst of 1 refills in time at every rate but the tiniest: so each part can be judged
/// alone, and what is left (burst and rate together) is the burst's to fix.
const NEUTRAL_RATE: f64 = 1.0;
const NEUTRAL_BURST: i64 = 1;

/// `rate` and `burst` as the model's `Throttle`, or each part's errors.
pub fn throttle(rate: f64, burst: i64) -> Result<Throttle, Vec<(ThrottlePart, String)>> {
    let mut errors = Vec::new();
    let rate_alone = by_model::<Throttle>(&RawThrottle {
        rate,
        burst: NEUTRAL_BURST,
    });
    if let Err(e) = rate_alone {
        errors.push((ThrottlePart::Rate, e));
    }
    let burst_alone = by_model::<Throttle>(&RawThrottle {
        rate: NEUTRAL_RATE,
        burst,
    });
    if let Err(e) = burst_alone {
        errors.push((ThrottlePart::Burst, e));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    by_model(&RawThrottle { rate, burst }).map_err(|e| vec![(ThrottlePart::Burst, e)])
}

/// A quota as typed: any limit, even one no `Quota` holds.
#[derive(Serialize)]
struct RawQuota {
    limit: i64,
    period: QuotaPeriod,
}

/// `limit` per `period` as the model's `Quota`, or why the limit is refused (the period,
/// chosen from a list, is always one the model knows).
pub fn quota(limit: i64, period: QuotaPeriod) -> Result<Quota, String> {
    by_model(&RawQuota { limit, period })
}

/// A mock integration's headers and body as the model checks them, or the error of each
/// part: (headers, body).
pub fn mock_parts(
    headers: &BTreeMap<String, String>,
    body: &str,
) -> (Result<(), String>, Result<(), String>) {
    let headers_alone = MockIntegration {
        status: 200,
        headers: headers.clone(),
        body: String::new(),
    };
    let body_alone = MockIntegration {
        status: 200,
        headers: BTreeMap::new(),
        body: body.to_owned(),
    };
    (
        by_model::<MockIntegration>(&headers_alone).map(drop),
        by_model::<MockIntegration>(&body_alone).map(drop),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_part_of_a_throttle_is_judged_alone() {
        assert_eq!(throttle(0.5, 10).expect("valid").burst, 10);
        let errors = throttle(-1.0, 0).expect_err("both bad");
        let parts: Vec<ThrottlePart> = errors.iter().map(|(part, _)| *part).collect();
        assert_eq!(parts, [ThrottlePart::Rate, ThrottlePart::Burst]);
        assert!(errors[0].1.starts_with("rate must be above 0"));
        assert!(errors[1].1.starts_with("burst must be between 1"));
    }

    #[test]
    fn a_burst_too_slow_to_refill_is_the_bursts_to_fix() {
        let errors = throttle(1e-6, 1_000_000).expect_err("refill");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, ThrottlePart::Burst);
        assert_eq!(ThrottlePart::Burst.name(), "burst");
    }

    #[test]
    fn a_quota_limit_must_be_above_0() {
        assert_eq!(quota(10, QuotaPeriod::Day).expect("valid").limit, 10);
        assert!(quota(0, QuotaPeriod::Day).is_err());
    }

    #[test]
    fn mock_headers_and_body_are_judged_apart() {
        let bad = BTreeMap::from([("content-length".to_owned(), "1".to_owned())]);
        let (headers, body) = mock_parts(&bad, "fine");
        assert!(headers.is_err() && body.is_ok());
    }
}
