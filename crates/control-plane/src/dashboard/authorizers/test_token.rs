//! Testing a JWT authorizer with a pasted token: the control plane fetches the issuer's
//! keys itself and runs the proxy's own checks ([`gatehouse_model::jwt`]), so the page
//! says "valid" with the token's main claims, or which check refused it.
//!
//! Viewers may test too: it changes nothing, and the only URLs fetched are the ones an
//! admin saved on the authorizer, under the proxy's rules (`https://`, or `http://` to
//! loopback; no redirects followed; 5 s; at most [`MAX_JWKS_BYTES`]). The token is never
//! logged, stored or written back into the page: the page shows only the verdict and
//! the claims, escaped by the template. Keys that cannot be fetched are a verdict too,
//! naming the URL and what went wrong, never an error page.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::DateTime;
use gatehouse_model::authorizer::{check_outbound_url, is_loopback_http, JwtConfiguration};
use gatehouse_model::jwt::{self, Jwks, Refusal, Verified, MAX_JWKS_BYTES};
use serde_json::Value;

use super::super::render;

/// How long one fetch (discovery or JWKS) may take, as the proxy allows.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest discovery document read, as the proxy reads.
const MAX_DISCOVERY_BYTES: usize = 64 * 1024;

/// What the authorizer's page shows after a test.
pub struct TokenTest {
    /// The scopes asked for, as typed (they are not secret; the token is never kept).
    pub scopes: String,
    pub outcome: Outcome,
}

/// The verdict on a pasted token.
pub enum Outcome {
    /// Nothing was pasted.
    NoToken,
    /// The issuer's keys could not be had, so the token was not checked.
    NoKeys { url: String, reason: String },
    /// Every check passed, the scopes asked for included.
    Valid(Claims),
    /// A check failed; a token refused only for its scopes still shows its claims.
    Refused {
        /// The reason as metrics and logs label it (`expired`).
        code: &'static str,
        explanation: &'static str,
        claims: Option<Claims>,
    },
}

/// The claims an operator looks at, as text.
#[derive(Debug, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    /// One audience, or several joined with `, `.
    pub aud: String,
    /// `exp` as a date.
    pub expires: String,
    /// `scope`, or `scp` joined with spaces; empty when it has none.
    pub scope: String,
}

impl Claims {
    fn of(verified: &Verified) -> Claims {
        let text = |name: &str| verified.claim_text(name).unwrap_or_default();
        let list = |name: &str, separator: &str| match verified.claims.get(name) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(separator),
            _ => text(name),
        };
        let scope = match list("scope", " ") {
            scope if scope.is_empty() => list("scp", " "),
            scope => scope,
        };
        Claims {
            sub: text("sub"),
            iss: text("iss"),
            aud: list("aud", ", "),
            expires: DateTime::from_timestamp(verified.expires_at, 0)
                .map_or_else(|| verified.expires_at.to_string(), render::when),
            scope,
        }
    }
}

/// The scopes typed, split on spaces and commas.
fn scopes_of(raw: &str) -> Vec<String> {
    raw.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The verdict on `token` given the issuer's keys (or why there are none), at `now`.
fn judge(
    token: &str,
    keys: Result<Jwks, KeysError>,
    config: &JwtConfiguration,
    scopes: &[String],
    now: i64,
) -> Outcome {
    let Some(token) = jwt::token_of(token) else {
        return Outcome::NoToken;
    };
    let jwks = match keys {
        Ok(jwks) => jwks,
        Err(KeysError { url, reason }) => return Outcome::NoKeys { url, reason },
    };
    match jwt::verify(token, &jwks, config, now) {
        Ok(verified) if verified.grants_any(scopes) => Outcome::Valid(Claims::of(&verified)),
        Ok(verified) => refused(Refusal::Scope, Some(Claims::of(&verified))),
        Err(refusal) => refused(refusal, None),
    }
}

fn refused(refusal: Refusal, claims: Option<Claims>) -> Outcome {
    Outcome::Refused {
        code: refusal.as_str(),
        explanation: refusal.explain(),
        claims,
    }
}

/// Tests the pasted `token` against the authorizer `config`, requiring one of `scopes`.
pub async fn run(config: &JwtConfiguration, token: &str, scopes: &str) -> TokenTest {
    let required = scopes_of(scopes);
    let outcome = if jwt::token_of(token).is_none() {
        Outcome::NoToken
    } else {
        let keys = fetch_keys(config).await;
        judge(
            token,
            keys,
            config,
            &required,
            chrono::Utc::now().timestamp(),
        )
    };
    TokenTest {
        scopes: required.join(" "),
        outcome,
    }
}

/// Why the issuer's keys could not be had: the URL at fault and what went wrong.
#[derive(Debug)]
struct KeysError {
    url: String,
    reason: String,
}

impl KeysError {
    fn new(url: &str, reason: impl Into<String>) -> KeysError {
        KeysError {
            url: url.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The issuer's keys, from the authorizer's `jwks_uri` or else through discovery.
async fn fetch_keys(config: &JwtConfiguration) -> Result<Jwks, KeysError> {
    let jwks_uri = match &config.jwks_uri {
        Some(uri) => uri.clone(),
        None => discover(&config.issuer).await?,
    };
    let body = fetch(&jwks_uri, MAX_JWKS_BYTES).await?;
    Jwks::parse(&body).map_err(|e| KeysError::new(&jwks_uri, e.to_string()))
}

/// The `jwks_uri` of the issuer's OpenID discovery document.
async fn discover(issuer: &str) -> Result<String, KeysError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let body = fetch(&url, MAX_DISCOVERY_BYTES).await?;
    let document: Value = serde_json::from_slice(&body)
        .map_err(|e| KeysError::new(&url, format!("not a JSON document: {e}")))?;
    document
        .get("jwks_uri")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| KeysError::new(&url, "the discovery document has no `jwks_uri`"))
}

/// One client for every test: the system's roots on `ring`, as the proxy's, no
/// redirects and no proxy from the environment.
fn client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let tls = gatehouse_tls::client_roots(None)
                .and_then(gatehouse_tls::client_config)
                .map_err(|e| format!("{e:#}"))?;
            reqwest::Client::builder()
                .use_preconfigured_tls(tls)
                .timeout(FETCH_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| chain(&e))
        })
        .as_ref()
        .map_err(|e| format!("the control plane's HTTP client could not be set up: {e}"))
}

