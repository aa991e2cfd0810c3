//! The reminder scheduler with 100,000 pending reminders in SQLite.
//!
//! - `refill_full_window`: loading the next window when more than a batch is due (the heap is
//!   filled to its 1,000-reminder cap from the partial index);
//! - `refill_sparse_window`: loading it when few are due (the everyday case).
//!
//! Memory: the scheduler holds only the window; the bench prints how many reminders that is and
//! an estimate of their size, whatever the number pending.
//!
//! Run with: `cargo bench --bench reminders` (or `-- --quick` for a short run).

use std::hint::black_box;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use nudge::actors::reminders::{Delivery, ManualClock, NudgeSink, Scheduler, SchedulerConfig};
use nudge::store::{DueReminder, Firing, Language, NewUser, Sealer, UserId, connect};

const PENDING: i64 = 100_000;

/// Sends nothing: the bench measures scheduling, not delivery.
struct Nowhere;

#[async_trait]
impl NudgeSink for Nowhere {
    async fn deliver(&self, _firing: &Firing, _now: DateTime<Utc>) -> Delivery {
        Delivery::Sent
    }

    async fn deliver_text(&self, _user: UserId, _text: &str) -> Delivery {
        Delivery::Sent
    }
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("nudge.db").display());
    let store = runtime.block_on(async {
        let store = connect(&url, Sealer::generate()).await.expect("the store");
        let user = store
            .create_user(&NewUser {
                display_name: "Bench".into(),
                phone: "+15550000000".into(),
                number: "+15559990000".into(),
                language: Language::En,
                time_zone: "Europe/Paris".into(),
            })
            .await
            .expect("a user")
            .id;
        // One reminder a minute from `start`, written in one statement.
        let pool = sqlx::SqlitePool::connect(&url).await.expect("a pool");
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2) \
             INSERT INTO reminders (user_id, body, due_at, time_zone, status, created_at) \
             SELECT $1, 'bench', strftime('%Y-%m-%dT%H:%M:%S+00:00', '2026-01-01', '+' || i || ' minutes'), \
             'Europe/Paris', 'scheduled', '2025-12-31T00:00:00+00:00' FROM n",
        )
        .bind(user.0)
        .bind(PENDING)
        .execute(&pool)
        .await
        .expect("the reminders");
        store
    });

    let mut group = c.benchmark_group("reminders");
    for (name, at) in [
        ("refill_full_window", start() + TimeDelta::days(30)),
        ("refill_sparse_window", start() + TimeDelta::hours(1)),
    ] {
        let clock = Arc::new(ManualClock::new(at));
        let mut scheduler = Scheduler::new(
            store.clone(),
            Arc::new(Nowhere),
            clock,
            SchedulerConfig::default(),
        );
        runtime.block_on(scheduler.refill()).expect("a refill");
        let held = scheduler.held();
        eprintln!(
            "{name}: {PENDING} pending, {held} held in memory (≈ {} KiB: {} B per reminder plus its zone and rule)",
            held * (std::mem::size_of::<DueReminder>() + 16) / 1024,
            std::mem::size_of::<DueReminder>()
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime.block_on(scheduler.refill()).expect("a refill");
                black_box(scheduler.held())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
