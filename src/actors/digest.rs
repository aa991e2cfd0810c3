//! The morning digest: once a day at the user's chosen local time (opt-in, default 08:00),
//! one SMS-sized message with today's top three tasks and today's reminders, in the user's
//! language; nothing when there is nothing to say.
//!
//! The [`ReminderScheduler`](super::reminders::ReminderScheduler) fires it: each digest is a
//! firing keyed by (user, local date) in `digest_firings` (see [`Store::claim_digest`]), so a
//! restart never sends a day's digest twice. This module holds the pure parts: when the next
//! one is due, and what it says.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;

use crate::sms::segments;
use crate::store::{Language, Priority, Reminder, Store, StoreError, Task, UserId};
use crate::tools::when::{clock_text, resolve_local, zone};

/// Tasks a digest names.
const TOP_TASKS: usize = 3;
/// Reminders a digest names (the rest are counted).
const MAX_REMINDERS: usize = 4;
/// A digest fits in this many SMS segments (Twilio advises at most 320 characters).
const MAX_SEGMENTS: u32 = 2;

/// The digest's instant on `date`, in `tz` (a time skipped by a DST change moves forward).
pub fn digest_at(date: NaiveDate, tz: Tz, minute: u16) -> DateTime<Utc> {
    let minute = u32::from(minute.min(24 * 60 - 1));
    let time = NaiveTime::from_hms_opt(minute / 60, minute % 60, 0).unwrap_or(NaiveTime::MIN);
    resolve_local(tz, date.and_time(time))
}

/// The first digest instant strictly after `now`.
pub fn next_digest_after(now: DateTime<Utc>, tz: Tz, minute: u16) -> DateTime<Utc> {
    let today = now.with_timezone(&tz).date_naive();
    let at = digest_at(today, tz, minute);
    if at > now {
        return at;
    }
    let tomorrow = today.succ_opt().unwrap_or(today);
    let next = digest_at(tomorrow, tz, minute);
    if next > now {
        next
    } else {
        now + TimeDelta::days(1)
    }
}

/// Open tasks, most pressing first: higher priority, then sooner due (undated last), then
/// oldest.
fn top_tasks(mut tasks: Vec<Task>) -> Vec<Task> {
    let rank = |p: Priority| match p {
        Priority::High => 0,
        Priority::Normal => 1,
        Priority::Low => 2,
    };
    tasks.sort_by_key(|t| {
        (
            rank(t.priority),
            t.due.map(|d| d.at).unwrap_or(DateTime::<Utc>::MAX_UTC),
            t.id,
        )
    });
    tasks.truncate(TOP_TASKS);
    tasks
}

/// The digest's text for `date`, or `None` when there is nothing to say.
pub async fn compose(
    store: &Store,
    user: UserId,
    date: NaiveDate,
) -> Result<Option<String>, StoreError> {
    let profile = store.profile(user).await?;
    let tz = zone(&profile.time_zone);
    let tasks = top_tasks(store.open_tasks(user).await?);
    let reminders: Vec<Reminder> = store
        .scheduled_reminders(user)
        .await?
        .into_iter()
        .filter(|r| r.due_at.with_timezone(&tz).date_naive() == date)
        .collect();
    Ok(digest_text(profile.language, tz, &tasks, &reminders))
}

/// The words of a digest: the tasks numbered, the reminders with their local times.
pub fn digest_text(
    lang: Language,
    tz: Tz,
    tasks: &[Task],
    reminders: &[Reminder],
) -> Option<String> {
    if tasks.is_empty() && reminders.is_empty() {
        return None;
    }
    let mut parts = vec![match lang {
        Language::En => "Good morning!".to_owned(),
        Language::Fr => "Bonjour !".to_owned(),
    }];
    if !tasks.is_empty() {
        let list: Vec<String> = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{}) {}", i + 1, t.title))
            .collect();
        parts.push(match lang {
            Language::En => format!("Top tasks: {}.", list.join(" ")),
            Language::Fr => format!("Tes priorités : {}.", list.join(" ")),
        });
    }
    if !reminders.is_empty() {
        let mut list: Vec<String> = reminders
            .iter()
            .take(MAX_REMINDERS)
            .map(|r| {
                let at = r.due_at.with_timezone(&tz);
                format!("{} {}", clock_text(at.hour(), at.minute(), lang), r.body)
            })
            .collect();
        let more = reminders.len().saturating_sub(MAX_REMINDERS);
        if more > 0 {
            list.push(match lang {
                Language::En => format!("+{more} more"),
                Language::Fr => format!("+{more} autres"),
            });
        }
        parts.push(match lang {
            Language::En => format!("Today: {}.", list.join(", ")),
            Language::Fr => format!("Aujourd'hui : {}.", list.join(", ")),
        });
    }
    let text = parts.join(" ");
    Some(segments::fit(
        &segments::normalize_punctuation(&text),
        MAX_SEGMENTS,
    ))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("a valid time")
    }

    #[test]
    fn the_next_digest_is_today_before_its_time_tomorrow_after_it_and_keeps_local_time_across_dst()
    {
        let paris = zone("Europe/Paris");
        // 07:00 in Paris (CET) is 06:00 UTC: today's 08:00 is still ahead.
        assert_eq!(
            next_digest_after(utc(2026, 3, 27, 6, 0), paris, 480),
            utc(2026, 3, 27, 7, 0)
        );
        // At 08:00 exactly it is tomorrow's; across the spring change 08:00 CEST is 06:00 UTC.
        assert_eq!(
            next_digest_after(utc(2026, 3, 28, 7, 0), paris, 480),
            utc(2026, 3, 29, 6, 0)
        );
        // A time the spring change skips (02:30) moves forward by the gap.
        assert_eq!(
            next_digest_after(utc(2026, 3, 28, 12, 0), paris, 150),
            utc(2026, 3, 29, 1, 30)
        );
    }
}
