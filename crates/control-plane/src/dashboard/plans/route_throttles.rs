//! The plan form's route throttle rows, read into each covered stage's map of route key to
//! throttle. A row is checked here in full (its stage ticked, its route key one the
//! stage's API could have, its numbers the model's), so every mistake shows next to its
//! row's field rather than somewhere on the stages the admin API names.

use std::collections::{BTreeMap, HashMap};

use gatehouse_model::{Protocol, RouteKey, Throttle};
use uuid::Uuid;

use super::super::form::Fields;
use super::super::model_rules;
use super::form::{row_count, row_field};
use super::request::{read_number, whole_number};
use crate::error::FieldError;

/// The route throttles typed in the form's rows, by stage (`api_id:stage`) and route key.
#[derive(Debug, Default)]
pub(super) struct TypedThrottles {
    pub(super) by_stage: BTreeMap<String, BTreeMap<String, Throttle>>,
}

impl TypedThrottles {
    fn has(&self, stage: &str, route: &str) -> bool {
        self.by_stage
            .get(stage)
            .is_some_and(|routes| routes.contains_key(route))
    }
}

/// The protocol of the API a stage choice (`api_id:stage`) belongs to, when it is known.
fn protocol_of(stage: &str, protocols: &HashMap<Uuid, Protocol>) -> Option<Protocol> {
    let (api_id, _) = stage.split_once(':')?;
    protocols.get(&Uuid::parse_str(api_id).ok()?).copied()
}

/// Reads the route throttle rows, or `None` for a form without them. An empty row, or one
/// ticked for removal, is left out; what is wrong with a row goes next to its field.
/// `protocols` are those of the APIs, to check route keys as the admin API will.
pub(super) fn route_throttles(
    fields: &Fields,
    protocols: &HashMap<Uuid, Protocol>,
    errors: &mut Vec<FieldError>,
) -> Option<TypedThrottles> {
    let count = row_count(fields)?;
    let ticked: Vec<&str> = fields.all("stages").collect();
    let mut typed = TypedThrottles::default();
    for index in 0..count {
        let field = |part: &str| row_field(index, part);
        let stage = fields.trimmed(&field("stage"));
        let route = fields.trimmed(&field("route"));
        let blank = route.is_empty()
            && fields.trimmed(&field("rate")).is_empty()
            && fields.trimmed(&field("burst")).is_empty();
        if blank || fields.checked(&field("remove")) {
            continue;
        }
        let before = errors.len();
        if stage.is_empty() {
            errors.push(FieldError::new(field("stage"), "choose the API stage"));
        } else if !ticked.contains(&stage) {
            errors.push(FieldError::new(
                field("stage"),
                "tick this stage under “API stages covered”, or remove the throttle",
            ));
        }
        if route.is_empty() {
            errors.push(FieldError::new(
                field("route"),
                "enter a route key of the stage, such as GET /pets/{id}",
            ));
        } else if typed.has(stage, route) {
            errors.push(FieldError::new(
                field("route"),
                "this stage has a throttle for this route already",
            ));
        } else if let Some(protocol) = protocol_of(stage, protocols) {
            // Worded as the admin API words it.
            if let Err(e) = RouteKey::parse_for(protocol, route) {
                errors.push(FieldError::new(field("route"), format!("`{route}`: {e}")));
            }
        }
        let rate = read_number(
            fields,
            &field("rate"),
            |raw| raw.parse::<f64>().ok().filter(|r| r.is_finite()),
            (
                "enter a rate too",
                "must be a number of requests per second, such as 100 or 0.5",
            ),
            errors,
        );
        let burst = read_number(
            fields,
            &field("burst"),
            whole_number,
            (
                "enter a burst too",
                "must be a whole number of requests, such as 200",
            ),
            errors,
        );
        let (Some(rate), Some(burst)) = (rate, burst) else {
            continue;
        };
        let throttle = match model_rules::throttle(rate, burst) {
            Ok(throttle) => throttle,
            Err(parts) => {
                for (part, message) in parts {
                    errors.push(FieldError::new(field(part.name()), message));
                }
                continue;
            }
        };
        if errors.len() > before {
            continue;
        }
        typed
            .by_stage
            .entry(stage.to_owned())
            .or_default()
            .insert(route.to_owned(), throttle);
    }
    Some(typed)
}
