//! API keys: the `x-api-key` header names an enabled key by its SHA-256 (one hash-map
//! lookup, no comparison that leaks timing), and the key must belong to a plan covering
//! the stage. What the key's plan allows is the admit step's business.

use gatehouse_model::usage::{hash_key, is_valid_key};
use http::{HeaderMap, HeaderName, HeaderValue};

use uuid::Uuid;

use crate::admission::quota::KeyUse;
use crate::snapshot::{CompiledConfig, CompiledKey, CompiledStage, Membership};

/// What the key check found: the key the request named, if any (noted on the request's
/// recording whether or not it may pass), and its plan covering the stage, if any.
pub struct KeyCheck<'c> {
    pub key_id: Option<Uuid>,
    pub membership: Option<&'c Membership>,
}

/// Checks the API key a request to `stage` sent in `headers`.
pub fn check<'c>(
    config: &'c CompiledConfig,
    stage: &CompiledStage,
    headers: &HeaderMap,
    key_use: &KeyUse,
) -> KeyCheck<'c> {
    let key = find(config, headers, key_use);
    KeyCheck {
        key_id: key.map(|k| k.id),
        membership: key.and_then(|k| membership(k, stage)),
    }
}

pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The enabled key the request names, noted as used; `None` when it names none, or more
/// than one (which would leave the upstream to guess which one was checked).
fn find<'c>(
    config: &'c CompiledConfig,
    headers: &HeaderMap,
    key_use: &KeyUse,
) -> Option<&'c CompiledKey> {
    let mut sent = headers.get_all(X_API_KEY).iter();
    let value = sent
        .next()
        .filter(|_| sent.next().is_none())
        .map(HeaderValue::as_bytes)
        .filter(|v| is_valid_key(v))?;
    let key = config.key(&hash_key(value))?;
    key_use.note(key.id, &key.used_in);
    Some(key)
}

/// The key's membership of a plan that covers `stage`.
fn membership<'c>(key: &'c CompiledKey, stage: &CompiledStage) -> Option<&'c Membership> {
    key.memberships
        .iter()
        .find(|m| stage.plans.contains(&m.plan))
}
