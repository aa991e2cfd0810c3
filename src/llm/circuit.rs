//! A circuit breaker: a pure state machine over explicit time, so tests drive it with any
//! instants they like and its owner (the `LlmSupervisor` actor) reads time from a
//! [`Clock`] it can be given.
//!
//! ```text
//!   Closed ──(≥ min_calls in the window and failure rate ≥ threshold)──▶ Open
//!     ▲                                                                   │ open_for passes
//!     │                                                                   ▼
//!     └──────────(probe_successes successes in a row)────────────── HalfOpen
//!                                  any probe failure ──▶ Open again
//! ```
//!
//! Closed: every call is admitted and its outcome lands in a sliding window of
//! `window` duration. Open: calls fail fast until `open_for` has passed. Half-open: at most
//! `max_probes` calls at a time are let through as probes.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Where time comes from. The real one is [`SystemClock`]; tests use [`ManualClock`].
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Instant;
}

/// The monotonic clock of the machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    offset: Mutex<Duration>,
}

impl ManualClock {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            offset: Mutex::new(Duration::ZERO),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        if let Ok(mut offset) = self.offset.lock() {
            *offset += by;
        }
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        let offset = self.offset.lock().map(|o| *o).unwrap_or_default();
        self.start + offset
    }
}

/// When a circuit opens and how it recovers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CircuitPolicy {
    /// Outcomes older than this are forgotten.
    pub window: Duration,
    /// No verdict on fewer calls than this in the window.
    pub min_calls: usize,
    /// The failure share (0–1) at or above which the circuit opens.
    pub failure_rate: f64,
    /// How long an open circuit fails fast before probing.
    pub open_for: Duration,
    /// Probes allowed in flight at once while half-open.
    pub max_probes: usize,
    /// Successful probes in a row that close the circuit.
    pub probe_successes: usize,
}

impl Default for CircuitPolicy {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            min_calls: 5,
            failure_rate: 0.5,
            open_for: Duration::from_secs(30),
            max_probes: 1,
            probe_successes: 2,
        }
    }
}

/// The state of a circuit, for inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

/// What a caller learns when it asks to make a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Call,
    /// Go ahead: this call is a half-open probe.
    Probe,
    /// Fail fast; the circuit may probe again after this long.
    Rejected { retry_in: Duration },
}

/// How a call ended, as the circuit counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The provider looked unhealthy (429, 5xx, timeout, malformed answer).
    Failure,
    /// Says nothing about the provider's health (a rejected request, a deadline that passed
    /// before the call): frees a probe slot and counts for nothing else.
    Neutral,
}

/// A circuit's state and numbers, for the admin endpoint and metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CircuitSnapshot {
    /// The provider the circuit guards.
    pub provider: String,
    pub state: CircuitState,
    /// Calls recorded in the current window.
    pub calls_in_window: usize,
    /// Failures among them.
    pub failures_in_window: usize,
    /// Times the circuit opened since start.
    pub opened_total: u64,
    /// While open: milliseconds until the next probe is allowed.
    pub retry_in_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: usize, successes: usize },
}

/// One provider's circuit.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    policy: CircuitPolicy,
    phase: Phase,
    /// (when, failed) of recent calls while closed, oldest first.
    outcomes: VecDeque<(Instant, bool)>,
    /// How many of `outcomes` failed: kept as they come and go, so a verdict costs the same
    /// however many calls the window holds (thousands a second on a busy node).
    failures: usize,
    opened_total: u64,
}

impl CircuitBreaker {
    pub fn new(policy: CircuitPolicy) -> Self {
        Self {
            policy,
            phase: Phase::Closed,
            outcomes: VecDeque::new(),
            failures: 0,
            opened_total: 0,
        }
    }

