//! Tokens issued through the admin API: shown once and stored as digests, revoked at once,
//! rotated with an overlap, expiring, and each role kept to what it may do (viewers read,
//! nodes sync, admins do the rest), over real HTTP against a real database and a real proxy.

use std::time::Duration;

use gatehouse_tests::serial::timed;
use gatehouse_tests::{
    client, config_version, error_fields, eventually, id_of, mock, row_count, start_proxy_tuned,
    wait_for_version, ControlPlane,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &gatehouse_control_plane::MIGRATOR;

/// Sends `method url` with `token` as bearer token and an optional JSON body.
async fn call(token: &str, method: Method, url: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = client().request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("control plane answers");
    let status = response.status();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The admin API of `cp` as the holder of `token`.
struct As<'a> {
    cp: &'a ControlPlane,
    token: String,
}

impl As<'_> {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let url = format!("{}/api/v1{path}", self.cp.url());
        call(&self.token, method, &url, body).await
    }

    async fn get(&self, path: &str) -> StatusCode {
        self.call(Method::GET, path, None).await.0
    }

    /// `GET /dp/v1/config` as a proxy would poll it, answered at once.
    async fn sync(&self) -> StatusCode {
        let url = format!("{}/dp/v1/config?wait_ms=0", self.cp.url());
        client()
            .get(url)
            .bearer_auth(&self.token)
            .header("x-gatehouse-node-id", "token-test")
            .send()
            .await
            .expect("control plane answers")
            .status()
    }
}

/// Issues a token with the bootstrap admin token; returns the whole answer.
async fn issue(cp: &ControlPlane, name: &str, role: &str, extra: Value) -> Value {
    let mut body = json!({"name": name, "role": role});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    cp.admin().create("/tokens", body).await
}

fn value_of(issued: &Value) -> String {
    issued["value"]
        .as_str()
        .unwrap_or_else(|| panic!("no value in {issued}"))
        .to_owned()
}

/// Every audit entry as JSON text, once `expected` of them are written (entries are
/// written just after the answer).
async fn audit_entries(pool: &PgPool, expected: usize) -> Vec<String> {
    let entries = eventually(Duration::from_secs(5), || async {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT row_to_json(a)::text FROM audit_log a ORDER BY id")
                .fetch_all(pool)
                .await
                .expect("audit log");
        (rows.len() >= expected).then_some(rows)
    })
    .await;
    entries
        .unwrap_or_else(|| panic!("fewer than {expected} audit entries"))
        .0
}

