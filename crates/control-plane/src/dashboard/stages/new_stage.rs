//! The form on the API's page that adds a stage on an existing deployment, without
//! deploying: its fields (the admin API's with `new.` in front), the `POST /stages`
//! request they make, and the handler that sends it and shows the API's page again when
//! it is refused.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect};
use uuid::Uuid;

use super::super::apis::{api_page, explain, find_api, ApiForms};
use super::super::charts::Range;
use super::super::dispatch::{self, Refusal};
use super::super::field_map::FieldMap;
use super::super::form::{AdminPosted, Errors, Fields};
use super::super::render::{self, PageResult};
use super::settings_form::parse_variables;
use crate::error::FieldError;
use crate::http::stages::CreateStage;
use crate::AppState;

/// The fields of the new stage form (on the API's page), which the admin API's fields
/// map to with a `new.` in front.
const NEW_STAGE_FIELDS: [&str; 4] = [
    "new.name",
    "new.deployment_id",
    "new.description",
    "new.variables",
];

/// The new stage form's fields are the admin API's with `new.` in front.
const NEW_STAGE_MAP: FieldMap = FieldMap::prefixed("new.");

/// The `POST /stages` request for the new stage form, or what is wrong with it, by field.
fn new_stage_body(fields: &Fields) -> Result<CreateStage, Vec<FieldError>> {
    let mut errors = Vec::new();
    let deployment_id = Uuid::parse_str(fields.trimmed("new.deployment_id"))
        .map_err(|_| {
            errors.push(FieldError::new(
                "new.deployment_id",
                "choose one of the API's deployments",
            ));
        })
        .ok();
    let variables = parse_variables(fields.get("new.variables"))
        .map_err(|e| errors.push(FieldError::new("new.variables", e)))
        .ok();
    let (Some(deployment_id), Some(variables), true) =
        (deployment_id, variables, errors.is_empty())
    else {
        return Err(errors);
    };
    Ok(CreateStage {
        name: fields.trimmed("new.name").to_owned(),
        deployment_id,
        variables,
        description: fields.trimmed("new.description").to_owned(),
        throttle: None,
        access_log: false,
        websocket: None,
    })
}

/// Adds a stage on an existing deployment; the new stage's page follows, or the API's
/// page with the form as typed and what was wrong next to its fields.
pub(super) async fn create(
    State(state): State<AppState>,
    Path(api_id): Path<String>,
    posted: AdminPosted,
) -> PageResult {
    let AdminPosted { user, fields } = posted;
    let api = find_api(&state, &user, &api_id).await?;
    let refused = match new_stage_body(&fields) {
        Ok(body) => {
            let path = format!("/apis/{}/stages", api.id);
            match dispatch::call(&state, &user, Method::POST, &path, &body).await {
                Ok(stage) => {
                    let name = stage["name"].as_str().unwrap_or_default();
                    return Ok(Redirect::to(&format!("{path}/{name}")).into_response());
                }
                Err(Refusal::Invalid(errors)) => NEW_STAGE_MAP.place(errors),
                Err(Refusal::Page(page)) => return Ok(page),
            }
        }
        Err(errors) => Errors::new("", errors),
    };
    let errors = explain(refused, &NEW_STAGE_FIELDS, "The stage was not created.");
    let forms = ApiForms {
        new_stage: Some((fields, errors)),
        ..ApiForms::default()
    };
    let page = api_page(&state, &user, api, forms, Range::default()).await?;
    Ok(render::page_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_stage_needs_a_deployment_and_readable_variables() {
        let fields = Fields::default()
            .with("new.name", " beta ")
            .with("new.deployment_id", "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
            .with("new.variables", "host=10.0.0.5\n");
        let body = new_stage_body(&fields).expect("valid");
        assert_eq!(body.name, "beta");
        assert_eq!(
            body.variables.get("host").map(String::as_str),
            Some("10.0.0.5")
        );
        let bad = Fields::default()
            .with("new.deployment_id", "latest")
            .with("new.variables", "no equals sign");
        let Err(errors) = new_stage_body(&bad) else {
            panic!("a form without a deployment was accepted");
        };
        let refused: Vec<_> = errors.into_iter().map(|e| e.field).collect();
        assert_eq!(refused, ["new.deployment_id", "new.variables"]);
    }
}
