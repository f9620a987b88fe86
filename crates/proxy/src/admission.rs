//! Who may pass: the API key check (`x-api-key`, by hash, in O(1)) and the throttles
//! (the key's plan, or its route throttle, then the stage's), each a lock-free bucket.
//! Keyed responses say where they stand in IETF `RateLimit` / `RateLimit-Policy` headers.

use std::io::Write as _;

use std::sync::Arc;

use chrono::Utc;
use gatehouse_model::usage::{hash_key, is_valid_key};
use http::{HeaderMap, HeaderName, HeaderValue, Response};

use crate::compiled::{CompiledConfig, CompiledRoute, CompiledStage};
use crate::errors::{ProxyBody, Reject};
use crate::limiter::{Decision, Rate};
use crate::quota::QuotaCounter;
use uuid::Uuid;

pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Headers describing a keyed request's throttle, added to its response.
#[derive(Debug)]
pub struct RateHeaders {
    policy: HeaderValue,
    state: HeaderValue,
}

impl RateHeaders {
    pub fn apply(self, headers: &mut HeaderMap) {
        headers.insert(RATELIMIT_POLICY, self.policy);
        headers.insert(RATELIMIT, self.state);
    }
}

/// Why a request was turned away.
#[derive(Debug)]
pub enum Refusal {
    /// No valid key, or none whose plan covers this stage.
    Forbidden,
    /// Over a throttle; with the key's rate headers when its plan's throttle said no.
    Throttled {
        retry_after_ns: u64,
        rate_headers: Option<RateHeaders>,
    },
    /// The key's quota for the period is used up.
    QuotaExceeded { retry_after_secs: u64 },
}

impl Refusal {
    /// 403, or 429 with `Retry-After` in whole seconds (at least 1).
    pub fn response(self) -> Response<ProxyBody> {
        match self {
            Refusal::Forbidden => Reject::Forbidden.response(),
            Refusal::QuotaExceeded { retry_after_secs } => {
                let mut response = Reject::LimitExceeded.response();
                response.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs),
                );
                response
            }
            Refusal::Throttled {
                retry_after_ns,
                rate_headers,
            } => {
                let mut response = Reject::TooManyRequests.response();
                let seconds = retry_after_ns.div_ceil(1_000_000_000).max(1);
                response
                    .headers_mut()
                    .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
                if let Some(rate) = rate_headers {
                    rate.apply(response.headers_mut());
                }
                response
            }
        }
    }
}

/// A request let through so far: the rate headers of a keyed request whose plan
/// throttles, and the quota still to take from the shared counter (Redis) when one is used.
#[derive(Debug, Default)]
pub struct Admitted {
    pub rate_headers: Option<RateHeaders>,
    pub shared_quota: Option<SharedQuota>,
}

/// A quota to take from the counter all proxies share; done after the snapshot is let go,
/// since it waits on the network.
#[derive(Debug)]
pub struct SharedQuota {
    pub key_id: Uuid,
    pub plan_id: Uuid,
    pub limit: u64,
    pub period_start: i64,
    pub period_end: i64,
    pub counter: Arc<QuotaCounter>,
}

impl SharedQuota {
    /// 429 `Limit Exceeded` until the period ends.
    pub fn exceeded(&self) -> Refusal {
        let now = Utc::now().timestamp();
        Refusal::QuotaExceeded {
            retry_after_secs: u64::try_from(self.period_end - now).unwrap_or(1).max(1),
        }
    }
}

/// Checks the API key (when the route requires one), the throttles, and the quota: here
/// when counted locally, or handed back as [`SharedQuota`] when `shared_quotas` is set.
pub fn admit(
    config: &CompiledConfig,
    stage: &CompiledStage,
    route: &CompiledRoute,
    headers: &HeaderMap,
    now: u64,
    shared_quotas: bool,
) -> Result<Admitted, Refusal> {
    let admitted = if route.api_key_required {
        admit_key(config, stage, route, headers, now, shared_quotas)?
    } else {
        Admitted::default()
    };
    if let Decision::Limited { retry_after_ns } = stage.bucket.check(&stage.rate, now) {
        return Err(Refusal::Throttled {
            retry_after_ns,
            rate_headers: None,
        });
    }
    Ok(admitted)
}

