//! A REQUEST authorizer at run time (AWS's Lambda authorizer, over HTTP): the request's
//! identity is posted to the authorizer's URI in AWS's payload format 2.0, and its simple
//! response `{"isAuthorized": bool, "context": {...}}` decides. Answers are cached by the
//! identity values for the authorizer's TTL. A request missing an identity value is
//! refused (401) without a call; an authorizer that fails, times out or answers
//! anything else refuses with 500, as AWS.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gatehouse_model::authorizer::ContextValue;
use gatehouse_model::{DeployedAuthorizer, IdentitySource};
use http::{HeaderMap, Method};
use quick_cache::sync::Cache;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::authorizers::fetch::exchange;
use crate::authorizers::jwt::form_urlencoded_values;
use crate::upstream::EventClient;

/// How long an authorizer may take, as AWS.
pub const CALL_DEADLINE: Duration = Duration::from_secs(10);
/// Largest answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Most answers kept per authorizer.
pub const ANSWER_CACHE_ENTRIES: usize = 10_000;

/// An authorizer's answer.
#[derive(Debug)]
pub struct Decision {
    pub allowed: bool,
    /// Its `context`, for parameter mapping (`$context.authorizer.<key>`).
    pub context: Map<String, Value>,
    at: Instant,
}

impl Decision {
    /// A context value as text: strings as they are, other values as JSON.
    pub fn value_text(&self, key: &str) -> Option<String> {
        match self.context.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }
}

/// Why an authorizer gave no answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Failure(pub String);

/// A call to make: the payload, and where its answer is cached.
pub struct Question {
    key: [u8; 32],
    payload: Bytes,
}

/// What a request is, for the payload: filled in by the phase from the request.
pub struct Asking<'r> {
    pub method: &'r str,
    pub path: &'r str,
    pub query: Option<&'r str>,
    pub headers: &'r HeaderMap,
    pub route_key: &'r str,
    pub stage: &'r str,
    pub api_id: Uuid,
    pub request_id: &'r str,
    pub source_ip: &'r str,
    pub path_parameters: Map<String, Value>,
    pub stage_variables: &'r std::collections::BTreeMap<String, String>,
}

pub struct RequestAuthorizer {
    pub id: Uuid,
    pub name: String,
    uri: http::Uri,
    sources: Vec<IdentitySource>,
    ttl: Duration,
    answers: Cache<[u8; 32], Arc<Decision>>,
}

/// The outcome short of the network.
pub enum Check {
    Answered(Arc<Decision>),
    /// An identity source has no value: 401 without a call.
    MissingIdentity,
    Ask(Question),
}

impl RequestAuthorizer {
    pub fn new(deployed: &DeployedAuthorizer) -> Result<RequestAuthorizer, String> {
        let uri = deployed
            .spec
            .authorizer_uri
            .as_deref()
            .ok_or("a REQUEST authorizer without a URI")?
            .parse()
            .map_err(|e| format!("authorizer_uri: {e}"))?;
        Ok(RequestAuthorizer {
            id: deployed.id,
            name: deployed.spec.name.clone(),
            uri,
            sources: deployed.spec.identity_source.clone(),
            ttl: Duration::from_secs(u64::from(deployed.spec.authorizer_result_ttl_in_seconds)),
            answers: Cache::new(ANSWER_CACHE_ENTRIES),
        })
    }

    /// The identity values of a request, in the order of the sources; `None` when one
    /// is missing or empty.
    fn identity(&self, asking: &Asking<'_>) -> Option<Vec<String>> {
        let mut values = Vec::with_capacity(self.sources.len());
        for source in &self.sources {
            let value = match source {
                IdentitySource::Header(name) => {
                    let joined: Vec<&str> = asking
                        .headers
                        .get_all(name.as_str())
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .collect();
                    joined.join(",")
                }
                IdentitySource::QueryString(name) => asking
                    .query
                    .map(|q| form_urlencoded_values(q, name).join(","))
                    .unwrap_or_default(),
                IdentitySource::StageVariable(name) => asking
                    .stage_variables
                    .get(name)
                    .cloned()
                    .unwrap_or_default(),
                IdentitySource::Context(value) => context_value(*value, asking),
            };
            if value.is_empty() {
                return None;
            }
            values.push(value);
        }
        Some(values)
    }

