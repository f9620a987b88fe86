//! What clients see when the gateway itself answers: AWS-shaped JSON bodies with fixed
//! text, built from static bytes so an error costs no formatting.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::request::body_timeout::IdleTimeout;

/// The body of every proxy response: the upstream's, streamed (and cut off if the
/// upstream sends nothing for the route's timeout), or one of ours.
pub type ProxyBody = Either<IdleTimeout<Incoming>, Full<Bytes>>;

/// Why the gateway answered instead of the integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// The request is not acceptable: its path (dot segments, encoded slashes, bad
    /// escapes), its method's case, its `Host` headers, or its body's framing.
    BadRequest,
    /// A method no route may name (`CONNECT`, `TRACE`).
    MethodNotAllowed,
    /// A transfer coding other than `chunked`.
    NotImplemented,
    /// No route (and no `$default`) for this request, or no such API stage.
    NotFound,
    /// The route requires an API key and none valid was sent, or its REQUEST authorizer
    /// said no.
    Forbidden,
    /// No token or identity where the route's authorizer looks for one.
    Unauthorized,
    /// A token the route's JWT authorizer refused.
    InvalidToken,
    /// A valid token without any of the route's scopes.
    InsufficientScope,
    /// The route's REQUEST authorizer failed, timed out or answered garbage.
    InternalError,
    /// Over a throttle.
    TooManyRequests,
    /// Over a quota.
    LimitExceeded,
    /// The request body is over the limit.
    PayloadTooLarge,
    /// The request target is longer than the limit.
    UriTooLong,
    /// The client stopped sending its request body.
    RequestTimeout,
    /// The upstream could not be reached or broke the exchange.
    BadGateway,
    /// The upstream did not answer within the route's timeout.
    GatewayTimeout,
    /// The proxy has no configuration yet.
    NotReady,
    /// No such WebSocket connection (any more).
    Gone,
    /// A WebSocket API's invoke URL was called without a WebSocket upgrade.
    UpgradeRequired,
    /// This proxy holds as many WebSocket connections as it may.
    TooManyConnections,
}

impl Reject {
    pub fn status(self) -> StatusCode {
        self.parts().0
    }

    /// The `message` of the body, also written to access logs as `errorMessage`.
    pub fn message(self) -> &'static str {
        self.parts().1
    }

    /// Status, message and the body holding that message: one table, so they agree.
    fn parts(self) -> (StatusCode, &'static str, &'static [u8]) {
        macro_rules! reject {
            ($status:ident, $message:literal) => {
                (
                    StatusCode::$status,
                    $message,
                    concat!(r#"{"message":""#, $message, r#""}"#).as_bytes(),
                )
            };
        }
        match self {
            Reject::BadRequest => reject!(BAD_REQUEST, "Bad Request"),
            Reject::NotFound => reject!(NOT_FOUND, "Not Found"),
            Reject::MethodNotAllowed => reject!(METHOD_NOT_ALLOWED, "Method Not Allowed"),
            Reject::NotImplemented => reject!(NOT_IMPLEMENTED, "Not Implemented"),
            Reject::Forbidden | Reject::InsufficientScope => reject!(FORBIDDEN, "Forbidden"),
            Reject::Unauthorized | Reject::InvalidToken => reject!(UNAUTHORIZED, "Unauthorized"),
            Reject::InternalError => reject!(INTERNAL_SERVER_ERROR, "Internal Server Error"),
            Reject::TooManyRequests => reject!(TOO_MANY_REQUESTS, "Too Many Requests"),
            Reject::LimitExceeded => reject!(TOO_MANY_REQUESTS, "Limit Exceeded"),
            Reject::PayloadTooLarge => reject!(PAYLOAD_TOO_LARGE, "Request Entity Too Large"),
            Reject::UriTooLong => reject!(URI_TOO_LONG, "Request-URI Too Long"),
            Reject::RequestTimeout => reject!(REQUEST_TIMEOUT, "Request Timeout"),
            Reject::BadGateway => reject!(BAD_GATEWAY, "Bad Gateway"),
            Reject::GatewayTimeout => reject!(GATEWAY_TIMEOUT, "Endpoint request timed out"),
            Reject::NotReady => reject!(SERVICE_UNAVAILABLE, "Service Unavailable"),
            Reject::Gone => reject!(GONE, "Gone"),
            Reject::UpgradeRequired => reject!(UPGRADE_REQUIRED, "Upgrade Required"),
            Reject::TooManyConnections => reject!(SERVICE_UNAVAILABLE, "Too Many Connections"),
        }
    }

    /// The JSON body of the answer.
    pub fn body(self) -> &'static [u8] {
        self.parts().2
    }

    pub fn response(self) -> Response<ProxyBody> {
        let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(self.body()))));
        *response.status_mut() = self.status();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        // RFC 6750: what a client should do about its bearer token.
        let challenge = match self {
            Reject::Unauthorized => Some("Bearer"),
            Reject::InvalidToken => Some(r#"Bearer error="invalid_token""#),
            Reject::InsufficientScope => Some(r#"Bearer error="insufficient_scope""#),
            _ => None,
        };
        if let Some(challenge) = challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}
