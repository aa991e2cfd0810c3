//! The store methods behind the internal tools (tasks with due dates, goals, expenses, notes,
//! reminders), checked on both backends like the rest of the store (see `tests.rs`).
//!
//! Run with: `eval "$(scripts/services.sh start)" && cargo test --lib store::tests_tools`

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::testing::on_each_backend;
use super::tests::{assert_not_found, create};
use super::{
    Due, GoalStatus, NewExpense, NewReminder, NewTask, Pool, Priority, ReminderStatus, Store,
    UserId,
};

fn at(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 11, h, 0, 0)
        .single()
        .expect("a valid time")
}

fn task(title: &str, due: Option<DateTime<Utc>>, priority: Priority) -> NewTask {
    NewTask {
        title: title.to_owned(),
        due: due.map(|at| Due { at, all_day: false }),
        priority,
    }
}

fn expense(minor: i64, currency: &str, category: &str, spent_at: DateTime<Utc>) -> NewExpense {
    NewExpense {
        amount_minor: minor,
        currency: currency.to_owned(),
        category: category.to_owned(),
        note: Some(format!("{category} note")),
        spent_at,
    }
}

fn reminder(body: &str, due_at: DateTime<Utc>, recurrence: Option<&str>) -> NewReminder {
    NewReminder {
        body: body.to_owned(),
        due_at,
        recurrence: recurrence.map(str::to_owned),
        time_zone: "Europe/Paris".to_owned(),
        urgent: false,
    }
}

/// The raw text of one column of every row of `table`, as the database holds it.
async fn raw_column(store: &Store, table: &str, column: &str) -> Vec<String> {
    let sql = format!("SELECT {column} FROM {table} ORDER BY id");
    let sql = sqlx::AssertSqlSafe(sql);
    match &store.pool {
        Pool::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
        Pool::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
    }
    .expect("raw read")
}

#[tokio::test]
async fn many_tasks_are_added_in_one_statement_with_due_dates_and_priorities() {
    on_each_backend(|store| async move {
        let user = create(&store, 1).await.id;
        let new = [
            task("pay rent", Some(at(17)), Priority::High),
            task("call mom", None, Priority::Normal),
            task("water plants", Some(at(9)), Priority::Low),
        ];
        let added = store.add_tasks(user, &new).await.expect("add");
        let titles: Vec<&str> = added.iter().map(|t| t.title.as_str()).collect();
        assert_eq!(titles, ["pay rent", "call mom", "water plants"]);
        assert!(added.windows(2).all(|w| w[0].id < w[1].id));
        assert_eq!(
            added[0].due,
            Some(Due {
                at: at(17),
                all_day: false
            })
        );
        assert_eq!(added[0].priority, Priority::High);
        assert_eq!(added[1].due, None);
        assert_eq!(added[2].misses, 0);
        assert_eq!(store.open_tasks(user).await.expect("open"), added);
        assert_eq!(store.add_tasks(user, &[]).await.expect("none"), []);
        // More than one statement's worth still lands whole and in order.
        let many: Vec<NewTask> = (0..1_234)
            .map(|i| NewTask::titled(format!("t{i}")))
            .collect();
        let added = store.add_tasks(user, &many).await.expect("add many");
        assert_eq!(added.len(), 1_234);
        assert_eq!(added[1_233].title, "t1233");
    })
    .await;
}

