//! Where the admin API's errors show on a form: by the field path the API reports
//! (`throttle.burst`, `stages[0].stage`), never by the words of the message, so rewording
//! a message cannot move it. Each page names the few paths its form calls otherwise;
//! every other path is a form field of the same name.

use super::form::Errors;
use crate::error::FieldError;

/// How one form names the admin API's fields.
pub struct FieldMap {
    /// Put in front of every path (the new stage form on an API's page says `new.name`).
    prefix: &'static str,
    /// (API path, form field): errors the API reports at exactly that path show at that
    /// form field. Mostly a whole the form shows as parts (`throttle` as its rate and its
    /// burst): the parts' own paths keep their names.
    rules: &'static [(&'static str, &'static str)],
}

impl FieldMap {
    /// A form whose fields are named as the API's, but for `rules`.
    pub const fn new(rules: &'static [(&'static str, &'static str)]) -> FieldMap {
        FieldMap { prefix: "", rules }
    }

    /// A form whose fields are the API's with `prefix` in front.
    pub const fn prefixed(prefix: &'static str) -> FieldMap {
        FieldMap { prefix, rules: &[] }
    }

    /// The form field that shows an error the API reports at `path`.
    pub fn field(&self, path: &str) -> String {
        let field = self
            .rules
            .iter()
            .find(|(api, _)| *api == path)
            .map_or(path, |(_, form)| form);
        format!("{}{field}", self.prefix)
    }

    /// `errors` as the API sent them, each moved to the form field that shows it.
    pub fn place(&self, errors: Errors) -> Errors {
        Errors {
            summary: errors.summary,
            fields: errors
                .fields
                .into_iter()
                .map(|e| FieldError::new(self.field(&e.field), e.message))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: FieldMap =
        FieldMap::new(&[("throttle", "throttle.rate"), ("quota", "quota.limit")]);

    #[test]
    fn a_path_a_rule_names_goes_to_its_field_and_others_keep_their_name() {
        assert_eq!(PLAN.field("throttle"), "throttle.rate");
        assert_eq!(PLAN.field("quota"), "quota.limit");
        assert_eq!(PLAN.field("name"), "name");
        assert_eq!(PLAN.field("stages[0].stage"), "stages[0].stage");
        // The parts of a whole keep their own names.
        assert_eq!(PLAN.field("throttle.burst"), "throttle.burst");
    }

    #[test]
    fn a_prefix_goes_in_front_of_every_field() {
        let new_stage = FieldMap::prefixed("new.");
        assert_eq!(new_stage.field("deployment_id"), "new.deployment_id");
    }

    #[test]
    fn placing_keeps_the_summary_and_messages() {
        let placed = PLAN.place(Errors::new(
            "Invalid request",
            vec![FieldError::new("throttle", "rate must be above 0")],
        ));
        assert_eq!(placed.summary.as_deref(), Some("Invalid request"));
        assert_eq!(placed.get("throttle.rate"), Some("rate must be above 0"));
    }
}
