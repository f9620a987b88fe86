//! Names that end up in invoke URLs and integration URIs: API slugs, stage names and stage
//! variables. Each is a newtype that can only hold a valid value.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a name was refused, for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(String);

/// The URL-safe, unique name of an API: the first segment of its invoke URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ApiSlug(String);

impl ApiSlug {
    pub const MAX_LEN: usize = 63;

    pub fn parse(s: &str) -> Result<ApiSlug, NameError> {
        let valid_chars = s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if s.is_empty()
            || s.len() > Self::MAX_LEN
            || !valid_chars
            || s.starts_with('-')
            || s.ends_with('-')
        {
            return Err(NameError(format!(
                "must be 1 to {} lower-case letters, digits or `-`, not starting or ending with `-`",
                Self::MAX_LEN
            )));
        }
        Ok(ApiSlug(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name of a stage (`dev`, `prod`): the second segment of an invoke URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StageName(String);

impl StageName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<StageName, NameError> {
        let valid_chars = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if s.is_empty() || s.len() > Self::MAX_LEN || !valid_chars {
            return Err(NameError(format!(
                "must be 1 to {} letters, digits, `-` or `_`",
                Self::MAX_LEN
            )));
        }
        Ok(StageName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stage's variables, substituted into integration URIs as `${stageVariables.name}`.
/// Names are letters, digits and `_`; values use only characters that keep a URI valid.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<String, String>",
    into = "BTreeMap<String, String>"
)]
pub struct StageVariables(BTreeMap<String, String>);

impl StageVariables {
    pub const MAX_COUNT: usize = 100;
    pub const MAX_NAME_LEN: usize = 64;
    pub const MAX_VALUE_LEN: usize = 512;

    pub fn parse(vars: BTreeMap<String, String>) -> Result<StageVariables, NameError> {
        if vars.len() > Self::MAX_COUNT {
            return Err(NameError(format!(
                "at most {} stage variables",
                Self::MAX_COUNT
            )));
        }
        for (name, value) in &vars {
            if name.is_empty()
                || name.len() > Self::MAX_NAME_LEN
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(NameError(format!(
                    "variable name `{}` must be 1 to {} letters, digits or `_`",
                    name.escape_default(),
                    Self::MAX_NAME_LEN
                )));
            }
            if value.len() > Self::MAX_VALUE_LEN
                || !value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~:/?#&=,".contains(&b))
            {
                return Err(NameError(format!(
                    "value of `{name}` must be at most {} characters among letters, digits and -._~:/?#&=,",
                    Self::MAX_VALUE_LEN
                )));
            }
        }
        Ok(StageVariables(vars))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

macro_rules! string_conversions {
    ($t:ty) => {
        impl TryFrom<String> for $t {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                <$t>::parse(&s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
string_conversions!(ApiSlug);
string_conversions!(StageName);

impl TryFrom<BTreeMap<String, String>> for StageVariables {
    type Error = NameError;
    fn try_from(v: BTreeMap<String, String>) -> Result<Self, Self::Error> {
        StageVariables::parse(v)
    }
}

impl From<StageVariables> for BTreeMap<String, String> {
    fn from(v: StageVariables) -> Self {
        v.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lower_case_url_safe_words() {
        assert!(ApiSlug::parse("pets").is_ok());
        assert!(ApiSlug::parse("pet-store-2").is_ok());
        for bad in [
            "",
            "Pets",
            "-pets",
            "pets-",
            "pets store",
            "pets/x",
            "pëts",
            &"a".repeat(64),
        ] {
            assert!(ApiSlug::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn stage_names_allow_letters_digits_dash_and_underscore() {
        assert!(StageName::parse("prod").is_ok());
        assert!(StageName::parse("Beta_2-x").is_ok());
        for bad in ["", "a b", "a/b", "é", "$default"] {
            assert!(StageName::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn stage_variables_refuse_values_that_would_break_a_uri() {
        let ok = BTreeMap::from([("host".to_owned(), "10.0.0.1:8080".to_owned())]);
        assert!(StageVariables::parse(ok).is_ok());
        let spaces = BTreeMap::from([("host".to_owned(), "a b".to_owned())]);
        assert!(StageVariables::parse(spaces).is_err());
        let bad_name = BTreeMap::from([("ho-st".to_owned(), "a".to_owned())]);
        assert!(StageVariables::parse(bad_name).is_err());
    }
}
