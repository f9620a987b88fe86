//! The admin API's OpenAPI document: served without a token, OpenAPI 3, and covering every
//! route the admin router serves with the methods it serves them with. Also the contract
//! breaks `just fuzz-api` found, kept here so they stay fixed.

use std::collections::BTreeSet;
use std::path::PathBuf;

use gatehouse_tests::{client, id_of, ControlPlane, ADMIN_TOKEN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &gatehouse_control_plane::MIGRATOR;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn fetch_document(cp: &ControlPlane) -> Value {
    let response = client()
        .get(format!("{}/api/v1/openapi.json", cp.url()))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::OK, "served without a token");
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.expect("JSON")
}

/// The control plane's HTTP modules, from the tests crate.
fn http_sources() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crates/control-plane/src/http")
}

/// The text of `source` from `start` to the end of that item (the next line that is `}`).
fn item<'a>(source: &'a str, start: &str) -> &'a str {
    let from = source
        .find(start)
        .unwrap_or_else(|| panic!("`{start}` not found"));
    let rest = &source[from..];
    &rest[..rest.find("\n}\n").unwrap_or(rest.len())]
}

/// The string literals that follow each `marker` in `text` (as in `.route("/apis", ...)`).
fn literals_after(text: &str, marker: &str) -> Vec<String> {
    text.split(marker)
        .skip(1)
        .filter_map(|after| {
            let after = after.trim_start().strip_prefix('"')?;
            Some(after[..after.find('"')?].to_owned())
        })
        .collect()
}

/// Every path the admin router serves, from the source: the routers `admin_router` merges,
/// and the `.route(...)` calls of each.
fn admin_router_paths() -> BTreeSet<String> {
    let dir = http_sources();
    let module = std::fs::read_to_string(dir.join("mod.rs")).expect("http/mod.rs");
    let admin_router = item(&module, "pub fn admin_router");
    let merged: Vec<&str> = admin_router
        .split(".merge(")
        .skip(1)
        .filter_map(|after| after.split_once("::router()").map(|(name, _)| name.trim()))
        .collect();
    assert!(merged.len() >= 8, "admin_router merges {merged:?}");
    let mut paths = BTreeSet::new();
    for name in merged {
        let source = std::fs::read_to_string(dir.join(format!("{name}.rs")))
            .unwrap_or_else(|e| panic!("http/{name}.rs: {e}"));
        let routes = literals_after(item(&source, "pub fn router()"), ".route(");
        assert!(!routes.is_empty(), "http/{name}.rs routes nothing");
        paths.extend(routes);
    }
    paths
}

/// `path` with each `{param}` filled in with a plausible value.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{stage}" => "prod".to_owned(),
            s if s.starts_with('{') => uuid::Uuid::now_v7().to_string(),
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The methods the running server serves `path` with, from the `Allow` header of its
/// answer to a method no route takes.
async fn served_methods(cp: &ControlPlane, path: &str) -> BTreeSet<String> {
    let response = client()
        .request(
            Method::TRACE,
            format!("{}/api/v1{}", cp.url(), concrete(path)),
        )
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("answers");
    assert_eq!(
        response.status(),
        StatusCode::METHOD_NOT_ALLOWED,
        "TRACE {path}"
    );
    let allow = response.headers()["allow"].to_str().expect("ASCII");
    allow
        .split(',')
        .map(|m| m.trim().to_ascii_lowercase())
        .filter(|m| m != "head")
        .collect()
}

