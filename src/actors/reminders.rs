//! `ReminderSupervisor` and `ReminderScheduler`: reminders that always fire, once.
//!
//! ```text
//! ReminderSupervisor   restarts the scheduler (bounded intensity)
//! └── ReminderScheduler  the next window of due reminders in a heap; claims, sends, marks
//! ```
//!
//! **Durable.** Reminders live in the store; the scheduler keeps in memory only the next
//! window: at most [`SchedulerConfig::batch`] reminders due within [`SchedulerConfig::window`],
//! in a min-heap by due instant, refilled from the store's partial index of scheduled rows
//! every [`SchedulerConfig::poll`] (and whenever the heap runs dry). A million pending
//! reminders cost one indexed range read per poll, not a million timers. A reminder written in
//! this process (chat, tool, REST, snooze) wakes the scheduler at once through
//! [`Store::reminder_changes`], so one due before the next poll is not late by up to a poll.
//!
//! **At-least-once, idempotent.** Each firing has a key, (reminder id, due instant), unique in
//! `reminder_firings`. Firing one occurrence is: (1) *claim*, one transaction that moves the
//! reminder on (next occurrence in its own zone, or 'fired') and inserts the firing as
//! 'sending' — only the claim that still finds the reminder waiting for that occurrence wins,
//! so the same occurrence is never claimed twice; (2) *send*; (3) *mark* 'sent' (or 'skipped'
//! when the user cannot be reached). A crash before (1) leaves the reminder due: it fires on
//! start-up. A crash between (1) and (3) leaves the firing 'sending': at start-up (and at each
//! refill, for sends that failed) it is sent again, then marked.
//!
//! Before sending an unmarked firing again, the [`NudgeSink`] is asked whether the nudge did
//! reach its channel ([`NudgeSink::was_delivered`]): [`SmsNudges`] asks Twilio's Messages
//! list for a message from the user's number to their phone, with the nudge's exact text,
//! created after the claim (Twilio has no idempotency key, so this is the way to learn what a
//! send killed mid-flight did). Found: the firing is marked without a resend. Not found, or
//! Twilio cannot be asked: it is sent again — for someone who relies on a reminder, a rare
//! repeat is a far smaller harm than a lost one.
//!
//! **Missed while down.** At start-up, reminders due in the past fire at once, their nudge
//! saying it is late; those older than the grace period (`NUDGE_REMINDER_GRACE_SECS`) are
//! recorded as 'skipped' rather than sent hours out of context. A repeating reminder then
//! moves to its first occurrence after now, so a week offline does not fire seven times.
//!
//! **Quiet hours.** A reminder that comes due inside the user's quiet hours (profile,
//! minutes after local midnight) waits for their end, unless it is marked urgent: an urgent
//! reminder fires on time whatever the hour.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_cluster::RactorMessage;

use super::digest::{self, next_digest_after};
use super::notifier::{NotifierArgs, SmsOutcome, send_to_user};
use crate::live::{Event, LiveHub};
use crate::store::{
    DigestFiring, Direction, DueReminder, Firing, FiringAnswer, FiringStatus, Language,
    NewReminder, NewSmsUsage, SentUsage, Store, StoreError, User, UserId,
};
use crate::tools::when::{Recurrence, clock_text, resolve_local, zone};

/// A firing this much after its due instant is late, and its nudge says so.
const LATE_AFTER: TimeDelta = TimeDelta::seconds(60);
/// Messages listed when reconciling an unmarked firing with Twilio: the user's most recent.
const RECONCILE_PAGE: u32 = 50;
/// Scheduler restarts allowed within [`RESTART_PERIOD`] before the supervisor gives up.
const MAX_RESTARTS: usize = 5;
const RESTART_PERIOD: Duration = Duration::from_secs(60);

/// The time, injectable so tests run on a fixed clock.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told: for tests.
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }

    /// Sets the time.
    pub fn set(&self, at: DateTime<Utc>) {
        if let Ok(mut now) = self.0.lock() {
            *now = at;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
            .lock()
            .map(|now| *now)
            .unwrap_or_else(|e| *e.into_inner())
    }
}

