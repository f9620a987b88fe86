//! Who may pass: the API key check (`x-api-key`, by hash, in O(1)), the throttles (the
//! key's plan or its route throttle, then the stage's), each a lock-free bucket, and the
//! key's quota. Keyed responses say where they stand in `RateLimit` headers.
//!
//! The request pipeline runs the key check as its authenticate phase and the rest as its
//! admit phase ([`crate::request::phases`]); WebSocket events call [`admit_call`].

pub mod api_key;
pub mod limiter;
pub mod quota;
pub mod rate_headers;
pub mod shared_quota;
pub mod usage_reports;

use std::sync::Arc;

use chrono::Utc;
use http::{HeaderMap, HeaderValue, Response};
use uuid::Uuid;

use crate::admission::limiter::{now_ns, Decision, Rate};
use crate::admission::quota::QuotaCounter;
use crate::admission::rate_headers::{PolicyState, RateHeaders};
use crate::request::errors::{ProxyBody, Reject};
use crate::snapshot::{CompiledConfig, CompiledStage, Membership};
use crate::state::Shared;
use crate::traffic::recording::Recording;

pub use api_key::X_API_KEY;

/// Why a request was turned away.
#[derive(Debug)]
pub enum Refusal {
    /// No valid key, or none whose plan covers this stage.
    Forbidden,
    /// Over a throttle.
    Throttled {
        retry_after_ns: u64,
        rate_headers: RateHeaders,
    },
    /// The key's quota for the period is used up.
    QuotaExceeded {
        retry_after_secs: u64,
        rate_headers: RateHeaders,
    },
}

impl Refusal {
    pub fn reject(&self) -> Reject {
        match self {
            Refusal::Forbidden => Reject::Forbidden,
            Refusal::Throttled { .. } => Reject::TooManyRequests,
            Refusal::QuotaExceeded { .. } => Reject::LimitExceeded,
        }
    }

    /// 403, or 429 with `Retry-After` in whole seconds (at least 1).
    pub fn response(self) -> Response<ProxyBody> {
        let (reject, retry_after, rate_headers) = match self {
            Refusal::Forbidden => return Reject::Forbidden.response(),
            Refusal::Throttled {
                retry_after_ns,
                rate_headers,
            } => (
                Reject::TooManyRequests,
                retry_after_ns.div_ceil(1_000_000_000),
                rate_headers,
            ),
            Refusal::QuotaExceeded {
                retry_after_secs,
                rate_headers,
            } => (Reject::LimitExceeded, retry_after_secs, rate_headers),
        };
        let mut response = reject.response();
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            HeaderValue::from(retry_after.max(1)),
        );
        rate_headers.apply(response.headers_mut());
        response
    }
}

/// A request let through so far: its rate headers, and its quota, still to take from the
/// shared counter (Redis) when one is used.
#[derive(Debug, Default)]
pub struct Admitted {
    pub rate_headers: RateHeaders,
    pub shared_quota: Option<SharedQuota>,
}

/// A key's quota under its plan for the current period. Taken locally, or from the counter
/// all proxies share after the snapshot is let go, since that waits on the network.
#[derive(Debug)]
pub struct SharedQuota {
    pub key_id: Uuid,
    pub plan_id: Uuid,
    pub limit: u64,
    pub period_start: i64,
    pub period_end: i64,
    pub counter: Arc<QuotaCounter>,
    pub policy: HeaderValue,
}

impl SharedQuota {
    fn state(&self, remaining: u64) -> PolicyState {
        let reset = u64::try_from(self.period_end - Utc::now().timestamp()).unwrap_or(0);
        PolicyState {
            policy: self.policy.clone(),
            remaining,
            reset,
        }
    }

    /// Records that `used` of the quota is gone (this request included), in `headers`.
    pub fn admitted(&self, used: u64, headers: &mut RateHeaders) {
        headers.quota = Some(self.state(self.limit.saturating_sub(used)));
    }

    /// 429 `Limit Exceeded` until the period ends.
    pub fn exceeded(&self, mut rate_headers: RateHeaders) -> Refusal {
        let state = self.state(0);
        let retry_after_secs = state.reset.max(1);
        rate_headers.quota = Some(state);
        Refusal::QuotaExceeded {
            retry_after_secs,
            rate_headers,
        }
    }
}

/// What a WebSocket event asks to be admitted for: a connection (whose `$connect` route
/// may be absent) or one of its messages (keyed when its connection was).
#[derive(Debug, Clone, Copy)]
pub struct Call {
    /// The route's index in its stage, for plans' route throttles.
    pub route: Option<u32>,
    pub key_required: bool,
}

/// Checks a call's API key (when it needs one), then admits it: the request pipeline
/// runs the two as phases of its own; WebSocket connections and messages, here. The
/// key's id goes on `recording` as soon as the key is known, refused or not.
pub fn admit_call(
    config: &CompiledConfig,
    stage: &CompiledStage,
    call: Call,
    headers: &HeaderMap,
    shared: &Shared,
    recording: &mut Option<Recording>,
) -> Result<Admitted, Refusal> {
    let membership = if call.key_required {
        let check = api_key::check(config, stage, headers, &shared.key_use);
        if let (Some(recording), Some(key_id)) = (recording.as_mut(), check.key_id) {
            recording.key_id = Some(key_id);
        }
        Some(check.membership.ok_or(Refusal::Forbidden)?)
    } else {
        None
    };
    admit(config, stage, call.route, membership, shared)
}