    /// The state at `now` (an open circuit whose wait has passed reads as half-open).
    pub fn state(&self, now: Instant) -> CircuitState {
        match self.phase {
            Phase::Closed => CircuitState::Closed,
            Phase::Open { until } if now >= until => CircuitState::HalfOpen,
            Phase::Open { .. } => CircuitState::Open,
            Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Asks to make a call at `now`. An admitted call must be followed by one [`record`].
    ///
    /// [`record`]: CircuitBreaker::record
    pub fn admit(&mut self, now: Instant) -> Admission {
        match self.phase {
            Phase::Closed => Admission::Call,
            Phase::Open { until } if now < until => Admission::Rejected {
                retry_in: until - now,
            },
            Phase::Open { .. } => {
                self.phase = Phase::HalfOpen {
                    in_flight: 1,
                    successes: 0,
                };
                Admission::Probe
            }
            Phase::HalfOpen {
                in_flight,
                successes,
            } if in_flight < self.policy.max_probes => {
                self.phase = Phase::HalfOpen {
                    in_flight: in_flight + 1,
                    successes,
                };
                Admission::Probe
            }
            // Probes are out; the next one may go once they report.
            Phase::HalfOpen { .. } => Admission::Rejected {
                retry_in: Duration::ZERO,
            },
        }
    }

    /// Records the outcome of an admitted call that ended at `now`.
    pub fn record(&mut self, now: Instant, outcome: Outcome) {
        match self.phase {
            Phase::Closed => {
                if outcome == Outcome::Neutral {
                    return;
                }
                let failed = outcome == Outcome::Failure;
                self.outcomes.push_back((now, failed));
                self.failures += usize::from(failed);
                self.prune(now);
                if self.should_open() {
                    self.open(now);
                }
            }
            // A call admitted before the circuit opened: its outcome is already history.
            Phase::Open { .. } => {}
            Phase::HalfOpen {
                in_flight,
                successes,
            } => {
                let in_flight = in_flight.saturating_sub(1);
                match outcome {
                    Outcome::Failure => self.open(now),
                    Outcome::Success if successes + 1 >= self.policy.probe_successes => {
                        self.phase = Phase::Closed;
                        self.forget();
                    }
                    Outcome::Success => {
                        self.phase = Phase::HalfOpen {
                            in_flight,
                            successes: successes + 1,
                        }
                    }
                    Outcome::Neutral => {
                        self.phase = Phase::HalfOpen {
                            in_flight,
                            successes,
                        }
                    }
                }
            }
        }
    }

    /// The circuit's numbers at `now`.
    pub fn snapshot(&self, provider: &str, now: Instant) -> CircuitSnapshot {
        let recent = self
            .outcomes
            .iter()
            .filter(|(at, _)| now.saturating_duration_since(*at) <= self.policy.window);
        let (calls, failures) = recent.fold((0, 0), |(c, f), (_, failed)| {
            (c + 1, f + usize::from(*failed))
        });
        CircuitSnapshot {
            provider: provider.to_owned(),
            state: self.state(now),
            calls_in_window: calls,
            failures_in_window: failures,
            opened_total: self.opened_total,
            retry_in_ms: match self.phase {
                Phase::Open { until } if now < until => {
                    Some(u64::try_from((until - now).as_millis()).unwrap_or(u64::MAX))
                }
                _ => None,
            },
        }
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&(at, failed)) = self.outcomes.front() {
            if now.saturating_duration_since(at) > self.policy.window {
                self.outcomes.pop_front();
                self.failures = self.failures.saturating_sub(usize::from(failed));
            } else {
                break;
            }
        }
    }

    fn forget(&mut self) {
        self.outcomes.clear();
        self.failures = 0;
    }

    fn should_open(&self) -> bool {
        let calls = self.outcomes.len();
        if calls < self.policy.min_calls.max(1) {
            return false;
        }
        self.failures as f64 / calls as f64 >= self.policy.failure_rate
    }

    fn open(&mut self, now: Instant) {
        self.phase = Phase::Open {
            until: now + self.policy.open_for,
        };
        self.forget();
        self.opened_total += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_leave_the_verdict_as_they_leave_the_window() {
        let policy = policy();
        let mut breaker = CircuitBreaker::new(policy);
        let t0 = Instant::now();
        // Enough failures open it, on the count it keeps.
        for _ in 0..policy.min_calls {
            breaker.record(t0, Outcome::Failure);
        }
        assert_eq!(breaker.state(t0), CircuitState::Open);

        // Old failures age out of the window and stop counting.
        let mut breaker = CircuitBreaker::new(policy);
        for _ in 0..3 {
            breaker.record(t0, Outcome::Failure);
        }
        let later = t0 + policy.window + Duration::from_millis(1);
        for _ in 0..policy.min_calls {
            breaker.record(later, Outcome::Success);
        }
        let snapshot = breaker.snapshot("p", later);
        assert_eq!(
            (snapshot.calls_in_window, snapshot.failures_in_window),
            (policy.min_calls, 0)
        );
        // Failures count from zero again: 3 of 7 stays closed, 4 of 8 opens (rate 0.5).
        for _ in 0..3 {
            breaker.record(later, Outcome::Failure);
        }
        assert_eq!(breaker.state(later), CircuitState::Closed);
        assert_eq!(breaker.snapshot("p", later).failures_in_window, 3);
        breaker.record(later, Outcome::Failure);
        assert_eq!(breaker.state(later), CircuitState::Open);
    }

    fn policy() -> CircuitPolicy {
        CircuitPolicy {
            window: Duration::from_secs(10),
            min_calls: 4,
            failure_rate: 0.5,
            open_for: Duration::from_secs(5),
            max_probes: 1,
            probe_successes: 2,
        }
    }

    fn call(breaker: &mut CircuitBreaker, clock: &ManualClock, outcome: Outcome) -> Admission {
        let admission = breaker.admit(clock.now());
        if !matches!(admission, Admission::Rejected { .. }) {
            breaker.record(clock.now(), outcome);
        }
        admission
    }

    #[test]
    fn a_closed_circuit_opens_once_the_failure_rate_crosses_the_threshold_over_enough_calls() {
        let clock = ManualClock::new();
        let mut breaker = CircuitBreaker::new(policy());
        call(&mut breaker, &clock, Outcome::Failure);
        call(&mut breaker, &clock, Outcome::Failure);
        call(&mut breaker, &clock, Outcome::Failure);
        assert_eq!(
            breaker.state(clock.now()),
            CircuitState::Closed,
            "3 < min_calls"
        );
        call(&mut breaker, &clock, Outcome::Success);
        assert_eq!(
            breaker.state(clock.now()),
            CircuitState::Open,
            "3 of 4 failed"
        );
        let snapshot = breaker.snapshot("gemini", clock.now());
        assert_eq!(snapshot.opened_total, 1);
        assert_eq!(snapshot.retry_in_ms, Some(5_000));
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let clock = ManualClock::new();
        let mut breaker = CircuitBreaker::new(policy());
        for _ in 0..3 {
            call(&mut breaker, &clock, Outcome::Failure);
        }
        clock.advance(Duration::from_secs(11));
        call(&mut breaker, &clock, Outcome::Success);
        call(&mut breaker, &clock, Outcome::Failure);
        call(&mut breaker, &clock, Outcome::Success);
        call(&mut breaker, &clock, Outcome::Success);
        assert_eq!(breaker.state(clock.now()), CircuitState::Closed);
        let snapshot = breaker.snapshot("gemini", clock.now());
        assert_eq!(
            (snapshot.calls_in_window, snapshot.failures_in_window),
            (4, 1)
        );
    }

    #[test]
    fn an_open_circuit_fails_fast_then_half_opens_and_closes_after_enough_good_probes() {
        let clock = ManualClock::new();
        let mut breaker = CircuitBreaker::new(policy());
        for _ in 0..4 {
            call(&mut breaker, &clock, Outcome::Failure);
        }
        assert_eq!(
            breaker.admit(clock.now()),
            Admission::Rejected {
                retry_in: Duration::from_secs(5)
            }
        );
        clock.advance(Duration::from_secs(5));
        assert_eq!(breaker.state(clock.now()), CircuitState::HalfOpen);
        assert_eq!(breaker.admit(clock.now()), Admission::Probe);
        assert!(
            matches!(breaker.admit(clock.now()), Admission::Rejected { .. }),
            "one probe at a time"
        );
        breaker.record(clock.now(), Outcome::Success);
        assert_eq!(breaker.state(clock.now()), CircuitState::HalfOpen);
        assert_eq!(
            call(&mut breaker, &clock, Outcome::Success),
            Admission::Probe
        );
        assert_eq!(breaker.state(clock.now()), CircuitState::Closed);
        assert_eq!(
            call(&mut breaker, &clock, Outcome::Failure),
            Admission::Call
        );
    }

    #[test]
    fn a_failed_probe_opens_the_circuit_again_for_a_full_wait() {
        let clock = ManualClock::new();
        let mut breaker = CircuitBreaker::new(policy());
        for _ in 0..4 {
            call(&mut breaker, &clock, Outcome::Failure);
        }
        clock.advance(Duration::from_secs(6));
        assert_eq!(
            call(&mut breaker, &clock, Outcome::Failure),
            Admission::Probe
        );
        assert_eq!(breaker.state(clock.now()), CircuitState::Open);
        assert_eq!(breaker.snapshot("gemini", clock.now()).opened_total, 2);
        clock.advance(Duration::from_secs(4));
        assert!(matches!(
            breaker.admit(clock.now()),
            Admission::Rejected { .. }
        ));
    }

    #[test]
    fn neutral_outcomes_free_a_probe_without_deciding_anything() {
        let clock = ManualClock::new();
        let mut breaker = CircuitBreaker::new(policy());
        for _ in 0..4 {
            call(&mut breaker, &clock, Outcome::Neutral);
        }
        assert_eq!(breaker.snapshot("x", clock.now()).calls_in_window, 0);
        for _ in 0..4 {
            call(&mut breaker, &clock, Outcome::Failure);
        }
        clock.advance(Duration::from_secs(5));
        assert_eq!(
            call(&mut breaker, &clock, Outcome::Neutral),
            Admission::Probe
        );
        assert_eq!(breaker.state(clock.now()), CircuitState::HalfOpen);
        assert_eq!(
            breaker.admit(clock.now()),
            Admission::Probe,
            "the slot is free"
        );
    }
}
