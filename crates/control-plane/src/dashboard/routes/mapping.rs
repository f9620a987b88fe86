//! An HTTP proxy integration's parameter mapping as the route form shows it: one rule a
//! line, `key = value` for the request and `status key = value` for the response, read
//! back into the model's maps (which check every rule). A stored mapping shown and sent
//! back unchanged is the same mapping.

use std::collections::BTreeMap;

use gatehouse_model::mapping::{RequestParameters, ResponseParameters};

/// The request rules as lines: `overwrite:header.x-user-id = $context.authorizer.claims.sub`.
pub(super) fn request_lines(params: &RequestParameters) -> String {
    let rules: BTreeMap<String, String> = params.clone().into();
    rules
        .iter()
        .map(|(key, value)| format!("{key} = {value}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The response rules as lines: `404 overwrite:statuscode = 200`.
pub(super) fn response_lines(params: &ResponseParameters) -> String {
    let by_status: BTreeMap<String, BTreeMap<String, String>> = params.clone().into();
    by_status
        .iter()
        .flat_map(|(status, rules)| {
            rules
                .iter()
                .map(move |(key, value)| format!("{status} {key} = {value}"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `key = value` lines (blank ones skipped) as request rules, or why not.
pub(super) fn parse_request(raw: &str) -> Result<RequestParameters, String> {
    let mut rules = BTreeMap::new();
    for (n, line) in numbered(raw) {
        let (key, value) = rule(line)
            .ok_or_else(|| format!("line {n}: write `action:target = value`, e.g. `overwrite:header.x-user-id = $context.authorizer.claims.sub`"))?;
        if rules.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(format!("line {n}: `{key}` is set twice"));
        }
    }
    RequestParameters::try_from(rules)
}

/// `status key = value` lines (blank ones skipped) as response rules, or why not.
pub(super) fn parse_response(raw: &str) -> Result<ResponseParameters, String> {
    let mut by_status: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (n, line) in numbered(raw) {
        let parsed = line
            .split_once(char::is_whitespace)
            .and_then(|(status, rest)| Some((status, rule(rest)?)));
        let Some((status, (key, value))) = parsed else {
            return Err(format!(
                "line {n}: write `status action:target = value`, e.g. `404 overwrite:statuscode = 200`"
            ));
        };
        let rules = by_status.entry(status.to_owned()).or_default();
        if rules.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(format!("line {n}: `{status} {key}` is set twice"));
        }
    }
    ResponseParameters::try_from(by_status)
}

/// The non-blank lines of a text area, trimmed, numbered from 1.
fn numbered(raw: &str) -> impl Iterator<Item = (usize, &str)> {
    raw.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty())
}

/// `key = value`, both trimmed (a key never holds `=`, a value may); the value may be
/// empty (`remove:` rules need none).
fn rule(line: &str) -> Option<(&str, &str)> {
    let (key, value) = line.split_once('=')?;
    let key = key.trim();
    (!key.is_empty()).then_some((key, value.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_back_as_they_were_written() {
        let request = parse_request(
            "overwrite:header.x-user-id = $context.authorizer.claims.sub\r\n\r\n\
             append:querystring.v=a=b\nremove:header.x-debug =",
        )
        .expect("valid");
        let lines = request_lines(&request);
        assert_eq!(
            lines,
            "append:querystring.v = a=b\noverwrite:header.x-user-id = $context.authorizer.claims.sub\nremove:header.x-debug = "
        );
        assert_eq!(parse_request(&lines).expect("again"), request);

        let response = parse_response(
            "404 overwrite:statuscode = 200\n404 append:header.x-was = $response.header.x-a\n\
             500  overwrite:header.retry-after = 5",
        )
        .expect("valid");
        assert_eq!(response.for_status(404).map(<[_]>::len), Some(2));
        let lines = response_lines(&response);
        assert_eq!(parse_response(&lines).expect("again"), response);
        assert!(lines.starts_with("404 append:header.x-was = $response.header.x-a\n"));
    }

    #[test]
    fn empty_text_is_no_rules() {
        assert!(parse_request(" \n").expect("empty").is_empty());
        assert!(parse_response("").expect("empty").is_empty());
        assert_eq!(request_lines(&RequestParameters::default()), "");
    }

    #[test]
    fn lines_that_do_not_read_say_which_and_the_model_judges_the_rest() {
        assert!(parse_request("a\noverwrite:header.x")
            .expect_err("no =")
            .starts_with("line 1:"));
        assert!(
            parse_request("overwrite:header.x = 1\noverwrite:header.x = 2")
                .expect_err("twice")
                .starts_with("line 2:")
        );
        assert!(parse_response("overwrite:statuscode = 200")
            .expect_err("no status")
            .starts_with("line 1:"));
        assert!(parse_request("overwrite:header.authorization = x")
            .expect_err("reserved")
            .contains("reserved"));
        assert!(parse_response("404 overwrite:statuscode = 999").is_err());
    }
}
