//! The phases a matched route's requests go through before they are answered, chosen for
//! each route when its snapshot is compiled: a route pays only for what it uses. In
//! order: authorize (a JWT authorizer or a REQUEST authorizer), authenticate the API key,
//! admit (throttles and quota). A new check of the request path is one more variant here,
//! one more module for its work and one more line in [`Phase::for_route`].
//!
//! Phases run while the snapshot is held, so they never wait on the network: one that
//! must (an issuer's keys to fetch, an authorizer to ask) halts with an [`Errand`]; the
//! pipeline runs it once the snapshot is let go and then runs the phases again, the
//! errand's result waiting on the request's context. Authorization comes first, so a
//! second run repeats nothing that counts.

use std::sync::Arc;

use gatehouse_model::jwt::Refusal as TokenRefusal;
use gatehouse_model::DeployedRoute;
use http::Request;
use serde_json::{Map, Value};

use crate::admission::{self, api_key, Refusal};
use crate::authorizers::{jwt, request, Errand, Fetched, JwtAuthorizer, Live, RequestAuthorizer};
use crate::request::context::{Authorized, RequestContext};
use crate::request::errors::Reject;
use crate::request::resolve::Matched;

/// One phase of a route, with what it needs.
#[derive(Clone)]
pub enum Phase {
    /// Authorize with a JWT: verified, and granting one of the scopes (if any).
    Jwt(Arc<JwtAuthorizer>, Box<[String]>),
    /// Authorize by asking a REQUEST authorizer (or its cached answer).
    Custom(Arc<RequestAuthorizer>),
    /// Authenticate: the `x-api-key` header names an enabled key whose plans cover the
    /// stage.
    ApiKey,
    /// Admit: the key's plan or route throttle, the stage's throttle, then the key's
    /// quota. Every route has it: every stage has a throttle.
    Admit,
}

impl std::fmt::Debug for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Phase::Jwt(a, scopes) => write!(f, "Jwt({}, {scopes:?})", a.name),
            Phase::Custom(a) => write!(f, "Custom({})", a.name),
            Phase::ApiKey => f.write_str("ApiKey"),
            Phase::Admit => f.write_str("Admit"),
        }
    }
}

/// Why the phases stopped.
pub enum Halt {
    Reject(Reject),
    /// Boxed: admission's refusals carry their headers, and this is on every phase's
    /// return path.
    Refused(Box<Refusal>),
    /// Network work to do before the phases can decide.
    Errand(Errand),
}

impl From<Refusal> for Halt {
    fn from(refusal: Refusal) -> Halt {
        Halt::Refused(Box::new(refusal))
    }
}

impl From<Reject> for Halt {
    fn from(reject: Reject) -> Halt {
        Halt::Reject(reject)
    }
}

impl Phase {
    /// The phases of `route`, in the order they run; `authorizer` is the live state of
    /// the authorizer it names.
    pub fn for_route(route: &DeployedRoute, authorizer: Option<Live>) -> Box<[Phase]> {
        let mut phases = Vec::with_capacity(3);
        match authorizer {
            Some(Live::Jwt(jwt)) => phases.push(Phase::Jwt(
                jwt,
                route
                    .authorization
                    .authorization_scopes
                    .clone()
                    .into_boxed_slice(),
            )),
            Some(Live::Request(custom)) => phases.push(Phase::Custom(custom)),
            None => {}
        }
        if route.api_key_required {
            phases.push(Phase::ApiKey);
        }
        phases.push(Phase::Admit);
        phases.into_boxed_slice()
    }

    /// Runs this phase for `req` to `matched`.
    pub fn run<B>(
        &self,
        cx: &mut RequestContext,
        matched: &mut Matched<'_, '_>,
        req: &Request<B>,
    ) -> Result<(), Halt> {
        match self {
            Phase::Jwt(authorizer, scopes) => authorize_jwt(cx, authorizer, scopes, req),
            Phase::Custom(authorizer) => authorize_custom(cx, matched, authorizer, req),
            Phase::ApiKey => {
                let check = api_key::check(
                    matched.config,
                    matched.stage,
                    req.headers(),
                    &cx.shared.key_use,
                );
                if let Some(key_id) = check.key_id {
                    cx.note_key(key_id);
                }
                matched.membership = Some(check.membership.ok_or(Refusal::Forbidden)?);
                Ok(())
            }
            Phase::Admit => {
                cx.admitted = admission::admit(
                    matched.config,
                    matched.stage,
                    Some(matched.route().index),
                    matched.membership,
                    &cx.shared,
                )?;
                Ok(())
            }
        }
    }
}