fn admit_key(
    config: &CompiledConfig,
    stage: &CompiledStage,
    route: &CompiledRoute,
    headers: &HeaderMap,
    now: u64,
    shared_quotas: bool,
) -> Result<Admitted, Refusal> {
    let forbidden = || Refusal::Forbidden;
    let value = headers
        .get(X_API_KEY)
        .map(HeaderValue::as_bytes)
        .filter(|v| is_valid_key(v))
        .ok_or_else(forbidden)?;
    let key = config.key(&hash_key(value)).ok_or_else(forbidden)?;
    let membership = key
        .memberships
        .iter()
        .find(|m| stage.plans.contains(&m.plan))
        .ok_or_else(forbidden)?;
    let plan = &config.plans[membership.plan as usize];
    let (rate, policy, bucket) = match stage
        .overrides
        .iter()
        .find(|o| o.plan == membership.plan && o.route == route.index)
    {
        Some(o) => (
            Some(o.rate),
            Some(&o.policy_header),
            membership.buckets.get(o.slot as usize),
        ),
        None => (
            plan.rate,
            plan.policy_header.as_ref(),
            membership.buckets.first(),
        ),
    };
    let rate_headers = match (rate, policy, bucket) {
        (Some(rate), Some(policy), Some(bucket)) => match bucket.check(&rate, now) {
            Decision::Allowed { remaining } => Some(RateHeaders {
                policy: policy.clone(),
                state: state_header(&rate, remaining),
            }),
            Decision::Limited { retry_after_ns } => {
                return Err(Refusal::Throttled {
                    retry_after_ns,
                    rate_headers: Some(RateHeaders {
                        policy: policy.clone(),
                        state: state_header(&rate, 0),
                    }),
                })
            }
        },
        _ => None,
    };
    // The quota counts only requests the throttle let through.
    let mut shared_quota = None;
    if let (Some(quota), Some(counter)) = (plan.quota, membership.quota.as_ref()) {
        let wall = Utc::now();
        let (start, end) = quota.period.bounds(wall);
        let check = SharedQuota {
            key_id: key.id,
            plan_id: plan.id,
            limit: quota.limit,
            period_start: start.timestamp(),
            period_end: end.timestamp(),
            counter: counter.clone(),
        };
        if shared_quotas {
            shared_quota = Some(check);
        } else if !counter.try_take(check.period_start, quota.limit) {
            return Err(check.exceeded());
        }
    }
    Ok(Admitted {
        rate_headers,
        shared_quota,
    })
}

/// `"throttle";r=<remaining>;t=<seconds until the burst is whole again>`, written without
/// a heap allocation of its own.
fn state_header(rate: &Rate, remaining: u64) -> HeaderValue {
    let missing = u64::from(rate.burst).saturating_sub(remaining);
    let refill = (missing as f64 / rate.per_second).ceil() as u64;
    let mut buf = [0u8; 64];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(cursor, "\"throttle\";r={remaining};t={refill}");
    let len = usize::try_from(cursor.position()).unwrap_or(0);
    HeaderValue::from_bytes(&buf[..len]).unwrap_or(HeaderValue::from_static("\"throttle\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_model::Throttle;

    #[test]
    fn the_state_header_counts_what_is_left_and_when_the_burst_refills() {
        let rate = Rate::new(Throttle {
            rate: 2.0,
            burst: 10,
        });
        assert_eq!(state_header(&rate, 10), "\"throttle\";r=10;t=0");
        assert_eq!(state_header(&rate, 3), "\"throttle\";r=3;t=4");
    }
}
