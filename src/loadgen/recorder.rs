//! Recording outcomes while a phase runs: latency histograms (HdrHistogram, microsecond
//! resolution, three significant digits) over the whole phase and per second, and errors by
//! kind.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies above this are recorded as this (a request times out well before).
const MAX_LATENCY_MICROS: u64 = 120_000_000;

/// A fresh latency histogram, in microseconds.
pub fn latency_histogram() -> Histogram<u64> {
    // 1 µs to 120 s at three significant digits: the bounds are constants that are valid.
    Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, 3)
        .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid"))
}

/// Adds one latency to `histogram`, clamped to its range.
pub fn record_latency(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(micros.clamp(1, MAX_LATENCY_MICROS));
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let ms = |micros: u64| micros as f64 / 1_000.0;
        let at = |q: f64| ms(histogram.value_at_quantile(q));
        Self {
            count: histogram.len(),
            mean_ms: histogram.mean() / 1_000.0,
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: ms(histogram.max()),
        }
    }
}

/// One second of a phase.
#[derive(Debug, Clone)]
pub struct Second {
    pub ok: u64,
    pub errors: u64,
    pub latency: Histogram<u64>,
}

/// Everything recorded in one phase, from its measuring start.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    overall: Histogram<u64>,
    seconds: Vec<Second>,
    errors: BTreeMap<String, u64>,
    deferred: u64,
}

impl Recorder {
    /// Records outcomes completing from `start` on.
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            overall: latency_histogram(),
            seconds: Vec::new(),
            errors: BTreeMap::new(),
            deferred: 0,
        }
    }

    fn second(&mut self, at: Instant) -> &mut Second {
        let index = at.saturating_duration_since(self.start).as_secs() as usize;
        while self.seconds.len() <= index {
            self.seconds.push(Second {
                ok: 0,
                errors: 0,
                latency: latency_histogram(),
            });
        }
        &mut self.seconds[index]
    }

    /// A request answered as expected at `at`, `latency` after it was due.
    pub fn ok(&mut self, at: Instant, latency: Duration) {
        record_latency(&mut self.overall, latency);
        let second = self.second(at);
        second.ok += 1;
        record_latency(&mut second.latency, latency);
    }

    /// A request answered at `at` with its reply deferred (see
    /// [`Answer::Deferred`](super::client::Answer::Deferred)): a served turn, and counted apart.
    pub fn deferred(&mut self, at: Instant, latency: Duration) {
        self.deferred += 1;
        self.ok(at, latency);
    }

    /// A request that failed at `at`; `kind` names how (`status_503`, `transport`, …).
    pub fn error(&mut self, at: Instant, kind: &str) {
        *self.errors.entry(kind.to_owned()).or_default() += 1;
        self.second(at).errors += 1;
    }

    pub fn ok_count(&self) -> u64 {
        self.overall.len()
    }

    /// Of [`Self::ok_count`], the answers whose reply was deferred.
    pub fn deferred_count(&self) -> u64 {
        self.deferred
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn errors(&self) -> &BTreeMap<String, u64> {
        &self.errors
    }

    pub fn overall(&self) -> &Histogram<u64> {
        &self.overall
    }

    pub fn seconds(&self) -> &[Second] {
        &self.seconds
    }

    /// The last second that is over by `now`, for progress lines.
    pub fn last_full_second(&self, now: Instant) -> Option<(usize, &Second)> {
        let current = now.saturating_duration_since(self.start).as_secs() as usize;
        let index = current.checked_sub(1)?;
        self.seconds.get(index).map(|s| (index, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_land_in_their_second_and_in_the_whole() {
        let start = Instant::now();
        let mut recorder = Recorder::new(start);
        for ms in 1..=100 {
            recorder.ok(
                start + Duration::from_millis(10 * ms),
                Duration::from_millis(ms),
            );
        }
        recorder.error(start + Duration::from_millis(1_500), "status_503");
        recorder.error(start + Duration::from_millis(1_600), "status_503");
        recorder.error(start, "transport");

        assert_eq!(recorder.ok_count(), 100);
        assert_eq!(recorder.error_count(), 3);
        assert_eq!(recorder.errors()["status_503"], 2);
        let seconds = recorder.seconds();
        assert_eq!(seconds.len(), 2);
        assert_eq!(seconds[0].ok, 99, "10 ms .. 990 ms");
        assert_eq!(seconds[1].ok, 1);
        assert_eq!(seconds[0].errors, 1);
        assert_eq!(seconds[1].errors, 2);

        let summary = LatencySummary::of(recorder.overall());
        assert_eq!(summary.count, 100);
        assert!((summary.p50_ms - 50.0).abs() < 0.1, "{summary:?}");
        assert!((summary.p99_ms - 99.0).abs() < 0.1, "{summary:?}");
        assert!((summary.max_ms - 100.0).abs() < 0.1, "{summary:?}");
        assert!((summary.mean_ms - 50.5).abs() < 0.1, "{summary:?}");
    }

    #[test]
    fn a_deferred_answer_is_a_served_turn_counted_apart() {
        let start = Instant::now();
        let mut recorder = Recorder::new(start);
        recorder.ok(start, Duration::from_millis(800));
        recorder.deferred(start, Duration::from_millis(5_000));
        assert_eq!(recorder.ok_count(), 2);
        assert_eq!(recorder.deferred_count(), 1);
        assert_eq!(recorder.error_count(), 0);
        assert_eq!(recorder.seconds()[0].ok, 2);
        let summary = LatencySummary::of(recorder.overall());
        assert!(
            (summary.max_ms - 5_000.0).abs() < 5.0,
            "its latency is the webhook's: {summary:?}"
        );
    }

    #[test]
    fn an_empty_histogram_summarises_to_zeroes_and_huge_latencies_are_clamped() {
        assert_eq!(
            LatencySummary::of(&latency_histogram()),
            LatencySummary::default()
        );
        let mut histogram = latency_histogram();
        record_latency(&mut histogram, Duration::from_secs(3_600));
        record_latency(&mut histogram, Duration::ZERO);
        assert_eq!(histogram.len(), 2);
        assert!(LatencySummary::of(&histogram).max_ms <= 120_000.0 * 1.001);
    }

    #[test]
    fn the_last_full_second_is_the_one_before_now() {
        let start = Instant::now();
        let mut recorder = Recorder::new(start);
        recorder.ok(start + Duration::from_millis(500), Duration::from_millis(2));
        assert!(
            recorder
                .last_full_second(start + Duration::from_millis(900))
                .is_none()
        );
        let (index, second) = recorder
            .last_full_second(start + Duration::from_millis(1_200))
            .unwrap();
        assert_eq!((index, second.ok), (0, 1));
    }
}