fn documented_methods(document: &Value, path: &str) -> BTreeSet<String> {
    METHODS
        .iter()
        .filter(|m| document["paths"][path].get(**m).is_some())
        .map(|m| (*m).to_owned())
        .collect()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_admin_api_describes_itself_in_openapi_3_without_a_token(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let document = fetch_document(&cp).await;
    let version = document["openapi"].as_str().expect("openapi");
    assert!(version.starts_with("3."), "OpenAPI {version}");
    assert_eq!(document["servers"][0]["url"], "/api/v1");
    let bearer = &document["components"]["securitySchemes"]["bearer"];
    assert_eq!(
        (&bearer["type"], &bearer["scheme"]),
        (&json!("http"), &json!("bearer"))
    );
    assert_eq!(document["security"], json!([{"bearer": []}]));
    let error = &document["components"]["schemas"]["Error"];
    assert_eq!(error["required"], json!(["message"]));
    assert!(error["properties"]["errors"].is_object(), "{error}");

    let mut operation_ids = BTreeSet::new();
    let mut links = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let id = operation["operationId"].as_str().expect("operationId");
            assert!(operation_ids.insert(id.to_owned()), "{id} is used twice");
            let responses = operation["responses"].as_object().expect("responses");
            let statuses: Vec<&str> = responses.keys().map(String::as_str).collect();
            for shared in ["401", "503"] {
                assert!(statuses.contains(&shared), "{method} {path}: {statuses:?}");
            }
            if method != "get" {
                assert!(statuses.contains(&"403"), "{method} {path}: {statuses:?}");
            }
            if operation.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(statuses.contains(&status), "{method} {path}: {statuses:?}");
                }
            }
            if path.contains('{') {
                assert!(statuses.contains(&"404"), "{method} {path}: {statuses:?}");
            }
            assert!(
                statuses.iter().any(|s| s.starts_with('2')),
                "{method} {path} has no success: {statuses:?}"
            );
            for response in responses.values() {
                if let Some(found) = response.get("links").and_then(Value::as_object) {
                    links.extend(found.values().cloned());
                }
            }
        }
    }
    assert!(!links.is_empty());
    for link in links {
        let target = link["operationId"].as_str().unwrap_or_default();
        assert!(operation_ids.contains(target), "link to nothing: {link}");
    }
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_route_the_admin_router_serves_is_documented_with_its_methods(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let document = fetch_document(&cp).await;
    let documented: BTreeSet<String> = document["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect();
    let served = admin_router_paths();
    for resource in [
        "/apis",
        "/keys",
        "/usage-plans",
        "/tokens/{token_id}/rotate",
    ] {
        assert!(
            served.contains(resource),
            "{resource} not found in {served:?}"
        );
    }
    for path in &served {
        assert!(
            documented.contains(path),
            "{path} is served but not in the OpenAPI document: add a #[utoipa::path] to its \
             handlers and list them in http/openapi.rs"
        );
        assert_eq!(
            documented_methods(&document, path),
            served_methods(&cp, path).await,
            "methods of {path}: documented (left) and served (right)"
        );
    }
    let stale: Vec<&String> = documented.difference(&served).collect();
    assert!(stale.is_empty(), "documented but not served: {stale:?}");
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_json_array_where_the_api_expects_an_object_is_refused(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let admin = cp.admin();
    let key = admin
        .create("/keys", json!({"name": "mobile", "enabled": true}))
        .await;
    let key_path = format!("/keys/{}", id_of(&key));
    // Found by `just fuzz-api`: serde reads a struct from an array of its fields in order,
    // so this was `{"name": null, "enabled": null}`, a 200.
    let (status, body) = admin
        .call(Method::PATCH, &key_path, Some(json!([null, null])))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "body", "{body}");
    let (status, body) = admin
        .patch(&key_path, json!({"name": "app", "enabled": false}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["enabled"], false);

    // And at any depth: a throttle is `{"rate", "burst"}`, never `[rate, burst]`.
    let (status, body) = admin
        .post(
            "/usage-plans",
            json!({"name": "gold", "throttle": [10, 20]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "throttle", "{body}");
    let (status, body) = admin
        .post(
            "/usage-plans",
            json!({"name": "gold", "throttle": {"rate": 10, "burst": 20}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn token_values_are_documented_in_the_answers_that_issue_them_only(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let document = fetch_document(&cp).await;
    let schemas = &document["components"]["schemas"];
    let issued = schemas["IssuedToken"].to_string();
    assert!(issued.contains("\"value\""), "{issued}");
    assert!(
        schemas["Token"]["properties"].get("value").is_none(),
        "listings never show a value: {}",
        schemas["Token"]
    );
    assert_eq!(
        schemas["TokenRole"]["enum"],
        json!(["admin", "viewer", "node"])
    );
    // A rotation takes no body, or an object with either field; never `null`.
    let rotate = &document["paths"]["/tokens/{token_id}/rotate"]["post"]["requestBody"];
    assert_ne!(rotate["required"], json!(true), "{rotate}");
    assert_eq!(
        rotate["content"]["application/json"]["schema"],
        json!({"$ref": "#/components/schemas/RotateToken"})
    );
    let admin = cp.admin();
    let token = admin
        .create("/tokens", json!({"name": "ci", "role": "viewer"}))
        .await;
    let rotate_path = format!("/tokens/{}/rotate", id_of(&token));
    let (status, body) = admin.call(Method::POST, &rotate_path, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["previous"]["id"], token["id"], "{body}");
    cp.stop().await;
}