#[tokio::test]
async fn a_due_date_passing_undone_counts_one_miss_until_rescheduled() {
    on_each_backend(|store| async move {
        let user = create(&store, 1).await.id;
        let added = store
            .add_tasks(
                user,
                &[
                    task("report", Some(at(9)), Priority::Normal),
                    task("later", Some(at(20)), Priority::Normal),
                    task("done early", Some(at(8)), Priority::Normal),
                ],
            )
            .await
            .expect("add");
        store.complete_task(user, added[2].id).await.expect("done");

        let misses =
            |tasks: Vec<super::Task>| tasks.iter().map(|t| (t.id, t.misses)).collect::<Vec<_>>();
        let listed = |now| store.open_tasks_counting_misses(user, now);
        let (report, later) = (added[0].id, added[1].id);
        assert_eq!(
            misses(listed(at(10)).await.expect("list")),
            [(report, 1), (later, 0)]
        );
        // Counting again changes nothing: a due date is missed once.
        assert_eq!(
            misses(listed(at(11)).await.expect("again")),
            [(report, 1), (later, 0)]
        );

        // A new due date may be missed again; a cleared one never.
        let due = Due {
            at: at(12),
            all_day: true,
        };
        let moved = store.reschedule_task(user, report, Some(due)).await;
        assert_eq!(moved.expect("reschedule").due, Some(due));
        assert_eq!(
            misses(listed(at(13)).await.expect("list")),
            [(report, 2), (later, 0)]
        );
        store
            .reschedule_task(user, report, None)
            .await
            .expect("clear");
        assert_eq!(
            misses(listed(at(23)).await.expect("list")),
            [(report, 2), (later, 1)]
        );

        let reset = store
            .reset_task_misses(user, added[0].id)
            .await
            .expect("reset");
        assert_eq!(reset.misses, 0);
        let high = store
            .set_task_priority(user, added[0].id, Priority::High)
            .await;
        assert_eq!(high.expect("priority").priority, Priority::High);
    })
    .await;
}

#[tokio::test]
async fn completed_tasks_are_counted_by_period_and_can_be_reopened() {
    on_each_backend(|store| async move {
        let user = create(&store, 1).await.id;
        let a = store.add_task(user, "a").await.expect("a");
        let b = store.add_task(user, "b").await.expect("b");
        let start = Utc::now() - Duration::minutes(1);
        store.complete_task(user, a.id).await.expect("done a");
        let done_b = store.complete_task(user, b.id).await.expect("done b");
        let end = Utc::now() + Duration::minutes(1);
        assert_eq!(
            store
                .count_completed_tasks(user, start, end)
                .await
                .expect("count"),
            2
        );
        assert_eq!(
            store
                .count_completed_tasks(user, end, end + Duration::days(1))
                .await
                .expect("none"),
            0
        );
        let recent = store
            .completed_tasks_since(user, start, 10)
            .await
            .expect("recent");
        assert_eq!(recent.len(), 2);
        assert!(recent[0].completed_at >= recent[1].completed_at);
        assert_eq!(recent.iter().find(|t| t.id == b.id), Some(&done_b));

        let back = store.reopen_task(user, a.id).await.expect("reopen");
        assert!(!back.done);
        assert_eq!(back.completed_at, None);
        let open: Vec<i64> = store
            .open_tasks(user)
            .await
            .expect("open")
            .iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(open, [a.id]);
    })
    .await;
}

