//! The authorizer form in both directions: a new authorizer's defaults or a stored one as
//! fields, and the fields as the admin API's request. The form holds the fields of both
//! types at once (no script needed); the chosen type decides which are sent, and the
//! admin API judges the rest.

use gatehouse_model::authorizer::{
    AuthorizerInput, JwtConfigurationInput, DEFAULT_JWT_IDENTITY_SOURCE,
    DEFAULT_RESULT_TTL_SECONDS, MAX_RESULT_TTL_SECONDS,
};
use gatehouse_model::{AuthorizerSpec, AuthorizerType};

use super::super::field_map::FieldMap;
use super::super::form::Fields;
use crate::error::FieldError;

pub(super) const JWT: &str = "JWT";
pub(super) const REQUEST: &str = "REQUEST";

/// The fields of the authorizer form the page shows errors next to.
pub(super) const FORM_FIELDS: [&str; 9] = [
    "name",
    "authorizer_type",
    "jwt_identity_source",
    "jwt_configuration.issuer",
    "jwt_configuration.audience",
    "jwt_configuration.jwks_uri",
    "identity_source",
    "authorizer_uri",
    "authorizer_result_ttl_in_seconds",
];

/// A JWT authorizer's one identity source has a field of its own (a REQUEST authorizer's
/// list is `identity_source`); an error about its configuration as a whole shows by the
/// issuer, its first field.
const JWT_FIELD_MAP: FieldMap = FieldMap::new(&[
    ("identity_source", "jwt_identity_source"),
    ("jwt_configuration", "jwt_configuration.issuer"),
]);
const REQUEST_FIELD_MAP: FieldMap = FieldMap::new(&[]);

/// Where the admin API's errors show for a form of this type.
pub(super) fn field_map(fields: &Fields) -> &'static FieldMap {
    match fields.get("authorizer_type") {
        REQUEST => &REQUEST_FIELD_MAP,
        _ => &JWT_FIELD_MAP,
    }
}

/// The fields of a new authorizer's form.
pub(super) fn defaults() -> Fields {
    Fields::default()
        .with("authorizer_type", JWT)
        .with("jwt_identity_source", DEFAULT_JWT_IDENTITY_SOURCE)
        .with(
            "authorizer_result_ttl_in_seconds",
            DEFAULT_RESULT_TTL_SECONDS.to_string(),
        )
}

/// The fields of the form for a stored authorizer.
pub(super) fn fields_of(spec: &AuthorizerSpec) -> Fields {
    let sources: Vec<String> = spec.identity_source.iter().map(|s| s.to_string()).collect();
    let fields = defaults()
        .with("name", spec.name.clone())
        .with("authorizer_type", spec.authorizer_type.as_str());
    match spec.authorizer_type {
        AuthorizerType::Jwt => {
            let jwt = spec.jwt_configuration.as_ref();
            fields
                .with("jwt_identity_source", sources.join("\n"))
                .with(
                    "jwt_configuration.issuer",
                    jwt.map(|j| j.issuer.clone()).unwrap_or_default(),
                )
                .with(
                    "jwt_configuration.audience",
                    jwt.map(|j| j.audience.join("\n")).unwrap_or_default(),
                )
                .with(
                    "jwt_configuration.jwks_uri",
                    jwt.and_then(|j| j.jwks_uri.clone()).unwrap_or_default(),
                )
        }
        AuthorizerType::Request => fields
            .with("identity_source", sources.join("\n"))
            .with(
                "authorizer_uri",
                spec.authorizer_uri.clone().unwrap_or_default(),
            )
            .with(
                "authorizer_result_ttl_in_seconds",
                spec.authorizer_result_ttl_in_seconds.to_string(),
            ),
    }
}

/// The admin API's request for the authorizer the form describes, or what the form
/// itself cannot read.
pub(super) fn input(fields: &Fields) -> Result<AuthorizerInput, Vec<FieldError>> {
    let name = fields.trimmed("name").to_owned();
    match fields.get("authorizer_type") {
        JWT => {
            let source = match fields.trimmed("jwt_identity_source") {
                "" => DEFAULT_JWT_IDENTITY_SOURCE,
                typed => typed,
            };
            Ok(AuthorizerInput {
                name,
                authorizer_type: AuthorizerType::Jwt,
                identity_source: Some(vec![source.to_owned()]),
                jwt_configuration: Some(JwtConfigurationInput {
                    issuer: fields.trimmed("jwt_configuration.issuer").to_owned(),
                    audience: lines(fields.get("jwt_configuration.audience")),
                    jwks_uri: non_empty(fields.trimmed("jwt_configuration.jwks_uri")),
                }),
                authorizer_uri: None,
                authorizer_result_ttl_in_seconds: None,
            })
        }
        REQUEST => {
            let ttl = parse_ttl(fields.trimmed("authorizer_result_ttl_in_seconds"))
                .map_err(|e| vec![FieldError::new("authorizer_result_ttl_in_seconds", e)])?;
            Ok(AuthorizerInput {
                name,
                authorizer_type: AuthorizerType::Request,
                identity_source: Some(lines(fields.get("identity_source"))),
                jwt_configuration: None,
                authorizer_uri: non_empty(fields.trimmed("authorizer_uri")),
                authorizer_result_ttl_in_seconds: Some(ttl),
            })
        }
        _ => Err(vec![FieldError::new(
            "authorizer_type",
            "choose JWT or REQUEST",
        )]),
    }
}

