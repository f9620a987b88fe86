//! How the parsed string newtypes of this crate look in the admin API's OpenAPI document:
//! strings (or a map of them) with the limits their `parse` constructors enforce, so a
//! client generated from the document refuses what the API would refuse.
//!
//! The structs and enums derive `utoipa::ToSchema` where they are defined; these types are
//! written by hand because their rules live in code, not in their fields.

use std::borrow::Cow;

use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::integration::MAX_URI_LEN;
use crate::names::{ApiSlug, StageName, StageVariables};
use crate::route_key::{RouteKey, MAX_ROUTE_KEY_LEN};
use crate::UriTemplate;

fn string(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
}

impl PartialSchema for ApiSlug {
    fn schema() -> RefOr<Schema> {
        string("The URL-safe, unique name of an API: the first segment of its invoke URL.")
            .min_length(Some(1))
            .max_length(Some(ApiSlug::MAX_LEN))
            .pattern(Some("^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"))
            .examples(["pets"])
            .into()
    }
}

impl ToSchema for ApiSlug {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ApiSlug")
    }
}

impl PartialSchema for StageName {
    fn schema() -> RefOr<Schema> {
        string("The name of a stage: the second segment of an invoke URL.")
            .min_length(Some(1))
            .max_length(Some(StageName::MAX_LEN))
            .pattern(Some("^[A-Za-z0-9_-]+$"))
            .examples(["prod"])
            .into()
    }
}

impl ToSchema for StageName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("StageName")
    }
}

impl PartialSchema for StageVariables {
    fn schema() -> RefOr<Schema> {
        let name = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(StageVariables::MAX_NAME_LEN))
            .pattern(Some("^[A-Za-z0-9_]+$"));
        let value = ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(StageVariables::MAX_VALUE_LEN))
            .pattern(Some("^[A-Za-z0-9._~:/?#&=,-]*$"));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Stage variables, substituted into integration URIs as `${stageVariables.name}`.",
            ))
            .property_names(Some(name))
            .additional_properties(Some(AdditionalProperties::RefOr(value.into())))
            .max_properties(Some(StageVariables::MAX_COUNT))
            .into()
    }
}

impl ToSchema for StageVariables {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("StageVariables")
    }
}

impl PartialSchema for RouteKey {
    fn schema() -> RefOr<Schema> {
        string(
            "HTTP APIs: `METHOD /path` with `{param}` segments, a greedy last segment \
             `{proxy+}`, method `ANY`, or `$default`. WebSocket APIs: `$connect`, \
             `$disconnect`, `$default` or a custom key.",
        )
        .min_length(Some(1))
        .max_length(Some(MAX_ROUTE_KEY_LEN))
        .examples(["GET /pets/{id}"])
        .into()
    }
}

impl ToSchema for RouteKey {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("RouteKey")
    }
}

impl PartialSchema for UriTemplate {
    fn schema() -> RefOr<Schema> {
        string(
            "An `http(s)://` URI of printable ASCII, with `{param}` (path parameters of the \
             route key, in the path or query only) and `${stageVariables.name}` placeholders.",
        )
        .max_length(Some(MAX_URI_LEN))
        .pattern(Some("^https?://[!-~]*$"))
        .examples(["http://10.0.0.5:9000/pets/{id}"])
        .into()
    }
}

impl ToSchema for UriTemplate {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("UriTemplate")
    }
}
