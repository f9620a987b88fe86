//! Identity for the authorizer tests: a real OpenID issuer on a loopback port (discovery
//! document and JWKS over HTTP, keys it can rotate or stop serving, a count of fetches),
//! tokens signed with a JWT library (ES256 and EdDSA keys made by `ring`), tokens minted
//! by PyJWT through `tests/scripts/mint_jwt.py` (RS256, PS256, ES384), and a REQUEST
//! authorizer whose answers, delays and failures a test sets and whose calls it counts.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A private key and its public JWK.
pub struct SigningKey {
    pub kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    pub jwk: Value,
}

impl SigningKey {
    /// A fresh P-256 key (ES256).
    pub fn es256(kid: &str) -> SigningKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("parse key");
        // Uncompressed point: 0x04, x, y.
        let point = pair.public_key().as_ref();
        let (x, y) = point[1..].split_at(32);
        SigningKey {
            kid: kid.to_owned(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
                "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)}),
        }
    }

    /// A fresh Ed25519 key (EdDSA).
    pub fn eddsa(kid: &str) -> SigningKey {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("Ed25519 key");
        let public = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .expect("parse key")
            .public_key()
            .as_ref()
            .to_vec();
        SigningKey {
            kid: kid.to_owned(),
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig",
                "x": URL_SAFE_NO_PAD.encode(public)}),
        }
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }

    /// Signs with HS256 using this key's public JWK as the secret: the classic
    /// confusion attack on verifiers that let the token pick the algorithm.
    pub fn sign_hs256_with_public_key(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        let secret = self.jwk.to_string();
        jsonwebtoken::encode(
            &header,
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("sign")
    }
}

/// How the issuer answers its JWKS requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwksMode {
    Serve,
    /// 500 Internal Server Error.
    Fail,
    /// 200 with a body that is not a JWKS document.
    Garbage,
    /// 200 with a document of a megabyte.
    Huge,
}

struct IssuerState {
    url: String,
    keys: Mutex<Vec<Value>>,
    mode: Mutex<JwksMode>,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
}

/// An OpenID issuer on a loopback port.
pub struct Issuer {
    /// The issuer URL, `http://127.0.0.1:<port>`.
    pub url: String,
    state: Arc<IssuerState>,
    task: JoinHandle<()>,
}

impl Issuer {
    pub async fn start() -> Issuer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind issuer");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(IssuerState {
            url: url.clone(),
            keys: Mutex::new(Vec::new()),
            mode: Mutex::new(JwksMode::Serve),
            jwks_fetches: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Issuer { url, state, task }
    }

    /// Serves exactly these public keys from now on.
    pub fn publish(&self, keys: Vec<Value>) {
        *self.state.keys.lock().expect("keys") = keys;
    }

    pub fn set_mode(&self, mode: JwksMode) {
        *self.state.mode.lock().expect("mode") = mode;
    }

    /// How many times the JWKS was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    pub fn discovery_fetches(&self) -> usize {
        self.state.discovery_fetches.load(Ordering::SeqCst)
    }

    /// Claims of a good token for `audience`, valid for five minutes, with `extra` merged
    /// in (a `null` removes a claim).
    pub fn claims(&self, audience: &str, extra: Value) -> Value {
        let now = chrono::Utc::now().timestamp();
        let mut claims = json!({"iss": self.url, "aud": audience, "sub": "user-1",
            "iat": now, "exp": now + 300});
        if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            for (k, v) in extra {
                if v.is_null() {
                    claims.remove(&k);
                } else {
                    claims.insert(k, v);
                }
            }
        }
        claims
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn discovery(State(state): State<Arc<IssuerState>>) -> Json<Value> {
    state.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    Json(json!({"issuer": state.url, "jwks_uri": format!("{}/jwks", state.url)}))
}

