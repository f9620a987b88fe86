//! Invoke URLs: where clients call a stage, as `<proxy>/<api-slug>/<stage>`.

use crate::repo::nodes;
use crate::AppState;

/// The proxies' base URL: the configured one, else the address of the proxy seen last,
/// else `None` (no proxy has polled yet).
pub async fn base_url(state: &AppState) -> sqlx::Result<Option<String>> {
    if let Some(url) = &state.config.proxy_url {
        return Ok(Some(url.trim_end_matches('/').to_owned()));
    }
    let newest = nodes::list(&state.pool).await?.into_iter().next();
    Ok(newest.map(|node| format!("http://{}", node.address)))
}

/// The invoke URL of stage `stage` of the API with slug `slug`.
pub fn url(base: Option<&str>, slug: &str, stage: &str) -> String {
    let base = base.unwrap_or("http://<proxy>");
    format!("{base}/{slug}/{stage}")
}
