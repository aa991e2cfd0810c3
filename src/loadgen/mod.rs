//! `nudge loadgen`: the load benchmark harness.
//!
//! It simulates a population of users (each texting from its own phone to its own dedicated
//! number, see [`population`]) sending Twilio-signed SMS webhooks to a running Nudge on
//! loopback, and measures what Nudge's own machinery costs. By default the server runs its
//! offline rules engine, a zero-latency stand-in for the LLM. With `--model-latency-ms` the
//! server's LLM agent answers instead, and [`upstream`] serves its Gemini calls (and the
//! Twilio sends of replies that miss the webhook's window) from this process after a delay
//! drawn from a configured distribution.
//!
//! A run is a sequence of phases, each with a warm-up that is not measured, then a bounded
//! measured time:
//!
//! 1. **baseline**: a bare axum handler answering fixed TwiML ([`baseline`]), started in this
//!    process on another port, closed loop. Nudge's throughput is reported as a ratio of it,
//!    so figures compare across machines.
//! 2. **nudge peak**: Nudge, closed loop at the run's concurrency (each connection sends its
//!    next webhook as soon as the answer to the last arrives).
//! 3. **nudge N %**: Nudge, open loop at fractions of the measured peak (`--sweep`); requests
//!    are due at a fixed rate and latency counts from when each was due, so a stalled server
//!    is not hidden by a client that waits for it.
//!
//! With `--write-baseline DB`, each round also measures, after Nudge's peak, a bare handler
//! that stores two rows per request in that database through a single group-committing
//! writer before it answers ([`writes`]): what durable writes alone allow on this machine and
//! backend, which the report sets beside the bare baseline and Nudge's peak. Then the same
//! rows committed the plain way, one transaction per request: what group commit is worth.
//!
//! With `--rate R`, the run is the baseline then one open-loop phase at `R`.
//!
//! With `--rounds N`, the baseline and Nudge's peak (or its `--rate` phase) run N times in
//! turn before the sweep; each peak is read against the baseline measured just before it,
//! and the summary gives the median of those ratios beside each one. The machine's speed
//! drifts between phases (on a shared 2-core machine the bare baseline moves by a quarter
//! from one run to the next), so the median of several pairs is the figure to compare.
//!
//! Before Nudge's phases, the first `--sockets` users sign in and hold a WebSocket open, as
//! the web client does ([`sockets`]): their turns are pushed to them while the phases run,
//! and the report gives the push latency, what a socket costs the server, and any dropped.
//!
//! While it runs, a line per second shows throughput, latency and the server's CPU, memory
//! and active user actors (from `/proc/PID` and the server's `/metrics`). At the end it prints
//! a summary, with the group-commit writer's work and, on SQLite, how much of the time its
//! thread ran and waited for a CPU; and writes the whole report as JSON ([`report`]) and a
//! picture of latency over time and against load as SVG ([`plot`]).
//!
//! With `--compare FILE`, the run's figures are set beside an earlier run's report
//! ([`compare`]), and the run exits with status 3 when one regressed.
//!
//! Run with: `nudge admin seed --users 10000 && nudge loadgen --users 10000`
//! (with the server's environment: the same `TWILIO_AUTH_TOKEN` or data directory).

pub mod baseline;
pub mod client;
pub mod compare;
pub mod plot;
pub mod population;
pub mod procstat;
pub mod recorder;
pub mod report;
pub mod sockets;
pub mod upstream;
pub mod writes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use hdrhistogram::Histogram;
use secrecy::ExposeSecret;

use crate::config::Settings;
use client::{Answer, Connection, SmsWebhooks, Traffic};
use procstat::ProcSample;
use recorder::{LatencySummary, Recorder};
use report::{
    HalfPeak, Machine, Memory, PerRequestWrites, PhaseReport, Report, RoundRatio, ServerTurns,
    ServerUsage, Summary, TargetCheck, TimelinePoint, WriterUse, WritesRound, WritesSummary,
};

/// What a request may take before it counts as a `timeout` error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Messages sent in turn unless `--body` is given: a greeting and a question that read the
/// user's tasks, a thank-you and a remark that touch nothing but the conversation.
const DEFAULT_BODIES: [&str; 4] = ["hi", "what's next?", "thanks", "I feel stuck today"];
/// Most connections a run may open.
const MAX_CONCURRENCY: usize = 10_000;
/// Web users holding a socket unless `--sockets` says otherwise (fewer with fewer users).
const DEFAULT_SOCKETS: u64 = 1_000;
/// Most sockets a run may hold (each is a file descriptor on both sides of loopback).
const MAX_SOCKETS: u64 = 100_000;
/// Most rounds of baseline and peak a run may take.
const MAX_ROUNDS: u32 = 20;

/// `nudge loadgen` options.
#[derive(Debug, Clone, Args)]
pub struct LoadgenArgs {
    /// Base URL of the Nudge server [default: NUDGE_PUBLIC_URL, else http://NUDGE_LISTEN].
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Simulated users addressed in turn, each with its own phone and dedicated number
    /// (create them first with `nudge admin seed --users N`).
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub users: u64,
    /// Connections to the server, and so the most requests in flight (group commit needs many
    /// turns in flight to reach its peak).
    #[arg(long, default_value_t = 256, value_name = "C")]
    pub concurrency: usize,
    /// Seconds each phase is measured.
    #[arg(long, default_value_t = 20, value_name = "SECS")]
    pub duration: u64,
    /// Seconds each phase runs before it is measured.
    #[arg(long, default_value_t = 3, value_name = "SECS")]
    pub warmup: u64,
    /// Load Nudge in open loop at this many requests per second, instead of measuring its
    /// closed-loop peak and sweeping fractions of it.
    #[arg(long, value_name = "PER_SEC")]
    pub rate: Option<f64>,
    /// After the closed-loop peak, open-loop phases at these fractions of it, comma-separated
    /// (`none` for no sweep); each is followed by the bare baseline at the same fraction of
    /// its own peak.
    #[arg(long, default_value = "0.5", value_name = "FRACTIONS")]
    pub sweep: String,
    /// Users (the first of the population) who also hold a WebSocket open for the run, as
    /// the web client does; their replies are pushed to it [default: 1000, at most --users].
    #[arg(long, value_name = "N")]
    pub sockets: Option<u64>,
    /// Skip the bare axum baseline (the report then has no ratio).
    #[arg(long)]
    pub no_baseline: bool,
    /// Also measure, in each round after Nudge's peak, a bare handler that durably stores two
    /// rows per request through a single group-committing writer, in this database
    /// (`sqlite:PATH`, or a `postgres://` URL; its table `loadgen_writes` is created when
    /// missing), and report both as ratios of the bare baseline and Nudge's peak as a ratio
    /// of it: what the database alone allows on this machine. Then the same rows committed
    /// one transaction per request, on a pooled connection, reported the same way.
    #[arg(long, value_name = "URL")]
    pub write_baseline: Option<String>,
    /// Measure the bare baseline and Nudge's peak (or its --rate phase) this many times, in
    /// turn, and report the median of the rounds' ratios beside each one: the machine's
    /// speed drifts from one phase to the next, so a single pair gives a noisy ratio.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub rounds: u32,
    /// A message text to send; repeat for several, sent in turn [default: a greeting, a
    /// question about tasks, a thank-you, a remark].
    #[arg(long = "body", value_name = "TEXT")]
    pub bodies: Vec<String>,
    /// Where to write the JSON report.
    #[arg(long, default_value = "loadgen.json", value_name = "FILE")]
    pub json: PathBuf,
    /// Where to write the SVG plot.
    #[arg(long, default_value = "loadgen.svg", value_name = "FILE")]
    pub plot: PathBuf,
    /// The server's process id, for its CPU and memory [default: the process listening on the
    /// target's port, when it is on this machine].
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Answer the server's Gemini calls from a stand-in in this process, after a delay of
    /// MEDIAN ms, or log-normal with that median and 99th percentile (`800,3000`). It listens
    /// where NUDGE_GEMINI_BASE_URL points (http://127.0.0.1:PORT, the server's setting too,
    /// with a GEMINI_API_KEY) and also takes Twilio's message sends when TWILIO_API_BASE is
    /// the same address [default: no stand-in; the server answers as it is configured]
    #[arg(long, value_name = "MEDIAN[,P99]")]
    pub model_latency_ms: Option<String>,
    /// The stand-in's delay for embedding calls, as --model-latency-ms.
    #[arg(long, default_value = "0", value_name = "MEDIAN[,P99]")]
    pub embedding_latency_ms: String,
    /// An earlier run's JSON report to compare this run with. The run then exits with status
    /// 3 when a figure regressed: its ratio to the bare baseline lower than the reference's by
    /// more than --tolerance with every round below the reference's worst, or its memory per
    /// user actor higher by more than --tolerance.
    #[arg(long, value_name = "FILE")]
    pub compare: Option<PathBuf>,
    /// How far, in percent, a figure may move from the --compare reference before it counts.
    #[arg(long, default_value_t = 10.0, value_name = "PCT")]
    pub tolerance: f64,
}

