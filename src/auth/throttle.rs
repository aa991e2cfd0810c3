//! Sign-in throttling: how failed sign-ins lock, and for how long.
//!
//! Two counters per account:
//! - per client (the account and the client's address): [`CLIENT_FAILURES`] failures lock
//!   that client out of that account for a minute, then 2, 4, 8, up to [`MAX_LOCK`];
//! - for the whole account: [`ACCOUNT_FAILURES`] failures from anywhere lock it for
//!   [`MAX_LOCK`] — except for devices the person signed in from before (trusted devices),
//!   which never count towards nor obey this lock.
//!
//! So an attacker can slow their own guesses to a crawl but cannot lock the person out: the
//! person's own devices keep working, every lock ends on its own, and a day without failures
//! forgets past lockouts.

use chrono::{DateTime, Duration, Utc};

use crate::store::Throttle;

/// Failures from one client before it is locked out of the account.
pub const CLIENT_FAILURES: u32 = 5;
/// Failures from untrusted devices before the account locks them all out.
pub const ACCOUNT_FAILURES: u32 = 20;
/// The first lockout's length; each next one doubles.
const FIRST_LOCK: Duration = Duration::minutes(1);
/// No lockout lasts longer.
pub const MAX_LOCK: Duration = Duration::minutes(15);
/// A counter untouched this long starts over.
const QUIET: Duration = Duration::hours(24);

/// How long the counter still locks, if it does at `now`.
pub fn locked_for(throttle: &Throttle, now: DateTime<Utc>) -> Option<std::time::Duration> {
    throttle
        .locked_until
        .filter(|until| *until > now)
        .and_then(|until| (until - now).to_std().ok())
}

/// The counter after one more failure at `now`: at `threshold` failures it locks, each
/// lockout twice as long as the one before (up to [`MAX_LOCK`]).
pub fn after_failure(throttle: Throttle, threshold: u32, now: DateTime<Utc>) -> Throttle {
    let stale = throttle.updated_at.is_some_and(|at| now - at > QUIET);
    let mut next = if stale { Throttle::default() } else { throttle };
    next.failures += 1;
    next.updated_at = Some(now);
    if next.failures >= threshold {
        let doublings = next.lockouts.min(10);
        let lock = (FIRST_LOCK * 2_i32.pow(doublings)).min(MAX_LOCK);
        next.locked_until = Some(now + lock);
        next.lockouts += 1;
        next.failures = 0;
    }
    next
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn five_failures_lock_a_client_for_a_minute_then_twice_as_long() {
        let mut t = Throttle::default();
        for _ in 0..4 {
            t = after_failure(t, CLIENT_FAILURES, at(0));
            assert_eq!(locked_for(&t, at(0)), None);
        }
        t = after_failure(t, CLIENT_FAILURES, at(0));
        assert_eq!(
            locked_for(&t, at(0)),
            Some(std::time::Duration::from_secs(60))
        );
        assert_eq!(locked_for(&t, at(60)), None, "the lock ends on its own");
        for _ in 0..5 {
            t = after_failure(t, CLIENT_FAILURES, at(61));
        }
        assert_eq!(
            locked_for(&t, at(61)),
            Some(std::time::Duration::from_secs(120))
        );
    }

    #[test]
    fn lockouts_never_exceed_the_cap_and_a_quiet_day_forgets_them() {
        let mut t = Throttle::default();
        let mut now = 0;
        for _ in 0..20 {
            for _ in 0..CLIENT_FAILURES {
                t = after_failure(t, CLIENT_FAILURES, at(now));
            }
            let locked = locked_for(&t, at(now)).unwrap();
            assert!(locked <= MAX_LOCK.to_std().unwrap());
            now += 15 * 60;
        }
        assert_eq!(locked_for(&t, at(now)), None);
        let later = after_failure(t, CLIENT_FAILURES, at(now + 25 * 60 * 60));
        assert_eq!((later.failures, later.lockouts), (1, 0));
    }
}