fn refuse(cx: &mut RequestContext, kind: &str, reason: &'static str, reject: Reject) -> Halt {
    cx.shared
        .telemetry
        .auth
        .refused
        .with_label_values(&[kind, reason])
        .inc();
    cx.auth_refusal = Some(reason);
    Halt::Reject(reject)
}

fn authorize_jwt<B>(
    cx: &mut RequestContext,
    authorizer: &Arc<JwtAuthorizer>,
    scopes: &[String],
    req: &Request<B>,
) -> Result<(), Halt> {
    let Some(token) = authorizer.token(req.headers(), req.uri().query()) else {
        return Err(refuse(
            cx,
            "jwt",
            TokenRefusal::Missing.as_str(),
            Reject::Unauthorized,
        ));
    };
    let just_fetched = matches!(&cx.fetched, Some(Fetched::Keys(a)) if Arc::ptr_eq(a, authorizer));
    match authorizer.check(&token, chrono::Utc::now().timestamp(), just_fetched) {
        jwt::Check::Verified(verified) => {
            if !verified.grants_any(scopes) {
                return Err(refuse(
                    cx,
                    "jwt",
                    TokenRefusal::Scope.as_str(),
                    Reject::InsufficientScope,
                ));
            }
            if authorizer.claim_background_refresh() {
                let (shared, authorizer) = (cx.shared.clone(), authorizer.clone());
                tokio::spawn(async move {
                    authorizer
                        .fetch_keys(&shared.auth_client, &shared.telemetry.auth)
                        .await;
                });
            }
            cx.auth = Some(Authorized::Jwt(verified));
            Ok(())
        }
        jwt::Check::Refused(refusal) => {
            Err(refuse(cx, "jwt", refusal.as_str(), Reject::InvalidToken))
        }
        jwt::Check::NeedKeys => Err(Halt::Errand(Errand::FetchKeys(authorizer.clone()))),
    }
}

fn authorize_custom<B>(
    cx: &mut RequestContext,
    matched: &Matched<'_, '_>,
    authorizer: &Arc<RequestAuthorizer>,
    req: &Request<B>,
) -> Result<(), Halt> {
    let answered = match cx.fetched.take() {
        Some(Fetched::Answer(asked, result)) if Arc::ptr_eq(&asked, authorizer) => Some(result),
        other => {
            cx.fetched = other;
            None
        }
    };
    let decision = match answered {
        Some(Ok(decision)) => decision,
        Some(Err(failure)) => {
            tracing::warn!(authorizer = %authorizer.name, error = %failure, "REQUEST authorizer failed");
            return Err(refuse(cx, "request", "error", Reject::InternalError));
        }
        None => {
            let route = matched.route();
            let mut path_parameters = Map::new();
            for (i, name) in route.param_names.iter().enumerate() {
                path_parameters.insert(
                    name.to_string(),
                    Value::String(matched.found.param(i).to_owned()),
                );
            }
            let request_id = cx.request_id.to_str().unwrap_or("").to_owned();
            let source_ip = cx.peer.ip.to_str().unwrap_or("").to_owned();
            let asking = request::Asking {
                method: req.method().as_str(),
                path: req.uri().path(),
                query: req.uri().query(),
                headers: req.headers(),
                route_key: &route.route_key,
                stage: &matched.stage.info.name,
                api_id: matched.stage.info.api_id,
                request_id: &request_id,
                source_ip: &source_ip,
                path_parameters,
                stage_variables: matched.stage.info.variables.as_map(),
            };
            match authorizer.check(&asking) {
                request::Check::Answered(decision) => decision,
                request::Check::MissingIdentity => {
                    return Err(refuse(cx, "request", "missing", Reject::Unauthorized))
                }
                request::Check::Ask(question) => {
                    return Err(Halt::Errand(Errand::Ask(authorizer.clone(), question)))
                }
            }
        }
    };
    if !decision.allowed {
        return Err(refuse(cx, "request", "denied", Reject::Forbidden));
    }
    cx.auth = Some(Authorized::Custom(decision));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(api_key_required: bool) -> DeployedRoute {
        serde_json::from_value(serde_json::json!({
            "id": "00000000-0000-0000-0000-000000000000",
            "route_key": "GET /a",
            "api_key_required": api_key_required,
            "integration": {"type": "MOCK"}
        }))
        .expect("a route")
    }

    fn names(phases: &[Phase]) -> Vec<String> {
        phases.iter().map(|p| format!("{p:?}")).collect()
    }

    #[test]
    fn a_route_without_a_key_is_only_admitted() {
        assert_eq!(names(&Phase::for_route(&route(false), None)), ["Admit"]);
        assert_eq!(
            names(&Phase::for_route(&route(true), None)),
            ["ApiKey", "Admit"]
        );
    }
}
