//! Quota counters shared by every proxy through Redis, when `REDIS_URL` is set: one
//! `INCR` per keyed request, on a key that expires after its period. The count is exact
//! across proxies: no more than the limit is admitted, whatever the number of proxies.
//!
//! When Redis is unreachable or slow, the request falls back to the local count (the
//! control plane's totals), so an outage of Redis degrades quotas, not traffic.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::ConnectionManager;
use tokio::sync::watch;

use crate::admission::SharedQuota;
use crate::limiter::EverySecond;
use crate::server::stopped;

/// Longest wait for Redis before counting locally instead.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

#[derive(Default)]
pub struct SharedCounters {
    connection: ArcSwapOption<ConnectionManager>,
    failures_logged: EverySecond,
}

impl SharedCounters {
    /// Connects to `url` in the background, retrying until it succeeds or `stop` turns true.
    pub fn connect(
        self: &Arc<Self>,
        url: String,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let client = redis::Client::open(url.as_str())?;
        let this = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                match tokio::time::timeout(Duration::from_secs(5), client.get_connection_manager())
                    .await
                {
                    Ok(Ok(connection)) => {
                        this.connection.store(Some(Arc::new(connection)));
                        tracing::info!("quotas are shared through Redis");
                        return;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "cannot reach Redis; counting quotas locally meanwhile")
                    }
                    Err(_) => {
                        tracing::warn!("Redis did not answer; counting quotas locally meanwhile")
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stopped(&mut stop) => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        });
        Ok(())
    }

    /// True once a connection exists (it reconnects by itself after that).
    pub fn is_connected(&self) -> bool {
        self.connection.load().is_some()
    }

    /// Adds one request to the shared count and returns the count (the request may pass
    /// if it is at most the limit). `None` when Redis could not say.
    pub async fn take(&self, quota: &SharedQuota) -> Option<u64> {
        let mut connection = ConnectionManager::clone(self.connection.load_full()?.as_ref());
        let key = format!(
            "gatehouse:quota:{}:{}:{}",
            quota.plan_id, quota.key_id, quota.period_start
        );
        // Kept an hour past the period, so clocks a little apart still agree.
        let ttl = (quota.period_end - chrono::Utc::now().timestamp()).max(1) + 3600;
        // SET NX EX creates the counter with its expiry (any Redis since 2.6.12); INCR
        // keeps the expiry. Both in one MULTI.
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(&key)
            .arg(0)
            .arg("EX")
            .arg(ttl)
            .arg("NX")
            .ignore()
            .incr(&key, 1u64);
        match tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<(u64,)>(&mut connection)).await
        {
            Ok(Ok((count,))) => Some(count),
            Ok(Err(e)) => {
                self.log_failure(&e.to_string());
                None
            }
            Err(_) => {
                self.log_failure("timed out");
                None
            }
        }
    }

    fn log_failure(&self, error: &str) {
        if self.failures_logged.ready() {
            tracing::warn!(%error, "Redis quota count failed; counting locally (logged at most once a second)");
        }
    }
}

impl std::fmt::Debug for SharedCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCounters")
            .field("connected", &self.is_connected())
            .finish()
    }
}
