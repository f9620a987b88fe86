//! Quota counters shared by every proxy through Redis, when `REDIS_URL` is set: one
//! `INCR` per keyed request, on a key that expires after its period. The count is exact
//! across proxies: no more than the limit is admitted, whatever the number of proxies.
//!
//! Redis sits behind a circuit breaker, so an outage of Redis degrades quotas, not
//! traffic, and ends as soon as Redis answers again:
//! - a call that fails or takes longer than [`REDIS_TIMEOUT`] opens the breaker: the
//!   connection is dropped and every keyed request counts locally at once (no wait);
//! - a background task probes Redis (connect, then `PING`) from [`PROBE_FIRST`] apart up
//!   to [`PROBE_MOST`] apart, and closes the breaker on the first answer;
//! - what was admitted locally meanwhile is owed to Redis: it is added to the shared
//!   counts before the breaker closes (and stragglers within a second), so the shared
//!   quota is exact again, and other proxies see this one's use at once.
//!
//! This replaces redis-rs's `ConnectionManager`, whose reconnection waits out an
//! exponential back-off (1 s, then 60 s and more with its default factor) while every
//! call awaits the pending reconnection: a Redis gone for two seconds cost two minutes
//! of 250 ms timeouts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use crate::admission::limiter::EverySecond;
use crate::admission::quota::QuotaCounter;
use crate::admission::SharedQuota;
use crate::server::stopped;

/// Longest wait for Redis before counting locally instead (and opening the breaker).
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// First wait between probes of a Redis that is down: short, as most outages are.
const PROBE_FIRST: Duration = Duration::from_millis(50);
/// Longest wait between probes: Redis is back in use about this long (plus a probe's
/// [`REDIS_TIMEOUT`]) after it returns.
const PROBE_MOST: Duration = Duration::from_millis(250);
/// How often, while Redis is up, counts owed by requests that raced the breaker closing
/// are settled.
const SETTLE_EVERY: Duration = Duration::from_secs(1);
/// Most (plan, key, period) counts owed to Redis that are kept. Beyond, a count reaches
/// other proxies through the control plane's totals only, as without Redis.
const MOST_OWED: usize = 1 << 20;

/// Adds a count owed by this proxy, then raises the count to at least what this proxy
/// knows was used (Redis may have restarted empty); gives the key its expiry when new.
const RECONCILE: &str = r"
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
local floor = tonumber(ARGV[2])
if count < floor then
  redis.call('SET', KEYS[1], floor)
  count = floor
