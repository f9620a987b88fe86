//! Managing WebSocket APIs: the admin API's checks (route keys per protocol, the route
//! selection expression and its freezing per deployment, stage limits) and the
//! dashboard's forms for them.

use gatehouse_control_plane::repo::users::Role;
use gatehouse_tests::dashboard::Dashboard;
use gatehouse_tests::{client, http_proxy, id_of, mock, Admin, ControlPlane, NODE_TOKEN};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &gatehouse_control_plane::MIGRATOR;

#[track_caller]
fn field_error(body: &Value, field: &str) -> String {
    body["errors"]
        .as_array()
        .and_then(|errors| errors.iter().find(|e| e["field"] == field))
        .and_then(|e| e["message"].as_str())
        .unwrap_or_else(|| panic!("no error for {field} in {body}"))
        .to_owned()
}

async fn websocket_api(admin: &Admin, slug: &str, expression: Option<&str>) -> Value {
    let mut body = json!({"name": slug, "slug": slug, "protocol": "WEBSOCKET"});
    if let Some(expression) = expression {
        body["route_selection_expression"] = expression.into();
    }
    admin.create("/apis", body).await
}

/// The stages of the snapshot a proxy would get now.
async fn snapshot_stages(cp: &ControlPlane) -> Vec<Value> {
    let snapshot: Value = client()
        .get(format!("{}/dp/v1/config?wait_ms=0", cp.url()))
        .bearer_auth(NODE_TOKEN)
        .header("x-gatehouse-node-id", "websocket-admin-test")
        .send()
        .await
        .expect("config")
        .json()
        .await
        .expect("json");
    snapshot["content"]["stages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn websocket_apis_take_an_expression_that_http_apis_refuse(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let admin = cp.admin();
    let plain = websocket_api(&admin, "chat", None).await;
    assert_eq!(plain["protocol"], "WEBSOCKET");
    assert_eq!(plain["route_selection_expression"], "$request.body.action");
    let custom = websocket_api(&admin, "games", Some("${request.body.meta.type}")).await;
    assert_eq!(
        custom["route_selection_expression"],
        "${request.body.meta.type}"
    );

    let (status, body) = admin
        .post(
            "/apis",
            json!({"name": "x", "slug": "x", "protocol": "WEBSOCKET",
                   "route_selection_expression": "$request.header.x"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(field_error(&body, "route_selection_expression").contains("$request.body"));
    let (status, body) = admin
        .post(
            "/apis",
            json!({"name": "y", "slug": "y", "protocol": "HTTP",
                   "route_selection_expression": "$request.body.action"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    field_error(&body, "route_selection_expression");
    let http = admin.create_api("pets").await;
    let (status, _) = admin
        .patch(
            &format!("/apis/{http}"),
            json!({"route_selection_expression": "$request.body.kind"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, api) = admin.get(&format!("/apis/{http}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(api["route_selection_expression"], Value::Null);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn route_keys_are_checked_against_the_protocol(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let admin = cp.admin();
    let ws = id_of(&websocket_api(&admin, "chat", None).await);
    let http = admin.create_api("pets").await;
    let routes = |api: &str| format!("/apis/{api}/routes");

    for key in [
        "$connect",
        "$disconnect",
        "$default",
        "sendmessage",
        "chat.join:v2",
    ] {
        admin.add_route(&ws, key, mock("ok")).await;
    }
    let refused = [
        (&ws, "GET /pets", "route_key"),
        (&ws, "$join", "route_key"),
        (&http, "$connect", "route_key"),
        (&http, "sendmessage", "route_key"),
    ];
    for (api, key, field) in refused {
        let (status, body) = admin
            .post(
                &routes(api),
                json!({"route_key": key, "integration": mock("x")}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{key}: {body}");
        field_error(&body, field);
    }
    let (status, body) = admin
        .post(
            &routes(&ws),
            json!({"route_key": "$connect", "integration": mock("x")}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = admin
        .post(
            &routes(&ws),
            json!({"route_key": "other", "api_key_required": true, "integration": mock("x")}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(field_error(&body, "api_key_required").contains("$connect"));
    let (status, body) = admin
        .post(
            &routes(&ws),
            json!({"route_key": "feed", "integration":
                   {"type": "HTTP_PROXY", "uri": "http://127.0.0.1:9/", "websocket_upgrade": true}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    field_error(&body, "integration.websocket_upgrade");
    let (status, body) = admin
        .post(
            &routes(&ws),
            json!({"route_key": "feed", "integration": http_proxy("http://127.0.0.1:9/{id}")}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(field_error(&body, "integration.uri").contains("no path parameters"));
    // An HTTP route may pass upgrades through.
    let route = admin
        .create(
            &routes(&http),
            json!({"route_key": "GET /feed", "integration":
                   {"type": "HTTP_PROXY", "uri": "http://127.0.0.1:9/", "websocket_upgrade": true}}),
        )
        .await;
    assert_eq!(route["integration"]["websocket_upgrade"], true);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn deployments_freeze_the_expression_and_stages_carry_their_limits(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let admin = cp.admin();
    let api = id_of(&websocket_api(&admin, "chat", Some("$request.body.kind")).await);
    admin.add_route(&api, "$default", mock("ok")).await;
    let deployment = admin.deploy(&api, "first").await;
    let stage = admin
        .create(
            &format!("/apis/{api}/stages"),
            json!({"name": "prod", "deployment_id": deployment,
                   "websocket": {"idle_timeout_seconds": 30, "max_message_bytes": 65536}}),
        )
        .await;
    assert_eq!(
        stage["websocket"],
        json!({"max_message_bytes": 65536, "max_frame_bytes": 32768,
               "idle_timeout_seconds": 30, "max_connection_seconds": 7200})
    );
    let (status, _) = admin
        .patch(
            &format!("/apis/{api}"),
            json!({"route_selection_expression": "$request.body.type"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let stages = snapshot_stages(&cp).await;
    assert_eq!(
        stages[0]["route_selection"], "$request.body.kind",
        "until redeployed"
    );
    assert_eq!(stages[0]["websocket"]["idle_timeout_seconds"], 30);
    let again = admin.deploy(&api, "second").await;
    for (id, expression) in [
        (&deployment, "$request.body.kind"),
        (&again, "$request.body.type"),
    ] {
        let (_, read) = admin.get(&format!("/apis/{api}/deployments/{id}")).await;
        assert_eq!(read["route_selection_expression"], expression);
    }
    admin.point_stage(&api, "prod", &again).await;
    let stages = snapshot_stages(&cp).await;
    assert_eq!(stages[0]["route_selection"], "$request.body.type");

    let (status, body) = admin
        .patch(
            &format!("/apis/{api}/stages/prod"),
            json!({"websocket": {"max_frame_bytes": 100000}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(field_error(&body, "websocket.max_frame_bytes").contains("max_message_bytes"));
    let (status, body) = admin
        .patch(
            &format!("/apis/{api}/stages/prod"),
            json!({"websocket": {"idle_timeout_seconds": 0, "unknown": 1}}),
        )
        .await;
    assert!(status.is_client_error(), "{body}");
    let (_, stage) = admin.get(&format!("/apis/{api}/stages/prod")).await;
    assert_eq!(
        stage["websocket"]["idle_timeout_seconds"], 30,
        "nothing changed"
    );
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_dashboard_creates_websocket_apis_routes_and_limits(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let form = dash.get("/apis/new").await;
    form.expect_text(r#"<option value="WEBSOCKET""#);
    let created = dash
        .post(
            "/apis/new",
            &[
                ("name", "Chat"),
                ("slug", "chat"),
                ("protocol", "WEBSOCKET"),
                ("route_selection_expression", "$request.body.op"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
    let api = created
        .location
        .as_deref()
        .and_then(|l| l.strip_prefix("/apis/"))
        .expect("to the API's page")
        .to_owned();
    let (_, read) = cp.admin().get(&format!("/apis/{api}")).await;
    assert_eq!(read["route_selection_expression"], "$request.body.op");

    let route_form = dash.get(&format!("/apis/{api}/routes/new")).await;
    route_form
        .expect_text("$connect")
        .expect_text("$request.body.op");
    let route = [
        ("route_key", "$connect"),
        ("api_key_required", "on"),
        ("integration.type", "MOCK"),
        ("integration.status", "200"),
        ("integration.headers", ""),
        ("integration.body", ""),
        ("integration.uri", ""),
        ("integration.timeout_ms", ""),
    ];
    let added = dash.post(&format!("/apis/{api}/routes/new"), &route).await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.html);
    let mut bad = route;
    bad[0] = ("route_key", "GET /nope");
    let refused = dash.post(&format!("/apis/{api}/routes/new"), &bad).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    refused
        .expect_text("an HTTP route key")
        .expect_text("GET /nope");

    let deployment = cp.admin().deploy(&api, "v1").await;
    cp.admin()
        .create(
            &format!("/apis/{api}/stages"),
            json!({"name": "prod", "deployment_id": deployment}),
        )
        .await;
    let page = dash.get(&format!("/apis/{api}")).await;
    page.expect_text("ws://");
    let stage = dash.get(&format!("/apis/{api}/stages/prod")).await;
    stage
        .expect_text("/chat/prod/@connections")
        .expect_text(r#"name="websocket.idle_timeout_seconds" value="600""#);
    let saved = dash
        .post(
            &format!("/apis/{api}/stages/prod"),
            &[
                ("description", ""),
                ("variables", ""),
                ("throttle.rate", ""),
                ("throttle.burst", ""),
                ("websocket.max_message_bytes", "131072"),
                ("websocket.max_frame_bytes", "32768"),
                ("websocket.idle_timeout_seconds", "90"),
                ("websocket.max_connection_seconds", "7200"),
            ],
        )
        .await;
    assert!(saved.status.is_redirection(), "{}", saved.html);
    let (_, read) = cp.admin().get(&format!("/apis/{api}/stages/prod")).await;
    assert_eq!(read["websocket"]["idle_timeout_seconds"], 90);
    let bad = dash
        .post(
            &format!("/apis/{api}/stages/prod"),
            &[
                ("description", ""),
                ("variables", ""),
                ("throttle.rate", ""),
                ("throttle.burst", ""),
                ("websocket.max_message_bytes", "lots"),
                ("websocket.max_frame_bytes", "32768"),
                ("websocket.idle_timeout_seconds", "90"),
                ("websocket.max_connection_seconds", "7200"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    bad.expect_text("must be a whole number")
        .expect_text(r#"value="lots""#);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn plan_route_throttles_name_keys_of_the_stages_protocol(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let admin = cp.admin();
    let ws = id_of(&websocket_api(&admin, "chat", None).await);
    admin.add_route(&ws, "sendmessage", mock("ok")).await;
    admin.deploy_stage(&ws, "prod", json!({})).await;
    let http = admin.create_api("pets").await;
    admin.add_route(&http, "GET /pets", mock("ok")).await;
    let http_deployment = admin.deploy_stage(&http, "prod", json!({})).await;
    let (_, read) = admin
        .get(&format!("/apis/{http}/deployments/{http_deployment}"))
        .await;
    assert_eq!(read["route_selection_expression"], Value::Null);

    let throttle = json!({"rate": 1, "burst": 1});
    let plan = |api: &str, key: &str| {
        json!({"name": "p", "stages": [{"api_id": api, "stage": "prod",
                                         "route_throttles": {key: throttle}}]})
    };
    let made = admin.create("/usage-plans", plan(&ws, "sendmessage")).await;
    assert_eq!(
        made["stages"][0]["route_throttles"]["sendmessage"]["burst"], 1,
        "{made}"
    );
    for (api, key) in [
        (&ws, "GET /pets"),
        (&http, "sendmessage"),
        (&http, "$connect"),
    ] {
        let (status, body) = admin.post("/usage-plans", plan(api, key)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{key}: {body}");
        field_error(&body, "stages[0].route_throttles");
    }
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn websocket_pages_show_ws_urls_the_connections_api_and_the_frozen_expression(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let admin = cp.admin();
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let ws = id_of(&websocket_api(&admin, "chat", Some("$request.body.op")).await);
    admin.add_route(&ws, "$default", mock("ok")).await;
    let first = admin.deploy_stage(&ws, "prod", json!({})).await;
    let http = admin.create_api("pets").await;
    admin.add_route(&http, "GET /pets", mock("ok")).await;
    admin.deploy_stage(&http, "prod", json!({})).await;

    dash.get(&format!("/apis/{ws}"))
        .await
        .expect_text("ws://&#60;proxy&#62;/chat/prod")
        .expect_text("http://&#60;proxy&#62;/chat/prod/@connections")
        .expect_text("<code>$request.body.op</code>");
    dash.get(&format!("/apis/{ws}/stages/prod"))
        .await
        .expect_text("ws://&#60;proxy&#62;/chat/prod");
    let http_page = dash.get(&format!("/apis/{http}")).await;
    http_page.expect_text("http://&#60;proxy&#62;/pets/prod");
    assert!(!http_page.html.contains("ws://"), "{}", http_page.html);
    assert!(
        !http_page.html.contains("@connections"),
        "{}",
        http_page.html
    );
    let http_stage = dash.get(&format!("/apis/{http}/stages/prod")).await;
    assert!(!http_stage.html.contains("@connections"));
    assert!(!http_stage.html.contains("websocket.max_frame_bytes"));

    let edit = dash.get(&format!("/apis/{ws}/edit")).await;
    edit.expect_text(r#"name="route_selection_expression" value="$request.body.op""#);
    let saved = dash
        .post(
            &format!("/apis/{ws}/edit"),
            &[
                ("name", "chat"),
                ("slug", "chat"),
                ("description", ""),
                ("route_selection_expression", "$request.body.kind"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    let refused = dash
        .post(
            &format!("/apis/{ws}/edit"),
            &[
                ("name", "chat"),
                ("slug", "chat"),
                ("description", ""),
                ("route_selection_expression", "$request.header.kind"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    refused.expect_text(r#"value="$request.header.kind""#);
    assert!(!dash
        .get(&format!("/apis/{http}/edit"))
        .await
        .html
        .contains("route_selection_expression"));

    let second = admin.deploy(&ws, "by kind").await;
    dash.get(&format!("/apis/{ws}/deployments/{first}"))
        .await
        .expect_text("<code>$request.body.op</code>");
    dash.get(&format!("/apis/{ws}/deployments/{second}"))
        .await
        .expect_text("<code>$request.body.kind</code>")
        .expect_text(
            "routed by <code>$request.body.op</code>, now by <code>$request.body.kind</code>",
        );
    cp.stop().await;
}
