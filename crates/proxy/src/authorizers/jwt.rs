//! A JWT authorizer at run time: its issuer's keys, fetched and kept, and the tokens it
//! has verified, kept until they expire.
//!
//! Keys come from `jwks_uri`, or from the issuer's OpenID discovery document. They are
//! fetched on first use, refetched in the background once they are an hour old (AWS keeps
//! them up to two), and refetched at once when a token names a key not yet seen, at most
//! once per [`REFETCH_GAP`] so a stream of tokens with made-up `kid`s cannot make the
//! proxy hammer the issuer. A failed fetch keeps the last good keys.
//!
//! Verified tokens are cached by the SHA-256 of the token, bounded in number; a hit costs
//! one hash and a lookup instead of a signature check.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use gatehouse_model::authorizer::{check_outbound_url, is_loopback_http as loopback_http};
use gatehouse_model::jwt::{self, Jwks, Refusal, Verified};
use gatehouse_model::{DeployedAuthorizer, IdentitySource};
use http::{HeaderMap, Method};
use quick_cache::sync::Cache;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::authorizers::fetch::{exchange, FetchError};
use crate::authorizers::metrics::AuthMetrics;
use crate::upstream::EventClient;

/// Least time between two fetches of an issuer's keys.
pub const REFETCH_GAP: Duration = Duration::from_secs(5);
/// Age at which keys are refetched in the background.
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(3600);
/// Most verified tokens kept per authorizer.
pub const TOKEN_CACHE_ENTRIES: usize = 10_000;
/// Deadline of one fetch (discovery and keys each).
const FETCH_DEADLINE: Duration = Duration::from_secs(5);
/// Largest discovery document read.
const MAX_DISCOVERY_BYTES: usize = 64 * 1024;

/// The keys in use and when they were fetched.
struct Keys {
    jwks: Jwks,
    fetched: Instant,
}

pub struct JwtAuthorizer {
    pub id: Uuid,
    pub name: String,
    config: gatehouse_model::authorizer::JwtConfiguration,
    source: IdentitySource,
    keys: ArcSwapOption<Keys>,
    /// When a fetch last started; serialises fetches and spaces them out.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    /// When keys were last refreshed in the background.
    refresh_started: Mutex<Option<Instant>>,
    verified: Cache<[u8; 32], Arc<Verified>>,
}

/// How a token check ended, short of the network.
pub enum Check {
    Verified(Arc<Verified>),
    Refused(Refusal),
    /// The keys must be fetched first (none yet, or the token's `kid` is new).
    NeedKeys,
}

impl JwtAuthorizer {
    pub fn new(deployed: &DeployedAuthorizer) -> Result<JwtAuthorizer, String> {
        let config = deployed
            .spec
            .jwt_configuration
            .clone()
            .ok_or("a JWT authorizer without a JWT configuration")?;
        let source = deployed
            .spec
            .identity_source
            .first()
            .cloned()
            .ok_or("a JWT authorizer without an identity source")?;
        Ok(JwtAuthorizer {
            id: deployed.id,
            name: deployed.spec.name.clone(),
            config,
            source,
            keys: ArcSwapOption::empty(),
            last_fetch: tokio::sync::Mutex::new(None),
            refresh_started: Mutex::new(None),
            verified: Cache::new(TOKEN_CACHE_ENTRIES),
        })
    }

