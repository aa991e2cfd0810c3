//! `--compare FILE`: a run's figures against an earlier run's report, so that a change which
//! makes Nudge slower is caught by the harness that measures it.
//!
//! Only figures that compare across machines are judged: the throughput as a ratio of the
//! bare baseline measured in the same run, and the server's memory per user actor. Each run
//! spreads (the machine's speed drifts from one phase to the next), so a figure counts as
//! regressed only when it moved past the tolerance *and* out of the reference's spread: with
//! `--rounds`, the new run's best round below the reference's worst. The half-peak p99 is set
//! beside the reference's but not judged: a machine's slow seconds move it more than Nudge
//! does.
//!
//! Run with: `scripts/loadtest sqlite --rounds 3 --compare benches/reference/sqlite.json`

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::report::Summary;

/// The largest reference file read (a report is tens of KiB).
const MAX_REFERENCE_BYTES: u64 = 16 * 1024 * 1024;

/// What the run was asked to do, to tell whether two runs are like for like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub users: u64,
    pub concurrency: usize,
    pub bodies: Vec<String>,
    /// Whether the LLM agent answered, its model calls served by the stand-in.
    pub model: bool,
}

/// A figure as a run measured it: its median, and the lowest and highest of its rounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub low: f64,
    pub high: f64,
}

impl Spread {
    /// A figure measured once.
    pub fn point(value: f64) -> Self {
        Self {
            median: value,
            low: value,
            high: value,
        }
    }

    /// A median and the rounds it was taken from (the median alone when there are none).
    fn of_rounds(median: f64, rounds: &[f64]) -> Self {
        let low = rounds.iter().copied().fold(median, f64::min);
        let high = rounds.iter().copied().fold(median, f64::max);
        Self { median, low, high }
    }
}

/// How a figure moved against the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Improved,
    /// Within the tolerance, or within the two runs' spread.
    Within,
    Regressed,
    /// Set beside the reference's, not judged.
    Reported,
}

/// Which way is better for a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
}

/// One figure of this run beside the reference's.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// `ratio_to_baseline`, `bytes_per_added_actor` or `half_peak_p99_ms`.
    pub name: &'static str,
    pub now: Spread,
    pub reference: Spread,
    pub verdict: Verdict,
}

/// This run against an earlier one, in the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The reference report's path, as given.
    pub reference: String,
    /// When the reference run started, as its report says.
    pub reference_started_at: Option<String>,
    /// How far a figure may move before it counts (0.10: 10 %).
    pub tolerance: f64,
    pub figures: Vec<Figure>,
    /// How the two runs were not alike (users, connections, texts, model), if they were not.
    pub unlike: Vec<String>,
    /// Whether any judged figure regressed.
    pub regressed: bool,
}

/// The figures of an earlier run's report that a run is compared with.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    path: String,
    started_at: Option<String>,
    shape: Option<Shape>,
    ratio: Option<Spread>,
    bytes_per_actor: Option<f64>,
    half_peak_p99_ms: Option<f64>,
}

impl Reference {
    /// Reads the report `nudge loadgen --json` wrote, or says what is wrong with the file.
    pub fn read(path: &Path) -> Result<Self, String> {
        let shown = path.display().to_string();
        let size = std::fs::metadata(path)
            .map_err(|e| format!("--compare {shown}: cannot read it ({e})"))?
            .len();
        if size > MAX_REFERENCE_BYTES {
            return Err(format!(
                "--compare {shown}: {size} bytes is too large for a loadgen report"
            ));
        }
        let text =
            std::fs::read(path).map_err(|e| format!("--compare {shown}: cannot read it ({e})"))?;
        let json: Value = serde_json::from_slice(&text)
            .map_err(|e| format!("--compare {shown}: not JSON ({e})"))?;
        Self::from_report(shown, &json)
    }

