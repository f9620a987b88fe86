//! The dashboard's stage page: what it shows to admins and viewers, its settings form,
//! roll back and delete, and the API page's form that adds a stage on an existing
//! deployment, each checked against what the admin API then reports.

use gatehouse_control_plane::repo::users::Role;
use gatehouse_tests::dashboard::{error_next_to, input_value, Dashboard, Page};
use gatehouse_tests::{http_proxy, mock, Admin, ControlPlane};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &gatehouse_control_plane::MIGRATOR;

/// An API `shop` whose stage `prod` serves the second of two deployments.
struct Shop {
    cp: ControlPlane,
    admin: Admin,
    api: String,
    route: String,
    first: String,
    second: String,
}

impl Shop {
    async fn start(pool: PgPool) -> Shop {
        let cp = ControlPlane::start(pool).await;
        let admin = cp.admin();
        let api = admin.create_api("shop").await;
        let route = admin.add_route(&api, "GET /items", mock("items")).await;
        let first = admin
            .deploy_stage(&api, "prod", json!({"variables": {"region": "eu"}}))
            .await;
        admin
            .add_route(&api, "GET /orders", http_proxy("http://127.0.0.1:9/orders"))
            .await;
        let second = admin.deploy(&api, "add orders").await;
        admin.point_stage(&api, "prod", &second).await;
        Shop {
            cp,
            admin,
            api,
            route,
            first,
            second,
        }
    }

    fn page(&self) -> String {
        format!("/apis/{}/stages/prod", self.api)
    }

    /// The stage as the admin API reports it.
    async fn stage(&self) -> Value {
        let (status, stage) = self
            .admin
            .get(&format!("/apis/{}/stages/prod", self.api))
            .await;
        assert_eq!(status, StatusCode::OK, "{stage}");
        stage
    }

    async fn signed_in(&self, role: Role) -> Dashboard {
        let name = match role {
            Role::Admin => "ada",
            Role::Viewer => "vic",
        };
        Dashboard::sign_in_new(&self.cp, name, role).await
    }
}

/// The settings form's fields with the given ones replaced.
fn settings<'a>(changes: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        ("description", "production"),
        ("variables", "region=eu"),
        ("throttle.rate", "100"),
        ("throttle.burst", "200"),
    ];
    for (name, value) in changes {
        match fields.iter_mut().find(|(n, _)| n == name) {
            Some(field) => field.1 = value,
            None => fields.push((name, value)),
        }
    }
    fields
}

/// The new stage form (on the API's page) with the given fields.
fn new_stage<'a>(
    name: &'a str,
    deployment: &'a str,
    variables: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("new.name", name),
        ("new.deployment_id", deployment),
        ("new.description", "typed description"),
        ("new.variables", variables),
    ]
}

