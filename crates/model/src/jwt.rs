//! JSON Web Token checks of a JWT authorizer, without I/O: a JWKS document is parsed into
//! keys ([`Jwks::parse`]), and a token is verified against them and the authorizer's
//! issuer and audiences at a given time ([`verify`]). The proxy runs them on its request
//! path and the dashboard to test a pasted token, so both say the same thing.
//!
//! What is refused: anything but the asymmetric algorithms (RS256/384/512, PS256/384/512,
//! ES256/384, EdDSA), so neither `alg: none` nor an HMAC "signed" with a public key gets
//! in; a key whose type, curve or `alg` does not fit the token's algorithm; a token
//! without `exp`; and a JWKS document of the wrong size or shape, as a whole.

use std::collections::HashSet;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::authorizer::JwtConfiguration;

/// Largest JWKS document taken.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Most keys in one JWKS document.
pub const MAX_JWKS_KEYS: usize = 100;
/// Longest token looked at.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// How far the issuer's clock and ours may disagree, in seconds.
pub const CLOCK_SKEW_SECONDS: i64 = 60;

/// Why a token was refused: the reason a log, a metric and the dashboard name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// No token where the identity source points.
    Missing,
    /// Not three base64url parts of JSON, or too long.
    Malformed,
    /// An algorithm that is not accepted (`none`, HMAC, or one the key does not fit).
    Algorithm,
    /// No key of the issuer has the token's `kid`: the issuer may have rotated its keys.
    UnknownKey,
    BadSignature,
    Issuer,
    Audience,
    /// No `exp`, or past it.
    Expired,
    /// Before its `nbf`.
    NotYetValid,
    /// An `iat` in the future.
    IssuedInFuture,
    /// Valid, but without any of the route's scopes (403, not 401).
    Scope,
}

impl Refusal {
    /// The reason as metrics and logs label it.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Malformed => "malformed",
            Refusal::Algorithm => "algorithm",
            Refusal::UnknownKey => "unknown_key",
            Refusal::BadSignature => "bad_signature",
            Refusal::Issuer => "issuer",
            Refusal::Audience => "audience",
            Refusal::Expired => "expired",
            Refusal::NotYetValid => "not_yet_valid",
            Refusal::IssuedInFuture => "issued_in_future",
            Refusal::Scope => "scope",
        }
    }

    /// What an operator is told, in the dashboard's token test.
    pub fn explain(self) -> &'static str {
        match self {
            Refusal::Missing => "no token was sent where the identity source points",
            Refusal::Malformed => "the token is not a well-formed JWT (three base64url parts of JSON)",
            Refusal::Algorithm => "the token's algorithm is not accepted or does not fit the key (only RS*, PS*, ES256/384 and EdDSA)",
            Refusal::UnknownKey => "no key of the issuer's JWKS has the token's `kid`",
            Refusal::BadSignature => "the signature does not verify with the issuer's key",
            Refusal::Issuer => "the token's `iss` is not the authorizer's issuer",
            Refusal::Audience => "neither the token's `aud` nor its `client_id` is one of the authorizer's audiences",
            Refusal::Expired => "the token has no `exp`, or it has expired",
            Refusal::NotYetValid => "the token's `nbf` is in the future",
            Refusal::IssuedInFuture => "the token's `iat` is in the future",
            Refusal::Scope => "the token grants none of the route's scopes",
        }
    }
}

/// Why a JWKS document was refused.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("a JWKS document is at most {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("not a JWKS document: {0}")]
    Shape(String),
    #[error("a JWKS document has at most {MAX_JWKS_KEYS} keys")]
    TooManyKeys,
    #[error("a JWKS document with no signing key this gateway can use")]
    NoKeys,
}

/// The kind of key an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    P256,
    P384,
    Ed25519,
}

fn family_of(alg: Algorithm) -> Option<Family> {
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => Some(Family::Rsa),
        Algorithm::ES256 => Some(Family::P256),
        Algorithm::ES384 => Some(Family::P384),
        Algorithm::EdDSA => Some(Family::Ed25519),
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => None,
    }
}

/// One usable key of an issuer.
struct Key {
    kid: Option<String>,
    /// The `alg` the JWK is pinned to, when it says.
    alg: Option<Algorithm>,
    family: Family,
    decoding: DecodingKey,
}

/// An issuer's signing keys, parsed once.
pub struct Jwks {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| k.kid.as_deref().unwrap_or("-")))
            .finish()
    }
}