    /// The figures of a parsed report.
    fn from_report(path: String, json: &Value) -> Result<Self, String> {
        let Some(summary) = json.get("summary").filter(|s| s.is_object()) else {
            return Err(format!(
                "--compare {path}: not a `nudge loadgen` report (it has no summary)"
            ));
        };
        let number = |value: &Value| value.as_f64().filter(|v| v.is_finite());
        let rounds: Vec<f64> = summary["rounds"]
            .as_array()
            .map(|rounds| rounds.iter().filter_map(|r| number(&r["ratio"])).collect())
            .unwrap_or_default();
        let ratio = number(&summary["ratio_to_baseline"])
            .filter(|r| *r > 0.0)
            .map(|median| Spread::of_rounds(median, &rounds));
        let bytes_per_actor = number(&summary["memory"]["bytes_per_added_actor"]);
        let half_peak_p99_ms = number(&summary["half_peak"]["p99_ms"]);
        if ratio.is_none() && bytes_per_actor.is_none() && half_peak_p99_ms.is_none() {
            return Err(format!(
                "--compare {path}: the report has no figure to compare (no ratio to the \
                 baseline, memory per actor or half-peak latency)"
            ));
        }
        let bodies: Option<Vec<String>> = json["bodies"].as_array().map(|bodies| {
            bodies
                .iter()
                .filter_map(|b| b.as_str().map(str::to_owned))
                .collect()
        });
        let shape = match (json["users"].as_u64(), json["concurrency"].as_u64(), bodies) {
            (Some(users), Some(concurrency), Some(bodies)) => Some(Shape {
                users,
                concurrency: usize::try_from(concurrency).unwrap_or(usize::MAX),
                bodies,
                model: !json["upstream"].is_null(),
            }),
            _ => None,
        };
        Ok(Self {
            path,
            started_at: json["started_at"].as_str().map(str::to_owned),
            shape,
            ratio,
            bytes_per_actor,
            half_peak_p99_ms,
        })
    }

    /// This run's summary against the reference; `tolerance` as a fraction (0.10: 10 %).
    pub fn compare(&self, summary: &Summary, shape: &Shape, tolerance: f64) -> Comparison {
        let mut figures = Vec::new();
        let rounds: Vec<f64> = summary.rounds.iter().map(|r| r.ratio).collect();
        if let (Some(reference), Some(median)) = (self.ratio, summary.ratio_to_baseline) {
            let now = Spread::of_rounds(median, &rounds);
            figures.push(Figure {
                name: "ratio_to_baseline",
                now,
                reference,
                verdict: judge(now, reference, tolerance, Better::Higher),
            });
        }
        if let (Some(reference), Some(now)) =
            (self.bytes_per_actor, summary.memory.bytes_per_added_actor)
        {
            let (now, reference) = (Spread::point(now), Spread::point(reference));
            figures.push(Figure {
                name: "bytes_per_added_actor",
                now,
                reference,
                verdict: judge(now, reference, tolerance, Better::Lower),
            });
        }
        if let (Some(reference), Some(half)) = (self.half_peak_p99_ms, summary.half_peak) {
            figures.push(Figure {
                name: "half_peak_p99_ms",
                now: Spread::point(half.p99_ms),
                reference: Spread::point(reference),
                verdict: Verdict::Reported,
            });
        }
        let unlike = self.shape.as_ref().map_or_else(
            || vec!["the reference does not say how it ran".to_owned()],
            |r| unlike(r, shape),
        );
        Comparison {
            reference: self.path.clone(),
            reference_started_at: self.started_at.clone(),
            tolerance,
            regressed: figures.iter().any(|f| f.verdict == Verdict::Regressed),
            figures,
            unlike,
        }
    }
}