    /// Looks for a cached answer for the request's identity, or says what to ask.
    pub fn check(&self, asking: &Asking<'_>) -> Check {
        let Some(identity) = self.identity(asking) else {
            return Check::MissingIdentity;
        };
        let mut hasher = Sha256::new();
        for value in &identity {
            hasher.update((value.len() as u64).to_be_bytes());
            hasher.update(value.as_bytes());
        }
        let key: [u8; 32] = hasher.finalize().into();
        if let Some(hit) = self.answers.get(&key) {
            if hit.at.elapsed() < self.ttl {
                return Check::Answered(hit);
            }
            self.answers.remove(&key);
        }
        Check::Ask(Question {
            key,
            payload: payload(asking, &identity),
        })
    }

    /// Asks the authorizer, and caches its answer for the TTL.
    pub async fn ask(
        &self,
        client: &EventClient,
        question: Question,
    ) -> Result<Arc<Decision>, Failure> {
        let body = exchange(
            client,
            Method::POST,
            &self.uri,
            Some(question.payload),
            CALL_DEADLINE,
            MAX_ANSWER_BYTES,
        )
        .await
        .map_err(|e| Failure(e.to_string()))?;
        let decision = Arc::new(parse_answer(&body)?);
        if !self.ttl.is_zero() {
            self.answers.insert(question.key, decision.clone());
        }
        Ok(decision)
    }
}

fn context_value(value: ContextValue, asking: &Asking<'_>) -> String {
    match value {
        ContextValue::RequestId => asking.request_id.to_owned(),
        ContextValue::HttpMethod => asking.method.to_owned(),
        ContextValue::Path => asking.path.to_owned(),
        ContextValue::SourceIp => asking.source_ip.to_owned(),
        ContextValue::Stage => asking.stage.to_owned(),
        ContextValue::RouteKey => asking.route_key.to_owned(),
        ContextValue::ApiId => asking.api_id.to_string(),
    }
}

/// AWS's simple response: `isAuthorized` must be a boolean; `context`, if there, an object.
fn parse_answer(body: &[u8]) -> Result<Decision, Failure> {
    let answer: Value = serde_json::from_slice(body)
        .map_err(|e| Failure(format!("the answer is not JSON: {e}")))?;
    let allowed = answer
        .get("isAuthorized")
        .and_then(Value::as_bool)
        .ok_or_else(|| Failure("the answer has no boolean `isAuthorized`".to_owned()))?;
    let context = match answer.get("context") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(context)) => context.clone(),
        Some(_) => {
            return Err(Failure(
                "the answer's `context` is not an object".to_owned(),
            ))
        }
    };
    Ok(Decision {
        allowed,
        context,
        at: Instant::now(),
    })
}

/// AWS's payload format 2.0 for a REQUEST authorizer.
fn payload(asking: &Asking<'_>, identity: &[String]) -> Bytes {
    let mut headers = Map::new();
    for name in asking.headers.keys() {
        let joined: Vec<&str> = asking
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        headers.insert(name.as_str().to_owned(), Value::String(joined.join(",")));
    }
    let mut query = Map::new();
    for pair in asking
        .query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (
            crate::authorizers::jwt::decode(k),
            crate::authorizers::jwt::decode(v),
        );
        match query.get_mut(k.as_ref()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                query.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
    }
    let now = chrono::Utc::now();
    let body = json!({
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": format!("arn:gatehouse:execute-api:local::{}/{}/{}", asking.api_id, asking.stage, asking.route_key),
        "identitySource": identity,
        "routeKey": asking.route_key,
        "rawPath": asking.path,
        "rawQueryString": asking.query.unwrap_or(""),
        "headers": headers,
        "queryStringParameters": query,
        "pathParameters": asking.path_parameters,
        "stageVariables": asking.stage_variables,
        "requestContext": {
            "apiId": asking.api_id.to_string(),
            "http": {
                "method": asking.method,
                "path": asking.path,
                "protocol": "HTTP/1.1",
                "sourceIp": asking.source_ip,
                "userAgent": asking.headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or(""),
            },
            "requestId": asking.request_id,
            "routeKey": asking.route_key,
            "stage": asking.stage,
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
    });
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_boolean_is_authorized_and_a_context_is_an_object() {
        assert!(
            parse_answer(br#"{"isAuthorized": true, "context": {"user": "u1"}}"#)
                .expect("ok")
                .allowed
        );
        assert!(
            !parse_answer(br#"{"isAuthorized": false}"#)
                .expect("ok")
                .allowed
        );
        for garbage in [
            &b"{}"[..],
            br#"{"isAuthorized": "true"}"#,
            br#"{"isAuthorized": 1}"#,
            br#"{"isAuthorized": true, "context": []}"#,
            b"<html>",
            b"",
        ] {
            assert!(
                parse_answer(garbage).is_err(),
                "{}",
                String::from_utf8_lossy(garbage)
            );
        }
    }
}
