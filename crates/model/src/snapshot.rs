//! The configuration snapshot the control plane sends to proxies: every deployed stage of
//! every API, versioned and sealed with a content hash so that a proxy (or its disk cache)
//! can tell a whole snapshot from a damaged one.
//!
//! Compatibility: fields a proxy does not know are ignored, so a newer control plane can
//! add some; a change old proxies cannot serve raises [`SCHEMA`]. The hash covers the
//! `stages` bytes exactly as sent, not a re-serialization.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
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

/// The snapshot format this build writes and reads.
pub const SCHEMA: u32 = 1;

/// A route as frozen in a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployedRoute {
    pub id: Uuid,
    pub route_key: RouteKey,
    #[serde(default)]
    pub api_key_required: bool,
    pub integration: Integration,
}

/// One stage of one API, with the routes of the deployment it points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
pub struct ConfigSnapshot {
    pub schema: u32,
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
    #[error("snapshot schema {0} is not supported by this build (it reads schema {SCHEMA}); upgrade the proxy")]
    UnsupportedSchema(u32),
}

/// The snapshot as received, before its stages are trusted.
#[derive(Deserialize)]
struct Envelope<'a> {
    schema: u32,
    version: i64,
    hash: String,
    #[serde(borrow)]
    stages: &'a RawValue,
}

impl ConfigSnapshot {
    /// Seals `stages` as version `version`.
    pub fn new(version: i64, stages: Vec<DeployedStage>) -> ConfigSnapshot {
        let hash = hex::encode(Sha256::digest(
            serde_json::to_vec(&stages).unwrap_or_default(),
        ));
        ConfigSnapshot {
            schema: SCHEMA,
            version,
            hash,
            stages,
        }
    }

    /// Decodes a snapshot, checking its schema and that its stages hash to its hash.
    pub fn decode(bytes: &[u8]) -> Result<ConfigSnapshot, SnapshotError> {
        let envelope: Envelope<'_> = serde_json::from_slice(bytes)?;
        if envelope.schema != SCHEMA {
            return Err(SnapshotError::UnsupportedSchema(envelope.schema));
        }
        if hex::encode(Sha256::digest(envelope.stages.get().as_bytes())) != envelope.hash {
            return Err(SnapshotError::HashMismatch);
        }
        let stages = serde_json::from_str(envelope.stages.get())?;
        Ok(ConfigSnapshot {
            schema: envelope.schema,
            version: envelope.version,
            hash: envelope.hash,
            stages,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data structures to a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
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
            .replacen(r#""schema":1"#, r#""schema":2"#, 1)
            .into_bytes();
        assert!(matches!(
            ConfigSnapshot::decode(&newer),
            Err(SnapshotError::UnsupportedSchema(2))
        ));
    }
}
