//! Securing an API from the dashboard, in a real browser: headless Chromium adds a JWT
//! authorizer (and is shown the field at fault for an issuer the gateway may not call),
//! gives a route JWT authorization with scopes and a parameter mapping, turns CORS on,
//! then saves the route, the authorizer and the API unchanged; the admin API must report
//! exactly what it did before. Deleting an authorizer a route uses shows the admin API's
//! refusal, and nothing is deleted. Tokens pasted into a JWT authorizer's test, against a
//! real issuer, get the proxy's verdict (valid with the claims, or the check that
//! failed), and the page never shows the token back.

use std::time::Instant;

use anyhow::{ensure, Context};
use gatehouse_control_plane::dashboard::accounts;
use gatehouse_control_plane::repo::users::Role;
use gatehouse_model::jwt::Refusal;
use gatehouse_tests::browser::Browser;
use gatehouse_tests::identity::{Issuer, JwksMode, SigningKey};
use gatehouse_tests::serial::heavy;
use gatehouse_tests::{http_proxy, id_of, Admin, ControlPlane};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

use super::browser::{screenshots, Dashboard};

const MIGRATOR: &sqlx::migrate::Migrator = &gatehouse_control_plane::MIGRATOR;

const PASSWORD: &str = "correct horse battery staple";

/// Makes the page's `data-confirm` questions answer yes, as a user clicking OK would.
const CONFIRM_YES: &str = "window.confirm = () => true;";

/// Starts Chromium on `cp`'s dashboard, signed in as a new admin.
async fn signed_in(cp: &ControlPlane) -> anyhow::Result<Dashboard> {
    accounts::create(&cp.pool, "ada", PASSWORD, Role::Admin, false)
        .await
        .context("creating the admin")?;
    let ui = Dashboard {
        browser: Browser::start(screenshots()).await?,
        base: cp.url(),
        shots: Vec::new(),
        overflowing: Vec::new(),
    };
    ui.open("/signin").await?;
    ui.browser.fill("input[name=name]", "ada").await?;
    ui.browser.fill("input[name=password]", PASSWORD).await?;
    ui.submit(
        "form[action='/signin'] button[type=submit]",
        "the overview",
        |p| p == "/",
    )
    .await?;
    Ok(ui)
}

/// `GET path` of the admin API, which must answer 200.
async fn read(admin: &Admin, path: &str) -> anyhow::Result<Value> {
    let (status, body) = admin.get(path).await;
    ensure!(status == StatusCode::OK, "GET {path}: {status} {body}");
    Ok(body)
}

