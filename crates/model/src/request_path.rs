//! The one normalisation of request paths. Routes are matched on the normalised path and
//! the upstream is sent what was matched, so a backend that decodes or tidies paths can
//! never see a request the gateway routed as something else (`/%6frders` routed by a
//! public catch-all, then served by the backend as the protected `/orders`).
//!
//! What it does, in order:
//! - a percent-encoded unreserved character (`A-Z a-z 0-9 - . _ ~`) is decoded, and the
//!   hex digits of every other escape are written in upper case (RFC 3986 §6.2.2);
//! - runs of `/` become one `/`, and a trailing `/` is dropped (`/a//b/` is `/a/b`), as
//!   most backends read them;
//!
//! and what it refuses (the gateway answers 400):
//! - an encoded `/` or `\` (`%2F`, `%5C`): a backend may split on it, the gateway would not;
//! - a `.` or `..` segment, written plainly or encoded (`%2e%2e`): it could climb out of a
//!   greedy parameter's upstream prefix;
//! - a `%` not followed by two hex digits, or an escape of a control character or NUL;
//! - a path that does not start with `/`.

use std::borrow::Cow;

/// Why a request path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path does not start with `/`")]
    NotAbsolute,
    #[error("the path holds an encoded `/` or `\\`")]
    EncodedSeparator,
    #[error("the path holds a `.` or `..` segment")]
    DotSegment,
    #[error("the path holds a `%` that is not a valid escape")]
    BadEscape,
}

/// The normalised form of `path` (without its query), borrowed when it already is.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let bytes = path.as_bytes();
    let tidy = !bytes.contains(&b'%')
        && !path.contains("//")
        && (bytes.len() == 1 || !path.ends_with('/'));
    if tidy {
        // The common case: nothing to rewrite, one pass to check for dot segments.
        if path.split('/').any(is_plain_dot_segment) {
            return Err(PathError::DotSegment);
        }
        return Ok(Cow::Borrowed(path));
    }
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let (hi, lo) = match (bytes.get(i + 1), bytes.get(i + 2)) {
                    (Some(&h), Some(&l)) => (hex(h), hex(l)),
                    _ => (None, None),
                };
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(PathError::BadEscape);
                };
                let decoded = hi << 4 | lo;
                match decoded {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    0..=0x1f | 0x7f => return Err(PathError::BadEscape),
                    b if is_unreserved(b) => out.push(char::from(b)),
                    _ => {
                        out.push('%');
                        out.push(char::from(HEX_UPPER[usize::from(hi)]));
                        out.push(char::from(HEX_UPPER[usize::from(lo)]));
                    }
                }
                i += 3;
            }
            b'/' => {
                if !out.ends_with('/') {
                    out.push('/');
                }
                i += 1;
            }
            _ => {
                // Copies up to the next byte that needs a look; the input is valid UTF-8
                // and `%` and `/` are ASCII, so the slice is whole characters.
                let end = bytes[i..]
                    .iter()
                    .position(|&b| b == b'%' || b == b'/')
                    .map_or(bytes.len(), |n| i + n);
                out.push_str(&path[i..end]);
                i = end;
            }
        }
    }
    if out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    if out.split('/').any(is_plain_dot_segment) {
        return Err(PathError::DotSegment);
    }
    Ok(Cow::Owned(out))
}

/// The normalised form of one literal segment of a route key: escapes of unreserved
/// characters decoded and hex digits in upper case, as a request's path will be. A
/// segment that no normalised request could hold is returned unchanged (it matches
/// nothing either way).
pub fn normalize_segment(segment: &str) -> Cow<'_, str> {
    if !segment.contains('%') {
        return Cow::Borrowed(segment);
    }
    match normalize(&format!("/{segment}")) {
        Ok(normal) if normal.len() > 1 && !normal[1..].contains('/') => {
            Cow::Owned(normal[1..].to_owned())
        }
        _ => Cow::Borrowed(segment),
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_plain_dot_segment(segment: &str) -> bool {
    segment == "." || segment == ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(path: &str) -> String {
        normalize(path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .into_owned()
    }

    #[test]
    fn decodes_unreserved_escapes_so_they_match_their_plain_form() {
        assert_eq!(ok("/shop/prod/%6frders"), "/shop/prod/orders");
        assert_eq!(ok("/%41%7a%30%2D%5f%7E"), "/Az0-_~");
        assert_eq!(ok("/a%2eb"), "/a.b");
    }

    #[test]
    fn keeps_other_escapes_with_upper_case_hex() {
        assert_eq!(ok("/caf%c3%a9"), "/caf%C3%A9");
        assert_eq!(ok("/a%20b%3f"), "/a%20b%3F");
        assert_eq!(ok("/q%3Dx"), "/q%3Dx");
    }

    #[test]
    fn merges_slashes_and_drops_a_trailing_one() {
        assert_eq!(ok("/"), "/");
        assert_eq!(ok("//"), "/");
        assert_eq!(ok("/a//b"), "/a/b");
        assert_eq!(ok("/a/b/"), "/a/b");
        assert_eq!(ok("///a///"), "/a");
    }

    #[test]
    fn borrows_a_path_that_is_already_normal() {
        assert!(matches!(
            normalize("/pets/prod/pets/1"),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn refuses_encoded_separators_dot_segments_and_bad_escapes() {
        for (path, error) in [
            ("/a%2Fb", PathError::EncodedSeparator),
            ("/a%2fb", PathError::EncodedSeparator),
            ("/a%5cb", PathError::EncodedSeparator),
            ("/..%2f", PathError::EncodedSeparator),
            ("/a/../b", PathError::DotSegment),
            ("/a/./b", PathError::DotSegment),
            ("/a/..", PathError::DotSegment),
            ("/a/%2e%2e/b", PathError::DotSegment),
            ("/a/%2E", PathError::DotSegment),
            ("/a/.%2e/", PathError::DotSegment),
            ("/a/..//b", PathError::DotSegment),
            ("/a%", PathError::BadEscape),
            ("/a%2", PathError::BadEscape),
            ("/a%zz", PathError::BadEscape),
            ("/a%00", PathError::BadEscape),
            ("/a%0a", PathError::BadEscape),
            ("*", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
        ] {
            assert_eq!(normalize(path), Err(error), "{path}");
        }
        for path in [
            "/a/.../b",
            "/a/..b",
            "/.well-known/x",
            "/v1.2/x",
            "/a/%2e%2e%2e",
        ] {
            assert!(normalize(path).is_ok(), "{path}");
        }
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for path in ["/%6frders//x/", "/caf%c3%a9", "/a%20b", "/~u%7e"] {
            let once = ok(path);
            assert_eq!(ok(&once), once, "{path}");
        }
    }

    #[test]
    fn literal_segments_are_normalised_like_requests() {
        assert_eq!(normalize_segment("orders"), "orders");
        assert_eq!(normalize_segment("%6frders"), "orders");
        assert_eq!(normalize_segment("caf%c3%a9"), "caf%C3%A9");
        assert_eq!(normalize_segment("a%2Fb"), "a%2Fb");
    }
}