/// The non-blank lines of a text area, trimmed.
fn lines(raw: &str) -> Vec<String> {
    raw.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

fn non_empty(raw: &str) -> Option<String> {
    (!raw.is_empty()).then(|| raw.to_owned())
}

fn parse_ttl(raw: &str) -> Result<u32, String> {
    if raw.is_empty() {
        return Ok(DEFAULT_RESULT_TTL_SECONDS);
    }
    match raw.parse::<u32>() {
        Ok(ttl) if ttl <= MAX_RESULT_TTL_SECONDS => Ok(ttl),
        _ => Err(format!(
            "must be a whole number of seconds from 0 to {MAX_RESULT_TTL_SECONDS}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::super::form::Errors;
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .fold(defaults(), |f, (name, value)| f.with(name, *value))
    }

    fn spec_of(fields: &Fields) -> AuthorizerSpec {
        AuthorizerSpec::try_from(input(fields).expect("readable")).expect("valid")
    }

    #[test]
    fn a_jwt_form_sends_only_the_jwt_fields() {
        let fields = form(&[
            ("name", " idp "),
            ("jwt_configuration.issuer", "https://idp.example.com"),
            ("jwt_configuration.audience", "api\r\n\r\n web \n"),
            ("identity_source", "$request.header.x-ignored"),
            ("authorizer_uri", "http://ignored/"),
        ]);
        let sent = serde_json::to_value(input(&fields).expect("readable")).expect("json");
        assert_eq!(
            sent,
            json!({"name": "idp", "authorizer_type": "JWT",
                   "identity_source": ["$request.header.Authorization"],
                   "jwt_configuration": {"issuer": "https://idp.example.com",
                                         "audience": ["api", "web"]}})
        );
    }

    #[test]
    fn stored_authorizers_read_back_unchanged() {
        let jwt = spec_of(&form(&[
            ("name", "idp"),
            ("jwt_identity_source", "$request.querystring.token"),
            ("jwt_configuration.issuer", "https://idp.example.com"),
            ("jwt_configuration.audience", "api\nweb"),
            ("jwt_configuration.jwks_uri", "https://idp.example.com/keys"),
        ]));
        assert_eq!(spec_of(&fields_of(&jwt)), jwt);
        let request = spec_of(&form(&[
            ("name", "gate"),
            ("authorizer_type", "REQUEST"),
            (
                "identity_source",
                "$request.header.X-Token\n$context.identity.sourceIp",
            ),
            ("authorizer_uri", "http://auth.internal:9000/check"),
            ("authorizer_result_ttl_in_seconds", "0"),
        ]));
        assert_eq!(request.authorizer_result_ttl_in_seconds, 0);
        assert_eq!(spec_of(&fields_of(&request)), request);
    }

    #[test]
    fn a_ttl_that_does_not_parse_names_its_field() {
        for bad in ["3601", "-1", "5m"] {
            let fields = form(&[
                ("authorizer_type", "REQUEST"),
                ("authorizer_result_ttl_in_seconds", bad),
            ]);
            let errors = input(&fields).expect_err(bad);
            assert_eq!(errors[0].field, "authorizer_result_ttl_in_seconds");
        }
        let unknown = form(&[("authorizer_type", "LAMBDA")]);
        assert_eq!(
            input(&unknown).expect_err("type")[0].field,
            "authorizer_type"
        );
    }

    #[test]
    fn the_apis_errors_show_by_the_field_of_the_chosen_type() {
        let errors = || {
            Errors::new(
                "Invalid request",
                vec![
                    FieldError::new("identity_source", "bad source"),
                    FieldError::new("jwt_configuration", "missing"),
                ],
            )
        };
        let jwt = field_map(&defaults()).place(errors());
        assert_eq!(jwt.get("jwt_identity_source"), Some("bad source"));
        assert_eq!(jwt.get("jwt_configuration.issuer"), Some("missing"));
        let request = field_map(&form(&[("authorizer_type", "REQUEST")])).place(errors());
        assert_eq!(request.get("identity_source"), Some("bad source"));
    }
}
