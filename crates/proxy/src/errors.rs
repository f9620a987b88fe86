//! What clients see when the gateway itself answers: AWS-shaped JSON bodies with fixed
//! text, built from static bytes so an error costs no formatting.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

/// The body of every proxy response: the upstream's, streamed, or one of ours.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// Why the gateway answered instead of the integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// The request path is not acceptable (dot segments).
    BadRequest,
    /// No route (and no `$default`) for this request, or no such API stage.
    NotFound,
    /// The route requires an API key and none valid was sent.
    Forbidden,
    /// Over a throttle.
    TooManyRequests,
    /// Over a quota.
    LimitExceeded,
    /// The request body is over the limit.
    PayloadTooLarge,
    /// The upstream could not be reached or broke the exchange.
    BadGateway,
    /// The upstream did not answer within the route's timeout.
    GatewayTimeout,
    /// The proxy has no configuration yet.
    NotReady,
}

impl Reject {
    pub fn status(self) -> StatusCode {
        match self {
            Reject::BadRequest => StatusCode::BAD_REQUEST,
            Reject::NotFound => StatusCode::NOT_FOUND,
            Reject::Forbidden => StatusCode::FORBIDDEN,
            Reject::TooManyRequests | Reject::LimitExceeded => StatusCode::TOO_MANY_REQUESTS,
            Reject::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reject::BadGateway => StatusCode::BAD_GATEWAY,
            Reject::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Reject::NotReady => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn body(self) -> &'static [u8] {
        match self {
            Reject::BadRequest => br#"{"message":"Bad Request"}"#,
            Reject::NotFound => br#"{"message":"Not Found"}"#,
            Reject::Forbidden => br#"{"message":"Forbidden"}"#,
            Reject::TooManyRequests => br#"{"message":"Too Many Requests"}"#,
            Reject::LimitExceeded => br#"{"message":"Limit Exceeded"}"#,
            Reject::PayloadTooLarge => br#"{"message":"Request Entity Too Large"}"#,
            Reject::BadGateway => br#"{"message":"Bad Gateway"}"#,
            Reject::GatewayTimeout => br#"{"message":"Endpoint request timed out"}"#,
            Reject::NotReady => br#"{"message":"Service Unavailable"}"#,
        }
    }

    pub fn response(self) -> Response<ProxyBody> {
        let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(self.body()))));
        *response.status_mut() = self.status();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}