/// The admit step: the throttle of the key's plan (or its throttle for `route`), then the
/// stage's, then the key's quota: here when counted locally, or handed back as
/// [`SharedQuota`] when Redis counts quotas. `membership` is the authenticated key's
/// plan, when the request has one.
pub fn admit(
    config: &CompiledConfig,
    stage: &CompiledStage,
    route: Option<u32>,
    membership: Option<&Membership>,
    shared: &Shared,
) -> Result<Admitted, Refusal> {
    let now = now_ns();
    let mut admitted = match membership {
        Some(membership) => admit_plan(config, stage, route, membership, now)?,
        None => Admitted::default(),
    };
    if let Decision::Limited { retry_after_ns } = stage.bucket.check(&stage.rate, now) {
        return Err(Refusal::Throttled {
            retry_after_ns,
            rate_headers: admitted.rate_headers,
        });
    }
    // The quota counts only requests every throttle let through; taken last.
    if let Some(quota) = admitted.shared_quota.take() {
        if shared.shared_counters.is_connected() {
            admitted.shared_quota = Some(quota);
        } else if quota.counter.try_take(quota.period_start, quota.limit) {
            shared.shared_counters.counted_locally(&quota, true);
            quota.admitted(quota.counter.used(), &mut admitted.rate_headers);
        } else {
            shared.shared_counters.counted_locally(&quota, false);
            return Err(quota.exceeded(admitted.rate_headers));
        }
    }
    Ok(admitted)
}

/// Takes the admitted call's quota from the counter all proxies share, when Redis counts
/// quotas; returns the rate headers of the call.
pub async fn take_shared_quota(
    shared: &Shared,
    admitted: Admitted,
) -> Result<RateHeaders, Refusal> {
    let mut rate_headers = admitted.rate_headers;
    let Some(quota) = &admitted.shared_quota else {
        return Ok(rate_headers);
    };
    let used = match shared.shared_counters.take(quota).await {
        Some(count) => {
            // Redis may have lost its count (restart, eviction, REDIS_URL set mid-period):
            // what the control plane and this proxy counted is a floor.
            let used = count.max(quota.counter.used() + 1);
            if used <= quota.limit {
                quota.counter.record(quota.period_start);
            }
            Some(used)
        }
        None => {
            let taken = quota.counter.try_take(quota.period_start, quota.limit);
            shared.shared_counters.counted_locally(quota, taken);
            taken.then(|| quota.counter.used())
        }
    };
    match used {
        Some(used) if used <= quota.limit => {
            quota.admitted(used, &mut rate_headers);
            Ok(rate_headers)
        }
        _ => Err(quota.exceeded(rate_headers)),
    }
}

/// The plan's throttle (or its throttle of `route`) and quota for a key in it.
fn admit_plan(
    config: &CompiledConfig,
    stage: &CompiledStage,
    route: Option<u32>,
    membership: &Membership,
    now: u64,
) -> Result<Admitted, Refusal> {
    let plan = &config.plans[membership.plan as usize];
    let mut rate_headers = RateHeaders::default();
    let (rate, policy, bucket) = match stage
        .overrides
        .iter()
        .find(|o| o.plan == membership.plan && Some(o.route) == route)
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
    if let (Some(rate), Some(policy), Some(bucket)) = (rate, policy, bucket) {
        match bucket.check(&rate, now) {
            Decision::Allowed { remaining } => {
                rate_headers.throttle = Some(throttle_state(policy, &rate, remaining))
            }
            Decision::Limited { retry_after_ns } => {
                rate_headers.throttle = Some(throttle_state(policy, &rate, 0));
                return Err(Refusal::Throttled {
                    retry_after_ns,
                    rate_headers,
                });
            }
        }
    }

    // The quota counts only requests the throttle let through.
    let shared_quota = match (
        plan.quota,
        membership.quota.as_ref(),
        plan.quota_policy.as_ref(),
    ) {
        (Some(quota), Some(counter), Some(policy)) => {
            let (start, end) = quota.period.bounds(Utc::now());
            Some(SharedQuota {
                key_id: membership.key_id,
                plan_id: plan.id,
                limit: quota.limit,
                period_start: start.timestamp(),
                period_end: end.timestamp(),
                counter: counter.clone(),
                policy: policy.clone(),
            })
        }
        _ => None,
    };
    Ok(Admitted {
        rate_headers,
        shared_quota,
    })
}

/// Where the throttle stands: `remaining` requests now, whole again in `t` seconds.
fn throttle_state(policy: &HeaderValue, rate: &Rate, remaining: u64) -> PolicyState {
    let missing = u64::from(rate.burst).saturating_sub(remaining);
    PolicyState {
        policy: policy.clone(),
        remaining,
        reset: (missing as f64 / rate.per_second).ceil() as u64,
    }
}
