//! Connecting to PostgreSQL and bringing its schema up to date.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::Duration;

use sqlx::migrate::Migrate;
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

/// A migration this run applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub version: i64,
    pub description: String,
}

/// Applies the embedded migrations and returns those this call applied, oldest first.
///
/// The applied list is read before and after under sqlx's advisory lock, taken once more
/// on the same connection (PostgreSQL's advisory locks nest within a session): several
/// control planes starting at once apply each migration once, and each reports only what
/// it applied itself.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<Vec<Applied>> {
    let failed = |e: sqlx::migrate::MigrateError| anyhow::anyhow!("migrations failed: {e}");
    let mut conn = pool.acquire().await?;
    conn.lock().await.map_err(failed)?;
    let result = async {
        conn.ensure_migrations_table().await.map_err(failed)?;
        let before: HashSet<i64> = conn
            .list_applied_migrations()
            .await
            .map_err(failed)?
            .into_iter()
            .map(|m| m.version)
            .collect();
        gatehouse_control_plane::MIGRATOR
            .run_direct(&mut *conn)
            .await
            .map_err(failed)?;
        let after: HashSet<i64> = conn
            .list_applied_migrations()
            .await
            .map_err(failed)?
            .into_iter()
            .map(|m| m.version)
            .collect();
        Ok::<_, anyhow::Error>(
            gatehouse_control_plane::MIGRATOR
                .iter()
                .filter(|m| !m.migration_type.is_down_migration())
                .filter(|m| after.contains(&m.version) && !before.contains(&m.version))
                .map(|m| Applied {
                    version: m.version,
                    description: m.description.to_string(),
                })
                .collect(),
        )
    }
    .await;
    match result {
        Ok(applied) => {
            conn.unlock().await.map_err(failed)?;
            Ok(applied)
        }
        Err(e) => {
            // A failed run may leave its own lock taken too: closing the connection
            // releases every lock of its session, so no other start waits on it.
            let _ = conn.close().await;
            Err(e)
        }
    }
}

/// What `gatehouse migrate` prints: each migration applied, or that there was none to apply.
pub fn summary(applied: &[Applied]) -> String {
    if applied.is_empty() {
        return "database is up to date: no migration to apply".to_owned();
    }
    let mut text = format!(
        "applied {} migration{}:",
        applied.len(),
        if applied.len() == 1 { "" } else { "s" }
    );
    for m in applied {
        let _ = write!(text, "\n  {} {}", m.version, m.description);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_each_migration_applied_and_is_up_to_date_only_when_none_was() {
        let applied = [
            Applied {
                version: 20261124000001,
                description: "foundation".into(),
            },
            Applied {
                version: 20261124000002,
                description: "api keys and usage plans".into(),
            },
        ];
        let text = summary(&applied);
        assert_eq!(
            text,
            "applied 2 migrations:\n  20261124000001 foundation\n  20261124000002 api keys and usage plans"
        );
        assert!(!text.contains("up to date"));
        assert!(summary(&[]).contains("up to date"));
    }
}
