//! Cross-origin resource sharing, as AWS HTTP APIs configure it per API: which browser
//! origins may call the API, with which methods and headers. The gateway answers
//! preflight requests itself and sets the CORS headers of every response; this module
//! only says what a valid configuration is.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most entries of each list.
pub const MAX_CORS_ENTRIES: usize = 64;
/// Longest `max_age`, in seconds (AWS's limit).
pub const MAX_CORS_MAX_AGE: i32 = 86_400;

/// An API's CORS configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "CorsInput")]
pub struct CorsConfiguration {
    /// Exact origins (`https://app.example.com`, lower case, no path) or `*`.
    pub allow_origins: Vec<String>,
    /// Methods a preflight may ask for, or `*`.
    pub allow_methods: Vec<String>,
    /// Request headers a preflight may ask for (lower case), or `*`.
    pub allow_headers: Vec<String>,
    /// Response headers a browser lets the page read (lower case), or `*`.
    pub expose_headers: Vec<String>,
    /// How long a browser may reuse a preflight's answer, -1 to 86400 seconds; -1 tells
    /// it not to, absent leaves it to the browser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = -1, maximum = 86400)]
    pub max_age: Option<i32>,
    /// Whether the browser sends cookies and credentials; not with the `*` origin.
    pub allow_credentials: bool,
}

/// A CORS configuration as the admin API takes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorsInput {
    #[serde(default)]
    pub allow_origins: Vec<String>,
    #[serde(default)]
    pub allow_methods: Vec<String>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default)]
    pub max_age: Option<i32>,
    #[serde(default)]
    pub allow_credentials: bool,
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CorsError {
    pub field: &'static str,
    pub message: String,
}

fn fail(field: &'static str, message: impl Into<String>) -> CorsError {
    CorsError {
        field,
        message: message.into(),
    }
}

fn check_list(
    field: &'static str,
    list: Vec<String>,
    one: impl Fn(&str) -> Result<String, String>,
) -> Result<Vec<String>, CorsError> {
    if list.len() > MAX_CORS_ENTRIES {
        return Err(fail(field, format!("at most {MAX_CORS_ENTRIES} entries")));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for entry in list {
        let entry = entry.trim();
        let checked = if entry == "*" {
            "*".to_owned()
        } else {
            one(entry).map_err(|e| fail(field, e))?
        };
        if !out.contains(&checked) {
            out.push(checked);
        }
    }
    Ok(out)
}

/// `scheme://host[:port]`, as a browser sends it in `Origin`.
fn origin(entry: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "`{}` is not an origin: `https://host` or `http://host:port`, without a path",
            entry.escape_default()
        )
    };
    let (scheme, rest) = entry.split_once("://").ok_or_else(bad)?;
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https")
        || rest.is_empty()
        || entry.len() > 256
        || !rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    {
        return Err(bad());
    }
    Ok(entry.to_ascii_lowercase())
}

fn token(entry: &str) -> Result<String, String> {
    http::HeaderName::from_bytes(entry.as_bytes())
        .map(|n| n.as_str().to_owned())
        .map_err(|_| format!("`{}` is not a valid header name", entry.escape_default()))
}

fn method(entry: &str) -> Result<String, String> {
    let upper = entry.to_ascii_uppercase();
    match upper.as_str() {
        "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" => Ok(upper),
        _ => Err(format!(
            "`{}` is not GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS",
            entry.escape_default()
        )),
    }
}

impl TryFrom<CorsInput> for CorsConfiguration {
    type Error = CorsError;
    fn try_from(input: CorsInput) -> Result<Self, CorsError> {
        let allow_origins = check_list("allow_origins", input.allow_origins, origin)?;
        if allow_origins.is_empty() {
            return Err(fail(
                "allow_origins",
                "name at least one origin, or `*` for any",
            ));
        }
        if input.allow_credentials && allow_origins.iter().any(|o| o == "*") {
            return Err(fail(
                "allow_credentials",
                "browsers refuse credentials with the `*` origin: list the origins instead",
            ));
        }
        if let Some(age) = input.max_age {
            if !(-1..=MAX_CORS_MAX_AGE).contains(&age) {
                return Err(fail("max_age", format!("-1 to {MAX_CORS_MAX_AGE} seconds")));
            }
        }
        Ok(CorsConfiguration {
            allow_origins,
            allow_methods: check_list("allow_methods", input.allow_methods, method)?,
            allow_headers: check_list("allow_headers", input.allow_headers, token)?,
            expose_headers: check_list("expose_headers", input.expose_headers, token)?,
            max_age: input.max_age,
            allow_credentials: input.allow_credentials,
        })
    }
}

impl From<&CorsConfiguration> for CorsInput {
    fn from(c: &CorsConfiguration) -> CorsInput {
        CorsInput {
            allow_origins: c.allow_origins.clone(),
            allow_methods: c.allow_methods.clone(),
            allow_headers: c.allow_headers.clone(),
            expose_headers: c.expose_headers.clone(),
            max_age: c.max_age,
            allow_credentials: c.allow_credentials,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(origins: &[&str]) -> CorsInput {
        CorsInput {
            allow_origins: origins.iter().map(|s| s.to_string()).collect(),
            ..CorsInput::default()
        }
    }

    #[test]
    fn origins_are_kept_as_browsers_send_them() {
        let c = CorsConfiguration::try_from(CorsInput {
            allow_methods: vec!["get".into(), "GET".into()],
            allow_headers: vec!["X-Token".into()],
            ..input(&["HTTPS://App.Example.com", "http://localhost:3000"])
        })
        .expect("valid");
        assert_eq!(
            c.allow_origins,
            ["https://app.example.com", "http://localhost:3000"]
        );
        assert_eq!(c.allow_methods, ["GET"]);
        assert_eq!(c.allow_headers, ["x-token"]);
    }

    #[test]
    fn bad_configurations_name_the_field() {
        let cases = [
            (input(&[]), "allow_origins"),
            (input(&["https://a.example/path"]), "allow_origins"),
            (input(&["javascript:alert(1)"]), "allow_origins"),
            (
                CorsInput {
                    allow_credentials: true,
                    ..input(&["*"])
                },
                "allow_credentials",
            ),
            (
                CorsInput {
                    max_age: Some(86_401),
                    ..input(&["*"])
                },
                "max_age",
            ),
            (
                CorsInput {
                    max_age: Some(-2),
                    ..input(&["*"])
                },
                "max_age",
            ),
            (
                CorsInput {
                    allow_methods: vec!["BREW".into()],
                    ..input(&["*"])
                },
                "allow_methods",
            ),
            (
                CorsInput {
                    allow_headers: vec!["bad header".into()],
                    ..input(&["*"])
                },
                "allow_headers",
            ),
            (
                CorsInput {
                    allow_origins: vec!["https://a.example".into(); 65],
                    ..input(&[])
                },
                "allow_origins",
            ),
        ];
        for (bad, field) in cases {
            assert_eq!(CorsConfiguration::try_from(bad).unwrap_err().field, field);
        }
    }
}
