//! IETF `RateLimit-Policy` and `RateLimit` headers on keyed responses
//! (draft-ietf-httpapi-ratelimit-headers): one item for the throttle that applied, one for
//! the quota, e.g. `"throttle";q=50;w=1, "quota";q=1000;w=86400` and
//! `"throttle";r=49;t=1, "quota";r=993;t=41230`. Policies are built when a snapshot is
//! compiled; the per-request part is written into a stack buffer.

use std::io::{Cursor, Write as _};

use gatehouse_model::{Quota, QuotaPeriod, Throttle};
use http::{HeaderMap, HeaderName, HeaderValue};

pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Where one policy stands for this request.
#[derive(Debug, Clone)]
pub struct PolicyState {
    pub policy: HeaderValue,
    pub remaining: u64,
    /// Seconds until the policy's allowance is whole again.
    pub reset: u64,
}

/// The throttle and quota states of a keyed request; either may be absent.
#[derive(Debug, Clone, Default)]
pub struct RateHeaders {
    pub throttle: Option<PolicyState>,
    pub quota: Option<PolicyState>,
}

impl RateHeaders {
    pub fn apply(&self, headers: &mut HeaderMap) {
        if self.throttle.is_none() && self.quota.is_none() {
            return;
        }
        let items: [Option<(&str, &PolicyState)>; 2] = [
            self.throttle.as_ref().map(|s| ("throttle", s)),
            self.quota.as_ref().map(|s| ("quota", s)),
        ];
        let mut policy = [0u8; 128];
        let mut state = [0u8; 128];
        let (mut policy_out, mut state_out) =
            (Cursor::new(&mut policy[..]), Cursor::new(&mut state[..]));
        let mut first = true;
        for (name, s) in items.into_iter().flatten() {
            let sep = if first { "" } else { ", " };
            first = false;
            let _ = write!(policy_out, "{sep}");
            let _ = policy_out.write_all(s.policy.as_bytes());
            let _ = write!(state_out, "{sep}\"{name}\";r={};t={}", s.remaining, s.reset);
        }
        if first {
            return;
        }
        let (p, s) = (position(&policy_out), position(&state_out));
        if let (Ok(p), Ok(s)) = (
            HeaderValue::from_bytes(&policy[..p]),
            HeaderValue::from_bytes(&state[..s]),
        ) {
            headers.insert(RATELIMIT_POLICY, p);
            headers.insert(RATELIMIT, s);
        }
    }
}

fn position(cursor: &Cursor<&mut [u8]>) -> usize {
    usize::try_from(cursor.position()).unwrap_or(0)
}

/// `"throttle";q=<burst>;w=<seconds a full burst takes to refill>`.
pub fn throttle_policy(throttle: Throttle) -> HeaderValue {
    let window = (f64::from(throttle.burst) / throttle.rate).ceil().max(1.0) as u64;
    value(format!("\"throttle\";q={};w={window}", throttle.burst))
}

/// `"quota";q=<limit>;w=<period in seconds>` (a month counts as 30 days).
pub fn quota_policy(quota: Quota) -> HeaderValue {
    let window = match quota.period {
        QuotaPeriod::Day => 86_400,
        QuotaPeriod::Week => 604_800,
        QuotaPeriod::Month => 2_592_000,
    };
    value(format!("\"quota\";q={};w={window}", quota.limit))
}

fn value(text: String) -> HeaderValue {
    HeaderValue::try_from(text).unwrap_or(HeaderValue::from_static("\"policy\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_each_policy_that_applies() {
        let throttle = PolicyState {
            policy: throttle_policy(Throttle {
                rate: 10.0,
                burst: 20,
            }),
            remaining: 19,
            reset: 1,
        };
        let quota = PolicyState {
            policy: quota_policy(Quota {
                limit: 1000,
                period: QuotaPeriod::Day,
            }),
            remaining: 993,
            reset: 41230,
        };
        let mut headers = HeaderMap::new();
        RateHeaders {
            throttle: Some(throttle),
            quota: Some(quota.clone()),
        }
        .apply(&mut headers);
        assert_eq!(
            headers[RATELIMIT_POLICY],
            "\"throttle\";q=20;w=2, \"quota\";q=1000;w=86400"
        );
        assert_eq!(
            headers[RATELIMIT],
            "\"throttle\";r=19;t=1, \"quota\";r=993;t=41230"
        );
        let mut headers = HeaderMap::new();
        RateHeaders {
            throttle: None,
            quota: Some(quota),
        }
        .apply(&mut headers);
        assert_eq!(headers[RATELIMIT], "\"quota\";r=993;t=41230");
        let mut headers = HeaderMap::new();
        RateHeaders::default().apply(&mut headers);
        assert!(headers.is_empty());
    }
}
