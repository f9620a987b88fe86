//! Wakes long polls when the deployed configuration may have changed.
//!
//! A background task LISTENs on PostgreSQL's `gatehouse_config` channel, so a deploy made
//! through any control-plane replica wakes the proxies polling every replica. After a lost
//! connection it wakes everyone too, since notifications sent meanwhile are gone; the
//! pollers then compare versions in the database, which is the source of truth.

use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::repo::config_state::CHANNEL;

/// Starts the listener; the returned counter moves on every possible change.
pub fn listen(pool: PgPool, shutdown: watch::Receiver<bool>) -> watch::Receiver<u64> {
    let (tx, rx) = watch::channel(0u64);
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            tokio::select! {
                () = run(&pool, &tx, &mut backoff) => {}
                () = stopped(shutdown.clone()) => return,
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = stopped(shutdown.clone()) => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    });
    rx
}

async fn run(pool: &PgPool, tx: &watch::Sender<u64>, backoff: &mut Duration) {
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for config changes; retrying");
            return;
        }
    };
    if let Err(e) = listener.listen(CHANNEL).await {
        tracing::warn!(error = %e, "cannot listen for config changes; retrying");
        return;
    }
    *backoff = Duration::from_millis(100);
    tx.send_modify(|n| *n += 1);
    loop {
        match listener.try_recv().await {
            Ok(Some(_)) => tx.send_modify(|n| *n += 1),
            // The connection dropped and will be re-established on the next call:
            // whatever was sent meanwhile is lost, so everyone rechecks.
            Ok(None) => tx.send_modify(|n| *n += 1),
            Err(e) => {
                tracing::warn!(error = %e, "config change listener failed; reconnecting");
                tx.send_modify(|n| *n += 1);
                return;
            }
        }
    }
}

/// Resolves when `shutdown` turns true; never, if its sender is gone.
pub async fn stopped(mut shutdown: watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}
