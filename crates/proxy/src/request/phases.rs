//! The phases a matched route's requests go through before they are answered, chosen for
//! each route when its snapshot is compiled: a route pays only for what it uses. Today
//! they are authenticate (the API key) and admit (throttles and quota); an authorizer,
//! request validation or parameter mapping is one more variant here, one more module for
//! its work and one more line in [`Phase::for_route`], and the pipeline stays as it is.
//!
//! Phases run in their order in the route's list while the snapshot is held, so they
//! never wait on the network; what must (a quota shared through Redis) is left on the
//! request's context for after the snapshot is let go.

use gatehouse_model::DeployedRoute;
use http::HeaderMap;

use crate::admission::{self, api_key, Refusal};
use crate::request::context::RequestContext;
use crate::request::resolve::Matched;

/// One phase of a route, with what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Authenticate: the `x-api-key` header names an enabled key whose plans cover the
    /// stage.
    ApiKey,
    /// Admit: the key's plan or route throttle, the stage's throttle, then the key's
    /// quota. Every route has it: every stage has a throttle.
    Admit,
}

impl Phase {
    /// The phases of `route`, in the order they run.
    pub fn for_route(route: &DeployedRoute) -> Box<[Phase]> {
        let mut phases = Vec::with_capacity(2);
        if route.api_key_required {
            phases.push(Phase::ApiKey);
        }
        phases.push(Phase::Admit);
        phases.into_boxed_slice()
    }

    /// Runs this phase for a request with `headers` to `matched`.
    pub fn run(
        &self,
        cx: &mut RequestContext,
        matched: &mut Matched<'_, '_>,
        headers: &HeaderMap,
    ) -> Result<(), Refusal> {
        match self {
            Phase::ApiKey => {
                let check =
                    api_key::check(matched.config, matched.stage, headers, &cx.shared.key_use);
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

    #[test]
    fn a_route_without_a_key_is_only_admitted() {
        assert_eq!(&*Phase::for_route(&route(false)), &[Phase::Admit]);
        assert_eq!(
            &*Phase::for_route(&route(true)),
            &[Phase::ApiKey, Phase::Admit]
        );
    }
}
