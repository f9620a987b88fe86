//! The traffic store against real PostgreSQL: reports add up, rollups keep totals equal,
//! and retention deletes only what is old.

use chrono::{DateTime, Duration, DurationRound, Utc};
use gatehouse_control_plane::repo::traffic::{self, Additions, Series};
use gatehouse_model::metrics::Traffic;
use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &gatehouse_control_plane::MIGRATOR;

fn traffic(latencies_us: &[u64], errors_5xx: u64) -> Traffic {
    let mut t = Traffic {
        count: latencies_us.len() as u64,
        errors_5xx,
        bytes_in: 10 * latencies_us.len() as u64,
        bytes_out: 100 * latencies_us.len() as u64,
        ..Traffic::default()
    };
    for &us in latencies_us {
        t.latency.record(us);
        t.integration.record(us / 2);
    }
    t
}

async fn add(pool: &PgPool, series: &Series, minute: DateTime<Utc>, t: &Traffic) {
    let mut additions = Additions::new();
    traffic::add(&mut additions, vec![series.clone()], minute, t);
    let mut tx = pool.begin().await.expect("tx");
    traffic::add_minutes(&mut tx, &additions)
        .await
        .expect("add");
    tx.commit().await.expect("commit");
}

async fn total(pool: &PgPool, series: &Series, from: DateTime<Utc>, to: DateTime<Utc>) -> Traffic {
    let steps = traffic::steps(pool, series, None, from, to, 86_400 * 30)
        .await
        .expect("steps");
    let mut sum = Traffic::default();
    for (_, t) in steps {
        sum.merge(&t);
    }
    sum
}

async fn rows(pool: &PgPool, resolution: i32) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM traffic WHERE resolution = $1")
        .bind(resolution)
        .fetch_one(pool)
        .await
        .expect("count")
}

fn three_hours_ago() -> DateTime<Utc> {
    (Utc::now() - Duration::hours(3))
        .duration_trunc(Duration::hours(1))
        .expect("hour")
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn reports_of_the_same_minute_add_up(pool: PgPool) {
    let series = Series::route(Uuid::now_v7(), "prod", Uuid::now_v7());
    let minute = three_hours_ago();
    add(&pool, &series, minute, &traffic(&[100, 200], 0)).await;
    add(&pool, &series, minute, &traffic(&[50_000], 1)).await;
    assert_eq!(rows(&pool, 60).await, 1);
    let sum = total(&pool, &series, minute, minute + Duration::minutes(1)).await;
    let mut expected = traffic(&[100, 200], 0);
    expected.merge(&traffic(&[50_000], 1));
    assert_eq!(sum, expected);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_rollup_keeps_totals_equal(pool: PgPool) {
    let api = Uuid::now_v7();
    let start = three_hours_ago();
    let series = [Series::api(api), Series::stage(api, "prod")];
    let mut expected = Traffic::default();
    for minute in 0..150 {
        let t = traffic(&[100 + minute * 37, 9_000 * (minute % 7)], minute % 3);
        expected.merge(&t);
        for s in &series {
            add(&pool, s, start + Duration::minutes(minute as i64), &t).await;
        }
    }
    let range = (start - Duration::days(1), start + Duration::days(1));
    assert_eq!(total(&pool, &series[0], range.0, range.1).await, expected);

    // Minutes older than now are rolled up: 150 minutes span three hours.
    let hours = traffic::roll_up(&pool, Utc::now()).await.expect("rollup");
    assert_eq!(hours, 3);
    assert_eq!(rows(&pool, 60).await, 0);
    assert_eq!(rows(&pool, 3600).await, 6);
    for s in &series {
        assert_eq!(total(&pool, s, range.0, range.1).await, expected);
    }

    // A minute that arrives after its hour was rolled up joins it on the next run.
    let late = traffic(&[7], 0);
    add(&pool, &series[0], start + Duration::minutes(5), &late).await;
    traffic::roll_up(&pool, Utc::now()).await.expect("rollup");
    expected.merge(&late);
    assert_eq!(rows(&pool, 60).await, 0);
    assert_eq!(total(&pool, &series[0], range.0, range.1).await, expected);

    // Minutes younger than the cut are left alone.
    let recent = Utc::now()
        .duration_trunc(Duration::minutes(1))
        .expect("minute");
    add(&pool, &series[0], recent, &late).await;
    traffic::roll_up(&pool, Utc::now() - Duration::hours(2))
        .await
        .expect("rollup");
    assert_eq!(rows(&pool, 60).await, 1);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn retention_deletes_only_old_buckets(pool: PgPool) {
    let series = Series::all();
    let old = three_hours_ago() - Duration::days(100);
    let young = three_hours_ago();
    add(&pool, &series, old, &traffic(&[1], 0)).await;
    add(&pool, &series, young, &traffic(&[1], 0)).await;
    let deleted = traffic::prune(&pool, Utc::now() - Duration::days(90), Utc::now())
        .await
        .expect("prune");
    assert_eq!(deleted, 1);
    assert_eq!(rows(&pool, 60).await, 1);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn sums_saturate_instead_of_failing(pool: PgPool) {
    let series = Series::all();
    let minute = three_hours_ago();
    let mut huge = traffic(&[10], 0);
    huge.bytes_out = u64::MAX;
    add(&pool, &series, minute, &huge).await;
    add(&pool, &series, minute, &huge).await;
    add(&pool, &series, minute, &traffic(&[10], 0)).await;
    let sum = total(&pool, &series, minute, minute + Duration::minutes(1)).await;
    assert_eq!(sum.bytes_out, i64::MAX as u64);
    assert_eq!(sum.count, 3);
    traffic::roll_up(&pool, Utc::now()).await.expect("rollup");
    let rolled = total(
        &pool,
        &series,
        minute - Duration::hours(1),
        minute + Duration::hours(1),
    )
    .await;
    assert_eq!((rolled.count, rolled.bytes_out), (3, i64::MAX as u64));
}