#[tokio::test]
async fn goals_count_the_progress_of_their_linked_tasks() {
    on_each_backend(|store| async move {
        let user = create(&store, 1).await.id;
        let run = store.add_goal(user, "run a 10k").await.expect("goal");
        let read = store.add_goal(user, "read more").await.expect("goal");
        let tasks = store
            .add_tasks(
                user,
                &[
                    NewTask::titled("buy shoes"),
                    NewTask::titled("run 2k"),
                    NewTask::titled("library card"),
                ],
            )
            .await
            .expect("tasks");
        store
            .link_task_to_goal(user, run.id, tasks[0].id)
            .await
            .expect("link");
        store
            .link_task_to_goal(user, run.id, tasks[1].id)
            .await
            .expect("link");
        store
            .link_task_to_goal(user, run.id, tasks[2].id)
            .await
            .expect("link");
        // Linking again moves the task to the other goal.
        store
            .link_task_to_goal(user, read.id, tasks[2].id)
            .await
            .expect("move");
        store.complete_task(user, tasks[0].id).await.expect("done");

        let goals = store.goals(user, None).await.expect("goals");
        let progress: Vec<(&str, u32, u32)> = goals
            .iter()
            .map(|g| (g.title.as_str(), g.tasks_done, g.tasks_total))
            .collect();
        assert_eq!(progress, [("run a 10k", 1, 2), ("read more", 0, 1)]);
        let linked = store.goal_tasks(user, run.id).await.expect("linked");
        assert_eq!(
            linked.iter().map(|t| t.id).collect::<Vec<_>>(),
            [tasks[0].id, tasks[1].id]
        );

        let achieved = store
            .set_goal_status(user, run.id, GoalStatus::Achieved)
            .await
            .expect("achieve");
        assert_eq!(achieved.status, GoalStatus::Achieved);
        assert!(achieved.achieved_at.is_some());
        let active = store
            .goals(user, Some(GoalStatus::Active))
            .await
            .expect("active");
        assert_eq!(active.iter().map(|g| g.id).collect::<Vec<_>>(), [read.id]);
        assert_eq!(store.goal(user, read.id).await.expect("one").tasks_total, 1);
        assert_not_found(store.goal(user, read.id + 100).await);
        assert_not_found(
            store
                .link_task_to_goal(user, read.id + 100, tasks[0].id)
                .await,
        );
        assert_not_found(
            store
                .link_task_to_goal(user, read.id, tasks[2].id + 100)
                .await,
        );
    })
    .await;
}

