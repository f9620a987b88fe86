//! The route form's fields and the admin API request they make: the route key, whether a
//! key is required, its authorization ([`authorization`]), and the integration, built as
//! the model's `Integration` with its parameter mapping ([`mapping`]). Numbers, header
//! lines, rule lines and anything the model refuses are caught here, next to their field.
//! Every field of a stored route is on the form, so saving it unchanged changes nothing.

use std::collections::BTreeMap;

use gatehouse_model::integration::{DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS, MIN_TIMEOUT_MS};
use gatehouse_model::{
    HttpProxyIntegration, Integration, MockIntegration, Protocol, RouteKey, UriTemplate,
};

use super::super::field_map::FieldMap;
use super::super::form::Fields;
use super::super::model_rules;
use super::{authorization, mapping};
use crate::error::FieldError;
use crate::http::routes::{CreateRoute, UpdateRoute};
use crate::repo::routes::Route;

pub(super) const HTTP_PROXY: &str = "HTTP_PROXY";
pub(super) const MOCK: &str = "MOCK";

/// The fields of the route form the page shows errors next to.
pub(super) const FORM_FIELDS: [&str; 14] = [
    "route_key",
    "api_key_required",
    "authorization_type",
    "authorizer_id",
    "authorization_scopes",
    "integration.type",
    "integration.uri",
    "integration.timeout_ms",
    "integration.websocket_upgrade",
    "integration.request_parameters",
    "integration.response_parameters",
    "integration.status",
    "integration.headers",
    "integration.body",
];

/// The form's fields are the API's; an error about the integration as a whole (which
/// the checks here leave to the unforeseen) shows by its type.
pub(super) const FIELD_MAP: FieldMap = FieldMap::new(&[("integration", "integration.type")]);

/// The fields of a new route's form.
pub(super) fn defaults() -> Fields {
    Fields::default()
        .with("integration.type", HTTP_PROXY)
        .with("integration.timeout_ms", DEFAULT_TIMEOUT_MS.to_string())
        .with("integration.status", "200")
        .with("integration.headers", "Content-Type: application/json")
}

/// The fields of the form for an existing route.
pub(super) fn fields_of(route: &Route) -> Fields {
    let mut fields =
        authorization::fields_of(defaults(), route).with("route_key", route.route_key.clone());
    if route.api_key_required {
        fields = fields.with("api_key_required", "on");
    }
    match &route.integration.0 {
        Integration::HttpProxy(proxy) => {
            let fields = fields
                .with("integration.type", HTTP_PROXY)
                .with("integration.uri", proxy.uri.to_string())
                .with("integration.timeout_ms", proxy.timeout_ms.to_string())
                .with(
                    "integration.request_parameters",
                    mapping::request_lines(&proxy.request_parameters),
                )
                .with(
                    "integration.response_parameters",
                    mapping::response_lines(&proxy.response_parameters),
                );
            if proxy.websocket_upgrade {
                fields.with("integration.websocket_upgrade", "on")
            } else {
                fields
            }
        }
        Integration::Mock(mock) => {
            let headers = mock
                .headers
                .iter()
                .map(|(name, value)| format!("{name}: {value}"))
                .collect::<Vec<_>>()
                .join("\n");
            fields
                .with("integration.type", MOCK)
                .with("integration.status", mock.status.to_string())
                .with("integration.headers", headers)
                .with("integration.body", mock.body.clone())
        }
    }
}

/// The admin API's request for the route the form describes, or what is wrong with it.
/// When the integration is refused here nothing is sent, so the route key is checked here
/// too (with the admin API's own parser) and every mistake shows at once.
pub(super) fn route_body(
    fields: &Fields,
    protocol: Protocol,
) -> Result<CreateRoute, Vec<FieldError>> {
    let route_key = fields.trimmed("route_key");
    match (authorization::parse(fields), integration(fields)) {
        (Ok(authorization), Ok(integration)) => Ok(CreateRoute {
            route_key: route_key.to_owned(),
            api_key_required: fields.checked("api_key_required"),
            authorization_type: authorization.authorization_type,
            authorizer_id: authorization.authorizer_id,
            authorization_scopes: authorization.authorization_scopes,
            integration,
        }),
        (authorization, integration) => {
            let mut errors = Vec::new();
            if let Err(e) = RouteKey::parse_for(protocol, route_key) {
                errors.push(FieldError::new("route_key", e.to_string()));
            }
            errors.extend(authorization.err().into_iter().flatten());
            errors.extend(integration.err().into_iter().flatten());
            Err(errors)
        }
    }
}

