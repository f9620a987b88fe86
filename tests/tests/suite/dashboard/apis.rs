//! The dashboard's APIs, routes and deployments pages, driven over HTTP with a signed-in
//! browser-like client: each form's happy path changes what the admin API then reports,
//! bad input is shown next to its field with what was typed kept, and viewers, forged
//! forms and unknown ids are refused without changing anything.

use gatehouse_control_plane::repo::users::Role;
use gatehouse_tests::dashboard::{input_value, Dashboard, Page};
use gatehouse_tests::{mock, row_count, ControlPlane};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &gatehouse_control_plane::MIGRATOR;

/// An id no row has.
const UNKNOWN: &str = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

#[track_caller]
fn redirected_to(page: &Page) -> String {
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    page.location.clone().expect("a redirect has a location")
}

/// Creates an API through the form; returns its id.
async fn create_api(dash: &Dashboard, name: &str, slug: &str) -> String {
    let answer = dash
        .post(
            "/apis/new",
            &[("name", name), ("slug", slug), ("protocol", "HTTP")],
        )
        .await;
    let location = redirected_to(&answer);
    location
        .strip_prefix("/apis/")
        .expect("to the API's page")
        .to_owned()
}

/// The form fields of an HTTP_PROXY route.
fn proxy_route<'a>(key: &'a str, uri: &'a str, timeout: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("route_key", key),
        ("integration.type", "HTTP_PROXY"),
        ("integration.uri", uri),
        ("integration.timeout_ms", timeout),
        ("integration.status", "200"),
        ("integration.headers", ""),
        ("integration.body", ""),
    ]
}

/// The form fields of a MOCK route.
fn mock_route<'a>(key: &'a str, status: &'a str, body: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("route_key", key),
        ("integration.type", "MOCK"),
        ("integration.uri", ""),
        ("integration.timeout_ms", "29000"),
        ("integration.status", status),
        ("integration.headers", "Content-Type: text/plain"),
        ("integration.body", body),
    ]
}

/// Adds a route through the form; returns its id as the admin API lists it.
async fn add_route(
    cp: &ControlPlane,
    dash: &Dashboard,
    api: &str,
    fields: &[(&str, &str)],
) -> String {
    let answer = dash.post(&format!("/apis/{api}/routes/new"), fields).await;
    assert_eq!(redirected_to(&answer), format!("/apis/{api}"));
    let key = fields
        .iter()
        .find(|(name, _)| *name == "route_key")
        .map(|(_, v)| *v)
        .expect("route key");
    let route = route_by_key(cp, api, key).await;
    route["id"].as_str().expect("id").to_owned()
}

