//! The configuration snapshot the control plane sends to proxies: every deployed stage of
//! every API, versioned and sealed with a content hash so that a proxy (or its disk cache)
//! can tell a whole snapshot from a damaged one.
//!
//! Compatibility: fields a proxy does not know are ignored, so a newer control plane can
//! add some; a change old proxies cannot serve raises [`SCHEMA`]. The hash covers the
//! content bytes exactly as sent, not a re-serialization.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::authorizer::{DeployedAuthorizer, RouteAuthorization};
use crate::cors::CorsConfiguration;
use crate::integration::Integration;
use crate::names::{ApiSlug, StageName, StageVariables};
use crate::route_key::RouteKey;
use crate::usage::{DeployedKey, DeployedPlan, Throttle};
use crate::websocket::{RouteSelection, WebSocketLimits};

/// The protocol of an API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Http,
    Websocket,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Websocket => "WEBSOCKET",
        }
    }

    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "HTTP" => Some(Protocol::Http),
            "WEBSOCKET" => Some(Protocol::Websocket),
            _ => None,
        }
    }
}

/// The snapshot format this build writes. Schema 2 added authorizers, CORS and parameter
/// mapping: a proxy that ignored them would let unauthorized calls through, so schema-1
/// proxies refuse it, while this build still reads a schema-1 snapshot from its disk cache.
pub const SCHEMA: u32 = 2;
/// The oldest snapshot format this build reads.
pub const OLDEST_SCHEMA: u32 = 1;

/// A route as frozen in a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeployedRoute {
    pub id: Uuid,
    pub route_key: RouteKey,
    #[serde(default)]
    pub api_key_required: bool,
    /// Who may call it: nobody checked, a JWT authorizer or a REQUEST authorizer.
    #[serde(flatten)]
    pub authorization: RouteAuthorization,
    pub integration: Integration,
}

/// The throttle every stage has unless told otherwise: AWS's account default.
pub const DEFAULT_STAGE_THROTTLE: Throttle = Throttle {
    rate: 10_000.0,
    burst: 5_000,
};

fn default_stage_throttle() -> Throttle {
    DEFAULT_STAGE_THROTTLE
}

/// One stage of one API, with the routes of the deployment it points at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployedStage {
    pub api_id: Uuid,
    pub api_slug: ApiSlug,
    pub protocol: Protocol,
    pub stage: StageName,
    pub deployment_id: Uuid,
    pub variables: StageVariables,
    /// Throttle for all traffic of the stage, keyed or not.
    #[serde(default = "default_stage_throttle")]
    pub throttle: Throttle,
    /// Proxies write one JSON line per request of this stage to their access log.
    #[serde(default)]
    pub access_log: bool,
    /// WebSocket APIs: how a message's route is chosen, as frozen in the deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_selection: Option<RouteSelection>,
    /// WebSocket APIs: the limits of the stage's connections.
    #[serde(default)]
    pub websocket: WebSocketLimits,
    pub routes: Vec<DeployedRoute>,
    /// The API's authorizers, as frozen in the deployment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorizers: Vec<DeployedAuthorizer>,
    /// The API's CORS configuration, as frozen in the deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsConfiguration>,
}

/// Everything a proxy serves, as one value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigSnapshot {
    pub schema: u32,
    /// Increases with every change to what is deployed.
    pub version: i64,
    /// SHA-256, in hex, of the serialized content (stages, keys, plans).
    pub hash: String,
    pub stages: Vec<DeployedStage>,
    pub keys: Vec<DeployedKey>,
    pub plans: Vec<DeployedPlan>,
}

/// Why a snapshot was refused.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is not valid JSON of the expected shape: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("snapshot content does not match its hash (damaged or truncated)")]
    HashMismatch,
    #[error("snapshot schema {0} is not supported by this build (it reads schema {SCHEMA}); upgrade the proxy")]
    UnsupportedSchema(u32),
}

/// What the hash covers.
#[derive(Serialize)]
struct ContentRef<'a> {
    stages: &'a [DeployedStage],
    keys: &'a [DeployedKey],
    plans: &'a [DeployedPlan],
}

#[derive(Deserialize)]
struct Content {
    stages: Vec<DeployedStage>,
    #[serde(default)]
    keys: Vec<DeployedKey>,
    #[serde(default)]
    plans: Vec<DeployedPlan>,
}

/// The snapshot as received, before its content is trusted.
#[derive(Deserialize)]
struct Envelope<'a> {
    schema: u32,
    version: i64,
    hash: String,
    #[serde(borrow)]
    content: &'a RawValue,
}