/// What became of a nudge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// A channel took it: the firing is marked 'sent'.
    Sent,
    /// The user cannot be reached: marked 'skipped'.
    Unreachable,
    /// Failed for now: the firing stays 'sending' and is sent again later.
    Failed,
}

/// Where nudges go: the user's channels.
#[async_trait]
pub trait NudgeSink: Send + Sync + 'static {
    /// Delivers the nudge of `firing`.
    async fn deliver(&self, firing: &Firing, now: DateTime<Utc>) -> Delivery;

    /// Delivers a text that is no reminder's (the morning digest) to the user's channels.
    async fn deliver_text(&self, user: UserId, text: &str) -> Delivery;

    /// Whether an unmarked firing is known to have reached the user already (then it is
    /// marked without a resend). `false` when the sink cannot tell.
    async fn was_delivered(&self, _firing: &Firing) -> bool {
        false
    }

    /// Whether `text`, sent to the user after `since` by a process that stopped before it
    /// could mark it, reached them already (a digest). `false` when the sink cannot tell.
    async fn was_text_delivered(&self, _user: UserId, _text: &str, _since: DateTime<Utc>) -> bool {
        false
    }
}

/// Nudges every open WebSocket of the user and by SMS through the notifier's Twilio client,
/// in the user's language.
pub struct SmsNudges {
    pub notifier: NotifierArgs,
    pub live: LiveHub,
}

#[async_trait]
impl NudgeSink for SmsNudges {
    async fn deliver(&self, firing: &Firing, _now: DateTime<Utc>) -> Delivery {
        let user = match self.notifier.store.user(firing.user_id).await {
            Ok(user) => user,
            Err(StoreError::NotFound) => return Delivery::Unreachable,
            Err(error) => {
                tracing::error!(user = %firing.user_id, %error, "cannot load the user of a reminder");
                return Delivery::Failed;
            }
        };
        let pushed = self.live.publish(
            firing.user_id,
            &Event::Reminder {
                firing_id: firing.id,
                reminder_id: firing.reminder_id,
                body: firing.body.clone(),
                due_at: firing.due_at,
                late: firing.late,
            },
        );
        let text = nudge_text(firing, user.language, zone(&user.time_zone));
        let sms = send_to_user(&self.notifier, firing.user_id, &text, None).await;
        Self::outcome(sms, pushed)
    }

    /// Asks Twilio's Messages list whether this firing's nudge reached it (see
    /// [`SmsNudges::reached_twilio`]).
    async fn was_delivered(&self, firing: &Firing) -> bool {
        let Ok(user) = self.notifier.store.user(firing.user_id).await else {
            return false;
        };
        let text = nudge_text(firing, user.language, zone(&user.time_zone));
        self.reached_twilio(&user, &text, firing.claimed_at).await
    }

    async fn was_text_delivered(&self, user: UserId, text: &str, since: DateTime<Utc>) -> bool {
        let Ok(user) = self.notifier.store.user(user).await else {
            return false;
        };
        self.reached_twilio(&user, text, since).await
    }

    async fn deliver_text(&self, user: UserId, text: &str) -> Delivery {
        let pushed = self.live.publish(
            user,
            &Event::Digest {
                text: text.to_owned(),
            },
        );
        let sms = send_to_user(&self.notifier, user, text, None).await;
        Self::outcome(sms, pushed)
    }
}

