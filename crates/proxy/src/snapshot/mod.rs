//! A snapshot compiled for serving: stages by `slug/stage`, each with its route table,
//! integrations bound to the stage's variables, and mock responses prebuilt; API keys by
//! hash, each with its plans and throttle buckets. Built off the request path
//! ([`compile`]), then published whole with one atomic store.

mod compile;

use std::collections::HashMap;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gatehouse_model::integration::BoundUri;
use gatehouse_model::mapping::{Mapping, ResponseParameters};
use gatehouse_model::{Quota, RouteSelection, RouteTable, StageVariables, WebSocketLimits};
use http::{HeaderMap, HeaderValue, StatusCode};
use uuid::Uuid;

use crate::admission::limiter::{Bucket, Rate};
use crate::admission::quota::QuotaCounter;
use crate::request::cors::CompiledCors;
use crate::request::phases::Phase;
use crate::traffic::meters::RouteMeter;

/// What a matched route does.
#[derive(Debug)]
pub enum Action {
    Proxy {
        uri: BoundUri,
        timeout: Duration,
        /// A WebSocket upgrade is passed through to the upstream (HTTP APIs).
        websocket_upgrade: bool,
        /// Parameter mapping of the request (none for most routes).
        request_rules: Box<[Mapping]>,
        /// Parameter mapping of the answer, by status.
        response_rules: Option<Arc<ResponseParameters>>,
    },
    Mock {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
}

#[derive(Debug)]
pub struct CompiledRoute {
    pub route_key: Arc<str>,
    /// Position among the stage's routes (what plan route throttles refer to).
    pub index: u32,
    /// What its requests go through between resolve and answer, in order.
    pub phases: Box<[Phase]>,
    /// The names of its path parameters, in the order they are matched.
    pub param_names: Box<[Box<str>]>,
    pub action: Action,
    /// Where the route's traffic is counted; `None` when metrics are off.
    pub meter: Option<Arc<RouteMeter>>,
}

pub type StageTable = RouteTable<CompiledRoute>;

/// What a stage is, for authorizers and parameter mapping.
#[derive(Debug)]
pub struct StageInfo {
    pub api_id: Uuid,
    /// The stage's name.
    pub name: Box<str>,
    pub variables: StageVariables,
}

/// A deployed stage, ready to serve.
#[derive(Debug)]
pub struct CompiledStage {
    pub info: Arc<StageInfo>,
    /// The API's CORS configuration, as deployed.
    pub cors: Option<Arc<CompiledCors>>,
    pub routes: StageTable,
    /// Throttle of all the stage's traffic.
    pub rate: Rate,
    pub bucket: Bucket,
    /// Plans covering this stage, as indices into [`CompiledConfig::plans`] (a handful).
    pub plans: Vec<u32>,
    /// Route throttles of plans on this stage: (plan, route index, bucket slot, rate).
    pub overrides: Vec<RouteOverride>,
    /// Counts requests to the stage that no route matched; `None` when metrics are off.
    pub unrouted: Option<Arc<RouteMeter>>,
    /// Whether each request gets an access log line.
    pub access_log: bool,
    /// The routes and limits of a WebSocket API's stage (its HTTP table is empty).
    pub websocket: Option<Box<WsStage>>,
}

/// A WebSocket API's stage: the routes events go to, how messages pick theirs, and the
/// limits of each connection.
#[derive(Debug)]
pub struct WsStage {
    pub connect: Option<CompiledRoute>,
    pub disconnect: Option<CompiledRoute>,
    pub default: Option<CompiledRoute>,
    pub messages: HashMap<Box<str>, CompiledRoute>,
    pub selection: RouteSelection,
    pub limits: WebSocketLimits,
    /// The stage's name, sent to integrations.
    pub stage: HeaderValue,
}

impl WsStage {
    /// The route a message goes to: the one its selected key names, else `$default`.
    pub fn route_for(&self, message: &[u8]) -> Option<&CompiledRoute> {
        self.selection
            .select(message)
            .and_then(|key| self.messages.get(key.as_str()))
            .or(self.default.as_ref())
    }