impl LoadgenArgs {
    /// Web users holding a socket.
    fn socket_count(&self) -> u64 {
        self.sockets.unwrap_or(DEFAULT_SOCKETS.min(self.users))
    }

    /// The sweep fractions, or what is wrong with them.
    fn fractions(&self) -> Result<Vec<f64>, String> {
        let text = self.sweep.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("none") {
            return Ok(Vec::new());
        }
        text.split(',')
            .map(|part| {
                let f: f64 = part.trim().parse().map_err(|_| {
                    format!("--sweep: {part:?} is not a number (use fractions like 0.25,0.5)")
                })?;
                if f > 0.0 && f <= 2.0 {
                    Ok(f)
                } else {
                    Err(format!("--sweep: {f} is outside (0, 2]"))
                }
            })
            .collect()
    }

    /// What is wrong with the options, if anything.
    fn problem(&self) -> Option<String> {
        if self.users == 0 || self.users > population::MAX_USERS {
            return Some(format!("--users must be 1 to {}", population::MAX_USERS));
        }
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return Some(format!("--concurrency must be 1 to {MAX_CONCURRENCY}"));
        }
        if self.socket_count() > self.users.min(MAX_SOCKETS) {
            return Some(format!(
                "--sockets must be at most --users ({}) and at most {MAX_SOCKETS}",
                self.users
            ));
        }
        if self.duration == 0 {
            return Some("--duration must be at least 1 second".into());
        }
        if !(1..=MAX_ROUNDS).contains(&self.rounds) {
            return Some(format!("--rounds must be 1 to {MAX_ROUNDS}"));
        }
        if !(0.0..100.0).contains(&self.tolerance) {
            return Some("--tolerance must be a percentage from 0 to under 100".into());
        }
        if let Some(rate) = self.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Some("--rate must be a positive number of requests per second".into());
        }
        if let Err(problem) = self.latencies() {
            return Some(problem);
        }
        if let Some(Err(problem)) = self.write_baseline.as_deref().map(writes::WriteDb::parse) {
            return Some(problem);
        }
        self.fractions().err()
    }

    /// The stand-in's delays for model and embedding calls, when the run has one.
    fn latencies(&self) -> Result<Option<(upstream::Latency, upstream::Latency)>, String> {
        let embedding = upstream::Latency::parse(&self.embedding_latency_ms)
            .map_err(|e| format!("--embedding-latency-ms: {e}"))?;
        self.model_latency_ms
            .as_deref()
            .map(|text| {
                let model = upstream::Latency::parse(text)
                    .map_err(|e| format!("--model-latency-ms: {e}"))?;
                Ok((model, embedding))
            })
            .transpose()
    }
}

/// Starts the model stand-in where the server calls Gemini, or says why it cannot.
fn start_upstream(
    settings: &Settings,
    model: upstream::Latency,
    embedding: upstream::Latency,
) -> Result<upstream::Upstream, String> {
    const HOW: &str = "set GEMINI_API_KEY and NUDGE_GEMINI_BASE_URL=http://127.0.0.1:PORT for \
                       both the server and the load generator";
    let Some(gemini) = &settings.llm.gemini else {
        return Err(format!(
            "--model-latency-ms: no Gemini is configured: {HOW}"
        ));
    };
    let url = &gemini.base_url;
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
        _ => None,
    };
    let (true, Some(ip), Some(port)) = (
        url.scheme() == "http",
        ip.filter(std::net::IpAddr::is_loopback),
        url.port(),
    ) else {
        return Err(format!(
            "--model-latency-ms: the stand-in listens where the server calls Gemini, and {url} \
             is not a loopback http:// address with a port: {HOW}"
        ));
    };
    let addr = SocketAddr::new(ip, port);
    let stand_in = upstream::Upstream::start(addr, model, embedding)
        .map_err(|e| format!("--model-latency-ms: the stand-in cannot listen on {addr}: {e}"))?;
    let api = &settings.twilio.api_base;
    if api.port_or_known_default() != Some(port) || api.host_str() != url.host_str() {
        eprintln!(
            "note: TWILIO_API_BASE ({api}) is not the stand-in's address: replies that miss the \
             webhook's window are sent there"
        );
    }
    eprintln!(
        "model stand-in on http://{addr}: generateContent after {:?} (p50) / {:?} (p99), \
         embeddings after {:?} / {:?}",
        model.median(),
        model.p99(),
        embedding.median(),
        embedding.p99()
    );
    Ok(stand_in)
}

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pace {
    /// Each connection sends its next request when the last is answered.
    Closed,
    /// Requests are due at this many per second; latency counts from when each was due.
    Open(f64),
}

/// Where the load goes and how to watch the server.
struct Target {
    addr: SocketAddr,
    /// The `Host` header value.
    host: String,
    /// The server's process, when known.
    pid: Option<u32>,
    /// The bearer token of the server's `/metrics`.
    metrics_token: Option<String>,
}

impl Target {
    /// The server's process now, if it is known and readable.
    fn sample(&self) -> Option<ProcSample> {
        self.pid.and_then(|pid| procstat::sample(pid).ok())
    }

    /// The server's SQLite batch thread now, if it has one and `/proc` shows it.
    fn writer_thread(&self) -> Option<procstat::ThreadTimes> {
        self.pid
            .and_then(|pid| procstat::thread_times(pid, crate::store::BATCH_THREAD_NAME))
    }

    /// The server's `/metrics` text, if it answers.
    async fn metrics(&self, connection: &mut Connection) -> Option<String> {
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            connection.get(&self.host, "/metrics", self.metrics_token.as_deref()),
        )
        .await;
        match answer {
            Ok(Ok((status, body))) if status.is_success() => {
                Some(String::from_utf8_lossy(&body).into_owned())
            }
            _ => None,
        }
    }
}

/// Users seen so far in the run, and the latency of each one's first turn.
struct FirstTurns {
    seen: Vec<AtomicBool>,
    latency: Mutex<Histogram<u64>>,
}

impl FirstTurns {
    fn new(users: u64) -> Self {
        Self {
            seen: (0..users).map(|_| AtomicBool::new(false)).collect(),
            latency: Mutex::new(recorder::latency_histogram()),
        }
    }

    /// True the first time `user` is seen.
    fn first(&self, user: u64) -> bool {
        self.seen
            .get(user as usize)
            .is_some_and(|seen| !seen.swap(true, Ordering::Relaxed))
    }

    fn record(&self, latency: Duration) {
        let mut histogram = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
        recorder::record_latency(&mut histogram, latency);
    }