impl SmsNudges {
    /// Asks Twilio's Messages list whether `text` reached it: a message from the user's
    /// number to their phone, with exactly that text, created after `since` (the claim). A
    /// match is recorded (delivery and usage row by its SID). Without a Twilio account, or
    /// when Twilio cannot be asked, the answer is "not known" (`false`).
    async fn reached_twilio(&self, user: &User, text: &str, since: DateTime<Utc>) -> bool {
        let Some(twilio) = &self.notifier.twilio else {
            return false;
        };
        let (Some(phone), Some(number)) = (user.phone.as_deref(), user.number.as_deref()) else {
            return false;
        };
        // Twilio's clock and ours may differ a little.
        let since = since - TimeDelta::minutes(1);
        let listed = match twilio
            .list_messages(phone, number, since.date_naive(), RECONCILE_PAGE)
            .await
        {
            Ok(listed) => listed,
            Err(error) => {
                tracing::warn!(user = %user.id, %error, "cannot ask Twilio what it accepted; sending again");
                return false;
            }
        };
        let Some(found) = listed.into_iter().find(|m| {
            m.body == text && !m.status.is_failure() && m.date_created.is_none_or(|at| at >= since)
        }) else {
            return false;
        };
        tracing::info!(user = %user.id, sid = %found.sid, "Twilio had accepted the unmarked send; not sending it again");
        let shape = crate::sms::segments::analyze(text);
        let usage = SentUsage {
            message_id: None,
            usage: NewSmsUsage {
                direction: Direction::Outbound,
                segments: shape.segments,
                encoding: shape.encoding,
                estimated_cost_micros: crate::sms::segments::estimated_cost_micros(shape.segments),
            },
        };
        match self
            .notifier
            .store
            .record_sms_sent(user.id, &found.sid, found.status.as_str(), None, &usage)
            .await
        {
            Ok(()) | Err(StoreError::Conflict(_)) => {}
            Err(error) => {
                tracing::error!(user = %user.id, %error, "cannot record the reconciled SMS")
            }
        }
        true
    }

    fn outcome(sms: SmsOutcome, pushed: usize) -> Delivery {
        match sms {
            SmsOutcome::Sent => Delivery::Sent,
            _ if pushed > 0 => Delivery::Sent,
            SmsOutcome::Unreachable => Delivery::Unreachable,
            SmsOutcome::Failed => Delivery::Failed,
        }
    }
}

/// The nudge's words: the reminder's text, and when it is late, the time it was due.
pub fn nudge_text(firing: &Firing, lang: Language, tz: Tz) -> String {
    let due = firing.due_at.with_timezone(&tz);
    match (lang, firing.late) {
        (Language::En, false) => format!("Reminder: {}", firing.body),
        (Language::Fr, false) => format!("Rappel : {}", firing.body),
        (Language::En, true) => format!(
            "Reminder (late, it was due at {}): {}",
            clock_text(due.hour(), due.minute(), lang),
            firing.body
        ),
        (Language::Fr, true) => format!(
            "Rappel (en retard, prévu à {}) : {}",
            clock_text(due.hour(), due.minute(), lang),
            firing.body
        ),
    }
}

/// A reply to the last nudge: snooze it, or mark it done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NudgeReply {
    /// Remind again after this long.
    Snooze(TimeDelta),
    Done,
}

/// Snooze without a number: ten minutes; "later": half an hour.
const SNOOZE_DEFAULT: TimeDelta = TimeDelta::minutes(10);
const LATER: TimeDelta = TimeDelta::minutes(30);
/// A snooze asks for at most a day.
const SNOOZE_MAX_MINUTES: i64 = 24 * 60;

/// The reply `body` is when the whole message is one ("done", "fait", "snooze", "snooze 10",
/// "snooze 10 min", "later", "plus tard"), ignoring case and trailing punctuation.
pub fn classify_reply(body: &str) -> Option<NudgeReply> {
    let text = body
        .trim()
        .trim_end_matches(|c: char| c.is_whitespace() || matches!(c, '.' | '!' | ','))
        .to_lowercase();
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        ["done"] | ["fait"] | ["c'est", "fait"] | ["terminé"] | ["termine"] => {
            Some(NudgeReply::Done)
        }
        ["later"] | ["plus", "tard"] => Some(NudgeReply::Snooze(LATER)),
        ["snooze"] => Some(NudgeReply::Snooze(SNOOZE_DEFAULT)),
        ["snooze", amount] | ["snooze", amount, "min" | "mins" | "minutes" | "m"] => {
            let minutes: i64 = amount.trim_end_matches('m').parse().ok()?;
            (1..=SNOOZE_MAX_MINUTES)
                .contains(&minutes)
                .then(|| NudgeReply::Snooze(TimeDelta::minutes(minutes)))
        }
        _ => None,
    }
}

