//! Creating dashboard users and changing their passwords, shared by the one-time setup
//! page and `gatehouse admin create-user` / `set-password`.

use sqlx::PgPool;

use super::passwords;
use crate::error::FieldError;
use crate::repo::audit::{self, NewEntry};
use crate::repo::sessions;
use crate::repo::users::{self, Role, User};

/// Longest user name, in characters.
pub const MAX_NAME_LEN: usize = 64;

/// Names the audit log gives to what is not a user.
const RESERVED: [&str; 2] = [crate::auth::ADMIN_TOKEN_ACTOR, "cli"];

/// Why a user name cannot be used; `None` when it can.
pub fn name_problem(name: &str) -> Option<String> {
    if RESERVED.iter().any(|r| name.eq_ignore_ascii_case(r)) {
        return Some("names the admin token or the command line in the audit log".to_owned());
    }
    // ASCII only: no look-alike letters in the audit log.
    let fine = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    (!fine).then(|| format!("1 to {MAX_NAME_LEN} letters, digits and . _ - @ (no spaces)"))
}

/// Checks the name and password, hashes the password and creates the user. With
/// `only_if_first`, the user is created only on a fresh install (the setup page).
pub async fn create(
    pool: &PgPool,
    name: &str,
    password: &str,
    role: Role,
    only_if_first: bool,
) -> Result<User, CreateError> {
    let mut errors = Vec::new();
    if let Some(problem) = name_problem(name) {
        errors.push(FieldError::new("name", problem));
    }
    if let Some(problem) = passwords::weakness(password) {
        errors.push(FieldError::new("password", problem));
    }
    if !errors.is_empty() {
        return Err(CreateError::Invalid(errors));
    }
    let hash = passwords::hash(password.to_owned()).await?;
    let mut tx = pool.begin().await?;
    if only_if_first {
        users::lock_for_setup(&mut tx).await?;
        if users::any_exist(&mut *tx).await? {
            return Err(CreateError::SetUpAlready);
        }
    }
    let user = match users::insert(&mut *tx, name, &hash, role).await {
        Ok(user) => user,
        Err(sqlx::Error::Database(db)) if db.constraint() == Some("users_name_key") => {
            return Err(CreateError::Invalid(vec![FieldError::new(
                "name",
                "a user with this name already exists",
            )]));
        }
        Err(e) => return Err(e.into()),
    };
    tx.commit().await?;
    Ok(user)
}

/// Sets a new password and ends the user's sessions. False when there is no such user.
pub async fn set_password(pool: &PgPool, name: &str, password: &str) -> Result<bool, CreateError> {
    if let Some(problem) = passwords::weakness(password) {
        return Err(CreateError::Invalid(vec![FieldError::new(
            "password", problem,
        )]));
    }
    let hash = passwords::hash(password.to_owned()).await?;
    let mut tx = pool.begin().await?;
    if !users::set_password(&mut *tx, name, &hash).await? {
        return Ok(false);
    }
    sessions::delete_of_user(&mut *tx, name).await?;
    tx.commit().await?;
    Ok(true)
}

/// Notes an account change in the audit log; a failure to write it is logged, not fatal.
pub async fn note(pool: &PgPool, actor: &str, source: &str, action: &str, target: &str) {
    let entry = NewEntry {
        actor,
        source,
        action,
        target,
        status: 200,
        detail: None,
    };
    if let Err(e) = audit::record(pool, &entry).await {
        tracing::error!(error = %e, action, "writing the audit log failed");
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("invalid: {0:?}")]
    Invalid(Vec<FieldError>),
    #[error("a user exists already: setup is done")]
    SetUpAlready,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_short_words() {
        assert_eq!(name_problem("ada"), None);
        assert_eq!(name_problem("ada.lovelace@example"), None);
        assert!(name_problem("").is_some());
        assert!(name_problem("ada lovelace").is_some());
        assert!(name_problem("<script>").is_some());
        assert!(name_problem("\u{430}da").is_some(), "a Cyrillic a");
        assert!(name_problem("admin-token").is_some());
        assert!(name_problem("CLI").is_some());
        assert!(name_problem(&"a".repeat(MAX_NAME_LEN + 1)).is_some());
    }
}