async fn routes_of(cp: &ControlPlane, api: &str) -> Vec<Value> {
    let (status, body) = cp.admin().get(&format!("/apis/{api}/routes")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

async fn route_by_key(cp: &ControlPlane, api: &str, key: &str) -> Value {
    routes_of(cp, api)
        .await
        .into_iter()
        .find(|r| r["route_key"] == key)
        .unwrap_or_else(|| panic!("no route {key}"))
}

async fn stage_deployment(cp: &ControlPlane, api: &str, stage: &str) -> String {
    let (status, body) = cp.admin().get(&format!("/apis/{api}/stages/{stage}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["deployment_id"]
        .as_str()
        .expect("deployment id")
        .to_owned()
}

async fn deployment_ids(cp: &ControlPlane, api: &str) -> Vec<String> {
    let (_, body) = cp.admin().get(&format!("/apis/{api}/deployments")).await;
    body["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|d| d["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_admin_creates_an_api_and_finds_it_in_the_list(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let empty = dash.get("/apis").await;
    assert_eq!(empty.status, StatusCode::OK);
    empty
        .expect_text("No APIs yet")
        .expect_text("href=\"/apis/new\"");
    let form = dash.get("/apis/new").await;
    assert_eq!(form.status, StatusCode::OK);
    form.expect_text("name=\"slug\"")
        .expect_text("value=\"HTTP\"");

    let id = create_api(&dash, "Pet store", "pets").await;
    let (status, api) = cp.admin().get(&format!("/apis/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(api["name"], "Pet store");
    assert_eq!(api["protocol"], "HTTP");

    let list = dash.get("/apis").await;
    list.expect_text(&format!("<a href=\"/apis/{id}\">Pet store</a>"))
        .expect_text("<code>pets</code>")
        .expect_text("not deployed");
    let page = dash.get(&format!("/apis/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    page.expect_text("Pet store")
        .expect_text("No routes yet")
        .expect_text("Not deployed yet")
        .expect_text(&format!("/charts/requests?api_id={id}"));
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn markup_typed_into_a_name_is_shown_as_text_on_every_page(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let name = "<script>alert(1)</script>\" onload=\"x";
    let id = create_api(&dash, name, "pets").await;
    let route = add_route(&cp, &dash, &id, &mock_route("GET /a", "200", "<b>hi</b>")).await;
    for path in [
        "/apis".to_owned(),
        format!("/apis/{id}"),
        format!("/apis/{id}/edit"),
        format!("/apis/{id}/routes/{route}"),
    ] {
        let page = dash.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        page.expect_text("&#60;script&#62;alert(1)&#60;/script&#62;&#34; onload");
        for raw in ["<script>alert", "\" onload=\"", "<b>hi"] {
            assert!(!page.html.contains(raw), "{path} holds {raw:?} unescaped");
        }
    }
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_bad_or_taken_slug_is_shown_next_to_its_field_and_nothing_is_created(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let answer = dash
        .post(
            "/apis/new",
            &[
                ("name", "Pets"),
                ("slug", "Bad Slug"),
                ("description", "kept"),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    answer
        .expect_text("class=\"field-error\"")
        .expect_text("lower-case letters")
        .expect_text(">kept</textarea>");
    assert_eq!(
        input_value(&answer.html, "slug").as_deref(),
        Some("Bad Slug")
    );
    assert_eq!(input_value(&answer.html, "name").as_deref(), Some("Pets"));
    assert_eq!(row_count(&pool, "apis").await, 0);

    create_api(&dash, "Pets", "pets").await;
    let taken = dash
        .post("/apis/new", &[("name", "Other"), ("slug", "pets")])
        .await;
    assert_eq!(taken.status, StatusCode::UNPROCESSABLE_ENTITY);
    taken.expect_text("already exists");
    assert_eq!(row_count(&pool, "apis").await, 1);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_admin_edits_then_deletes_an_api(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let id = create_api(&dash, "Pets", "pets").await;
    let form = dash.get(&format!("/apis/{id}/edit")).await;
    assert_eq!(form.status, StatusCode::OK);
    assert_eq!(input_value(&form.html, "slug").as_deref(), Some("pets"));

    let bad = dash
        .post(
            &format!("/apis/{id}/edit"),
            &[("name", " "), ("slug", "animals")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    bad.expect_text("printable characters");
    assert_eq!(input_value(&bad.html, "slug").as_deref(), Some("animals"));

    let saved = dash
        .post(
            &format!("/apis/{id}/edit"),
            &[
                ("name", "Animals"),
                ("slug", "animals"),
                ("description", "all of them"),
            ],
        )
        .await;
    assert_eq!(redirected_to(&saved), format!("/apis/{id}"));
    let (_, api) = cp.admin().get(&format!("/apis/{id}")).await;
    assert_eq!(api["slug"], "animals");
    assert_eq!(api["description"], "all of them");

    // Deleting takes its routes, deployments and stages with it.
    add_route(&cp, &dash, &id, &mock_route("GET /a", "200", "a")).await;
    redirected_to(
        &dash
            .post(&format!("/apis/{id}/deploy"), &[("stage", "prod")])
            .await,
    );
    let page = dash.get(&format!("/apis/{id}")).await;
    page.expect_text(&format!("action=\"/apis/{id}/delete\""))
        .expect_text("data-confirm=");
    let deleted = dash.post(&format!("/apis/{id}/delete"), &[]).await;
    assert_eq!(redirected_to(&deleted), "/apis");
    let (status, _) = cp.admin().get(&format!("/apis/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(row_count(&pool, "stages").await, 0);
    assert_eq!(row_count(&pool, "deployments").await, 0);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn routes_are_added_with_an_http_proxy_or_a_mock_integration(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let api = create_api(&dash, "Pets", "pets").await;
    let form = dash.get(&format!("/apis/{api}/routes/new")).await;
    assert_eq!(form.status, StatusCode::OK);
    form.expect_text("name=\"integration.uri\"")
        .expect_text("$default");

    let mut proxy = proxy_route("GET /pets/{id}", "http://10.0.0.5:9000/pets/{id}", "1500");
    proxy.push(("api_key_required", "on"));
    add_route(&cp, &dash, &api, &proxy).await;
    add_route(
        &cp,
        &dash,
        &api,
        &mock_route("POST /pets", "201", "{\"ok\":\r\ntrue}"),
    )
    .await;

    let stored = route_by_key(&cp, &api, "GET /pets/{id}").await;
    assert_eq!(stored["api_key_required"], true);
    assert_eq!(
        stored["integration"],
        json!({"type": "HTTP_PROXY", "uri": "http://10.0.0.5:9000/pets/{id}", "timeout_ms": 1500})
    );
    let stored = route_by_key(&cp, &api, "POST /pets").await;
    assert_eq!(stored["api_key_required"], false);
    assert_eq!(
        stored["integration"],
        json!({"type": "MOCK", "status": 201, "headers": {"Content-Type": "text/plain"},
               "body": "{\"ok\":\ntrue}"}),
        "a text area's CRLF line breaks are stored as LF"
    );

    let page = dash.get(&format!("/apis/{api}")).await;
    page.expect_text("<code>GET /pets/{id}</code>")
        .expect_text("HTTP_PROXY → http://10.0.0.5:9000/pets/{id} (1.5 s)")
        .expect_text("MOCK 201")
        .expect_text("required")
        .expect_text("Deploy 2 routes");
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_bad_route_key_shows_its_error_and_keeps_what_was_typed(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let api = create_api(&dash, "Pets", "pets").await;
    let path = format!("/apis/{api}/routes/new");

    let answer = dash
        .post(&path, &proxy_route("get /pets", "http://up/pets", "29000"))
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    answer
        .expect_text("The route was not added.")
        .expect_text("class=\"field-error\"")
        .expect_text("unknown method `get`");
    assert_eq!(
        input_value(&answer.html, "route_key").as_deref(),
        Some("get /pets")
    );
    assert_eq!(
        input_value(&answer.html, "integration.uri").as_deref(),
        Some("http://up/pets")
    );

    // A number that does not parse is caught before anything is sent.
    let answer = dash
        .post(
            &path,
            &proxy_route("GET /pets", "http://up/pets", "ten seconds"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    answer.expect_text("whole number of milliseconds");
    assert_eq!(
        input_value(&answer.html, "integration.timeout_ms").as_deref(),
        Some("ten seconds")
    );

    // The admin API's complaints about the integration land next to the URI field.
    let answer = dash
        .post(&path, &proxy_route("GET /pets", "ftp://up/pets", "29000"))
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let uri_error = answer
        .html
        .split("name=\"integration.uri\"")
        .nth(1)
        .and_then(|rest| rest.split("</label>").next())
        .expect("the URI field");
    assert!(uri_error.contains("field-error"), "{}", answer.html);

    let answer = dash.post(&path, &mock_route("GET /pets", "99", "x")).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    answer.expect_text("status code from 200 to 599");
    assert_eq!(row_count(&pool, "routes").await, 0);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_admin_edits_then_deletes_a_route(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let api = create_api(&dash, "Pets", "pets").await;
    let route = add_route(&cp, &dash, &api, &mock_route("GET /a", "200", "a")).await;
    let path = format!("/apis/{api}/routes/{route}");

    let form = dash.get(&path).await;
    assert_eq!(form.status, StatusCode::OK);
    assert_eq!(
        input_value(&form.html, "route_key").as_deref(),
        Some("GET /a")
    );
    form.expect_text("value=\"MOCK\" checked")
        .expect_text(&format!("route_id={route}"))
        .expect_text("data-confirm=");

    let clash = add_route(&cp, &dash, &api, &mock_route("GET /b", "200", "b")).await;
    assert!(!clash.is_empty());
    let refused = dash.post(&path, &mock_route("GET /b", "200", "a")).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    refused.expect_text("matches the same requests as `GET /b`");
    assert_eq!(
        route_by_key(&cp, &api, "GET /a").await["id"],
        route.as_str()
    );

    let saved = dash
        .post(&path, &proxy_route("GET /a/{x}", "http://up/{x}", ""))
        .await;
    assert_eq!(redirected_to(&saved), format!("/apis/{api}"));
    let stored = route_by_key(&cp, &api, "GET /a/{x}").await;
    assert_eq!(stored["id"], route.as_str());
    assert_eq!(stored["integration"]["timeout_ms"], 29000);

    let deleted = dash.post(&format!("{path}/delete"), &[]).await;
    assert_eq!(redirected_to(&deleted), format!("/apis/{api}"));
    assert_eq!(routes_of(&cp, &api).await.len(), 1);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn deploying_creates_a_stage_then_moves_it_to_the_next_deployment(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let api = create_api(&dash, "Pets", "pets").await;
    add_route(&cp, &dash, &api, &mock_route("GET /a", "200", "a")).await;

    let first = dash
        .post(
            &format!("/apis/{api}/deploy"),
            &[("stage", "prod"), ("description", "first")],
        )
        .await;
    assert_eq!(redirected_to(&first), format!("/apis/{api}/stages/prod"));
    let ids = deployment_ids(&cp, &api).await;
    assert_eq!(ids.len(), 1);
    assert_eq!(stage_deployment(&cp, &api, "prod").await, ids[0]);

    let page = dash.get(&format!("/apis/{api}")).await;
    page.expect_text(&format!("href=\"/apis/{api}/stages/prod\""))
        .expect_text("data-copy=\"http://&#60;proxy&#62;/pets/prod\"")
        .expect_text("first")
        .expect_text("<option value=\"prod\">");
    // With one stage, the Deploy form offers it.
    assert_eq!(input_value(&page.html, "stage").as_deref(), Some("prod"));

    add_route(&cp, &dash, &api, &mock_route("GET /b", "200", "b")).await;
    let second = dash
        .post(
            &format!("/apis/{api}/deploy"),
            &[("stage", "prod"), ("description", "second")],
        )
        .await;
    assert_eq!(redirected_to(&second), format!("/apis/{api}/stages/prod"));
    let ids = deployment_ids(&cp, &api).await;
    assert_eq!(ids.len(), 2);
    assert_eq!(
        stage_deployment(&cp, &api, "prod").await,
        ids[0],
        "the newest"
    );
    assert_eq!(row_count(&pool, "stages").await, 1);

    let history = dash.get(&format!("/apis/{api}/deployments")).await;
    assert_eq!(history.status, StatusCode::OK);
    history
        .expect_text("second")
        .expect_text("first")
        .expect_text("ada")
        .expect_text(&format!("/apis/{api}/deployments/{}", ids[1]));
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_invalid_stage_name_is_shown_on_the_apis_page_and_nothing_is_deployed(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let api = create_api(&dash, "Pets", "pets").await;
    let answer = dash
        .post(
            &format!("/apis/{api}/deploy"),
            &[("stage", "my stage!"), ("description", "typed")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    answer
        .expect_text("Nothing was deployed.")
        .expect_text("class=\"field-error\"")
        .expect_text("letters, digits");
    assert_eq!(
        input_value(&answer.html, "stage").as_deref(),
        Some("my stage!")
    );
    assert_eq!(
        input_value(&answer.html, "description").as_deref(),
        Some("typed")
    );
    assert_eq!(row_count(&pool, "deployments").await, 0);
    assert_eq!(row_count(&pool, "stages").await, 0);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_stage_that_refuses_the_deployment_is_reported_and_the_deployment_kept(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let api = create_api(&dash, "Pets", "pets").await;
    // A new stage has no variables, so this URI cannot be bound for it.
    let fields = proxy_route("GET /a", "http://${stageVariables.host}/a", "");
    add_route(&cp, &dash, &api, &fields).await;
    let answer = dash
        .post(
            &format!("/apis/{api}/deploy"),
            &[("stage", "prod"), ("description", "")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    answer
        .expect_text("was not created")
        .expect_text("variables:")
        .expect_text("See the deployment");
    assert_eq!(row_count(&pool, "deployments").await, 1);
    assert_eq!(row_count(&pool, "stages").await, 0);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_diff_page_shows_an_added_and_a_changed_route(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let api = create_api(&dash, "Pets", "pets").await;
    let a = add_route(&cp, &dash, &api, &mock_route("GET /a", "200", "a")).await;
    add_route(&cp, &dash, &api, &mock_route("GET /same", "200", "s")).await;
    let deploy = format!("/apis/{api}/deploy");
    redirected_to(
        &dash
            .post(&deploy, &[("stage", "dev"), ("description", "one")])
            .await,
    );
    let first_page = dash
        .get(&format!(
            "/apis/{api}/deployments/{}",
            deployment_ids(&cp, &api).await[0]
        ))
        .await;
    first_page.expect_text("first deployment");

    add_route(&cp, &dash, &api, &mock_route("POST /b", "201", "b")).await;
    let mut changed = mock_route("GET /a", "500", "a");
    changed.push(("api_key_required", "on"));
    redirected_to(
        &dash
            .post(&format!("/apis/{api}/routes/{a}"), &changed)
            .await,
    );
    redirected_to(
        &dash
            .post(&deploy, &[("stage", "prod"), ("description", "two")])
            .await,
    );
    let ids = deployment_ids(&cp, &api).await;
    let (newest, oldest) = (&ids[0], &ids[1]);

    let page = dash.get(&format!("/apis/{api}/deployments/{newest}")).await;
    assert_eq!(page.status, StatusCode::OK);
    page.expect_text("Since the previous deployment")
        .expect_text("class=\"table diff\"")
        .expect_text("<td class=\"added\">added</td>")
        .expect_text("<code>POST /b</code>")
        .expect_text("<td class=\"changed\">changed</td>")
        .expect_text("MOCK 200</td>")
        .expect_text("MOCK 500 · API key required")
        .expect_text(&format!("<option value=\"{oldest}\""));
    let changes = page
        .html
        .split("Routes in this deployment")
        .next()
        .unwrap_or("");
    assert!(
        !changes.contains("GET /same"),
        "unchanged routes are not listed"
    );

    // Compared the other way round, the new route was removed.
    let reverse = dash
        .get(&format!(
            "/apis/{api}/deployments/{oldest}?against={newest}"
        ))
        .await;
    assert_eq!(reverse.status, StatusCode::OK);
    reverse
        .expect_text("<td class=\"removed\">removed</td>")
        .expect_text(&format!("<option value=\"{newest}\" selected>"));
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_change_of_a_routes_authorization_alone_shows_on_the_diff_page_with_the_frozen_authorizers_and_cors(
    pool: PgPool,
) {
    let cp = ControlPlane::start(pool.clone()).await;
    let admin = cp.admin();
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let api = admin.create_api("pets").await;
    let route = admin.add_route(&api, "GET /pets", mock("pets")).await;
    let authorizer = admin
        .create(
            &format!("/apis/{api}/authorizers"),
            json!({"name": "idp", "authorizer_type": "JWT",
                   "jwt_configuration": {"issuer": "https://idp.example.com",
                                         "audience": ["pets-api"]}}),
        )
        .await;
    let authorizer = authorizer["id"].as_str().expect("id").to_owned();
    let open = admin.deploy(&api, "open").await;

    // Only the authorization changes (and CORS is turned on).
    let (status, body) = admin
        .patch(
            &format!("/apis/{api}/routes/{route}"),
            json!({"authorization_type": "JWT", "authorizer_id": authorizer,
                   "authorization_scopes": ["read:pets"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = admin
        .patch(
            &format!("/apis/{api}"),
            json!({"cors_configuration": {"allow_origins": ["https://app.example.com"],
                                          "allow_methods": ["GET"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let secured = admin.deploy(&api, "secured").await;

    let page = dash
        .get(&format!("/apis/{api}/deployments/{secured}"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    page.expect_text("<td class=\"changed\">changed</td>")
        .expect_text("<code>GET /pets</code>")
        .expect_text("MOCK 200 · JWT idp (read:pets)</td>")
        .expect_text("The CORS configuration changed")
        .expect_text("Authorizers in this deployment")
        .expect_text("https://idp.example.com")
        .expect_text("audiences: pets-api")
        .expect_text("CORS in this deployment")
        .expect_text("https://app.example.com");
    assert!(
        !page.html.contains("No route changed") && !page.html.contains("The authorizers changed"),
        "the authorization change was shown as no change, or the authorizers as changed"
    );

    // The first deployment froze the authorizer too, but no CORS.
    let first = dash.get(&format!("/apis/{api}/deployments/{open}")).await;
    assert_eq!(first.status, StatusCode::OK);
    first
        .expect_text("Authorizers in this deployment")
        .expect_text("CORS is off")
        .expect_text("<span class=\"muted\">none</span>");
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_deployment_no_stage_serves_is_deleted_from_the_history_or_its_page(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let admin = cp.admin();
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let api = admin.create_api("pets").await;
    admin.add_route(&api, "GET /a", mock("a")).await;
    let old = admin.deploy(&api, "old").await;
    let older = admin.deploy(&api, "older").await;
    let served = admin.deploy_stage(&api, "prod", json!({})).await;
    let delete = |id: &str| format!("/apis/{api}/deployments/{id}/delete");

    let history = dash.get(&format!("/apis/{api}/deployments")).await;
    history
        .expect_text(&format!("action=\"{}\"", delete(&old)))
        .expect_text(&format!("action=\"{}\"", delete(&older)))
        .expect_text("data-confirm=\"Delete deployment");
    assert!(
        !history.html.contains(&delete(&served)),
        "the deployment prod serves offers no delete"
    );
    dash.get(&format!("/apis/{api}"))
        .await
        .expect_text(&format!("action=\"{}\"", delete(&old)));
    dash.get(&format!("/apis/{api}/deployments/{old}"))
        .await
        .expect_text(&format!("action=\"{}\"", delete(&old)));

    let deleted = dash.post(&delete(&old), &[]).await;
    assert_eq!(
        redirected_to(&deleted),
        format!("/apis/{api}/deployments?done=deleted")
    );
    let (status, _) = admin.get(&format!("/apis/{api}/deployments/{old}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let after = dash
        .get(&format!("/apis/{api}/deployments?done=deleted"))
        .await;
    after.expect_text("The deployment was deleted.");
    assert!(!after.html.contains(&old));
    assert_eq!(deployment_ids(&cp, &api).await, [served.clone(), older]);
    assert_eq!(stage_deployment(&cp, &api, "prod").await, served);
    let audited = gatehouse_tests::eventually(std::time::Duration::from_secs(5), || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audit_log WHERE action = 'DELETE /apis/{api_id}/deployments/{deployment_id}'",
        )
        .fetch_one(&pool)
        .await
        .expect("audit");
        (n == 1).then_some(())
    })
    .await;
    assert!(audited.is_some(), "the delete is audited");
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_deployment_a_stage_serves_says_why_it_cannot_be_deleted(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let admin = cp.admin();
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let api = admin.create_api("pets").await;
    admin.add_route(&api, "GET /a", mock("a")).await;
    let served = admin.deploy_stage(&api, "prod", json!({})).await;
    let path = format!("/apis/{api}/deployments/{served}");

    let page = dash.get(&path).await;
    page.expect_text("It cannot be deleted while a stage serves it");
    assert!(
        !page.html.contains(&format!("{path}/delete")),
        "no delete form"
    );

    // A form sent anyway (from an older page, say) gets the admin API's reason.
    let refused = dash.post(&format!("{path}/delete"), &[]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    refused
        .expect_text("The deployment was not deleted:")
        .expect_text("points at this deployment; point it elsewhere first")
        .expect_text("prod")
        .expect_text("Routes in this deployment");
    assert_eq!(
        deployment_ids(&cp, &api).await,
        std::slice::from_ref(&served)
    );
    assert_eq!(stage_deployment(&cp, &api, "prod").await, served);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_viewer_sees_no_forms_and_is_refused_on_every_form(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let admin = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let api = create_api(&admin, "Pets", "pets").await;
    let route = add_route(&cp, &admin, &api, &mock_route("GET /a", "200", "a")).await;
    redirected_to(
        &admin
            .post(&format!("/apis/{api}/deploy"), &[("stage", "prod")])
            .await,
    );
    let deployment = deployment_ids(&cp, &api).await.remove(0);
    // One no stage serves, which an admin could delete.
    let spare = cp.admin().deploy(&api, "spare").await;
    let viewer = Dashboard::sign_in_new(&cp, "vic", Role::Viewer).await;

    let pages = [
        "/apis".to_owned(),
        format!("/apis/{api}"),
        format!("/apis/{api}/routes/{route}"),
        format!("/apis/{api}/deployments"),
        format!("/apis/{api}/deployments/{deployment}"),
        format!("/apis/{api}/deployments/{spare}"),
    ];
    for path in &pages {
        let page = viewer.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        let posts = page.html.matches("method=\"post\"").count();
        assert_eq!(posts, 1, "{path}: only the sign-out form\n{}", page.html);
        assert!(
            !page.html.contains("New API") && !page.html.contains("Add route"),
            "{path}"
        );
    }
    viewer
        .get(&format!("/apis/{api}/routes/{route}"))
        .await
        .expect_text("MOCK 200");
    for path in [
        "/apis/new".to_owned(),
        format!("/apis/{api}/edit"),
        format!("/apis/{api}/routes/new"),
    ] {
        assert_eq!(
            viewer.get(&path).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }

    let forms: [(String, Vec<(&str, &str)>); 8] = [
        ("/apis/new".to_owned(), vec![("name", "X"), ("slug", "x")]),
        (
            format!("/apis/{api}/edit"),
            vec![("name", "X"), ("slug", "x")],
        ),
        (format!("/apis/{api}/delete"), vec![]),
        (format!("/apis/{api}/deployments/{spare}/delete"), vec![]),
        (
            format!("/apis/{api}/routes/new"),
            mock_route("GET /v", "200", "v"),
        ),
        (
            format!("/apis/{api}/routes/{route}"),
            mock_route("GET /v", "200", "v"),
        ),
        (format!("/apis/{api}/routes/{route}/delete"), vec![]),
        (format!("/apis/{api}/deploy"), vec![("stage", "dev")]),
    ];
    for (path, fields) in &forms {
        let answer = viewer.post(path, fields).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}");
        answer.expect_text("Read-only access");
    }
    let (_, after) = cp.admin().get(&format!("/apis/{api}")).await;
    assert_eq!(after["slug"], "pets");
    assert_eq!(row_count(&pool, "apis").await, 1);
    assert_eq!(routes_of(&cp, &api).await.len(), 1);
    assert_eq!(row_count(&pool, "deployments").await, 2);
    assert_eq!(row_count(&pool, "stages").await, 1);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn forms_without_the_csrf_token_are_refused_and_change_nothing(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let api = create_api(&dash, "Pets", "pets").await;
    let route = add_route(&cp, &dash, &api, &mock_route("GET /a", "200", "a")).await;
    let kept = cp.admin().deploy(&api, "kept").await;
    let forms: [(String, Vec<(&str, &str)>); 8] = [
        ("/apis/new".to_owned(), vec![("name", "X"), ("slug", "x")]),
        (
            format!("/apis/{api}/edit"),
            vec![("name", "X"), ("slug", "x")],
        ),
        (
            format!("/apis/{api}/routes/new"),
            mock_route("GET /v", "200", "v"),
        ),
        (
            format!("/apis/{api}/routes/{route}"),
            mock_route("GET /v", "200", "v"),
        ),
        (format!("/apis/{api}/routes/{route}/delete"), vec![]),
        (format!("/apis/{api}/deploy"), vec![("stage", "dev")]),
        (format!("/apis/{api}/deployments/{kept}/delete"), vec![]),
        (format!("/apis/{api}/delete"), vec![]),
    ];
    for (path, fields) in &forms {
        let answer = dash.post_raw(path, fields).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}");
        let mut forged = fields.clone();
        forged.push(("csrf", "not-the-token"));
        assert_eq!(
            dash.post_raw(path, &forged).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let (_, after) = cp.admin().get(&format!("/apis/{api}")).await;
    assert_eq!(after["slug"], "pets");
    assert_eq!(row_count(&pool, "apis").await, 1);
    assert_eq!(
        route_by_key(&cp, &api, "GET /a").await["id"],
        route.as_str()
    );
    assert_eq!(deployment_ids(&cp, &api).await, [kept]);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn unknown_or_malformed_ids_get_the_friendly_404(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let api = cp.admin().create_api("pets").await;
    cp.admin().add_route(&api, "GET /a", mock("a")).await;
    let deployment = cp.admin().deploy(&api, "one").await;
    for path in [
        format!("/apis/{UNKNOWN}"),
        "/apis/not-a-uuid".to_owned(),
        format!("/apis/{UNKNOWN}/edit"),
        format!("/apis/{UNKNOWN}/routes/new"),
        format!("/apis/{api}/routes/{UNKNOWN}"),
        format!("/apis/{api}/routes/nope"),
        format!("/apis/{UNKNOWN}/deployments"),
        format!("/apis/{api}/deployments/{UNKNOWN}"),
        format!("/apis/{api}/deployments/{deployment}?against={UNKNOWN}"),
        format!("/apis/{api}/deployments/{deployment}?against=nope"),
    ] {
        let page = dash.get(&path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        page.expect_text("Not found");
    }
    for path in [
        format!("/apis/{UNKNOWN}/edit"),
        format!("/apis/{UNKNOWN}/delete"),
        format!("/apis/{UNKNOWN}/deploy"),
        format!("/apis/{UNKNOWN}/routes/new"),
        format!("/apis/{api}/routes/{UNKNOWN}"),
        format!("/apis/{api}/routes/{UNKNOWN}/delete"),
        format!("/apis/{api}/deployments/{UNKNOWN}/delete"),
        format!("/apis/{api}/deployments/nope/delete"),
        format!("/apis/{UNKNOWN}/deployments/{deployment}/delete"),
    ] {
        let answer = dash
            .post(&path, &[("name", "x"), ("slug", "x"), ("stage", "dev")])
            .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(row_count(&pool, "deployments").await, 1);
    cp.stop().await;
}