/// Acts on the user's last unanswered nudge: "done" records it, a snooze schedules the same
/// text again. `None` when there is no such nudge (the message then goes to the assistant).
pub async fn answer_nudge(
    store: &Store,
    user: &User,
    reply: NudgeReply,
    now: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    let Some(firing) = store.last_sent_firing(user.id).await? else {
        return Ok(None);
    };
    let text = match reply {
        NudgeReply::Done => {
            if !store
                .answer_firing(user.id, firing.id, FiringAnswer::Done)
                .await?
            {
                return Ok(None);
            }
            match user.language {
                Language::En => format!("Nice, done: {}", firing.body),
                Language::Fr => format!("Bravo, c'est fait : {}", firing.body),
            }
        }
        NudgeReply::Snooze(after) => {
            if !store
                .answer_firing(user.id, firing.id, FiringAnswer::Snoozed)
                .await?
            {
                return Ok(None);
            }
            let at = now + after;
            store
                .add_reminder(
                    user.id,
                    &NewReminder {
                        body: firing.body.clone(),
                        due_at: at,
                        recurrence: None,
                        time_zone: user.time_zone.clone(),
                        urgent: false,
                    },
                )
                .await?;
            let local = at.with_timezone(&zone(&user.time_zone));
            let clock = clock_text(local.hour(), local.minute(), user.language);
            match user.language {
                Language::En => format!("OK, I'll remind you again at {clock}."),
                Language::Fr => format!("D'accord, je te le rappelle à {clock}."),
            }
        }
    };
    Ok(Some(text))
}

/// The scheduler's tuning.
#[derive(Debug, Clone, Copy)]
pub struct SchedulerConfig {
    /// How far ahead the heap looks.
    pub window: TimeDelta,
    /// At most this many reminders in the heap.
    pub batch: u32,
    /// Reminders missed by more than this at start-up are skipped, not sent.
    pub grace: TimeDelta,
    /// How often the window is refilled from the store (new reminders are seen then).
    pub poll: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            window: TimeDelta::minutes(5),
            batch: 1_000,
            grace: TimeDelta::hours(6),
            poll: Duration::from_secs(5),
        }
    }
}

/// One reminder in the heap, ordered by due instant then id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending(DueReminder);

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.0.due_at, self.0.id).cmp(&(other.0.due_at, other.0.id))
    }
}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// What one pass did, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    pub sent: usize,
    pub skipped: usize,
    pub failed: usize,
    pub deferred: usize,
}

/// The scheduling logic, apart from the actor so tests drive it with a fixed clock.
pub struct Scheduler {
    store: Store,
    sink: Arc<dyn NudgeSink>,
    clock: Arc<dyn Clock>,
    config: SchedulerConfig,
    heap: BinaryHeap<Reverse<Pending>>,
}

impl Scheduler {
    pub fn new(
        store: Store,
        sink: Arc<dyn NudgeSink>,
        clock: Arc<dyn Clock>,
        config: SchedulerConfig,
    ) -> Self {
        Self {
            store,
            sink,
            clock,
            config,
            heap: BinaryHeap::new(),
        }
    }

    /// Reminders held in memory now.
    pub fn held(&self) -> usize {
        self.heap.len()
    }

    /// At start-up: sends the firings a stopped process claimed but never marked, then fires
    /// what came due while down (late, or skipped beyond the grace period), then loads the
    /// next window.
    pub async fn start_up(&mut self) -> Result<Pass, StoreError> {
        let mut pass = self.resend_unmarked().await?;
        self.refill().await?;
        let fired = self.fire_due().await?;
        pass.add(fired);
        pass.add(self.fire_digests().await?);
        Ok(pass)
    }