/// Waits, at most `limit`, until `token` is refused on `GET /apis`.
async fn refused_within(who: &As<'_>, limit: Duration) -> bool {
    eventually(limit, || async {
        (who.get("/apis").await == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await
    .is_some()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_issued_token_works_and_its_value_is_shown_only_by_its_creation(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let issued = issue(&cp, "ci", "admin", json!({})).await;
    let value = value_of(&issued);
    let id = id_of(&issued);
    assert!(value.starts_with("ght_") && value.len() == 47, "{value}");
    assert!(value.starts_with(issued["prefix"].as_str().expect("prefix")));
    assert_eq!(issued["role"], "admin");
    assert_eq!(issued["status"], "active");
    assert_eq!(issued["created_by"], "admin-token");
    assert!(issued["expires_at"].is_null() && issued["last_used_at"].is_null());

    let ci = As {
        cp: &cp,
        token: value.clone(),
    };
    assert_eq!(ci.get("/apis").await, StatusCode::OK);
    let (status, api) = ci
        .call(
            Method::POST,
            "/apis",
            Some(json!({"name": "pets", "slug": "pets"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{api}");
    let api_id = id_of(&api);
    let (status, deployment) = ci
        .call(
            Method::POST,
            &format!("/apis/{api_id}/deployments"),
            Some(json!({"description": "first"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{deployment}");
    assert_eq!(deployment["author"], "token:ci");

    // Listings and reads never show the value or the digest.
    let (status, list) = ci.call(Method::GET, "/tokens", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, one) = ci.call(Method::GET, &format!("/tokens/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["name"], "ci");
    for shown in [&list, &one] {
        let text = shown.to_string();
        assert!(!text.contains(&value[4..]), "the value leaked: {text}");
        assert!(
            !text.contains("digest") && !text.contains("\"value\""),
            "{text}"
        );
    }
    // The database holds the SHA-256 of the value and nothing more of it than the prefix.
    let (row, digest_matches): (String, bool) = sqlx::query_as(
        "SELECT row_to_json(t)::text, digest = sha256(convert_to($2, 'UTF8'))
         FROM api_tokens t WHERE id = $1::uuid",
    )
    .bind(&id)
    .bind(&value)
    .fetch_one(&pool)
    .await
    .expect("the token's row");
    assert!(digest_matches);
    assert!(!row.contains(&value[4..]), "the value is stored: {row}");

    // The first use is noted (at most once a minute after that).
    let used = eventually(Duration::from_secs(5), || async {
        let (_, one) = ci.call(Method::GET, &format!("/tokens/{id}"), None).await;
        one["last_used_at"].as_str().map(str::to_owned)
    })
    .await;
    assert!(used.is_some(), "last_used_at never set");
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_revoked_token_is_refused_at_once(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let issued = issue(&cp, "laptop", "admin", json!({})).await;
    let id = id_of(&issued);
    let laptop = As {
        cp: &cp,
        token: value_of(&issued),
    };
    assert_eq!(laptop.get("/apis").await, StatusCode::OK);

    let (status, _) = cp.admin().delete(&format!("/tokens/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = laptop.call(Method::GET, "/apis", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["message"], "Unauthorized");

    let (_, one) = cp.admin().get(&format!("/tokens/{id}")).await;
    assert_eq!(one["status"], "revoked");
    let revoked_at = one["revoked_at"].clone();
    assert!(revoked_at.is_string(), "{one}");
    // Revoking again changes nothing; unknown tokens are 404.
    let (status, _) = cp.admin().delete(&format!("/tokens/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, again) = cp.admin().get(&format!("/tokens/{id}")).await;
    assert_eq!(again["revoked_at"], revoked_at);
    let unknown = uuid::Uuid::new_v4();
    let (status, _) = cp.admin().delete(&format!("/tokens/{unknown}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = cp.admin().get("/tokens/not-a-uuid").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_rotated_token_keeps_working_until_its_overlap_ends(pool: PgPool) {
    let _timed = timed().await;
    let cp = ControlPlane::start(pool.clone()).await;
    let issued = issue(&cp, "deploy-bot", "admin", json!({})).await;
    let old_id = id_of(&issued);
    let old = As {
        cp: &cp,
        token: value_of(&issued),
    };

    // The old token rotates itself, as a script would.
    let (status, rotated) = old
        .call(
            Method::POST,
            &format!("/tokens/{old_id}/rotate"),
            Some(json!({"overlap_seconds": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let new = As {
        cp: &cp,
        token: value_of(&rotated),
    };
    assert_ne!(new.token, old.token);
    assert_eq!(rotated["name"], "deploy-bot");
    assert_eq!(rotated["role"], "admin");
    assert_eq!(rotated["rotated_from"], old_id.as_str());
    assert_eq!(rotated["created_by"], "token:deploy-bot");
    assert_eq!(rotated["previous"]["id"], old_id.as_str());
    assert!(rotated["previous"]["expires_at"].is_string(), "{rotated}");

    // Both work during the overlap; then only the new one.
    assert_eq!(old.get("/apis").await, StatusCode::OK);
    assert_eq!(new.get("/apis").await, StatusCode::OK);
    assert!(
        refused_within(&old, Duration::from_secs(6)).await,
        "the old token still works after its overlap"
    );
    assert_eq!(new.get("/apis").await, StatusCode::OK);
    let (_, old_record) = new
        .call(Method::GET, &format!("/tokens/{old_id}"), None)
        .await;
    assert_eq!(old_record["status"], "expired");

    // An expired token cannot be rotated again; without a body the overlap is an hour.
    let (status, body) = new
        .call(Method::POST, &format!("/tokens/{old_id}/rotate"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let new_id = id_of(&rotated);
    let (status, third) = new
        .call(Method::POST, &format!("/tokens/{new_id}/rotate"), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{third}");
    let hour_left: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM expires_at - now())::float8 FROM api_tokens WHERE id = $1::uuid",
    )
    .bind(&new_id)
    .fetch_one(&pool)
    .await
    .expect("expiry");
    assert!((3500.0..=3600.0).contains(&hour_left), "{hour_left}");
    assert_eq!(new.get("/apis").await, StatusCode::OK);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_expired_token_is_refused(pool: PgPool) {
    let _timed = timed().await;
    let cp = ControlPlane::start(pool).await;
    let issued = issue(&cp, "short", "viewer", json!({"expires_in_seconds": 1})).await;
    assert!(issued["expires_at"].is_string(), "{issued}");
    let short = As {
        cp: &cp,
        token: value_of(&issued),
    };
    assert_eq!(short.get("/apis").await, StatusCode::OK);
    assert!(
        refused_within(&short, Duration::from_secs(5)).await,
        "the token outlived its lifetime"
    );
    let (_, one) = cp.admin().get(&format!("/tokens/{}", id_of(&issued))).await;
    assert_eq!(one["status"], "expired");
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_viewer_token_reads_everything_and_changes_nothing(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let admin = cp.admin();
    let api = admin.create_api("pets").await;
    let route = admin.add_route(&api, "GET /pets", mock("pets")).await;
    admin.deploy_stage(&api, "prod", json!({})).await;
    let key = id_of(&admin.create("/keys", json!({"name": "app"})).await);
    let plan = id_of(&admin.create("/usage-plans", json!({"name": "gold"})).await);
    let issued = issue(&cp, "auditor", "viewer", json!({})).await;
    let viewer_id = id_of(&issued);
    let viewer = As {
        cp: &cp,
        token: value_of(&issued),
    };

    for path in [
        "/apis".to_owned(),
        format!("/apis/{api}"),
        format!("/apis/{api}/routes"),
        format!("/apis/{api}/routes/{route}"),
        format!("/apis/{api}/deployments"),
        format!("/apis/{api}/stages"),
        format!("/apis/{api}/stages/prod"),
        "/keys".to_owned(),
        format!("/keys/{key}"),
        "/usage-plans".to_owned(),
        format!("/usage-plans/{plan}"),
        format!("/usage-plans/{plan}/keys"),
        "/nodes".to_owned(),
        format!("/metrics?api_id={api}"),
        "/tokens".to_owned(),
        format!("/tokens/{viewer_id}"),
    ] {
        assert_eq!(viewer.get(&path).await, StatusCode::OK, "GET {path}");
    }

    let counts = |pool: PgPool| async move {
        let mut counts = Vec::new();
        for table in [
            "apis",
            "routes",
            "deployments",
            "stages",
            "api_keys",
            "usage_plans",
            "api_tokens",
        ] {
            counts.push(row_count(&pool, table).await);
        }
        counts
    };
    let before = counts(pool.clone()).await;
    let version = config_version(&pool).await;
    let audited = row_count(&pool, "audit_log").await;
    let body = json!({"name": "x", "slug": "x", "role": "admin", "description": "x"});
    let writes = [
        (Method::POST, "/apis".to_owned()),
        (Method::PATCH, format!("/apis/{api}")),
        (Method::DELETE, format!("/apis/{api}")),
        (Method::PUT, format!("/apis/{api}")),
        (Method::POST, format!("/apis/{api}/routes")),
        (Method::DELETE, format!("/apis/{api}/routes/{route}")),
        (Method::POST, format!("/apis/{api}/deployments")),
        (Method::PATCH, format!("/apis/{api}/stages/prod")),
        (Method::DELETE, format!("/apis/{api}/stages/prod")),
        (Method::POST, "/keys".to_owned()),
        (Method::PATCH, format!("/keys/{key}")),
        (Method::DELETE, format!("/keys/{key}")),
        (Method::POST, format!("/usage-plans/{plan}/keys")),
        (Method::DELETE, format!("/usage-plans/{plan}")),
        (Method::POST, "/tokens".to_owned()),
        (Method::POST, format!("/tokens/{viewer_id}/rotate")),
        (Method::DELETE, format!("/tokens/{viewer_id}")),
        (Method::POST, "/no-such-thing".to_owned()),
    ];
    for (method, path) in writes {
        let (status, answer) = viewer.call(method.clone(), &path, Some(body.clone())).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert_eq!(answer["message"], "viewers cannot change anything");
    }
    assert_eq!(counts(pool.clone()).await, before);
    assert_eq!(config_version(&pool).await, version);
    assert_eq!(row_count(&pool, "audit_log").await, audited);
    let (_, one) = admin.get(&format!("/tokens/{viewer_id}")).await;
    assert_eq!(one["status"], "active");
    assert_eq!(viewer.get("/apis").await, StatusCode::OK);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn node_tokens_only_sync_and_other_tokens_never_sync(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let token = |issued: Value| As {
        cp: &cp,
        token: value_of(&issued),
    };
    let node = token(issue(&cp, "edge-1", "node", json!({})).await);
    let admin = token(issue(&cp, "ops", "admin", json!({})).await);
    let viewer = token(issue(&cp, "auditor", "viewer", json!({})).await);

    assert_eq!(node.sync().await, StatusCode::OK);
    let usage = client()
        .get(format!("{}/dp/v1/usage", cp.url()))
        .bearer_auth(&node.token)
        .send()
        .await
        .expect("answers");
    assert_eq!(usage.status(), StatusCode::OK);
    for (method, path) in [
        (Method::GET, "/apis"),
        (Method::GET, "/tokens"),
        (Method::POST, "/apis"),
        (Method::POST, "/tokens"),
    ] {
        let (status, _) = node
            .call(
                method.clone(),
                path,
                Some(json!({"name": "x", "slug": "x"})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "node token: {method} {path}"
        );
    }

    for other in [&admin, &viewer] {
        assert_eq!(other.sync().await, StatusCode::UNAUTHORIZED);
        assert_eq!(other.get("/apis").await, StatusCode::OK);
    }
    // The bootstrap admin token does not sync either; a revoked node token stops syncing.
    let bootstrap = As {
        cp: &cp,
        token: gatehouse_tests::ADMIN_TOKEN.to_owned(),
    };
    assert_eq!(bootstrap.sync().await, StatusCode::UNAUTHORIZED);
    let (_, list) = cp.admin().get("/tokens").await;
    let node_id = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|t| t["name"] == "edge-1")
        .map(id_of)
        .expect("the node token is listed");
    let (status, _) = cp.admin().delete(&format!("/tokens/{node_id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(node.sync().await, StatusCode::UNAUTHORIZED);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_proxy_runs_on_an_issued_node_token(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let admin = cp.admin();
    let node_token = value_of(&issue(&cp, "edge", "node", json!({})).await);
    let api = admin.create_api("pets").await;
    admin.add_route(&api, "GET /hello", mock("hi")).await;
    admin.deploy_stage(&api, "prod", json!({})).await;
    let version = config_version(&pool).await;

    let data = tempfile::tempdir().expect("temp dir");
    let proxy = start_proxy_tuned(&cp.url(), data.path(), |config| {
        config.node_token = node_token;
    })
    .await;
    wait_for_version(&proxy, version, Duration::from_secs(10)).await;
    let answer = client()
        .get(format!("http://{}/pets/prod/hello", proxy.addr))
        .send()
        .await
        .expect("the proxy answers");
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.text().await.expect("body"), "hi");

    // Its metrics reports are accepted with the same token.
    let counted = eventually(Duration::from_secs(15), || async {
        let (_, metrics) = admin.get(&format!("/metrics?api_id={api}")).await;
        (metrics["totals"]["count"].as_u64() == Some(1)).then_some(())
    })
    .await;
    assert!(counted.is_some(), "the proxy's report never arrived");
    proxy.stop().await;
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn bad_token_requests_are_refused_naming_the_field(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let admin = cp.admin();
    let existing = id_of(&issue(&cp, "kept", "admin", json!({})).await);
    let before = row_count(&pool, "api_tokens").await;
    let long_name = "n".repeat(129);
    for (body, field) in [
        (json!({"name": "", "role": "admin"}), "name"),
        (json!({"name": "  ", "role": "admin"}), "name"),
        (json!({"name": long_name, "role": "admin"}), "name"),
        (json!({"name": "x", "role": "root"}), "role"),
        (json!({"name": "x", "role": "Admin"}), "role"),
        (json!({"name": "x", "role": 1}), "role"),
        (
            json!({"name": "x", "role": "admin", "expires_in_seconds": 0}),
            "expires_in_seconds",
        ),
        (
            json!({"name": "x", "role": "admin", "expires_in_seconds": -60}),
            "expires_in_seconds",
        ),
        (
            json!({"name": "x", "role": "admin", "expires_in_seconds": 1_000_000_000_000_i64}),
            "expires_in_seconds",
        ),
        (
            json!({"name": "x", "role": "admin", "value": "ght_mine"}),
            "value",
        ),
    ] {
        let (status, answer) = admin.post("/tokens", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        let named = error_fields(&answer);
        assert!(
            named.iter().any(|f| f == field),
            "{body}: expected {field} in {answer}"
        );
    }
    let (status, answer) = admin
        .post("/tokens", json!({"name": "", "role": "root"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_fields(&answer), vec!["name", "role"]);

    let rotate = format!("/tokens/{existing}/rotate");
    for overlap in [json!(-1), json!(8 * 24 * 3600), json!(1e12), json!("soon")] {
        let (status, answer) = admin
            .post(&rotate, json!({"overlap_seconds": overlap}))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{overlap}: {answer}"
        );
        assert_eq!(error_fields(&answer), vec!["overlap_seconds"], "{answer}");
    }
    let unknown = uuid::Uuid::new_v4();
    let (status, _) = admin
        .post(&format!("/tokens/{unknown}/rotate"), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(row_count(&pool, "api_tokens").await, before);
    let (_, kept) = admin.get(&format!("/tokens/{existing}")).await;
    assert!(kept["expires_at"].is_null(), "{kept}");
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_audit_log_names_token_holders_and_never_holds_a_token(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let issued = issue(&cp, "ci", "admin", json!({})).await;
    let id = id_of(&issued);
    let first = value_of(&issued);
    let ci = As {
        cp: &cp,
        token: first.clone(),
    };
    let (status, rotated) = ci
        .call(
            Method::POST,
            &format!("/tokens/{id}/rotate"),
            Some(json!({"overlap_seconds": 0})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let second = value_of(&rotated);
    let (status, _) = cp
        .admin()
        .delete(&format!("/tokens/{}", id_of(&rotated)))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let entries = audit_entries(&pool, 3).await;
    assert_eq!(entries.len(), 3, "{entries:?}");
    for entry in &entries {
        for value in [&first, &second] {
            assert!(
                !entry.contains(&value[4..]),
                "a token in the audit log: {entry}"
            );
        }
    }
    let entries: Vec<Value> = entries
        .iter()
        .map(|e| serde_json::from_str(e).expect("json"))
        .collect();
    let actions: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or_default(),
                e["action"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        actions.contains(&("admin-token", "POST /tokens")),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("token:ci", "POST /tokens/{token_id}/rotate")),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("admin-token", "DELETE /tokens/{token_id}")),
        "{actions:?}"
    );
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_database_outage_during_a_token_lookup_is_a_503(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let who = As {
        cp: &cp,
        token: value_of(&issue(&cp, "ci", "admin", json!({})).await),
    };
    assert_eq!(who.get("/apis").await, StatusCode::OK);
    pool.close().await;
    let (status, body) = who.call(Method::GET, "/apis", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["message"], "Database unavailable, try again");
    // A token that is no issued token is refused without asking the database.
    let stranger = As {
        cp: &cp,
        token: "not-a-token".to_owned(),
    };
    assert_eq!(stranger.get("/apis").await, StatusCode::UNAUTHORIZED);
    cp.stop().await;
}

/// Every answer that carries a new secret (a created or imported key, an issued or rotated
/// token) says `Cache-Control: no-store`, so no cache between the script and the control
/// plane, nor the browser's, keeps a copy; so do the proxies' snapshots, which carry every
/// key's hash.
#[sqlx::test(migrator = "MIGRATOR")]
async fn answers_that_carry_a_secret_are_never_stored(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let base = format!("{}/api/v1", cp.url());
    let node = value_of(&issue(&cp, "edge", "node", json!({})).await);
    let token_id = id_of(&issue(&cp, "ci", "admin", json!({})).await);
    let rotate = format!("/tokens/{token_id}/rotate");
    let cases = [
        ("/keys", json!({"name": "generated"})),
        (
            "/keys",
            json!({"name": "imported", "value": "imported-key-value-0123456789"}),
        ),
        ("/tokens", json!({"name": "ops", "role": "admin"})),
        (rotate.as_str(), json!({})),
    ];
    for (path, body) in cases {
        let response = client()
            .post(format!("{base}{path}"))
            .bearer_auth(gatehouse_tests::ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), StatusCode::CREATED, "POST {path} {body}");
        let cache = response.headers().get("cache-control").cloned();
        let answer: Value = response.json().await.expect("json");
        assert!(answer["value"].is_string(), "POST {path}: {answer}");
        assert_eq!(
            cache.as_ref().and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "POST {path}"
        );
    }
    let snapshot = client()
        .get(format!("{}/dp/v1/config?wait_ms=0", cp.url()))
        .bearer_auth(&node)
        .header("x-gatehouse-node-id", "edge")
        .send()
        .await
        .expect("answers");
    assert_eq!(snapshot.status(), StatusCode::OK);
    assert_eq!(snapshot.headers()["cache-control"], "no-store");
    cp.stop().await;
}

/// Sends a `/dp/v1` request as node `node` with `token`; returns the status and JSON.
async fn as_node(
    cp: &ControlPlane,
    token: &str,
    node: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = client()
        .request(method, format!("{}/dp/v1{path}", cp.url()))
        .bearer_auth(token)
        .header("x-gatehouse-node-id", node);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("control plane answers");
    let status = response.status();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A node token cannot pass for the proxy of another: a node id belongs to the token that
/// first polled with it, and polls and reports of any other token under it are refused
/// with a 409 naming the header, while each token keeps its own names.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_node_token_cannot_claim_another_proxys_name(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let edge = value_of(&issue(&cp, "edge-a", "node", json!({})).await);
    let intruder = value_of(&issue(&cp, "edge-b", "node", json!({})).await);
    let poll = "/config?wait_ms=0&active=1";
    assert_eq!(
        as_node(&cp, &edge, "edge-a", Method::GET, poll, None)
            .await
            .0,
        StatusCode::OK
    );

    let metrics = json!({"batch_id": uuid::Uuid::new_v4(), "entries": []});
    let usage = json!({"batch_id": uuid::Uuid::new_v4(), "entries": []});
    for (token, who) in [
        (intruder.as_str(), "an issued token"),
        (gatehouse_tests::NODE_TOKEN, "the bootstrap token"),
    ] {
        for (method, path, body) in [
            (Method::GET, "/config?wait_ms=0&active=999", None),
            (Method::POST, "/metrics", Some(metrics.clone())),
            (Method::POST, "/usage", Some(usage.clone())),
        ] {
            let (status, answer) = as_node(&cp, token, "edge-a", method, path, body).await;
            assert_eq!(status, StatusCode::CONFLICT, "{who}: {path}: {answer}");
            assert!(
                answer["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("edge-a")),
                "{answer}"
            );
            assert_eq!(error_fields(&answer), ["x-gatehouse-node-id"], "{answer}");
        }
    }
    // Nothing the intruder sent was recorded as edge-a's.
    let (_, nodes) = cp.admin().get("/nodes").await;
    assert_eq!(nodes["items"][0]["id"], "edge-a");
    assert_eq!(nodes["items"][0]["config_version"], 1);
    assert_eq!(row_count(&pool, "traffic_batches").await, 0);
    assert_eq!(row_count(&pool, "usage_batches").await, 0);

    // The intruder's own name works; so does the rightful owner, still.
    assert_eq!(
        as_node(&cp, &intruder, "edge-b", Method::GET, poll, None)
            .await
            .0,
        StatusCode::OK
    );
    let (status, _) = as_node(
        &cp,
        &edge,
        "edge-a",
        Method::POST,
        "/metrics",
        Some(metrics),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = as_node(&cp, &edge, "edge-a", Method::POST, "/usage", Some(usage)).await;
    assert_eq!(status, StatusCode::OK);
    cp.stop().await;
}

/// Rotating a proxy's token carries its name over: the new token takes the name on its
/// first poll, and the old one, still in its overlap, can no longer use it.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_rotated_node_token_keeps_its_proxys_name(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let issued = issue(&cp, "edge", "node", json!({})).await;
    let old = value_of(&issued);
    let poll = "/config?wait_ms=0";
    assert_eq!(
        as_node(&cp, &old, "edge", Method::GET, poll, None).await.0,
        StatusCode::OK
    );
    let rotated = cp
        .admin()
        .create(
            &format!("/tokens/{}/rotate", id_of(&issued)),
            json!({"overlap_seconds": 600}),
        )
        .await;
    let new = value_of(&rotated);
    assert_eq!(
        as_node(&cp, &new, "edge", Method::GET, poll, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        as_node(&cp, &old, "edge", Method::GET, poll, None).await.0,
        StatusCode::CONFLICT
    );
    cp.stop().await;
}
