//! The dashboard end to end in a real browser: on a fresh install, headless Chromium sets
//! up the first admin, creates an API with its routes, deploys it, creates a key and a
//! usage plan, sees the traffic a real proxy reports on the overview, the stage and the
//! key's page, then signs out and in again with its password. Every main page is
//! screenshotted under `target/tmp/dashboard-screenshots/` for a human to look at; the
//! pages are also checked to refuse inline scripts and not to scroll sideways.

use std::ops::AsyncFnMut;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use gatehouse_tests::browser::Browser;
use gatehouse_tests::serial::heavy;
use gatehouse_tests::{
    client, config_version, start_proxy_tuned, wait_for_version, ControlPlane, Upstream,
    ADMIN_TOKEN,
};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &gatehouse_control_plane::MIGRATOR;

/// How long a form has to lead to its next page.
const NAVIGATION_LIMIT: Duration = Duration::from_secs(10);
/// How long the proxy has to report traffic until the dashboard shows it.
const TRAFFIC_LIMIT: Duration = Duration::from_secs(20);
/// Smaller PNGs than this are blank or broken.
const MIN_PNG_BYTES: usize = 5_000;

const PASSWORD: &str = "correct horse battery staple";

pub(super) fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots")
}

/// Appends an inline `<script>` to the page; returns whether it ran.
const RUN_INLINE_SCRIPT: &str = "
    const script = document.createElement('script');
    script.textContent = 'document.documentElement.dataset.inlineScriptRan = \"yes\"';
    document.head.appendChild(script);
    return document.documentElement.dataset.inlineScriptRan === 'yes';
";

/// The `.value` of the `.stat` whose `.label` is `arguments[0]`, or null.
const STAT_VALUE: &str = "
    for (const stat of document.querySelectorAll('.stat')) {
        const label = stat.querySelector('.label');
        if (label && label.textContent.trim() === arguments[0]) {
            return stat.querySelector('.value').textContent.trim();
        }
    }
    return null;
";

/// For each `img.chart`: its `naturalWidth` once loaded, 0 if it failed.
const CHART_WIDTHS: &str = "
    return Array.from(document.querySelectorAll('img.chart'))
        .map(img => img.complete ? img.naturalWidth : 0);
";

/// Fetches `arguments[0]` with the page's cookies; answers status, type and body.
const FETCH: &str = "
    const done = arguments[arguments.length - 1];
    fetch(arguments[0], {credentials: 'same-origin'})
        .then(r => r.text().then(body => done({
            status: r.status,
            type: r.headers.get('content-type'),
            body,
        })))
        .catch(e => done({error: String(e)}));
";

/// The window height that shows the whole page: its height plus the browser's own bars.
const FULL_HEIGHT: &str = "
    return document.documentElement.scrollHeight + window.outerHeight - window.innerHeight;
";
/// Screenshots of longer pages are cut here.
const MAX_SHOT_HEIGHT: u64 = 4000;

/// Marks the current document, to tell when the browser has left it.
const MARK_PAGE: &str = "document.documentElement.dataset.leaving = 'yes';";
const IS_MARKED: &str = "return document.documentElement.dataset.leaving === 'yes';";

/// How far the page scrolls sideways, in CSS pixels (0 when it fits the window).
const SIDEWAYS_OVERFLOW: &str = "
    return document.documentElement.scrollWidth - document.documentElement.clientWidth;
";

/// The browser on one control plane, with the screenshots taken so far; the other
/// browser tests drive it too.
pub(super) struct Dashboard {
    pub(super) browser: Browser,
    pub(super) base: String,
    pub(super) shots: Vec<(String, PathBuf)>,
    /// Pages that scroll sideways: (screenshot, pixels).
    pub(super) overflowing: Vec<(String, i64)>,
}

impl Dashboard {
    pub(super) async fn open(&self, path: &str) -> anyhow::Result<()> {
        self.browser.goto(&format!("{}{path}", self.base)).await
    }