/// `value` without the fields a save changes even when nothing else does.
fn content(mut value: Value) -> Value {
    if let Some(object) = value.as_object_mut() {
        object.remove("updated_at");
    }
    value
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_admin_secures_a_route_in_a_real_browser_and_saving_it_unchanged_keeps_every_setting(
    pool: PgPool,
) -> anyhow::Result<()> {
    let _heavy = heavy().await;
    let started = Instant::now();
    let lap = |what: &str| eprintln!("{:>8.2?}  {what}", started.elapsed());
    let cp = ControlPlane::start(pool).await;
    let admin = cp.admin();
    let api = admin.create_api("pets").await;
    let route = admin
        .add_route(
            &api,
            "GET /pets/{id}",
            http_proxy("http://127.0.0.1:9/pets/{id}"),
        )
        .await;
    let mut ui = signed_in(&cp).await?;
    lap("control plane and Chromium started, signed in");

    // 1. A JWT authorizer, through its form.
    let api_path = format!("/apis/{api}");
    let new_authorizer = format!("{api_path}/authorizers/new");
    ui.open(&api_path).await?;
    ui.browser
        .click(&format!("a[href='{new_authorizer}']"))
        .await?;
    ui.wait_for_path("the new authorizer form", |p| p == new_authorizer)
        .await?;
    let identity = ui.attr("input[name=jwt_identity_source]", "value").await?;
    ensure!(
        identity == "$request.header.Authorization",
        "the identity source's default: {identity:?}"
    );
    ui.browser.fill("input[name=name]", "idp").await?;
    ui.browser
        .fill(
            "input[name='jwt_configuration.issuer']",
            "https://idp.example.com/",
        )
        .await?;
    ui.browser
        .fill(
            "textarea[name='jwt_configuration.audience']",
            "pets-api\nmobile",
        )
        .await?;
    ui.shot("authorizer-new").await?;
    ui.submit(
        "form[action$='/authorizers/new'] button[type=submit]",
        "the API's page",
        |p| p == api_path,
    )
    .await?;
    let listed = ui.browser.text_of("#authorizers table").await?;
    ensure!(
        listed.contains("idp")
            && listed.contains("JWT")
            && listed.contains("https://idp.example.com")
            && listed.contains("$request.header.authorization"),
        "authorizers table: {listed}"
    );
    let authorizers = read(&admin, &format!("/apis/{api}/authorizers")).await?;
    let authorizer = id_of(&authorizers["items"][0]);
    ensure!(
        authorizers["items"][0]["jwt_configuration"]
            == json!({"issuer": "https://idp.example.com", "audience": ["pets-api", "mobile"]}),
        "stored: {authorizers}"
    );
    lap("JWT authorizer added");

    // 2. An issuer the gateway may not call is shown next to its field, as typed.
    ui.open(&new_authorizer).await?;
    ui.browser.fill("input[name=name]", "plain").await?;
    ui.browser
        .fill(
            "input[name='jwt_configuration.issuer']",
            "http://idp.example.com",
        )
        .await?;
    ui.browser
        .fill("textarea[name='jwt_configuration.audience']", "pets-api")
        .await?;
    ui.submit(
        "form[action$='/authorizers/new'] button[type=submit]",
        "the form again",
        |p| p == new_authorizer,
    )
    .await?;
    let invalid = ui
        .attr("input[name='jwt_configuration.issuer']", "aria-invalid")
        .await?;
    ensure!(invalid == "true", "the issuer is not marked: {invalid:?}");
    let error = ui
        .browser
        .text_of("input[name='jwt_configuration.issuer'] ~ .field-error")
        .await?;
    ensure!(error.contains("https://"), "the issuer's error: {error:?}");
    let kept = ui
        .attr("input[name='jwt_configuration.issuer']", "value")
        .await?;
    ensure!(
        kept == "http://idp.example.com",
        "typed issuer lost: {kept:?}"
    );
    ui.shot("authorizer-bad-issuer").await?;
    let count = read(&admin, &format!("/apis/{api}/authorizers")).await?;
    ensure!(
        count["items"].as_array().map(Vec::len) == Some(1),
        "a refused authorizer was stored: {count}"
    );
    lap("bad issuer refused by field");

    // 3. The route: JWT with scopes, a request rule and a response rule.
    let route_path = format!("/apis/{api}/routes/{route}");
    ui.open(&route_path).await?;
    ui.select("select[name=authorization_type]", "JWT").await?;
    ui.select("select[name=authorizer_id]", &authorizer).await?;
    ui.browser
        .fill("input[name=authorization_scopes]", "read:pets write:pets")
        .await?;
    ui.browser
        .fill(
            "textarea[name='integration.request_parameters']",
            "overwrite:header.x-user-id = $context.authorizer.claims.sub",
        )
        .await?;
    ui.browser
        .fill(
            "textarea[name='integration.response_parameters']",
            "404 overwrite:statuscode = 200",
        )
        .await?;
    ui.shot("route-secured").await?;
    ui.submit(
        &format!("form[action='{route_path}'] button[type=submit]"),
        "the API's page",
        |p| p == api_path,
    )
    .await?;
    let routes = ui.browser.text_of("table.table tbody").await?;
    ensure!(
        routes.contains("JWT idp (read:pets write:pets)"),
        "routes table: {routes}"
    );
    let secured = content(read(&admin, &format!("/apis/{api}/routes/{route}")).await?);
    ensure!(
        secured["authorization_type"] == json!("JWT")
            && secured["authorizer_id"] == json!(authorizer)
            && secured["authorization_scopes"] == json!(["read:pets", "write:pets"])
            && secured["integration"]["request_parameters"]
                == json!({"overwrite:header.x-user-id": "$context.authorizer.claims.sub"})
            && secured["integration"]["response_parameters"]
                == json!({"404": {"overwrite:statuscode": "200"}}),
        "route as stored: {secured}"
    );
    lap("route secured and mapped");

    // 4. CORS, on the API's page.
    ui.browser
        .fill(
            "textarea[name='cors_configuration.allow_origins']",
            "https://app.example.com\nhttp://localhost:3000",
        )
        .await?;
    ui.browser
        .fill(
            "textarea[name='cors_configuration.allow_methods']",
            "GET, POST",
        )
        .await?;
    ui.browser
        .fill(
            "textarea[name='cors_configuration.allow_headers']",
            "Authorization",
        )
        .await?;
    ui.browser
        .fill("input[name='cors_configuration.max_age']", "600")
        .await?;
    ui.browser
        .click("input[name='cors_configuration.allow_credentials']")
        .await?;
    ui.submit(
        "form[action$='/cors'] button[type=submit]",
        "the API's page",
        |p| p == api_path,
    )
    .await?;
    let with_cors = content(read(&admin, &api_path).await?);
    ensure!(
        with_cors["cors_configuration"]
            == json!({"allow_origins": ["https://app.example.com", "http://localhost:3000"],
                      "allow_methods": ["GET", "POST"], "allow_headers": ["authorization"],
                      "expose_headers": [], "max_age": 600, "allow_credentials": true}),
        "API as stored: {with_cors}"
    );
    ui.shot("api-secured").await?;
    lap("CORS on");

    // 5. Saving each form unchanged changes nothing.
    let authorizer_path = format!("/apis/{api}/authorizers/{authorizer}");
    let stored_authorizer = content(read(&admin, &authorizer_path).await?);
    ui.open(&authorizer_path).await?;
    ui.submit(
        &format!("form[action='{authorizer_path}'] button[type=submit]"),
        "the API's page",
        |p| p == api_path,
    )
    .await?;
    ui.open(&route_path).await?;
    ui.submit(
        &format!("form[action='{route_path}'] button[type=submit]"),
        "the API's page",
        |p| p == api_path,
    )
    .await?;
    ui.submit(
        "form[action$='/cors'] button[type=submit]",
        "the API's page",
        |p| p == api_path,
    )
    .await?;
    let edit = format!("{api_path}/edit");
    ui.open(&edit).await?;
    ui.submit(
        &format!("form[action='{edit}'] button[type=submit]"),
        "the API's page",
        |p| p == api_path,
    )
    .await?;
    let route_after = content(read(&admin, &format!("/apis/{api}/routes/{route}")).await?);
    ensure!(
        route_after == secured,
        "the route changed:\nbefore {secured}\nafter  {route_after}"
    );
    let authorizer_after = content(read(&admin, &authorizer_path).await?);
    ensure!(
        authorizer_after == stored_authorizer,
        "the authorizer changed:\nbefore {stored_authorizer}\nafter  {authorizer_after}"
    );
    let api_after = content(read(&admin, &api_path).await?);
    ensure!(
        api_after == with_cors,
        "the API changed:\nbefore {with_cors}\nafter  {api_after}"
    );
    lap("saved unchanged, nothing lost");

    // 6. Removing CORS.
    ui.browser.execute(CONFIRM_YES, vec![]).await?;
    ui.submit(
        "form[action$='/cors/delete'] button[type=submit]",
        "the API's page",
        |p| p == api_path,
    )
    .await?;
    let without = read(&admin, &api_path).await?;
    ensure!(
        without["cors_configuration"].is_null(),
        "CORS still set: {without}"
    );
    ui.browser.close().await?;
    Ok(())
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn deleting_an_authorizer_a_route_uses_shows_why_not_in_a_real_browser(
    pool: PgPool,
) -> anyhow::Result<()> {
    let _heavy = heavy().await;
    let cp = ControlPlane::start(pool).await;
    let admin = cp.admin();
    let api = admin.create_api("pets").await;
    let authorizer = id_of(
        &admin
            .create(
                &format!("/apis/{api}/authorizers"),
                json!({"name": "gate", "authorizer_type": "REQUEST",
                       "identity_source": ["$request.header.x-token"],
                       "authorizer_uri": "http://127.0.0.1:9/check"}),
            )
            .await,
    );
    let route = id_of(
        &admin
            .create(
                &format!("/apis/{api}/routes"),
                json!({"route_key": "GET /pets", "authorization_type": "CUSTOM",
                       "authorizer_id": authorizer,
                       "integration": http_proxy("http://127.0.0.1:9/pets")}),
            )
            .await,
    );
    let ui = signed_in(&cp).await?;

    let authorizer_path = format!("/apis/{api}/authorizers/{authorizer}");
    let delete = format!("{authorizer_path}/delete");
    ui.open(&authorizer_path).await?;
    ui.browser.execute(CONFIRM_YES, vec![]).await?;
    ui.submit(
        &format!("form[action='{delete}'] button[type=submit]"),
        "the authorizer's page again",
        |p| p == delete,
    )
    .await?;
    let refusal = ui.browser.text_of("p.alert").await?;
    ensure!(
        refusal.contains("not deleted")
            && refusal.contains("routes use this authorizer: GET /pets"),
        "refusal: {refusal:?}"
    );
    let (status, _) = admin.get(&authorizer_path).await;
    ensure!(status == StatusCode::OK, "the authorizer is gone: {status}");

    // Once no route uses it, the same button deletes it.
    let (status, body) = admin
        .patch(
            &format!("/apis/{api}/routes/{route}"),
            json!({"authorization_type": "NONE"}),
        )
        .await;
    ensure!(status == StatusCode::OK, "{body}");
    ui.open(&authorizer_path).await?;
    ui.browser.execute(CONFIRM_YES, vec![]).await?;
    ui.submit(
        &format!("form[action='{delete}'] button[type=submit]"),
        "the API's page",
        |p| p == format!("/apis/{api}"),
    )
    .await?;
    let (status, _) = admin.get(&authorizer_path).await;
    ensure!(status == StatusCode::NOT_FOUND, "not deleted: {status}");
    ui.browser.close().await?;
    Ok(())
}

/// Pastes `token` (and `scopes`) into the authorizer's test at `path`; returns the
/// verdict's text, after checking the page's source does not hold the token.
async fn test_token(
    ui: &Dashboard,
    path: &str,
    token: &str,
    scopes: &str,
) -> anyhow::Result<String> {
    ui.open(path).await?;
    ui.browser.fill("textarea[name=token]", token).await?;
    ui.browser.fill("input[name=scopes]", scopes).await?;
    let test = format!("{path}/test");
    ui.submit(
        &format!("form[action='{test}'] button[type=submit]"),
        "the authorizer's page with the verdict",
        |p| p == test,
    )
    .await?;
    let verdict = ui.browser.text_of(".token-verdict").await?;
    let source = ui.browser.client().source().await?;
    let raw = token.trim_start_matches("Bearer ");
    let payload = raw.split('.').nth(1).unwrap_or(raw);
    ensure!(
        !source.contains(raw) && !source.contains(payload),
        "the page shows the token back"
    );
    let kept = ui.browser.text_of("textarea[name=token]").await?;
    ensure!(
        kept.is_empty(),
        "the token field was filled again: {kept:?}"
    );
    Ok(verdict)
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_pasted_token_is_tested_against_the_real_issuer_and_the_failed_check_is_named(
    pool: PgPool,
) -> anyhow::Result<()> {
    let _heavy = heavy().await;
    let issuer = Issuer::start().await;
    let key = SigningKey::es256("k1");
    issuer.publish(vec![key.jwk.clone()]);
    let cp = ControlPlane::start(pool).await;
    let admin = cp.admin();
    let api = admin.create_api("pets").await;
    let authorizer = id_of(
        &admin
            .create(
                &format!("/apis/{api}/authorizers"),
                json!({"name": "idp", "authorizer_type": "JWT",
                       "jwt_configuration": {"issuer": issuer.url, "audience": ["pets-api"]}}),
            )
            .await,
    );
    let mut ui = signed_in(&cp).await?;
    let path = format!("/apis/{api}/authorizers/{authorizer}");

    // A good token: valid, with its claims; the scope asked for is granted.
    let good = key.sign(&issuer.claims(
        "pets-api",
        json!({"sub": "alice<b>", "scope": "read:pets write:pets"}),
    ));
    let verdict = test_token(&ui, &path, &format!("Bearer {good}"), "read:pets").await?;
    ensure!(
        verdict.contains("valid")
            && !verdict.contains("refused")
            && verdict.contains("alice<b>")
            && verdict.contains(&issuer.url)
            && verdict.contains("pets-api")
            && verdict.contains("UTC")
            && verdict.contains("read:pets write:pets"),
        "good token: {verdict}"
    );
    let source = ui.browser.client().source().await?;
    ensure!(
        source.contains("alice&lt;b&gt;") || source.contains("alice&#60;b&#62;"),
        "the sub is not escaped in the source"
    );
    let scopes = ui.attr("input[name=scopes]", "value").await?;
    ensure!(scopes == "read:pets", "the scopes asked for: {scopes:?}");
    ui.shot("authorizer-test-valid").await?;
    ensure!(
        issuer.discovery_fetches() >= 1 && issuer.jwks_fetches() >= 1,
        "the keys were not fetched through discovery"
    );

    // The same token without the scope asked for: refused for its scopes, claims shown.
    let verdict = test_token(&ui, &path, &good, "admin").await?;
    ensure!(
        verdict.contains(Refusal::Scope.explain()) && verdict.contains("alice<b>"),
        "scope: {verdict}"
    );

    // Expired an hour ago.
    let now = chrono::Utc::now().timestamp();
    let expired =
        key.sign(&issuer.claims("pets-api", json!({"iat": now - 7200, "exp": now - 3600})));
    let verdict = test_token(&ui, &path, &expired, "").await?;
    ensure!(
        verdict.contains("refused")
            && verdict.contains(Refusal::Expired.as_str())
            && verdict.contains(Refusal::Expired.explain()),
        "expired: {verdict}"
    );
    ui.shot("authorizer-test-expired").await?;

    // Signed by another key that claims the same kid.
    let impostor = SigningKey::es256("k1");
    let forged = impostor.sign(&issuer.claims("pets-api", json!({})));
    let verdict = test_token(&ui, &path, &forged, "").await?;
    ensure!(
        verdict.contains(Refusal::BadSignature.as_str())
            && verdict.contains(Refusal::BadSignature.explain()),
        "bad signature: {verdict}"
    );

    // Keys the issuer fails to serve: said with the URL, not an error page.
    issuer.set_mode(JwksMode::Fail);
    let verdict = test_token(&ui, &path, &good, "").await?;
    ensure!(
        verdict.contains("could not be fetched")
            && verdict.contains(&format!("{}/jwks", issuer.url))
            && verdict.contains("500"),
        "keys unavailable: {verdict}"
    );
    ui.shot("authorizer-test-no-keys").await?;
    ui.browser.close().await?;
    Ok(())
}