impl Shop {
    /// The names of the API's stages, as the admin API lists them.
    async fn stage_names(&self) -> Vec<String> {
        let (_, stages) = self.admin.get(&format!("/apis/{}/stages", self.api)).await;
        stages["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|s| s["name"].as_str().expect("name").to_owned())
            .collect()
    }

    async fn deployment_count(&self) -> usize {
        let (_, all) = self
            .admin
            .get(&format!("/apis/{}/deployments", self.api))
            .await;
        all["items"].as_array().expect("items").len()
    }
}

#[track_caller]
fn expect_redirect(page: &Page, to: &str) {
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    assert_eq!(page.location.as_deref(), Some(to));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_stage_page_shows_its_deployment_invoke_url_routes_and_forms_to_an_admin(pool: PgPool) {
    let shop = Shop::start(pool).await;
    let admin = shop.signed_in(Role::Admin).await;
    let page = admin.get(&shop.page()).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    page.expect_text("<h1>prod</h1>")
        .expect_text(&format!("<a href=\"/apis/{}\">shop</a>", shop.api))
        .expect_text("/shop/prod</code>")
        .expect_text("data-copy=")
        .expect_text(&format!("/apis/{}/deployments/{}", shop.api, shop.second))
        .expect_text("add orders")
        .expect_text("<code>region=eu</code>")
        .expect_text("10000 requests/s, burst 5000 (the default)")
        .expect_text("GET /items")
        .expect_text("GET /orders")
        .expect_text("HTTP_PROXY → http://127.0.0.1:9/orders")
        .expect_text("badge ok\">current")
        .expect_text("Roll back to this")
        .expect_text(&format!("name=\"deployment_id\" value=\"{}\"", shop.first))
        .expect_text(&format!("action=\"{}/delete\"", shop.page()))
        .expect_text(&format!("action=\"{}\"", shop.page()))
        .expect_text("/charts/requests?api_id=")
        .expect_text("stage=prod");
    assert_eq!(
        input_value(&page.html, "throttle.rate").as_deref(),
        Some("10000")
    );
    assert_eq!(
        input_value(&page.html, "throttle.burst").as_deref(),
        Some("5000")
    );
    // The current deployment is not offered as a target.
    assert!(!page
        .html
        .contains(&format!("name=\"deployment_id\" value=\"{}\"", shop.second)));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_viewer_sees_the_stage_but_no_form(pool: PgPool) {
    let shop = Shop::start(pool).await;
    let viewer = shop.signed_in(Role::Viewer).await;
    let page = viewer.get(&shop.page()).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    page.expect_text("<h1>prod</h1>")
        .expect_text("GET /orders")
        .expect_text("add orders");
    // The only form is the layout's sign-out.
    assert_eq!(page.html.matches("<form").count(), 1, "{}", page.html);
    assert!(!page.html.contains("Roll back to this"));
    assert!(!page.html.contains("Delete stage"));
    assert!(!page.html.contains("name=\"variables\""));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn saved_settings_are_what_the_admin_api_then_reports(pool: PgPool) {
    let shop = Shop::start(pool).await;
    let admin = shop.signed_in(Role::Admin).await;
    let answer = admin
        .post(
            &shop.page(),
            &settings(&[
                (
                    "variables",
                    "region=us\r\n\r\nbackend = http://10.0.0.5:8080\r\n",
                ),
                ("throttle.rate", "0.5"),
                ("throttle.burst", "3"),
                ("access_log", "on"),
            ]),
        )
        .await;
    expect_redirect(&answer, &format!("{}?done=settings", shop.page()));
    let stage = shop.stage().await;
    assert_eq!(stage["description"], "production");
    assert_eq!(
        stage["variables"],
        json!({"region": "us", "backend": "http://10.0.0.5:8080"})
    );
    assert_eq!(stage["throttle"], json!({"rate": 0.5, "burst": 3}));
    assert_eq!(stage["access_log"], true);
    assert_eq!(stage["deployment_id"], shop.second.as_str());

    let page = admin.get(answer.location.as_deref().unwrap_or("")).await;
    page.expect_text("Settings saved")
        .expect_text("0.5 requests/s, burst 3")
        .expect_text("<span class=\"badge ok\">on</span>");

    // Both throttle numbers left empty: the default again; the access log unticked: off.
    let answer = admin
        .post(
            &shop.page(),
            &settings(&[("throttle.rate", ""), ("throttle.burst", "")]),
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.html);
    let stage = shop.stage().await;
    assert_eq!(stage["throttle"], json!({"rate": 10000.0, "burst": 5000}));
    assert_eq!(stage["access_log"], false);
    assert_eq!(stage["variables"], json!({"region": "eu"}));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_bad_variables_line_is_named_next_to_the_field_with_the_input_kept(pool: PgPool) {
    let shop = Shop::start(pool).await;
    let admin = shop.signed_in(Role::Admin).await;
    let before = shop.stage().await;
    let page = admin
        .post(
            &shop.page(),
            &settings(&[
                ("variables", "region=us\nno equals sign here"),
                ("description", "kept text"),
            ]),
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.html
    );
    page.expect_text(
        "<span class=\"field-error\">line 2: `no equals sign here` is not name=value</span>",
    )
    .expect_text("region=us\nno equals sign here</textarea>")
    .expect_text("The settings were not saved");
    assert_eq!(
        input_value(&page.html, "description").as_deref(),
        Some("kept text")
    );
    assert_eq!(shop.stage().await, before);

    let page = admin
        .post(&shop.page(), &settings(&[("variables", "a=1\nbad-name=2")]))
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.expect_text("<span class=\"field-error\">line 2: variable name `bad-name`");
    assert_eq!(shop.stage().await, before);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_bad_throttle_is_shown_next_to_its_fields_with_the_input_kept(pool: PgPool) {
    let shop = Shop::start(pool).await;
    let admin = shop.signed_in(Role::Admin).await;
    let before = shop.stage().await;
    let page = admin
        .post(
            &shop.page(),
            &settings(&[("throttle.rate", "fast"), ("throttle.burst", "-4")]),
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.html
    );
    page.expect_text("requests per second above 0")
        .expect_text("whole number of requests from 1 to 1000000000");
    assert_eq!(
        input_value(&page.html, "throttle.rate").as_deref(),
        Some("fast")
    );
    assert_eq!(
        input_value(&page.html, "throttle.burst").as_deref(),
        Some("-4")
    );
    assert!(page.html.contains(
        "name=\"throttle.rate\" value=\"fast\" inputmode=\"decimal\" aria-invalid=\"true\""
    ));

    let page = admin
        .post(&shop.page(), &settings(&[("throttle.burst", "")]))
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.expect_text("enter a burst too, or leave both empty for the default");
    assert_eq!(
        input_value(&page.html, "throttle.rate").as_deref(),
        Some("100")
    );
    assert_eq!(shop.stage().await, before);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_admin_apis_refusal_shows_next_to_the_field(pool: PgPool) {
    let shop = Shop::start(pool).await;
    let admin = shop.signed_in(Role::Admin).await;
    let before = shop.stage().await;
    let long = "x".repeat(1025);
    let page = admin
        .post(&shop.page(), &settings(&[("description", long.as_str())]))
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.html
    );
    page.expect_text("<span class=\"field-error\">at most 1024 characters</span>")
        .expect_text("Check the fields below.");
    assert_eq!(shop.stage().await, before);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn rolling_back_points_the_stage_at_the_older_deployment(pool: PgPool) {
    let shop = Shop::start(pool).await;
    let admin = shop.signed_in(Role::Admin).await;
    let answer = admin
        .post(
            &format!("{}/rollback", shop.page()),
            &[("deployment_id", &shop.first)],
        )
        .await;
    expect_redirect(&answer, &format!("{}?done=deployment", shop.page()));
    assert_eq!(shop.stage().await["deployment_id"], shop.first.as_str());

    let page = admin.get(answer.location.as_deref().unwrap_or("")).await;
    page.expect_text("The stage now serves the deployment you chose")
        .expect_text("Deploy this")
        .expect_text(&format!("name=\"deployment_id\" value=\"{}\"", shop.second));
    assert!(
        !page.html.contains("GET /orders"),
        "only the first deployment's routes"
    );

    let unknown = admin
        .post(
            &format!("{}/rollback", shop.page()),
            &[("deployment_id", "00000000-0000-0000-0000-000000000000")],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let bad = admin
        .post(
            &format!("{}/rollback", shop.page()),
            &[("deployment_id", "nope")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::NOT_FOUND);
    assert_eq!(shop.stage().await["deployment_id"], shop.first.as_str());
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn deleting_the_stage_removes_it_and_returns_to_the_api(pool: PgPool) {
    let shop = Shop::start(pool).await;
    let admin = shop.signed_in(Role::Admin).await;
    let answer = admin.post(&format!("{}/delete", shop.page()), &[]).await;
    expect_redirect(&answer, &format!("/apis/{}", shop.api));
    let (status, _) = shop
        .admin
        .get(&format!("/apis/{}/stages/prod", shop.api))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(admin.get(&shop.page()).await.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_stage_is_added_on_an_existing_deployment_without_deploying(pool: PgPool) {
    let shop = Shop::start(pool).await;
    let admin = shop.signed_in(Role::Admin).await;
    let api_page = admin.get(&format!("/apis/{}", shop.api)).await;
    api_page
        .expect_text(&format!("action=\"/apis/{}/stages\"", shop.api))
        .expect_text(&format!("<option value=\"{}\" selected>", shop.second))
        .expect_text(&format!("<option value=\"{}\">", shop.first))
        .expect_text("add orders");

    let answer = admin
        .post(
            &format!("/apis/{}/stages", shop.api),
            &new_stage("staging", &shop.first, "region=us\n"),
        )
        .await;
    expect_redirect(&answer, &format!("/apis/{}/stages/staging", shop.api));
    let (status, staging) = shop
        .admin
        .get(&format!("/apis/{}/stages/staging", shop.api))
        .await;
    assert_eq!(status, StatusCode::OK, "{staging}");
    assert_eq!(staging["deployment_id"], shop.first.as_str());
    assert_eq!(staging["variables"], json!({"region": "us"}));
    assert_eq!(staging["description"], "typed description");
    assert_eq!(shop.deployment_count().await, 2, "nothing was deployed");
    assert_eq!(shop.stage().await["deployment_id"], shop.second.as_str());
    admin
        .get(&format!("/apis/{}/stages/staging", shop.api))
        .await
        .expect_text("GET /items");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_bad_new_stage_is_shown_next_to_its_field_with_what_was_typed_kept(pool: PgPool) {
    let shop = Shop::start(pool).await;
    let admin = shop.signed_in(Role::Admin).await;
    let create = format!("/apis/{}/stages", shop.api);
    let other = shop.admin.create_api("other").await;
    shop.admin.add_route(&other, "GET /x", mock("x")).await;
    let foreign = shop.admin.deploy(&other, "elsewhere").await;

    // Refused by the admin API: a name taken, a name it cannot take, another API's deployment.
    let cases = [
        (
            new_stage("prod", &shop.first, ""),
            "new.name",
            "new.deployment_id",
            "already has a stage with this name",
        ),
        (
            new_stage("my stage!", &shop.first, ""),
            "new.name",
            "new.deployment_id",
            "letters, digits",
        ),
        (
            new_stage("staging", &foreign, ""),
            "new.deployment_id",
            "new.description",
            "no deployment with this id in this API",
        ),
        // Checked here: a variables line, a deployment that is no id.
        (
            new_stage("staging", &shop.first, "region=us\njust text"),
            "new.variables",
            "__end",
            "line 2: `just text` is not name=value",
        ),
        (
            new_stage("staging", "nope", ""),
            "new.deployment_id",
            "new.description",
            "choose one of the API",
        ),
    ];
    for (fields, field, next, message) in &cases {
        let page = admin.post(&create, fields).await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {}",
            page.html
        );
        page.expect_text("The stage was not created.");
        error_next_to(&page, field, next, message);
        let name = fields[0].1;
        assert_eq!(input_value(&page.html, "new.name").as_deref(), Some(name));
        assert_eq!(
            input_value(&page.html, "new.description").as_deref(),
            Some("typed description")
        );
        assert!(page.html.contains(&format!(
            "spellcheck=\"false\" aria-invalid=\"{}\">{}</textarea>",
            field == &"new.variables",
            fields[3].1
        )));
    }
    assert_eq!(shop.stage_names().await, ["prod"]);
    assert_eq!(shop.deployment_count().await, 2);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn forms_without_the_csrf_token_are_refused_and_change_nothing(pool: PgPool) {
    let shop = Shop::start(pool).await;
    let admin = shop.signed_in(Role::Admin).await;
    let before = shop.stage().await;
    let save = settings(&[("description", "sneaky")]);
    let rollback = [("deployment_id", shop.first.as_str())];
    let add = new_stage("staging", &shop.first, "");
    let forms: [(String, &[(&str, &str)]); 4] = [
        (shop.page(), save.as_slice()),
        (format!("{}/rollback", shop.page()), &rollback[..]),
        (format!("{}/delete", shop.page()), &[]),
        (format!("/apis/{}/stages", shop.api), add.as_slice()),
    ];
    for (path, fields) in &forms {
        let page = admin.post_raw(path, fields).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
        let mut wrong = fields.to_vec();
        wrong.push(("csrf", "not-the-token"));
        let page = admin.post_raw(path, &wrong).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(shop.stage().await, before);
    assert_eq!(shop.stage_names().await, ["prod"]);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn viewers_get_403_on_every_form_and_change_nothing(pool: PgPool) {
    let shop = Shop::start(pool).await;
    let viewer = shop.signed_in(Role::Viewer).await;
    let before = shop.stage().await;
    let save = settings(&[("description", "sneaky")]);
    let rollback = [("deployment_id", shop.first.as_str())];
    let add = new_stage("staging", &shop.first, "");
    let forms: [(String, &[(&str, &str)]); 4] = [
        (shop.page(), save.as_slice()),
        (format!("{}/rollback", shop.page()), &rollback[..]),
        (format!("{}/delete", shop.page()), &[]),
        (format!("/apis/{}/stages", shop.api), add.as_slice()),
    ];
    for (path, fields) in &forms {
        let page = viewer.post(path, fields).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
        page.expect_text("Read-only access");
    }
    assert_eq!(shop.stage().await, before);
    assert_eq!(shop.stage_names().await, ["prod"]);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn unknown_apis_stages_and_routes_get_the_friendly_404(pool: PgPool) {
    let shop = Shop::start(pool).await;
    let admin = shop.signed_in(Role::Admin).await;
    let nil = "00000000-0000-0000-0000-000000000000";
    for path in [
        format!("/apis/{}/stages/staging", shop.api),
        format!("/apis/{}/stages/not%20a%20name", shop.api),
        format!("/apis/{nil}/stages/prod"),
        "/apis/not-an-id/stages/prod".to_owned(),
        format!("{}?route=not-an-id", shop.page()),
        format!("{}?route={nil}", shop.page()),
    ] {
        let page = admin.get(&path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        page.expect_text("Not found").expect_text("Sign out");
    }
    for path in [
        format!("/apis/{}/stages/staging", shop.api),
        format!("/apis/{nil}/stages/prod/rollback"),
        format!("/apis/{}/stages/staging/delete", shop.api),
        format!("/apis/{nil}/stages"),
        "/apis/not-an-id/stages".to_owned(),
    ] {
        let page = admin.post(&path, &settings(&[])).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_routes_graphs_link_switches_the_charts_to_that_route(pool: PgPool) {
    let shop = Shop::start(pool).await;
    let viewer = shop.signed_in(Role::Viewer).await;
    let page = viewer.get(&shop.page()).await;
    page.expect_text(&format!("?route={}&amp;range=day#traffic", shop.route));
    let page = viewer
        .get(&format!("{}?route={}&range=week", shop.page(), shop.route))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    page.expect_text(&format!(
        "/charts/requests?api_id={}&#38;stage=prod&#38;route_id={}&#38;range=week",
        shop.api, shop.route
    ))
    .expect_text("Showing route <code>GET /items</code>")
    .expect_text("<tr class=\"selected\">")
    // The range tabs keep the route.
    .expect_text(&format!("?route={}&#38;range=hour", shop.route));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn variables_an_integration_uses_cannot_be_removed_nor_rolled_back_without(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let api_admin = cp.admin();
    let api = api_admin.create_api("tpl").await;
    let route = api_admin
        .add_route(
            &api,
            "GET /x",
            http_proxy("http://${stageVariables.host}/x"),
        )
        .await;
    let needs_host = api_admin.deploy(&api, "needs host").await;
    let (status, body) = api_admin
        .patch(
            &format!("/apis/{api}/routes/{route}"),
            json!({"integration": mock("fixed")}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let fixed = api_admin
        .deploy_stage(&api, "prod", json!({"variables": {"host": "127.0.0.1:9"}}))
        .await;
    api_admin.point_stage(&api, "prod", &needs_host).await;
    let stage_path = format!("/apis/{api}/stages/prod");
    let (_, before) = api_admin.get(&stage_path).await;

    let admin = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let page = admin
        .post(&stage_path, &settings(&[("variables", "")]))
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.html
    );
    page.expect_text("<span class=\"field-error\">route `GET /x`: with this stage");
    assert_eq!(api_admin.get(&stage_path).await.1, before);

    // Without the variable, the stage cannot go back to the deployment that needs it.
    let (status, body) = api_admin
        .patch(
            &stage_path,
            json!({"variables": {}, "deployment_id": fixed}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, before) = api_admin.get(&stage_path).await;
    let page = admin
        .post(
            &format!("{stage_path}/rollback"),
            &[("deployment_id", &needs_host)],
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.html
    );
    page.expect_text("The stage still serves the same deployment")
        .expect_text("route `GET /x`");
    assert_eq!(api_admin.get(&stage_path).await.1, before);
}
