//! WebSocket pass-through on HTTP API routes that allow it: the upgrade request goes to the
//! upstream with its `Upgrade` header kept, and once the upstream switches protocols, the
//! two upgraded connections are spliced, bytes streaming both ways until either side closes.

use http::{header, HeaderMap, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::server::drain::Token;

/// The `Upgrade` value of a request asking for a WebSocket, `None` for other requests.
pub fn websocket_upgrade(headers: &HeaderMap) -> Option<HeaderValue> {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let upgrade = headers.get(header::UPGRADE)?;
    (connection_upgrade && upgrade.as_bytes().eq_ignore_ascii_case(b"websocket"))
        .then(|| upgrade.clone())
}

/// Puts back the two headers that ask for (or accept) the upgrade, after the hop-by-hop
/// headers were removed.
pub fn restore_upgrade(headers: &mut HeaderMap, upgrade: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, upgrade);
}

/// Joins the client's connection to the upstream's once both have switched protocols.
pub fn splice(client: OnUpgrade, upstream: OnUpgrade, token: Option<Token>) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket pass-through: upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(error = %e, "WebSocket pass-through ended with an error");
        }
        drop(token);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_websocket_upgrades_are_passed_through() {
        let mut h = HeaderMap::new();
        assert!(websocket_upgrade(&h).is_none());
        h.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        assert!(websocket_upgrade(&h).is_none(), "no Connection: upgrade");
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert_eq!(
            websocket_upgrade(&h).as_ref().map(HeaderValue::as_bytes),
            Some(&b"WebSocket"[..])
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(websocket_upgrade(&h).is_none());
    }
}
