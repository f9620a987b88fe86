//! Authorizers: who may call a route, as AWS HTTP APIs have them. A JWT authorizer checks
//! a token from an identity provider against its issuer's keys; a REQUEST authorizer asks
//! an HTTP endpoint (AWS's Lambda authorizer, payload format 2.0, simple responses). A
//! route names one with its [`RouteAuthorization`]. Everything is checked when parsed, so
//! a stored authorizer is one the proxy can run.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Most authorizers one API may have (AWS: 10).
pub const MAX_AUTHORIZERS_PER_API: usize = 10;
/// Most scopes a route may require.
pub const MAX_SCOPES: usize = 32;
/// Most identity sources of a REQUEST authorizer.
pub const MAX_IDENTITY_SOURCES: usize = 10;
/// Most audiences of a JWT authorizer.
pub const MAX_AUDIENCES: usize = 20;
/// Longest issuer, JWKS or authorizer URI.
pub const MAX_URL_LEN: usize = 2048;
/// Longest result TTL of a REQUEST authorizer, as AWS.
pub const MAX_RESULT_TTL_SECONDS: u32 = 3600;
/// A REQUEST authorizer's result TTL unless told otherwise, as AWS.
pub const DEFAULT_RESULT_TTL_SECONDS: u32 = 300;
/// The identity source of a JWT authorizer unless told otherwise, as AWS.
pub const DEFAULT_JWT_IDENTITY_SOURCE: &str = "$request.header.Authorization";

/// What kind of authorizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum AuthorizerType {
    /// Checks a JSON Web Token against its issuer's published keys.
    Jwt,
    /// Calls an HTTP endpoint with the request's identity (AWS's payload format 2.0).
    Request,
}

impl AuthorizerType {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorizerType::Jwt => "JWT",
            AuthorizerType::Request => "REQUEST",
        }
    }
}

/// Where an identity comes from: `$request.header.<name>`, `$request.querystring.<name>`,
/// `$stageVariables.<name>` or `$context.<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum IdentitySource {
    /// A request header; the name is kept in lower case.
    Header(String),
    QueryString(String),
    StageVariable(String),
    Context(ContextValue),
}

/// The `$context` values an identity source or a parameter mapping may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContextValue {
    RequestId,
    HttpMethod,
    Path,
    SourceIp,
    Stage,
    RouteKey,
    ApiId,
}

impl ContextValue {
    pub fn parse(name: &str) -> Option<ContextValue> {
        Some(match name {
            "requestId" => ContextValue::RequestId,
            "httpMethod" => ContextValue::HttpMethod,
            "path" => ContextValue::Path,
            "identity.sourceIp" => ContextValue::SourceIp,
            "stage" => ContextValue::Stage,
            "routeKey" => ContextValue::RouteKey,
            "apiId" => ContextValue::ApiId,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ContextValue::RequestId => "requestId",
            ContextValue::HttpMethod => "httpMethod",
            ContextValue::Path => "path",
            ContextValue::SourceIp => "identity.sourceIp",
            ContextValue::Stage => "stage",
            ContextValue::RouteKey => "routeKey",
            ContextValue::ApiId => "apiId",
        }
    }
}

/// A name after `header.`, `querystring.` or `stageVariables.`: what a header name may be.
pub(crate) fn check_param_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 {
        return Err("a name must be 1 to 128 characters".to_owned());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
    {
        return Err(format!(
            "`{}` may hold only letters, digits, `-`, `_`, `.` and `~`",
            name.escape_default()
        ));
    }
    Ok(())
}

impl IdentitySource {
    pub fn parse(raw: &str) -> Result<IdentitySource, String> {
        let source = if let Some(name) = raw.strip_prefix("$request.header.") {
            check_param_name(name)?;
            IdentitySource::Header(name.to_ascii_lowercase())
        } else if let Some(name) = raw.strip_prefix("$request.querystring.") {
            check_param_name(name)?;
            IdentitySource::QueryString(name.to_owned())
        } else if let Some(name) = raw.strip_prefix("$stageVariables.") {
            check_param_name(name)?;
            IdentitySource::StageVariable(name.to_owned())
        } else if let Some(name) = raw.strip_prefix("$context.") {
            IdentitySource::Context(ContextValue::parse(name).ok_or_else(|| {
                format!(
                    "`$context.{}` is not a value the gateway knows",
                    name.escape_default()
                )
            })?)
        } else {
            return Err(format!(
                "`{}` must be `$request.header.<name>`, `$request.querystring.<name>`, `$stageVariables.<name>` or `$context.<name>`",
                raw.escape_default()
            ));
        };
        Ok(source)
    }
}

impl fmt::Display for IdentitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentitySource::Header(n) => write!(f, "$request.header.{n}"),
            IdentitySource::QueryString(n) => write!(f, "$request.querystring.{n}"),
            IdentitySource::StageVariable(n) => write!(f, "$stageVariables.{n}"),
            IdentitySource::Context(c) => write!(f, "$context.{}", c.as_str()),
        }
    }
}

