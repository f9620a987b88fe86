//! The stage settings form in both directions: a stage's settings as form fields, and
//! typed fields back into the admin API's update, with the variable lines and throttle
//! numbers checked here, where the API could not say which line or number was wrong.

use std::collections::BTreeMap;

use gatehouse_model::{Protocol, StageVariables, Throttle, DEFAULT_STAGE_THROTTLE};

use super::super::field_map::FieldMap;
use super::super::form::Fields;
use super::super::model_rules;
use crate::error::FieldError;
use crate::http::stages::{LimitsInput, UpdateStage};
use crate::repo::stages::Stage;

/// Largest burst the API accepts.
const MAX_BURST: u32 = 1_000_000_000;
/// Longest piece of a bad line quoted back in an error.
const MAX_QUOTED: usize = 40;

/// The WebSocket limits the settings form edits: (field, label).
pub(super) const LIMIT_FIELDS: [(&str, &str); 4] = [
    ("max_message_bytes", "Largest message, bytes"),
    ("max_frame_bytes", "Largest frame, bytes"),
    ("idle_timeout_seconds", "Idle timeout, seconds"),
    ("max_connection_seconds", "Longest connection, seconds"),
];

/// The settings form's fields are the admin API's; a throttle refused as a whole shows
/// by its rate.
pub(super) const SETTINGS_MAP: FieldMap = FieldMap::new(&[("throttle", "throttle.rate")]);

/// The settings form filled with the stage's current values.
pub(super) fn stage_fields(stage: &Stage, protocol: Protocol) -> Fields {
    let throttle = stage.throttle();
    let variables = stage
        .variables
        .0
        .as_map()
        .iter()
        .map(|(name, value)| format!("{name}={value}\n"))
        .collect::<String>();
    let mut fields = Fields::default()
        .with("description", stage.description.clone())
        .with("variables", variables)
        .with("throttle.rate", throttle.rate.to_string())
        .with("throttle.burst", throttle.burst.to_string());
    if protocol == Protocol::Websocket {
        let limits = stage.websocket();
        let values = [
            limits.max_message_bytes,
            limits.max_frame_bytes,
            limits.idle_timeout_seconds,
            limits.max_connection_seconds,
        ];
        for ((name, _), value) in LIMIT_FIELDS.iter().zip(values) {
            fields = fields.with(&format!("websocket.{name}"), value.to_string());
        }
    }
    if stage.access_log {
        fields.with("access_log", "on")
    } else {
        fields
    }
}

/// The `PATCH` request for the settings form, or what is wrong with it, by field.
pub(super) fn settings_body(
    fields: &Fields,
    protocol: Protocol,
) -> Result<UpdateStage, Vec<FieldError>> {
    let mut errors = Vec::new();
    let websocket = (protocol == Protocol::Websocket).then(|| {
        let mut limit = |name: &str| {
            let field = format!("websocket.{name}");
            match fields.trimmed(&field).parse::<u32>() {
                Ok(value) => Some(value),
                Err(_) => {
                    errors.push(FieldError::new(field, "must be a whole number"));
                    None
                }
            }
        };
        LimitsInput {
            max_message_bytes: limit("max_message_bytes"),
            max_frame_bytes: limit("max_frame_bytes"),
            idle_timeout_seconds: limit("idle_timeout_seconds"),
            max_connection_seconds: limit("max_connection_seconds"),
        }
    });
    let variables = parse_variables(fields.get("variables"))
        .map_err(|e| errors.push(FieldError::new("variables", e)))
        .ok();
    let throttle = parse_throttle(
        fields.trimmed("throttle.rate"),
        fields.trimmed("throttle.burst"),
        &mut errors,
    );
    let (Some(variables), Some(throttle), true) = (variables, throttle, errors.is_empty()) else {
        return Err(errors);
    };
    Ok(UpdateStage {
        deployment_id: None,
        description: Some(fields.trimmed("description").to_owned()),
        variables: Some(variables),
        throttle: Some(throttle),
        access_log: Some(fields.checked("access_log")),
        websocket,
    })
}

