//! The dashboard's API keys and usage plans pages, driven over HTTP with a signed-in
//! browser-like client: a new key's value is shown once and nowhere else, each form's
//! happy path changes what the admin API then reports, bad input is shown next to its
//! field with what was typed kept, and viewers, forged forms and unknown ids are refused
//! without changing anything.

use chrono::Utc;
use gatehouse_control_plane::repo::usage;
use gatehouse_control_plane::repo::users::Role;
use gatehouse_model::usage::UsageEntry;
use gatehouse_model::QuotaPeriod;
use gatehouse_tests::dashboard::{error_next_to, input_value, Dashboard, Page};
use gatehouse_tests::{id_of, mock, row_count, Admin, ControlPlane};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &gatehouse_control_plane::MIGRATOR;

/// An id no row has.
const UNKNOWN: &str = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

#[track_caller]
fn redirected_to(page: &Page) -> String {
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    page.location.clone().expect("a redirect has a location")
}

/// The text between `start` and the next `end` after it.
fn between<'a>(html: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = html.find(start)? + start.len();
    let to = html[from..].find(end)? + from;
    Some(&html[from..to])
}

/// An API with a stage `prod`; returns the API's id.
async fn api_with_stage(admin: &Admin, slug: &str) -> String {
    let api = admin.create_api(slug).await;
    admin.add_route(&api, "GET /hello", mock("hi")).await;
    admin.deploy_stage(&api, "prod", json!({})).await;
    api
}

async fn create_key(admin: &Admin, name: &str) -> String {
    id_of(&admin.create("/keys", json!({ "name": name })).await)
}

async fn create_plan(admin: &Admin, name: &str, stages: Value) -> String {
    let plan = admin
        .create(
            "/usage-plans",
            json!({
                "name": name,
                "throttle": {"rate": 10, "burst": 20},
                "quota": {"limit": 1000, "period": "DAY"},
                "stages": stages,
            }),
        )
        .await;
    id_of(&plan)
}

