//! The scheduler on a fixed clock, on each backend.
//!
//! Run with: `eval "$(scripts/services.sh start)" && cargo test --lib actors::reminders`

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, TimeZone, Timelike, Utc};

use super::*;
use crate::store::testing::on_each_backend;
use crate::store::{Language, NewReminder, NewUser, ProfileChange, UserId};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("a valid time")
}

/// Records every nudge; hangs forever instead when `hang` is set (a send that never
/// completes, as in a process killed mid-send).
#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<Firing>>,
    /// Texts delivered without a firing: morning digests.
    texts: Mutex<Vec<(UserId, String)>>,
    hang: std::sync::atomic::AtomicBool,
}

impl Recorder {
    fn sent(&self) -> Vec<Firing> {
        self.sent.lock().expect("not poisoned").clone()
    }
}

#[async_trait]
impl NudgeSink for Recorder {
    async fn deliver(&self, firing: &Firing, _now: DateTime<Utc>) -> Delivery {
        if self.hang.load(std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.sent.lock().expect("not poisoned").push(firing.clone());
        Delivery::Sent
    }

    async fn deliver_text(&self, user: UserId, text: &str) -> Delivery {
        self.texts
            .lock()
            .expect("not poisoned")
            .push((user, text.to_owned()));
        Delivery::Sent
    }
}

async fn user(store: &Store, n: u8) -> UserId {
    store
        .create_user(&NewUser {
            display_name: format!("User {n}"),
            phone: format!("+1555000{n:04}"),
            number: format!("+1555999{n:04}"),
            language: Language::En,
            time_zone: "Europe/Paris".to_owned(),
        })
        .await
        .expect("the user is created")
        .id
}

async fn remind(store: &Store, user: UserId, body: &str, due: DateTime<Utc>, rule: Option<&str>) {
    store
        .add_reminder(
            user,
            &NewReminder {
                body: body.to_owned(),
                due_at: due,
                recurrence: rule.map(str::to_owned),
                time_zone: "Europe/Paris".to_owned(),
                urgent: false,
            },
        )
        .await
        .expect("the reminder is added");
}

/// Quiet hours 22:00–07:00 for the user.
async fn quiet_from_ten_to_seven(store: &Store, user: UserId) {
    store
        .update_profile(
            user,
            &ProfileChange {
                quiet_hours: Some(Some((22 * 60, 7 * 60))),
                ..ProfileChange::default()
            },
        )
        .await
        .expect("quiet hours set");
}

fn scheduler(store: &Store, sink: Arc<Recorder>, clock: Arc<ManualClock>) -> Scheduler {
    Scheduler::new(store.clone(), sink, clock, SchedulerConfig::default())
}

#[tokio::test]
async fn a_one_off_reminder_fires_once_at_its_time() {
    on_each_backend(|store| async move {
        let ana = user(&store, 1).await;
        let due = utc(2026, 3, 11, 8, 0);
        remind(&store, ana, "call the dentist", due, None).await;
        let clock = Arc::new(ManualClock::new(due - TimeDelta::minutes(1)));
        let sink = Arc::new(Recorder::default());
        let mut scheduler = scheduler(&store, sink.clone(), clock.clone());

        scheduler.start_up().await.expect("start-up");
        assert!(sink.sent().is_empty(), "nothing is due yet");
        assert_eq!(scheduler.held(), 1, "the reminder is in the window");
        assert_eq!(
            scheduler.next_wake(),
            Duration::from_secs(5),
            "the poll comes first"
        );

        clock.set(due);
        let pass = scheduler.fire_due().await.expect("fire");
        assert_eq!(pass.sent, 1);
        let sent = sink.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].body, "call the dentist");
        assert_eq!(sent[0].due_at, due);
        assert!(!sent[0].late);

        scheduler.refill().await.expect("refill");
        scheduler.fire_due().await.expect("fire again");
        assert_eq!(sink.sent().len(), 1, "fired once");
        assert!(
            store
                .scheduled_reminders(ana)
                .await
                .expect("list")
                .is_empty()
        );
        let last = store.last_sent_firing(ana).await.expect("last");
        assert_eq!(last.map(|f| f.status), Some(FiringStatus::Sent));
    })
    .await;
}

