//! Bounded HTTP exchanges of authorizers: a GET of an issuer's documents, a POST to a
//! REQUEST authorizer. Each has a deadline for the whole exchange and a cap on the body
//! read, so an issuer or authorizer that is slow, endless or huge costs a bounded wait
//! and a bounded buffer, never the proxy.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};

use crate::upstream::EventClient;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("answered {0}")]
    Status(StatusCode),
    #[error("the body is over {0} bytes or broken")]
    Body(usize),
}

/// Sends one request and reads the whole answer, within `deadline` and `max_bytes`.
pub async fn exchange(
    client: &EventClient,
    method: Method,
    uri: &http::Uri,
    body: Option<Bytes>,
    deadline: Duration,
    max_bytes: usize,
) -> Result<Bytes, FetchError> {
    let mut request = Request::new(Full::new(body.clone().unwrap_or_default()));
    *request.method_mut() = method;
    *request.uri_mut() = uri.clone();
    let headers = request.headers_mut();
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(header::USER_AGENT, HeaderValue::from_static("gatehouse"));
    if body.is_some() {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let whole = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| FetchError::Unreachable(e.to_string()))?;
        if response.status() != StatusCode::OK {
            return Err(FetchError::Status(response.status()));
        }
        let declared = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|len| len > max_bytes) {
            return Err(FetchError::Body(max_bytes));
        }
        Limited::new(response.into_body(), max_bytes)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|_| FetchError::Body(max_bytes))
    };
    tokio::time::timeout(deadline, whole)
        .await
        .map_err(|_| FetchError::Timeout(deadline))?
}
