//! The admin API's OpenAPI 3 document, served without a token at `GET /api/v1/openapi.json`
//! so that clients and API fuzzers can be generated from the code rather than from prose.
//!
//! Every operation comes from the `#[utoipa::path]` attribute of its handler and every body
//! from the `ToSchema` derive of the type the handler reads or writes, so the document
//! follows the code. The answers that do not depend on the handler are added here, to each
//! operation they apply to: 401 and 503 (the authentication layer, a database outage)
//! everywhere, 403 (a viewer token) on every change, and 400, 413, 415 and 422 (the JSON
//! body extractor, [`crate::json::JsonBody`]) wherever there is a request body. An
//! optional body is described as absent or an object, never `null`.

use std::borrow::Cow;
use std::sync::LazyLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde_json::Value;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::{apis, authorizers, deployments, keys, metrics, nodes, plans, routes, stages, tokens};
use super::{MAX_DESCRIPTION_LEN, MAX_NAME_LEN};
use crate::error::ErrorBody;

/// The name of the security scheme every operation requires.
const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gatehouse admin API",
        description = "Define APIs, their routes, deployments and stages; issue API keys and \
            usage plans; read traffic metrics; issue, rotate and revoke the tokens of this API and \
            of the proxies. Every call needs `Authorization: Bearer <token>` \
            (an admin token, or a viewer token for reads). Errors are JSON \
            `{\"message\", \"errors\": [{\"field\", \"message\"}]}`."
    ),
    servers((url = "/api/v1")),
    paths(
        apis::list,
        apis::create,
        apis::read,
        apis::update,
        apis::remove,
        routes::list,
        routes::create,
        routes::read,
        routes::update,
        routes::remove,
        authorizers::list,
        authorizers::create,
        authorizers::read,
        authorizers::update,
        authorizers::remove,
        deployments::list,
        deployments::create,
        deployments::read,
        deployments::remove,
        stages::list,
        stages::create,
        stages::read,
        stages::update,
        stages::remove,
        keys::list,
        keys::create,
        keys::read,
        keys::update,
        keys::remove,
        plans::list,
        plans::create,
        plans::read,
        plans::update,
        plans::remove,
        plans::list_keys,
        plans::attach,
        plans::detach,
        nodes::list,
        metrics::query,
        tokens::list,
        tokens::create,
        tokens::read,
        tokens::revoke,
        tokens::rotate,
    ),
    security(("bearer" = [])),
    modifiers(&SharedAnswers),
    tags(
        (name = "apis", description = "APIs: named sets of routes, HTTP or WebSocket"),
        (name = "routes", description = "Routes of an API and what they call"),
        (name = "authorizers", description = "JWT and REQUEST authorizers routes name"),
        (name = "deployments", description = "Immutable snapshots of an API's routes"),
        (name = "stages", description = "Named environments pointing at a deployment"),
        (name = "keys", description = "API keys clients send in `x-api-key`"),
        (name = "usage-plans", description = "Throttles and quotas of the keys attached"),
        (name = "nodes", description = "The proxies polling this control plane"),
        (name = "metrics", description = "Traffic of APIs, stages, routes and keys"),
        (name = "tokens", description = "Admin, viewer and node tokens of this API and the \
            proxies' sync API"),
    )
)]
struct AdminApi;

/// The document, built once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(AdminApi::openapi);
    &DOCUMENT
}

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> impl IntoResponse {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        let mut json = serde_json::to_value(document())
            .unwrap_or_else(|e| unreachable!("an OpenAPI document always serializes: {e}"));
        camel_case_links(&mut json);
        json.to_string()
    });
    ([(CONTENT_TYPE, "application/json")], JSON.as_str())
}

/// utoipa 5 writes the fields of a response's links in snake case (`operation_id`), where
/// OpenAPI spells them in camel case (`operationId`); utoipa 6 does it right, but needs a
/// newer Rust than the workspace's.
fn camel_case_links(document: &mut Value) {
    let operations = document
        .get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut());
    for operation in operations {
        let links = operation
            .get_mut("responses")
            .and_then(Value::as_object_mut)
            .into_iter()
            .flat_map(|responses| responses.values_mut())
            .filter_map(|response| response.get_mut("links"))
            .filter_map(Value::as_object_mut)
            .flat_map(|links| links.values_mut())
            .filter_map(Value::as_object_mut);
        for link in links {
            for (snake, camel) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(value) = link.remove(snake) {
                    link.insert(camel.to_owned(), value);
                }
            }
        }
    }
}

/// The answers of the layers around the handlers, as reusable responses, and the bearer
/// scheme.
struct SharedAnswers;