#[tokio::test]
async fn a_daily_reminder_keeps_its_local_time_across_the_spring_dst_change() {
    on_each_backend(|store| async move {
        let ana = user(&store, 1).await;
        // 09:00 in Paris: 08:00 UTC on Saturday 28 March 2026 (CET), 07:00 UTC on Sunday the
        // 29th (CEST, clocks went forward at 02:00).
        let saturday = utc(2026, 3, 28, 8, 0);
        let sunday = utc(2026, 3, 29, 7, 0);
        remind(
            &store,
            ana,
            "pills",
            saturday,
            Some("FREQ=DAILY;BYHOUR=9;BYMINUTE=0"),
        )
        .await;
        let clock = Arc::new(ManualClock::new(saturday));
        let sink = Arc::new(Recorder::default());
        let mut scheduler = scheduler(&store, sink.clone(), clock.clone());

        scheduler.start_up().await.expect("start-up");
        let scheduled = store.scheduled_reminders(ana).await.expect("list");
        assert_eq!(scheduled.len(), 1);
        assert_eq!(scheduled[0].due_at, sunday, "next occurrence at 09:00 CEST");

        clock.set(sunday - TimeDelta::seconds(1));
        scheduler.refill().await.expect("refill");
        scheduler.fire_due().await.expect("not yet");
        assert_eq!(sink.sent().len(), 1);
        clock.set(sunday);
        scheduler.fire_due().await.expect("fire");
        let sent = sink.sent();
        assert_eq!(sent.len(), 2);
        let local: Vec<u32> = sent
            .iter()
            .map(|f| f.due_at.with_timezone(&chrono_tz::Europe::Paris).hour())
            .collect();
        assert_eq!(local, vec![9, 9], "both at 09:00 local");
        assert_eq!(sent[1].due_at, sunday);
    })
    .await;
}

