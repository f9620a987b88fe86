//! The API form in both directions: a new API's defaults or a stored API as fields, and
//! the fields as the admin API's create or update request. The form is the same page for
//! both; which one it is decides where it posts.

use askama::Template;

use super::super::form::{Errors, Fields};
use super::super::render::{Frame, Section};
use super::super::session::SignedIn;
use crate::http::apis::{CreateApi, UpdateApi};
use crate::repo::apis::Api;

/// The fields of the API form the page shows errors next to.
pub(super) const FORM_FIELDS: [&str; 5] = [
    "name",
    "slug",
    "protocol",
    "route_selection_expression",
    "description",
];

#[derive(Template)]
#[template(path = "api_form.html")]
pub(super) struct ApiFormPage {
    frame: Frame,
    /// The API being edited; `None` for a new one.
    api: Option<Api>,
    fields: Fields,
    errors: Errors,
}

impl ApiFormPage {
    fn action(&self) -> String {
        match &self.api {
            Some(api) => format!("/apis/{}/edit", api.id),
            None => "/apis/new".to_owned(),
        }
    }
}

pub(super) fn form_page(
    user: &SignedIn,
    api: Option<Api>,
    fields: Fields,
    errors: Errors,
) -> ApiFormPage {
    ApiFormPage {
        frame: user.frame(Section::Apis),
        api,
        fields,
        errors,
    }
}

/// The fields of a new API's form.
pub(super) fn defaults() -> Fields {
    Fields::default().with("protocol", "HTTP")
}

/// The fields of the form for an existing API.
pub(super) fn fields_of(api: &Api) -> Fields {
    Fields::default()
        .with("name", api.name.clone())
        .with("slug", api.slug.clone())
        .with("description", api.description.clone())
        .with("protocol", api.protocol.clone())
        .with(
            "route_selection_expression",
            api.route_selection_expression.clone().unwrap_or_default(),
        )
}

/// The `POST /apis` request for the form; HTTP when no protocol was chosen.
pub(super) fn create_body(fields: &Fields) -> CreateApi {
    let protocol = match fields.trimmed("protocol") {
        "" => "HTTP",
        chosen => chosen,
    };
    CreateApi {
        name: fields.trimmed("name").to_owned(),
        slug: fields.trimmed("slug").to_owned(),
        protocol: protocol.to_owned(),
        route_selection_expression: selection_of(fields, protocol),
        description: fields.trimmed("description").to_owned(),
        cors_configuration: None,
    }
}

/// The `PATCH /apis/{id}` request for the form; an API's protocol does not change.
pub(super) fn update_body(fields: &Fields, api: &Api) -> UpdateApi {
    UpdateApi {
        name: Some(fields.trimmed("name").to_owned()),
        slug: Some(fields.trimmed("slug").to_owned()),
        description: Some(fields.trimmed("description").to_owned()),
        route_selection_expression: selection_of(fields, &api.protocol),
        cors_configuration: None,
    }
}

/// The route selection expression the form sent, for a WebSocket API; `null` leaves the
/// API's own (or the default) in place.
fn selection_of(fields: &Fields, protocol: &str) -> Option<String> {
    match fields.trimmed("route_selection_expression") {
        "" => None,
        _ if protocol != "WEBSOCKET" => None,
        raw => Some(raw.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_expression_is_sent_for_websocket_apis_only() {
        let fields = Fields::default()
            .with("name", " Pets ")
            .with("route_selection_expression", " $request.body.action ");
        let http = create_body(&fields);
        assert_eq!(http.protocol, "HTTP");
        assert_eq!(http.name, "Pets");
        assert_eq!(http.route_selection_expression, None);
        let websocket = create_body(&fields.clone().with("protocol", "WEBSOCKET"));
        assert_eq!(
            websocket.route_selection_expression.as_deref(),
            Some("$request.body.action")
        );
        let empty = create_body(&defaults().with("protocol", "WEBSOCKET"));
        assert_eq!(empty.route_selection_expression, None);
    }
}