#[tokio::test]
async fn expenses_total_per_currency_and_category_over_a_period_in_minor_units() {
    on_each_backend(|store| async move {
        let user = create(&store, 1).await.id;
        for new in [
            expense(1_250, "EUR", "food", at(9)),
            expense(750, "EUR", "food", at(12)),
            expense(2_000, "EUR", "transport", at(13)),
            expense(1_500, "JPY", "food", at(14)),
            expense(99_999, "EUR", "food", at(23) + Duration::hours(2)),
        ] {
            let logged = store.add_expense(user, &new).await.expect("log");
            assert_eq!(logged.amount_minor, new.amount_minor);
            assert_eq!(logged.note, new.note);
        }
        let totals = store
            .expense_totals(user, at(0), at(23))
            .await
            .expect("totals");
        let rows: Vec<(&str, &str, i64, u32)> = totals
            .iter()
            .map(|t| {
                (
                    t.currency.as_str(),
                    t.category.as_str(),
                    t.amount_minor,
                    t.count,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("EUR", "food", 2_000, 2),
                ("EUR", "transport", 2_000, 1),
                ("JPY", "food", 1_500, 1)
            ]
        );
        let recent = store.recent_expenses(user, 2).await.expect("recent");
        assert_eq!(recent[0].amount_minor, 99_999);
        assert_eq!(recent[0].note.as_deref(), Some("food note"));
        store
            .delete_expense(user, recent[0].id)
            .await
            .expect("delete");
        assert_not_found(store.delete_expense(user, recent[0].id).await);
        // The note is sealed at rest.
        let raw = raw_column(&store, "expenses", "note").await;
        assert!(
            raw.iter()
                .all(|n| n.starts_with("v1.") && !n.contains("note")),
            "{raw:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn notes_are_sealed_at_rest_and_opened_for_their_owner_only() {
    on_each_backend(|store| async move {
        let user = create(&store, 1).await.id;
        let first = store
            .add_note(user, "wifi password is hunter2")
            .await
            .expect("note");
        let second = store
            .add_note(user, "Dr. Lee 555-0100")
            .await
            .expect("note");
        let notes = store.notes(user, 10).await.expect("notes");
        assert_eq!(notes, [second.clone(), first.clone()]);
        assert_eq!(
            store.notes(user, 1).await.expect("one"),
            std::slice::from_ref(&second)
        );

        let raw = raw_column(&store, "notes", "body").await;
        assert_eq!(raw.len(), 2);
        for body in &raw {
            assert!(body.starts_with("v1."), "{body}");
            assert!(!body.contains("hunter2") && !body.contains("Lee"), "{body}");
        }

        store.delete_note(user, first.id).await.expect("delete");
        assert_eq!(store.notes(user, 10).await.expect("notes"), [second]);
        assert_not_found(store.delete_note(user, first.id).await);
    })
    .await;
}

#[tokio::test]
async fn reminders_are_listed_soonest_first_and_cancelled_once() {
    on_each_backend(|store| async move {
        let user = create(&store, 1).await.id;
        let later = store
            .add_reminder(
                user,
                &reminder(
                    "take out the trash",
                    at(20),
                    Some("FREQ=WEEKLY;BYDAY=MO;BYHOUR=20;BYMINUTE=0"),
                ),
            )
            .await
            .expect("add");
        let sooner = store
            .add_reminder(user, &reminder("stretch", at(10), None))
            .await
            .expect("add");
        assert_eq!(later.status, ReminderStatus::Scheduled);
        assert_eq!(later.body, "take out the trash");
        assert_eq!(later.time_zone, "Europe/Paris");
        assert_eq!(later.last_fired_at, None);
        let listed = store.scheduled_reminders(user).await.expect("list");
        assert_eq!(listed, [sooner.clone(), later.clone()]);

        let cancelled = store
            .cancel_reminder(user, sooner.id)
            .await
            .expect("cancel");
        assert_eq!(cancelled.status, ReminderStatus::Cancelled);
        assert_not_found(store.cancel_reminder(user, sooner.id).await);
        assert_eq!(
            store.scheduled_reminders(user).await.expect("list"),
            [later]
        );

        let raw = raw_column(&store, "reminders", "body").await;
        assert!(
            raw.iter()
                .all(|b| b.starts_with("v1.") && !b.contains("trash")),
            "{raw:?}"
        );
    })
    .await;
}

/// Asserts that `user` sees none of the rows this module's domains hold.
async fn sees_nothing(store: &Store, user: UserId) {
    assert_eq!(store.goals(user, None).await.expect("goals"), []);
    assert_eq!(store.notes(user, 100).await.expect("notes"), []);
    assert_eq!(
        store.scheduled_reminders(user).await.expect("reminders"),
        []
    );
    assert_eq!(
        store.recent_expenses(user, 100).await.expect("expenses"),
        []
    );
    let totals = store
        .expense_totals(user, at(0), at(23))
        .await
        .expect("totals");
    assert_eq!(totals, []);
    let recent = store
        .completed_tasks_since(user, at(0), 100)
        .await
        .expect("done");
    assert_eq!(recent, []);
}

#[tokio::test]
async fn a_user_can_never_read_or_change_another_users_goals_expenses_notes_or_reminders() {
    on_each_backend(|store| async move {
        let alice = create(&store, 1).await.id;
        let bob = create(&store, 2).await.id;
        let goal = store.add_goal(alice, "alice's goal").await.expect("goal");
        let task = store.add_task(alice, "alice's task").await.expect("task");
        store
            .link_task_to_goal(alice, goal.id, task.id)
            .await
            .expect("link");
        let spent = store
            .add_expense(alice, &expense(500, "EUR", "food", at(9)))
            .await
            .expect("expense");
        let note = store.add_note(alice, "alice's secret").await.expect("note");
        let reminder = store
            .add_reminder(alice, &reminder("alice's reminder", at(10), None))
            .await
            .expect("reminder");
        store.complete_task(alice, task.id).await.expect("done");
        let alice_goals = store.goals(alice, None).await.expect("goals");

        sees_nothing(&store, bob).await;
        // Bob can neither change Alice's rows nor point his own rows at them.
        assert_not_found(store.goal(bob, goal.id).await);
        assert_eq!(store.goal_tasks(bob, goal.id).await.expect("none"), []);
        assert_not_found(
            store
                .set_goal_status(bob, goal.id, GoalStatus::Achieved)
                .await,
        );
        let bobs_task = store.add_task(bob, "bob's task").await.expect("task");
        assert_not_found(store.link_task_to_goal(bob, goal.id, bobs_task.id).await);
        let bobs_goal = store.add_goal(bob, "bob's goal").await.expect("goal");
        assert_not_found(store.link_task_to_goal(bob, bobs_goal.id, task.id).await);
        assert_not_found(store.reopen_task(bob, task.id).await);
        assert_not_found(store.reschedule_task(bob, task.id, None).await);
        assert_not_found(store.set_task_priority(bob, task.id, Priority::High).await);
        assert_not_found(store.reset_task_misses(bob, task.id).await);
        assert_not_found(store.delete_expense(bob, spent.id).await);
        assert_not_found(store.delete_note(bob, note.id).await);
        assert_not_found(store.cancel_reminder(bob, reminder.id).await);

        // Alice's rows are exactly as she left them.
        assert_eq!(store.goals(alice, None).await.expect("goals"), alice_goals);
        assert_eq!(store.notes(alice, 10).await.expect("notes"), [note]);
        assert_eq!(
            store.scheduled_reminders(alice).await.expect("reminders"),
            [reminder]
        );
        assert_eq!(
            store.recent_expenses(alice, 10).await.expect("expenses"),
            [spent]
        );
        assert_eq!(
            store
                .goal_tasks(alice, goal.id)
                .await
                .expect("linked")
                .len(),
            1
        );
    })
    .await;
}

#[tokio::test]
async fn a_sealed_body_moved_into_another_users_row_does_not_open() {
    on_each_backend(|store| async move {
        let alice = create(&store, 1).await.id;
        let bob = create(&store, 2).await.id;
        store.add_note(alice, "alice's secret").await.expect("note");
        store.add_note(bob, "bob's note").await.expect("note");
        // Someone with database access copies Alice's sealed body into Bob's row.
        let sql = "UPDATE notes SET body = (SELECT body FROM notes WHERE user_id = $1) \
                   WHERE user_id = $2";
        let changed = match &store.pool {
            Pool::Sqlite(pool) => {
                let done = sqlx::query(sql)
                    .bind(alice.0)
                    .bind(bob.0)
                    .execute(pool)
                    .await;
                done.expect("tamper").rows_affected()
            }
            Pool::Postgres(pool) => {
                let done = sqlx::query(sql)
                    .bind(alice.0)
                    .bind(bob.0)
                    .execute(pool)
                    .await;
                done.expect("tamper").rows_affected()
            }
        };
        assert_eq!(changed, 1);
        let err = store.notes(bob, 10).await;
        assert!(matches!(err, Err(super::StoreError::Corrupt(_))), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn listing_open_tasks_counts_a_newly_missed_due_date_once_and_touches_no_other_user() {
    on_each_backend(|store| async move {
        let user = create(&store, 1).await.id;
        let other = create(&store, 2).await.id;
        let added = store
            .add_tasks(
                user,
                &[
                    task("report", Some(at(9)), Priority::Normal),
                    task("later", Some(at(20)), Priority::Normal),
                    task("no date", None, Priority::Normal),
                ],
            )
            .await
            .expect("add");
        let theirs = store
            .add_tasks(other, &[task("theirs", Some(at(9)), Priority::Normal)])
            .await
            .expect("add");

        let misses =
            |tasks: &[super::Task]| tasks.iter().map(|t| (t.id, t.misses)).collect::<Vec<_>>();
        let open = store
            .open_tasks_counting_misses(user, at(10))
            .await
            .expect("list");
        let expected = [(added[0].id, 1), (added[1].id, 0), (added[2].id, 0)];
        assert_eq!(
            misses(&open),
            expected,
            "the passed due date counts, in list order"
        );
        let again = store
            .open_tasks_counting_misses(user, at(11))
            .await
            .expect("list");
        assert_eq!(misses(&again), expected, "and counts once");
        assert_eq!(store.open_tasks(user).await.expect("open"), again);

        let untouched = store.open_tasks(other).await.expect("open");
        assert_eq!(
            misses(&untouched),
            [(theirs[0].id, 0)],
            "another user's task is not counted"
        );
    })
    .await;
}