/// A figure's verdict: past the tolerance and out of the reference's spread, or within.
fn judge(now: Spread, reference: Spread, tolerance: f64, better: Better) -> Verdict {
    let (worse, better_by) = match better {
        Better::Higher => (
            now.median < reference.median * (1.0 - tolerance) && now.high < reference.low,
            now.median > reference.median * (1.0 + tolerance) && now.low > reference.high,
        ),
        Better::Lower => (
            now.median > reference.median * (1.0 + tolerance) && now.low > reference.high,
            now.median < reference.median * (1.0 - tolerance) && now.high < reference.low,
        ),
    };
    if worse {
        Verdict::Regressed
    } else if better_by {
        Verdict::Improved
    } else {
        Verdict::Within
    }
}

/// How this run's shape differs from the reference's, in words.
fn unlike(reference: &Shape, now: &Shape) -> Vec<String> {
    let mut out = Vec::new();
    if reference.users != now.users {
        out.push(format!(
            "the reference ran {} users, this run {}",
            reference.users, now.users
        ));
    }
    if reference.concurrency != now.concurrency {
        out.push(format!(
            "the reference ran {} connections, this run {}",
            reference.concurrency, now.concurrency
        ));
    }
    if reference.bodies != now.bodies {
        out.push("the reference sent other message texts".to_owned());
    }
    if reference.model != now.model {
        let who = |model: bool| {
            if model {
                "the LLM agent"
            } else {
                "the offline rules"
            }
        };
        out.push(format!(
            "the reference was answered by {}, this run by {}",
            who(reference.model),
            who(now.model)
        ));
    }
    out
}

/// A few lines for people, after the run's own.
pub fn text(comparison: &Comparison) -> String {
    let mut out = String::new();
    let when = comparison
        .reference_started_at
        .as_deref()
        .map(|at| format!(" (run {at})"))
        .unwrap_or_default();
    let _ = writeln!(out, "Against {}{when}:", comparison.reference);
    let percent = comparison.tolerance * 100.0;
    for figure in &comparison.figures {
        let (what, now, reference) = match figure.name {
            "ratio_to_baseline" => (
                "throughput, of the bare baseline",
                ratio_text(figure.now),
                ratio_text(figure.reference),
            ),
            "bytes_per_added_actor" => (
                "memory per added user actor",
                format!("{:.1} KiB", figure.now.median / 1024.0),
                format!("{:.1} KiB", figure.reference.median / 1024.0),
            ),
            _ => (
                "p99 at half the peak",
                format!("{:.2} ms", figure.now.median),
                format!("{:.2} ms", figure.reference.median),
            ),
        };
        let verdict = match figure.verdict {
            Verdict::Improved => format!("improved, {}", times(figure)),
            Verdict::Regressed => format!("REGRESSED, {}", times(figure)),
            Verdict::Within => format!("within {percent:.0} % or the runs' spread"),
            Verdict::Reported => "reported, not judged".to_owned(),
        };
        let _ = writeln!(out, "  {what}: {now}, reference {reference}: {verdict}");
    }
    for note in &comparison.unlike {
        let _ = writeln!(out, "  note: {note}");
    }
    if comparison.figures.is_empty() {
        let _ = writeln!(out, "  no figure of this run matches one of the reference");
    }
    out
}

/// A ratio's median and rounds, in percent.
fn ratio_text(spread: Spread) -> String {
    if spread.low < spread.high {
        format!(
            "{:.1} % (rounds {:.1}–{:.1} %)",
            spread.median * 100.0,
            spread.low * 100.0,
            spread.high * 100.0
        )
    } else {
        format!("{:.1} %", spread.median * 100.0)
    }
}

