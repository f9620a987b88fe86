//! Compiling a snapshot for serving, in steps: plans, then stages with their routes (each
//! route with the phases it needs), then which plans cover which stages, then keys with
//! their throttle buckets. Throttle state carries over from the config being served, so a
//! config change does not hand out fresh bursts; quota counters live in the ledger, apart
//! from any one config.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gatehouse_model::{
    AuthorizationType, ConfigSnapshot, DeployedKey, DeployedPlan, DeployedRoute, DeployedStage,
    Integration, PlanStage, Protocol, RouteKey, RouteTable, Throttle,
};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use uuid::Uuid;

use super::{
    Action, CompiledConfig, CompiledKey, CompiledPlan, CompiledRoute, CompiledStage, Membership,
    RouteOverride, StageInfo, StageTable, WsStage,
};
use crate::admission::limiter::{now_ns, Bucket, Rate};
use crate::admission::quota::QuotaLedger;
use crate::admission::rate_headers::{quota_policy, throttle_policy};
use crate::authorizers::{Authorizers, Live};
use crate::request::cors::CompiledCors;
use crate::request::phases::Phase;
use crate::traffic::meters::{MeterKey, MeterRegistry, RouteMeter};

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

/// Plans' positions in [`CompiledConfig::plans`], by id.
type PlanIndex = HashMap<Uuid, u32>;
/// Stages' `slug/stage` names, by API and stage name.
type StageNames<'s> = HashMap<(Uuid, &'s str), Box<str>>;
type Stages = HashMap<Box<str>, CompiledStage>;

