//! The report of a run: what was measured, as JSON for machines and as a few lines for people.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::recorder::LatencySummary;

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The version of `nudge` that ran the load.
    pub version: &'static str,
    pub started_at: DateTime<Utc>,
    pub machine: Machine,
    /// The Nudge server's base URL.
    pub target: String,
    /// The server process whose CPU and memory are reported, when found.
    pub server_pid: Option<u32>,
    /// Simulated users addressed (each has its own phone and dedicated number).
    pub users: u64,
    /// Connections, and so the most requests in flight.
    pub concurrency: usize,
    pub warmup_secs: f64,
    pub duration_secs: f64,
    /// The message texts sent, in turn.
    pub bodies: Vec<String>,
    pub phases: Vec<PhaseReport>,
    pub summary: Summary,
    /// The model and Twilio stand-in, when the run had one (`--model-latency-ms`).
    pub upstream: Option<super::upstream::UpstreamReport>,
    /// This run against an earlier run's report (`--compare`).
    pub comparison: Option<super::compare::Comparison>,
}

/// The machine the run used (server and load generator share it).
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub kernel: String,
}

/// One phase: a target (the bare baseline or Nudge) under one kind of load.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    pub name: String,
    /// `baseline` or `nudge`.
    pub target: String,
    /// `closed` (each connection sends as soon as its answer arrives) or `open` (requests are
    /// due at a fixed rate, and latency counts from when each was due).
    pub mode: String,
    /// Requests per second asked for, in open mode.
    pub offered_rps: Option<f64>,
    pub duration_secs: f64,
    /// Requests answered as expected within the measured time.
    pub ok: u64,
    /// Of `ok`, answers with empty TwiML: the turn outlasted the server's reply window, and
    /// its reply went out through Twilio's REST API instead.
    pub deferred: u64,
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    /// Right answers per second.
    pub throughput_rps: f64,
    pub latency: LatencySummary,
    /// The server process over the measured time (absent for the in-process baselines).
    pub server: Option<ServerUsage>,
    /// A baseline's server, which runs in the load generator's process on threads of its
    /// own: their CPU over the measured time, in percent of one core.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_server_cpu_percent: Option<f64>,
    /// The load generator's own CPU over the measured time, in percent of one core (without
    /// a baseline's server, when its threads could be told apart).
    pub client_cpu_percent: f64,
    /// The whole machine's CPU over the measured time, in percent of one core (200 is two
    /// cores busy): what the server and the load generator left to anything else.
    pub machine_cpu_percent: f64,
    /// The group-commit writer over the measured time (a phase of Nudge's whose server
    /// answered `/metrics` at its start and end).
    pub writer: Option<WriterUse>,
    /// The server's own time for the phase's turns (from the same scrapes as `writer`): what
    /// of their latency the server spent, and what the way to it and back added.
    pub server_turns: Option<ServerTurns>,
    pub timeline: Vec<TimelinePoint>,
}

/// Webhook turns the server answered during a phase, timed by the server from reaching its
/// router to its response (`nudge_http_request_duration_seconds`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ServerTurns {
    pub turns: u64,
    pub mean_ms: f64,
    /// The bound of the histogram's bucket that holds 99 % of them (`None` when only the
    /// open bucket does).
    pub p99_within_ms: Option<f64>,
}

/// What the server process used during a phase.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ServerUsage {
    /// Percent of one core (200 is two cores busy).
    pub cpu_percent: f64,
    pub rss_start_bytes: u64,
    pub rss_end_bytes: u64,
    pub rss_peak_bytes: u64,
}

/// One second of a phase.
#[derive(Debug, Clone, Serialize)]
pub struct TimelinePoint {
    /// Seconds since the phase's measured time began.
    pub second: u64,
    pub ok: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub server_cpu_percent: Option<f64>,
    pub server_rss_bytes: Option<u64>,
    pub actors_active: Option<u64>,
}

