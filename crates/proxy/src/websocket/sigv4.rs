//! AWS Signature Version 4, as AWS SDK clients of `apigatewaymanagementapi` sign their
//! `@connections` calls: verified here with the proxy's management token as the secret
//! access key (any access key id), so those clients work unchanged when pointed at a
//! stage's invoke URL.

use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use http::{HeaderMap, Method};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far a request's `x-amz-date` may be from now, as AWS allows.
const MAX_SKEW_SECONDS: i64 = 15 * 60;

/// The parts of a request a signature covers.
pub struct Signed<'a> {
    pub method: &'a Method,
    /// The path exactly as the client sent it (still percent-encoded).
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Whether `request` carries a valid SigV4 signature made with `secret`, dated within
/// fifteen minutes of `now`.
pub fn verify(request: &Signed<'_>, secret: &str, now: DateTime<Utc>) -> bool {
    let Some(auth) = header(request.headers, "authorization") else {
        return false;
    };
    let Some(parts) = Authorization::parse(auth) else {
        return false;
    };
    let Some(date) = header(request.headers, "x-amz-date") else {
        return false;
    };
    let Ok(when) = NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ") else {
        return false;
    };
    let skew = (now - when.and_utc()).num_seconds().abs();
    let scope_date = parts.scope.split('/').next().unwrap_or_default();
    if skew > MAX_SKEW_SECONDS || !date.starts_with(scope_date) || scope_date.len() != 8 {
        return false;
    }
    if request.query.is_some_and(|q| !q.is_empty()) {
        // The management API takes no query; refusing one spares canonicalising it.
        return false;
    }
    let Some(canonical) = canonical_request(request, &parts.signed_headers) else {
        return false;
    };
    let string_to_sign = format!(
        "{ALGORITHM}\n{date}\n{}\n{}",
        parts.scope,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = format!("AWS4{secret}").into_bytes();
    for piece in parts.scope.split('/') {
        key = hmac(&key, piece.as_bytes());
    }
    let expected = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    bool::from(expected.as_bytes().ct_eq(parts.signature.as_bytes()))
}

struct Authorization<'a> {
    /// `date/region/service/aws4_request`.
    scope: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

