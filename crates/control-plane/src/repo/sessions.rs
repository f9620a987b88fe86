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

/// How many failures a name and an address may have within a window.
#[derive(Debug, Clone, Copy)]
pub struct FailureLimits {
    pub per_user: i64,
    pub per_address: i64,
    pub window_secs: i64,
}

/// Counts a sign-in attempt of `user_name` from `address` as failed (until it succeeds,
/// see [`clear_failures`]), unless the name or the address has used up its failures of
/// the window: then nothing is counted and `false` says the password must not be checked.
///
/// Attempts of one name, or from one address, are counted one at a time (under
/// transaction-scoped advisory locks), so attempts sent at once cannot all read the same
/// count: `n` at once check at most the limit. Name locks are taken before address locks,
/// always, so two attempts never wait on each other in a cycle.
pub async fn begin_attempt(
    db: &sqlx::PgPool,
    user_name: &str,
    address: &str,
    limits: FailureLimits,
) -> sqlx::Result<bool> {
    let mut tx = db.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(lower($2)))")
        .bind(ATTEMPTS_BY_NAME)
        .bind(user_name)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(ATTEMPTS_BY_ADDRESS)
        .bind(address)
        .execute(&mut *tx)
        .await?;
    // A statement of its own, after the locks: it sees every attempt committed before.
    let (by_user, by_address): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE user_name = lower($1)),
                count(*) FILTER (WHERE address = $2)
         FROM signin_failures
         WHERE (user_name = lower($1) OR address = $2)
           AND at > now() - make_interval(secs => $3)",
    )
    .bind(user_name)
    .bind(address)
    .bind(limits.window_secs as f64)
    .fetch_one(&mut *tx)
    .await?;
    if by_user >= limits.per_user || by_address >= limits.per_address {
        return Ok(false);
    }
    sqlx::query("INSERT INTO signin_failures (user_name, address) VALUES (lower($1), $2)")
        .bind(user_name)
        .bind(address)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// The first keys of the advisory locks of [`begin_attempt`] (by name, by address).
const ATTEMPTS_BY_NAME: i32 = 0x5349_4e31;
const ATTEMPTS_BY_ADDRESS: i32 = 0x5349_4e32;

/// Forgets a user's failures after they signed in.
pub async fn clear_failures(db: impl PgExecutor<'_>, user_name: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM signin_failures WHERE user_name = lower($1)")
        .bind(user_name)
        .execute(db)
        .await?;
    Ok(())
}