impl ConfigSnapshot {
    /// Seals the content as version `version`.
    pub fn new(
        version: i64,
        stages: Vec<DeployedStage>,
        keys: Vec<DeployedKey>,
        plans: Vec<DeployedPlan>,
    ) -> ConfigSnapshot {
        let content = serde_json::to_vec(&ContentRef {
            stages: &stages,
            keys: &keys,
            plans: &plans,
        })
        .unwrap_or_default();
        let hash = hex::encode(Sha256::digest(&content));
        ConfigSnapshot {
            schema: SCHEMA,
            version,
            hash,
            stages,
            keys,
            plans,
        }
    }

    /// Decodes a snapshot, checking its schema and that its content hashes to its hash.
    pub fn decode(bytes: &[u8]) -> Result<ConfigSnapshot, SnapshotError> {
        let envelope: Envelope<'_> = serde_json::from_slice(bytes)?;
        if !(OLDEST_SCHEMA..=SCHEMA).contains(&envelope.schema) {
            return Err(SnapshotError::UnsupportedSchema(envelope.schema));
        }
        if hex::encode(Sha256::digest(envelope.content.get().as_bytes())) != envelope.hash {
            return Err(SnapshotError::HashMismatch);
        }
        let content: Content = serde_json::from_str(envelope.content.get())?;
        Ok(ConfigSnapshot {
            schema: envelope.schema,
            version: envelope.version,
            hash: envelope.hash,
            stages: content.stages,
            keys: content.keys,
            plans: content.plans,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        // The content is written once and embedded as is, so the bytes hashed are the bytes
        // sent. Serializing plain data cannot fail; the hash is hex, safe to embed.
        let content = serde_json::to_vec(&ContentRef {
            stages: &self.stages,
            keys: &self.keys,
            plans: &self.plans,
        })
        .unwrap_or_default();
        let head = format!(
            r#"{{"schema":{},"version":{},"hash":"{}","content":"#,
            self.schema, self.version, self.hash
        );
        let mut out = Vec::with_capacity(head.len() + content.len() + 1);
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(&content);
        out.push(b'}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ConfigSnapshot {
        let stage: DeployedStage = serde_json::from_value(serde_json::json!({
            "api_id": Uuid::nil(), "api_slug": "pets", "protocol": "HTTP", "stage": "prod",
            "deployment_id": Uuid::nil(), "variables": {"host": "a"},
            "routes": [{"id": Uuid::nil(), "route_key": "GET /pets/{id}",
                        "integration": {"type": "HTTP_PROXY", "uri": "http://a/pets/{id}"}}]
        }))
        .expect("valid stage");
        ConfigSnapshot::new(3, vec![stage], Vec::new(), Vec::new())
    }

    #[test]
    fn a_sealed_snapshot_decodes_back_to_itself() {
        let s = sample();
        assert_eq!(ConfigSnapshot::decode(&s.encode()).expect("decodes"), s);
    }

    #[test]
    fn a_changed_or_truncated_snapshot_is_refused() {
        let s = sample();
        let tampered = String::from_utf8(s.encode())
            .expect("utf8")
            .replace("/pets/{id}\"", "/cats/{id}\"");
        assert!(matches!(
            ConfigSnapshot::decode(tampered.as_bytes()),
            Err(SnapshotError::HashMismatch)
        ));
        let bytes = s.encode();
        assert!(matches!(
            ConfigSnapshot::decode(&bytes[..bytes.len() / 2]),
            Err(SnapshotError::Decode(_))
        ));
    }

    #[test]
    fn fields_added_by_a_newer_control_plane_are_ignored_but_a_new_schema_is_refused() {
        let s = sample();
        let encoded = String::from_utf8(s.encode()).expect("utf8");
        let with_extra = encoded.replacen('{', r#"{"usage_plans":[{"id":1}],"#, 1);
        assert_eq!(
            ConfigSnapshot::decode(with_extra.as_bytes()).expect("decodes"),
            s
        );
        let newer = encoded
            .replacen(r#""schema":2"#, r#""schema":3"#, 1)
            .into_bytes();
        assert!(matches!(
            ConfigSnapshot::decode(&newer),
            Err(SnapshotError::UnsupportedSchema(3))
        ));
        let older = encoded
            .replacen(r#""schema":2"#, r#""schema":1"#, 1)
            .into_bytes();
        assert!(ConfigSnapshot::decode(&older).is_ok());
    }
}