/// The same request as a change of an existing route: every field replaced.
pub(super) fn update_body(route: CreateRoute) -> UpdateRoute {
    UpdateRoute {
        route_key: Some(route.route_key),
        api_key_required: Some(route.api_key_required),
        authorization_type: Some(route.authorization_type),
        authorizer_id: route.authorizer_id,
        authorization_scopes: Some(route.authorization_scopes),
        integration: Some(route.integration),
    }
}

fn integration(fields: &Fields) -> Result<Integration, Vec<FieldError>> {
    match fields.get("integration.type") {
        HTTP_PROXY => {
            let mut errors = Vec::new();
            let uri = UriTemplate::parse(fields.trimmed("integration.uri"))
                .map_err(|e| errors.push(FieldError::new("integration.uri", e)))
                .ok();
            let timeout_ms = parse_timeout(fields.trimmed("integration.timeout_ms"))
                .map_err(|e| errors.push(FieldError::new("integration.timeout_ms", e)))
                .ok();
            let request_parameters =
                mapping::parse_request(fields.get("integration.request_parameters"))
                    .map_err(|e| errors.push(FieldError::new("integration.request_parameters", e)))
                    .ok();
            let response_parameters =
                mapping::parse_response(fields.get("integration.response_parameters"))
                    .map_err(|e| errors.push(FieldError::new("integration.response_parameters", e)))
                    .ok();
            let (Some(uri), Some(timeout_ms), Some(request_parameters), Some(response_parameters)) =
                (uri, timeout_ms, request_parameters, response_parameters)
            else {
                return Err(errors);
            };
            Ok(Integration::HttpProxy(HttpProxyIntegration {
                uri,
                timeout_ms,
                websocket_upgrade: fields.checked("integration.websocket_upgrade"),
                request_parameters,
                response_parameters,
            }))
        }
        MOCK => {
            let mut errors = Vec::new();
            let status = parse_status(fields.trimmed("integration.status"))
                .map_err(|e| errors.push(FieldError::new("integration.status", e)))
                .ok();
            // Browsers send a text area's line breaks as CRLF: saving a form unchanged
            // must not change the body.
            let body = fields.get("integration.body").replace("\r\n", "\n");
            let headers = parse_headers(fields.get("integration.headers"))
                .map_err(|e| errors.push(FieldError::new("integration.headers", e)))
                .ok();
            if let Some(headers) = &headers {
                let (headers_checked, body_checked) = model_rules::mock_parts(headers, &body);
                for (field, checked) in [
                    ("integration.headers", headers_checked),
                    ("integration.body", body_checked),
                ] {
                    if let Err(e) = checked {
                        errors.push(FieldError::new(field, e));
                    }
                }
            }
            let (Some(status), Some(headers), true) = (status, headers, errors.is_empty()) else {
                return Err(errors);
            };
            Ok(Integration::Mock(MockIntegration {
                status,
                headers,
                body,
            }))
        }
        _ => Err(vec![FieldError::new(
            "integration.type",
            "choose HTTP_PROXY or MOCK",
        )]),
    }
}

fn parse_timeout(raw: &str) -> Result<u32, String> {
    if raw.is_empty() {
        return Ok(DEFAULT_TIMEOUT_MS);
    }
    match raw.parse::<u32>() {
        Ok(ms) if (MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&ms) => Ok(ms),
        _ => Err(format!(
            "must be a whole number of milliseconds from {MIN_TIMEOUT_MS} to {MAX_TIMEOUT_MS}"
        )),
    }
}

fn parse_status(raw: &str) -> Result<u16, String> {
    if raw.is_empty() {
        return Ok(200);
    }
    match raw.parse::<u16>() {
        Ok(status) if (200..=599).contains(&status) => Ok(status),
        _ => Err("must be a status code from 200 to 599".to_owned()),
    }
}