/// The figures the targets are about.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// The bare baseline's throughput, closed loop (the median of the rounds').
    pub baseline_rps: Option<f64>,
    /// Nudge's throughput, closed loop at the run's concurrency (the median of the rounds').
    pub nudge_peak_rps: Option<f64>,
    /// Nudge's peak over the bare baseline measured just before it: the median of the
    /// rounds' ratios.
    pub ratio_to_baseline: Option<f64>,
    /// Each round's baseline, peak and ratio (`--rounds`), in the order they ran.
    pub rounds: Vec<RoundRatio>,
    /// Nudge in open loop at half its measured peak.
    pub half_peak: Option<HalfPeak>,
    /// The bare baseline in open loop at half its own peak, measured right after Nudge's:
    /// how slow this machine's tail is at a like share of what it can serve.
    pub baseline_half_peak: Option<HalfPeak>,
    /// Latency of each user's first turn in this run (the actor is activated and its state
    /// loaded, unless it was already active).
    pub first_turns: LatencySummary,
    pub memory: Memory,
    /// The group-commit writer over the run, from the server's `/metrics`.
    pub writer: Option<WriterUse>,
    /// Web users holding a WebSocket during Nudge's phases.
    pub sockets: Option<super::sockets::SocketSummary>,
    /// The write baseline (`--write-baseline`), when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writes: Option<WritesSummary>,
    /// The database the server stores in, as its `/metrics` names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<&'static str>,
    /// The targets for full SMS turns this run measured, and how each stands (none for
    /// turns a model answers, which the targets are not about).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetCheck>,
}

/// A target of `docs/performance.md` for full SMS turns, and how this run stands against it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TargetCheck {
    pub figure: Figure,
    pub bound: f64,
    /// What this run measured.
    pub value: f64,
    pub met: bool,
    /// When not met, how many times short of the bound (or over it) the value is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub off_by: Option<f64>,
}

/// What a target bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Figure {
    /// Nudge's peak over the bare baseline: at least the bound.
    PeakRatio,
    /// The p99 at half the peak, in milliseconds: under the bound.
    HalfPeakP99Ms,
}

impl TargetCheck {
    /// The peak's ratio to the bare baseline against its target on `backend`: 20 % on
    /// SQLite, 25 % on PostgreSQL.
    pub fn peak_ratio(backend: &str, ratio: f64) -> Option<Self> {
        let bound = match backend {
            "sqlite" => 0.20,
            "postgres" => 0.25,
            _ => return None,
        };
        let met = ratio >= bound;
        Some(Self {
            figure: Figure::PeakRatio,
            bound,
            value: ratio,
            met,
            off_by: (!met && ratio > 0.0).then(|| bound / ratio),
        })
    }

    /// The p99 at half the peak against its target: under 20 ms.
    pub fn half_peak_p99(p99_ms: f64) -> Self {
        let bound = 20.0;
        let met = p99_ms < bound;
        Self {
            figure: Figure::HalfPeakP99Ms,
            bound,
            value: p99_ms,
            met,
            off_by: (!met).then(|| p99_ms / bound),
        }
    }

    /// `what it bounds: the value, met` (or `not met, N× short`, or over) for the text report.
    fn line(&self) -> String {
        let (what, value) = match self.figure {
            Figure::PeakRatio => (
                format!(
                    "peak at least {:.0} % of the bare baseline",
                    self.bound * 100.0
                ),
                format!("{:.1} %", self.value * 100.0),
            ),
            Figure::HalfPeakP99Ms => (
                format!("p99 under {:.0} ms at half the peak", self.bound),
                format!("{:.2} ms", self.value),
            ),
        };
        let verdict = match (self.met, self.off_by, self.figure) {
            (true, _, _) => "met".to_owned(),
            (false, Some(off), Figure::PeakRatio) => format!("not met, {off:.2}× short"),
            (false, Some(off), _) => format!("not met, {off:.2}× over"),
            (false, None, _) => "not met".to_owned(),
        };
        format!("{what}: {value}, {verdict}")
    }
}