/// Shared answers: the name of the response component, its status and description.
const UNAUTHORIZED: (&str, &str, &str) = (
    "Unauthorized",
    "401",
    "No token, or one that is not valid here",
);
const FORBIDDEN: (&str, &str, &str) = ("Forbidden", "403", "A viewer token cannot change anything");
const UNAVAILABLE: (&str, &str, &str) = (
    "Unavailable",
    "503",
    "The database cannot be reached; try again",
);
const MALFORMED: (&str, &str, &str) = ("Malformed", "400", "The body is not JSON");
const TOO_LARGE: (&str, &str, &str) = (
    "TooLarge",
    "413",
    "The body is larger than the configured limit",
);
const NOT_JSON: (&str, &str, &str) = (
    "NotJson",
    "415",
    "The body is not sent as `Content-Type: application/json`",
);
const INVALID: (&str, &str, &str) = (
    "Invalid",
    "422",
    "A field is missing, unknown, of the wrong type or refused; `errors` names each",
);

impl Modify for SharedAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.security_schemes.insert(
            BEARER.to_owned(),
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An admin token (`GATEHOUSE_ADMIN_TOKEN`, or issued through \
                         `/tokens`), or a viewer token for `GET` calls",
                    ))
                    .build(),
            ),
        );
        let error = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(ErrorBody::name())))
            .build();
        for (name, _, description) in [
            UNAUTHORIZED,
            FORBIDDEN,
            UNAVAILABLE,
            MALFORMED,
            TOO_LARGE,
            NOT_JSON,
            INVALID,
        ] {
            let mut response = ResponseBuilder::new()
                .description(description)
                .content("application/json", error.clone());
            if name == UNAUTHORIZED.0 {
                response = response.header(
                    "www-authenticate",
                    HeaderBuilder::new()
                        .schema(String::schema())
                        .description(Some("`Bearer`"))
                        .build(),
                );
            }
            components
                .responses
                .insert(name.to_owned(), response.build().into());
        }
        for item in openapi.paths.paths.values_mut() {
            let reads = [&mut item.get, &mut item.head];
            for operation in reads.into_iter().flatten() {
                add_answers(operation, false);
            }
            let changes = [
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in changes.into_iter().flatten() {
                add_answers(operation, true);
                optional_body_without_null(operation);
            }
        }
    }
}

/// An optional body (`Option<JsonBody<T>>`) is absent or a `T`, never a JSON `null`, which
/// the extractor refuses; utoipa describes `Option<T>` as `T` or `null`, so the `null` goes.
fn optional_body_without_null(operation: &mut Operation) {
    let Some(body) = operation.request_body.as_mut() else {
        return;
    };
    if body.required == Some(Required::True) {
        return;
    }
    for content in body.content.values_mut() {
        let Some(RefOr::T(Schema::OneOf(one_of))) = &mut content.schema else {
            continue;
        };
        one_of.items.retain(|item| !is_null(item));
        if let [only] = one_of.items.as_slice() {
            content.schema = Some(only.clone());
        }
    }
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(
        schema,
        RefOr::T(Schema::Object(object)) if object.schema_type == SchemaType::Type(Type::Null)
    )
}

/// Adds the answers of the layers to `operation`, keeping any the handler describes itself.
fn add_answers(operation: &mut Operation, changes: bool) {
    let mut shared = vec![UNAUTHORIZED, UNAVAILABLE];
    if changes {
        shared.push(FORBIDDEN);
    }
    if operation.request_body.is_some() {
        shared.extend([MALFORMED, TOO_LARGE, NOT_JSON, INVALID]);
    }
    for (name, status, _) in shared {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
    }
}

/// The schema of a name (of an API, a key, a usage plan), as [`super::check_name`] checks
/// it: 1 to 128 characters, not all blank, no control characters.
pub struct Name;

impl PartialSchema for Name {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_NAME_LEN))
            .pattern(Some(
                r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
            ))
            .description(Some(format!(
                "1 to {MAX_NAME_LEN} printable characters, not only blanks"
            )))
            .into()
    }
}

impl ToSchema for Name {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Name")
    }
}

/// The schema of a description, as [`super::check_description`] checks it.
pub struct Description;

impl PartialSchema for Description {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(MAX_DESCRIPTION_LEN))
            .into()
    }
}

impl ToSchema for Description {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Description")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    #[test]
    fn no_request_body_is_described_as_json_null() {
        let document = serde_json::to_value(super::document()).expect("serializes");
        let mut bodies = 0;
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                let Some(schema) =
                    operation.pointer("/requestBody/content/application~1json/schema")
                else {
                    continue;
                };
                bodies += 1;
                let choices = schema.get("oneOf").and_then(Value::as_array);
                assert!(
                    !choices.is_some_and(|c| c.contains(&json!({"type": "null"}))),
                    "{method} {path}: {schema}"
                );
            }
        }
        assert!(bodies > 10, "{bodies} request bodies");
    }
}