fn key_of(jwk: &Jwk) -> Result<Option<Key>, JwksError> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Ok(None);
    }
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Family::Rsa,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Family::P256,
            EllipticCurve::P384 => Family::P384,
            _ => return Ok(None),
        },
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Family::Ed25519
        }
        // Symmetric (`oct`) keys are never used: a public document cannot hold a secret.
        _ => return Ok(None),
    };
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(a) => {
            let parsed: Algorithm = a
                .to_string()
                .parse()
                .map_err(|_| JwksError::Shape(format!("key algorithm {a} is not a signing one")))?;
            if family_of(parsed) != Some(family) {
                return Err(JwksError::Shape(format!(
                    "key {} says alg {a}, which does not fit its key type",
                    jwk.common.key_id.as_deref().unwrap_or("without kid")
                )));
            }
            Some(parsed)
        }
    };
    let decoding = DecodingKey::from_jwk(jwk).map_err(|e| {
        JwksError::Shape(format!(
            "key {}: {e}",
            jwk.common.key_id.as_deref().unwrap_or("without kid")
        ))
    })?;
    Ok(Some(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        family,
        decoding,
    }))
}

impl Jwks {
    /// Parses a JWKS document: all of it, or nothing. Keys for encryption, symmetric keys
    /// and curves no accepted algorithm uses are left out; a malformed key refuses the
    /// whole document.
    pub fn parse(bytes: &[u8]) -> Result<Jwks, JwksError> {
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge);
        }
        let raw: Value =
            serde_json::from_slice(bytes).map_err(|e| JwksError::Shape(e.to_string()))?;
        let count = raw
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| JwksError::Shape("no `keys` array".to_owned()))?
            .len();
        if count > MAX_JWKS_KEYS {
            return Err(JwksError::TooManyKeys);
        }
        let set: JwkSet =
            serde_json::from_value(raw).map_err(|e| JwksError::Shape(e.to_string()))?;
        let mut keys = Vec::with_capacity(set.keys.len());
        let mut kids = HashSet::new();
        for jwk in &set.keys {
            if let Some(key) = key_of(jwk)? {
                if let Some(kid) = &key.kid {
                    if !kids.insert(kid.clone()) {
                        return Err(JwksError::Shape(format!("kid {kid} is used twice")));
                    }
                }
                keys.push(key);
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoKeys);
        }
        Ok(Jwks { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key for a token: by `kid`, or the only key of the right type when the token
    /// names none.
    fn key_for(&self, kid: Option<&str>, family: Family) -> Option<&Key> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.family == family);
                match (fitting.next(), fitting.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
        }
    }
}

/// A token that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    pub claims: Map<String, Value>,
    /// Its `exp`, in seconds since the epoch.
    pub expires_at: i64,
}

impl Verified {
    /// Whether it grants one of `required` (any, as AWS; none required is granted), in a
    /// space-separated `scope` or an array `scp`.
    pub fn grants_any(&self, required: &[String]) -> bool {
        if required.is_empty() {
            return true;
        }
        let granted = |s: &str| required.iter().any(|r| r == s);
        let in_scope = self
            .claims
            .get("scope")
            .and_then(Value::as_str)
            .is_some_and(|scope| scope.split(' ').any(granted));
        let in_scp = match self.claims.get("scp") {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).any(granted),
            Some(Value::String(scp)) => scp.split(' ').any(granted),
            _ => false,
        };
        in_scope || in_scp
    }

    /// A claim as text, for parameter mapping: strings as they are, other values as JSON.
    pub fn claim_text(&self, name: &str) -> Option<String> {
        match self.claims.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }
}

/// The token in an identity value: the value itself, or after a `Bearer ` scheme.
pub fn token_of(value: &str) -> Option<&str> {
    let value = value.trim_start();
    let token = match value.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("bearer ") => &value[7..],
        _ => value,
    }
    .trim();
    (!token.is_empty() && !token.eq_ignore_ascii_case("bearer")).then_some(token)
}

fn numeric(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, ()> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or(()),
    }
}