/// `Name: value` lines; blank lines are skipped.
fn parse_headers(raw: &str) -> Result<BTreeMap<String, String>, String> {
    let mut headers = BTreeMap::new();
    for (n, line) in raw.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("line {}: write `Name: value`", n + 1));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("line {}: the header name is missing", n + 1));
        }
        if headers
            .keys()
            .any(|k: &String| k.eq_ignore_ascii_case(name))
        {
            return Err(format!("line {}: `{name}` is set twice", n + 1));
        }
        headers.insert(name.to_owned(), value.trim().to_owned());
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::super::form::Errors;
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .fold(Fields::default(), |f, (name, value)| f.with(name, *value))
    }

    fn json_of(body: &CreateRoute) -> serde_json::Value {
        serde_json::to_value(body).expect("serializable")
    }

    #[test]
    fn an_http_proxy_form_becomes_the_admin_api_body() {
        let fields = form(&[
            ("route_key", " GET /pets/{id} "),
            ("api_key_required", "on"),
            ("integration.type", "HTTP_PROXY"),
            ("integration.uri", "http://pets/{id}"),
            ("integration.timeout_ms", ""),
            ("integration.status", "not used"),
            ("integration.websocket_upgrade", "on"),
        ]);
        let body = route_body(&fields, Protocol::Http).expect("valid");
        assert_eq!(
            json_of(&body),
            json!({"route_key": "GET /pets/{id}", "api_key_required": true,
                   "authorization_type": "NONE",
                   "integration": {"type": "HTTP_PROXY", "uri": "http://pets/{id}",
                                   "timeout_ms": DEFAULT_TIMEOUT_MS, "websocket_upgrade": true}})
        );
    }

    #[test]
    fn a_mock_form_reads_header_lines() {
        let fields = form(&[
            ("route_key", "$default"),
            ("integration.type", "MOCK"),
            ("integration.status", "404"),
            (
                "integration.headers",
                "Content-Type: text/plain\r\n\r\nX-A: b: c\n",
            ),
            ("integration.body", "gone"),
            ("integration.timeout_ms", "junk is ignored"),
        ]);
        let body = json_of(&route_body(&fields, Protocol::Http).expect("valid"));
        assert_eq!(
            body["integration"],
            json!({"type": "MOCK", "status": 404, "body": "gone",
                   "headers": {"Content-Type": "text/plain", "X-A": "b: c"}})
        );
        assert_eq!(body["api_key_required"], json!(false));
    }

    #[test]
    fn numbers_and_header_lines_that_do_not_parse_name_their_field() {
        let fields_of =
            |errors: Vec<FieldError>| errors.into_iter().map(|e| e.field).collect::<Vec<_>>();
        let bad_timeout = form(&[
            ("route_key", "GET /a"),
            ("integration.type", "HTTP_PROXY"),
            ("integration.uri", "http://a/"),
            ("integration.timeout_ms", "10s"),
        ]);
        assert_eq!(
            fields_of(route_body(&bad_timeout, Protocol::Http).expect_err("bad")),
            ["integration.timeout_ms"]
        );
        let too_short = form(&[
            ("integration.type", "HTTP_PROXY"),
            ("integration.timeout_ms", "10"),
        ]);
        assert!(route_body(&too_short, Protocol::Http).is_err());
        let bad_mock = form(&[
            ("route_key", "GET /a"),
            ("integration.type", "MOCK"),
            ("integration.status", "700"),
            ("integration.headers", "no colon here"),
        ]);
        assert_eq!(
            fields_of(route_body(&bad_mock, Protocol::Http).expect_err("bad")),
            ["integration.status", "integration.headers"]
        );
        let twice = form(&[
            ("integration.type", "MOCK"),
            ("integration.headers", "A: 1\na: 2"),
        ]);
        assert!(route_body(&twice, Protocol::Http).is_err());
        let both = form(&[
            ("route_key", "get /x"),
            ("integration.type", "HTTP_PROXY"),
            ("integration.uri", "http://a/"),
            ("integration.timeout_ms", "x"),
        ]);
        assert_eq!(
            fields_of(route_body(&both, Protocol::Http).expect_err("bad")),
            ["route_key", "integration.timeout_ms"]
        );
        let no_type = form(&[("route_key", "$default"), ("integration.type", "LAMBDA")]);
        assert_eq!(
            fields_of(route_body(&no_type, Protocol::Http).expect_err("bad")),
            ["integration.type"]
        );
    }

    #[test]
    fn what_the_model_refuses_is_named_by_its_field() {
        let fields_of =
            |errors: Vec<FieldError>| errors.into_iter().map(|e| e.field).collect::<Vec<_>>();
        let bad_uri = form(&[
            ("route_key", "GET /a"),
            ("integration.type", "HTTP_PROXY"),
            ("integration.uri", "ftp://a/"),
        ]);
        assert_eq!(
            fields_of(route_body(&bad_uri, Protocol::Http).expect_err("bad")),
            ["integration.uri"]
        );
        let bad_header = form(&[
            ("route_key", "GET /a"),
            ("integration.type", "MOCK"),
            ("integration.headers", "Content-Length: 3"),
        ]);
        assert_eq!(
            fields_of(route_body(&bad_header, Protocol::Http).expect_err("bad")),
            ["integration.headers"]
        );
    }

    #[test]
    fn a_stored_route_saved_unchanged_keeps_its_authorization_and_mapping() {
        let integration: Integration = serde_json::from_value(json!({
            "type": "HTTP_PROXY", "uri": "http://pets/{id}", "timeout_ms": 1500,
            "request_parameters": {
                "overwrite:header.x-user-id": "$context.authorizer.claims.sub",
                "append:querystring.v": "a=b",
                "remove:header.x-debug": ""},
            "response_parameters": {
                "404": {"overwrite:statuscode": "200", "append:header.x-was": "404"},
                "500": {"overwrite:header.retry-after": "5"}}
        }))
        .expect("integration");
        let now = chrono::Utc::now();
        let authorizer = uuid::Uuid::now_v7();
        let route = Route {
            id: uuid::Uuid::now_v7(),
            api_id: uuid::Uuid::now_v7(),
            route_key: "GET /pets/{id}".to_owned(),
            api_key_required: true,
            authorization_type: "JWT".to_owned(),
            authorizer_id: Some(authorizer),
            authorization_scopes: vec!["read:pets".to_owned(), "admin".to_owned()],
            integration: sqlx::types::Json(integration.clone()),
            created_at: now,
            updated_at: now,
        };
        let sent = route_body(&fields_of(&route), Protocol::Http).expect("valid");
        assert_eq!(sent.integration, integration);
        assert_eq!(sent.authorizer_id, Some(authorizer));
        assert_eq!(sent.authorization_scopes, ["read:pets", "admin"]);
        let update = serde_json::to_value(update_body(sent)).expect("json");
        assert_eq!(update["authorization_type"], json!("JWT"));
        assert_eq!(update["api_key_required"], json!(true));
    }

    #[test]
    fn mapping_and_authorization_errors_name_their_field() {
        let bad = form(&[
            ("route_key", "GET /a"),
            ("authorization_type", "JWT"),
            ("authorizer_id", "not an id"),
            ("integration.type", "HTTP_PROXY"),
            ("integration.uri", "http://a/"),
            (
                "integration.request_parameters",
                "overwrite:header.host = x",
            ),
            (
                "integration.response_parameters",
                "overwrite:statuscode = 200",
            ),
        ]);
        let fields: Vec<String> = route_body(&bad, Protocol::Http)
            .expect_err("bad")
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "authorizer_id",
                "integration.request_parameters",
                "integration.response_parameters"
            ]
        );
    }

    #[test]
    fn the_apis_errors_show_by_their_path() {
        let errors = Errors::new(
            "Invalid request",
            vec![
                FieldError::new("integration.uri", "must start with http://"),
                FieldError::new("integration", "unknown variant"),
                FieldError::new("route_key", "bad"),
            ],
        );
        let placed = FIELD_MAP.place(errors);
        assert_eq!(
            placed.get("integration.uri"),
            Some("must start with http://")
        );
        assert_eq!(placed.get("integration.type"), Some("unknown variant"));
        assert_eq!(placed.get("route_key"), Some("bad"));
    }
}