async fn key_of(admin: &Admin, id: &str) -> Value {
    let (status, key) = admin.get(&format!("/keys/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{key}");
    key
}

async fn plan_of(admin: &Admin, id: &str) -> Value {
    let (status, plan) = admin.get(&format!("/usage-plans/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    plan
}

async fn plan_keys(admin: &Admin, id: &str) -> Vec<String> {
    let (_, keys) = admin.get(&format!("/usage-plans/{id}/keys")).await;
    keys["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(id_of)
        .collect()
}

/// The fields of the plan form, for a plan with `rate`/`burst` and `limit`/`period`.
fn plan_form<'a>(
    name: &'a str,
    (rate, burst): (&'a str, &'a str),
    (limit, period): (&'a str, &'a str),
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", name),
        ("description", "for partners"),
        ("throttle.rate", rate),
        ("throttle.burst", burst),
        ("quota.limit", limit),
        ("quota.period", period),
    ]
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_created_key_is_shown_once_and_works_through_the_admin_api(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let admin = cp.admin();
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let empty = dash.get("/keys").await;
    assert_eq!(empty.status, StatusCode::OK);
    empty
        .expect_text("No API keys yet")
        .expect_text("action=\"/keys\"");

    let created = dash.post("/keys", &[("name", "mobile app")]).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.html);
    assert_eq!(
        created.location, None,
        "the value never travels in a redirect"
    );
    assert_eq!(created.headers["cache-control"], "no-store");
    created
        .expect_text("class=\"secret")
        .expect_text("will not be shown again");
    let value = between(&created.html, "data-copy=\"", "\"")
        .expect("a copy button with the value")
        .to_owned();
    assert!(value.starts_with("ghk_") && value.len() > 20, "{value}");

    let (_, listed) = admin.get("/keys").await;
    let key = &listed["items"][0];
    assert_eq!(key["name"], "mobile app");
    let prefix = key["prefix"].as_str().expect("prefix");
    assert!(value.starts_with(prefix), "{value} starts with {prefix}");
    let id = id_of(key);
    created.expect_text(&format!("href=\"/keys/{id}\""));

    let page = dash.get(&format!("/keys/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    page.expect_text("mobile app").expect_text(prefix);
    assert!(
        !page.html.contains(&value),
        "the key's page never shows the value"
    );
    let list = dash.get("/keys").await;
    list.expect_text("mobile app").expect_text(prefix);
    assert!(!list.html.contains(&value));
    let logged = gatehouse_tests::eventually(std::time::Duration::from_secs(5), || async {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'POST /keys'")
                .fetch_one(&cp.pool)
                .await
                .expect("audit");
        (n == 1).then_some(())
    })
    .await;
    assert!(logged.is_some(), "the creation is audited");
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE detail::text LIKE '%' || $1 || '%'",
    )
    .bind(&value)
    .fetch_one(&cp.pool)
    .await
    .expect("audit");
    assert_eq!(audited, 0, "the audit log never holds the value");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_key_with_a_bad_name_is_refused_next_to_the_field_and_nothing_is_created(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let long = "k".repeat(200);
    let answer = dash.post("/keys", &[("name", &long)]).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        input_value(&answer.html, "name").as_deref(),
        Some(long.as_str())
    );
    answer
        .expect_text("class=\"field-error\"")
        .expect_text("printable characters");
    assert_eq!(row_count(&cp.pool, "api_keys").await, 0);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_key_can_be_disabled_enabled_and_deleted(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let admin = cp.admin();
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let id = create_key(&admin, "ci").await;
    let page = format!("/keys/{id}");

    let disabled = dash.post(&format!("{page}/disable"), &[]).await;
    assert_eq!(redirected_to(&disabled), page);
    assert_eq!(key_of(&admin, &id).await["enabled"], false);
    dash.get(&page)
        .await
        .expect_text("badge bad")
        .expect_text(&format!("action=\"{page}/enable\""));

    let enabled = dash.post(&format!("{page}/enable"), &[]).await;
    assert_eq!(redirected_to(&enabled), page);
    assert_eq!(key_of(&admin, &id).await["enabled"], true);

    let deleted = dash.post(&format!("{page}/delete"), &[]).await;
    assert_eq!(redirected_to(&deleted), "/keys");
    let (status, _) = admin.get(&format!("/keys/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The stored hash of a key value, as the admin API writes it.
fn hash_hex(value: &str) -> String {
    gatehouse_model::usage::hash_key(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_imported_key_value_is_stored_by_its_hash_and_shown_once(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let admin = cp.admin();
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    dash.get("/keys")
        .await
        .expect_text("name=\"value\" value=\"\"")
        .expect_text("20 to 128 letters, digits or <code>-_.~</code>");

    let value = "legacy-partner_key.0123~XYZ";
    let created = dash
        .post("/keys", &[("name", "legacy partner"), ("value", value)])
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.html);
    assert_eq!(created.location, None);
    assert_eq!(created.headers["cache-control"], "no-store");
    created
        .expect_text(&format!("data-copy=\"{value}\""))
        .expect_text("will not be shown again");

    let (_, listed) = admin.get("/keys").await;
    let key = &listed["items"][0];
    assert_eq!(key["name"], "legacy partner");
    assert_eq!(key["prefix"], "legacy", "a quarter of the value, at most 8");
    let hash: String = sqlx::query_scalar("SELECT hash FROM api_keys")
        .fetch_one(&cp.pool)
        .await
        .expect("hash");
    assert_eq!(hash, hash_hex(value), "the imported value is the key");
    let page = dash.get(&format!("/keys/{}", id_of(key))).await;
    assert!(!page.html.contains(value), "shown once, never again");

    // Without a value, one is generated as before.
    let generated = dash
        .post("/keys", &[("name", "new app"), ("value", "  ")])
        .await;
    assert_eq!(generated.status, StatusCode::OK, "{}", generated.html);
    generated.expect_text("data-copy=\"ghk_");
    assert_eq!(row_count(&cp.pool, "api_keys").await, 2);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_bad_or_taken_imported_value_is_refused_next_to_its_field_with_what_was_typed_kept(
    pool: PgPool,
) {
    let cp = ControlPlane::start(pool).await;
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    for bad in [
        "too-short",
        "has spaces in the middle of it",
        &"k".repeat(129),
    ] {
        let answer = dash
            .post("/keys", &[("name", "legacy"), ("value", bad)])
            .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        error_next_to(&answer, "value", "__end", "must be 20 to 128 letters");
        answer.expect_text("The key was not created.");
        assert_eq!(input_value(&answer.html, "value").as_deref(), Some(bad));
        assert_eq!(input_value(&answer.html, "name").as_deref(), Some("legacy"));
        assert!(!answer.html.contains("data-copy"), "{bad}: no key shown");
    }
    assert_eq!(row_count(&cp.pool, "api_keys").await, 0);

    let value = "abcdefghijklmnopqrstuvwxyz";
    let first = dash
        .post("/keys", &[("name", "one"), ("value", value)])
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.html);
    let again = dash
        .post("/keys", &[("name", "two"), ("value", value)])
        .await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    error_next_to(&again, "value", "__end", "this key already exists");
    assert_eq!(input_value(&again.html, "name").as_deref(), Some("two"));
    assert_eq!(row_count(&cp.pool, "api_keys").await, 1);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_key_is_renamed_from_its_page_and_keeps_its_value(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let admin = cp.admin();
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let id = create_key(&admin, "ci").await;
    let prefix = key_of(&admin, &id).await["prefix"].clone();
    let page = format!("/keys/{id}");
    let form = dash.get(&page).await;
    form.expect_text(&format!("action=\"{page}/rename\""))
        .expect_text("href=\"#rename\"");
    assert_eq!(input_value(&form.html, "name").as_deref(), Some("ci"));

    let renamed = dash
        .post(&format!("{page}/rename"), &[("name", "  ci runners  ")])
        .await;
    assert_eq!(redirected_to(&renamed), page);
    let key = key_of(&admin, &id).await;
    assert_eq!(key["name"], "ci runners");
    assert_eq!(key["prefix"], prefix);
    assert_eq!(key["enabled"], true);
    dash.get(&page).await.expect_text("<h1>ci runners");
    dash.get("/keys").await.expect_text("ci runners");
    let audited = gatehouse_tests::eventually(std::time::Duration::from_secs(5), || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audit_log WHERE action = 'PATCH /keys/{key_id}' AND target = '/keys/' || $1",
        )
        .bind(&id)
        .fetch_one(&cp.pool)
        .await
        .expect("audit");
        (n == 1).then_some(())
    })
    .await;
    assert!(audited.is_some(), "the rename is audited");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_rename_to_a_bad_name_is_shown_next_to_the_field_and_changes_nothing(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let admin = cp.admin();
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let id = create_key(&admin, "ci").await;
    let long = "n".repeat(200);
    for bad in [long.as_str(), "   "] {
        let answer = dash
            .post(&format!("/keys/{id}/rename"), &[("name", bad)])
            .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        answer.expect_text("The key was not renamed.");
        error_next_to(&answer, "name", "__end", "printable characters");
        assert_eq!(input_value(&answer.html, "name").as_deref(), Some(bad));
        // The rest of the page is the key's, as stored.
        answer.expect_text("<h1>ci ");
    }
    assert_eq!(key_of(&admin, &id).await["name"], "ci");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_key_page_shows_its_plans_with_quota_used_and_left_this_period(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let admin = cp.admin();
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let api = api_with_stage(&admin, "pets").await;
    let plan = create_plan(&admin, "gold", json!([{"api_id": api, "stage": "prod"}])).await;
    let key = create_key(&admin, "partner").await;
    admin
        .create(
            &format!("/usage-plans/{plan}/keys"),
            json!({ "key_id": key }),
        )
        .await;
    let (key_id, plan_id) = (
        Uuid::parse_str(&key).expect("id"),
        Uuid::parse_str(&plan).expect("id"),
    );
    let (start, _) = QuotaPeriod::Day.bounds(Utc::now());
    let entries = [UsageEntry {
        key_id,
        plan_id,
        period_start: start,
        count: 250,
    }];
    usage::record(&cp.pool, Uuid::new_v4(), "node-a", &entries, &[key_id])
        .await
        .expect("usage recorded");

    let page = dash.get(&format!("/keys/{key}")).await;
    assert_eq!(page.status, StatusCode::OK);
    page.expect_text(&format!("href=\"/plans/{plan}\""))
        .expect_text("10 requests/s, burst 20")
        .expect_text("1,000 per day")
        .expect_text("<td class=\"num\">250</td>")
        .expect_text("<td class=\"num\">750</td>")
        .expect_text(&format!("/charts/requests?key_id={key}"));
    dash.get("/keys").await.expect_text("gold");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_plan_with_a_bad_throttle_shows_the_error_next_to_the_field_and_saves_nothing(
    pool: PgPool,
) {
    let cp = ControlPlane::start(pool).await;
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let form = dash.get("/plans/new").await;
    assert_eq!(form.status, StatusCode::OK);
    form.expect_text("No API has a stage yet");

    let unparsable = dash
        .post("/plans/new", &plan_form("gold", ("abc", "20"), ("", "")))
        .await;
    assert_eq!(unparsable.status, StatusCode::UNPROCESSABLE_ENTITY);
    error_next_to(
        &unparsable,
        "throttle.rate",
        "throttle.burst",
        "must be a number",
    );
    assert_eq!(
        input_value(&unparsable.html, "throttle.rate").as_deref(),
        Some("abc")
    );
    assert_eq!(
        input_value(&unparsable.html, "name").as_deref(),
        Some("gold")
    );

    let negative = dash
        .post("/plans/new", &plan_form("gold", ("-1", "20"), ("", "")))
        .await;
    assert_eq!(negative.status, StatusCode::UNPROCESSABLE_ENTITY);
    error_next_to(
        &negative,
        "throttle.rate",
        "throttle.burst",
        "rate must be above 0",
    );
    assert_eq!(
        input_value(&negative.html, "throttle.rate").as_deref(),
        Some("-1")
    );
    assert_eq!(
        input_value(&negative.html, "throttle.burst").as_deref(),
        Some("20")
    );

    let half_quota = dash
        .post("/plans/new", &plan_form("gold", ("", ""), ("lots", "DAY")))
        .await;
    assert_eq!(half_quota.status, StatusCode::UNPROCESSABLE_ENTITY);
    error_next_to(&half_quota, "quota.limit", "quota.period", "whole number");
    half_quota.expect_text("<option value=\"DAY\" selected>");
    assert_eq!(row_count(&cp.pool, "usage_plans").await, 0);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_plan_is_created_and_edited_through_its_form(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let admin = cp.admin();
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let api = api_with_stage(&admin, "pets").await;
    let stage = format!("{api}:prod");
    dash.get("/plans").await.expect_text("No usage plans yet");
    dash.get("/plans/new")
        .await
        .expect_text(&format!("value=\"{stage}\""));

    let mut fields = plan_form("gold", ("100", "200"), ("10,000", "DAY"));
    fields.push(("stages", &stage));
    let created = dash.post("/plans/new", &fields).await;
    let location = redirected_to(&created);
    let id = location
        .strip_prefix("/plans/")
        .expect("to the plan's page")
        .to_owned();
    let plan = plan_of(&admin, &id).await;
    assert_eq!(plan["name"], "gold");
    assert_eq!(plan["throttle"], json!({"rate": 100.0, "burst": 200}));
    assert_eq!(plan["quota"], json!({"limit": 10000, "period": "DAY"}));
    assert_eq!(plan["stages"][0]["stage"], "prod");
    dash.get("/plans")
        .await
        .expect_text("100 requests/s, burst 200")
        .expect_text("10,000 per day")
        .expect_text("pets / prod");

    // A throttle of one route, set through the API, survives an edit from the form.
    let (status, body) = admin
        .patch(
            &format!("/usage-plans/{id}"),
            json!({"stages": [{"api_id": api, "stage": "prod",
                "route_throttles": {"GET /hello": {"rate": 1, "burst": 1}}}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page = dash.get(&location).await;
    assert_eq!(
        input_value(&page.html, "throttle.rate").as_deref(),
        Some("100")
    );
    page.expect_text(&format!("value=\"{stage}\" checked"));

    let mut edit = plan_form("gold plus", ("", ""), ("5", "WEEK"));
    edit.push(("stages", &stage));
    let saved = dash.post(&location, &edit).await;
    assert_eq!(redirected_to(&saved), location);
    let plan = plan_of(&admin, &id).await;
    assert_eq!(plan["name"], "gold plus");
    assert_eq!(plan["throttle"], Value::Null);
    assert_eq!(plan["quota"], json!({"limit": 5, "period": "WEEK"}));
    assert_eq!(
        plan["stages"][0]["route_throttles"]["GET /hello"]["burst"],
        1
    );

    let bad = dash
        .post(&location, &plan_form("gold max", ("1", "x"), ("", "")))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    error_next_to(&bad, "throttle.burst", "quota.limit", "whole number");
    assert_eq!(input_value(&bad.html, "name").as_deref(), Some("gold max"));
    assert_eq!(plan_of(&admin, &id).await["name"], "gold plus");
}

/// The plan form's fields with route throttle rows, each (stage, route, rate, burst).
fn with_rows(
    mut fields: Vec<(String, String)>,
    rows: &[(&str, &str, &str, &str)],
) -> Vec<(String, String)> {
    fields.push(("rt.rows".to_owned(), rows.len().to_string()));
    for (i, (stage, route, rate, burst)) in rows.iter().enumerate() {
        for (part, value) in [
            ("stage", stage),
            ("route", route),
            ("rate", rate),
            ("burst", burst),
        ] {
            fields.push((format!("rt.{i}.{part}"), (*value).to_owned()));
        }
    }
    fields
}

/// The plan form for plan `gold` covering `stage`, without route throttle rows.
fn gold_covering(stage: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = plan_form("gold", ("10", "20"), ("1000", "DAY"))
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    fields.push(("stages".to_owned(), stage.to_owned()));
    fields
}

fn borrowed(fields: &[(String, String)]) -> Vec<(&str, &str)> {
    fields
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

async fn route_throttles_of(admin: &Admin, plan: &str) -> Value {
    plan_of(admin, plan).await["stages"][0]["route_throttles"].clone()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn route_throttles_are_shown_added_changed_and_removed_on_the_plan_form(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let admin = cp.admin();
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let api = admin.create_api("pets").await;
    admin.add_route(&api, "GET /hello", mock("hi")).await;
    admin.add_route(&api, "POST /pets", mock("made")).await;
    admin.deploy_stage(&api, "prod", json!({})).await;
    let stage = format!("{api}:prod");
    let plan = create_plan(&admin, "gold", json!([{"api_id": api, "stage": "prod"}])).await;
    let page = format!("/plans/{plan}");

    let empty = dash.get(&page).await;
    empty
        .expect_text("<span class=\"muted\">none</span>")
        .expect_text("name=\"rt.rows\" value=\"1\"")
        .expect_text("<option value=\"GET /hello\">")
        .expect_text("<option value=\"POST /pets\">");
    assert_eq!(input_value(&empty.html, "rt.0.route").as_deref(), Some(""));
    // With one stage covered, the empty row offers it.
    empty.expect_text(&format!("<option value=\"{stage}\" selected>"));

    // Add one.
    let added = with_rows(gold_covering(&stage), &[(&stage, "GET /hello", "1", "2")]);
    let saved = dash.post(&page, &borrowed(&added)).await;
    assert_eq!(redirected_to(&saved), page);
    assert_eq!(
        route_throttles_of(&admin, &plan).await,
        json!({"GET /hello": {"rate": 1.0, "burst": 2}})
    );
    let shown = dash.get(&page).await;
    shown
        .expect_text("<code>GET /hello</code> 1 requests/s, burst 2")
        .expect_text("name=\"rt.rows\" value=\"2\"")
        .expect_text(&format!("<option value=\"{stage}\" selected>"));
    assert_eq!(
        input_value(&shown.html, "rt.0.route").as_deref(),
        Some("GET /hello")
    );
    assert_eq!(input_value(&shown.html, "rt.0.rate").as_deref(), Some("1"));
    assert_eq!(input_value(&shown.html, "rt.1.route").as_deref(), Some(""));

    // Change it and add a second one in the empty row.
    let changed = with_rows(
        gold_covering(&stage),
        &[
            (&stage, "GET /hello", "5", "10"),
            (&stage, "POST /pets", "0.5", "1"),
        ],
    );
    let saved = dash.post(&page, &borrowed(&changed)).await;
    assert_eq!(redirected_to(&saved), page);
    assert_eq!(
        route_throttles_of(&admin, &plan).await,
        json!({
            "GET /hello": {"rate": 5.0, "burst": 10},
            "POST /pets": {"rate": 0.5, "burst": 1},
        })
    );

    // Remove one with its tick and the other by emptying its row.
    let mut removed = with_rows(
        gold_covering(&stage),
        &[(&stage, "GET /hello", "5", "10"), (&stage, "", "", "")],
    );
    removed.push(("rt.0.remove".to_owned(), "on".to_owned()));
    let saved = dash.post(&page, &borrowed(&removed)).await;
    assert_eq!(redirected_to(&saved), page);
    assert_eq!(route_throttles_of(&admin, &plan).await, json!({}));
    let plan_json = plan_of(&admin, &plan).await;
    assert_eq!(plan_json["throttle"], json!({"rate": 10.0, "burst": 20}));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_bad_route_throttle_is_shown_next_to_its_field_with_what_was_typed_kept(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let admin = cp.admin();
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let api = api_with_stage(&admin, "pets").await;
    let other = api_with_stage(&admin, "shop").await;
    let stage = format!("{api}:prod");
    let unticked = format!("{other}:prod");
    let plan = create_plan(&admin, "gold", json!([{"api_id": api, "stage": "prod"}])).await;
    let page = format!("/plans/{plan}");
    admin
        .patch(
            &format!("/usage-plans/{plan}"),
            json!({"stages": [{"api_id": api, "stage": "prod",
                "route_throttles": {"GET /hello": {"rate": 1, "burst": 1}}}]}),
        )
        .await;

    // Checked here: numbers, the model's rules, a stage not ticked, a route twice.
    let typed = with_rows(
        gold_covering(&stage),
        &[
            (&stage, "GET /hello", "fast", "2"),
            (&stage, "GET /a", "1", "0"),
            (&unticked, "GET /hello", "1", "1"),
            (&stage, "GET /b", "1", "1"),
            (&stage, "GET /b", "2", "2"),
            ("", "GET /c", "1", "1"),
        ],
    );
    let answer = dash.post(&page, &borrowed(&typed)).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    answer.expect_text("The plan was not saved");
    error_next_to(&answer, "rt.0.rate", "rt.0.burst", "must be a number");
    error_next_to(
        &answer,
        "rt.1.burst",
        "rt.1.remove",
        "burst must be between 1",
    );
    error_next_to(&answer, "rt.2.stage", "rt.2.route", "tick this stage");
    error_next_to(&answer, "rt.4.route", "rt.4.rate", "already");
    error_next_to(&answer, "rt.5.stage", "rt.5.route", "choose the API stage");
    assert_eq!(
        input_value(&answer.html, "rt.0.rate").as_deref(),
        Some("fast")
    );
    assert_eq!(
        input_value(&answer.html, "rt.1.route").as_deref(),
        Some("GET /a")
    );
    assert_eq!(input_value(&answer.html, "rt.4.rate").as_deref(), Some("2"));
    answer
        .expect_text("name=\"rt.rows\" value=\"6\"")
        .expect_text(&format!("<option value=\"{unticked}\" selected>"));

    // Checked by the admin API: a route key it cannot parse, placed next to its row.
    let bad_key = with_rows(
        gold_covering(&stage),
        &[
            (&stage, "GET /ok", "1", "1"),
            (&stage, "FETCH pets", "1", "1"),
        ],
    );
    let answer = dash.post(&page, &borrowed(&bad_key)).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.html
    );
    error_next_to(&answer, "rt.1.route", "rt.1.rate", "FETCH pets");
    assert_eq!(
        input_value(&answer.html, "rt.1.route").as_deref(),
        Some("FETCH pets")
    );
    assert_eq!(
        route_throttles_of(&admin, &plan).await,
        json!({"GET /hello": {"rate": 1.0, "burst": 1}}),
        "nothing was saved"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn keys_are_attached_and_detached_and_a_plan_in_use_is_not_deleted(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let admin = cp.admin();
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let plan = create_plan(&admin, "gold", json!([])).await;
    let key = create_key(&admin, "partner").await;
    let page = format!("/plans/{plan}");
    dash.get(&page)
        .await
        .expect_text("No key is attached")
        .expect_text(&format!("<option value=\"{key}\">partner"));

    let attached = dash
        .post(&format!("{page}/keys"), &[("key_id", &key)])
        .await;
    assert_eq!(redirected_to(&attached), page);
    assert_eq!(plan_keys(&admin, &plan).await, std::slice::from_ref(&key));
    dash.get(&page)
        .await
        .expect_text(&format!("href=\"/keys/{key}\""))
        .expect_text("Every key is attached already");

    let refused = dash.post(&format!("{page}/delete"), &[]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    refused
        .expect_text("The plan was not deleted")
        .expect_text("detach them first");
    plan_of(&admin, &plan).await;

    let detached = dash.post(&format!("{page}/keys/{key}/detach"), &[]).await;
    assert_eq!(redirected_to(&detached), page);
    assert!(plan_keys(&admin, &plan).await.is_empty());

    let deleted = dash.post(&format!("{page}/delete"), &[]).await;
    assert_eq!(redirected_to(&deleted), "/plans");
    let (status, _) = admin.get(&format!("/usage-plans/{plan}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_key_already_covered_on_a_stage_is_refused_next_to_the_key_choice(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let admin = cp.admin();
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let api = api_with_stage(&admin, "pets").await;
    let stages = json!([{"api_id": api, "stage": "prod"}]);
    let gold = create_plan(&admin, "gold", stages.clone()).await;
    let silver = create_plan(&admin, "silver", stages).await;
    let key = create_key(&admin, "partner").await;
    admin
        .create(
            &format!("/usage-plans/{gold}/keys"),
            json!({ "key_id": key }),
        )
        .await;

    let refused = dash
        .post(&format!("/plans/{silver}/keys"), &[("key_id", &key)])
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let attach = between(&refused.html, "id=\"attach\"", "</section>").expect("attach form");
    assert!(
        attach.contains("field-error") && attach.contains("one plan per API stage"),
        "{attach}"
    );
    assert!(plan_keys(&admin, &silver).await.is_empty());
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_viewer_sees_no_forms_and_every_form_refuses_them(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let admin = cp.admin();
    let plan = create_plan(&admin, "gold", json!([])).await;
    let key = create_key(&admin, "partner").await;
    admin
        .create(
            &format!("/usage-plans/{plan}/keys"),
            json!({ "key_id": key }),
        )
        .await;
    let viewer = Dashboard::sign_in_new(&cp, "vic", Role::Viewer).await;

    for path in [
        "/keys".to_owned(),
        format!("/keys/{key}"),
        "/plans".to_owned(),
        format!("/plans/{plan}"),
    ] {
        let page = viewer.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        // The only form is the layout's sign-out.
        assert_eq!(
            page.html.matches("<form").count(),
            1,
            "{path}:\n{}",
            page.html
        );
        assert!(
            !page.html.contains("New plan") && !page.html.contains("New key"),
            "{path}"
        );
        assert!(!page.html.contains("#rename"), "{path}");
    }
    assert_eq!(viewer.get("/plans/new").await.status, StatusCode::FORBIDDEN);

    let plan_fields = plan_form("hacked", ("1", "1"), ("", ""));
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/keys".into(), vec![("name", "sneaky")]),
        (
            "/keys".into(),
            vec![("name", "sneaky"), ("value", "abcdefghijklmnopqrstuvwxyz")],
        ),
        (format!("/keys/{key}/rename"), vec![("name", "renamed")]),
        (format!("/keys/{key}/disable"), vec![]),
        (format!("/keys/{key}/enable"), vec![]),
        (format!("/keys/{key}/delete"), vec![]),
        ("/plans/new".into(), plan_fields.clone()),
        (format!("/plans/{plan}"), plan_fields),
        (
            format!("/plans/{plan}"),
            vec![
                ("name", "gold"),
                ("rt.rows", "1"),
                ("rt.0.route", "GET /a"),
                ("rt.0.rate", "1"),
                ("rt.0.burst", "1"),
            ],
        ),
        (format!("/plans/{plan}/keys"), vec![("key_id", &key)]),
        (format!("/plans/{plan}/keys/{key}/detach"), vec![]),
        (format!("/plans/{plan}/delete"), vec![]),
    ];
    for (path, fields) in &posts {
        let answer = viewer.post(path, fields).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}");
        answer.expect_text("Read-only access");
    }
    assert_eq!(row_count(&cp.pool, "api_keys").await, 1);
    assert_eq!(key_of(&admin, &key).await["enabled"], true);
    assert_eq!(key_of(&admin, &key).await["name"], "partner");
    assert_eq!(plan_of(&admin, &plan).await["name"], "gold");
    assert_eq!(plan_keys(&admin, &plan).await, [key]);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn forms_without_this_sessions_csrf_token_are_refused(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let admin = cp.admin();
    let plan = create_plan(&admin, "gold", json!([])).await;
    let key = create_key(&admin, "partner").await;
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;

    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/keys".into(), vec![("name", "sneaky")]),
        (
            "/keys".into(),
            vec![("name", "sneaky"), ("value", "abcdefghijklmnopqrstuvwxyz")],
        ),
        (format!("/keys/{key}/rename"), vec![("name", "renamed")]),
        (
            format!("/keys/{key}/rename"),
            vec![("csrf", "forged"), ("name", "renamed")],
        ),
        (format!("/keys/{key}/disable"), vec![("csrf", "forged")]),
        (format!("/keys/{key}/enable"), vec![]),
        (format!("/keys/{key}/delete"), vec![]),
        ("/plans/new".into(), vec![("name", "sneaky")]),
        (format!("/plans/{plan}"), vec![("name", "hacked")]),
        (
            format!("/plans/{plan}"),
            vec![("name", "gold"), ("rt.rows", "1"), ("rt.0.remove", "on")],
        ),
        (format!("/plans/{plan}/keys"), vec![("key_id", &key)]),
        (format!("/plans/{plan}/keys/{key}/detach"), vec![]),
        (format!("/plans/{plan}/delete"), vec![]),
    ];
    for (path, fields) in &posts {
        let answer = dash.post_raw(path, fields).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}");
        answer.expect_text("This form has expired");
    }
    assert_eq!(row_count(&cp.pool, "api_keys").await, 1);
    assert_eq!(row_count(&cp.pool, "usage_plans").await, 1);
    assert_eq!(key_of(&admin, &key).await["enabled"], true);
    assert_eq!(key_of(&admin, &key).await["name"], "partner");
    assert_eq!(plan_of(&admin, &plan).await["name"], "gold");
    assert!(plan_keys(&admin, &plan).await.is_empty());
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn unknown_or_malformed_ids_get_the_not_found_page(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let admin = cp.admin();
    let plan = create_plan(&admin, "gold", json!([])).await;
    let dash = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;

    for path in [
        format!("/keys/{UNKNOWN}"),
        "/keys/not-an-id".to_owned(),
        format!("/plans/{UNKNOWN}"),
        "/plans/not-an-id".to_owned(),
    ] {
        let page = dash.get(&path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        page.expect_text("Not found");
    }
    let plan_fields = plan_form("gold", ("", ""), ("", ""));
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (format!("/keys/{UNKNOWN}/disable"), vec![]),
        (format!("/keys/{UNKNOWN}/rename"), vec![("name", "renamed")]),
        ("/keys/not-an-id/rename".into(), vec![("name", "renamed")]),
        ("/keys/not-an-id/enable".into(), vec![]),
        (format!("/keys/{UNKNOWN}/delete"), vec![]),
        (format!("/plans/{UNKNOWN}"), plan_fields),
        (format!("/plans/{UNKNOWN}/keys"), vec![("key_id", UNKNOWN)]),
        (format!("/plans/{plan}/keys/{UNKNOWN}/detach"), vec![]),
        ("/plans/not-an-id/delete".into(), vec![]),
        (format!("/plans/{UNKNOWN}/delete"), vec![]),
    ];
    for (path, fields) in &posts {
        let answer = dash.post(path, fields).await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            answer.html
        );
        answer.expect_text("Not found");
    }
    assert_eq!(plan_of(&admin, &plan).await["name"], "gold");
}