    fn summary(&self) -> LatencySummary {
        LatencySummary::of(&self.latency.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// One phase to run.
struct Phase<'a> {
    name: String,
    /// `baseline` or `nudge`.
    target_kind: &'static str,
    addr: SocketAddr,
    pace: Pace,
    /// Watched during the phase (none for the in-process baseline).
    watched: Option<&'a Target>,
    first_turns: Option<Arc<FirstTurns>>,
    /// Where sends of users holding a socket are noted (Nudge's phases).
    pushes: Option<Arc<sockets::Pushes>>,
    /// What the names of a baseline's server threads in this process begin with.
    local_threads: Option<&'static [&'static str]>,
}

/// Runs `nudge loadgen`.
pub async fn run(settings: &Settings, args: LoadgenArgs) -> anyhow::Result<ExitCode> {
    if let Some(problem) = args.problem() {
        eprintln!("error: {problem}");
        return Ok(ExitCode::from(2));
    }
    let reference = match args.compare.as_deref().map(compare::Reference::read) {
        Some(Err(problem)) => {
            eprintln!("error: {problem}");
            return Ok(ExitCode::from(2));
        }
        Some(Ok(reference)) => Some(reference),
        None => None,
    };
    let fractions = args.fractions().unwrap_or_default();
    let (base, signed_base) = crate::cli::webhook_bases(settings, args.target.as_deref());
    let url = url::Url::parse(&base).with_context(|| format!("--target {base:?} is not a URL"))?;
    if url.scheme() != "http" {
        eprintln!(
            "error: --target must be an http:// URL (the load generator speaks plain HTTP/1.1)"
        );
        return Ok(ExitCode::from(2));
    }
    let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .with_context(|| format!("resolving {host}"))?
        .next()
        .with_context(|| format!("{host} has no address"))?;
    let pid = match args.server_pid {
        Some(pid) => Some(pid),
        None if addr.ip().is_loopback() => procstat::find_listener(port).ok().flatten(),
        None => None,
    };
    if pid.is_none() {
        eprintln!(
            "note: the server process was not found; its CPU and memory are not reported (--server-pid)"
        );
    }
    let target = Target {
        addr,
        host: format!("{host}:{port}"),
        pid,
        metrics_token: settings
            .metrics_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
    };
    let bodies = if args.bodies.is_empty() {
        DEFAULT_BODIES.iter().map(|b| (*b).to_owned()).collect()
    } else {
        args.bodies.clone()
    };
    let traffic: Arc<dyn Traffic> = Arc::new(SmsWebhooks::new(
        &format!("{signed_base}/sms/inbound"),
        &target.host,
        settings.twilio.auth_token.expose_secret(),
        bodies.clone(),
    ));

    let stand_in = match args.latencies() {
        Ok(Some((model, embedding))) => match start_upstream(settings, model, embedding) {
            Ok(stand_in) => Some(stand_in),
            Err(problem) => {
                eprintln!("error: {problem}");
                return Ok(ExitCode::from(2));
            }
        },
        _ => None,
    };

    let first_turns = Arc::new(FirstTurns::new(args.users));
    if let Err(problem) = preflight(&target, traffic.as_ref(), &args, &first_turns).await {
        eprintln!("error: {problem}");
        return Ok(ExitCode::FAILURE);
    }

    let socket_count = args.socket_count();
    let mut tokens = if socket_count > 0 {
        eprintln!("signing in {socket_count} web users");
        match sockets::sign_in(settings, socket_count).await {
            Ok(tokens) => tokens,
            Err(error) => {
                eprintln!("error: {error:#}");
                return Ok(ExitCode::FAILURE);
            }
        }
    } else {
        Vec::new()
    };

    // Started once, before any load, so a database it cannot use stops the run at once.
    let write_db = args
        .write_baseline
        .as_deref()
        .map(writes::WriteDb::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let mut write_servers = Vec::new();
    if let Some(db) = &write_db {
        for commits in [writes::Commits::Grouped, writes::Commits::PerRequest] {
            match writes::WriteServer::start(db, commits).await {
                Ok(server) => write_servers.push((commits, server)),
                Err(error) => {
                    eprintln!("error: starting the write baseline: {error:#}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
    }

    let started_at = chrono::Utc::now();
    let rounds = args.rounds;
    let label = |name: &str, round: u32| {
        if rounds == 1 {
            name.to_owned()
        } else {
            format!("{name} {round}/{rounds}")
        }
    };
    let nudge = |name: String, pace, pushes| Phase {
        name,
        target_kind: "nudge",
        addr: target.addr,
        pace,
        watched: Some(&target),
        first_turns: Some(first_turns.clone()),
        pushes,
        local_threads: None,
    };
    let mut phases = Vec::new();
    let mut fleet = None;
    let mut probe = Connection::new(target.addr);
    let mut metrics_before = None;
    let mut thread_before = None;
    let mut rss_before = None;
    // Time spent loading Nudge (the writer's busy share is taken over it).
    let mut nudge_time = Duration::ZERO;
    for round in 1..=rounds {
        if !args.no_baseline {
            let name = label("baseline", round);
            phases.push(run_bare(name, Pace::Closed, &args, traffic.clone()).await?);
        }
        if round == 1 {
            if !tokens.is_empty() {
                let opened = sockets::Fleet::open(
                    target.addr,
                    &target.host,
                    std::mem::take(&mut tokens),
                    || target.sample().map(|s| s.rss_bytes),
                )
                .await;
                eprintln!(
                    "{} web users hold a WebSocket ({} did not open)",
                    opened.opened(),
                    opened.failed()
                );
                fleet = Some(opened);
            }
            metrics_before = target.metrics(&mut probe).await;
            thread_before = target.writer_thread();
            rss_before = target.sample().map(|s| s.rss_bytes);
        }
        let pushes = fleet.as_ref().map(sockets::Fleet::pushes);
        let (name, pace) = match args.rate {
            Some(rate) => (format!("nudge {rate:.0}/s"), Pace::Open(rate)),
            None => ("nudge peak".to_owned(), Pace::Closed),
        };
        let started = Instant::now();
        let phase = nudge(label(&name, round), pace, pushes);
        phases.push(run_phase(&phase, &args, traffic.clone()).await);
        nudge_time += started.elapsed();
        for (commits, server) in &write_servers {
            let (name, addr) = (label(commits.phase(), round), server.addr());
            let (kind, threads) = (commits.target(), commits.threads());
            let phase = local_phase(name, kind, threads, addr, Pace::Closed);
            phases.push(run_phase(&phase, &args, traffic.clone()).await);
        }
    }
    drop(write_servers);
    if args.rate.is_none() {
        // The sweep is taken at fractions of the rounds' median peak; each phase of it is
        // followed by the bare baseline at the same fraction of its own median peak, for the
        // machine's own latency at a like share of what it can serve.
        let peak_rps = median_throughput(&phases, is_peak).unwrap_or(1.0);
        let bare_rps = median_throughput(&phases, is_bare_peak);
        let pushes = fleet.as_ref().map(sockets::Fleet::pushes);
        for fraction in &fractions {
            let name = |target: &str| format!("{target} {:.0}%", fraction * 100.0);
            let rate = (peak_rps * fraction).max(1.0);
            let phase = nudge(name("nudge"), Pace::Open(rate), pushes.clone());
            let started = Instant::now();
            phases.push(run_phase(&phase, &args, traffic.clone()).await);
            nudge_time += started.elapsed();
            if let Some(bare_rps) = bare_rps {
                let pace = Pace::Open((bare_rps * fraction).max(1.0));
                phases.push(run_bare(name("baseline"), pace, &args, traffic.clone()).await?);
            }
        }
    }
    let metrics_after = target.metrics(&mut probe).await;
    let thread_after = target.writer_thread();
    let rss_after = target.sample().map(|s| s.rss_bytes);
    let sockets = match fleet {
        Some(fleet) => Some(fleet.close().await),
        None => None,
    };

    let (cores, cpu_model, kernel) = procstat::machine();
    let summary = summarize(
        &phases,
        &fractions,
        args.rate.is_none(),
        &first_turns,
        Memory {
            rss_before_bytes: rss_before,
            rss_after_bytes: rss_after,
            actors_before: metrics_before.as_deref().and_then(actors_active),
            actors_after: metrics_after.as_deref().and_then(actors_active),
            bytes_per_added_actor: None,
        }
        .with_per_actor(),
        writer_use(
            metrics_before.as_deref(),
            metrics_after.as_deref(),
            nudge_time,
        )
        .map(|w| w.with_thread(thread_before.zip(thread_after), nudge_time)),
        sockets,
    );
    let backend = metrics_before.as_deref().and_then(backend_of);
    let summary = Summary {
        writes: write_db
            .as_ref()
            .and_then(|db| writes_summary(&phases, db.backend())),
        backend,
        targets: match (backend, stand_in.is_some()) {
            (Some(backend), false) => target_checks(&summary, backend),
            _ => Vec::new(),
        },
        ..summary
    };
    let comparison = reference.map(|reference| {
        let shape = compare::Shape {
            users: args.users,
            concurrency: args.concurrency,
            bodies: bodies.clone(),
            model: stand_in.is_some(),
        };
        reference.compare(&summary, &shape, args.tolerance / 100.0)
    });
    let report = Report {
        version: env!("CARGO_PKG_VERSION"),
        started_at,
        machine: Machine {
            cores,
            cpu_model,
            kernel,
        },
        target: base,
        server_pid: target.pid,
        users: args.users,
        concurrency: args.concurrency,
        warmup_secs: args.warmup as f64,
        duration_secs: args.duration as f64,
        bodies,
        phases,
        summary,
        upstream: stand_in.as_ref().map(upstream::Upstream::report),
        comparison,
    };
    drop(stand_in);
    print!("{}", report::text(&report));
    if let Some(comparison) = &report.comparison {
        print!("{}", compare::text(comparison));
    }
    let json = serde_json::to_vec_pretty(&report).context("encoding the report")?;
    std::fs::write(&args.json, json).with_context(|| format!("writing {}", args.json.display()))?;
    std::fs::write(&args.plot, plot::render(&report))
        .with_context(|| format!("writing {}", args.plot.display()))?;
    println!(
        "Report: {}; plot: {}",
        args.json.display(),
        args.plot.display()
    );
    if report.comparison.as_ref().is_some_and(|c| c.regressed) {
        eprintln!("error: a figure regressed against the --compare reference");
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

/// Checks that the server answers and knows the first and last users, before loading it.
async fn preflight(
    target: &Target,
    traffic: &dyn Traffic,
    args: &LoadgenArgs,
    first_turns: &FirstTurns,
) -> Result<(), String> {
    let mut connection = Connection::new(target.addr);
    let health = tokio::time::timeout(
        REQUEST_TIMEOUT,
        connection.get(&target.host, "/healthz", None),
    )
    .await;
    match health {
        Ok(Ok((status, _))) if status.is_success() => {}
        _ => {
            return Err(format!(
                "no Nudge answers at {} (start it with `nudge serve`)",
                target.host
            ));
        }
    }
    for user in [0, args.users - 1] {
        let answer =
            tokio::time::timeout(REQUEST_TIMEOUT, connection.send(traffic.request(user, 0))).await;
        first_turns.first(user);
        match answer {
            Ok(Ok((status, body))) => match traffic.check(status, &body) {
                Ok(_) => {}
                Err(kind) if kind == "status_404" => {
                    return Err(format!(
                        "user {user} ({}) is not registered: create the population with \
                         `nudge admin seed --users {}`",
                        population::number(user),
                        args.users
                    ));
                }
                Err(kind) if kind == "status_403" => {
                    return Err("the server refused the webhook signature: run the load \
                                generator with the server's TWILIO_AUTH_TOKEN (or data \
                                directory) and NUDGE_PUBLIC_URL"
                        .into());
                }
                Err(kind) => {
                    return Err(format!("the server's answer to user {user} failed: {kind}"));
                }
            },
            Ok(Err(error)) => return Err(format!("sending to {}: {error}", target.host)),
            Err(_) => {
                return Err(format!(
                    "{} did not answer within {REQUEST_TIMEOUT:?}",
                    target.host
                ));
            }
        }
    }
    Ok(())
}

/// What the per-second sampler saw at one tick.
struct Tick {
    server: Option<ProcSample>,
    actors: Option<u64>,
}

/// Runs a phase against a bare axum handler started for it, on this machine.
async fn run_bare(
    name: String,
    pace: Pace,
    args: &LoadgenArgs,
    traffic: Arc<dyn Traffic>,
) -> anyhow::Result<PhaseReport> {
    let bare = baseline::BareServer::start().context("starting the bare baseline")?;
    let phase = local_phase(name, "baseline", &[baseline::THREADS], bare.addr(), pace);
    Ok(run_phase(&phase, args, traffic).await)
}

/// A phase against a server this process runs on threads named `threads…`, which is not
/// watched.
fn local_phase(
    name: String,
    target_kind: &'static str,
    threads: &'static [&'static str],
    addr: SocketAddr,
    pace: Pace,
) -> Phase<'static> {
    Phase {
        name,
        target_kind,
        addr,
        pace,
        watched: None,
        first_turns: None,
        pushes: None,
        local_threads: Some(threads),
    }
}

/// Runs one phase: warm-up, then the measured time, with a progress line per second.
async fn run_phase(
    phase: &Phase<'_>,
    args: &LoadgenArgs,
    traffic: Arc<dyn Traffic>,
) -> PhaseReport {
    let start = Instant::now();
    let warmup = Duration::from_secs(args.warmup);
    let duration = Duration::from_secs(args.duration);
    let measure_start = start + warmup;
    let end = measure_start + duration;
    let recorder = Arc::new(Mutex::new(Recorder::new(measure_start)));
    let sequence = Arc::new(AtomicU64::new(1));

    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            tokio::spawn(worker(Worker {
                addr: phase.addr,
                pace: phase.pace,
                users: args.users,
                start,
                measure_start,
                end,
                traffic: traffic.clone(),
                sequence: sequence.clone(),
                recorder: recorder.clone(),
                first_turns: phase.first_turns.clone(),
                pushes: phase.pushes.clone(),
            }))
        })
        .collect();

    // A baseline's server threads in this process: their CPU ticks, and when read.
    let local_ticks = || {
        let ticks = procstat::own_threads_ticks(phase.local_threads?)?;
        Some((Instant::now(), ticks))
    };
    let mut local_start = None;
    // One tick per second from the start: tick `warmup` is the measured time's start.
    let mut ticks: Vec<Tick> = Vec::new();
    let mut client_start = None;
    let mut machine_start = None;
    // The server's `/metrics` at the measured time's start and end, for the writer's work.
    let mut metrics_start = None;
    let mut metrics_end = None;
    let mut thread_start = None;
    let mut thread_end = None;
    let mut probe = phase.watched.map(|t| Connection::new(t.addr));
    let total = args.warmup + args.duration;
    for k in 0..=total {
        tokio::time::sleep_until((start + Duration::from_secs(k)).into()).await;
        let server = phase.watched.and_then(Target::sample);
        let metrics = match (phase.watched, probe.as_mut()) {
            (Some(target), Some(probe)) => target.metrics(probe).await,
            _ => None,
        };
        let actors = metrics.as_deref().and_then(actors_active);
        if k == args.warmup {
            local_start = local_ticks();
            client_start = procstat::sample_path(std::path::Path::new("/proc/self")).ok();
            machine_start = procstat::machine_ticks();
            metrics_start = metrics;
            thread_start = phase.watched.and_then(Target::writer_thread);
        } else if k == total {
            metrics_end = metrics;
            thread_end = phase.watched.and_then(Target::writer_thread);
        }
        progress(
            phase,
            args,
            k,
            &recorder,
            ticks.last(),
            server.as_ref(),
            actors,
        );
        ticks.push(Tick { server, actors });
    }
    let client_end = procstat::sample_path(std::path::Path::new("/proc/self")).ok();
    let local_end = local_ticks();
    let machine_end = procstat::machine_ticks();
    for worker in workers {
        let _ = worker.await;
    }

    let recorder = recorder.lock().unwrap_or_else(PoisonError::into_inner);
    let warm = args.warmup as usize;
    let timeline: Vec<TimelinePoint> = (0..args.duration as usize)
        .map(|i| {
            let second = recorder.seconds().get(i);
            let latency = second
                .map(|s| LatencySummary::of(&s.latency))
                .unwrap_or_default();
            let (before, after) = (ticks.get(warm + i), ticks.get(warm + i + 1));
            TimelinePoint {
                second: i as u64,
                ok: second.map_or(0, |s| s.ok),
                errors: second.map_or(0, |s| s.errors),
                p50_ms: latency.p50_ms,
                p99_ms: latency.p99_ms,
                max_ms: latency.max_ms,
                server_cpu_percent: cpu_between(before, after),
                server_rss_bytes: after.and_then(|t| t.server).map(|s| s.rss_bytes),
                actors_active: after.and_then(|t| t.actors),
            }
        })
        .collect();
    let server = match (
        ticks.get(warm).and_then(|t| t.server),
        ticks.last().and_then(|t| t.server),
    ) {
        (Some(first), Some(last)) => Some(ServerUsage {
            cpu_percent: last.cpu_percent_since(&first),
            rss_start_bytes: first.rss_bytes,
            rss_end_bytes: last.rss_bytes,
            rss_peak_bytes: ticks[warm..]
                .iter()
                .filter_map(|t| t.server.map(|s| s.rss_bytes))
                .max()
                .unwrap_or(last.rss_bytes),
        }),
        _ => None,
    };
    let ok = recorder.ok_count();
    let local_server_cpu_percent = match (local_start, local_end) {
        (Some((t0, ticks0)), Some((t1, ticks1))) if t1 > t0 => Some(procstat::ticks_percent(
            ticks1.saturating_sub(ticks0),
            t1 - t0,
        )),
        _ => None,
    };
    let process_cpu_percent = match (client_start, client_end) {
        (Some(a), Some(b)) => b.cpu_percent_since(&a),
        _ => 0.0,
    };
    PhaseReport {
        name: phase.name.clone(),
        target: phase.target_kind.into(),
        mode: match phase.pace {
            Pace::Closed => "closed".into(),
            Pace::Open(_) => "open".into(),
        },
        offered_rps: match phase.pace {
            Pace::Closed => None,
            Pace::Open(rate) => Some(rate),
        },
        duration_secs: duration.as_secs_f64(),
        ok,
        deferred: recorder.deferred_count(),
        errors: recorder.error_count(),
        error_kinds: recorder.errors().clone(),
        throughput_rps: ok as f64 / duration.as_secs_f64(),
        latency: LatencySummary::of(recorder.overall()),
        server,
        local_server_cpu_percent,
        client_cpu_percent: (process_cpu_percent - local_server_cpu_percent.unwrap_or(0.0))
            .max(0.0),
        machine_cpu_percent: match (machine_start, machine_end) {
            (Some((busy0, total0)), Some((busy1, total1))) if total1 > total0 => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                (busy1 - busy0) as f64 / (total1 - total0) as f64 * cores as f64 * 100.0
            }
            _ => 0.0,
        },
        writer: metrics_start
            .as_deref()
            .and_then(|start| writer_use(Some(start), metrics_end.as_deref(), duration))
            .map(|w| w.with_thread(thread_start.zip(thread_end), duration)),
        server_turns: metrics_start
            .as_deref()
            .and_then(|start| server_turns(Some(start), metrics_end.as_deref())),
        timeline,
    }
}

/// The server's CPU between two ticks.
fn cpu_between(before: Option<&Tick>, after: Option<&Tick>) -> Option<f64> {
    let (a, b) = (before?.server?, after?.server?);
    Some(b.cpu_percent_since(&a))
}

/// Prints the progress line of tick `k`.
fn progress(
    phase: &Phase<'_>,
    args: &LoadgenArgs,
    k: u64,
    recorder: &Mutex<Recorder>,
    previous: Option<&Tick>,
    server: Option<&ProcSample>,
    actors: Option<u64>,
) {
    if k == 0 {
        return;
    }
    let mut line = if k <= args.warmup {
        format!("[{}] warm-up {k}/{} s", phase.name, args.warmup)
    } else {
        let recorder = recorder.lock().unwrap_or_else(PoisonError::into_inner);
        let measured = k - args.warmup;
        match recorder.last_full_second(Instant::now()) {
            Some((_, second)) => {
                let latency = LatencySummary::of(&second.latency);
                format!(
                    "[{}] {measured}/{} s  {} ok/s  p50 {:.2} ms  p99 {:.2} ms  errors {}",
                    phase.name,
                    args.duration,
                    second.ok,
                    latency.p50_ms,
                    latency.p99_ms,
                    second.errors
                )
            }
            None => format!("[{}] {measured}/{} s", phase.name, args.duration),
        }
    };
    if let Some(server) = server {
        let cpu = previous
            .and_then(|t| t.server)
            .map(|p| server.cpu_percent_since(&p))
            .unwrap_or(0.0);
        line.push_str(&format!(
            "  server {cpu:.0} % cpu, {:.0} MiB",
            server.rss_bytes as f64 / (1024.0 * 1024.0)
        ));
    }
    if let Some(actors) = actors {
        line.push_str(&format!(", {actors} actors"));
    }
    eprintln!("{line}");
}

/// What one connection of a phase needs.
struct Worker {
    addr: SocketAddr,
    pace: Pace,
    users: u64,
    start: Instant,
    measure_start: Instant,
    end: Instant,
    traffic: Arc<dyn Traffic>,
    /// The next request number, shared by the phase's connections.
    sequence: Arc<AtomicU64>,
    recorder: Arc<Mutex<Recorder>>,
    first_turns: Option<Arc<FirstTurns>>,
    pushes: Option<Arc<sockets::Pushes>>,
}

/// Sends requests on one connection until the phase ends.
async fn worker(w: Worker) {
    let mut connection = Connection::new(w.addr);
    loop {
        let seq = w.sequence.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        // When the request counts from: in open loop, when it was due, unless the connection
        // was idle and only the timer's granularity made it late.
        let (due, from) = match w.pace {
            Pace::Closed => (now, now),
            Pace::Open(rate) => {
                let due = w.start + Duration::from_secs_f64(seq as f64 / rate);
                if due > now {
                    if due >= w.end {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                    (due, Instant::now())
                } else {
                    (due, due)
                }
            }
        };
        if due >= w.end {
            break;
        }
        let user = seq % w.users;
        if let Some(pushes) = &w.pushes {
            pushes.sending(user);
        }
        let answer = tokio::time::timeout(
            REQUEST_TIMEOUT,
            connection.send(w.traffic.request(user, seq)),
        )
        .await;
        let done = Instant::now();
        let outcome = match answer {
            Ok(Ok((status, body))) => w.traffic.check(status, &body),
            Ok(Err(_)) => Err("transport".into()),
            Err(_) => Err("timeout".into()),
        };
        if outcome.is_ok()
            && let Some(first_turns) = &w.first_turns
            && first_turns.first(user)
        {
            first_turns.record(done - from);
        }
        if due < w.measure_start {
            continue;
        }
        let mut recorder = w.recorder.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Ok(Answer::Replied) => recorder.ok(done, done - from),
            Ok(Answer::Deferred) => recorder.deferred(done, done - from),
            Err(kind) => recorder.error(done, &kind),
        }
    }
}

/// `nudge_user_actors_active` of a `/metrics` text.
fn actors_active(metrics: &str) -> Option<u64> {
    crate::edges::metrics::sample(metrics, "nudge_user_actors_active").map(|v| v as u64)
}

/// The group-commit writer's work between two `/metrics` texts read `wall` apart.
fn writer_use(before: Option<&str>, after: Option<&str>, wall: Duration) -> Option<WriterUse> {
    let read = |text: Option<&str>, name| text.and_then(|t| crate::edges::metrics::sample(t, name));
    // A counter's growth between the scrapes; `None` when the later one lacks it.
    let growth = |name| read(after, name).map(|a| a - read(before, name).unwrap_or(0.0));
    let batches = growth("nudge_store_writer_batches_total")?;
    let writes = growth("nudge_store_writer_writes_total")?;
    let busy = growth("nudge_store_writer_busy_microseconds_total").unwrap_or(0.0);
    let waited = growth("nudge_store_writer_queue_wait_microseconds_total").unwrap_or(0.0);
    let per = |total: f64, count: f64| if count > 0.0 { total / count } else { 0.0 };
    Some(WriterUse {
        batches: batches as u64,
        writes: writes as u64,
        writes_per_batch: per(writes, batches),
        largest_batch: read(after, "nudge_store_writer_largest_batch").unwrap_or(0.0) as u64,
        busy_fraction: busy / 1e6 / wall.as_secs_f64().max(1e-9),
        queue_wait_ms: per(waited, writes) / 1e3,
        batch_ms: per(busy, batches) / 1e3,
        batch_p99_within_ms: p99_within(COMMIT_SERIES, before, after).map(|s| s * 1e3),
        write_p99_within_ms: p99_within(WRITE_SERIES, before, after).map(|s| s * 1e3),
        thread_on_cpu: None,
        thread_waiting_for_cpu: None,
        log_restarts: growth("nudge_store_wal_restarts_total").unwrap_or(0.0) as u64,
        catch_up_checkpoints: growth("nudge_store_wal_catch_up_checkpoints_total").unwrap_or(0.0)
            as u64,
        catch_up_ms: growth("nudge_store_wal_catch_up_microseconds_total").unwrap_or(0.0) / 1e3,
    })
}

impl WriterUse {
    /// With the batch thread's shares of `wall` between two readings of it.
    fn with_thread(
        mut self,
        readings: Option<(procstat::ThreadTimes, procstat::ThreadTimes)>,
        wall: Duration,
    ) -> Self {
        if let Some((start, end)) = readings {
            let (on_cpu, waiting) = end.shares_since(&start, wall);
            self.thread_on_cpu = Some(on_cpu);
            self.thread_waiting_for_cpu = Some(waiting);
        }
        self
    }
}

/// The commit-time histogram's series in a `/metrics` text.
const COMMIT_SERIES: &str = "nudge_store_writer_commit_seconds";

/// The write-time histogram's series: from a write's hand-off to its batch's commit.
const WRITE_SERIES: &str = "nudge_store_writer_write_seconds";

/// The request-time histogram's series for webhook turns the server answered.
const TURN_SERIES: &str =
    r#"nudge_http_request_duration_seconds{method="POST",route="/sms/inbound",status="2xx""#;

/// The buckets of one histogram series in a `/metrics` text: (upper bound in seconds, count at
/// or under it), in the text's order (increasing). `series` is the histogram's name, then its
/// labels but `le` as the text writes them, without the closing brace: `name{a="x",b="y"`.
fn buckets(text: &str, series: &str) -> Vec<(f64, f64)> {
    let (name, labels) = series.split_once('{').unwrap_or((series, ""));
    let prefix = match labels {
        "" => format!("{name}_bucket{{le=\""),
        labels => format!("{name}_bucket{{{labels},le=\""),
    };
    text.lines()
        .filter_map(|line| {
            let (le, count) = line.strip_prefix(prefix.as_str())?.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect()
}

/// The smallest bucket bound of histogram `series` under which 99 % of what it counted between
/// the two scrapes falls; `None` when it counted nothing, when the later scrape lacks it, or
/// when only the open bucket holds the 99 %.
fn p99_within(series: &str, before: Option<&str>, after: Option<&str>) -> Option<f64> {
    let after = buckets(after?, series);
    let before = before.map(|t| buckets(t, series)).unwrap_or_default();
    let earlier = |le: f64| {
        before
            .iter()
            .find(|(b, _)| *b == le)
            .map_or(0.0, |(_, count)| *count)
    };
    let grown: Vec<(f64, f64)> = after.iter().map(|&(le, n)| (le, n - earlier(le))).collect();
    let total = grown.last().map(|&(_, n)| n).filter(|&n| n > 0.0)?;
    grown
        .iter()
        .find(|&&(_, n)| n >= 0.99 * total)
        .map(|&(le, _)| le)
        .filter(|le| le.is_finite())
}

/// The server's own time for the webhook turns it answered between two `/metrics` texts.
fn server_turns(before: Option<&str>, after: Option<&str>) -> Option<ServerTurns> {
    let read = |text: Option<&str>, suffix: &str| {
        let (name, labels) = TURN_SERIES.split_once('{')?;
        crate::edges::metrics::sample(text?, &format!("{name}{suffix}{{{labels}}}"))
    };
    let count = read(after, "_count")? - read(before, "_count").unwrap_or(0.0);
    let sum = read(after, "_sum").unwrap_or(0.0) - read(before, "_sum").unwrap_or(0.0);
    (count > 0.0).then(|| ServerTurns {
        turns: count as u64,
        mean_ms: sum / count * 1e3,
        p99_within_ms: p99_within(TURN_SERIES, before, after).map(|s| s * 1e3),
    })
}

/// The middle value (the mean of the two middle ones for an even count); `None` for none.
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Whether `phase` measured Nudge's closed-loop peak.
fn is_peak(phase: &PhaseReport) -> bool {
    phase.target == "nudge" && phase.mode == "closed"
}

/// Whether `phase` measured the bare baseline's closed-loop peak.
fn is_bare_peak(phase: &PhaseReport) -> bool {
    phase.target == "baseline" && phase.mode == "closed"
}

/// Whether `phase` measured the write baseline's closed-loop peak.
fn is_writes_peak(phase: &PhaseReport) -> bool {
    phase.target == writes::Commits::Grouped.target() && phase.mode == "closed"
}

/// Whether `phase` measured the per-request write baseline's closed-loop peak.
fn is_each_writes_peak(phase: &PhaseReport) -> bool {
    phase.target == writes::Commits::PerRequest.target() && phase.mode == "closed"
}

/// The database a server stores in, from its `/metrics` text.
fn backend_of(metrics: &str) -> Option<&'static str> {
    ["sqlite", "postgres"].into_iter().find(|backend| {
        let name = format!("nudge_store_backend_info{{backend=\"{backend}\"}}");
        crate::edges::metrics::sample(metrics, &name) == Some(1.0)
    })
}

/// How the run stands against the targets for full SMS turns on `backend`.
fn target_checks(summary: &Summary, backend: &str) -> Vec<TargetCheck> {
    let peak = summary
        .ratio_to_baseline
        .and_then(|ratio| TargetCheck::peak_ratio(backend, ratio));
    let half = summary
        .half_peak
        .map(|half| TargetCheck::half_peak_p99(half.p99_ms));
    peak.into_iter().chain(half).collect()
}

/// The median throughput of the phases `pick` takes.
fn median_throughput(phases: &[PhaseReport], pick: fn(&PhaseReport) -> bool) -> Option<f64> {
    median(&throughputs(phases, pick).collect::<Vec<_>>())
}

/// The throughputs of the phases `pick` takes, in the order they ran.
fn throughputs(
    phases: &[PhaseReport],
    pick: fn(&PhaseReport) -> bool,
) -> impl Iterator<Item = f64> + '_ {
    phases
        .iter()
        .filter(move |p| pick(p))
        .map(|p| p.throughput_rps)
}

/// The write baseline's figures, round by round: each with the bare baseline and Nudge's
/// peak of its round.
fn writes_summary(phases: &[PhaseReport], backend: &'static str) -> Option<WritesSummary> {
    let mut per_request = throughputs(phases, is_each_writes_peak);
    let rounds: Vec<WritesRound> = throughputs(phases, is_bare_peak)
        .zip(throughputs(phases, is_peak))
        .zip(throughputs(phases, is_writes_peak))
        .map(|((baseline_rps, nudge_peak_rps), writes_rps)| WritesRound {
            baseline_rps,
            writes_rps,
            nudge_peak_rps,
            per_request_rps: per_request.next(),
        })
        .filter(|r| r.baseline_rps > 0.0 && r.writes_rps > 0.0)
        .collect();
    let each = |ratio: fn(&WritesRound) -> Option<f64>| {
        median(&rounds.iter().filter_map(ratio).collect::<Vec<_>>())
    };
    let per_request = median_throughput(phases, is_each_writes_peak)
        .filter(|rps| *rps > 0.0)
        .map(|writes_rps| PerRequestWrites {
            writes_rps,
            ratio_to_baseline: each(|r| Some(r.per_request_rps? / r.baseline_rps)),
            nudge_ratio: each(|r| {
                let rps = r.per_request_rps.filter(|rps| *rps > 0.0)?;
                Some(r.nudge_peak_rps / rps)
            }),
        });
    Some(WritesSummary {
        backend,
        writes_rps: median_throughput(phases, is_writes_peak)?,
        ratio_to_baseline: each(|r| Some(r.writes_rps / r.baseline_rps)),
        nudge_ratio: each(|r| Some(r.nudge_peak_rps / r.writes_rps)),
        per_request,
        rounds,
    })
}

/// The headline figures of a run.
fn summarize(
    phases: &[PhaseReport],
    fractions: &[f64],
    swept: bool,
    first_turns: &FirstTurns,
    memory: Memory,
    writer: Option<WriterUse>,
    sockets: Option<sockets::SocketSummary>,
) -> Summary {
    // Round by round: each baseline with the closed-loop peak measured after it.
    let baselines = phases.iter().filter(|p| is_bare_peak(p));
    let peaks = phases.iter().filter(|p| is_peak(p));
    let rounds: Vec<RoundRatio> = baselines
        .zip(peaks)
        .filter(|(baseline, _)| baseline.throughput_rps > 0.0)
        .map(|(baseline, peak)| RoundRatio {
            baseline_rps: baseline.throughput_rps,
            nudge_peak_rps: peak.throughput_rps,
            ratio: peak.throughput_rps / baseline.throughput_rps,
        })
        .collect();
    let baseline_rps = median_throughput(phases, is_bare_peak);
    let nudge_peak_rps = median_throughput(phases, is_peak);
    let ratio_to_baseline = median(&rounds.iter().map(|r| r.ratio).collect::<Vec<_>>());
    // The sweep's phase at half the peak, of Nudge or of the bare baseline.
    let half = fractions.iter().position(|f| (*f - 0.5).abs() < 1e-9);
    let half_of = |target: &str| {
        let i = half.filter(|_| swept)?;
        phases
            .iter()
            .filter(|p| p.mode == "open" && p.target == target)
            .nth(i)
            .map(|p| HalfPeak {
                offered_rps: p.offered_rps.unwrap_or(0.0),
                throughput_rps: p.throughput_rps,
                p50_ms: p.latency.p50_ms,
                p99_ms: p.latency.p99_ms,
                commit_p99_within_ms: p.writer.and_then(|w| w.batch_p99_within_ms),
                write_p99_within_ms: p.writer.and_then(|w| w.write_p99_within_ms),
                server_p99_within_ms: p.server_turns.and_then(|t| t.p99_within_ms),
            })
    };
    Summary {
        baseline_rps,
        nudge_peak_rps,
        ratio_to_baseline,
        rounds,
        half_peak: half_of("nudge"),
        baseline_half_peak: half_of("baseline"),
        first_turns: first_turns.summary(),
        memory,
        writer,
        sockets,
        writes: None,
        backend: None,
        targets: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: LoadgenArgs,
    }

    fn parse(line: &[&str]) -> LoadgenArgs {
        let mut argv = vec!["loadgen"];
        argv.extend_from_slice(line);
        Cli::parse_from(argv).args
    }

    #[test]
    fn defaults_are_ten_thousand_users_and_a_half_peak_sweep() {
        let args = parse(&[]);
        assert_eq!(args.users, 10_000);
        assert_eq!(args.fractions().unwrap(), [0.5]);
        assert!(args.problem().is_none());
        assert!(parse(&["--sweep", "none"]).fractions().unwrap().is_empty());
        assert_eq!(
            parse(&["--sweep", "0.25, 0.5,0.9"]).fractions().unwrap(),
            [0.25, 0.5, 0.9]
        );
    }

    #[test]
    fn bad_options_are_named() {
        for (line, named) in [
            (vec!["--users", "0"], "--users"),
            (vec!["--users", "20000000"], "--users"),
            (vec!["--concurrency", "0"], "--concurrency"),
            (vec!["--duration", "0"], "--duration"),
            (vec!["--rate=-3"], "--rate"),
            (vec!["--rate", "0"], "--rate"),
            (vec!["--sweep", "half"], "--sweep"),
            (vec!["--sweep", "3"], "--sweep"),
            (vec!["--rounds", "0"], "--rounds"),
            (vec!["--rounds", "21"], "--rounds"),
        ] {
            let problem = parse(&line).problem().unwrap_or_default();
            assert!(problem.contains(named), "{line:?}: {problem:?}");
        }
    }

    #[test]
    fn each_user_is_first_seen_once() {
        let turns = FirstTurns::new(3);
        assert!(turns.first(1));
        assert!(!turns.first(1));
        assert!(turns.first(2));
        assert!(
            !turns.first(7),
            "users outside the population are never first"
        );
        turns.record(Duration::from_millis(3));
        assert_eq!(turns.summary().count, 1);
    }

    #[test]
    fn writer_use_is_the_difference_between_two_scrapes() {
        let before = "nudge_store_writer_batches_total 10\nnudge_store_writer_writes_total 100\n\
                      nudge_store_writer_busy_microseconds_total 1000000\n\
                      nudge_store_writer_queue_wait_microseconds_total 50000\n";
        let after = "nudge_store_writer_batches_total 30\nnudge_store_writer_writes_total 900\n\
                     nudge_store_writer_largest_batch 77\n\
                     nudge_store_writer_busy_microseconds_total 3000000\n\
                     nudge_store_writer_queue_wait_microseconds_total 1650000\n\
                     nudge_store_wal_restarts_total 6\n\
                     nudge_store_wal_catch_up_checkpoints_total 9\n\
                     nudge_store_wal_catch_up_microseconds_total 45000\n";
        let used = writer_use(Some(before), Some(after), Duration::from_secs(4)).unwrap();
        assert_eq!(
            (
                used.log_restarts,
                used.catch_up_checkpoints,
                used.catch_up_ms
            ),
            (6, 9, 45.0),
            "counters the first scrape lacks grew from nothing"
        );
        assert_eq!(
            (used.batches, used.writes, used.largest_batch),
            (20, 800, 77)
        );
        assert_eq!(used.writes_per_batch, 40.0);
        assert_eq!(used.busy_fraction, 0.5);
        // 1.6 s of waiting over 800 writes; 2 s of committing over 20 batches.
        assert_eq!(used.queue_wait_ms, 2.0);
        assert_eq!(used.batch_ms, 100.0);
        assert!(writer_use(Some(before), None, Duration::from_secs(1)).is_none());
        assert_eq!(
            (used.batch_p99_within_ms, used.write_p99_within_ms),
            (None, None),
            "no histograms in these scrapes"
        );
    }

    #[test]
    fn the_commit_tail_is_read_from_the_histogram_growth_between_two_scrapes() {
        let scrape = |counts: [u64; 4]| {
            let [a, b, c, all] = counts;
            format!(
                "# TYPE nudge_store_writer_commit_seconds histogram\n\
                 nudge_store_writer_commit_seconds_bucket{{le=\"0.001\"}} {a}\n\
                 nudge_store_writer_commit_seconds_bucket{{le=\"0.01\"}} {b}\n\
                 nudge_store_writer_commit_seconds_bucket{{le=\"0.1\"}} {c}\n\
                 nudge_store_writer_commit_seconds_bucket{{le=\"+Inf\"}} {all}\n\
                 nudge_store_writer_commit_seconds_count {all}\n"
            )
        };
        // Before the run: 1,000 commits, all fast. During it: 1,000 more, 20 of them between
        // 10 and 100 ms, so the 99th percentile is in the 100 ms bucket.
        let before = scrape([1_000, 1_000, 1_000, 1_000]);
        let after = scrape([1_500, 1_980, 2_000, 2_000]);
        assert_eq!(
            p99_within(COMMIT_SERIES, Some(&before), Some(&after)),
            Some(0.1)
        );
        // Within 10 ms when only 10 of the 1,000 were slower.
        let after = scrape([1_500, 1_990, 2_000, 2_000]);
        assert_eq!(
            p99_within(COMMIT_SERIES, Some(&before), Some(&after)),
            Some(0.01)
        );
        // No bound to give when the tail is in the open bucket, or nothing was committed.
        let after = scrape([1_500, 1_900, 1_950, 2_000]);
        assert_eq!(p99_within(COMMIT_SERIES, Some(&before), Some(&after)), None);
        assert_eq!(
            p99_within(COMMIT_SERIES, Some(&before), Some(&before)),
            None
        );
        assert_eq!(p99_within(COMMIT_SERIES, None, Some(&before)), Some(0.001));
    }

    #[test]
    fn the_server_s_turns_are_read_from_their_labelled_series_alone() {
        let scrape = |turns: [u64; 3], sum: f64, others: u64| {
            let [a, b, all] = turns;
            let series = |labels: &str, le: &str, n: u64| {
                format!("nudge_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {n}\n")
            };
            let turn = r#"method="POST",route="/sms/inbound",status="2xx""#;
            let refused = r#"method="POST",route="/sms/inbound",status="4xx""#;
            [
                series(turn, "0.005", a),
                series(turn, "0.02", b),
                series(turn, "+Inf", all),
                format!("nudge_http_request_duration_seconds_sum{{{turn}}} {sum}\n"),
                format!("nudge_http_request_duration_seconds_count{{{turn}}} {all}\n"),
                // Refused webhooks, slower than any turn: not turns, not counted.
                series(refused, "0.005", 0),
                series(refused, "0.02", 0),
                series(refused, "+Inf", others),
                format!("nudge_http_request_duration_seconds_count{{{refused}}} {others}\n"),
            ]
            .concat()
        };
        // During the phase: 2,000 turns over 8 s of the server's time, 15 of them (under 1 %)
        // between 5 and 20 ms, and 500 refused requests over 20 ms.
        let before = scrape([1_000, 1_000, 1_000], 2.0, 0);
        let after = scrape([2_985, 3_000, 3_000], 10.0, 500);
        let turns = server_turns(Some(&before), Some(&after)).unwrap();
        assert_eq!(turns.turns, 2_000);
        assert_eq!(turns.mean_ms, 4.0);
        assert_eq!(turns.p99_within_ms, Some(5.0));
        // Twenty-five of them in the 20 ms bucket: the 99 % reach it.
        let after = scrape([2_975, 3_000, 3_000], 10.0, 500);
        let turns = server_turns(Some(&before), Some(&after)).unwrap();
        assert_eq!(turns.p99_within_ms, Some(20.0));
        // No turns between the scrapes, or a server without the histogram: nothing to give.
        assert!(server_turns(Some(&before), Some(&before)).is_none());
        assert!(server_turns(Some(&before), Some("nudge_user_actors_active 3\n")).is_none());
    }

    /// The summary of `phases` swept at half the peak, with nothing else measured.
    fn half_peak_summary(phases: &[PhaseReport]) -> Summary {
        summarize(
            phases,
            &[0.5],
            true,
            &FirstTurns::new(1),
            Memory::default(),
            None,
            None,
        )
    }

    #[test]
    fn the_summary_takes_the_ratio_of_the_closed_loop_peak_to_the_baseline() {
        let report = report::tests::sample_report();
        let summary = half_peak_summary(&report.phases);
        assert_eq!(summary.ratio_to_baseline, Some(0.25));
        assert_eq!(summary.rounds.len(), 1);
        let half = summary.half_peak.unwrap();
        assert_eq!(half.p99_ms, 4.0);
        assert_eq!(half.offered_rps, 5_000.0);
        assert_eq!(
            half.commit_p99_within_ms,
            Some(5.0),
            "from the phase's writer"
        );
        assert_eq!(
            half.server_p99_within_ms,
            Some(10.0),
            "from the phase's turns"
        );
        // The bare baseline's open-loop phase is its half peak, not a round of its own.
        assert_eq!(summary.baseline_rps, Some(40_000.0));
        let bare = summary.baseline_half_peak.unwrap();
        assert_eq!((bare.offered_rps, bare.p99_ms), (20_000.0, 2.0));
        let text = report::text(&Report { summary, ..report });
        assert!(
            text.contains(
                "At half peak (5000 offered, 5000 served): p50 1.00 ms, p99 4.00 ms; by the \
                 server's clock, 99 % of its turns within 10 ms, of its writes within 20 ms, \
                 of its commits within 5 ms\n\
                 The bare baseline at half its peak (20000 offered, 20000 served): p50 0.50 ms, \
                 p99 2.00 ms"
            ),
            "{text}"
        );
    }

    #[test]
    fn rounds_pair_each_baseline_with_the_peak_after_it_and_take_the_median_ratio() {
        let sample = report::tests::sample_report();
        let (baseline, peak, half) = (&sample.phases[0], &sample.phases[1], &sample.phases[2]);
        let with = |phase: &PhaseReport, rps: f64| PhaseReport {
            throughput_rps: rps,
            ..phase.clone()
        };
        // The machine is fast in the second round, slow in the third: each peak is read
        // against its own baseline.
        let phases = [
            with(baseline, 40_000.0),
            with(peak, 8_000.0),
            with(baseline, 60_000.0),
            with(peak, 13_800.0),
            with(baseline, 30_000.0),
            with(peak, 6_300.0),
            half.clone(),
        ];
        let summary = half_peak_summary(&phases);
        let ratios: Vec<f64> = summary.rounds.iter().map(|r| r.ratio).collect();
        assert_eq!(ratios, [0.2, 0.23, 0.21]);
        assert_eq!(summary.ratio_to_baseline, Some(0.21), "the median ratio");
        assert_eq!(summary.baseline_rps, Some(40_000.0));
        assert_eq!(summary.nudge_peak_rps, Some(8_000.0));
        assert_eq!(summary.half_peak.map(|h| h.p99_ms), Some(4.0));

        let text = report::text(&Report {
            summary,
            phases: phases.to_vec(),
            ..sample
        });
        assert!(
            text.contains(
                "21.0 % of the bare baseline, the median of 3 rounds: 20.0 % (8000 of 40000), \
                 23.0 % (13800 of 60000), 21.0 % (6300 of 30000)"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_write_baseline_is_read_against_the_baseline_and_the_peak_of_its_round() {
        let sample = report::tests::sample_report();
        let (baseline, peak, half) = (&sample.phases[0], &sample.phases[1], &sample.phases[2]);
        let with = |phase: &PhaseReport, target: &str, rps: f64| PhaseReport {
            target: target.into(),
            throughput_rps: rps,
            ..phase.clone()
        };
        let writes = |rps| with(peak, "writes", rps);
        let per_request = |rps| with(peak, "writes-each", rps);
        let phases = [
            with(baseline, "baseline", 40_000.0),
            with(peak, "nudge", 8_000.0),
            writes(10_000.0),
            per_request(1_000.0),
            with(baseline, "baseline", 60_000.0),
            with(peak, "nudge", 13_800.0),
            writes(12_000.0),
            per_request(2_400.0),
            with(baseline, "baseline", 30_000.0),
            with(peak, "nudge", 6_300.0),
            writes(9_000.0),
            per_request(600.0),
            half.clone(),
        ];
        assert!(writes_summary(&phases[..2], "sqlite").is_none(), "none ran");
        let grouped_only: Vec<PhaseReport> = phases
            .iter()
            .filter(|p| !is_each_writes_peak(p))
            .cloned()
            .collect();
        let w = writes_summary(&grouped_only, "sqlite").unwrap();
        assert!(w.per_request.is_none());
        assert!(w.rounds.iter().all(|r| r.per_request_rps.is_none()));
        let w = writes_summary(&phases, "postgres").unwrap();
        assert_eq!(w.writes_rps, 10_000.0);
        let each: Vec<(f64, f64, f64)> = w
            .rounds
            .iter()
            .map(|r| (r.baseline_rps, r.nudge_peak_rps, r.writes_rps))
            .collect();
        assert_eq!(
            each,
            [
                (40_000.0, 8_000.0, 10_000.0),
                (60_000.0, 13_800.0, 12_000.0),
                (30_000.0, 6_300.0, 9_000.0)
            ]
        );
        // Writes over the bare baseline: 0.25, 0.2, 0.3; Nudge over writes: 0.8, 1.15, 0.7.
        assert_eq!(w.ratio_to_baseline, Some(0.25));
        assert_eq!(w.nudge_ratio, Some(0.8));
        // One transaction per request over the bare baseline: 0.025, 0.04, 0.02; Nudge over
        // it: 8, 5.75, 10.5.
        let each = w.per_request.unwrap();
        assert_eq!(each.writes_rps, 1_000.0);
        assert_eq!(each.ratio_to_baseline, Some(0.025));
        assert_eq!(each.nudge_ratio, Some(8.0));
        // The writes are no round of Nudge's.
        let summary = half_peak_summary(&phases);
        assert_eq!(summary.rounds.len(), 3);
        assert_eq!(summary.nudge_peak_rps, Some(8_000.0));

        let text = report::text(&Report {
            summary: Summary {
                writes: Some(w),
                ..summary
            },
            phases: phases.to_vec(),
            ..sample
        });
        assert!(
            text.contains(
                "Write baseline (postgres: two rows per request, group-committed): 10000 req/s \
                 = 25.0 % of the bare baseline (25.0 % (10000 of 40000), 20.0 % (12000 of \
                 60000), 30.0 % (9000 of 30000)); Nudge's peak is 80.0 % of it\n\
                 The same rows one transaction per request (postgres): 1000 req/s = 2.5 % of \
                 the bare baseline (2.5 % (1000 of 40000), 4.0 % (2400 of 60000), 2.0 % (600 \
                 of 30000)); Nudge's peak is 8.0× it\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_server_s_backend_is_read_from_its_metrics() {
        let text = "# HELP nudge_store_backend_info x\n# TYPE nudge_store_backend_info gauge\n\
                    nudge_store_backend_info{backend=\"postgres\"} 1\n";
        assert_eq!(backend_of(text), Some("postgres"));
        assert_eq!(backend_of("nudge_user_actors_active 3\n"), None);
        let summary = Summary {
            ratio_to_baseline: Some(0.1),
            ..Summary::default()
        };
        let checks = target_checks(&summary, "postgres");
        assert_eq!(checks.len(), 1, "no half peak measured: {checks:?}");
        assert_eq!((checks[0].bound, checks[0].met), (0.25, false));
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
