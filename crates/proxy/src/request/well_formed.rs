//! What the proxy refuses before it looks for a route: requests that a backend could read
//! differently from the gateway. Methods are case-sensitive (RFC 9110 §9.1) but many
//! backends are not, so `get` would reach a `GET` handler through a catch-all that needs
//! no key; `CONNECT` and `TRACE` are for proxies and debugging, never an API's route;
//! an HTTP/1.1 request has exactly one `Host` (RFC 9112 §3.2); and a transfer coding the
//! gateway does not apply would be dropped on the way upstream (RFC 9112 §6.1: 501).
//!
//! Each check reads a header or two; none allocates.

use http::{header, HeaderMap, Method, Request, Version};

use crate::request::errors::Reject;

/// `Ok` when the request may be routed, else the gateway's answer. The first phase of
/// every request; a target longer than `max_uri_bytes` is refused before anything else.
pub fn check<B>(req: &Request<B>, max_uri_bytes: usize) -> Result<(), Reject> {
    let target_len = req
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target_len > max_uri_bytes {
        return Err(Reject::UriTooLong);
    }
    check_method(req.method())?;
    check_host(req.version(), req.headers())?;
    check_transfer_coding(req.headers())
}

fn check_method(method: &Method) -> Result<(), Reject> {
    if *method == Method::CONNECT || *method == Method::TRACE {
        // No route key can name them, and `ANY` must not take them.
        return Err(Reject::MethodNotAllowed);
    }
    if method.as_str().bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(Reject::BadRequest);
    }
    Ok(())
}

fn check_host(version: Version, headers: &HeaderMap) -> Result<(), Reject> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(Reject::BadRequest);
    }
    // HTTP/1.0 made `Host` optional; HTTP/2 carries `:authority` instead.
    if first.is_none() && version == Version::HTTP_11 {
        return Err(Reject::BadRequest);
    }
    Ok(())
}

fn check_transfer_coding(headers: &HeaderMap) -> Result<(), Reject> {
    // The server has already refused codings that do not end in `chunked`; what is left
    // to refuse is a coding before it, which would be lost when the body is re-chunked.
    for value in &headers.get_all(header::TRANSFER_ENCODING) {
        let only_chunked = value.to_str().is_ok_and(|v| {
            v.split(',')
                .all(|c| c.trim().eq_ignore_ascii_case("chunked"))
        });
        if !only_chunked {
            return Err(Reject::NotImplemented);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, version: Version, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder()
            .method(method)
            .uri("/a/b/c")
            .version(version);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).expect("request")
    }

    /// Checked with room for any target.
    fn check_all<B>(req: &Request<B>) -> Result<(), Reject> {
        check(req, usize::MAX)
    }

    #[test]
    fn a_target_over_the_limit_is_refused_first() {
        let req = request("get", Version::HTTP_11, &[]);
        assert_eq!(check(&req, 5), Err(Reject::UriTooLong));
        assert_eq!(check(&req, 6), Err(Reject::BadRequest));
    }

    #[test]
    fn methods_must_be_upper_case_and_routable() {
        let host = [("host", "example.com")];
        for (method, answer) in [
            ("GET", Ok(())),
            ("PROPFIND", Ok(())),
            ("M-SEARCH", Ok(())),
            ("get", Err(Reject::BadRequest)),
            ("Post", Err(Reject::BadRequest)),
            ("CONNECT", Err(Reject::MethodNotAllowed)),
            ("TRACE", Err(Reject::MethodNotAllowed)),
        ] {
            assert_eq!(
                check_all(&request(method, Version::HTTP_11, &host)),
                answer,
                "{method}"
            );
        }
    }

    #[test]
    fn an_http_1_1_request_has_exactly_one_host() {
        let one = [("host", "a")];
        let two = [("host", "a"), ("host", "b")];
        assert_eq!(check_all(&request("GET", Version::HTTP_11, &one)), Ok(()));
        assert_eq!(
            check_all(&request("GET", Version::HTTP_11, &[])),
            Err(Reject::BadRequest)
        );
        assert_eq!(
            check_all(&request("GET", Version::HTTP_11, &two)),
            Err(Reject::BadRequest)
        );
        assert_eq!(check_all(&request("GET", Version::HTTP_10, &[])), Ok(()));
        assert_eq!(
            check_all(&request("GET", Version::HTTP_10, &two)),
            Err(Reject::BadRequest)
        );
    }

    #[test]
    fn only_the_chunked_coding_is_forwarded() {
        let with = |te: &str| {
            check_all(&request(
                "POST",
                Version::HTTP_11,
                &[("host", "a"), ("transfer-encoding", te)],
            ))
        };
        assert_eq!(with("chunked"), Ok(()));
        assert_eq!(with("Chunked"), Ok(()));
        assert_eq!(with("gzip, chunked"), Err(Reject::NotImplemented));
        assert_eq!(with("gzip"), Err(Reject::NotImplemented));
    }
}