/// The write baseline: a bare handler storing two rows per request through a single
/// group-committing writer ([`super::writes`]), closed loop, once a round.
#[derive(Debug, Clone, Serialize)]
pub struct WritesSummary {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// Its throughput (the median of the rounds').
    pub writes_rps: f64,
    /// It over the bare baseline of its round: the median of the rounds' ratios.
    pub ratio_to_baseline: Option<f64>,
    /// Nudge's peak over it, in the same round: the median of the rounds' ratios.
    pub nudge_ratio: Option<f64>,
    /// The same rows committed one transaction per request, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_request: Option<PerRequestWrites>,
    /// Each round's figures, in the order they ran.
    pub rounds: Vec<WritesRound>,
}

/// The write baseline's rows committed one transaction per request
/// ([`super::writes::Commits::PerRequest`]), closed loop, once a round.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PerRequestWrites {
    /// Its throughput (the median of the rounds').
    pub writes_rps: f64,
    /// It over the bare baseline of its round: the median of the rounds' ratios.
    pub ratio_to_baseline: Option<f64>,
    /// Nudge's peak over it, in the same round: the median of the rounds' ratios.
    pub nudge_ratio: Option<f64>,
}

/// One round's bare baseline, Nudge's peak and write baselines, closed loop.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct WritesRound {
    pub baseline_rps: f64,
    pub writes_rps: f64,
    pub nudge_peak_rps: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_request_rps: Option<f64>,
}

/// One round: the bare baseline, then Nudge's closed-loop peak right after it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RoundRatio {
    pub baseline_rps: f64,
    pub nudge_peak_rps: f64,
    /// `nudge_peak_rps / baseline_rps`.
    pub ratio: f64,
}

/// Latency at half the peak throughput.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct HalfPeak {
    pub offered_rps: f64,
    pub throughput_rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The bound that holds 99 % of the phase's commits (Nudge's phase only).
    pub commit_p99_within_ms: Option<f64>,
    /// The bound that holds 99 % of the phase's writes from hand-off to commit (Nudge's phase
    /// only): whether the turns' tail is their wait for the writer.
    pub write_p99_within_ms: Option<f64>,
    /// The bound that holds 99 % of the phase's turns by the server's own clock (Nudge's
    /// phase only): whether the turns' tail is the server's or the way to it and back.
    pub server_p99_within_ms: Option<f64>,
}

/// The server's memory against its active user actors.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Memory {
    pub rss_before_bytes: Option<u64>,
    pub rss_after_bytes: Option<u64>,
    pub actors_before: Option<u64>,
    pub actors_after: Option<u64>,
    /// Growth of RSS over growth of active actors: an upper bound on one actor's cost, as it
    /// also holds what the allocator kept from the load.
    pub bytes_per_added_actor: Option<f64>,
}

/// What the group-commit writer did during the run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct WriterUse {
    pub batches: u64,
    pub writes: u64,
    pub writes_per_batch: f64,
    pub largest_batch: u64,
    /// Time spent committing over the run's wall time between the two scrapes (with one
    /// committer, as on SQLite, 1.0 means the writer never rested).
    pub busy_fraction: f64,
    /// How long a write waited for its batch to start, on average.
    pub queue_wait_ms: f64,
    /// How long a batch took to commit, on average.
    pub batch_ms: f64,
    /// The bound of the commit-time histogram's bucket that holds 99 % of the run's commits
    /// (`None` without commits, or from a server without the histogram).
    pub batch_p99_within_ms: Option<f64>,
    /// The same for the writes' times from hand-off to commit: weighted by writes, where a
    /// slow commit counts once for each turn that waited on it.
    pub write_p99_within_ms: Option<f64>,
    /// SQLite's batch thread, the one every write waits for, from the kernel's account of it
    /// (`/proc/…/schedstat`) over the same time: the share of the time it ran on a CPU, and
    /// the share it was ready to run but waited for one (`None` on PostgreSQL, or without
    /// `/proc`).
    pub thread_on_cpu: Option<f64>,
    pub thread_waiting_for_cpu: Option<f64>,
    /// SQLite's WAL over the same time: how many times it restarted from its beginning, how
    /// many checkpoints the batch thread ran itself between commits to get it there, and how
    /// long those held the next batch back in all (zero on PostgreSQL).
    pub log_restarts: u64,
    pub catch_up_checkpoints: u64,
    pub catch_up_ms: f64,
}