    /// The current page's path (and query).
    pub(super) async fn path(&self) -> anyhow::Result<String> {
        let url = self
            .browser
            .client()
            .current_url()
            .await
            .context("reading the URL")?;
        Ok(match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        })
    }

    /// Waits until the page at a path `expected` accepts has loaded; returns the path.
    pub(super) async fn wait_for_path(
        &self,
        what: &str,
        expected: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let start = Instant::now();
        loop {
            let path = self.path().await?;
            let ready = self
                .browser
                .execute("return document.readyState", vec![])
                .await?;
            if expected(&path) && ready == json!("complete") {
                return Ok(path);
            }
            if start.elapsed() > NAVIGATION_LIMIT {
                let h1 = self.h1().await.unwrap_or_default();
                bail!("expected {what} within {NAVIGATION_LIMIT:?}, still on {path} ({h1:?})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the submit button `css`, then waits for the next page, at a path `expected`
    /// accepts (the same path as before, reloaded, will do).
    pub(super) async fn submit(
        &self,
        css: &str,
        what: &str,
        expected: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        self.browser.execute(MARK_PAGE, vec![]).await?;
        self.browser.click(css).await?;
        let start = Instant::now();
        loop {
            let marked = self.browser.execute(IS_MARKED, vec![]).await?;
            if marked == json!(false) {
                return self.wait_for_path(what, &expected).await;
            }
            if start.elapsed() > NAVIGATION_LIMIT {
                bail!("{css} did not lead to {what} within {NAVIGATION_LIMIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn h1(&self) -> anyhow::Result<String> {
        self.browser.text_of("h1").await
    }

    /// Waits for a `h1` containing `text`.
    pub(super) async fn expect_h1(&self, text: &str) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            let h1 = self.h1().await?;
            if h1.contains(text) {
                return Ok(());
            }
            if start.elapsed() > NAVIGATION_LIMIT {
                bail!(
                    "expected a heading with {text:?} on {}, got {h1:?}",
                    self.path().await?
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(super) async fn attr(&self, css: &str, name: &str) -> anyhow::Result<String> {
        self.browser
            .wait_for(css)
            .await?
            .attr(name)
            .await
            .with_context(|| format!("reading {name} of `{css}`"))?
            .with_context(|| format!("`{css}` has no {name}"))
    }

    pub(super) async fn select(&self, css: &str, value: &str) -> anyhow::Result<()> {
        self.browser
            .wait_for(css)
            .await?
            .select_by_value(value)
            .await
            .with_context(|| format!("choosing {value:?} in `{css}`"))
    }

    /// The figure of the stat labelled `label` on the current page.
    async fn stat(&self, label: &str) -> anyhow::Result<Option<String>> {
        let value = self.browser.execute(STAT_VALUE, vec![json!(label)]).await?;
        Ok(value.as_str().map(str::to_owned))
    }

    /// Reloads the page until `read` gives `Some`, for at most [`TRAFFIC_LIMIT`].
    async fn reload_until<T>(
        &self,
        what: &str,
        mut read: impl AsyncFnMut(&Dashboard) -> anyhow::Result<Option<T>>,
    ) -> anyhow::Result<(T, Duration)> {
        let start = Instant::now();
        loop {
            if let Some(value) = read(self).await? {
                return Ok((value, start.elapsed()));
            }
            if start.elapsed() > TRAFFIC_LIMIT {
                bail!(
                    "{what}: not shown within {TRAFFIC_LIMIT:?} on {}",
                    self.path().await?
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            self.browser
                .client()
                .refresh()
                .await
                .context("reloading the page")?;
        }
    }

    /// Fetches `url` from the page, with its session cookie; answers the body.
    async fn fetch(&self, url: &str) -> anyhow::Result<String> {
        let answer = self
            .browser
            .client()
            .execute_async(FETCH, vec![json!(url)])
            .await
            .with_context(|| format!("fetching {url} from the page"))?;
        ensure!(answer["status"] == json!(200), "{url}: {answer}");
        Ok(answer["body"].as_str().unwrap_or_default().to_owned())
    }

    /// Checks that both chart images of the page rendered; returns the first one's SVG.
    async fn charts(&self) -> anyhow::Result<String> {
        let widths = self.browser.execute(CHART_WIDTHS, vec![]).await?;
        let widths: Vec<u64> = serde_json::from_value(widths.clone())
            .with_context(|| format!("chart widths {widths}"))?;
        ensure!(
            widths.len() == 2 && widths.iter().all(|w| *w > 0),
            "chart images of {} did not all render: natural widths {widths:?}",
            self.path().await?
        );
        let src = self.attr("img.chart", "src").await?;
        let svg = self.fetch(&src).await?;
        ensure!(svg.contains("<svg"), "{src} is no SVG: {svg:.200}");
        Ok(svg)
    }

    /// Saves a screenshot of the whole page (the window grown to its height for the
    /// moment), checks it is a real PNG, and measures whether the page scrolls sideways.
    pub(super) async fn shot(&mut self, name: &str) -> anyhow::Result<()> {
        let overflow = self.browser.execute(SIDEWAYS_OVERFLOW, vec![]).await?;
        let overflow = overflow.as_i64().unwrap_or_default();
        if overflow > 0 {
            self.overflowing.push((name.to_owned(), overflow));
        }
        let client = self.browser.client();
        let (width, height) = client.get_window_size().await.context("window size")?;
        let full = self.browser.execute(FULL_HEIGHT, vec![]).await?;
        let full = full
            .as_u64()
            .unwrap_or(height)
            .clamp(height, MAX_SHOT_HEIGHT);
        let resize = |h: u64| client.set_window_size(width as u32, h as u32);
        resize(full).await.context("growing the window")?;
        let saved = self.browser.screenshot(name).await;
        resize(height).await.context("restoring the window")?;
        let path = saved?;
        check_png(&path)?;
        self.shots.push((name.to_owned(), path));
        Ok(())
    }
}

fn check_png(path: &Path) -> anyhow::Result<()> {
    let png = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    ensure!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is no PNG",
        path.display()
    );
    ensure!(
        png.len() > MIN_PNG_BYTES,
        "{} has only {} bytes",
        path.display(),
        png.len()
    );
    Ok(())
}

/// The id after `prefix` in `path` (`/apis/<id>/...`).
fn id_after(path: &str, prefix: &str) -> anyhow::Result<String> {
    let rest = path
        .strip_prefix(prefix)
        .with_context(|| format!("{path} does not start with {prefix}"))?;
    let id = rest.split(['/', '?', '#']).next().unwrap_or_default();
    uuid::Uuid::parse_str(id).with_context(|| format!("no id in {path}"))?;
    Ok(id.to_owned())
}

/// Sends `count` GETs of `url` (with `key` in `x-api-key` if given); all must answer
/// `status`.
async fn send(
    url: &str,
    key: Option<&str>,
    count: usize,
    status: StatusCode,
) -> anyhow::Result<()> {
    let http = client();
    for _ in 0..count {
        let mut request = http.get(url);
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        let response = request.send().await.with_context(|| format!("GET {url}"))?;
        let got = response.status();
        let body = response.text().await.unwrap_or_default();
        ensure!(
            got == status,
            "GET {url} (key: {}): {got} {body}",
            key.is_some()
        );
    }
    Ok(())
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_admin_sets_up_deploys_an_api_and_sees_its_traffic_in_a_real_browser(
    pool: PgPool,
) -> anyhow::Result<()> {
    let _heavy = heavy().await;
    let started = Instant::now();
    let cp = ControlPlane::start(pool).await;
    let upstream = Upstream::start().await;
    let data = tempfile::tempdir()?;
    let proxy = start_proxy_tuned(&cp.url(), data.path(), |_| {}).await;
    let mut ui = Dashboard {
        browser: Browser::start(screenshots()).await?,
        base: cp.url(),
        shots: Vec::new(),
        overflowing: Vec::new(),
    };

    let lap = |what: &str| eprintln!("{:>8.2?}  {what}", started.elapsed());
    lap("control plane, proxy, upstream and Chromium started");

    // Without a Content-Security-Policy an inline script runs: the check below works.
    ui.browser.goto("about:blank").await?;
    let ran = ui.browser.execute(RUN_INLINE_SCRIPT, vec![]).await?;
    ensure!(ran == json!(true), "inline script on about:blank");

    // 1. A fresh install sends the browser to the setup form.
    ui.open("/").await?;
    ui.wait_for_path("the setup page", |p| p == "/setup")
        .await?;
    ui.browser
        .fill("input[name=admin_token]", ADMIN_TOKEN)
        .await?;
    ui.browser.fill("input[name=name]", "ada").await?;
    ui.browser.fill("input[name=password]", PASSWORD).await?;
    ui.browser.fill("input[name=confirm]", PASSWORD).await?;
    ui.shot("setup").await?;
    ui.submit(
        "form[action='/setup'] button[type=submit]",
        "the overview",
        |p| p == "/",
    )
    .await?;
    ui.expect_h1("Overview").await?;
    let title = ui.browser.title().await?;
    ensure!(title == "Overview · Gatehouse", "title: {title:?}");
    ensure!(ui.stat("Requests").await? == Some("0".to_owned()));
    let empty = ui.charts().await?;
    ensure!(
        empty.contains("No traffic in this period"),
        "the empty chart says nothing: {empty:.300}"
    );
    ui.shot("overview-empty").await?;

    // Pages come with a policy that forbids inline scripts, and Chromium enforces it.
    let policy = client()
        .get(format!("{}/signin", cp.url()))
        .send()
        .await?
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    ensure!(
        policy.contains("script-src 'self'") && !policy.contains("'unsafe-inline'"),
        "policy: {policy:?}"
    );
    let ran = ui.browser.execute(RUN_INLINE_SCRIPT, vec![]).await?;
    ensure!(
        ran == json!(false),
        "an inline script ran on the overview ({policy})"
    );

    lap("set up");

    // 2. An API with an open route, a route that needs a key and (later) a mock.
    ui.open("/apis/new").await?;
    ui.browser.fill("input[name=name]", "Pet store").await?;
    ui.browser.fill("input[name=slug]", "petstore").await?;
    ui.browser
        .fill("textarea[name=description]", "Pets of the demo upstream")
        .await?;
    ui.shot("api-new").await?;
    let api_path = ui
        .submit(
            "form[action='/apis/new'] button[type=submit]",
            "the API's page",
            |p| p.starts_with("/apis/") && p != "/apis/new",
        )
        .await?;
    let api_id = id_after(&api_path, "/apis/")?;
    ui.expect_h1("Pet store").await?;

    let up = upstream.addr;
    add_route(
        &ui,
        &api_id,
        "GET /pets/{id}",
        &format!("http://{up}/pets/{{id}}"),
        false,
    )
    .await?;
    ui.shot("route-new").await?;
    ui.submit(
        "form[action$='/routes/new'] button[type=submit]",
        "the API's page",
        |p| p == api_path,
    )
    .await?;
    add_route(
        &ui,
        &api_id,
        "GET /pets",
        &format!("http://{up}/pets"),
        true,
    )
    .await?;
    ui.submit(
        "form[action$='/routes/new'] button[type=submit]",
        "the API's page",
        |p| p == api_path,
    )
    .await?;
    let badges = ui.browser.text_of("table.table tbody").await?;
    ensure!(
        badges.contains("GET /pets/{id}") && badges.contains("required"),
        "routes table: {badges}"
    );

    lap("API and routes created");

    // 3. Deploy to a new stage from the API's page.
    ui.browser
        .fill("form[action$='/deploy'] input[name=stage]", "prod")
        .await?;
    ui.browser
        .fill(
            "form[action$='/deploy'] input[name=description]",
            "First release",
        )
        .await?;
    let stage_path = format!("/apis/{api_id}/stages/prod");
    ui.submit(
        "form[action$='/deploy'] button[type=submit]",
        "the stage page",
        |p| p.starts_with(&stage_path),
    )
    .await?;
    ui.expect_h1("prod").await?;
    let invoke = ui
        .attr(".stage-head .copy-row button[data-copy]", "data-copy")
        .await?;
    ensure!(
        invoke == format!("http://{}/petstore/prod", proxy.addr),
        "invoke URL {invoke:?}, the proxy listens on {}",
        proxy.addr
    );
    ui.shot("stage").await?;

    lap("deployed");

    // 4. A key, shown once, and a usage plan covering the stage with the key attached.
    ui.open("/keys").await?;
    ui.browser
        .fill("form[action='/keys'] input[name=name]", "mobile app")
        .await?;
    ui.submit(
        "form[action='/keys'] button[type=submit]",
        "the new key",
        |p| p == "/keys",
    )
    .await?;
    ui.expect_h1("created").await?;
    let key = ui.attr(".copy-row button[data-copy]", "data-copy").await?;
    let shown = ui.browser.text_of("code.secret").await?;
    ensure!(
        key == shown && key.len() >= 20,
        "key {key:?}, shown {shown:?}"
    );
    let key_path = ui.attr(".crumbs a[href^='/keys/']", "href").await?;
    let key_id = id_after(&key_path, "/keys/")?;
    ui.shot("key-created").await?;

    ui.open("/plans/new").await?;
    ui.browser
        .fill("form[action='/plans/new'] input[name=name]", "Starter")
        .await?;
    ui.browser
        .fill(
            "form[action='/plans/new'] input[name='quota.limit']",
            "1000",
        )
        .await?;
    ui.select(
        "form[action='/plans/new'] select[name='quota.period']",
        "DAY",
    )
    .await?;
    ui.browser
        .click(&format!("input[name=stages][value='{api_id}:prod']"))
        .await?;
    ui.shot("plan-new").await?;
    let plan_path = ui
        .submit(
            "form[action='/plans/new'] button[type=submit]",
            "the plan's page",
            |p| p.starts_with("/plans/") && p != "/plans/new",
        )
        .await?;
    ui.expect_h1("Starter").await?;
    ui.select("form[action$='/keys'] select[name=key_id]", &key_id)
        .await?;
    ui.submit(
        "form[action$='/keys'] button[type=submit]",
        "the plan's page",
        |p| p == plan_path,
    )
    .await?;
    let attached = ui.browser.text_of("main").await?;
    ensure!(
        attached.contains("mobile app"),
        "the plan does not list the key: {attached:.500}"
    );

    lap("key and plan created");

    // 5. Traffic through the proxy, once it serves the latest configuration.
    let version = config_version(&cp.pool).await;
    let took = wait_for_version(&proxy, version, Duration::from_secs(10)).await;
    eprintln!("the proxy served config {version} after {took:?}");
    send(&format!("{invoke}/pets/1"), None, 20, StatusCode::OK).await?;
    send(&format!("{invoke}/pets"), Some(&key), 5, StatusCode::OK).await?;
    send(&format!("{invoke}/pets"), None, 2, StatusCode::FORBIDDEN).await?;
    let sent = 27;

    lap("traffic sent");

    // 6. The graphs and figures show it.
    ui.open("/").await?;
    let (_, took) = ui
        .reload_until("27 requests on the overview", async |ui| {
            Ok(ui
                .stat("Requests")
                .await?
                .filter(|n| *n == sent.to_string()))
        })
        .await?;
    eprintln!("the overview showed the traffic after {took:?}");
    let svg = ui.charts().await?;
    ensure!(
        !svg.contains("No traffic in this period"),
        "the requests chart of the overview shows no traffic"
    );
    let busiest = ui.browser.text_of("main").await?;
    ensure!(
        busiest.contains("petstore"),
        "not among the busiest APIs: {busiest:.600}"
    );
    ui.shot("overview").await?;

    ui.open(&stage_path).await?;
    let (_, took) = ui
        .reload_until("27 requests on the stage", async |ui| {
            Ok(ui
                .stat("Requests")
                .await?
                .filter(|n| *n == sent.to_string()))
        })
        .await?;
    eprintln!("the stage page showed the traffic after {took:?}");
    let svg = ui.charts().await?;
    ensure!(
        !svg.contains("No traffic in this period"),
        "the stage's chart is empty"
    );
    ui.shot("stage-traffic").await?;

    ui.open(&key_path).await?;
    let (cells, took) = ui
        .reload_until("the key's use of its plan", async |ui| {
            let cells = ui
                .browser
                .execute(
                    "const row = document.querySelector('table.table tbody tr');
                     return row ? Array.from(row.querySelectorAll('td.num'))
                         .map(td => td.textContent.trim()) : [];",
                    vec![],
                )
                .await?;
            Ok((cells.get(0) == Some(&json!("5"))).then_some(cells))
        })
        .await?;
    eprintln!("the key's page showed its use after {took:?}: {cells}");
    ensure!(
        cells.get(1) == Some(&json!("995")),
        "used and left: {cells}"
    );
    ui.charts().await?;
    ui.shot("key").await?;

    lap("graphs checked");

    // 7. A second deployment with a mock route, so there is a diff; then every page.
    ui.open(&format!("/apis/{api_id}/routes/new")).await?;
    ui.browser
        .fill("input[name=route_key]", "GET /health")
        .await?;
    ui.browser
        .click("input[name='integration.type'][value=MOCK]")
        .await?;
    ui.browser
        .fill("input[name='integration.status']", "200")
        .await?;
    ui.browser
        .fill(
            "textarea[name='integration.headers']",
            "Content-Type: text/plain",
        )
        .await?;
    ui.browser
        .fill("textarea[name='integration.body']", "ok")
        .await?;
    ui.submit(
        "form[action$='/routes/new'] button[type=submit]",
        "the API's page",
        |p| p == api_path,
    )
    .await?;
    ui.browser
        .fill("form[action$='/deploy'] input[name=stage]", "prod")
        .await?;
    ui.browser
        .fill(
            "form[action$='/deploy'] input[name=description]",
            "Health check",
        )
        .await?;
    ui.submit(
        "form[action$='/deploy'] button[type=submit]",
        "the stage page",
        |p| p.starts_with(&stage_path),
    )
    .await?;
    let deployment = ui.attr(".facts a[href*='/deployments/']", "href").await?;
    ui.open(&deployment).await?;
    ui.expect_h1("Deployment").await?;
    let diff = ui.browser.text_of("table.diff").await?;
    ensure!(
        diff.contains("GET /health") && diff.contains("added"),
        "diff: {diff}"
    );
    ui.shot("deployment-diff").await?;

    let version = config_version(&cp.pool).await;
    wait_for_version(&proxy, version, Duration::from_secs(10)).await;
    let health = client().get(format!("{invoke}/health")).send().await?;
    ensure!(
        health.status() == StatusCode::OK,
        "the new route: {}",
        health.status()
    );
    ensure!(health.text().await? == "ok");

    for (path, heading, name) in [
        ("/apis".to_owned(), "APIs", "apis"),
        (api_path.clone(), "Pet store", "api"),
        (stage_path.clone(), "prod", "stage-second-deploy"),
        (
            format!("/apis/{api_id}/deployments"),
            "Deployments",
            "deployments",
        ),
        ("/keys".to_owned(), "API keys", "keys"),
        ("/plans".to_owned(), "Usage plans", "plans"),
        (plan_path.clone(), "Starter", "plan"),
        ("/nodes".to_owned(), "Proxies", "nodes"),
        ("/audit".to_owned(), "Audit", "audit"),
    ] {
        ui.open(&path).await?;
        ui.expect_h1(heading).await?;
        ui.shot(name).await?;
    }
    let audit = ui.browser.text_of("main").await?;
    ensure!(
        audit.contains("ada"),
        "the audit log names nobody: {audit:.500}"
    );

    ui.open("/no/such/page").await?;
    let missing = ui.browser.text_of("main").await?;
    ensure!(!missing.is_empty(), "the 404 page is empty");
    ui.shot("not-found").await?;

    lap("pages visited");

    // Sign out: back to the sign-in form, and the pages ask for it again.
    ui.open("/").await?;
    ui.submit(
        "form[action='/signout'] button[type=submit]",
        "the sign-in page",
        |p| p.starts_with("/signin"),
    )
    .await?;
    ui.shot("signed-out").await?;
    ui.open("/keys").await?;
    ui.wait_for_path("the sign-in page", |p| p.starts_with("/signin"))
        .await?;

    // Signing in again: a wrong password is refused with the name kept, the right one
    // leads back to the page asked for.
    let sign_in = "form[action='/signin'] button[type=submit]";
    ui.browser.fill("input[name=name]", "ada").await?;
    ui.browser
        .fill("input[name=password]", "not the password")
        .await?;
    ui.submit(sign_in, "the sign-in page again", |p| p == "/signin")
        .await?;
    let refusal = ui.browser.text_of("p.alert").await?;
    ensure!(
        refusal.contains("Wrong user name or password"),
        "refusal: {refusal:?}"
    );
    let kept = ui.attr("input[name=name]", "value").await?;
    ensure!(kept == "ada", "the name typed: {kept:?}");
    ui.shot("signin-refused").await?;
    ui.browser.fill("input[name=password]", PASSWORD).await?;
    ui.submit(sign_in, "the page asked for", |p| p == "/keys")
        .await?;
    ui.expect_h1("API keys").await?;
    lap("signed out and in again");

    let Dashboard {
        browser,
        shots,
        overflowing,
        ..
    } = ui;
    browser.close().await?;
    proxy.stop().await;
    cp.stop().await;

    for (name, path) in &shots {
        check_png(path).with_context(|| format!("screenshot {name}"))?;
    }
    let names: Vec<&str> = shots.iter().map(|(name, _)| name.as_str()).collect();
    eprintln!(
        "{} screenshots in {}: {}",
        names.len(),
        screenshots().display(),
        names.join(", ")
    );
    eprintln!("the whole walk took {:?}", started.elapsed());
    ensure!(
        overflowing.is_empty(),
        "pages scroll sideways at 1280 px (screenshot, pixels): {overflowing:?}"
    );
    Ok(())
}

/// Opens the route form of the API and fills an HTTP proxy route.
async fn add_route(
    ui: &Dashboard,
    api_id: &str,
    route_key: &str,
    uri: &str,
    key_required: bool,
) -> anyhow::Result<()> {
    ui.open(&format!("/apis/{api_id}/routes/new")).await?;
    ui.browser.fill("input[name=route_key]", route_key).await?;
    // Ticked before the fields below it scroll the page: scrolled to the top of the
    // window, the box would be under the sticky top bar.
    if key_required {
        ui.browser.click("input[name=api_key_required]").await?;
    }
    ui.browser
        .click("input[name='integration.type'][value=HTTP_PROXY]")
        .await?;
    ui.browser
        .fill("input[name='integration.uri']", uri)
        .await?;
    Ok(())
}
