//! Dot segments (`.` and `..`, plain or percent-encoded) that would let a request climb
//! out of the path its integration names. Request paths with one are refused when they
//! are normalised; these checks cover what a request's values build inside a template.

use gatehouse_model::integration::BoundUri;

/// True when a path segment is `.` or `..`, written plainly or percent-encoded.
pub fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(is_dot_segment)
}

/// True when `upstream`, rendered from `uri` for a request, has more `.` or `..` segments
/// than the template itself: the request's values made one with the text beside them
/// (`..{proxy}` and `/x`, `%2{a}` and `e`), though none holds one alone.
pub fn makes_dot_segment(uri: &BoundUri, upstream: &http::Uri) -> bool {
    let count = |path: &str| path.split('/').filter(|s| is_dot_segment(s)).count();
    let made = count(upstream.path());
    made > 0
        && uri
            .render(|_| "x", None)
            .map_or(true, |sample| made > count(sample.path()))
}

fn is_dot_segment(segment: &str) -> bool {
    let mut dots = 0;
    let mut rest = segment.as_bytes();
    while !rest.is_empty() {
        if rest[0] == b'.' {
            rest = &rest[1..];
        } else if rest.len() >= 3
            && rest[0] == b'%'
            && rest[1] == b'2'
            && rest[2].eq_ignore_ascii_case(&b'e')
        {
            rest = &rest[3..];
        } else {
            return false;
        }
        dots += 1;
    }
    dots == 1 || dots == 2
}

#[cfg(test)]
mod tests {
    use gatehouse_model::{StageVariables, UriTemplate};

    use super::{has_dot_segment, makes_dot_segment};

    #[test]
    fn dot_segments_are_found_plain_or_encoded() {
        for path in [
            "/a/../b",
            "/a/./b",
            "/..",
            "/a/%2e%2E/b",
            "/a/.%2e",
            "/a/%2E",
        ] {
            assert!(has_dot_segment(path), "{path}");
        }
        for path in [
            "/",
            "/a/b",
            "/a/.../b",
            "/a/..b",
            "/a/.hidden",
            "/a/%2e%2e%2e",
            "/v1.2/x",
        ] {
            assert!(!has_dot_segment(path), "{path}");
        }
    }

    #[test]
    fn values_cannot_make_a_dot_segment_with_the_template_text() {
        let rendered = |template: &str, params: &[&str], value: &str| {
            let bound = UriTemplate::parse(template)
                .expect("template")
                .bind(&StageVariables::default(), params)
                .expect("binds");
            let upstream = bound.render(|_| value, None).expect("renders");
            makes_dot_segment(&bound, &upstream)
        };
        assert!(rendered("http://up/a/..{proxy}", &["proxy"], "/x"));
        assert!(rendered("http://up/a/%2{id}", &["id"], "e"));
        assert!(!rendered("http://up/a/..{proxy}", &["proxy"], "x"));
        assert!(!rendered("http://up/a/{proxy}", &["proxy"], "b/c"));
        // The template's own dot segments are the operator's choice.
        assert!(!rendered("http://up/a/../b/{id}", &["id"], "c"));
    }
}