#[tokio::test]
async fn a_reminder_due_during_downtime_fires_late_on_start_up_and_one_beyond_grace_is_skipped() {
    on_each_backend(|store| async move {
        let ana = user(&store, 1).await;
        let now = utc(2026, 3, 11, 12, 0);
        remind(
            &store,
            ana,
            "water the plants",
            now - TimeDelta::hours(2),
            None,
        )
        .await;
        remind(&store, ana, "old news", now - TimeDelta::hours(7), None).await;
        let clock = Arc::new(ManualClock::new(now));
        let sink = Arc::new(Recorder::default());
        let pass = scheduler(&store, sink.clone(), clock)
            .start_up()
            .await
            .expect("start-up");

        assert_eq!((pass.sent, pass.skipped), (1, 1));
        let sent = sink.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].body, "water the plants");
        assert!(sent[0].late);
        let text = nudge_text(&sent[0], Language::En, chrono_tz::Europe::Paris);
        assert_eq!(
            text,
            "Reminder (late, it was due at 11am): water the plants"
        );
        assert!(
            store
                .scheduled_reminders(ana)
                .await
                .expect("list")
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn a_process_killed_between_claim_and_mark_delivers_exactly_one_nudge_after_restart() {
    on_each_backend(|store| async move {
        let ana = user(&store, 1).await;
        let due = utc(2026, 3, 11, 8, 0);
        remind(&store, ana, "take the bins out", due, None).await;
        let clock = Arc::new(ManualClock::new(due));

        // The first process claims the firing, then never finishes the send: stopped there.
        let stuck = Arc::new(Recorder::default());
        stuck.hang.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut first = scheduler(&store, stuck.clone(), clock.clone());
        first.refill().await.expect("refill");
        let killed = tokio::time::timeout(Duration::from_millis(200), first.fire_due()).await;
        assert!(killed.is_err(), "the send never completes");
        drop(first);
        assert_eq!(store.unsent_firings().await.expect("unsent").len(), 1);

        // After the restart: exactly one nudge, then nothing more on later passes or restarts.
        let sink = Arc::new(Recorder::default());
        let mut second = scheduler(&store, sink.clone(), clock.clone());
        let pass = second.start_up().await.expect("restart");
        assert_eq!(pass.sent, 1);
        second.fire_due().await.expect("again");
        scheduler(&store, sink.clone(), clock)
            .start_up()
            .await
            .expect("another restart");
        let sent = sink.sent();
        assert_eq!(sent.len(), 1, "one nudge, not two");
        assert_eq!(sent[0].body, "take the bins out");
        assert!(store.unsent_firings().await.expect("unsent").is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_reminder_due_in_quiet_hours_waits_for_their_end_and_stays_the_users_own() {
    on_each_backend(|store| async move {
        let ana = user(&store, 1).await;
        let bob = user(&store, 2).await;
        quiet_from_ten_to_seven(&store, ana).await;
        // 23:00 in Paris (CET) is 22:00 UTC; quiet hours end at 07:00 Paris, 06:00 UTC.
        let due = utc(2026, 3, 11, 22, 0);
        remind(&store, ana, "stretch", due, None).await;
        let clock = Arc::new(ManualClock::new(due));
        let sink = Arc::new(Recorder::default());
        let mut scheduler = scheduler(&store, sink.clone(), clock.clone());
        let pass = scheduler.start_up().await.expect("start-up");
        assert_eq!((pass.sent, pass.deferred), (0, 1));
        let waiting = store.scheduled_reminders(ana).await.expect("list");
        assert_eq!(waiting[0].due_at, utc(2026, 3, 12, 6, 0));

        clock.set(utc(2026, 3, 12, 6, 0));
        scheduler.refill().await.expect("refill");
        scheduler.fire_due().await.expect("fire");
        assert_eq!(sink.sent().len(), 1);
        assert!(store.last_sent_firing(ana).await.expect("ana").is_some());
        assert!(store.last_sent_firing(bob).await.expect("bob").is_none());
        assert!(
            store.firing(bob, sink.sent()[0].id).await.is_err(),
            "not bob's firing"
        );
    })
    .await;
}

#[tokio::test]
async fn an_urgent_reminder_fires_inside_quiet_hours_while_a_plain_one_waits_for_their_end() {
    on_each_backend(|store| async move {
        let ana = user(&store, 1).await;
        quiet_from_ten_to_seven(&store, ana).await;
        // 23:30 in Paris (CET) is 22:30 UTC, inside 22:00–07:00.
        let due = utc(2026, 3, 11, 22, 30);
        remind(&store, ana, "water the plants", due, None).await;
        store
            .add_reminder(
                ana,
                &NewReminder {
                    body: "take the night meds".to_owned(),
                    due_at: due,
                    recurrence: None,
                    time_zone: "Europe/Paris".to_owned(),
                    urgent: true,
                },
            )
            .await
            .expect("the urgent reminder is added");
        let clock = Arc::new(ManualClock::new(due));
        let sink = Arc::new(Recorder::default());
        let mut scheduler = scheduler(&store, sink.clone(), clock.clone());

        let pass = scheduler.start_up().await.expect("start-up");
        assert_eq!((pass.sent, pass.deferred), (1, 1));
        let sent = sink.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].body, "take the night meds");
        assert_eq!(
            sent[0].due_at, due,
            "on time, not at the end of quiet hours"
        );
        let waiting = store.scheduled_reminders(ana).await.expect("list");
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].body, "water the plants");
        assert!(!waiting[0].urgent);
        assert_eq!(waiting[0].due_at, utc(2026, 3, 12, 6, 0), "07:00 in Paris");

        clock.set(utc(2026, 3, 12, 6, 0));
        scheduler.refill().await.expect("refill");
        scheduler.fire_due().await.expect("fire");
        let bodies: Vec<String> = sink.sent().into_iter().map(|f| f.body).collect();
        assert_eq!(bodies, ["take the night meds", "water the plants"]);
    })
    .await;
}

#[tokio::test]
async fn a_reminder_written_while_the_scheduler_sleeps_fires_at_once_not_at_the_next_poll() {
    on_each_backend(|store| async move {
        let ana = user(&store, 1).await;
        let now = utc(2026, 3, 11, 8, 0);
        let clock = Arc::new(ManualClock::new(now));
        let sink = Arc::new(Recorder::default());
        let args = SchedulerArgs {
            store: store.clone(),
            sink: sink.clone(),
            clock: clock.clone(),
            config: SchedulerConfig {
                // Without the change signal nothing would be seen for an hour.
                poll: Duration::from_secs(3600),
                ..SchedulerConfig::default()
            },
        };
        let (actor, handle) = Actor::spawn(None, ReminderScheduler, args)
            .await
            .expect("the scheduler starts");
        assert!(sink.sent().is_empty());

        // Due now on the fixed clock: as a reminder "in 0 minutes" written by a tool.
        remind(&store, ana, "leave for the bus", now, None).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while sink.sent().is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the new reminder was not seen before the poll"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A burst of writes makes no duplicate nudge.
        for n in 0..5 {
            remind(
                &store,
                ana,
                &format!("later {n}"),
                now + TimeDelta::hours(2),
                None,
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let sent = sink.sent();
        assert_eq!(sent.len(), 1, "fired once");
        assert_eq!(sent[0].body, "leave for the bus");
        actor.stop(None);
        handle.await.expect("the scheduler stops");
    })
    .await;
}

impl Recorder {
    fn texts(&self) -> Vec<(UserId, String)> {
        self.texts.lock().expect("not poisoned").clone()
    }
}

async fn digest_on(store: &Store, user: UserId, language: Language) {
    store
        .update_profile(
            user,
            &ProfileChange {
                digest: Some(true),
                language: Some(language),
                ..ProfileChange::default()
            },
        )
        .await
        .expect("the digest is turned on");
}

#[tokio::test]
async fn the_morning_digest_goes_out_at_eight_local_in_english_and_french_once_across_restarts() {
    on_each_backend(|store| async move {
        let ana = user(&store, 1).await;
        let zoe = user(&store, 2).await;
        let bob = user(&store, 3).await;
        digest_on(&store, ana, Language::En).await;
        digest_on(&store, zoe, Language::Fr).await;
        // Bob's digest is off: he gets nothing whatever he has.
        store.add_task(bob, "bob's task").await.expect("task");
        // The day before at 20:00 in Paris: the digest is placed for 08:00 tomorrow.
        let evening = utc(2026, 3, 10, 19, 0);
        let clock = Arc::new(ManualClock::new(evening));
        let sink = Arc::new(Recorder::default());
        let mut first = scheduler(&store, sink.clone(), clock.clone());
        first.start_up().await.expect("start-up");
        assert!(sink.texts().is_empty());

        for title in ["water plants", "pay rent", "call the bank", "tidy desk"] {
            store.add_task(ana, title).await.expect("task");
        }
        let rent = store.open_tasks(ana).await.expect("tasks")[1].id;
        store
            .set_task_priority(ana, rent, crate::store::Priority::High)
            .await
            .expect("priority");
        // 09:30 Paris on the 11th is 08:30 UTC; the one on the 12th is not today's.
        remind(&store, ana, "dentist", utc(2026, 3, 11, 8, 30), None).await;
        remind(&store, ana, "tomorrow's thing", utc(2026, 3, 12, 8, 30), None).await;
        store.add_task(zoe, "appeler la banque").await.expect("task");

        // 07:59 Paris: not yet. 08:00 Paris (07:00 UTC): one digest each.
        clock.set(utc(2026, 3, 11, 6, 59));
        first.fire_digests().await.expect("pass");
        assert!(sink.texts().is_empty(), "not before 08:00 local");
        clock.set(utc(2026, 3, 11, 7, 0));
        let pass = first.fire_digests().await.expect("pass");
        assert_eq!(pass.sent, 2);
        let texts = sink.texts();
        let of = |who: UserId| -> String {
            texts
                .iter()
                .filter(|(u, _)| *u == who)
                .map(|(_, t)| t.clone())
                .collect::<Vec<_>>()
                .join(" | ")
        };
        assert_eq!(
            of(ana),
            "Good morning! Top tasks: 1) pay rent 2) water plants 3) call the bank. Today: 9:30am dentist."
        );
        assert!(of(zoe).starts_with("Bonjour ! Tes priorités : 1) appeler la banque."), "{}", of(zoe));
        assert_eq!(of(bob), "");

        // Restarts the same morning, and later passes, send nothing more.
        first.fire_digests().await.expect("again");
        clock.set(utc(2026, 3, 11, 7, 5));
        scheduler(&store, sink.clone(), clock.clone())
            .start_up()
            .await
            .expect("restart");
        assert_eq!(sink.texts().len(), 2, "one digest a day each");

        // Moving the digest later the same day does not send that day's digest again.
        store
            .update_profile(
                ana,
                &ProfileChange {
                    digest_minute: Some(9 * 60),
                    ..ProfileChange::default()
                },
            )
            .await
            .expect("digest time");
        let mut second = scheduler(&store, sink.clone(), clock.clone());
        second.start_up().await.expect("places it");
        clock.set(utc(2026, 3, 11, 8, 0));
        second.fire_digests().await.expect("09:00 Paris");
        assert_eq!(sink.texts().len(), 2, "still one on the 11th");

        // The next morning it comes again, at the new time.
        clock.set(utc(2026, 3, 12, 8, 0));
        second.fire_digests().await.expect("the 12th");
        assert_eq!(sink.texts().len(), 4);
    })
    .await;
}

#[tokio::test]
async fn a_digest_with_nothing_to_say_is_skipped_and_one_claimed_before_a_crash_goes_out_once() {
    on_each_backend(|store| async move {
        let ana = user(&store, 1).await;
        digest_on(&store, ana, Language::En).await;
        let clock = Arc::new(ManualClock::new(utc(2026, 3, 10, 19, 0)));
        let sink = Arc::new(Recorder::default());
        scheduler(&store, sink.clone(), clock.clone())
            .start_up()
            .await
            .expect("placed");
        clock.set(utc(2026, 3, 11, 7, 0));
        let pass = scheduler(&store, sink.clone(), clock.clone())
            .fire_digests()
            .await
            .expect("nothing");
        assert_eq!((pass.sent, pass.skipped), (0, 1));
        assert!(sink.texts().is_empty(), "no empty digest");

        // The next morning a process claims the digest, then is stopped mid-send.
        store.add_task(ana, "stretch").await.expect("task");
        clock.set(utc(2026, 3, 12, 7, 0));
        let claimed = store
            .claim_digest(
                ana,
                utc(2026, 3, 12, 7, 0),
                utc(2026, 3, 13, 7, 0),
                chrono::NaiveDate::from_ymd_opt(2026, 3, 12).expect("date"),
                "Good morning! Top tasks: 1) stretch.",
            )
            .await
            .expect("claim");
        assert!(claimed.is_some());
        for _ in 0..2 {
            scheduler(&store, sink.clone(), clock.clone())
                .start_up()
                .await
                .expect("restart");
        }
        let texts = sink.texts();
        assert_eq!(texts.len(), 1, "sent once after the restarts");
        assert_eq!(texts[0].1, "Good morning! Top tasks: 1) stretch.");
        assert!(store.unsent_digests().await.expect("unsent").is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_cancelled_reminder_does_not_fire() {
    on_each_backend(|store| async move {
        let ana = user(&store, 1).await;
        let due = utc(2026, 3, 11, 8, 0);
        remind(&store, ana, "skip me", due, None).await;
        let clock = Arc::new(ManualClock::new(due - TimeDelta::minutes(1)));
        let sink = Arc::new(Recorder::default());
        let mut scheduler = scheduler(&store, sink.clone(), clock.clone());
        scheduler.start_up().await.expect("start-up");
        let id = store.scheduled_reminders(ana).await.expect("list")[0].id;
        store.cancel_reminder(ana, id).await.expect("cancel");
        clock.set(due);
        let pass = scheduler.fire_due().await.expect("fire");
        assert_eq!(pass, Pass::default());
        assert!(sink.sent().is_empty());
    })
    .await;
}

#[test]
fn quiet_hours_crossing_midnight_end_the_next_morning() {
    let paris = chrono_tz::Europe::Paris;
    let late = utc(2026, 3, 11, 22, 30); // 23:30 local
    assert_eq!(
        quiet_end(late, paris, 22 * 60, 7 * 60),
        Some(utc(2026, 3, 12, 6, 0))
    );
    let early = utc(2026, 3, 12, 3, 0); // 04:00 local
    assert_eq!(
        quiet_end(early, paris, 22 * 60, 7 * 60),
        Some(utc(2026, 3, 12, 6, 0))
    );
    let day = utc(2026, 3, 12, 11, 0);
    assert_eq!(quiet_end(day, paris, 22 * 60, 7 * 60), None);
    assert_eq!(
        quiet_end(day, paris, 12 * 60, 14 * 60),
        Some(utc(2026, 3, 12, 13, 0))
    );
    assert_eq!(quiet_end(day, paris, 600, 600), None);
}

#[test]
fn replies_to_a_nudge_are_read_in_english_and_french() {
    assert_eq!(classify_reply("Done!"), Some(NudgeReply::Done));
    assert_eq!(classify_reply("c'est fait"), Some(NudgeReply::Done));
    assert_eq!(
        classify_reply("snooze"),
        Some(NudgeReply::Snooze(TimeDelta::minutes(10)))
    );
    assert_eq!(
        classify_reply("Snooze 25"),
        Some(NudgeReply::Snooze(TimeDelta::minutes(25)))
    );
    assert_eq!(
        classify_reply("snooze 5 min"),
        Some(NudgeReply::Snooze(TimeDelta::minutes(5)))
    );
    assert_eq!(
        classify_reply("later"),
        Some(NudgeReply::Snooze(TimeDelta::minutes(30)))
    );
    assert_eq!(
        classify_reply("plus tard."),
        Some(NudgeReply::Snooze(TimeDelta::minutes(30)))
    );
    assert_eq!(classify_reply("snooze 0"), None);
    assert_eq!(classify_reply("snooze 99999"), None);
    assert_eq!(classify_reply("done with the report, what next?"), None);
}

#[tokio::test]
async fn snooze_and_done_act_on_the_last_nudge_once_and_only_the_users_own() {
    on_each_backend(|store| async move {
        let ana_id = user(&store, 1).await;
        let bob_id = user(&store, 2).await;
        let ana = store.user(ana_id).await.expect("ana");
        let bob = store.user(bob_id).await.expect("bob");
        let due = utc(2026, 3, 11, 8, 0);
        remind(&store, ana_id, "call mum", due, None).await;
        let clock = Arc::new(ManualClock::new(due));
        let sink = Arc::new(Recorder::default());
        let mut scheduler = scheduler(&store, sink.clone(), clock.clone());
        scheduler.start_up().await.expect("fire");
        assert_eq!(sink.sent().len(), 1);

        let snooze = NudgeReply::Snooze(TimeDelta::minutes(10));
        let now = due + TimeDelta::minutes(1);
        assert_eq!(
            answer_nudge(&store, &bob, snooze, now).await.expect("bob"),
            None
        );
        let text = answer_nudge(&store, &ana, snooze, now).await.expect("ana");
        assert_eq!(
            text.as_deref(),
            Some("OK, I'll remind you again at 9:11am.")
        );
        assert_eq!(
            answer_nudge(&store, &ana, NudgeReply::Done, now)
                .await
                .expect("again"),
            None
        );

        clock.set(now + TimeDelta::minutes(10));
        scheduler.refill().await.expect("refill");
        scheduler.fire_due().await.expect("fire the snooze");
        let sent = sink.sent();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1].body, "call mum");
        let done = answer_nudge(&store, &ana, NudgeReply::Done, clock.now()).await;
        assert_eq!(done.expect("done").as_deref(), Some("Nice, done: call mum"));
    })
    .await;
}