    /// Sends the morning digests due by now (each claimed for its user's local date first),
    /// and places the next digest of users whose setting changed. A digest claimed beyond the
    /// grace period is recorded as skipped; one with nothing to say is skipped too.
    pub async fn fire_digests(&mut self) -> Result<Pass, StoreError> {
        let now = self.clock.now();
        let mut pass = Pass::default();
        let mut claimed = Vec::new();
        for due in self.store.due_digests(now, self.config.batch).await? {
            let tz = zone(&due.time_zone);
            let Some(at) = due.next_at else {
                self.store
                    .place_digest(due.user_id, next_digest_after(now, tz, due.minute))
                    .await?;
                continue;
            };
            let local_date = at.with_timezone(&tz).date_naive();
            let next = next_digest_after(at.max(now), tz, due.minute);
            // Composed before the claim, so a resend after a crash is the same text.
            let text = match digest::compose(&self.store, due.user_id, local_date).await {
                Ok(text) => text.unwrap_or_default(),
                Err(StoreError::NotFound) => continue,
                Err(error) => return Err(error),
            };
            let Some(firing) = self
                .store
                .claim_digest(due.user_id, at, next, local_date, &text)
                .await?
            else {
                continue;
            };
            if now - at > self.config.grace || text.is_empty() {
                self.store
                    .finish_digest(firing.id, FiringStatus::Skipped)
                    .await?;
                pass.skipped += 1;
            } else {
                claimed.push(firing);
            }
        }
        pass.add(self.deliver_digests(claimed).await?);
        Ok(pass)
    }

    /// Sends each digest's text, then marks it.
    async fn deliver_digests(&self, firings: Vec<DigestFiring>) -> Result<Pass, StoreError> {
        let mut pass = Pass::default();
        for firing in firings {
            let delivery = if firing.body.is_empty() {
                Delivery::Unreachable
            } else {
                self.sink.deliver_text(firing.user_id, &firing.body).await
            };
            match delivery {
                Delivery::Sent => {
                    self.store
                        .finish_digest(firing.id, FiringStatus::Sent)
                        .await?;
                    pass.sent += 1;
                }
                Delivery::Unreachable => {
                    self.store
                        .finish_digest(firing.id, FiringStatus::Skipped)
                        .await?;
                    pass.skipped += 1;
                }
                Delivery::Failed => pass.failed += 1,
            }
        }
        Ok(pass)
    }

    /// Sends again every firing left 'sending' (a crash, or a failed send), then marks it.
    pub async fn resend_unmarked(&mut self) -> Result<Pass, StoreError> {
        let unmarked = self.store.unsent_firings().await?;
        let mut pass = Pass::default();
        let mut left = Vec::new();
        for firing in unmarked {
            if self.sink.was_delivered(&firing).await {
                self.store
                    .finish_firing(firing.id, FiringStatus::Sent)
                    .await?;
            } else {
                left.push(firing);
            }
        }
        pass.add(self.deliver_all(left).await?);
        let mut digests = Vec::new();
        for firing in self.store.unsent_digests().await? {
            if self
                .sink
                .was_text_delivered(firing.user_id, &firing.body, firing.claimed_at)
                .await
            {
                self.store
                    .finish_digest(firing.id, FiringStatus::Sent)
                    .await?;
            } else {
                digests.push(firing);
            }
        }
        pass.add(self.deliver_digests(digests).await?);
        Ok(pass)
    }

    /// Reloads the heap with the next window from the store.
    pub async fn refill(&mut self) -> Result<(), StoreError> {
        let until = self.clock.now() + self.config.window;
        let due = self.store.due_reminders(until, self.config.batch).await?;
        self.heap = due.into_iter().map(|d| Reverse(Pending(d))).collect();
        Ok(())
    }

