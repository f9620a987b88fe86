//! The `sessions` table (dashboard sign-ins, known by the hash of their cookie) and the
//! `signin_failures` table that throttles password guessing.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use super::users::{Role, User};

/// A live session and its user.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub csrf_token: String,
    pub last_seen: DateTime<Utc>,
}

pub struct NewSession<'a> {
    pub token_hash: &'a [u8],
    pub user_id: Uuid,
    pub csrf_token: &'a str,
    pub address: &'a str,
    pub user_agent: &'a str,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert(db: impl PgExecutor<'_>, new: &NewSession<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, address, user_agent, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new.token_hash)
    .bind(new.user_id)
    .bind(new.csrf_token)
    .bind(new.address)
    .bind(new.user_agent)
    .bind(new.expires_at)
    .execute(db)
    .await?;
    Ok(())
}

/// The session of this token hash, unless it expired or went unused for `idle` seconds.
pub async fn find(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
    idle_secs: i64,
) -> sqlx::Result<Option<Session>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        user_id: Uuid,
        name: String,
        role: String,
        created_at: DateTime<Utc>,
        csrf_token: String,
        last_seen: DateTime<Utc>,
    }
    let row: Option<Row> = sqlx::query_as(
        "SELECT u.id AS user_id, u.name, u.role, u.created_at, s.csrf_token, s.last_seen
         FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = $1 AND s.expires_at > now()
           AND s.last_seen > now() - make_interval(secs => $2)",
    )
    .bind(token_hash)
    .bind(idle_secs as f64)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| Session {
        user: User {
            id: r.user_id,
            name: r.name,
            role: Role::parse(&r.role).unwrap_or(Role::Viewer),
            created_at: r.created_at,
        },
        csrf_token: r.csrf_token,
        last_seen: r.last_seen,
    }))
}

pub async fn touch(db: impl PgExecutor<'_>, token_hash: &[u8]) -> sqlx::Result<()> {
    sqlx::query("UPDATE sessions SET last_seen = now() WHERE token_hash = $1")
        .bind(token_hash)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn delete(db: impl PgExecutor<'_>, token_hash: &[u8]) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(db)
        .await?;
    Ok(())
}

/// Ends every session of a user (sign out everywhere, a password change).
pub async fn delete_of_user(db: impl PgExecutor<'_>, user_name: &str) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE lower(name) = lower($1))",
    )
    .bind(user_name)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Deletes expired sessions and failures older than `window_secs`.
pub async fn prune(db: &sqlx::PgPool, window_secs: i64) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM sessions WHERE expires_at < now()")
        .execute(db)
        .await?;
    sqlx::query("DELETE FROM signin_failures WHERE at < now() - make_interval(secs => $1)")
        .bind(window_secs as f64)
        .execute(db)
        .await?;
    Ok(())
}

/// Failed sign-ins within the last `window_secs`: for this user name, from this address.
pub async fn recent_failures(
    db: impl PgExecutor<'_>,
    user_name: &str,
    address: &str,
    window_secs: i64,
) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE user_name = lower($1)),
                count(*) FILTER (WHERE address = $2)
         FROM signin_failures
         WHERE (user_name = lower($1) OR address = $2)
           AND at > now() - make_interval(secs => $3)",
    )
    .bind(user_name)
    .bind(address)
    .bind(window_secs as f64)
    .fetch_one(db)
    .await
}

pub async fn record_failure(
    db: impl PgExecutor<'_>,
    user_name: &str,
    address: &str,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO signin_failures (user_name, address) VALUES (lower($1), $2)")
        .bind(user_name)
        .bind(address)
        .execute(db)
        .await?;
    Ok(())
}

/// Forgets a user's failures after they signed in.
pub async fn clear_failures(db: impl PgExecutor<'_>, user_name: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM signin_failures WHERE user_name = lower($1)")
        .bind(user_name)
        .execute(db)
        .await?;
    Ok(())
}