impl CompiledConfig {
    /// Compiles `snapshot`. Throttle state is carried over from `previous` (the config
    /// being served), so a config change does not hand out fresh bursts.
    pub fn compile(
        snapshot: &ConfigSnapshot,
        previous: Option<&CompiledConfig>,
        ledger: &QuotaLedger,
        meters: Option<&MeterRegistry>,
        authorizers: &Authorizers,
    ) -> Result<CompiledConfig, CompileFailure> {
        let now = now_ns();
        let (plans, plan_index) = compile_plans(&snapshot.plans)?;
        let (mut stages, stage_names) =
            compile_stages(&snapshot.stages, previous, meters, authorizers, now)?;
        attach_plans(&snapshot.plans, &plan_index, &stage_names, &mut stages);
        let mut keys = HashMap::with_capacity(snapshot.keys.len());
        for key in &snapshot.keys {
            let (hash, compiled) = compile_key(key, previous, &plans, &plan_index, ledger, now)?;
            if keys.insert(hash, compiled).is_some() {
                return Err(failure(format!("key {}", key.id), "appears twice"));
            }
        }
        // Quota counters of keys and plans no longer deployed are let go.
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
}

fn compile_plans(
    deployed: &[DeployedPlan],
) -> Result<(Vec<CompiledPlan>, PlanIndex), CompileFailure> {
    let mut plans = Vec::with_capacity(deployed.len());
    let mut plan_index = HashMap::with_capacity(deployed.len());
    for plan in deployed {
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
    Ok((plans, plan_index))
}

fn compile_stages<'s>(
    deployed: &'s [DeployedStage],
    previous: Option<&CompiledConfig>,
    meters: Option<&MeterRegistry>,
    authorizers: &Authorizers,
    now: u64,
) -> Result<(Stages, StageNames<'s>), CompileFailure> {
    let mut stages = HashMap::with_capacity(deployed.len());
    let mut stage_names = HashMap::with_capacity(deployed.len());
    for stage in deployed {
        let name: Box<str> = format!("{}/{}", stage.api_slug, stage.stage).into();
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
            Protocol::Http => (compile_http_routes(stage, &meter, authorizers), None),
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
            .and_then(|p| p.stages.get(&name))
            .map(|s| &s.bucket);
        let rate = Rate::new(stage.throttle);
        let cors = stage
            .cors
            .as_ref()
            .map(CompiledCors::compile)
            .transpose()
            .map_err(|e| failure(format!("stage {name}"), e))?
            .map(Arc::new);
        let compiled = CompiledStage {
            info: Arc::new(StageInfo {
                api_id: stage.api_id,
                name: stage.stage.as_str().into(),
                variables: stage.variables.clone(),
            }),
            cors,
            routes,
            bucket: Bucket::resume(previous_bucket, Some(&rate), now),
            rate,
            plans: Vec::new(),
            overrides: Vec::new(),
            unrouted: meter(None),
            access_log: stage.access_log,
            websocket,
        };
        stage_names.insert((stage.api_id, stage.stage.as_str()), name.clone());
        if stages.insert(name.clone(), compiled).is_some() {
            return Err(failure(
                format!("stage {name}"),
                "appears twice in the snapshot",
            ));
        }
    }
    Ok((stages, stage_names))
}

/// Attaches each plan to the stages it covers, with its route throttles there; a stage
/// not deployed is skipped.
fn attach_plans(
    deployed: &[DeployedPlan],
    plan_index: &PlanIndex,
    stage_names: &StageNames<'_>,
    stages: &mut Stages,
) {
    for plan in deployed {
        let index = plan_index[&plan.id];
        let stage_name = |covered: &PlanStage| {
            stage_names
                .get(&(covered.api_id, covered.stage.as_str()))
                .cloned()
        };
        for name in plan.stages.iter().filter_map(stage_name) {
            if let Some(stage) = stages.get_mut(&name) {
                stage.plans.push(index);
            }
        }
        for (slot, covered, route_key, throttle) in route_throttle_slots(plan) {
            let Some(stage) = stage_name(covered).and_then(|name| stages.get_mut(&name)) else {
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
}

/// An enabled key, by its hash, with a membership of each of its plans deployed.
fn compile_key(
    key: &DeployedKey,
    previous: Option<&CompiledConfig>,
    plans: &[CompiledPlan],
    plan_index: &PlanIndex,
    ledger: &QuotaLedger,
    now: u64,
) -> Result<([u8; 32], CompiledKey), CompileFailure> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(&key.hash, &mut hash)
        .map_err(|_| failure(format!("key {}", key.id), "hash is not 64 hex digits"))?;
    let old = previous.and_then(|p| Some((p, p.keys.get(&hash)?)));
    let memberships = key
        .plans
        .iter()
        .filter_map(|plan_id| plan_index.get(plan_id).copied())
        .map(|plan| {
            let compiled_plan = &plans[plan as usize];
            let old_membership = old.and_then(|(previous, old)| {
                old.memberships.iter().find_map(|m| {
                    let plan = previous.plans.get(m.plan as usize)?;
                    (plan.id == compiled_plan.id).then_some((m, plan))
                })
            });
            Membership {
                plan,
                key_id: key.id,
                buckets: resume_buckets(compiled_plan, old_membership, now),
                quota: compiled_plan
                    .quota
                    .map(|_| ledger.counter(key.id, compiled_plan.id)),
            }
        })
        .collect();
    let used_in = old.map_or(u32::MAX, |(_, o)| o.used_in.load(Ordering::Relaxed));
    Ok((
        hash,
        CompiledKey {
            id: key.id,
            used_in: AtomicU32::new(used_in),
            memberships,
        },
    ))
}

/// A key's buckets under `plan`, each resuming the bucket of the same name the key had
/// under that plan in the config being served.
fn resume_buckets(
    plan: &CompiledPlan,
    old: Option<(&Membership, &CompiledPlan)>,
    now: u64,
) -> Box<[Bucket]> {
    plan.slots
        .iter()
        .map(|(name, rate)| {
            let old_bucket = old.and_then(|(m, p)| {
                p.slots
                    .iter()
                    .position(|(n, _)| n == name)
                    .and_then(|j| m.buckets.get(j))
            });
            Bucket::resume(old_bucket, rate.as_ref(), now)
        })
        .collect()
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

fn compile_http_routes(
    stage: &DeployedStage,
    meter: MeterOf<'_>,
    authorizers: &Authorizers,
) -> Result<StageTable, String> {
    let mut routes = Vec::with_capacity(stage.routes.len());
    for route in &stage.routes {
        let index = u32::try_from(routes.len()).map_err(|_| "too many routes".to_owned())?;
        let authorizer = match route.authorization.authorizer_id {
            None => None,
            Some(id) => {
                let deployed = stage
                    .authorizers
                    .iter()
                    .find(|a| a.id == id)
                    .ok_or_else(|| {
                        format!(
                            "route `{}` names authorizer {id}, which is not deployed",
                            route.route_key
                        )
                    })?;
                let wanted = route.authorization.authorization_type.authorizer_type();
                if wanted != Some(deployed.spec.authorizer_type) {
                    return Err(format!(
                        "route `{}`: authorizer {id} is not of the kind its authorization needs",
                        route.route_key
                    ));
                }
                Some(
                    authorizers
                        .get(deployed)
                        .map_err(|e| format!("authorizer {id}: {e}"))?,
                )
            }
        };
        if route.authorization.authorization_type != AuthorizationType::None && authorizer.is_none()
        {
            return Err(format!("route `{}` needs an authorizer", route.route_key));
        }
        let compiled = compile_route(stage, route, index, meter, authorizer)?;
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
        let compiled = compile_route(stage, route, index, meter, None)?;
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
    authorizer: Option<Live>,
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
                request_rules: proxy.request_parameters.rules().into(),
                response_rules: (!proxy.response_parameters.is_empty())
                    .then(|| Arc::new(proxy.response_parameters.clone())),
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
        phases: Phase::for_route(route, authorizer),
        param_names: route
            .route_key
            .param_names()
            .into_iter()
            .map(Into::into)
            .collect(),
        action,
        meter: meter(Some(route.id)),
    })
}