/// Verifies `token` against the issuer's `jwks` and the authorizer's `config` at `now`
/// (seconds since the epoch). Scopes are the caller's: see [`Verified::grants_any`].
pub fn verify(
    token: &str,
    jwks: &Jwks,
    config: &JwtConfiguration,
    now: i64,
) -> Result<Verified, Refusal> {
    if token.len() > MAX_TOKEN_BYTES || token.bytes().filter(|b| *b == b'.').count() != 2 {
        return Err(Refusal::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
        // `none` and algorithms the library does not know are refused here.
        jsonwebtoken::errors::ErrorKind::Json(_) => header_refusal(token),
        _ => Refusal::Malformed,
    })?;
    let family = family_of(header.alg).ok_or(Refusal::Algorithm)?;
    let key = jwks
        .key_for(header.kid.as_deref(), family)
        .ok_or(Refusal::UnknownKey)?;
    if key.family != family || key.alg.is_some_and(|a| a != header.alg) {
        return Err(Refusal::Algorithm);
    }
    // The library checks the signature; every claim is checked below, at `now`.
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => Refusal::BadSignature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => Refusal::Algorithm,
            _ => Refusal::Malformed,
        })?;
    let claims = data.claims;
    let issuer = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    if issuer.trim_end_matches('/') != config.issuer {
        return Err(Refusal::Issuer);
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).collect(),
        _ => claims
            .get("client_id")
            .and_then(Value::as_str)
            .into_iter()
            .collect(),
    };
    if !audiences
        .iter()
        .any(|aud| config.audience.iter().any(|a| a == aud))
    {
        return Err(Refusal::Audience);
    }
    let expires_at = numeric(&claims, "exp")
        .map_err(|()| Refusal::Malformed)?
        .ok_or(Refusal::Expired)?;
    if expires_at + CLOCK_SKEW_SECONDS <= now {
        return Err(Refusal::Expired);
    }
    if let Some(nbf) = numeric(&claims, "nbf").map_err(|()| Refusal::Malformed)? {
        if nbf - CLOCK_SKEW_SECONDS > now {
            return Err(Refusal::NotYetValid);
        }
    }
    if let Some(iat) = numeric(&claims, "iat").map_err(|()| Refusal::Malformed)? {
        if iat - CLOCK_SKEW_SECONDS > now {
            return Err(Refusal::IssuedInFuture);
        }
    }
    Ok(Verified { claims, expires_at })
}

