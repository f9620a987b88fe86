//! Connecting to PostgreSQL and bringing its schema up to date.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

/// A pool for `url`; fails fast when the database cannot be reached.
pub async fn connect(url: &str) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(20)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL: {e}"))
}

/// Applies the embedded migrations (sqlx holds an advisory lock, so several control
/// planes starting at once apply each migration once).
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    gatehouse_control_plane::MIGRATOR
        .run(pool)
        .await
        .map_err(|e| anyhow::anyhow!("migrations failed: {e}"))
}