/// `GET url`: a 2xx body of at most `cap` bytes, read in chunks and given up past the cap.
async fn fetch(url: &str, cap: usize) -> Result<Vec<u8>, KeysError> {
    let fail = |reason: String| KeysError::new(url, reason);
    check_outbound_url(url, is_loopback_http(url)).map_err(fail)?;
    let client = client().map_err(fail)?;
    let mut response = client.get(url).send().await.map_err(|e| fail(why(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!("answered {status}")));
    }
    if response
        .content_length()
        .is_some_and(|length| length > cap as u64)
    {
        return Err(fail(format!("the document is larger than {cap} bytes")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| fail(why(&e)))? {
        if body.len() + chunk.len() > cap {
            return Err(fail(format!("the document is larger than {cap} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What went wrong with a fetch, in words.
fn why(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("no answer within {} s", FETCH_TIMEOUT.as_secs())
    } else {
        chain(e)
    }
}

/// An error and its causes, joined with `: ` (reqwest's own message names the URL,
/// which the page says already, so only its causes are kept when it has some).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut causes = Vec::new();
    let mut source = e.source();
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    if causes.is_empty() {
        e.to_string()
    } else {
        causes.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn verified(claims: Value) -> Verified {
        Verified {
            expires_at: claims["exp"].as_i64().unwrap_or(0),
            claims: claims.as_object().cloned().unwrap_or_default(),
        }
    }

    fn config() -> JwtConfiguration {
        JwtConfiguration {
            issuer: "https://idp.example.com".to_owned(),
            audience: vec!["pets".to_owned()],
            jwks_uri: None,
        }
    }

    #[test]
    fn the_claims_shown_are_text_with_the_expiry_as_a_date() {
        let claims = Claims::of(&verified(json!({
            "sub": "u1", "iss": "https://idp.example.com", "aud": ["pets", "cats"],
            "exp": 1_800_000_000, "scp": ["read:pets", "write:pets"]})));
        assert_eq!(
            claims,
            Claims {
                sub: "u1".into(),
                iss: "https://idp.example.com".into(),
                aud: "pets, cats".into(),
                expires: "2027-01-15 08:00 UTC".into(),
                scope: "read:pets write:pets".into(),
            }
        );
        let bare = Claims::of(&verified(json!({"exp": 0, "aud": "pets", "scope": "a b"})));
        assert_eq!((bare.sub.as_str(), bare.aud.as_str()), ("", "pets"));
        assert_eq!(bare.scope, "a b");
    }

    #[test]
    fn scopes_are_split_on_spaces_and_commas() {
        assert_eq!(
            scopes_of(" read:pets, write:pets\nadmin "),
            ["read:pets", "write:pets", "admin"]
        );
        assert!(scopes_of(" , ").is_empty());
    }

    #[test]
    fn nothing_pasted_is_said_before_the_keys_are_looked_at() {
        let keys = Err(KeysError::new("https://idp.example.com/jwks", "down"));
        assert!(matches!(
            judge("Bearer ", keys, &config(), &[], 0),
            Outcome::NoToken
        ));
    }

    #[test]
    fn keys_that_could_not_be_fetched_are_the_verdict_naming_the_url() {
        let keys = Err(KeysError::new(
            "https://idp.example.com/jwks",
            "answered 500",
        ));
        match judge("a.b.c", keys, &config(), &[], 0) {
            Outcome::NoKeys { url, reason } => {
                assert_eq!(url, "https://idp.example.com/jwks");
                assert_eq!(reason, "answered 500");
            }
            _ => panic!("not a keys error"),
        }
    }

    #[tokio::test]
    async fn urls_the_proxy_would_not_call_are_not_fetched() {
        for url in ["http://idp.example.com/jwks", "ftp://idp.example.com/jwks"] {
            let refused = fetch(url, 10).await.expect_err(url);
            assert_eq!(refused.url, url);
            assert!(refused.reason.contains("https://"), "{}", refused.reason);
        }
    }

    #[tokio::test]
    async fn a_document_past_the_cap_is_given_up() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/jwks", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            // Chunked, so no length says so first: the reader must stop by itself.
            let chunk = "x".repeat(100);
            let mut answer = String::from("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
            for _ in 0..5 {
                answer.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
            }
            answer.push_str("0\r\n\r\n");
            let _ = socket.write_all(answer.as_bytes()).await;
        });
        let refused = fetch(&url, 250).await.expect_err("too large");
        assert!(
            refused.reason.contains("larger than 250"),
            "{}",
            refused.reason
        );
    }
}
