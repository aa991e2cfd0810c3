//! Retry timing: exponential backoff with full jitter, and the provider's own `Retry-After`.
//!
//! Only [retryable](super::LlmError::is_retryable) errors are retried, and never past the
//! turn's deadline: a wait that would end after it is not started (the caller fails over to
//! the next provider instead).

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How a provider's failed calls are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per provider per request, the first included.
    pub max_attempts: u32,
    /// The backoff before the second attempt; doubled for each later one.
    pub base: Duration,
    /// No single wait is longer than this, whatever `Retry-After` says.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `next` (2 for the first retry): the provider's `Retry-After`
    /// when it gave one, else a random duration in `[0, base · 2^(next-2)]` ("full jitter");
    /// `None` when no attempt is left or the provider asks for more than `max_delay`.
    ///
    /// `unit` is a uniform random number in `[0, 1)`, passed in so tests are exact.
    pub fn delay(&self, next: u32, retry_after: Option<Duration>, unit: f64) -> Option<Duration> {
        if next > self.max_attempts || next < 2 {
            return None;
        }
        if let Some(wait) = retry_after {
            return (wait <= self.max_delay).then_some(wait);
        }
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(next.saturating_sub(2)));
        let cap = exp.min(self.max_delay);
        Some(cap.mul_f64(unit.clamp(0.0, 1.0)))
    }
}

/// Parses a `Retry-After` header: delay-seconds, or an HTTP date (`Wed, 21 Oct 2015
/// 07:28:00 GMT`) relative to `now`. A date in the past means "now".
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Parses a protobuf `Duration` as JSON writes it (`"7s"`, `"0.5s"`): Gemini's
/// `RetryInfo.retryDelay`.
pub fn parse_proto_duration(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().strip_suffix('s')?.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn backoff_doubles_with_full_jitter_and_stops_after_the_last_attempt() {
        let policy = RetryPolicy {
            max_attempts: 4,
            base: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
        };
        assert_eq!(policy.delay(1, None, 0.5), None);
        assert_eq!(policy.delay(2, None, 1.0), Some(Duration::from_millis(100)));
        assert_eq!(policy.delay(3, None, 1.0), Some(Duration::from_millis(200)));
        assert_eq!(policy.delay(4, None, 1.0), Some(Duration::from_millis(300)));
        assert_eq!(policy.delay(3, None, 0.25), Some(Duration::from_millis(50)));
        assert_eq!(policy.delay(3, None, 0.0), Some(Duration::ZERO));
        assert_eq!(policy.delay(5, None, 1.0), None);
    }

    #[test]
    fn retry_after_replaces_the_backoff_unless_it_asks_too_much() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay(2, Some(Duration::from_secs(1)), 0.0),
            Some(Duration::from_secs(1))
        );
        assert_eq!(policy.delay(2, Some(Duration::from_secs(60)), 0.0), None);
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 27, 50).unwrap();
        assert_eq!(parse_retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn proto_durations_parse_as_gemini_writes_them() {
        assert_eq!(parse_proto_duration("7s"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_proto_duration("0.5s"),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_proto_duration("7"), None);
        assert_eq!(parse_proto_duration("-1s"), None);
    }
}