    /// Fires every held reminder due by now; refills when the heap ran dry and fires those
    /// too, so a backlog larger than one batch drains in one pass.
    pub async fn fire_due(&mut self) -> Result<Pass, StoreError> {
        let mut pass = Pass::default();
        loop {
            let now = self.clock.now();
            let mut claimed = Vec::new();
            let mut drained = false;
            while let Some(Reverse(top)) = self.heap.peek() {
                if top.0.due_at > now {
                    break;
                }
                let Some(Reverse(Pending(due))) = self.heap.pop() else {
                    break;
                };
                drained = self.heap.is_empty();
                match self.claim(&due, now).await? {
                    Claim::Send(firing) => claimed.push(firing),
                    Claim::Skipped => pass.skipped += 1,
                    Claim::Deferred => pass.deferred += 1,
                    Claim::Gone => {}
                }
            }
            pass.add(self.deliver_all(claimed).await?);
            if !drained {
                return Ok(pass);
            }
            self.refill().await?;
            if self
                .heap
                .peek()
                .is_none_or(|Reverse(top)| top.0.due_at > self.clock.now())
            {
                return Ok(pass);
            }
        }
    }

    /// How long until the next held reminder is due, at most the poll interval.
    pub fn next_wake(&self) -> Duration {
        let poll = self.config.poll;
        match self.heap.peek() {
            Some(Reverse(top)) => (top.0.due_at - self.clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(poll),
            None => poll,
        }
    }

    async fn claim(&self, due: &DueReminder, now: DateTime<Utc>) -> Result<Claim, StoreError> {
        let overdue = now - due.due_at;
        let beyond_grace = overdue > self.config.grace;
        if !beyond_grace
            && !due.urgent
            && let Some(end) = self.quiet_until(due, now).await?
        {
            return Ok(if self.store.defer_reminder(due, end).await? {
                Claim::Deferred
            } else {
                Claim::Gone
            });
        }
        let next = due.recurrence.as_deref().and_then(|rule| {
            match Recurrence::from_rrule(rule) {
                Ok(rule) => Some(rule.next_after(due.due_at.max(now), zone(&due.time_zone))),
                Err(error) => {
                    tracing::error!(reminder = due.id, %error, "unreadable repeat rule; firing once");
                    None
                }
            }
        });
        let Some(firing) = self
            .store
            .claim_firing(due, next, overdue > LATE_AFTER)
            .await?
        else {
            return Ok(Claim::Gone);
        };
        if beyond_grace {
            tracing::warn!(user = %due.user_id, reminder = due.id, "reminder missed beyond the grace period; not sent");
            self.store
                .finish_firing(firing.id, FiringStatus::Skipped)
                .await?;
            return Ok(Claim::Skipped);
        }
        Ok(Claim::Send(firing))
    }

    /// The end of the user's quiet hours when `now` falls inside them.
    async fn quiet_until(
        &self,
        due: &DueReminder,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let profile = match self.store.profile(due.user_id).await {
            Ok(profile) => profile,
            Err(StoreError::NotFound) => return Ok(None),
            Err(error) => return Err(error),
        };
        let (Some(start), Some(end)) = (profile.quiet_start, profile.quiet_end) else {
            return Ok(None);
        };
        Ok(quiet_end(now, zone(&profile.time_zone), start, end))
    }

    /// Sends each firing concurrently, then marks what was delivered.
    async fn deliver_all(&self, firings: Vec<Firing>) -> Result<Pass, StoreError> {
        let mut pass = Pass::default();
        let mut sends = tokio::task::JoinSet::new();
        let now = self.clock.now();
        for firing in firings {
            let sink = self.sink.clone();
            sends.spawn(async move {
                let delivery = sink.deliver(&firing, now).await;
                (firing.id, delivery)
            });
        }
        while let Some(joined) = sends.join_next().await {
            let Ok((id, delivery)) = joined else {
                pass.failed += 1;
                continue;
            };
            match delivery {
                Delivery::Sent => {
                    self.store.finish_firing(id, FiringStatus::Sent).await?;
                    pass.sent += 1;
                }
                Delivery::Unreachable => {
                    self.store.finish_firing(id, FiringStatus::Skipped).await?;
                    pass.skipped += 1;
                }
                Delivery::Failed => pass.failed += 1,
            }
        }
        Ok(pass)
    }
}

impl Pass {
    fn add(&mut self, other: Pass) {
        self.sent += other.sent;
        self.skipped += other.skipped;
        self.failed += other.failed;
        self.deferred += other.deferred;
    }
}

enum Claim {
    Send(Firing),
    Skipped,
    Deferred,
    /// Cancelled, moved or claimed elsewhere meanwhile.
    Gone,
}

/// When `now` falls in the quiet window `[start, end)` (minutes after local midnight in
/// `tz`, crossing midnight when `start > end`), the instant that window ends.
pub fn quiet_end(now: DateTime<Utc>, tz: Tz, start: u16, end: u16) -> Option<DateTime<Utc>> {
    if start == end {
        return None;
    }
    let local = now.with_timezone(&tz).naive_local();
    let minute = local.hour() * 60 + local.minute();
    let (start, end) = (u32::from(start), u32::from(end));
    let inside = if start < end {
        minute >= start && minute < end
    } else {
        minute >= start || minute < end
    };
    if !inside {
        return None;
    }
    let end_time = NaiveTime::from_hms_opt(end / 60, end % 60, 0)?;
    let date = if minute < end {
        local.date()
    } else {
        local.date().succ_opt()?
    };
    Some(resolve_local(tz, date.and_time(end_time)))
}

/// Messages of the [`ReminderScheduler`].
#[derive(RactorMessage)]
pub enum SchedulerMsg {
    /// The start-up pass ([`Scheduler::start_up`]): the first message the actor handles.
    StartUp,
    /// Fire what is due, refill, and sleep until the next. Carries the wake-up's generation:
    /// a tick planned before a newer one is stale and ignored, so ticks never multiply.
    Tick(u64),
    /// A reminder was written in this process ([`Store::reminder_changes`]): look again now,
    /// in case it is due before the planned wake-up.
    Changed,
}

/// The actor's state: the scheduler, and what keeps its wake-ups in order.
pub struct SchedulerState {
    scheduler: Scheduler,
    /// The generation of the one tick that counts; bumped each time a tick is planned.
    generation: u64,
    /// Forwards the store's reminder changes to the actor as [`SchedulerMsg::Changed`].
    watcher: tokio::task::JoinHandle<()>,
    /// Set while a [`SchedulerMsg::Changed`] waits in the mailbox: a burst of writes makes
    /// one look, not one per write.
    change_pending: Arc<AtomicBool>,
}

impl SchedulerState {
    /// Plans the next tick at the scheduler's next wake, superseding any tick planned before.
    fn plan(&mut self, myself: &ActorRef<SchedulerMsg>) {
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        myself.send_after(self.scheduler.next_wake(), move || {
            SchedulerMsg::Tick(generation)
        });
    }
}

/// Casts [`SchedulerMsg::Changed`] to the scheduler each time the store's reminders change,
/// until the scheduler is gone.
fn watch_changes(
    store: &Store,
    myself: ActorRef<SchedulerMsg>,
    pending: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let mut changes = store.reminder_changes();
    changes.mark_unchanged();
    tokio::spawn(async move {
        while changes.changed().await.is_ok() {
            if pending.swap(true, AtomicOrdering::AcqRel) {
                continue;
            }
            if myself.cast(SchedulerMsg::Changed).is_err() {
                break;
            }
        }
    })
}

/// What the scheduler needs; cloned into each restart.
#[derive(Clone)]
pub struct SchedulerArgs {
    pub store: Store,
    pub sink: Arc<dyn NudgeSink>,
    pub clock: Arc<dyn Clock>,
    pub config: SchedulerConfig,
}

/// The actor around a [`Scheduler`].
pub struct ReminderScheduler;

impl Actor for ReminderScheduler {
    type Msg = SchedulerMsg;
    type State = SchedulerState;
    type Arguments = SchedulerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SchedulerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        // Watch before the first load, so a reminder written meanwhile is not missed.
        let change_pending = Arc::new(AtomicBool::new(false));
        let watcher = watch_changes(&args.store, myself.clone(), change_pending.clone());
        let scheduler = Scheduler::new(args.store, args.sink, args.clock, args.config);
        // The start-up pass sends (to Twilio, maybe slowly): it runs as the first message, so
        // starting the actor tree, and the process, never waits on an outside service.
        myself.cast(SchedulerMsg::StartUp)?;
        Ok(SchedulerState {
            scheduler,
            generation: 0,
            watcher,
            change_pending,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.watcher.abort();
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SchedulerMsg::StartUp => {
                let scheduler = &mut state.scheduler;
                let pass = scheduler.start_up().await?;
                tracing::info!(
                    sent = pass.sent,
                    skipped = pass.skipped,
                    failed = pass.failed,
                    deferred = pass.deferred,
                    held = scheduler.held(),
                    "reminder scheduler started"
                );
                state.plan(&myself);
            }
            SchedulerMsg::Tick(generation) if generation != state.generation => {}
            SchedulerMsg::Tick(_) => {
                let scheduler = &mut state.scheduler;
                let mut fired = scheduler.fire_due().await?;
                fired.add(scheduler.fire_digests().await?);
                if fired.failed > 0 || fired.sent > 0 {
                    tracing::info!(sent = fired.sent, failed = fired.failed, "reminders fired");
                }
                scheduler.refill().await?;
                if fired.failed > 0 {
                    // Failed sends stay 'sending'; the next pass tries them again.
                    scheduler.resend_unmarked().await?;
                }
                state.plan(&myself);
            }
            SchedulerMsg::Changed => {
                state.change_pending.store(false, AtomicOrdering::Release);
                let scheduler = &mut state.scheduler;
                scheduler.refill().await?;
                let mut fired = scheduler.fire_due().await?;
                fired.add(scheduler.fire_digests().await?);
                if fired.sent > 0 {
                    tracing::info!(sent = fired.sent, "new reminder fired at once");
                }
                state.plan(&myself);
            }
        }
        Ok(())
    }
}

/// The supervisor takes no requests; it only supervises.
#[derive(RactorMessage)]
pub enum ReminderSupervisorMsg {}

/// Supervises the scheduler: restarts it when it fails (a store outage, say), at most
/// [`MAX_RESTARTS`] times per [`RESTART_PERIOD`], then stops, which its own supervisor sees.
pub struct ReminderSupervisor;

/// The supervisor's state.
pub struct SupervisorState {
    args: SchedulerArgs,
    child: ActorRef<SchedulerMsg>,
    restarts: Vec<tokio::time::Instant>,
}

impl Actor for ReminderSupervisor {
    type Msg = ReminderSupervisorMsg;
    type State = SupervisorState;
    type Arguments = SchedulerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SchedulerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let (child, _) =
            Actor::spawn_linked(None, ReminderScheduler, args.clone(), myself.get_cell()).await?;
        Ok(SupervisorState {
            args,
            child,
            restarts: Vec::new(),
        })
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let why = match &event {
            SupervisionEvent::ActorFailed(cell, error) if cell.get_id() == state.child.get_id() => {
                error.to_string()
            }
            _ => return Ok(()),
        };
        let now = tokio::time::Instant::now();
        state
            .restarts
            .retain(|at| now.duration_since(*at) < RESTART_PERIOD);
        if state.restarts.len() >= MAX_RESTARTS {
            tracing::error!(reason = %why, "reminder scheduler keeps failing; giving up");
            myself.stop(Some("reminder scheduler keeps failing".into()));
            return Ok(());
        }
        state.restarts.push(now);
        tracing::error!(reason = %why, "reminder scheduler failed; restarting it");
        let (child, _) = Actor::spawn_linked(
            None,
            ReminderScheduler,
            state.args.clone(),
            myself.get_cell(),
        )
        .await?;
        state.child = child;
        Ok(())
    }
}

#[cfg(test)]
#[path = "reminders_tests.rs"]
mod tests;
