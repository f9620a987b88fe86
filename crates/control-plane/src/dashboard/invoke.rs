//! Invoke URLs: where clients call a stage, as `<proxy>/<api-slug>/<stage>`.

use gatehouse_model::Protocol;

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

/// The invoke URL of stage `stage` of the API with slug `slug`: `ws://` or `wss://` for
/// a WebSocket API.
pub fn url(base: Option<&str>, slug: &str, stage: &str, protocol: Protocol) -> String {
    let base = base.unwrap_or("http://<proxy>");
    let base = match protocol {
        Protocol::Http => base.to_owned(),
        Protocol::Websocket => match base.split_once("://") {
            Some(("https", rest)) => format!("wss://{rest}"),
            Some((_, rest)) => format!("ws://{rest}"),
            None => base.to_owned(),
        },
    };
    format!("{base}/{slug}/{stage}")
}

/// Where backends reach a WebSocket stage's connections (`@connections`).
pub fn connections_url(base: Option<&str>, slug: &str, stage: &str) -> String {
    format!("{}/@connections", url(base, slug, stage, Protocol::Http))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_stages_are_invoked_over_ws_and_wss() {
        let url = |base, protocol| super::url(base, "chat", "prod", protocol);
        assert_eq!(
            url(Some("http://p:8000"), Protocol::Http),
            "http://p:8000/chat/prod"
        );
        assert_eq!(
            url(Some("http://p:8000"), Protocol::Websocket),
            "ws://p:8000/chat/prod"
        );
        assert_eq!(
            url(Some("https://api.example.com"), Protocol::Websocket),
            "wss://api.example.com/chat/prod"
        );
        assert_eq!(url(None, Protocol::Websocket), "ws://<proxy>/chat/prod");
        assert_eq!(
            connections_url(Some("http://p:8000"), "chat", "prod"),
            "http://p:8000/chat/prod/@connections"
        );
    }
}