impl Memory {
    /// Fills [`Memory::bytes_per_added_actor`] from the other fields.
    pub fn with_per_actor(mut self) -> Self {
        if let (Some(before), Some(after), Some(a0), Some(a1)) = (
            self.rss_before_bytes,
            self.rss_after_bytes,
            self.actors_before,
            self.actors_after,
        ) && a1 > a0
        {
            self.bytes_per_added_actor = Some((after as f64 - before as f64) / (a1 - a0) as f64);
        }
        self
    }
}

/// A few lines for people: one per phase, then the figures the targets are about.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<18} {:>6} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>8} {:>9}",
        "phase",
        "mode",
        "ok/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "errors",
        "cpu %",
        "rss MiB",
        "client %",
        "machine %"
    );
    for phase in &report.phases {
        let (cpu, rss) = phase.server.map_or_else(
            || {
                let local = phase.local_server_cpu_percent;
                (
                    local.map_or("-".into(), |cpu| format!("{cpu:.0}")),
                    "-".into(),
                )
            },
            |s| {
                (
                    format!("{:.0}", s.cpu_percent),
                    format!("{:.0}", s.rss_end_bytes as f64 / MIB),
                )
            },
        );
        let _ = writeln!(
            out,
            "{:<18} {:>6} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.1} {:>8} {:>7} {:>9} {:>8.0} {:>9.0}",
            phase.name,
            phase.mode,
            phase.throughput_rps,
            phase.latency.p50_ms,
            phase.latency.p95_ms,
            phase.latency.p99_ms,
            phase.latency.max_ms,
            phase.errors,
            cpu,
            rss,
            phase.client_cpu_percent,
            phase.machine_cpu_percent
        );
    }
    let deferred: Vec<String> = report
        .phases
        .iter()
        .filter(|p| p.deferred > 0)
        .map(|p| format!("{} {}", p.name, p.deferred))
        .collect();
    if !deferred.is_empty() {
        let _ = writeln!(
            out,
            "Answered empty after the server's reply window, the reply sent later through the \
             REST API (counted as served): {}",
            deferred.join(", ")
        );
    }
    let s = &report.summary;
    match (s.ratio_to_baseline, s.rounds.len()) {
        (Some(ratio), 0 | 1) => {
            let _ = writeln!(
                out,
                "Nudge peak: {:.0} turns/s = {:.1} % of the bare baseline ({:.0} req/s)",
                s.nudge_peak_rps.unwrap_or(0.0),
                ratio * 100.0,
                s.baseline_rps.unwrap_or(0.0)
            );
        }
        (Some(ratio), rounds) => {
            let each: Vec<String> = s
                .rounds
                .iter()
                .map(|r| share(r.nudge_peak_rps, r.baseline_rps))
                .collect();
            let _ = writeln!(
                out,
                "Nudge peak: {:.1} % of the bare baseline, the median of {rounds} rounds: {}",
                ratio * 100.0,
                each.join(", ")
            );
        }
        (None, _) => {}
    }
    if let Some(w) = &s.writes {
        let grouped = w
            .rounds
            .iter()
            .map(|r| Some((r.writes_rps, r.baseline_rps)));
        let _ = write!(
            out,
            "Write baseline ({}: two rows per request, group-committed): ",
            w.backend
        );
        against_bare(&mut out, w.writes_rps, w.ratio_to_baseline, grouped);
        if let Some(ratio) = w.nudge_ratio {
            let _ = write!(out, "; Nudge's peak is {:.1} % of it", ratio * 100.0);
        }
        let _ = writeln!(out);
        if let Some(each) = &w.per_request {
            let rounds = w
                .rounds
                .iter()
                .map(|r| Some((r.per_request_rps?, r.baseline_rps)));
            let _ = write!(
                out,
                "The same rows one transaction per request ({}): ",
                w.backend
            );
            against_bare(&mut out, each.writes_rps, each.ratio_to_baseline, rounds);
            if let Some(ratio) = each.nudge_ratio {
                let _ = write!(out, "; Nudge's peak is {ratio:.1}× it");
            }
            let _ = writeln!(out);
        }
    }
    if let (Some(backend), false) = (s.backend, s.targets.is_empty()) {
        let lines: Vec<String> = s.targets.iter().map(TargetCheck::line).collect();
        let _ = writeln!(
            out,
            "Targets for full SMS turns on {backend} (docs/performance.md): {}",
            lines.join("; ")
        );
    }
    for (half, what) in [
        (s.half_peak, "At half peak"),
        (s.baseline_half_peak, "The bare baseline at half its peak"),
    ] {
        if let Some(half) = half {
            let _ = write!(
                out,
                "{what} ({:.0} offered, {:.0} served): p50 {:.2} ms, p99 {:.2} ms",
                half.offered_rps, half.throughput_rps, half.p50_ms, half.p99_ms
            );
            // By the server's clock, each a bucket bound of its histograms.
            let within: Vec<String> = [
                ("turns", half.server_p99_within_ms),
                ("writes", half.write_p99_within_ms),
                ("commits", half.commit_p99_within_ms),
            ]
            .into_iter()
            .filter_map(|(what, ms)| Some(format!("of its {what} within {} ms", ms?)))
            .collect();
            if !within.is_empty() {
                let _ = write!(out, "; by the server's clock, 99 % {}", within.join(", "));
            }
            let _ = writeln!(out);
        }
    }
    if s.first_turns.count > 0 {
        let _ = writeln!(
            out,
            "First turn of a user ({} users): p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
            s.first_turns.count, s.first_turns.p50_ms, s.first_turns.p99_ms, s.first_turns.max_ms
        );
    }
    if let Some(per_actor) = s.memory.bytes_per_added_actor {
        let _ = writeln!(
            out,
            "Memory: {:.0} MiB RSS with {} user actors active; {:.1} KiB per added actor",
            s.memory.rss_after_bytes.unwrap_or(0) as f64 / MIB,
            s.memory.actors_after.unwrap_or(0),
            per_actor / 1024.0
        );
    }
    if let Some(w) = s.writer {
        let _ = write!(
            out,
            "Group commit: {} writes in {} transactions ({:.1} per transaction, largest {}), \
             committing {:.0} % of the time; a write waited {:.2} ms for its batch to start, \
             a batch took {:.2} ms",
            w.writes,
            w.batches,
            w.writes_per_batch,
            w.largest_batch,
            w.busy_fraction * 100.0,
            w.queue_wait_ms,
            w.batch_ms
        );
        if let Some(p99) = w.batch_p99_within_ms {
            let _ = write!(out, ", 99 % of batches within {p99} ms");
        }
        if let (Some(on_cpu), Some(waiting)) = (w.thread_on_cpu, w.thread_waiting_for_cpu) {
            let _ = write!(
                out,
                "; its thread ran {:.0} % of the time and waited for a CPU {:.0} %",
                on_cpu * 100.0,
                waiting * 100.0
            );
        }
        if w.log_restarts > 0 || w.catch_up_checkpoints > 0 {
            let _ = write!(
                out,
                "; the WAL restarted {} times, after {} checkpoints of the batch thread's own \
                 ({:.0} ms in all)",
                w.log_restarts, w.catch_up_checkpoints, w.catch_up_ms
            );
        }
        let _ = writeln!(out);
    }
    if let Some(sockets) = &s.sockets {
        let _ = write!(
            out,
            "Web users: {} sockets held ({} did not open, {} dropped), {} messages pushed",
            sockets.opened, sockets.failed, sockets.dropped, sockets.messages
        );
        if let Some(bytes) = sockets.bytes_per_socket {
            let _ = write!(out, ", {:.1} KiB of server memory each", bytes / 1024.0);
        }
        let push = sockets.push_latency;
        if push.count > 0 {
            let _ = write!(
                out,
                "; reply pushed {:.2} ms p50, {:.2} ms p99 after the text left",
                push.p50_ms, push.p99_ms
            );
        }
        out.push('\n');
    }
    if let Some(u) = &report.upstream {
        let _ = writeln!(
            out,
            "Model stand-in: {} generateContent calls, delays drawn {:.0} ms p50, {:.0} ms p99 \
             (configured {:.0} / {:.0}); {} embedding calls for {} texts; {} replies sent \
             through the REST API (after the webhook's window); {} requests refused",
            u.generate_calls,
            u.model_delays.p50_ms,
            u.model_delays.p99_ms,
            u.model_latency_median_ms,
            u.model_latency_p99_ms,
            u.embed_calls,
            u.texts_embedded,
            u.sms_sent,
            u.refused
        );
    }
    out
}

