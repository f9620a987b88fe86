//! The CORS form on an HTTP API's page: which browser origins may call the API, with
//! which methods and headers, sent as the API's `cors_configuration`; and the button that
//! removes it. Lists are typed one entry a line or comma-separated; the admin API judges
//! each entry and names the list at fault.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect};
use gatehouse_model::cors::CorsInput;
use gatehouse_model::CorsConfiguration;

use super::super::charts::Range;
use super::super::dispatch::{self, Refusal};
use super::super::form::{AdminPosted, Errors, Fields};
use super::super::render::{page_with, PageResult};
use super::super::session::SignedIn;
use super::{api_page, explain, find_api, ApiForms};
use crate::error::FieldError;
use crate::http::apis::UpdateApi;
use crate::repo::apis::Api;
use crate::AppState;

const ORIGINS: &str = "cors_configuration.allow_origins";
const METHODS: &str = "cors_configuration.allow_methods";
const HEADERS: &str = "cors_configuration.allow_headers";
const EXPOSE: &str = "cors_configuration.expose_headers";
const MAX_AGE: &str = "cors_configuration.max_age";
const CREDENTIALS: &str = "cors_configuration.allow_credentials";

/// The fields of the CORS form, as the admin API names them.
const FORM_FIELDS: [&str; 6] = [ORIGINS, METHODS, HEADERS, EXPOSE, MAX_AGE, CREDENTIALS];

/// The CORS form's fields for `cors` (empty when the API has none).
pub(super) fn fields_of(cors: Option<&CorsConfiguration>) -> Fields {
    let Some(cors) = cors else {
        return Fields::default();
    };
    let fields = Fields::default()
        .with(ORIGINS, cors.allow_origins.join("\n"))
        .with(METHODS, cors.allow_methods.join("\n"))
        .with(HEADERS, cors.allow_headers.join("\n"))
        .with(EXPOSE, cors.expose_headers.join("\n"))
        .with(
            MAX_AGE,
            cors.max_age.map(|age| age.to_string()).unwrap_or_default(),
        );
    if cors.allow_credentials {
        fields.with(CREDENTIALS, "on")
    } else {
        fields
    }
}

/// The configuration the form describes, or why its max age does not read.
fn input(fields: &Fields) -> Result<CorsInput, Vec<FieldError>> {
    let max_age = match fields.trimmed(MAX_AGE) {
        "" => None,
        raw => Some(raw.parse::<i32>().map_err(|_| {
            vec![FieldError::new(
                MAX_AGE,
                "must be a whole number of seconds from -1 to 86400",
            )]
        })?),
    };
    Ok(CorsInput {
        allow_origins: entries(fields.get(ORIGINS)),
        allow_methods: entries(fields.get(METHODS)),
        allow_headers: entries(fields.get(HEADERS)),
        expose_headers: entries(fields.get(EXPOSE)),
        max_age,
        allow_credentials: fields.checked(CREDENTIALS),
    })
}

/// The entries of a list typed one a line or comma-separated.
fn entries(raw: &str) -> Vec<String> {
    raw.split([',', '\n'])
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A change of the API's CORS configuration alone: `None` removes it.
fn change(cors: Option<CorsInput>) -> UpdateApi {
    UpdateApi {
        name: None,
        slug: None,
        description: None,
        route_selection_expression: None,
        cors_configuration: Some(cors),
    }
}

pub(super) async fn save(
    State(state): State<AppState>,
    Path(api_id): Path<String>,
    posted: AdminPosted,
) -> PageResult {
    let AdminPosted { user, fields } = posted;
    let api = find_api(&state, &user, &api_id).await?;
    let sent = match input(&fields) {
        Ok(cors) => send(&state, &user, &api, Some(cors)).await,
        Err(errors) => Err(Refusal::Invalid(Errors::new("", errors))),
    };
    answer(&state, &user, api, fields, sent, "CORS was not saved.").await
}

pub(super) async fn remove(
    State(state): State<AppState>,
    Path(api_id): Path<String>,
    posted: AdminPosted,
) -> PageResult {
    let user = posted.user;
    let api = find_api(&state, &user, &api_id).await?;
    let fields = fields_of(api.cors_configuration.as_ref().map(|c| &c.0));
    let sent = send(&state, &user, &api, None).await;
    answer(&state, &user, api, fields, sent, "CORS was not removed.").await
}

async fn send(
    state: &AppState,
    user: &SignedIn,
    api: &Api,
    cors: Option<CorsInput>,
) -> Result<serde_json::Value, Refusal> {
    let path = format!("/apis/{}", api.id);
    dispatch::call(state, user, Method::PATCH, &path, &change(cors)).await
}

/// The API's page at its CORS form, or that page again with the form as typed and what
/// was wrong next to its fields.
async fn answer(
    state: &AppState,
    user: &SignedIn,
    api: Api,
    fields: Fields,
    sent: Result<serde_json::Value, Refusal>,
    what: &str,
) -> PageResult {
    match sent {
        Ok(_) => Ok(Redirect::to(&format!("/apis/{}#cors", api.id)).into_response()),
        Err(Refusal::Invalid(errors)) => {
            let forms = ApiForms {
                cors: Some((fields, explain(errors, &FORM_FIELDS, what))),
                ..ApiForms::default()
            };
            let page = api_page(state, user, api, forms, Range::default()).await?;
            Ok(page_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(Refusal::Page(page)) => Ok(page),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lists_take_lines_or_commas_and_a_stored_configuration_reads_back() {
        let fields = Fields::default()
            .with(
                ORIGINS,
                "https://app.example.com, http://localhost:3000\r\n",
            )
            .with(METHODS, "GET,POST")
            .with(HEADERS, "authorization\n\ncontent-type")
            .with(MAX_AGE, " 600 ")
            .with(CREDENTIALS, "on");
        let cors = input(&fields).expect("readable");
        assert_eq!(
            serde_json::to_value(&cors).expect("json"),
            json!({"allow_origins": ["https://app.example.com", "http://localhost:3000"],
                   "allow_methods": ["GET", "POST"],
                   "allow_headers": ["authorization", "content-type"],
                   "expose_headers": [], "max_age": 600, "allow_credentials": true})
        );
        let stored = CorsConfiguration::try_from(cors).expect("valid");
        let again = input(&fields_of(Some(&stored))).expect("readable");
        assert_eq!(CorsConfiguration::try_from(again).expect("valid"), stored);
    }

    #[test]
    fn a_max_age_that_does_not_parse_names_its_field() {
        let errors = input(&Fields::default().with(MAX_AGE, "1h")).expect_err("bad");
        assert_eq!(errors[0].field, MAX_AGE);
        let empty = input(&Fields::default()).expect("no max age");
        assert_eq!(empty.max_age, None);
    }

    #[test]
    fn removing_sends_null() {
        let body = serde_json::to_value(change(None)).expect("json");
        assert_eq!(body, json!({"cors_configuration": null}));
    }
}
