//! The browser harness works: a headless Chromium opens the control plane's `/` page,
//! finds its title and heading, saves a screenshot, and sees that the page refuses inline
//! scripts. The dashboard's own browser tests take over from here.

use std::path::PathBuf;

use gatehouse_tests::browser::Browser;
use gatehouse_tests::{client, ControlPlane};
use serde_json::{json, Value};
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &gatehouse_control_plane::MIGRATOR;

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots")
}

/// Appends an inline `<script>` to the page; returns whether it ran.
const RUN_INLINE_SCRIPT: &str = "
    const script = document.createElement('script');
    script.textContent = 'document.documentElement.dataset.inlineScriptRan = \"yes\"';
    document.head.appendChild(script);
    return document.documentElement.dataset.inlineScriptRan === 'yes';
";

#[sqlx::test(migrator = "MIGRATOR")]
async fn chromium_opens_the_front_page_and_saves_a_screenshot(pool: PgPool) -> anyhow::Result<()> {
    let cp = ControlPlane::start(pool).await;
    let browser = Browser::start(screenshots()).await?;

    browser.goto(&format!("{}/", cp.url())).await?;
    let title = browser.title().await?;
    assert!(title.contains("Gatehouse"), "title: {title:?}");
    browser.wait_for("h1").await?;

    let path = browser.screenshot("front-page").await?;
    let png = std::fs::read(&path)?;
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is no PNG",
        path.display()
    );
    assert!(
        png.len() > 5_000,
        "{} has only {} bytes",
        path.display(),
        png.len()
    );

    // WebDriver's own scripts run whatever the page's Content-Security-Policy says.
    let found = browser
        .execute("return document.querySelector('h1') !== null", vec![])
        .await?;
    assert_eq!(found, json!(true));

    browser.close().await?;
    cp.stop().await;
    Ok(())
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_front_page_refuses_inline_scripts(pool: PgPool) -> anyhow::Result<()> {
    let cp = ControlPlane::start(pool).await;
    let url = format!("{}/", cp.url());
    let response = client().get(&url).send().await?;
    let policy = response
        .headers()
        .get("content-security-policy")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        policy.contains("script-src") || policy.contains("default-src"),
        "GET / has no Content-Security-Policy restricting scripts: {policy:?}"
    );
    assert!(!policy.contains("'unsafe-inline'"), "policy: {policy}");

    let browser = Browser::start(screenshots()).await?;
    // The check itself works: without a policy the inline script runs.
    browser.goto("about:blank").await?;
    let ran = browser.execute(RUN_INLINE_SCRIPT, vec![]).await?;
    assert_eq!(ran, Value::Bool(true), "inline script on about:blank");

    browser.goto(&url).await?;
    let ran = browser.execute(RUN_INLINE_SCRIPT, vec![]).await?;
    assert_eq!(
        ran,
        Value::Bool(false),
        "an inline script ran on / ({policy})"
    );

    browser.close().await?;
    cp.stop().await;
    Ok(())
}
