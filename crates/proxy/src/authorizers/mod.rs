//! Authorizers at run time: the state a JWT or REQUEST authorizer keeps between requests
//! (an issuer's keys, verified tokens, cached answers), kept across snapshots so a deploy
//! neither refetches keys nor forgets answers. A compiled route holds its authorizer's
//! state through an `Arc` taken from [`Authorizers`] at compile time; the request phases
//! that use them are in `request::phases`.
//!
//! Network work (fetching keys, calling an authorizer) never happens while the snapshot is
//! held: a phase that needs it hands the pipeline an [`Errand`], which runs it after the
//! snapshot is let go and then runs the phases again.

pub mod fetch;
pub mod jwt;
pub mod metrics;
pub mod request;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use gatehouse_model::{AuthorizerSpec, AuthorizerType, DeployedAuthorizer};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use jwt::JwtAuthorizer;
pub use request::{Decision, RequestAuthorizer};

/// Network work a phase needs done before it can decide.
pub enum Errand {
    /// Fetch the issuer's keys (first use, or a token names a key not yet seen).
    FetchKeys(Arc<JwtAuthorizer>),
    /// Ask a REQUEST authorizer, with this payload, under this cache key.
    Ask(Arc<RequestAuthorizer>, request::Question),
}

/// What an errand brought back, for the phases' second run.
pub enum Fetched {
    /// The keys were fetched (or tried): a token whose key is still unknown is refused.
    Keys(Arc<JwtAuthorizer>),
    /// A REQUEST authorizer's answer.
    Answer(
        Arc<RequestAuthorizer>,
        Result<Arc<Decision>, request::Failure>,
    ),
}

/// The run-time state of every authorizer deployed, by id and definition: a changed
/// definition starts afresh.
#[derive(Default)]
pub struct Authorizers {
    jwt: ByDefinition<JwtAuthorizer>,
    request: ByDefinition<RequestAuthorizer>,
}

/// Authorizers' state by id and the fingerprint of their definition.
type ByDefinition<T> = Mutex<HashMap<(Uuid, [u8; 32]), Arc<T>>>;

/// One authorizer's state, of its kind.
#[derive(Clone)]
pub enum Live {
    Jwt(Arc<JwtAuthorizer>),
    Request(Arc<RequestAuthorizer>),
}

fn fingerprint(spec: &AuthorizerSpec) -> [u8; 32] {
    let bytes = serde_json::to_vec(spec).unwrap_or_default();
    Sha256::digest(bytes).into()
}

impl Authorizers {
    /// The state of `deployed`, made on first use. Called when a snapshot is compiled.
    pub fn get(&self, deployed: &DeployedAuthorizer) -> Result<Live, String> {
        let key = (deployed.id, fingerprint(&deployed.spec));
        match deployed.spec.authorizer_type {
            AuthorizerType::Jwt => {
                let mut map = self.jwt.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(found) = map.get(&key) {
                    return Ok(Live::Jwt(found.clone()));
                }
                let made = Arc::new(JwtAuthorizer::new(deployed)?);
                map.insert(key, made.clone());
                Ok(Live::Jwt(made))
            }
            AuthorizerType::Request => {
                let mut map = self.request.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(found) = map.get(&key) {
                    return Ok(Live::Request(found.clone()));
                }
                let made = Arc::new(RequestAuthorizer::new(deployed)?);
                map.insert(key, made.clone());
                Ok(Live::Request(made))
            }
        }
    }

    /// Lets go of the state of authorizers no compiled snapshot holds any more.
    pub fn retain_used(&self) {
        self.jwt
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, a| Arc::strong_count(a) > 1);
        self.request
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, a| Arc::strong_count(a) > 1);
    }
}
