//! `JsonBody<T>`: the admin API's JSON extractor. Unlike axum's own it answers in our error
//! shape and names the field at fault (`integration.timeout_ms`), with 400 for bodies
//! that are not JSON at all and 422 for JSON of the wrong shape. `Option<JsonBody<T>>` is
//! `None` for a request with neither a body nor a Content-Type, for calls whose body is
//! optional. Structs are read from JSON objects only, never from arrays, and strings never
//! hold a NUL character ([`strict`]).

use axum::body::Bytes;
use axum::extract::{FromRequest, OptionalFromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

mod strict;

pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(unreadable)?;
        parse(&bytes).map(JsonBody)
    }
}

impl<S, T> OptionalFromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        if req.headers().contains_key(CONTENT_TYPE) {
            return <JsonBody<T> as FromRequest<S>>::from_request(req, state)
                .await
                .map(Some);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(unreadable)?;
        if bytes.is_empty() {
            Ok(None)
        } else {
            Err(ApiError::UnsupportedMediaType)
        }
    }
}

fn unreadable(rejection: axum::extract::rejection::BytesRejection) -> ApiError {
    if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest("could not read the request body".into())
    }
}

/// Deserializes `bytes`, naming the field that failed.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = match serde_path_to_error::deserialize::<_, T>(strict::Strict(&mut de)) {
        Ok(v) => v,
        Err(e) => {
            let inner = e.inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(ApiError::BadRequest(format!(
                    "body is not valid JSON: {inner}"
                )));
            }
            let path = e.path().to_string();
            // A bad key of a map is at `map.?`: name the map.
            let path = path.strip_suffix(".?").unwrap_or(&path);
            let field = if path == "." { "body" } else { path }.to_owned();
            return Err(ApiError::Invalid(vec![FieldError::new(
                field,
                strip_position(&inner.to_string()),
            )]));
        }
    };
    de.end()
        .map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))?;
    Ok(value)
}

/// serde_json appends " at line 1 column 42"; the field name says more to an API user.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    fn field_of(e: ApiError) -> String {
        match e {
            ApiError::Invalid(errors) => errors[0].field.clone(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn names_the_nested_field_with_the_wrong_type() {
        let e = parse::<Outer>(br#"{"inner":{"count":-1}}"#).expect_err("negative");
        assert_eq!(field_of(e), "inner.count");
    }

    #[test]
    fn refuses_unknown_fields_and_says_which() {
        match parse::<Outer>(br#"{"inner":{"count":1},"extra":true}"#) {
            Err(ApiError::Invalid(errors)) => assert!(errors[0].message.contains("extra")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn structs_are_read_from_objects_only_at_any_depth() {
        let e = parse::<Outer>(br#"[{"count":1}]"#).expect_err("array body");
        assert_eq!(field_of(e), "body");
        let e = parse::<Outer>(br#"{"inner":[1]}"#).expect_err("array field");
        assert_eq!(field_of(e), "inner");
        let e = parse::<Vec<Outer>>(br#"[{"inner":[1]}]"#).expect_err("array in a list");
        assert_eq!(field_of(e), "[0].inner");
        let fine = parse::<Vec<Outer>>(br#"[{"inner":{"count":1}}]"#).expect("a list of objects");
        assert_eq!(fine.len(), 1);
    }

    #[test]
    fn strings_and_keys_with_a_nul_character_are_refused_by_name() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Texts {
            name: String,
            tags: std::collections::BTreeMap<String, String>,
        }
        let e = parse::<Texts>(br#"{"name":"a\u0000b","tags":{}}"#).expect_err("NUL");
        assert_eq!(field_of(e), "name");
        let e = parse::<Texts>(br#"{"name":"a","tags":{"k\u0000":"v"}}"#).expect_err("key");
        assert_eq!(field_of(e), "tags");
        let e = parse::<Texts>(br#"{"name":"a","tags":{"k":"\u0000"}}"#).expect_err("value");
        assert_eq!(field_of(e), "tags.k");
        let fine = parse::<Texts>(br#"{"name":"\\u0000","tags":{}}"#).expect("a backslash");
        assert_eq!(fine.name, "\\u0000");
    }

    #[test]
    fn syntax_errors_and_trailing_garbage_are_bad_requests() {
        assert!(matches!(parse::<Outer>(b"{"), Err(ApiError::BadRequest(_))));
        assert!(matches!(
            parse::<Outer>(br#"{"inner":{"count":1}} x"#),
            Err(ApiError::BadRequest(_))
        ));
    }
}