impl<'a> Authorization<'a> {
    fn parse(value: &'a str) -> Option<Authorization<'a>> {
        let rest = value.strip_prefix(ALGORITHM)?.trim_start();
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for item in rest.split(',') {
            let (name, value) = item.trim().split_once('=')?;
            match name {
                "Credential" => credential = Some(value),
                "SignedHeaders" => signed = Some(value),
                "Signature" => signature = Some(value),
                _ => return None,
            }
        }
        // `<access key id>/<scope>`: the key id is not checked, the scope is signed.
        let (_, scope) = credential?.split_once('/')?;
        if scope.split('/').count() != 4 || !scope.ends_with("/aws4_request") {
            return None;
        }
        let signed_headers: Vec<&str> = signed?.split(';').collect();
        // The host and the date must be signed, so a signature cannot be replayed
        // elsewhere or later.
        if !signed_headers.contains(&"host") || !signed_headers.contains(&"x-amz-date") {
            return None;
        }
        Some(Authorization {
            scope,
            signed_headers,
            signature: signature?,
        })
    }
}

fn canonical_request(request: &Signed<'_>, signed_headers: &[&str]) -> Option<String> {
    let mut canonical = String::with_capacity(256);
    canonical.push_str(request.method.as_str());
    canonical.push('\n');
    // Services other than S3 encode the (already encoded) path once more.
    canonical.push_str(&uri_encode(request.path));
    canonical.push_str("\n\n");
    for name in signed_headers {
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let values: Vec<&str> = request
            .headers
            .get_all(*name)
            .iter()
            .map(|v| v.to_str().map(str::trim))
            .collect::<Result<_, _>>()
            .ok()?;
        if values.is_empty() {
            return None;
        }
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(&values.join(","));
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(&signed_headers.join(";"));
    canonical.push('\n');
    let payload = hex::encode(Sha256::digest(request.body));
    if let Some(declared) = header(request.headers, "x-amz-content-sha256") {
        if declared != payload {
            return None;
        }
    }
    canonical.push_str(&payload);
    Some(canonical)
}

/// Percent-encodes everything but unreserved characters and `/`.
fn uri_encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 8);
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn at(text: &str) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%SZ")
            .expect("date")
            .and_utc()
    }

    /// AWS's published example (Signature Version 4, "Examples of the complete Version 4
    /// signing process"): IAM ListUsers, signed with the documentation's example secret.
    #[test]
    fn verifies_aws_documented_example_signature() {
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("iam.amazonaws.com"));
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        headers.insert("authorization", HeaderValue::from_static(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
        ));
        let request = Signed {
            method: &Method::GET,
            path: "/",
            query: None,
            headers: &headers,
            body: b"",
        };
        // The example signs a query string, which the management API never has: check
        // the signing chain on the canonical request the example gives instead.
        let canonical = "GET\n/\nAction=ListUsers&Version=2010-05-08\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\nhost:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let mut key = format!("AWS4{secret}").into_bytes();
        for piece in ["20150830", "us-east-1", "iam", "aws4_request"] {
            key = hmac(&key, piece.as_bytes());
        }
        assert_eq!(
            hex::encode(hmac(&key, string_to_sign.as_bytes())),
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
        // Without the query the same signature must not verify.
        assert!(!verify(&request, secret, at("20150830T123600Z")));
    }

    /// Signs as an SDK does, from the parts above, to check `verify` end to end.
    fn sign(secret: &str, method: &Method, path: &str, headers: &mut HeaderMap, body: &[u8]) {
        let signed = ["host", "x-amz-date"];
        let request = Signed {
            method,
            path,
            query: None,
            headers,
            body,
        };
        let canonical = canonical_request(&request, &signed).expect("canonical");
        let date = header(headers, "x-amz-date").expect("date").to_owned();
        let scope = format!("{}/us-east-1/execute-api/aws4_request", &date[..8]);
        let string_to_sign = format!(
            "{ALGORITHM}\n{date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let mut key = format!("AWS4{secret}").into_bytes();
        for piece in scope.split('/') {
            key = hmac(&key, piece.as_bytes());
        }
        let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
        let value = format!(
            "{ALGORITHM} Credential=AKID/{scope}, SignedHeaders=host;x-amz-date, Signature={signature}"
        );
        headers.insert(
            "authorization",
            HeaderValue::from_str(&value).expect("value"),
        );
    }

    #[test]
    fn a_signed_call_verifies_and_any_change_breaks_it() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:8000"));
        headers.insert("x-amz-date", HeaderValue::from_static("20261124T120000Z"));
        let path = "/chat/prod/%40connections/abc";
        sign("token", &Method::POST, path, &mut headers, b"hello");
        let now = at("20261124T120500Z");
        let request = |method, path, body| Signed {
            method,
            path,
            query: None,
            headers: &headers,
            body,
        };
        assert!(verify(
            &request(&Method::POST, path, b"hello"),
            "token",
            now
        ));
        assert!(!verify(
            &request(&Method::POST, path, b"hellO"),
            "token",
            now
        ));
        assert!(!verify(
            &request(&Method::DELETE, path, b"hello"),
            "token",
            now
        ));
        assert!(!verify(
            &request(&Method::POST, "/chat/dev/%40connections/abc", b"hello"),
            "token",
            now
        ));
        assert!(!verify(
            &request(&Method::POST, path, b"hello"),
            "other",
            now
        ));
        assert!(!verify(
            &request(&Method::POST, path, b"hello"),
            "token",
            at("20261124T123000Z")
        ));
    }

    #[test]
    fn paths_are_encoded_once_more_as_aws_does_for_apis() {
        assert_eq!(
            uri_encode("/a/%40connections/x=y"),
            "/a/%2540connections/x%3Dy"
        );
        assert_eq!(uri_encode("/a-b_c.d~e"), "/a-b_c.d~e");
    }
}
