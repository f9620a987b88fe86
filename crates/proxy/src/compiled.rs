//! A snapshot compiled for serving: stages by `slug/stage`, each with its route table,
//! integrations bound to the stage's variables, and mock responses prebuilt. Built off the
//! request path, then published whole with one atomic store.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use gatehouse_model::integration::BoundUri;
use gatehouse_model::{ConfigSnapshot, DeployedStage, Integration, RouteTable};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

/// What a matched route does.
#[derive(Debug)]
pub enum Action {
    Proxy {
        uri: BoundUri,
        timeout: Duration,
    },
    Mock {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
}

#[derive(Debug)]
pub struct CompiledRoute {
    pub route_key: String,
    pub api_key_required: bool,
    pub action: Action,
}

pub type StageTable = RouteTable<CompiledRoute>;

/// Everything the proxy serves, ready for lookups.
#[derive(Debug)]
pub struct CompiledConfig {
    pub version: i64,
    pub hash: String,
    /// Keyed by `slug/stage`, the two first segments of an invoke path.
    stages: HashMap<Box<str>, StageTable>,
}

/// Why a snapshot cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("stage {stage}: {reason}")]
pub struct CompileFailure {
    stage: String,
    reason: String,
}

impl CompiledConfig {
    pub fn compile(snapshot: &ConfigSnapshot) -> Result<CompiledConfig, CompileFailure> {
        let mut stages = HashMap::with_capacity(snapshot.stages.len());
        for stage in &snapshot.stages {
            let key = format!("{}/{}", stage.api_slug, stage.stage);
            let fail = |reason: String| CompileFailure {
                stage: key.clone(),
                reason,
            };
            let table = compile_stage(stage).map_err(fail)?;
            if stages.insert(key.clone().into_boxed_str(), table).is_some() {
                return Err(fail("appears twice in the snapshot".to_owned()));
            }
        }
        Ok(CompiledConfig {
            version: snapshot.version,
            hash: snapshot.hash.clone(),
            stages,
        })
    }

    /// Splits `/slug/stage/rest` into the stage's table and `/rest`.
    pub fn stage<'p>(&self, path: &'p str) -> Option<(&StageTable, &'p str)> {
        let after_slash = path.strip_prefix('/')?;
        let slug_end = after_slash.find('/')?;
        let stage_end = after_slash[slug_end + 1..]
            .find('/')
            .map_or(after_slash.len(), |i| slug_end + 1 + i);
        let table = self.stages.get(&after_slash[..stage_end])?;
        let rest = &after_slash[stage_end..];
        Some((table, if rest.is_empty() { "/" } else { rest }))
    }

    pub fn stage_count(&self) -> usize {
        self.stages.len()
    }
}

fn compile_stage(stage: &DeployedStage) -> Result<StageTable, String> {
    let mut routes = Vec::with_capacity(stage.routes.len());
    for route in &stage.routes {
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
        let compiled = CompiledRoute {
            route_key: route.route_key.to_string(),
            api_key_required: route.api_key_required,
            action,
        };
        routes.push((route.route_key.clone(), compiled));
    }
    RouteTable::compile(routes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(stages: serde_json::Value) -> Result<CompiledConfig, CompileFailure> {
        let stages: Vec<DeployedStage> = serde_json::from_value(stages).expect("valid stages");
        CompiledConfig::compile(&ConfigSnapshot::new(1, stages))
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