/// Stage variables typed one `name=value` per line (blank lines skipped). An error names
/// the line.
pub(super) fn parse_variables(raw: &str) -> Result<BTreeMap<String, String>, String> {
    let mut variables = BTreeMap::new();
    for (index, line) in raw.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            return Err(format!(
                "line {number}: `{}` is not name=value",
                quoted(line)
            ));
        };
        let (name, value) = (name.trim(), value.trim());
        let one = BTreeMap::from([(name.to_owned(), value.to_owned())]);
        if let Err(e) = StageVariables::parse(one) {
            return Err(format!("line {number}: {e}"));
        }
        if variables
            .insert(name.to_owned(), value.to_owned())
            .is_some()
        {
            return Err(format!("line {number}: `{name}` is set twice"));
        }
    }
    Ok(variables)
}

/// The start of `text`, for an error message.
fn quoted(text: &str) -> String {
    if text.chars().count() <= MAX_QUOTED {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(MAX_QUOTED).collect::<String>())
    }
}

/// The stage's throttle from the form: both numbers, or neither for the default.
fn parse_throttle(rate: &str, burst: &str, errors: &mut Vec<FieldError>) -> Option<Throttle> {
    if rate.is_empty() && burst.is_empty() {
        return Some(DEFAULT_STAGE_THROTTLE);
    }
    let rate = match rate.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Some(r),
        _ if rate.is_empty() => {
            errors.push(FieldError::new(
                "throttle.rate",
                "enter a rate too, or leave both empty for the default",
            ));
            None
        }
        _ => {
            errors.push(FieldError::new(
                "throttle.rate",
                "enter a number of requests per second above 0, e.g. 100 or 0.5",
            ));
            None
        }
    };
    let burst = match burst.parse::<u32>() {
        Ok(b) if (1..=MAX_BURST).contains(&b) => Some(b),
        _ if burst.is_empty() => {
            errors.push(FieldError::new(
                "throttle.burst",
                "enter a burst too, or leave both empty for the default",
            ));
            None
        }
        _ => {
            errors.push(FieldError::new(
                "throttle.burst",
                format!("enter a whole number of requests from 1 to {MAX_BURST}"),
            ));
            None
        }
    };
    let (rate, burst) = (rate?, burst?);
    // The model's own rules (highest rate, longest refill), worded as the API words them.
    model_rules::throttle(rate, i64::from(burst))
        .map_err(|parts| {
            for (part, message) in parts {
                let field = format!("throttle.{}", part.name());
                errors.push(FieldError::new(field, message));
            }
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_read_one_per_line_skipping_blank_ones() {
        let vars = parse_variables("host=10.0.0.5\r\n\n  port = 9000 \n").expect("valid");
        assert_eq!(vars.get("host").map(String::as_str), Some("10.0.0.5"));
        assert_eq!(vars.get("port").map(String::as_str), Some("9000"));
        assert_eq!(vars.len(), 2);
    }

    #[test]
    fn a_bad_variables_line_is_named() {
        let e = parse_variables("a=1\njust text").expect_err("invalid");
        assert!(e.starts_with("line 2:"), "{e}");
        let e = parse_variables("a=1\nbad name=2").expect_err("invalid");
        assert!(e.starts_with("line 2:"), "{e}");
        let e = parse_variables("a=1\na=2").expect_err("invalid");
        assert!(e.contains("set twice"), "{e}");
    }

    #[test]
    fn throttle_needs_both_numbers_or_neither() {
        let mut errors = Vec::new();
        assert_eq!(
            parse_throttle("", "", &mut errors),
            Some(DEFAULT_STAGE_THROTTLE)
        );
        assert_eq!(
            parse_throttle("0.5", "2", &mut errors),
            Some(Throttle {
                rate: 0.5,
                burst: 2
            })
        );
        assert!(errors.is_empty());
        assert_eq!(parse_throttle("10", "", &mut errors), None);
        assert_eq!(errors[0].field, "throttle.burst");
        errors.clear();
        assert_eq!(parse_throttle("fast", "0", &mut errors), None);
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["throttle.rate", "throttle.burst"]);
    }
}
