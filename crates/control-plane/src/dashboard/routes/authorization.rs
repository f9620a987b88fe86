//! A route's authorization as the route form shows it: the type (NONE, JWT or CUSTOM),
//! one of the API's authorizers, and for JWT the scopes, space or line separated. Only
//! what the chosen type uses is sent; whether the authorizer fits is the admin API's to
//! judge, next to the field.

use gatehouse_model::{AuthorizationType, RouteAuthorization};
use uuid::Uuid;

use super::super::form::Fields;
use crate::error::FieldError;
use crate::repo::routes::Route;

/// The form's fields for `route`'s authorization.
pub(super) fn fields_of(fields: Fields, route: &Route) -> Fields {
    let authorization = route.authorization();
    fields
        .with(
            "authorization_type",
            authorization.authorization_type.as_str(),
        )
        .with(
            "authorizer_id",
            authorization
                .authorizer_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
        )
        .with(
            "authorization_scopes",
            authorization.authorization_scopes.join(" "),
        )
}

/// The authorization the form describes, or what it cannot read.
pub(super) fn parse(fields: &Fields) -> Result<RouteAuthorization, Vec<FieldError>> {
    let authorization_type = match fields.get("authorization_type") {
        "" | "NONE" => AuthorizationType::None,
        "JWT" => AuthorizationType::Jwt,
        "CUSTOM" => AuthorizationType::Custom,
        _ => {
            return Err(vec![FieldError::new(
                "authorization_type",
                "choose NONE, JWT or CUSTOM",
            )])
        }
    };
    if authorization_type == AuthorizationType::None {
        return Ok(RouteAuthorization::default());
    }
    let authorizer_id = match fields.trimmed("authorizer_id") {
        // The admin API says an authorizer is needed, by its field.
        "" => None,
        raw => Some(Uuid::parse_str(raw).map_err(|_| {
            vec![FieldError::new(
                "authorizer_id",
                "choose one of the API's authorizers",
            )]
        })?),
    };
    let authorization_scopes = match authorization_type {
        AuthorizationType::Jwt => fields
            .get("authorization_scopes")
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    Ok(RouteAuthorization {
        authorization_type,
        authorizer_id,
        authorization_scopes,
    })
}

/// One line that says who may call a route: `JWT idp (read:pets)`, `CUSTOM gate`, or
/// empty for anyone; `name_of` names an authorizer by id.
pub(in crate::dashboard) fn summary(
    authorization: &RouteAuthorization,
    name_of: impl Fn(Uuid) -> Option<String>,
) -> String {
    let Some(id) = authorization.authorizer_id else {
        return String::new();
    };
    let name = name_of(id).unwrap_or_else(|| "(deleted)".to_owned());
    let kind = authorization.authorization_type.as_str();
    if authorization.authorization_scopes.is_empty() {
        format!("{kind} {name}")
    } else {
        format!(
            "{kind} {name} ({})",
            authorization.authorization_scopes.join(" ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .fold(Fields::default(), |f, (name, value)| f.with(name, *value))
    }

    const ID: &str = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

    #[test]
    fn only_what_the_type_uses_is_sent() {
        let none = form(&[
            ("authorization_type", "NONE"),
            ("authorizer_id", ID),
            ("authorization_scopes", "a b"),
        ]);
        assert_eq!(parse(&none).expect("none"), RouteAuthorization::default());
        let jwt = parse(&form(&[
            ("authorization_type", "JWT"),
            ("authorizer_id", ID),
            ("authorization_scopes", " read:pets\r\nwrite:pets  admin "),
        ]))
        .expect("jwt");
        assert_eq!(
            jwt.authorization_scopes,
            ["read:pets", "write:pets", "admin"]
        );
        assert_eq!(
            jwt.authorizer_id.map(|id| id.to_string()).as_deref(),
            Some(ID)
        );
        let custom = parse(&form(&[
            ("authorization_type", "CUSTOM"),
            ("authorizer_id", ID),
            ("authorization_scopes", "ignored"),
        ]))
        .expect("custom");
        assert!(custom.authorization_scopes.is_empty());
        assert!(custom.check().is_ok());
    }

    #[test]
    fn what_does_not_read_names_its_field() {
        let bad_type = form(&[("authorization_type", "IAM")]);
        assert_eq!(
            parse(&bad_type).expect_err("type")[0].field,
            "authorization_type"
        );
        let bad_id = form(&[("authorization_type", "JWT"), ("authorizer_id", "x")]);
        assert_eq!(parse(&bad_id).expect_err("id")[0].field, "authorizer_id");
        let no_id = parse(&form(&[("authorization_type", "JWT")])).expect("the API judges");
        assert_eq!(no_id.check().expect_err("needs one").field, "authorizer_id");
    }

    #[test]
    fn summaries_name_the_authorizer_and_scopes() {
        let id = Uuid::parse_str(ID).expect("uuid");
        let jwt = RouteAuthorization {
            authorization_type: AuthorizationType::Jwt,
            authorizer_id: Some(id),
            authorization_scopes: vec!["read:pets".into()],
        };
        assert_eq!(summary(&jwt, |_| Some("idp".into())), "JWT idp (read:pets)");
        assert_eq!(summary(&RouteAuthorization::default(), |_| None), "");
    }
}