impl TryFrom<String> for IdentitySource {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        IdentitySource::parse(&raw)
    }
}

impl From<IdentitySource> for String {
    fn from(source: IdentitySource) -> String {
        source.to_string()
    }
}

/// What a JWT authorizer trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JwtConfiguration {
    /// The `iss` tokens must carry, an `https://` URL (or `http://` on loopback, for
    /// tests). Unless `jwks_uri` is set, its keys are found through
    /// `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// A token's `aud` (or, without one, its `client_id`) must be one of these.
    pub audience: Vec<String>,
    /// Where the issuer's keys are, when not found by discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
}

/// An authorizer's definition, as created, stored and deployed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "AuthorizerInput")]
pub struct AuthorizerSpec {
    /// 1 to 128 characters, unique in the API.
    pub name: String,
    pub authorizer_type: AuthorizerType,
    /// JWT: one source, the token's (default `$request.header.Authorization`, with or
    /// without the `Bearer` scheme). REQUEST: the values that must all be present, and
    /// that key its cached results.
    #[schema(value_type = Vec<String>)]
    pub identity_source: Vec<IdentitySource>,
    /// JWT authorizers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_configuration: Option<JwtConfiguration>,
    /// REQUEST authorizers only: the endpoint called with the request's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorizer_uri: Option<String>,
    /// REQUEST authorizers only: how long an answer is reused for the same identity, 0
    /// to 3600 (default 300).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 3600)]
    pub authorizer_result_ttl_in_seconds: u32,
}

/// An authorizer as the admin API takes it, before it is checked.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizerInput {
    pub name: String,
    pub authorizer_type: AuthorizerType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_source: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_configuration: Option<JwtConfigurationInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorizer_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorizer_result_ttl_in_seconds: Option<u32>,
}

/// A JWT configuration as the admin API takes it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtConfigurationInput {
    pub issuer: String,
    #[serde(default)]
    pub audience: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
}

impl From<&AuthorizerSpec> for AuthorizerInput {
    fn from(spec: &AuthorizerSpec) -> AuthorizerInput {
        AuthorizerInput {
            name: spec.name.clone(),
            authorizer_type: spec.authorizer_type,
            identity_source: Some(spec.identity_source.iter().map(|s| s.to_string()).collect()),
            jwt_configuration: spec
                .jwt_configuration
                .as_ref()
                .map(|j| JwtConfigurationInput {
                    issuer: j.issuer.clone(),
                    audience: j.audience.clone(),
                    jwks_uri: j.jwks_uri.clone(),
                }),
            authorizer_uri: spec.authorizer_uri.clone(),
            authorizer_result_ttl_in_seconds: Some(spec.authorizer_result_ttl_in_seconds),
        }
    }
}

/// Why an authorizer's definition was refused: the field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerError {
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for AuthorizerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn fail(field: &'static str, message: impl Into<String>) -> AuthorizerError {
    AuthorizerError {
        field,
        message: message.into(),
    }
}

