//! The `api_tokens` table: admin, viewer and node tokens issued through the admin API,
//! known by the SHA-256 of their value (never the value), with their expiry and
//! revocation. Whether a token is still good is decided by the database clock, in the same
//! query that finds it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use utoipa::ToSchema;
use uuid::Uuid;

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenRole {
    /// Every call of the admin API.
    Admin,
    /// The admin API's reads (GET) only.
    Viewer,
    /// The sync API of proxies (`/dp/v1`) only.
    Node,
}

impl TokenRole {
    pub fn parse(raw: &str) -> Option<TokenRole> {
        match raw {
            "admin" => Some(TokenRole::Admin),
            "viewer" => Some(TokenRole::Viewer),
            "node" => Some(TokenRole::Node),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::Admin => "admin",
            TokenRole::Viewer => "viewer",
            TokenRole::Node => "node",
        }
    }
}

impl TryFrom<String> for TokenRole {
    type Error = String;

    fn try_from(raw: String) -> Result<TokenRole, String> {
        TokenRole::parse(&raw).ok_or_else(|| format!("unknown token role {raw:?}"))
    }
}

/// Whether a token works, by the database clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenStatus {
    Active,
    Expired,
    Revoked,
}

impl TokenStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::Active => "active",
            TokenStatus::Expired => "expired",
            TokenStatus::Revoked => "revoked",
        }
    }
}

impl TryFrom<String> for TokenStatus {
    type Error = String;

    fn try_from(raw: String) -> Result<TokenStatus, String> {
        match raw.as_str() {
            "active" => Ok(TokenStatus::Active),
            "expired" => Ok(TokenStatus::Expired),
            "revoked" => Ok(TokenStatus::Revoked),
            _ => Err(format!("unknown token status {raw:?}")),
        }
    }
}

/// A token as listings show it: everything but its value, which is not stored, and its
/// digest, which is nobody's business.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Token {
    pub id: Uuid,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub role: TokenRole,
    pub prefix: String,
    #[sqlx(try_from = "String")]
    pub status: TokenStatus,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub rotated_from: Option<Uuid>,
}

const COLUMNS: &str = "id, name, role, prefix, \
    CASE WHEN revoked_at IS NOT NULL THEN 'revoked' \
         WHEN expires_at <= now() THEN 'expired' \
         ELSE 'active' END AS status, \
    created_at, created_by, expires_at, revoked_at, last_used_at, rotated_from";

/// A token to store.
pub struct NewToken<'a> {
    pub name: &'a str,
    pub role: TokenRole,
    /// SHA-256 of the value.
    pub digest: &'a [u8],
    pub prefix: &'a str,
    pub created_by: &'a str,
    /// Seconds from now until it stops working; never when `None`.
    pub expires_in_seconds: Option<i64>,
    pub rotated_from: Option<Uuid>,
}

pub async fn insert(db: impl PgExecutor<'_>, new: &NewToken<'_>) -> sqlx::Result<Token> {
    sqlx::query_as(&format!(
        "INSERT INTO api_tokens (id, name, role, digest, prefix, created_by, expires_at, rotated_from)
         VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7), $8)
         RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(new.name)
    .bind(new.role.as_str())
    .bind(new.digest)
    .bind(new.prefix)
    .bind(new.created_by)
    .bind(new.expires_in_seconds.map(|s| s as f64))
    .bind(new.rotated_from)
    .fetch_one(db)
    .await
}

/// Every token, revoked and expired ones too, oldest first.
pub async fn list(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<Token>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM api_tokens ORDER BY created_at, id"
    ))
    .fetch_all(db)
    .await
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Token>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM api_tokens WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// The token, locked until the transaction ends (so two rotations of one token queue up).
pub async fn get_for_update(db: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Token>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM api_tokens WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Revokes the token now (a revoked one keeps its first revocation time). False when
/// there is no such token.
pub async fn revoke(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<bool> {
    let done =
        sqlx::query("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1")
            .bind(id)
            .execute(db)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Makes the token stop working `seconds` from now, unless it stops sooner already.
pub async fn expire_within(
    db: impl PgExecutor<'_>,
    id: Uuid,
    seconds: i64,
) -> sqlx::Result<Option<Token>> {
    sqlx::query_as(&format!(
        "UPDATE api_tokens SET expires_at = LEAST(expires_at, now() + make_interval(secs => $2))
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(seconds as f64)
    .fetch_optional(db)
    .await
}

/// A token good for a request, as authentication sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActiveToken {
    pub id: Uuid,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub role: TokenRole,
    /// Its last use was not noted in the last minute.
    pub needs_touch: bool,
}

/// The unrevoked, unexpired token with this digest and one of `roles`: one lookup by the
/// unique index. Comparing digests in the index is not a timing risk: learning that a
/// guess's SHA-256 shares leading bytes with a real token's says nothing about the token.
pub async fn find_active(
    db: impl PgExecutor<'_>,
    digest: &[u8],
    roles: &[TokenRole],
) -> sqlx::Result<Option<ActiveToken>> {
    let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    sqlx::query_as(
        "SELECT id, name, role,
                (last_used_at IS NULL OR last_used_at < now() - interval '1 minute') AS needs_touch
         FROM api_tokens
         WHERE digest = $1 AND role = ANY($2) AND revoked_at IS NULL
           AND (expires_at IS NULL OR expires_at > now())",
    )
    .bind(digest)
    .bind(roles)
    .fetch_optional(db)
    .await
}

/// Notes that the token was used now, unless that was noted less than a minute ago (by
/// another request or another replica).
pub async fn touch(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE api_tokens SET last_used_at = now()
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
    )
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::TokenRole;

    #[test]
    fn roles_read_back_as_written() {
        for role in [TokenRole::Admin, TokenRole::Viewer, TokenRole::Node] {
            assert_eq!(TokenRole::parse(role.as_str()), Some(role));
        }
        assert_eq!(TokenRole::parse("Admin"), None);
        assert_eq!(TokenRole::parse(""), None);
    }
}