async fn jwks(State(state): State<Arc<IssuerState>>) -> Response {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let mode = *state.mode.lock().expect("mode");
    match mode {
        JwksMode::Serve => {
            let keys = state.keys.lock().expect("keys").clone();
            Json(json!({"keys": keys})).into_response()
        }
        JwksMode::Fail => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        JwksMode::Garbage => (StatusCode::OK, "<html>maintenance</html>").into_response(),
        JwksMode::Huge => (StatusCode::OK, " ".repeat(1024 * 1024)).into_response(),
    }
}

/// Tokens minted by PyJWT with fresh keys: the public keys, and a token per algorithm
/// (RS256, PS256, ES384) carrying `claims`.
pub fn python_tokens(
    kid_prefix: &str,
    claims: &Value,
) -> (Vec<Value>, std::collections::HashMap<String, String>) {
    use std::io::Write as _;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/mint_jwt.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(
            json!({"kid_prefix": kid_prefix, "claims": claims})
                .to_string()
                .as_bytes(),
        )
        .expect("write claims");
    let out = child.wait_with_output().expect("mint_jwt.py finishes");
    assert!(
        out.status.success(),
        "mint_jwt.py failed (is PyJWT installed?)"
    );
    let minted: Value = serde_json::from_slice(&out.stdout).expect("mint_jwt.py prints JSON");
    let keys = minted["jwks"]["keys"].as_array().expect("keys").clone();
    let tokens = serde_json::from_value(minted["tokens"].clone()).expect("tokens");
    (keys, tokens)
}

/// What the test REQUEST authorizer does with the next calls.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// `{"isAuthorized": true, "context": ...}` for callers whose identity is `allowed`,
    /// false for the rest.
    Allow { allowed: String, context: Value },
    /// Sleeps this long before answering (longer than the gateway waits).
    Hang(Duration),
    /// Closes the connection without an answer.
    Crash,
    /// 200 with a body that is not the simple response.
    Garbage,
}

struct AuthorizerState {
    verdict: Mutex<Verdict>,
    calls: AtomicU64,
    last_payload: Mutex<Value>,
}

/// A REQUEST authorizer (AWS's payload format 2.0, simple responses) on a loopback port.
pub struct RequestAuthorizerServer {
    pub url: String,
    state: Arc<AuthorizerState>,
    task: JoinHandle<()>,
}

impl RequestAuthorizerServer {
    pub async fn start(verdict: Verdict) -> RequestAuthorizerServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind authorizer");
        let url = format!("http://{}/authorize", listener.local_addr().expect("addr"));
        let state = Arc::new(AuthorizerState {
            verdict: Mutex::new(verdict),
            calls: AtomicU64::new(0),
            last_payload: Mutex::new(Value::Null),
        });
        let app = Router::new()
            .route("/authorize", post(authorize))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        RequestAuthorizerServer { url, state, task }
    }

    pub fn set(&self, verdict: Verdict) {
        *self.state.verdict.lock().expect("verdict") = verdict;
    }

    pub fn calls(&self) -> u64 {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// The payload of the last call.
    pub fn last_payload(&self) -> Value {
        self.state.last_payload.lock().expect("payload").clone()
    }
}

impl Drop for RequestAuthorizerServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn authorize(
    State(state): State<Arc<AuthorizerState>>,
    Json(payload): Json<Value>,
) -> Response {
    state.calls.fetch_add(1, Ordering::SeqCst);
    *state.last_payload.lock().expect("payload") = payload.clone();
    let verdict = state.verdict.lock().expect("verdict").clone();
    match verdict {
        Verdict::Allow { allowed, context } => {
            let identity = payload["identitySource"][0].as_str().unwrap_or("");
            Json(json!({"isAuthorized": identity == allowed, "context": context})).into_response()
        }
        Verdict::Hang(delay) => {
            tokio::time::sleep(delay).await;
            Json(json!({"isAuthorized": true})).into_response()
        }
        Verdict::Crash => {
            // An answer the server cannot send: the connection is closed mid-response.
            let body = axum::body::Body::from_stream(futures_util::stream::once(async {
                Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other("crash"))
            }));
            (StatusCode::OK, body).into_response()
        }
        Verdict::Garbage => (StatusCode::OK, "yes").into_response(),
    }
}
