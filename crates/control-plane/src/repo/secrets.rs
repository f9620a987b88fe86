//! The `control_plane_secrets` table: keys the control plane signs with, one per name and
//! database, so that every replica sharing the database signs and verifies alike.

use sqlx::PgPool;

/// The secret called `name`, stored as `candidate` if there is none yet. When replicas
/// start at once, the first insert wins and every one of them reads the winner back.
pub async fn get_or_create(
    pool: &PgPool,
    name: &str,
    candidate: &[u8; 32],
) -> sqlx::Result<Vec<u8>> {
    sqlx::query(
        "INSERT INTO control_plane_secrets (name, secret) VALUES ($1, $2)
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(candidate.as_slice())
    .execute(pool)
    .await?;
    // A second statement: the insert's own snapshot may predate a concurrent winner's row.
    sqlx::query_scalar("SELECT secret FROM control_plane_secrets WHERE name = $1")
        .bind(name)
        .fetch_one(pool)
        .await
}