/// A header the library could not read: an algorithm it does not know (`none` among
/// them) is the algorithm's fault; anything else, the token's.
fn header_refusal(token: &str) -> Refusal {
    use base64::Engine as _;
    let head = token.split('.').next().unwrap_or("");
    let alg = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|header| header.get("alg").and_then(Value::as_str).map(str::to_owned));
    match alg {
        Some(_) => Refusal::Algorithm,
        None => Refusal::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use jsonwebtoken::{EncodingKey, Header};
    use ring::signature::{Ed25519KeyPair, KeyPair};
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    struct Issuer {
        pkcs8: Vec<u8>,
        public: Vec<u8>,
    }

    fn issuer() -> Issuer {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .expect("key")
            .as_ref()
            .to_vec();
        let public = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .expect("parse")
            .public_key()
            .as_ref()
            .to_vec();
        Issuer { pkcs8, public }
    }

    impl Issuer {
        fn jwks(&self, kid: &str) -> Jwks {
            let doc = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig",
                "x": URL_SAFE_NO_PAD.encode(&self.public)}]});
            Jwks::parse(doc.to_string().as_bytes()).expect("jwks")
        }

        fn token(&self, kid: &str, claims: Value) -> String {
            let mut header = Header::new(Algorithm::EdDSA);
            header.kid = Some(kid.to_owned());
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&self.pkcs8))
                .expect("sign")
        }
    }

    fn config() -> JwtConfiguration {
        JwtConfiguration {
            issuer: "https://idp.example.com".to_owned(),
            audience: vec!["pets".to_owned()],
            jwks_uri: None,
        }
    }

    fn claims() -> Value {
        json!({"iss": "https://idp.example.com/", "aud": "pets", "sub": "u1", "exp": NOW + 300,
               "iat": NOW - 10, "scope": "read:pets write:pets"})
    }

    fn with(change: Value) -> Value {
        let mut c = claims();
        for (k, v) in change.as_object().expect("object") {
            if v.is_null() {
                c.as_object_mut().expect("object").remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    #[test]
    fn a_good_token_is_verified_and_its_scopes_read() {
        let idp = issuer();
        let verified =
            verify(&idp.token("k1", claims()), &idp.jwks("k1"), &config(), NOW).expect("verified");
        assert_eq!(verified.claim_text("sub").as_deref(), Some("u1"));
        assert!(verified.grants_any(&["write:pets".to_owned()]));
        assert!(!verified.grants_any(&["admin".to_owned()]));
        assert!(verified.grants_any(&[]));
    }

    #[test]
    fn each_claim_check_refuses_with_its_reason() {
        let idp = issuer();
        let jwks = idp.jwks("k1");
        for (change, reason) in [
            (json!({"iss": "https://evil.example.com"}), Refusal::Issuer),
            (json!({"aud": "cats"}), Refusal::Audience),
            (json!({"aud": null, "client_id": "pets"}), Refusal::Issuer),
            (json!({"exp": null}), Refusal::Expired),
            (json!({"exp": NOW - 61}), Refusal::Expired),
            (json!({"nbf": NOW + 120}), Refusal::NotYetValid),
            (json!({"iat": NOW + 120}), Refusal::IssuedInFuture),
            (json!({"exp": "tomorrow"}), Refusal::Malformed),
        ] {
            let mut c = with(change.clone());
            if reason == Refusal::Issuer && change.get("client_id").is_some() {
                // `client_id` stands in for a missing `aud`: this one is accepted.
                assert!(verify(&idp.token("k1", c), &jwks, &config(), NOW).is_ok());
                continue;
            }
            c["sub"] = json!("x");
            assert_eq!(
                verify(&idp.token("k1", c), &jwks, &config(), NOW).unwrap_err(),
                reason,
                "{change}"
            );
        }
    }

    #[test]
    fn forged_unsigned_and_foreign_tokens_are_refused() {
        let idp = issuer();
        let jwks = idp.jwks("k1");
        let good = idp.token("k1", claims());
        let (head, rest) = good.split_once('.').expect("parts");
        let (body, _sig) = rest.split_once('.').expect("parts");
        let none = format!(
            "{}.{body}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1"}"#)
        );
        assert_eq!(
            verify(&none, &jwks, &config(), NOW).unwrap_err(),
            Refusal::Algorithm
        );
        let hmac = jsonwebtoken::encode(
            &Header {
                kid: Some("k1".into()),
                ..Header::new(Algorithm::HS256)
            },
            &claims(),
            &EncodingKey::from_secret(&idp.public),
        )
        .expect("sign");
        assert_eq!(
            verify(&hmac, &jwks, &config(), NOW).unwrap_err(),
            Refusal::Algorithm
        );
        let tampered_body = URL_SAFE_NO_PAD.encode(with(json!({"sub": "admin"})).to_string());
        let tampered = format!(
            "{head}.{tampered_body}.{}",
            good.rsplit('.').next().expect("sig")
        );
        assert_eq!(
            verify(&tampered, &jwks, &config(), NOW).unwrap_err(),
            Refusal::BadSignature
        );
        let stranger = issuer();
        assert_eq!(
            verify(&stranger.token("k1", claims()), &jwks, &config(), NOW).unwrap_err(),
            Refusal::BadSignature
        );
        assert_eq!(
            verify(&stranger.token("k2", claims()), &jwks, &config(), NOW).unwrap_err(),
            Refusal::UnknownKey
        );
        for junk in ["", "a.b", "a.b.c", "...", &"x".repeat(MAX_TOKEN_BYTES + 1)] {
            assert_eq!(
                verify(junk, &jwks, &config(), NOW).unwrap_err(),
                Refusal::Malformed,
                "{junk:.20}"
            );
        }
    }

    #[test]
    fn a_jwks_document_is_taken_whole_or_not_at_all() {
        let idp = issuer();
        let x = URL_SAFE_NO_PAD.encode(&idp.public);
        let good = json!({"kty": "OKP", "crv": "Ed25519", "kid": "a", "x": x});
        for bad in [
            json!({}),
            json!({"keys": "no"}),
            json!({"keys": []}),
            json!({"keys": [good, {"kty": "RSA", "kid": "b", "n": "!!", "e": "AQAB"}]}),
            json!({"keys": [good, good]}),
            json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "a", "x": x, "alg": "RS256"}]}),
            json!({"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}),
            json!({"keys": vec![good.clone(); MAX_JWKS_KEYS + 1]}),
        ] {
            assert!(Jwks::parse(bad.to_string().as_bytes()).is_err(), "{bad}");
        }
        assert!(matches!(
            Jwks::parse(&vec![b' '; MAX_JWKS_BYTES + 1]),
            Err(JwksError::TooLarge)
        ));
        let with_encryption_key = json!({"keys": [good, {"kty": "OKP", "crv": "Ed25519", "kid": "e", "use": "enc", "x": x}]});
        assert_eq!(
            Jwks::parse(with_encryption_key.to_string().as_bytes())
                .expect("parsed")
                .len(),
            1
        );
    }

    #[test]
    fn the_bearer_scheme_is_optional() {
        assert_eq!(token_of("Bearer abc"), Some("abc"));
        assert_eq!(token_of("bearer  abc "), Some("abc"));
        assert_eq!(token_of("abc"), Some("abc"));
        assert_eq!(token_of("Bearer "), None);
        assert_eq!(token_of(""), None);
    }
}