    /// The token a request carries, where the identity source points.
    pub fn token<'r>(
        &self,
        headers: &'r HeaderMap,
        query: Option<&'r str>,
    ) -> Option<std::borrow::Cow<'r, str>> {
        let raw: std::borrow::Cow<'r, str> = match &self.source {
            IdentitySource::Header(name) => {
                let mut values = headers.get_all(name.as_str()).iter();
                let first = values.next()?;
                if values.next().is_some() {
                    // Two tokens: which one would a backend believe? Neither.
                    return None;
                }
                std::borrow::Cow::Borrowed(first.to_str().ok()?)
            }
            IdentitySource::QueryString(name) => {
                let mut found = form_urlencoded_values(query?, name);
                if found.len() != 1 {
                    return None;
                }
                found.pop()?
            }
            _ => return None,
        };
        match raw {
            std::borrow::Cow::Borrowed(b) => jwt::token_of(b).map(std::borrow::Cow::Borrowed),
            std::borrow::Cow::Owned(o) => {
                jwt::token_of(&o).map(|t| std::borrow::Cow::Owned(t.to_owned()))
            }
        }
    }

    /// Checks `token` with the keys at hand. `keys_just_fetched` says this request
    /// already waited for a fetch: an unknown key is then refused, not fetched again.
    pub fn check(&self, token: &str, now: i64, keys_just_fetched: bool) -> Check {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(hit) = self.verified.get(&digest) {
            if hit.expires_at + jwt::CLOCK_SKEW_SECONDS > now {
                return Check::Verified(hit);
            }
            self.verified.remove(&digest);
        }
        let keys = self.keys.load();
        let Some(keys) = keys.as_ref() else {
            return if keys_just_fetched {
                // The issuer could not be reached and no keys were ever had.
                Check::Refused(Refusal::UnknownKey)
            } else {
                Check::NeedKeys
            };
        };
        match jwt::verify(token, &keys.jwks, &self.config, now) {
            Ok(verified) => {
                let verified = Arc::new(verified);
                self.verified.insert(digest, verified.clone());
                Check::Verified(verified)
            }
            Err(Refusal::UnknownKey) if !keys_just_fetched && self.may_refetch() => Check::NeedKeys,
            Err(refusal) => Check::Refused(refusal),
        }
    }

    /// Whether a token with a new `kid` may trigger a fetch now.
    fn may_refetch(&self) -> bool {
        self.last_fetch
            .try_lock()
            .map(|last| last.is_none_or(|at| at.elapsed() >= REFETCH_GAP))
            // A fetch is under way: wait for it.
            .unwrap_or(true)
    }

    /// Whether the keys are old enough to refresh in the background; claims the refresh.
    pub fn claim_background_refresh(&self) -> bool {
        // A guard, not an `Arc`: this runs on every request of the route.
        let keys = self.keys.load();
        if keys
            .as_ref()
            .is_none_or(|k| k.fetched.elapsed() < KEYS_MAX_AGE)
        {
            return false;
        }
        let mut started = self
            .refresh_started
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if started.is_some_and(|at| at.elapsed() < REFETCH_GAP * 12) {
            return false;
        }
        *started = Some(Instant::now());
        true
    }

    /// Fetches the issuer's keys, unless another request fetched them within
    /// [`REFETCH_GAP`]: then that fetch's keys are used. Never fails: a failed fetch
    /// keeps the keys there were, and is logged and counted.
    pub async fn fetch_keys(&self, client: &EventClient, metrics: &AuthMetrics) {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < REFETCH_GAP) {
            return;
        }
        *last = Some(Instant::now());
        let started = Instant::now();
        let result = self.download(client).await;
        metrics
            .latency
            .with_label_values(&["jwks"])
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(jwks) => {
                metrics.jwks_fetches.with_label_values(&["ok"]).inc();
                self.keys.store(Some(Arc::new(Keys {
                    jwks,
                    fetched: Instant::now(),
                })));
            }
            Err(e) => {
                metrics.jwks_fetches.with_label_values(&["failed"]).inc();
                tracing::warn!(authorizer = %self.name, issuer = %self.config.issuer, error = %e,
                    "could not fetch the issuer's keys; the last good keys stay in use");
            }
        }
    }

    async fn download(&self, client: &EventClient) -> Result<Jwks, String> {
        let jwks_uri = match &self.config.jwks_uri {
            Some(uri) => uri.clone(),
            None => self.discover(client).await?,
        };
        let uri = check_outbound_url(&jwks_uri, loopback_http(&jwks_uri))
            .map_err(|e| format!("jwks_uri: {e}"))?;
        let body = exchange(
            client,
            Method::GET,
            &uri,
            None,
            FETCH_DEADLINE,
            jwt::MAX_JWKS_BYTES,
        )
        .await
        .map_err(|e: FetchError| format!("{jwks_uri}: {e}"))?;
        Jwks::parse(&body).map_err(|e| format!("{jwks_uri}: {e}"))
    }

    /// The `jwks_uri` of the issuer's OpenID discovery document.
    async fn discover(&self, client: &EventClient) -> Result<String, String> {
        let url = format!("{}/.well-known/openid-configuration", self.config.issuer);
        let uri = check_outbound_url(&url, loopback_http(&url))?;
        let body = exchange(
            client,
            Method::GET,
            &uri,
            None,
            FETCH_DEADLINE,
            MAX_DISCOVERY_BYTES,
        )
        .await
        .map_err(|e| format!("{url}: {e}"))?;
        let document: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON: {e}"))?;
        document
            .get("jwks_uri")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("{url}: no jwks_uri"))
    }
}

/// The decoded values of `name` in a query string.
pub fn form_urlencoded_values<'q>(query: &'q str, name: &str) -> Vec<std::borrow::Cow<'q, str>> {
    query
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k) == name).then(|| decode(v))
        })
        .collect()
}

/// `%XX` and `+` decoded; invalid escapes kept as they are.
pub fn decode(raw: &str) -> std::borrow::Cow<'_, str> {
    if !raw.contains(['%', '+']) {
        return std::borrow::Cow::Borrowed(raw);
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: Option<&u8>| b.and_then(|b| char::from(*b).to_digit(16));
        match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(u8::try_from(hi << 4 | lo).unwrap_or(b'%'));
                i += 3;
            }
            (b'+', ..) => {
                out.push(b' ');
                i += 1;
            }
            (b, ..) => {
                out.push(b);
                i += 1;
            }
        }
    }
    std::borrow::Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}
