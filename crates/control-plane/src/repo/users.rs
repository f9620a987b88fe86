//! The `users` table: who may sign in to the dashboard, with which role.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use uuid::Uuid;

/// What a user may do: an admin changes anything, a viewer only reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Viewer,
}

impl Role {
    pub fn parse(raw: &str) -> Option<Role> {
        match raw {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    name: String,
    role: String,
    created_at: DateTime<Utc>,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> User {
        User {
            id: row.id,
            name: row.name,
            // The table's CHECK allows only the two roles; anything else reads as the
            // weaker one.
            role: Role::parse(&row.role).unwrap_or(Role::Viewer),
            created_at: row.created_at,
        }
    }
}

pub async fn insert(
    db: impl PgExecutor<'_>,
    name: &str,
    password_hash: &str,
    role: Role,
) -> sqlx::Result<User> {
    let row: UserRow = sqlx::query_as(
        "INSERT INTO users (id, name, password_hash, role) VALUES ($1, $2, $3, $4)
         RETURNING id, name, role, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(name)
    .bind(password_hash)
    .bind(role.as_str())
    .fetch_one(db)
    .await?;
    Ok(row.into())
}

/// The user of this name (in any case) and their password hash.
pub async fn credentials(
    db: impl PgExecutor<'_>,
    name: &str,
) -> sqlx::Result<Option<(User, String)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: UserRow,
        password_hash: String,
    }
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, name, role, created_at, password_hash FROM users WHERE lower(name) = lower($1)",
    )
    .bind(name)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.user.into(), r.password_hash)))
}

pub async fn list(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<User>> {
    let rows: Vec<UserRow> =
        sqlx::query_as("SELECT id, name, role, created_at FROM users ORDER BY lower(name)")
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().map(User::from).collect())
}

pub async fn any_exist(db: impl PgExecutor<'_>) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users)")
        .fetch_one(db)
        .await
}

/// Sets a new password hash; the user's sessions are left to the caller.
pub async fn set_password(
    db: impl PgExecutor<'_>,
    name: &str,
    password_hash: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE users SET password_hash = $2 WHERE lower(name) = lower($1)")
        .bind(name)
        .bind(password_hash)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the user of this name (any case); their sessions go with them.
pub async fn delete(db: impl PgExecutor<'_>, name: &str) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM users WHERE lower(name) = lower($1)")
        .bind(name)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Takes a lock that the first user's creation holds, so two setup forms sent at once
/// cannot both create an admin.
pub async fn lock_for_setup(tx: &mut sqlx::PgConnection) -> sqlx::Result<()> {
    sqlx::query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
        .execute(tx)
        .await?;
    Ok(())
}
