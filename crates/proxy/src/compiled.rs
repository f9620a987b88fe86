//! A snapshot compiled for serving: stages by `slug/stage`, each with its route table,
//! integrations bound to the stage's variables, and mock responses prebuilt; API keys by
//! hash, each with its plans and throttle buckets. Built off the request path, then
//! published whole with one atomic store.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gatehouse_model::integration::BoundUri;
use gatehouse_model::{
    ConfigSnapshot, DeployedPlan, DeployedRoute, DeployedStage, Integration, PlanStage, Protocol,
    Quota, RouteKey, RouteSelection, RouteTable, Throttle, WebSocketLimits,
};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use uuid::Uuid;

use crate::limiter::{now_ns, Bucket, Rate};
use crate::meters::{MeterKey, MeterRegistry, RouteMeter};
use crate::quota::{QuotaCounter, QuotaLedger};
use crate::ratelimit_headers::{quota_policy, throttle_policy};

/// What a matched route does.
#[derive(Debug)]
pub enum Action {
    Proxy {
        uri: BoundUri,
        timeout: Duration,
        /// A WebSocket upgrade is passed through to the upstream (HTTP APIs).
        websocket_upgrade: bool,
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
    pub api_key_required: bool,
    pub action: Action,
    /// Where the route's traffic is counted; `None` when metrics are off.
    pub meter: Option<Arc<RouteMeter>>,
}

pub type StageTable = RouteTable<CompiledRoute>;

/// A deployed stage, ready to serve.
#[derive(Debug)]
pub struct CompiledStage {
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

/// Why a snapshot cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct CompileFailure {
    what: String,
    reason: String,
}

fn failure(what: impl Into<String>, reason: impl Into<String>) -> CompileFailure {
    CompileFailure {
        what: what.into(),
        reason: reason.into(),
    }
}

impl CompiledConfig {
    /// Compiles `snapshot`. Throttle state is carried over from `previous` (the config
    /// being served), so a config change does not hand out fresh bursts.
    pub fn compile(
        snapshot: &ConfigSnapshot,
        previous: Option<&CompiledConfig>,
        ledger: &QuotaLedger,
        meters: Option<&MeterRegistry>,
    ) -> Result<CompiledConfig, CompileFailure> {
        let now = now_ns();
        let mut plans = Vec::with_capacity(snapshot.plans.len());
        let mut plan_index: HashMap<Uuid, u32> = HashMap::with_capacity(snapshot.plans.len());
        for plan in &snapshot.plans {
            let index = u32::try_from(plans.len()).map_err(|_| failure("plans", "too many"))?;
            if plan_index.insert(plan.id, index).is_some() {
                return Err(failure(format!("plan {}", plan.id), "appears twice"));
            }
            let slots = std::iter::once((String::new(), plan.throttle.map(Rate::new)))
                .chain(
                    route_throttle_slots(plan).map(|(_, covered, route_key, throttle)| {
                        (
                            format!("{}/{}/{route_key}", covered.api_id, covered.stage),
                            Some(Rate::new(throttle)),
                        )
                    }),
                )
                .collect();
            plans.push(CompiledPlan {
                id: plan.id,
                slots,
                rate: plan.throttle.map(Rate::new),
                quota: plan.quota,
                policy_header: plan.throttle.map(throttle_policy),
                quota_policy: plan.quota.map(quota_policy),
            });
        }

        let mut stages = HashMap::with_capacity(snapshot.stages.len());
        let mut stage_names: HashMap<(Uuid, &str), Box<str>> =
            HashMap::with_capacity(snapshot.stages.len());
        for stage in &snapshot.stages {
            let name = format!("{}/{}", stage.api_slug, stage.stage);
            let meter = |route_id| {
                meters.map(|m| {
                    m.meter(MeterKey {
                        api_id: stage.api_id,
                        api_slug: stage.api_slug.as_str().into(),
                        stage: stage.stage.as_str().into(),
                        route_id,
                    })
                })
            };
            let (routes, websocket) = match stage.protocol {
                Protocol::Http => (compile_stage(stage, &meter), None),
                Protocol::Websocket => (
                    RouteTable::compile(Vec::new()).map_err(|e| e.to_string()),
                    Some(compile_ws_stage(stage, &meter)),
                ),
            };
            let routes = routes.map_err(|e| failure(format!("stage {name}"), e))?;
            let websocket = websocket
                .transpose()
                .map_err(|e| failure(format!("stage {name}"), e))?
                .map(Box::new);
            let previous_bucket = previous
                .and_then(|p| p.stages.get(name.as_str()))
                .map(|s| &s.bucket);
            let compiled = CompiledStage {
                routes,
                rate: Rate::new(stage.throttle),
                bucket: Bucket::resume(previous_bucket, Some(&Rate::new(stage.throttle)), now),
                plans: Vec::new(),
                overrides: Vec::new(),
                unrouted: meter(None),
                access_log: stage.access_log,
                websocket,
            };
            stage_names.insert(
                (stage.api_id, stage.stage.as_str()),
                name.clone().into_boxed_str(),
            );
            if stages
                .insert(name.clone().into_boxed_str(), compiled)
                .is_some()
            {
                return Err(failure(
                    format!("stage {name}"),
                    "appears twice in the snapshot",
                ));
            }
        }

        // Attach each plan to the stages it covers; a stage not deployed is skipped.
        for plan in &snapshot.plans {
            let index = plan_index[&plan.id];
            let deployed = |covered: &PlanStage| {
                stage_names
                    .get(&(covered.api_id, covered.stage.as_str()))
                    .cloned()
            };
            for name in plan.stages.iter().filter_map(deployed) {
                if let Some(stage) = stages.get_mut(&name) {
                    stage.plans.push(index);
                }
            }
            for (slot, covered, route_key, throttle) in route_throttle_slots(plan) {
                let Some(stage) = deployed(covered).and_then(|name| stages.get_mut(&name)) else {
                    continue;
                };
                let found = stage
                    .all_routes()
                    .find(|r| &*r.route_key == route_key)
                    .map(|r| r.index);
                if let Some(route) = found {
                    stage.overrides.push(RouteOverride {
                        plan: index,
                        route,
                        slot,
                        rate: Rate::new(throttle),
                        policy_header: throttle_policy(throttle),
                    });
                }
            }
        }

        let mut keys = HashMap::with_capacity(snapshot.keys.len());
        for key in &snapshot.keys {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(&key.hash, &mut hash)
                .map_err(|_| failure(format!("key {}", key.id), "hash is not 64 hex digits"))?;
            let old = previous.and_then(|p| p.keys.get(&hash));
            let memberships = key
                .plans
                .iter()
                .filter_map(|plan_id| plan_index.get(plan_id).copied())
                .map(|plan| {
                    let compiled_plan = &plans[plan as usize];
                    let old_plan = old.and_then(|o| {
                        let previous = previous?;
                        o.memberships
                            .iter()
                            .find(|m| {
                                previous
                                    .plans
                                    .get(m.plan as usize)
                                    .is_some_and(|p| p.id == compiled_plan.id)
                            })
                            .map(|m| (m, &previous.plans[m.plan as usize]))
                    });
                    let buckets = compiled_plan
                        .slots
                        .iter()
                        .map(|(name, rate)| {
                            let old_bucket = old_plan.and_then(|(m, p)| {
                                p.slots
                                    .iter()
                                    .position(|(n, _)| n == name)
                                    .and_then(|j| m.buckets.get(j))
                            });
                            Bucket::resume(old_bucket, rate.as_ref(), now)
                        })
                        .collect();
                    let compiled_plan = &plans[plan as usize];
                    let quota = compiled_plan
                        .quota
                        .map(|_| ledger.counter(key.id, compiled_plan.id));
                    Membership {
                        plan,
                        buckets,
                        quota,
                    }
                })
                .collect();
            if keys
                .insert(
                    hash,
                    CompiledKey {
                        id: key.id,
                        used_in: AtomicU32::new(
                            old.map_or(u32::MAX, |o| o.used_in.load(Ordering::Relaxed)),
                        ),
                        memberships,
                    },
                )
                .is_some()
            {
                return Err(failure(format!("key {}", key.id), "appears twice"));
            }
        }

        let live: HashSet<(Uuid, Uuid)> = keys
            .values()
            .flat_map(|k: &CompiledKey| {
                k.memberships
                    .iter()
                    .filter(|m| m.quota.is_some())
                    .map(|m| (k.id, plans[m.plan as usize].id))
            })
            .collect();
        ledger.retain(&live, chrono::Utc::now().timestamp());
        Ok(CompiledConfig {
            version: snapshot.version,
            hash: snapshot.hash.clone(),
            stages,
            keys,
            plans,
        })
    }

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

/// Every route throttle of a plan with its bucket slot (slot 0 is the plan's own bucket):
/// the one numbering both the buckets and the stages' overrides follow.
fn route_throttle_slots(
    plan: &DeployedPlan,
) -> impl Iterator<Item = (u32, &PlanStage, &str, Throttle)> {
    plan.stages
        .iter()
        .flat_map(|covered| {
            covered
                .route_throttles
                .iter()
                .map(move |(key, throttle)| (covered, key.as_str(), *throttle))
        })
        .zip(1u32..)
        .map(|((covered, key, throttle), slot)| (slot, covered, key, throttle))
}

type MeterOf<'a> = &'a dyn Fn(Option<Uuid>) -> Option<Arc<RouteMeter>>;

fn compile_stage(stage: &DeployedStage, meter: MeterOf<'_>) -> Result<StageTable, String> {
    let mut routes = Vec::with_capacity(stage.routes.len());
    for route in &stage.routes {
        let index = u32::try_from(routes.len()).map_err(|_| "too many routes".to_owned())?;
        let compiled = compile_route(stage, route, index, meter)?;
        routes.push((route.route_key.clone(), compiled));
    }
    RouteTable::compile(routes).map_err(|e| e.to_string())
}

fn compile_ws_stage(stage: &DeployedStage, meter: MeterOf<'_>) -> Result<WsStage, String> {
    let mut ws = WsStage {
        connect: None,
        disconnect: None,
        default: None,
        messages: HashMap::new(),
        selection: stage.route_selection.clone().unwrap_or_default(),
        limits: stage.websocket,
        stage: HeaderValue::from_str(stage.stage.as_str())
            .map_err(|_| "stage name is not a header value".to_owned())?,
    };
    if !ws.limits.problems().is_empty() {
        return Err(format!("WebSocket limits out of bounds: {:?}", ws.limits));
    }
    for (index, route) in stage.routes.iter().enumerate() {
        let index = u32::try_from(index).map_err(|_| "too many routes".to_owned())?;
        let compiled = compile_route(stage, route, index, meter)?;
        let slot = match &route.route_key {
            RouteKey::Connect => &mut ws.connect,
            RouteKey::Disconnect => &mut ws.disconnect,
            RouteKey::Default => &mut ws.default,
            RouteKey::Message(key) => {
                if ws.messages.insert(key.clone(), compiled).is_some() {
                    return Err(format!("route `{key}` appears twice"));
                }
                continue;
            }
            RouteKey::Route { .. } => {
                return Err(format!(
                    "route `{}` is an HTTP route key; a WebSocket API cannot serve it",
                    route.route_key
                ))
            }
        };
        if slot.replace(compiled).is_some() {
            return Err(format!("route `{}` appears twice", route.route_key));
        }
    }
    Ok(ws)
}

fn compile_route(
    stage: &DeployedStage,
    route: &DeployedRoute,
    index: u32,
    meter: MeterOf<'_>,
) -> Result<CompiledRoute, String> {
    let action = match &route.integration {
        Integration::HttpProxy(proxy) => {
            let params = route.route_key.param_names();
            let uri = proxy
                .uri
                .bind(&stage.variables, &params)
                .map_err(|e| format!("route `{}`: {e}", route.route_key))?;
            Action::Proxy {
                uri,
                timeout: Duration::from_millis(u64::from(proxy.timeout_ms)),
                websocket_upgrade: proxy.websocket_upgrade,
            }
        }
        Integration::Mock(mock) => {
            let status = StatusCode::from_u16(mock.status)
                .map_err(|e| format!("route `{}`: {e}", route.route_key))?;
            let mut headers = HeaderMap::with_capacity(mock.headers.len());
            for (name, value) in &mock.headers {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| format!("route `{}`: {e}", route.route_key))?;
                let value = HeaderValue::from_str(value)
                    .map_err(|e| format!("route `{}`: {e}", route.route_key))?;
                headers.append(name, value);
            }
            Action::Mock {
                status,
                headers,
                body: Bytes::from(mock.body.clone()),
            }
        }
    };
    Ok(CompiledRoute {
        route_key: route.route_key.to_string().into(),
        index,
        api_key_required: route.api_key_required,
        action,
        meter: meter(Some(route.id)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(stages: serde_json::Value) -> Result<CompiledConfig, CompileFailure> {
        let stages: Vec<DeployedStage> = serde_json::from_value(stages).expect("valid stages");
        CompiledConfig::compile(
            &ConfigSnapshot::new(1, stages, Vec::new(), Vec::new()),
            None,
            &QuotaLedger::default(),
            None,
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
