//! Shared vocabulary of Gatehouse: what a route key, an integration and a deployed
//! configuration snapshot are, and how a stage's routes are compiled into a matcher.
//!
//! Both planes depend on this crate, so the control plane rejects at the admin API exactly
//! what the proxy would fail to compile. Nothing here does I/O.

pub mod authorizer;
pub mod cors;
pub mod integration;
pub mod jwt;
pub mod mapping;
pub mod matcher;
pub mod metrics;
pub mod names;
mod openapi;
pub mod request_path;
pub mod route_key;
pub mod snapshot;
pub mod usage;
pub mod websocket;

pub use authorizer::{
    AuthorizationType, AuthorizerSpec, AuthorizerType, DeployedAuthorizer, IdentitySource,
    RouteAuthorization,
};
pub use cors::CorsConfiguration;
pub use integration::{HttpProxyIntegration, Integration, MockIntegration, UriTemplate};
pub use matcher::{CompileError, RouteMatch, RouteTable};
pub use names::{ApiSlug, NameError, StageName, StageVariables};
pub use route_key::{Method, RouteKey, RouteKeyError};
pub use snapshot::{
    ConfigSnapshot, DeployedRoute, DeployedStage, Protocol, DEFAULT_STAGE_THROTTLE,
};
pub use usage::{DeployedKey, DeployedPlan, PlanStage, Quota, QuotaPeriod, Throttle};
pub use websocket::{RouteSelection, WebSocketLimits};