    fn routes(&self) -> impl Iterator<Item = &CompiledRoute> {
        [&self.connect, &self.disconnect, &self.default]
            .into_iter()
            .flatten()
            .chain(self.messages.values())
    }
}

impl CompiledRoute {
    /// Whether its requests must name an API key.
    pub fn requires_key(&self) -> bool {
        self.phases.iter().any(|p| matches!(p, Phase::ApiKey))
    }
}

impl CompiledStage {
    /// Every route of the stage, HTTP or WebSocket.
    fn all_routes(&self) -> Box<dyn Iterator<Item = &CompiledRoute> + '_> {
        match &self.websocket {
            Some(ws) => Box::new(ws.routes()),
            None => Box::new(self.routes.values()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RouteOverride {
    pub plan: u32,
    pub route: u32,
    /// Index of this override's bucket among a key's buckets for the plan (after 0, the
    /// plan's own).
    pub slot: u32,
    pub rate: Rate,
    pub policy_header: HeaderValue,
}

/// A usage plan, ready to enforce.
#[derive(Debug)]
pub struct CompiledPlan {
    pub id: Uuid,
    pub rate: Option<Rate>,
    pub quota: Option<Quota>,
    /// The buckets each key of the plan holds, by slot: name and rate (`""` for the plan's
    /// own, then `api/stage/route key` per route throttle), to carry state to the same slot
    /// of the next config.
    slots: Vec<(String, Option<Rate>)>,
    /// `RateLimit-Policy` items of keyed responses, built once.
    pub policy_header: Option<HeaderValue>,
    pub quota_policy: Option<HeaderValue>,
}

/// An enabled API key: its plans and its throttle state in each.
#[derive(Debug)]
pub struct CompiledKey {
    pub id: Uuid,
    /// The last report interval this key was used in (see `KeyUse`); `u32::MAX`: never.
    pub used_in: AtomicU32,
    pub memberships: Box<[Membership]>,
}

#[derive(Debug)]
pub struct Membership {
    pub plan: u32,
    /// The key's id, for its quota's counters.
    pub key_id: Uuid,
    pub buckets: Box<[Bucket]>,
    /// The key's quota counter under this plan, when the plan has a quota.
    pub quota: Option<Arc<QuotaCounter>>,
}

/// Everything the proxy serves, ready for lookups.
#[derive(Debug)]
pub struct CompiledConfig {
    pub version: i64,
    pub hash: String,
    /// Keyed by `slug/stage`, the two first segments of an invoke path.
    stages: HashMap<Box<str>, CompiledStage>,
    /// Keyed by the SHA-256 of the key.
    keys: HashMap<[u8; 32], CompiledKey>,
    pub plans: Vec<CompiledPlan>,
}

impl CompiledConfig {
    /// Splits `/slug/stage/rest` into the stage and `/rest`.
    pub fn stage<'p>(&self, path: &'p str) -> Option<(&CompiledStage, &'p str)> {
        let (name, rest) = split_stage(path)?;
        Some((self.stages.get(name)?, rest))
    }

    /// The stage named `slug/stage`.
    pub fn stage_named(&self, name: &str) -> Option<&CompiledStage> {
        self.stages.get(name)
    }

    /// The enabled key whose SHA-256 is `hash`.
    pub fn key(&self, hash: &[u8; 32]) -> Option<&CompiledKey> {
        self.keys.get(hash)
    }

    pub fn stage_count(&self) -> usize {
        self.stages.len()
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }
}

/// Splits `/slug/stage/rest` into `slug/stage` and `/rest`.
pub fn split_stage(path: &str) -> Option<(&str, &str)> {
    let after_slash = path.strip_prefix('/')?;
    let slug_end = after_slash.find('/')?;
    let stage_end = after_slash[slug_end + 1..]
        .find('/')
        .map_or(after_slash.len(), |i| slug_end + 1 + i);
    let rest = &after_slash[stage_end..];
    Some((
        &after_slash[..stage_end],
        if rest.is_empty() { "/" } else { rest },
    ))
}

#[cfg(test)]
mod tests {
    use gatehouse_model::{ConfigSnapshot, DeployedStage};

    use super::compile::CompileFailure;
    use super::*;
    use crate::admission::quota::QuotaLedger;

    fn config(stages: serde_json::Value) -> Result<CompiledConfig, CompileFailure> {
        let stages: Vec<DeployedStage> = serde_json::from_value(stages).expect("valid stages");
        CompiledConfig::compile(
            &ConfigSnapshot::new(1, stages, Vec::new(), Vec::new()),
            None,
            &QuotaLedger::default(),
            None,
            &crate::authorizers::Authorizers::default(),
        )
    }

    fn stage(slug: &str, name: &str, routes: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"api_id": uuid_nil(), "api_slug": slug, "protocol": "HTTP", "stage": name,
            "deployment_id": uuid_nil(), "variables": {}, "routes": routes})
    }

    fn uuid_nil() -> &'static str {
        "00000000-0000-0000-0000-000000000000"
    }

    #[test]
    fn finds_the_stage_and_the_rest_of_the_path() {
        let c = config(serde_json::json!([stage(
            "pets",
            "prod",
            serde_json::json!([])
        )]))
        .expect("compiles");
        let (_, rest) = c.stage("/pets/prod/a/b").expect("stage");
        assert_eq!(rest, "/a/b");
        assert_eq!(c.stage("/pets/prod").map(|(_, r)| r), Some("/"));
        assert_eq!(c.stage("/pets/prod/").map(|(_, r)| r), Some("/"));
        assert!(c.stage("/pets/dev/a").is_none());
        assert!(c.stage("/pets").is_none());
        assert!(c.stage("/").is_none());
        assert!(c.stage("").is_none());
    }

    #[test]
    fn refuses_a_snapshot_whose_routes_conflict() {
        let routes = serde_json::json!([
            {"id": uuid_nil(), "route_key": "GET /a/{x}", "integration": {"type": "MOCK"}},
            {"id": uuid_nil(), "route_key": "GET /a/{y}", "integration": {"type": "MOCK"}}
        ]);
        let e = config(serde_json::json!([stage("pets", "prod", routes)])).expect_err("conflict");
        assert!(e.to_string().contains("pets/prod"));
    }
}