/// `rps` as a share of the bare baseline: the median `ratio`, then each round's `(rps, bare)`.
fn against_bare(
    out: &mut String,
    rps: f64,
    ratio: Option<f64>,
    rounds: impl Iterator<Item = Option<(f64, f64)>>,
) {
    let _ = write!(out, "{rps:.0} req/s");
    if let Some(ratio) = ratio {
        let rounds: Vec<String> = rounds.flatten().map(|(r, bare)| share(r, bare)).collect();
        let _ = write!(
            out,
            " = {:.1} % of the bare baseline ({})",
            ratio * 100.0,
            rounds.join(", ")
        );
    }
}

/// One round's throughput as a share of its baseline's: `20.0 % (8000 of 40000)`.
fn share(part: f64, whole: f64) -> String {
    format!("{:.1} % ({part:.0} of {whole:.0})", part / whole * 100.0)
}

const MIB: f64 = 1024.0 * 1024.0;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small report with a baseline, a peak, and the half-peak phases of Nudge and the
    /// baseline.
    pub(crate) fn sample_report() -> Report {
        let phase = |name: &str, target: &str, mode: &str, rps: f64, p99: f64| PhaseReport {
            name: name.into(),
            target: target.into(),
            mode: mode.into(),
            offered_rps: (mode == "open").then_some(rps),
            duration_secs: 3.0,
            ok: (rps * 3.0) as u64,
            deferred: 0,
            errors: 0,
            error_kinds: BTreeMap::new(),
            throughput_rps: rps,
            latency: LatencySummary {
                count: (rps * 3.0) as u64,
                mean_ms: p99 / 3.0,
                p50_ms: p99 / 4.0,
                p90_ms: p99 / 2.0,
                p95_ms: p99 / 1.5,
                p99_ms: p99,
                p999_ms: p99 * 1.5,
                max_ms: p99 * 2.0,
            },
            server: (target == "nudge").then_some(ServerUsage {
                cpu_percent: 150.0,
                rss_start_bytes: 50 << 20,
                rss_end_bytes: 80 << 20,
                rss_peak_bytes: 90 << 20,
            }),
            local_server_cpu_percent: (target == "baseline").then_some(120.0),
            client_cpu_percent: 40.0,
            machine_cpu_percent: 195.0,
            writer: (name == "nudge 50%").then_some(WriterUse {
                batches: 1_000,
                writes: 15_000,
                writes_per_batch: 15.0,
                largest_batch: 40,
                busy_fraction: 0.9,
                queue_wait_ms: 1.5,
                batch_ms: 2.7,
                batch_p99_within_ms: Some(5.0),
                write_p99_within_ms: Some(20.0),
                thread_on_cpu: Some(0.42),
                thread_waiting_for_cpu: Some(0.39),
                log_restarts: 12,
                catch_up_checkpoints: 30,
                catch_up_ms: 95.0,
            }),
            server_turns: (name == "nudge 50%").then_some(ServerTurns {
                turns: 15_000,
                mean_ms: 0.8,
                p99_within_ms: Some(10.0),
            }),
            timeline: (0..3)
                .map(|second| TimelinePoint {
                    second,
                    ok: rps as u64,
                    errors: 0,
                    p50_ms: p99 / 4.0,
                    p99_ms: p99 + second as f64,
                    max_ms: p99 * 2.0,
                    server_cpu_percent: Some(150.0),
                    server_rss_bytes: Some(80 << 20),
                    actors_active: Some(100),
                })
                .collect(),
        };
        Report {
            version: "0.1.0",
            started_at: Utc::now(),
            machine: Machine {
                cores: 2,
                cpu_model: "test".into(),
                kernel: "6.1".into(),
            },
            target: "http://127.0.0.1:8080".into(),
            server_pid: Some(42),
            users: 100,
            concurrency: 8,
            warmup_secs: 1.0,
            duration_secs: 3.0,
            bodies: vec!["hi".into()],
            phases: vec![
                phase("baseline", "baseline", "closed", 40_000.0, 1.0),
                phase("nudge peak", "nudge", "closed", 10_000.0, 12.0),
                phase("nudge 50%", "nudge", "open", 5_000.0, 4.0),
                phase("baseline 50%", "baseline", "open", 20_000.0, 2.0),
            ],
            summary: Summary {
                baseline_rps: Some(40_000.0),
                nudge_peak_rps: Some(10_000.0),
                ratio_to_baseline: Some(0.25),
                rounds: vec![RoundRatio {
                    baseline_rps: 40_000.0,
                    nudge_peak_rps: 10_000.0,
                    ratio: 0.25,
                }],
                half_peak: Some(HalfPeak {
                    offered_rps: 5_000.0,
                    throughput_rps: 4_990.0,
                    p50_ms: 1.0,
                    p99_ms: 4.0,
                    commit_p99_within_ms: Some(5.0),
                    write_p99_within_ms: Some(20.0),
                    server_p99_within_ms: Some(10.0),
                }),
                baseline_half_peak: Some(HalfPeak {
                    offered_rps: 20_000.0,
                    throughput_rps: 20_000.0,
                    p50_ms: 0.5,
                    p99_ms: 2.0,
                    commit_p99_within_ms: None,
                    write_p99_within_ms: None,
                    server_p99_within_ms: None,
                }),
                first_turns: LatencySummary::default(),
                memory: Memory {
                    rss_before_bytes: Some(40 << 20),
                    rss_after_bytes: Some(80 << 20),
                    actors_before: Some(0),
                    actors_after: Some(100),
                    bytes_per_added_actor: None,
                }
                .with_per_actor(),
                writer: None,
                sockets: Some(super::super::sockets::SocketSummary {
                    requested: 10,
                    opened: 10,
                    messages: 40,
                    ..Default::default()
                }),
                writes: None,
                backend: None,
                targets: Vec::new(),
            },
            upstream: None,
            comparison: None,
        }
    }

    #[test]
    fn the_report_serialises_with_its_headline_figures() {
        let json = serde_json::to_value(sample_report()).unwrap();
        assert_eq!(json["summary"]["ratio_to_baseline"], 0.25);
        assert_eq!(json["phases"][1]["latency"]["p99_ms"], 12.0);
        assert_eq!(json["phases"][0]["server"], serde_json::Value::Null);
        assert_eq!(json["summary"]["sockets"]["opened"], 10);
        assert!(text(&sample_report()).contains("Web users: 10 sockets held"));
        assert!(
            json["summary"].get("writes").is_none(),
            "no write baseline ran"
        );
        assert_eq!(json["upstream"], serde_json::Value::Null);
        assert_eq!(json["phases"][2]["timeline"][2]["p99_ms"], 6.0);
        assert_eq!(
            json["summary"]["memory"]["bytes_per_added_actor"],
            (40u64 << 20) as f64 / 100.0
        );
    }

    #[test]
    fn memory_per_actor_needs_actors_to_have_been_added() {
        let none = Memory {
            rss_before_bytes: Some(1),
            rss_after_bytes: Some(2),
            actors_before: Some(5),
            actors_after: Some(5),
            bytes_per_added_actor: None,
        };
        assert_eq!(none.with_per_actor().bytes_per_added_actor, None);
    }

    #[test]
    fn the_text_summary_names_each_phase_and_the_ratio() {
        let text = text(&sample_report());
        assert!(text.contains("nudge peak"), "{text}");
        assert!(text.contains("25.0 % of the bare baseline"), "{text}");
        assert!(text.contains("p99 4.00 ms"), "{text}");
        assert!(text.contains("KiB per added actor"), "{text}");
        assert!(
            !text.contains("reply window"),
            "no deferred answers, no line about them: {text}"
        );
    }

    #[test]
    fn the_wal_restarts_are_named_only_where_there_is_a_wal() {
        let mut report = sample_report();
        let half = report.phases[2]
            .writer
            .expect("the half-peak phase has the writer's use");
        report.summary.writer = Some(half);
        let sqlite = text(&report);
        assert!(
            sqlite.contains(
                "the WAL restarted 12 times, after 30 checkpoints of the batch thread's own \
                 (95 ms in all)"
            ),
            "{sqlite}"
        );
        report.summary.writer = Some(WriterUse {
            log_restarts: 0,
            catch_up_checkpoints: 0,
            catch_up_ms: 0.0,
            ..half
        });
        let postgres = text(&report);
        assert!(postgres.contains("Group commit:"), "{postgres}");
        assert!(!postgres.contains("WAL"), "{postgres}");
    }

    #[test]
    fn deferred_answers_are_reported_per_phase_and_not_as_errors() {
        let mut report = sample_report();
        report.phases[1].deferred = 31;
        report.phases[2].deferred = 9;
        let text = text(&report);
        assert!(
            text.contains("reply window") && text.contains("nudge peak 31, nudge 50% 9"),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["phases"][1]["deferred"], 31);
        assert_eq!(json["phases"][1]["errors"], 0);
    }

    #[test]
    fn each_target_says_whether_it_was_met_and_by_how_much_it_was_not() {
        let short = TargetCheck::peak_ratio("sqlite", 0.16).unwrap();
        assert!(!short.met);
        assert!((short.off_by.unwrap() - 1.25).abs() < 1e-9, "{short:?}");
        assert!(TargetCheck::peak_ratio("sqlite", 0.20).unwrap().met);
        let postgres = TargetCheck::peak_ratio("postgres", 0.22).unwrap();
        assert_eq!((postgres.bound, postgres.met), (0.25, false));
        assert_eq!(TargetCheck::peak_ratio("mysql", 0.5), None);
        let tail = TargetCheck::half_peak_p99(13.95);
        assert_eq!((tail.met, tail.off_by), (true, None));
        let slow = TargetCheck::half_peak_p99(30.0);
        assert_eq!((slow.met, slow.off_by), (false, Some(1.5)));

        let mut report = sample_report();
        assert!(!text(&report).contains("Targets"), "no backend, no verdict");
        report.summary.backend = Some("sqlite");
        report.summary.targets = vec![short, TargetCheck::half_peak_p99(20.0)];
        let text = text(&report);
        assert!(
            text.contains(
                "Targets for full SMS turns on sqlite (docs/performance.md): peak at least 20 % \
                 of the bare baseline: 16.0 %, not met, 1.25× short; p99 under 20 ms at half \
                 the peak: 20.00 ms, not met, 1.00× over\n"
            ),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["summary"]["backend"], "sqlite");
        assert_eq!(json["summary"]["targets"][0]["figure"], "peak_ratio");
        assert_eq!(json["summary"]["targets"][0]["met"], false);
        assert!(json["summary"]["targets"][1].get("off_by").is_some());
    }
}
