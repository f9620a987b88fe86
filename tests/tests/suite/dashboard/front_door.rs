//! The dashboard's front door, over a real socket: the one-time setup, signing in and out,
//! throttling, sessions, CSRF, security headers, friendly 404s, and the overview, proxies
//! and audit pages.

use gatehouse_control_plane::repo::users::Role;
use gatehouse_control_plane::MIGRATOR;
use gatehouse_tests::dashboard::{http, input_value, set_cookie, Dashboard, PASSWORD};
use gatehouse_tests::serial::heavy;
use std::time::Duration;

use gatehouse_tests::{eventually, ControlPlane, ADMIN_TOKEN};
use reqwest::header::COOKIE;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

async fn user_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(pool)
        .await
        .expect("count")
}

/// Posts the setup form with the browser's form cookie.
async fn post_setup(
    cp: &ControlPlane,
    fields: &[(&str, &str)],
) -> (StatusCode, String, Option<String>) {
    let client = http();
    let form = client
        .get(format!("{}/setup", cp.url()))
        .send()
        .await
        .expect("setup page");
    let cookie = set_cookie(form.headers(), "gatehouse_form");
    let html = form.text().await.expect("html");
    let csrf = input_value(&html, "csrf").unwrap_or_default();
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    let mut request = client.post(format!("{}/setup", cp.url())).form(&all);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    let answer = request.send().await.expect("answer");
    let status = answer.status();
    let session = set_cookie(answer.headers(), "gatehouse_session");
    (status, answer.text().await.expect("html"), session)
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_fresh_install_sends_visitors_to_setup_which_takes_the_admin_token_once(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let visitor = Dashboard::anonymous(&cp);
    let home = visitor.get("/apis?range=day").await;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
    assert_eq!(
        home.location.as_deref(),
        Some("/signin?next=/apis%3Frange%3Dday")
    );
    let signin = visitor.get("/signin").await;
    assert_eq!(signin.location.as_deref(), Some("/setup"));

    let wrong_token = [
        ("admin_token", "not the token"),
        ("name", "ada"),
        ("password", PASSWORD),
        ("confirm", PASSWORD),
    ];
    let (status, html, session) = post_setup(&cp, &wrong_token).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("not this control plane"), "{html}");
    assert!(html.contains("value=\"ada\""), "the name is kept: {html}");
    assert_eq!(session, None);

    let short = [
        ("admin_token", ADMIN_TOKEN),
        ("name", "ada"),
        ("password", "short"),
        ("confirm", "short"),
    ];
    let (status, html, _) = post_setup(&cp, &short).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("at least 10 characters"), "{html}");
    assert_eq!(user_count(&pool).await, 0);

    let good = [
        ("admin_token", ADMIN_TOKEN),
        ("name", "ada"),
        ("password", PASSWORD),
        ("confirm", PASSWORD),
    ];
    let (status, _, session) = post_setup(&cp, &good).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let session = session.expect("signed in after setup");
    let overview = http()
        .get(format!("{}/", cp.url()))
        .header(COOKIE, &session)
        .send()
        .await
        .expect("overview");
    assert_eq!(overview.status(), StatusCode::OK);
    assert!(overview.text().await.expect("html").contains("ada"));

    // Setup is over: the page and the form are gone for everyone.
    let (status, html, session) = post_setup(
        &cp,
        &[
            ("admin_token", ADMIN_TOKEN),
            ("name", "eve"),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Setup is done"), "{html}");
    assert_eq!(session, None);
    assert_eq!(user_count(&pool).await, 1);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn sign_in_takes_the_right_password_only_and_locks_a_name_after_five_failures(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let ada = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    assert!(!ada.csrf.is_empty());
    let mut eve = Dashboard::anonymous(&cp);
    for _ in 0..5 {
        let answer = eve.sign_in("ada", "wrong password!").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        answer
            .expect_text("Wrong user name or password")
            .expect_text("value=\"ada\"");
    }
    // Locked: even the right password is not checked until the window passes.
    let answer = eve.sign_in("ada", PASSWORD).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    answer.expect_text("Too many failed sign-ins");
    // Unknown names answer exactly like wrong passwords.
    let answer = eve.sign_in("nobody", PASSWORD).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    answer.expect_text("Wrong user name or password");
    // Other users are not locked out by ada's failures; names are case-insensitive.
    gatehouse_control_plane::dashboard::accounts::create(
        &pool,
        "Grace",
        PASSWORD,
        Role::Viewer,
        false,
    )
    .await
    .expect("grace");
    let mut grace = Dashboard::anonymous(&cp);
    assert_eq!(
        grace.sign_in("grace", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn one_address_is_locked_after_twenty_failures_whatever_the_names(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    gatehouse_control_plane::dashboard::accounts::create(
        &pool,
        "ada",
        PASSWORD,
        Role::Admin,
        false,
    )
    .await
    .expect("ada");
    let mut guesser = Dashboard::anonymous(&cp);
    for i in 0..20 {
        let answer = guesser
            .sign_in(&format!("user{i}"), "guess guess guess")
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    let answer = guesser.sign_in("ada", PASSWORD).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn signing_out_ends_the_session_on_the_server_and_needs_the_csrf_token(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let ada = Dashboard::sign_in_new(&cp, "ada", Role::Viewer).await;
    let refused = ada.post_raw("/signout", &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    refused.expect_text("This form has expired");
    assert_eq!(ada.get("/").await.status, StatusCode::OK, "still signed in");

    let out = ada.post("/signout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location.as_deref(), Some("/signin"));
    // The same cookie, replayed, no longer opens anything.
    let replay = ada.get("/").await;
    assert_eq!(replay.status, StatusCode::SEE_OTHER);
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(sessions, 0);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_sign_in_form_from_another_site_is_refused(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    gatehouse_control_plane::dashboard::accounts::create(
        &pool,
        "ada",
        PASSWORD,
        Role::Admin,
        false,
    )
    .await
    .expect("ada");
    // No form cookie: the token in the form cannot be checked.
    let forged = http()
        .post(format!("{}/signin", cp.url()))
        .form(&[
            ("csrf", "0".repeat(64).as_str()),
            ("name", "ada"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("answer");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(set_cookie(forged.headers(), "gatehouse_session"), None);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn pages_carry_strict_security_headers_and_the_session_cookie_its_flags(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    gatehouse_control_plane::dashboard::accounts::create(
        &pool,
        "ada",
        PASSWORD,
        Role::Admin,
        false,
    )
    .await
    .expect("ada");
    let mut ada = Dashboard::anonymous(&cp);
    let answer = ada.sign_in("ada", PASSWORD).await;
    let cookie = answer
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("gatehouse_session="))
        .expect("session cookie")
        .to_owned();
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP here: {cookie}");
    let page = ada.get("/").await;
    let csp = page.headers["content-security-policy"]
        .to_str()
        .expect("ascii");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    assert_eq!(page.headers["cache-control"], "no-store");
    assert!(!page.html.contains("<script>") && !page.html.contains(" style=\""));
    for (asset, kind) in [
        ("/static/gatehouse.css", "text/css"),
        ("/static/dashboard.js", "text/javascript"),
        ("/static/favicon.svg", "image/svg+xml"),
    ] {
        let answer = ada.get(asset).await;
        assert_eq!(answer.status, StatusCode::OK, "{asset}");
        assert!(answer.headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with(kind));
    }
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn unknown_pages_get_a_friendly_404_with_a_way_back(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let anonymous = Dashboard::anonymous(&cp);
    let page = anonymous.get("/no/such/page").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    page.expect_text("Not found").expect_text("href=\"/\"");
    let ada = Dashboard::sign_in_new(&cp, "ada", Role::Viewer).await;
    let page = ada.get("/no/such/page").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    page.expect_text("Not found").expect_text("Sign out");
    // The admin API keeps its JSON errors.
    let api = http()
        .get(format!("{}/api/v1/nothing", cp.url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("answer");
    assert_eq!(api.status(), StatusCode::NOT_FOUND);
    assert!(api.text().await.expect("body").starts_with('{'));
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_overview_proxies_and_audit_pages_render_for_a_viewer(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let admin = cp.admin();
    let api = admin.create_api("pets").await;
    eventually(Duration::from_secs(5), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
            .fetch_one(&pool)
            .await
            .expect("count");
        (n > 0).then_some(())
    })
    .await
    .expect("the API's creation audited");
    let viewer = Dashboard::sign_in_new(&cp, "vera", Role::Viewer).await;
    for path in [
        "/",
        "/?range=hour",
        "/?range=week",
        "/?range=bogus",
        "/nodes",
        "/audit",
        "/audit?before=x",
    ] {
        let page = viewer.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.html);
        page.expect_text("vera");
        assert!(
            !page.html.contains("New API"),
            "{path}: a viewer sees no change buttons"
        );
    }
    viewer
        .get("/")
        .await
        .expect_text("No traffic in this period");
    viewer
        .get("/nodes")
        .await
        .expect_text("No proxy has polled yet");
    viewer
        .get("/audit")
        .await
        .expect_text("POST /apis")
        .expect_text("admin-token");
    for chart in [
        "/charts/requests?range=day",
        &format!("/charts/latency?api_id={api}&range=hour"),
    ] {
        let answer = viewer.get(chart).await;
        assert_eq!(answer.status, StatusCode::OK, "{chart}");
        assert_eq!(answer.headers["content-type"], "image/svg+xml");
        assert!(answer.html.contains("<svg"), "{chart}");
    }
    let bad = viewer.get("/charts/requests?api_id=nope").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let anonymous = Dashboard::anonymous(&cp).get("/charts/requests").await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_proxy_that_stopped_polling_stands_out_as_stale(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    sqlx::query(
        "INSERT INTO nodes (id, version, address, config_version, last_seen) VALUES \
         ('proxy-live', '1.2.3', '10.0.0.1:8000', (SELECT version FROM config_state), now()), \
         ('proxy-gone', '1.2.0', '10.0.0.2:8000', 1, now() - interval '1 hour')",
    )
    .execute(&pool)
    .await
    .expect("nodes");
    let viewer = Dashboard::sign_in_new(&cp, "vera", Role::Viewer).await;
    for path in ["/nodes", "/"] {
        let page = viewer.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        let row = |id: &str| {
            let at = page.html.find(id).expect(id);
            let start = page.html[..at].rfind("<tr").expect("row start");
            let end = at + page.html[at..].find("</tr>").expect("row end");
            page.html[start..end].to_owned()
        };
        let gone = row("proxy-gone");
        assert!(
            gone.contains("class=\"stale\"") && gone.contains(">stale<"),
            "{path}: {gone}"
        );
        assert!(
            gone.contains("10.0.0.2:8000") && gone.contains("1 h ago"),
            "{path}: {gone}"
        );
        let live = row("proxy-live");
        assert!(
            live.contains(">live<") && !live.contains("stale"),
            "{path}: {live}"
        );
    }
    viewer.get("/nodes").await.expect_text("1.2.3");
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn changes_from_the_admin_api_are_audited_with_secrets_hidden(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let admin = cp.admin();
    let (status, _) = admin
        .post(
            "/keys",
            json!({"name": "imported", "value": "imported-secret-value-1234567890"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = admin
        .post("/apis", json!({"name": "x", "slug": "BAD SLUG"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // The entry is written just after the answer.
    let rows: Vec<(String, String, String, Option<serde_json::Value>)> =
        eventually(Duration::from_secs(5), || async {
            let rows: Vec<(String, String, String, Option<serde_json::Value>)> =
                sqlx::query_as("SELECT actor, source, action, detail FROM audit_log ORDER BY id")
                    .fetch_all(&pool)
                    .await
                    .expect("audit");
            (!rows.is_empty()).then_some(rows)
        })
        .await
        .expect("an audit entry")
        .0;
    // The refused request (422) is never written, even later.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rows.len(), 1, "only the change that happened: {rows:?}");
    let (actor, source, action, detail) = &rows[0];
    assert_eq!(
        (actor.as_str(), source.as_str(), action.as_str()),
        ("admin-token", "api", "POST /keys")
    );
    let detail = detail.as_ref().expect("detail").to_string();
    assert!(
        detail.contains("imported") && !detail.contains("imported-secret-value"),
        "{detail}"
    );
    let ada = Dashboard::sign_in_new(&cp, "ada", Role::Admin).await;
    let page = ada.get("/audit").await;
    assert!(!page.html.contains("imported-secret-value"));
    page.expect_text("signed in");
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn guesses_sent_at_once_or_with_huge_names_are_all_counted(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    gatehouse_control_plane::dashboard::accounts::create(
        &pool,
        "ada",
        PASSWORD,
        Role::Admin,
        false,
    )
    .await
    .expect("ada");
    // Ten guesses at once: each is counted before its password is checked.
    let guesses = (0..10).map(|_| async {
        let mut guesser = Dashboard::anonymous(&cp);
        guesser.sign_in("ada", "a wrong guess").await.status
    });
    let statuses = futures_util::future::join_all(guesses).await;
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let mut ada = Dashboard::anonymous(&cp);
    assert_eq!(
        ada.sign_in("ada", PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A name far too long to be a user is refused and counted (as its first 64
    // characters), never an error.
    let huge = "x".repeat(20_000);
    let mut guesser = Dashboard::anonymous(&cp);
    for _ in 0..5 {
        let answer = guesser.sign_in(&huge, "guess guess").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    let answer = guesser.sign_in(&huge, "guess guess").await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    cp.stop().await;
}

/// Posts `path` with the form cookie and `csrf` field both set to `token`, as a page on
/// another port of this host, or a sibling subdomain, can plant them.
async fn post_planted(
    cp: &ControlPlane,
    path: &str,
    token: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, Option<String>) {
    let mut all = vec![("csrf", token)];
    all.extend_from_slice(fields);
    let answer = http()
        .post(format!("{}{path}", cp.url()))
        .header(COOKIE, format!("gatehouse_form={token}"))
        .form(&all)
        .send()
        .await
        .expect("answer");
    (
        answer.status(),
        set_cookie(answer.headers(), "gatehouse_session"),
    )
}

/// Login CSRF: a matching form cookie and field that this control plane never issued
/// (planted by anything that can write cookies for the host) sign nobody in, to the
/// attacker's account or any other; and no first admin is set up with one either.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_planted_form_cookie_and_field_pair_signs_nobody_in(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let now = chrono::Utc::now().timestamp();
    let planted = [
        "a".repeat(64),
        format!("{}.{now}.{}", "0".repeat(32), "0".repeat(64)),
    ];
    for token in &planted {
        let fields = [
            ("admin_token", ADMIN_TOKEN),
            ("name", "mallory"),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ];
        let (status, session) = post_planted(&cp, "/setup", token, &fields).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "setup with {token}");
        assert!(session.is_none());
    }
    assert_eq!(user_count(&pool).await, 0);

    // The attacker's own account, which the victim's browser would be signed in to.
    gatehouse_control_plane::dashboard::accounts::create(
        &pool,
        "mallory",
        PASSWORD,
        Role::Admin,
        false,
    )
    .await
    .expect("create user");
    for token in &planted {
        let fields = [("name", "mallory"), ("password", PASSWORD), ("next", "/")];
        let (status, session) = post_planted(&cp, "/signin", token, &fields).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "sign-in with {token}");
        assert!(session.is_none(), "a session was started with {token}");
    }
    // The form as served still works.
    let mut mallory = Dashboard::anonymous(&cp);
    let answer = mallory.sign_in("mallory", PASSWORD).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.html);
    cp.stop().await;
}

/// Replicas share the database, and with it the key that signs the sign-in form: a form
/// served by one replica signs in on another.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_sign_in_form_served_by_one_replica_works_on_another(pool: PgPool) {
    let first = ControlPlane::start(pool.clone()).await;
    let second = ControlPlane::start(pool.clone()).await;
    gatehouse_control_plane::dashboard::accounts::create(
        &pool,
        "ada",
        PASSWORD,
        Role::Admin,
        false,
    )
    .await
    .expect("create user");
    let form = http()
        .get(format!("{}/signin", first.url()))
        .send()
        .await
        .expect("form");
    let cookie = set_cookie(form.headers(), "gatehouse_form").expect("form cookie");
    let csrf = input_value(&form.text().await.expect("html"), "csrf").expect("csrf");
    let answer = http()
        .post(format!("{}/signin", second.url()))
        .header(COOKIE, cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("name", "ada"),
            ("password", PASSWORD),
            ("next", "/"),
        ])
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie(answer.headers(), "gatehouse_session").is_some());
    first.stop().await;
    second.stop().await;
}

/// Sign-in attempts prepared (form cookie and token fetched) and then posted all at once,
/// as a guesser would; the status of each.
async fn sign_ins_at_once(cp: &ControlPlane, attempts: &[(String, String)]) -> Vec<StatusCode> {
    let mut prepared = Vec::new();
    for (name, password) in attempts {
        let client = http();
        let form = client
            .get(format!("{}/signin", cp.url()))
            .send()
            .await
            .expect("sign-in page");
        let cookie = set_cookie(form.headers(), "gatehouse_form").expect("form cookie");
        let csrf = input_value(&form.text().await.expect("html"), "csrf").expect("csrf");
        let request = client
            .post(format!("{}/signin", cp.url()))
            .header(COOKIE, cookie)
            .form(&[
                ("csrf", csrf.as_str()),
                ("name", name),
                ("password", password),
                ("next", "/"),
            ]);
        prepared.push(request);
    }
    let sent = prepared
        .into_iter()
        .map(|request| async move { request.send().await.expect("answer").status() });
    futures_util::future::join_all(sent).await
}

/// Attempts whose password was checked: wrong (401) or right (a redirect).
fn checked(statuses: &[StatusCode]) -> usize {
    statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED || **s == StatusCode::SEE_OTHER)
        .count()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_burst_of_sign_ins_checks_no_more_passwords_than_the_limits(pool: PgPool) {
    let _heavy = heavy().await;
    use gatehouse_control_plane::dashboard::signin::{
        MAX_FAILURES_PER_ADDRESS, MAX_FAILURES_PER_USER,
    };
    let cp = ControlPlane::start(pool.clone()).await;
    gatehouse_control_plane::dashboard::accounts::create(
        &pool,
        "ada",
        PASSWORD,
        Role::Admin,
        false,
    )
    .await
    .expect("ada");
    // 60 guesses of ada's password at once, the right one among them.
    let attempts: Vec<(String, String)> = (0..60)
        .map(|i| {
            let password = if i == 30 {
                PASSWORD.to_owned()
            } else {
                format!("wrong guess {i}")
            };
            ("ada".to_owned(), password)
        })
        .collect();
    let on_ada = sign_ins_at_once(&cp, &attempts).await;
    // Then 60 guesses of other names, from the same address.
    let attempts: Vec<(String, String)> = (0..60)
        .map(|i| (format!("user{i}"), "a wrong guess".to_owned()))
        .collect();
    let on_others = sign_ins_at_once(&cp, &attempts).await;
    println!(
        "passwords checked: {} of 60 on one name, {} of 60 more from the same address",
        checked(&on_ada),
        checked(&on_others)
    );
    assert!(
        checked(&on_ada) <= MAX_FAILURES_PER_USER as usize,
        "{on_ada:?}"
    );
    assert!(
        checked(&on_ada) + checked(&on_others) <= MAX_FAILURES_PER_ADDRESS as usize,
        "{on_others:?}"
    );
    cp.stop().await;
}