/// Checks a URL the gateway will call: `https://`, or `http://` to a loopback address
/// (tests and sidecars), a host, no user information, and a sane length.
pub fn check_outbound_url(url: &str, allow_http: bool) -> Result<http::Uri, String> {
    if url.len() > MAX_URL_LEN {
        return Err(format!("at most {MAX_URL_LEN} characters"));
    }
    let uri: http::Uri = url
        .parse()
        .map_err(|_| format!("`{}` is not a valid URL", url.escape_default()))?;
    let host = uri.host().unwrap_or("");
    if host.is_empty() {
        return Err(format!("`{}` has no host", url.escape_default()));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("user information in a URL is not allowed".to_owned());
    }
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if allow_http => {}
        Some("http") => {
            return Err(
                "must be https:// (http:// only to 127.0.0.1, [::1] or localhost)".to_owned(),
            )
        }
        _ => return Err("must start with https://".to_owned()),
    }
    Ok(uri)
}

/// Whether `url` is plain HTTP to this machine, which tests and sidecars may use.
pub fn is_loopback_http(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    uri.scheme_str() == Some("http")
        && matches!(uri.host(), Some("127.0.0.1" | "[::1]" | "localhost"))
}

impl TryFrom<AuthorizerInput> for AuthorizerSpec {
    type Error = AuthorizerError;
    fn try_from(raw: AuthorizerInput) -> Result<Self, AuthorizerError> {
        let name = raw.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
            return Err(fail("name", "1 to 128 characters, no control characters"));
        }
        let sources = match (&raw.identity_source, raw.authorizer_type) {
            (None, AuthorizerType::Jwt) => vec![DEFAULT_JWT_IDENTITY_SOURCE.to_owned()],
            (None, AuthorizerType::Request) => {
                return Err(fail(
                    "identity_source",
                    "a REQUEST authorizer needs at least one identity source",
                ))
            }
            (Some(sources), _) => sources.clone(),
        };
        let mut identity_source = Vec::with_capacity(sources.len());
        for source in &sources {
            let parsed = IdentitySource::parse(source).map_err(|e| fail("identity_source", e))?;
            if identity_source.contains(&parsed) {
                return Err(fail(
                    "identity_source",
                    format!("`{parsed}` is named twice"),
                ));
            }
            identity_source.push(parsed);
        }
        match raw.authorizer_type {
            AuthorizerType::Jwt => {
                if raw.authorizer_uri.is_some() {
                    return Err(fail(
                        "authorizer_uri",
                        "only REQUEST authorizers call a URI",
                    ));
                }
                if raw
                    .authorizer_result_ttl_in_seconds
                    .is_some_and(|ttl| ttl != 0)
                {
                    return Err(fail(
                        "authorizer_result_ttl_in_seconds",
                        "only REQUEST authorizers have a result TTL; a JWT's result is kept until it expires",
                    ));
                }
                if identity_source.len() != 1
                    || !matches!(
                        identity_source[0],
                        IdentitySource::Header(_) | IdentitySource::QueryString(_)
                    )
                {
                    return Err(fail(
                        "identity_source",
                        "a JWT authorizer takes its token from one header or query string parameter",
                    ));
                }
                let jwt = raw.jwt_configuration.ok_or_else(|| {
                    fail(
                        "jwt_configuration",
                        "a JWT authorizer needs an issuer and audiences",
                    )
                })?;
                let issuer = jwt.issuer.trim_end_matches('/').to_owned();
                check_outbound_url(&issuer, is_loopback_http(&issuer))
                    .map_err(|e| fail("jwt_configuration.issuer", e))?;
                if jwt.audience.is_empty() || jwt.audience.len() > MAX_AUDIENCES {
                    return Err(fail(
                        "jwt_configuration.audience",
                        format!("1 to {MAX_AUDIENCES} audiences"),
                    ));
                }
                for audience in &jwt.audience {
                    if audience.is_empty()
                        || audience.len() > 256
                        || audience.chars().any(char::is_control)
                    {
                        return Err(fail(
                            "jwt_configuration.audience",
                            "each audience is 1 to 256 characters, no control characters",
                        ));
                    }
                }
                if let Some(jwks) = &jwt.jwks_uri {
                    check_outbound_url(jwks, is_loopback_http(jwks))
                        .map_err(|e| fail("jwt_configuration.jwks_uri", e))?;
                }
                Ok(AuthorizerSpec {
                    name,
                    authorizer_type: AuthorizerType::Jwt,
                    identity_source,
                    jwt_configuration: Some(JwtConfiguration {
                        issuer,
                        audience: jwt.audience,
                        jwks_uri: jwt.jwks_uri,
                    }),
                    authorizer_uri: None,
                    authorizer_result_ttl_in_seconds: 0,
                })
            }
            AuthorizerType::Request => {
                if raw.jwt_configuration.is_some() {
                    return Err(fail(
                        "jwt_configuration",
                        "only JWT authorizers have a JWT configuration",
                    ));
                }
                if identity_source.is_empty() || identity_source.len() > MAX_IDENTITY_SOURCES {
                    return Err(fail(
                        "identity_source",
                        format!("1 to {MAX_IDENTITY_SOURCES} identity sources"),
                    ));
                }
                let uri = raw.authorizer_uri.ok_or_else(|| {
                    fail(
                        "authorizer_uri",
                        "a REQUEST authorizer needs the URI it calls",
                    )
                })?;
                // Authorizers are the operator's own services: plain HTTP is allowed, as
                // for integrations.
                check_outbound_url(&uri, true).map_err(|e| fail("authorizer_uri", e))?;
                let ttl = raw
                    .authorizer_result_ttl_in_seconds
                    .unwrap_or(DEFAULT_RESULT_TTL_SECONDS);
                if ttl > MAX_RESULT_TTL_SECONDS {
                    return Err(fail(
                        "authorizer_result_ttl_in_seconds",
                        format!("0 to {MAX_RESULT_TTL_SECONDS}"),
                    ));
                }
                Ok(AuthorizerSpec {
                    name,
                    authorizer_type: AuthorizerType::Request,
                    identity_source,
                    jwt_configuration: None,
                    authorizer_uri: Some(uri),
                    authorizer_result_ttl_in_seconds: ttl,
                })
            }
        }
    }
}

