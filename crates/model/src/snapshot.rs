//! The configuration snapshot the control plane sends to proxies: every deployed stage of
//! every API, versioned and sealed with a content hash so that a proxy (or its disk cache)
//! can tell a whole snapshot from a damaged one.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::integration::Integration;
use crate::names::{ApiSlug, StageName, StageVariables};
use crate::route_key::RouteKey;

/// The protocol of an API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// A route as frozen in a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployedRoute {
    pub id: Uuid,
    pub route_key: RouteKey,
    #[serde(default)]
    pub api_key_required: bool,
    pub integration: Integration,
}

/// One stage of one API, with the routes of the deployment it points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployedStage {
    pub api_id: Uuid,
    pub api_slug: ApiSlug,
    pub protocol: Protocol,
    pub stage: StageName,
    pub deployment_id: Uuid,
    pub variables: StageVariables,
    pub routes: Vec<DeployedRoute>,
}

/// Everything a proxy serves, as one value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSnapshot {
    /// Increases with every change to what is deployed.
    pub version: i64,
    /// SHA-256 of the serialized `stages`, in hex.
    pub hash: String,
    pub stages: Vec<DeployedStage>,
}

/// Why a snapshot was refused.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is not valid JSON of the expected shape: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("snapshot content does not match its hash (damaged or truncated)")]
    HashMismatch,
}

impl ConfigSnapshot {
    /// Seals `stages` as version `version`.
    pub fn new(version: i64, stages: Vec<DeployedStage>) -> ConfigSnapshot {
        let hash = content_hash(&stages);
        ConfigSnapshot { version, hash, stages }
    }

    /// Decodes a snapshot and checks its hash.
    pub fn decode(bytes: &[u8]) -> Result<ConfigSnapshot, SnapshotError> {
        let snapshot: ConfigSnapshot = serde_json::from_slice(bytes)?;
        if content_hash(&snapshot.stages) != snapshot.hash {
            return Err(SnapshotError::HashMismatch);
        }
        Ok(snapshot)
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data structures to a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

fn content_hash(stages: &[DeployedStage]) -> String {
    let bytes = serde_json::to_vec(stages).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
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
        ConfigSnapshot::new(3, vec![stage])
    }

    #[test]
    fn a_sealed_snapshot_decodes_back_to_itself() {
        let s = sample();
        assert_eq!(ConfigSnapshot::decode(&s.encode()).expect("decodes"), s);
    }

    #[test]
    fn a_changed_or_truncated_snapshot_is_refused() {
        let s = sample();
        let tampered = String::from_utf8(s.encode()).expect("utf8").replace("/pets/{id}\"", "/cats/{id}\"");
        assert!(matches!(ConfigSnapshot::decode(tampered.as_bytes()), Err(SnapshotError::HashMismatch)));
        let bytes = s.encode();
        assert!(matches!(ConfigSnapshot::decode(&bytes[..bytes.len() / 2]), Err(SnapshotError::Decode(_))));
    }
}