/// How many times the reference's median this run's is.
fn times(figure: &Figure) -> String {
    if figure.reference.median > 0.0 {
        format!(
            "{:.2}× the reference",
            figure.now.median / figure.reference.median
        )
    } else {
        "the reference was zero".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::report::{HalfPeak, Memory, RoundRatio};

    fn shape() -> Shape {
        Shape {
            users: 10_000,
            concurrency: 256,
            bodies: vec!["hi".into(), "thanks".into()],
            model: false,
        }
    }

    fn report(rounds: &[f64], bytes_per_actor: f64, p99_ms: f64) -> Value {
        let mut sorted = rounds.to_vec();
        sorted.sort_by(f64::total_cmp);
        serde_json::json!({
            "started_at": "2026-11-28T08:35:00Z",
            "users": 10_000,
            "concurrency": 256,
            "bodies": ["hi", "thanks"],
            "upstream": null,
            "summary": {
                "ratio_to_baseline": sorted[sorted.len() / 2],
                "rounds": rounds.iter().map(|r| serde_json::json!({
                    "baseline_rps": 50_000.0, "nudge_peak_rps": 50_000.0 * r, "ratio": r
                })).collect::<Vec<_>>(),
                "memory": { "bytes_per_added_actor": bytes_per_actor },
                "half_peak": { "p99_ms": p99_ms },
            }
        })
    }

    fn summary(rounds: &[f64], bytes_per_actor: f64, p99_ms: f64) -> Summary {
        let mut sorted = rounds.to_vec();
        sorted.sort_by(f64::total_cmp);
        Summary {
            ratio_to_baseline: Some(sorted[sorted.len() / 2]),
            rounds: rounds
                .iter()
                .map(|r| RoundRatio {
                    baseline_rps: 50_000.0,
                    nudge_peak_rps: 50_000.0 * r,
                    ratio: *r,
                })
                .collect(),
            memory: Memory {
                bytes_per_added_actor: Some(bytes_per_actor),
                ..Memory::default()
            },
            half_peak: Some(HalfPeak {
                offered_rps: 5_000.0,
                throughput_rps: 5_000.0,
                p50_ms: 3.0,
                p99_ms,
                commit_p99_within_ms: None,
                write_p99_within_ms: None,
                server_p99_within_ms: None,
            }),
            ..Summary::default()
        }
    }

    fn verdict(comparison: &Comparison, name: &str) -> Verdict {
        comparison
            .figures
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.verdict)
            .unwrap()
    }

    fn reference(rounds: &[f64], bytes_per_actor: f64) -> Reference {
        Reference::from_report("ref.json".into(), &report(rounds, bytes_per_actor, 10.0)).unwrap()
    }

    #[test]
    fn a_ratio_below_the_tolerance_and_every_reference_round_is_a_regression() {
        let reference = reference(&[0.20, 0.21, 0.22], 14_000.0);
        let worse = reference.compare(&summary(&[0.16, 0.17, 0.18], 14_000.0, 12.0), &shape(), 0.1);
        assert_eq!(verdict(&worse, "ratio_to_baseline"), Verdict::Regressed);
        assert!(worse.regressed);
        assert!(
            text(&worse).contains("REGRESSED, 0.81× the reference"),
            "{}",
            text(&worse)
        );

        // One round as good as the reference's worst: the runs overlap, not judged worse.
        let overlapping =
            reference.compare(&summary(&[0.16, 0.17, 0.20], 14_000.0, 12.0), &shape(), 0.1);
        assert_eq!(verdict(&overlapping, "ratio_to_baseline"), Verdict::Within);
        // Below every round, but by less than the tolerance.
        let close = reference.compare(
            &summary(&[0.19, 0.195, 0.198], 14_000.0, 12.0),
            &shape(),
            0.1,
        );
        assert_eq!(verdict(&close, "ratio_to_baseline"), Verdict::Within);
        assert!(!close.regressed);

        let better =
            reference.compare(&summary(&[0.25, 0.26, 0.27], 14_000.0, 12.0), &shape(), 0.1);
        assert_eq!(verdict(&better, "ratio_to_baseline"), Verdict::Improved);
        assert!(!better.regressed);
    }

    #[test]
    fn more_memory_per_actor_past_the_tolerance_is_a_regression_and_less_an_improvement() {
        let reference = reference(&[0.20], 14_000.0);
        let fat = reference.compare(&summary(&[0.20], 16_000.0, 12.0), &shape(), 0.1);
        assert_eq!(verdict(&fat, "bytes_per_added_actor"), Verdict::Regressed);
        assert!(fat.regressed);
        let near = reference.compare(&summary(&[0.20], 15_000.0, 12.0), &shape(), 0.1);
        assert_eq!(verdict(&near, "bytes_per_added_actor"), Verdict::Within);
        let lean = reference.compare(&summary(&[0.20], 12_000.0, 12.0), &shape(), 0.1);
        assert_eq!(verdict(&lean, "bytes_per_added_actor"), Verdict::Improved);
    }

    #[test]
    fn the_half_peak_tail_is_set_beside_the_reference_but_never_judged() {
        let reference = reference(&[0.20], 14_000.0);
        let slow = reference.compare(&summary(&[0.20], 14_000.0, 500.0), &shape(), 0.1);
        assert_eq!(verdict(&slow, "half_peak_p99_ms"), Verdict::Reported);
        assert!(!slow.regressed);
    }

    #[test]
    fn runs_that_differ_in_how_they_ran_say_so() {
        let reference = reference(&[0.20], 14_000.0);
        assert!(
            reference
                .compare(&summary(&[0.2], 14_000.0, 9.0), &shape(), 0.1)
                .unlike
                .is_empty()
        );
        let other = Shape {
            concurrency: 512,
            model: true,
            ..shape()
        };
        let comparison = reference.compare(&summary(&[0.2], 14_000.0, 9.0), &other, 0.1);
        assert_eq!(comparison.unlike.len(), 2, "{:?}", comparison.unlike);
        let shown = text(&comparison);
        assert!(shown.contains("256 connections, this run 512"), "{shown}");
        assert!(
            shown.contains("by the offline rules, this run by the LLM agent"),
            "{shown}"
        );
    }

    #[test]
    fn the_committed_references_are_reports_with_every_judged_figure() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/reference");
        for backend in ["sqlite", "postgres"] {
            let reference = Reference::read(&dir.join(format!("{backend}.json"))).unwrap();
            let ratio = reference.ratio.unwrap();
            assert!(ratio.low > 0.0 && ratio.low <= ratio.median && ratio.median <= ratio.high);
            assert!(
                reference.bytes_per_actor.is_some_and(|b| b > 0.0),
                "{backend}"
            );
            let shape = reference.shape.unwrap();
            assert_eq!((shape.users, shape.model), (10_000, false), "{backend}");
        }
    }

    #[test]
    fn a_file_that_is_not_a_report_is_named_with_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.json");
        let error = Reference::read(&missing).unwrap_err();
        assert!(
            error.contains("missing.json") && error.contains("cannot read"),
            "{error}"
        );

        let garbage = dir.path().join("garbage.json");
        std::fs::write(&garbage, "{ not json").unwrap();
        assert!(Reference::read(&garbage).unwrap_err().contains("not JSON"));

        let other = dir.path().join("other.json");
        std::fs::write(&other, r#"{"name": "something else"}"#).unwrap();
        assert!(Reference::read(&other).unwrap_err().contains("no summary"));

        let empty = dir.path().join("empty.json");
        std::fs::write(&empty, r#"{"summary": {"rounds": []}}"#).unwrap();
        assert!(Reference::read(&empty).unwrap_err().contains("no figure"));

        let good = dir.path().join("good.json");
        std::fs::write(&good, report(&[0.2, 0.18, 0.22], 14_000.0, 9.0).to_string()).unwrap();
        let read = Reference::read(&good).unwrap();
        assert_eq!(
            read.ratio,
            Some(Spread {
                median: 0.2,
                low: 0.18,
                high: 0.22
            })
        );
        assert_eq!(read.shape, Some(shape()));
    }
}