/// An authorizer as frozen in a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeployedAuthorizer {
    pub id: Uuid,
    #[serde(flatten)]
    pub spec: AuthorizerSpec,
}

/// How a route's callers are authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum AuthorizationType {
    /// Anyone (an API key may still be required).
    #[default]
    None,
    /// A JWT authorizer of the API.
    Jwt,
    /// A REQUEST authorizer of the API.
    Custom,
}

impl AuthorizationType {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorizationType::None => "NONE",
            AuthorizationType::Jwt => "JWT",
            AuthorizationType::Custom => "CUSTOM",
        }
    }

    /// The authorizer type this authorization uses.
    pub fn authorizer_type(self) -> Option<AuthorizerType> {
        match self {
            AuthorizationType::None => None,
            AuthorizationType::Jwt => Some(AuthorizerType::Jwt),
            AuthorizationType::Custom => Some(AuthorizerType::Request),
        }
    }
}

/// A route's authorization: the type, the authorizer, and the scopes a JWT must grant.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct RouteAuthorization {
    #[serde(default)]
    pub authorization_type: AuthorizationType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorizer_id: Option<Uuid>,
    /// JWT only: the token must grant at least one of these (AWS's rule).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_scopes: Vec<String>,
}

impl RouteAuthorization {
    /// Checks the parts agree with each other (not that the authorizer exists).
    pub fn check(&self) -> Result<(), AuthorizerError> {
        match (self.authorization_type, self.authorizer_id) {
            (AuthorizationType::None, Some(_)) => {
                return Err(fail(
                    "authorizer_id",
                    "set authorization_type to JWT or CUSTOM to use an authorizer",
                ))
            }
            (AuthorizationType::Jwt | AuthorizationType::Custom, None) => {
                return Err(fail(
                    "authorizer_id",
                    "JWT and CUSTOM authorization name the authorizer to use",
                ))
            }
            _ => {}
        }
        if !self.authorization_scopes.is_empty()
            && self.authorization_type != AuthorizationType::Jwt
        {
            return Err(fail(
                "authorization_scopes",
                "only JWT authorization checks scopes",
            ));
        }
        if self.authorization_scopes.len() > MAX_SCOPES {
            return Err(fail(
                "authorization_scopes",
                format!("at most {MAX_SCOPES}"),
            ));
        }
        for scope in &self.authorization_scopes {
            if scope.is_empty()
                || scope.len() > 256
                || !scope
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
            {
                return Err(fail(
                    "authorization_scopes",
                    "each scope is 1 to 256 printable ASCII characters, no spaces, quotes or backslashes",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<AuthorizerSpec, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn a_jwt_authorizer_reads_the_authorization_header_unless_told_otherwise() {
        let a = parse(json!({"name": "idp", "authorizer_type": "JWT",
            "jwt_configuration": {"issuer": "https://idp.example.com/", "audience": ["api"]}}))
        .expect("valid");
        assert_eq!(
            a.identity_source,
            vec![IdentitySource::Header("authorization".into())]
        );
        assert_eq!(
            a.jwt_configuration.expect("jwt").issuer,
            "https://idp.example.com"
        );
    }

    #[test]
    fn bad_authorizers_are_refused_naming_the_field() {
        for (bad, field) in [
            (
                json!({"name": "a", "authorizer_type": "JWT"}),
                "jwt_configuration",
            ),
            (
                json!({"name": "a", "authorizer_type": "JWT",
                "jwt_configuration": {"issuer": "http://idp.example.com", "audience": ["x"]}}),
                "issuer",
            ),
            (
                json!({"name": "a", "authorizer_type": "JWT",
                "jwt_configuration": {"issuer": "https://u:p@idp.example.com", "audience": ["x"]}}),
                "issuer",
            ),
            (
                json!({"name": "a", "authorizer_type": "JWT",
                "jwt_configuration": {"issuer": "https://idp.example.com", "audience": []}}),
                "audience",
            ),
            (
                json!({"name": "a", "authorizer_type": "REQUEST", "authorizer_uri": "http://127.0.0.1:1/"}),
                "identity_source",
            ),
            (
                json!({"name": "a", "authorizer_type": "REQUEST", "identity_source": ["$request.header.X-Token"],
                "authorizer_uri": "http://127.0.0.1:1/", "authorizer_result_ttl_in_seconds": 3601}),
                "ttl",
            ),
            (
                json!({"name": "a", "authorizer_type": "REQUEST", "identity_source": ["$request.body.x"],
                "authorizer_uri": "http://127.0.0.1:1/"}),
                "identity_source",
            ),
            (
                json!({"name": "a", "authorizer_type": "REQUEST", "identity_source": ["$context.nope"],
                "authorizer_uri": "http://127.0.0.1:1/"}),
                "identity_source",
            ),
        ] {
            let err = parse(bad.clone()).expect_err(&bad.to_string());
            assert!(err.contains(field), "{bad}: {err}");
        }
    }

    #[test]
    fn identity_sources_read_back_as_written() {
        for s in [
            "$request.header.x-token",
            "$request.querystring.token",
            "$stageVariables.env",
            "$context.identity.sourceIp",
        ] {
            assert_eq!(IdentitySource::parse(s).expect(s).to_string(), s);
        }
    }

    #[test]
    fn a_route_authorization_must_agree_with_itself() {
        let jwt = RouteAuthorization {
            authorization_type: AuthorizationType::Jwt,
            authorizer_id: Some(Uuid::nil()),
            authorization_scopes: vec!["read:pets".into()],
        };
        assert!(jwt.check().is_ok());
        let custom_with_scopes = RouteAuthorization {
            authorization_type: AuthorizationType::Custom,
            ..jwt.clone()
        };
        assert_eq!(
            custom_with_scopes.check().unwrap_err().field,
            "authorization_scopes"
        );
        let none_with_authorizer = RouteAuthorization {
            authorization_type: AuthorizationType::None,
            authorization_scopes: vec![],
            ..jwt
        };
        assert_eq!(
            none_with_authorizer.check().unwrap_err().field,
            "authorizer_id"
        );
    }
}