end
if redis.call('TTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return count
";

/// What Prometheus sees of Redis; the one label, `outcome`, is `ok` or `failed`.
#[derive(Clone)]
pub struct RedisMetrics {
    up: IntGauge,
    fallbacks: IntCounter,
    probes: IntCounterVec,
    reconciliations: IntCounter,
    reconciled: IntCounter,
}

impl RedisMetrics {
    fn new() -> RedisMetrics {
        let counter = |name: &str, help: &str| {
            IntCounter::new(name, help).unwrap_or_else(|e| unreachable!("metric {name}: {e}"))
        };
        RedisMetrics {
            up: IntGauge::new(
                "gatehouse_proxy_redis_up",
                "1 while quotas are counted in Redis; 0 while Redis is down or not configured.",
            )
            .unwrap_or_else(|e| unreachable!("metric redis_up: {e}")),
            fallbacks: counter(
                "gatehouse_proxy_redis_fallbacks_total",
                "Keyed requests whose quota was counted locally because Redis was down or slow.",
            ),
            probes: IntCounterVec::new(
                Opts::new(
                    "gatehouse_proxy_redis_probes_total",
                    "Probes of a Redis that was down, by outcome: ok or failed.",
                ),
                &["outcome"],
            )
            .unwrap_or_else(|e| unreachable!("metric redis_probes: {e}")),
            reconciliations: counter(
                "gatehouse_proxy_redis_reconciliations_total",
                "Times the counts admitted locally were added to Redis's.",
            ),
            reconciled: counter(
                "gatehouse_proxy_redis_reconciled_requests_total",
                "Requests admitted locally during an outage, then added to Redis's counts.",
            ),
        }
    }

    /// The metrics, registered in `registry`.
    pub fn registered(registry: &Registry) -> RedisMetrics {
        let metrics = RedisMetrics::new();
        let _ = registry.register(Box::new(metrics.up.clone()));
        let _ = registry.register(Box::new(metrics.fallbacks.clone()));
        let _ = registry.register(Box::new(metrics.probes.clone()));
        let _ = registry.register(Box::new(metrics.reconciliations.clone()));
        let _ = registry.register(Box::new(metrics.reconciled.clone()));
        metrics
    }
}

impl Default for RedisMetrics {
    fn default() -> Self {
        RedisMetrics::new()
    }
}

/// Requests of one (plan, key, period) admitted locally and not yet added to Redis.
struct Owed {
    count: u64,
    period_end: i64,
    counter: Arc<QuotaCounter>,
}

type OwedKey = (Uuid, Uuid, i64);

#[derive(Default)]
pub struct SharedCounters {
    /// The connection in use: `None` while the breaker is open (Redis down, or not yet
    /// reached).
    connection: ArcSwapOption<MultiplexedConnection>,
    /// True once Redis is configured: only then are local counts owed to it.
    enabled: AtomicBool,
    /// Wakes the prober when a call opens the breaker.
    opened: Notify,
    owed: Mutex<HashMap<OwedKey, Owed>>,
    /// The client of the Redis configured.
    client: OnceLock<redis::Client>,
    /// Held while a call replaces a broken connection.
    reconnecting: tokio::sync::Mutex<()>,
    failures_logged: EverySecond,
    metrics: RedisMetrics,
}

impl SharedCounters {
    /// Counters reporting to `metrics`; Redis is used once [`SharedCounters::connect`]ed.
    pub fn new(metrics: RedisMetrics) -> SharedCounters {
        SharedCounters {
            metrics,
            ..SharedCounters::default()
        }
    }

    /// Uses the Redis at `url`: probes it in the background until it answers, and again
    /// whenever it stops answering, until `stop` turns true.
    pub fn connect(
        self: &Arc<Self>,
        url: String,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let client = redis::Client::open(url.as_str())?;
        let _ = self.client.set(client.clone());
        self.enabled.store(true, Ordering::Release);
        let this = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = this.keep_up(client) => {}
                () = stopped(&mut stop) => {}
            }
        });
        Ok(())
    }

    /// True while the breaker is closed: quotas are taken from Redis.
    pub fn is_connected(&self) -> bool {
        self.connection.load().is_some()
    }

    /// Adds one request to the shared count and returns the count (the request may pass
    /// if it is at most the limit). `None`, at once, while Redis is down; `None` after at
    /// most [`REDIS_TIMEOUT`] when this call finds it down.
    pub async fn take(&self, quota: &SharedQuota) -> Option<u64> {
        let mut current = self.connection.load_full()?;
        let deadline = tokio::time::Instant::now() + REDIS_TIMEOUT;
        let key = redis_key(quota.plan_id, quota.key_id, quota.period_start);
        // SET NX EX creates the counter with its expiry (any Redis since 2.6.12); INCR
        // keeps the expiry. Both in one MULTI.
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(&key)
            .arg(0)
            .arg("EX")
            .arg(ttl(quota.period_end))
            .arg("NX")
            .ignore()
            .incr(&key, 1u64);
        let count = |connection: &MultiplexedConnection| {
            let mut connection = connection.clone();
            let pipe = &pipe;
            async move {
                tokio::time::timeout_at(deadline, pipe.query_async::<(u64,)>(&mut connection))
                    .await
                    .unwrap_or_else(|_| Err(timed_out()))
            }
        };
        let mut result = count(&current).await;
        if let Err(e) = &result {
            if e.is_connection_dropped() || e.is_io_error() {
                // The connection broke, maybe while Redis is fine (it restarted, or an idle
                // connection was cut): one fresh connection before falling back, since a
                // proxy counting locally may overrun what the others admitted.
                match tokio::time::timeout_at(deadline, self.replace(&current)).await {
                    Ok(Ok(fresh)) => {
                        current = fresh;
                        result = count(&current).await;
                    }
                    Ok(Err(e)) => result = Err(e),
                    Err(_) => result = Err(timed_out()),
                }
            }
        }
        let failure = match result {
            Ok((count,)) => return Some(count),
            Err(e) => e,
        };
        // Only the first call to find this connection broken opens the breaker; a call
        // finishing late must not drop a newer connection.
        let previous = self.connection.compare_and_swap(&current, None::<Arc<_>>);
        if previous.as_ref().is_some_and(|p| Arc::ptr_eq(p, &current)) {
            self.metrics.up.set(0);
            self.opened.notify_one();
            tracing::warn!(error = %failure, "Redis stopped answering; counting quotas locally until it is back");
        } else if self.failures_logged.ready() {
            tracing::warn!(error = %failure, "Redis quota count failed; counted locally (logged at most once a second)");
        }
        None
    }

    /// A new connection in place of `broken`, unless another call replaced it already:
    /// one reconnection at a time.
    async fn replace(
        &self,
        broken: &Arc<MultiplexedConnection>,
    ) -> redis::RedisResult<Arc<MultiplexedConnection>> {
        let _one_at_a_time = self.reconnecting.lock().await;
        match self.connection.load_full() {
            Some(now) if !Arc::ptr_eq(&now, broken) => return Ok(now),
            None => return Err(gave_up("another call found Redis down")),
            Some(_) => {}
        }
        let client = self
            .client
            .get()
            .ok_or_else(|| gave_up("Redis is not configured"))?;
        let fresh = Arc::new(
            client
                .get_multiplexed_async_connection_with_config(&connection_config())
                .await?,
        );
        let previous = self
            .connection
            .compare_and_swap(broken, Some(fresh.clone()));
        if previous.as_ref().is_some_and(|p| Arc::ptr_eq(p, broken)) {
            Ok(fresh)
        } else {
            Err(gave_up("another call found Redis down"))
        }
    }

    /// Notes a keyed request whose quota was counted locally because Redis could not
    /// count it; when `admitted`, the count is owed to Redis until it is back.
    pub fn counted_locally(&self, quota: &SharedQuota, admitted: bool) {
        if !self.enabled.load(Ordering::Acquire) {
            return;
        }
        self.metrics.fallbacks.inc();
        if !admitted {
            return;
        }
        let mut owed = self.owed.lock().unwrap_or_else(|e| e.into_inner());
        let slot = (quota.plan_id, quota.key_id, quota.period_start);
        if let Some(entry) = owed.get_mut(&slot) {
            entry.count += 1;
        } else if owed.len() < MOST_OWED {
            owed.insert(
                slot,
                Owed {
                    count: 1,
                    period_end: quota.period_end,
                    counter: quota.counter.clone(),
                },
            );
        }
    }

    /// The prober: brings Redis back into use whenever it answers, forever.
    async fn keep_up(&self, client: redis::Client) {
        let config = connection_config();
        let script = redis::Script::new(RECONCILE);
        let mut first = true;
        loop {
            let mut wait = PROBE_FIRST;
            let connection = loop {
                match self.probe(&client, &config, &script).await {
                    Ok(connection) => break connection,
                    Err(e) if first => {
                        first = false;
                        tracing::warn!(error = %e, "cannot reach Redis; counting quotas locally meanwhile");
                    }
                    Err(_) => {}
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(PROBE_MOST);
            };
            let connection = Arc::new(connection);
            self.connection.store(Some(connection.clone()));
            self.metrics.up.set(1);
            tracing::info!("quotas are counted in Redis, shared with every proxy");
            first = true;
            // Up: settle what requests that raced the breaker owe, until a call opens it.
            loop {
                tokio::select! {
                    () = self.opened.notified() => {}
                    () = tokio::time::sleep(SETTLE_EVERY) => {
                        let mut settling = MultiplexedConnection::clone(&connection);
                        if let Err(e) = self.reconcile(&mut settling, &script).await {
                            let _ = self.connection.compare_and_swap(&connection, None::<Arc<_>>);
                            self.metrics.up.set(0);
                            tracing::warn!(error = %e, "Redis stopped answering; counting quotas locally until it is back");
                        }
                    }
                }
                // A wake-up left from an earlier outage is no reason to probe.
                if !self
                    .connection
                    .load()
                    .as_ref()
                    .is_some_and(|c| Arc::ptr_eq(c, &connection))
                {
                    break;
                }
            }
        }
    }

    /// Connects, checks that Redis answers, and settles what is owed to it: the breaker
    /// closes only on a Redis that has every count.
    async fn probe(
        &self,
        client: &redis::Client,
        config: &AsyncConnectionConfig,
        script: &redis::Script,
    ) -> anyhow::Result<MultiplexedConnection> {
        let answered = tokio::time::timeout(REDIS_TIMEOUT, async {
            let mut connection = client
                .get_multiplexed_async_connection_with_config(config)
                .await?;
            redis::cmd("PING")
                .query_async::<()>(&mut connection)
                .await?;
            anyhow::Ok(connection)
        })
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out")));
        let outcome = match &answered {
            Ok(_) => "ok",
            Err(_) => "failed",
        };
        self.metrics.probes.with_label_values(&[outcome]).inc();
        let mut connection = answered?;
        self.reconcile(&mut connection, script).await?;
        Ok(connection)
    }

    /// Adds every count owed to Redis. What could not be added stays owed.
    async fn reconcile(
        &self,
        connection: &mut MultiplexedConnection,
        script: &redis::Script,
    ) -> anyhow::Result<()> {
        let owed = std::mem::take(&mut *self.owed.lock().unwrap_or_else(|e| e.into_inner()));
        if owed.is_empty() {
            return Ok(());
        }
        let mut entries = owed.into_iter();
        let mut added = 0;
        let mut failure = None;
        for ((plan, key, start), entry) in entries.by_ref() {
            // This proxy's count of the period is a floor, unless it moved on to the next.
            let floor = if entry.counter.period_start() == start {
                entry.counter.used()
            } else {
                0
            };
            let mut call = script.key(redis_key(plan, key, start));
            call.arg(entry.count).arg(floor).arg(ttl(entry.period_end));
            match tokio::time::timeout(REDIS_TIMEOUT, call.invoke_async::<u64>(connection)).await {
                Ok(Ok(_)) => added += entry.count,
                Ok(Err(e)) => failure = Some(anyhow::Error::from(e)),
                Err(_) => failure = Some(anyhow::anyhow!("timed out")),
            }
            if let Some(failure) = failure.take() {
                // The call may have been applied: counting it again errs on the safe side.
                let mut owed = self.owed.lock().unwrap_or_else(|e| e.into_inner());
                for (slot, rest) in std::iter::once(((plan, key, start), entry)).chain(entries) {
                    match owed.get_mut(&slot) {
                        Some(newer) => newer.count += rest.count,
                        None => {
                            owed.insert(slot, rest);
                        }
                    }
                }
                self.note_reconciled(added);
                return Err(failure);
            }
        }
        self.note_reconciled(added);
        Ok(())
    }

    fn note_reconciled(&self, added: u64) {
        if added > 0 {
            self.metrics.reconciliations.inc();
            self.metrics.reconciled.inc_by(added);
            tracing::info!(
                requests = added,
                "quota counts admitted locally were added to Redis"
            );
        }
    }
}

/// Connections give up on Redis when the callers would have.
fn connection_config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(REDIS_TIMEOUT)
        .set_response_timeout(REDIS_TIMEOUT)
}

/// Why a call gave up on Redis without an error of Redis's (not an I/O error, so that
/// it never looks like a broken connection worth replacing).
fn gave_up(why: &'static str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::ClientError, why))
}

fn timed_out() -> redis::RedisError {
    gave_up("timed out")
}

fn redis_key(plan: Uuid, key: Uuid, period_start: i64) -> String {
    format!("gatehouse:quota:{plan}:{key}:{period_start}")
}

/// Seconds a counter is kept: an hour past its period, so clocks a little apart agree.
fn ttl(period_end: i64) -> i64 {
    (period_end - chrono::Utc::now().timestamp()).max(1) + 3600
}

impl std::fmt::Debug for SharedCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCounters")
            .field("connected", &self.is_connected())
            .finish()
    }
}
