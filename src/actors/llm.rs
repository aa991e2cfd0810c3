//! `LlmSupervisor` and its `LlmWorker` pools: the language-model providers under circuit
//! breakers.
//!
//! ```text
//! LlmSupervisor        one circuit breaker per provider; restarts crashed workers
//! ├── LlmWorker{gemini, 0..n}     each runs one provider call at a time (a bulkhead)
//! └── LlmWorker{fallback, 0..n}
//! ```
//!
//! A model call from a turn goes through an [`LlmHandle`] (which the planner holds as its
//! [`LanguageModel`]): for each provider in order (Gemini, then the OpenAI-compatible
//! fallback) it asks the supervisor to admit the call. An open circuit answers at once
//! ("fail fast") and the handle moves on to the next provider; otherwise the supervisor names
//! the least busy worker, the call runs there, and its outcome goes back to the supervisor,
//! which feeds the breaker. Retryable failures (429, 5xx, timeouts, transport) are retried
//! with exponential backoff and jitter, or after the provider's `Retry-After`, while the
//! turn's deadline allows; then the next provider is tried. When none answers the planner
//! falls back to the offline rules.
//!
//! The breakers read time from a [`Clock`], so tests drive them with a manual one. Their
//! state is readable through [`LlmSupervisorMsg::Circuits`] (admin inspection, metrics).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use ractor_cluster::RactorMessage;
use tokio::time::Instant;

use crate::agent::{LanguageModel, ModelUnavailable};
use crate::llm::circuit::{
    Admission, CircuitBreaker, CircuitPolicy, CircuitSnapshot, Clock, Outcome, SystemClock,
};
use crate::llm::retry::RetryPolicy;
use crate::llm::{ChatRequest, Generation, LlmError, Provider};

/// How long the handle waits for the supervisor to admit a call.
const ADMIT_TIMEOUT: Duration = Duration::from_secs(2);
/// Worker crashes tolerated per provider within [`RESTART_WINDOW`] before the pool slot is
/// left empty (the provider's other workers go on; the circuit sees the failures).
const MAX_RESTARTS: usize = 10;
const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// What the LLM part of the tree is built from.
pub struct LlmSetup {
    /// The providers, in the order they are tried.
    pub providers: Vec<Arc<dyn Provider>>,
    pub circuit: CircuitPolicy,
    pub retry: RetryPolicy,
    /// Workers per provider: calls to one provider in flight at once.
    pub workers: usize,
    /// Where the breakers read time.
    pub clock: Arc<dyn Clock>,
}

impl LlmSetup {
    /// Default policies, the system clock and 8 workers per provider.
    pub fn new(providers: Vec<Arc<dyn Provider>>) -> Self {
        Self {
            providers,
            circuit: CircuitPolicy::default(),
            retry: RetryPolicy::default(),
            workers: 8,
            clock: Arc::new(SystemClock),
        }
    }
}

/// Messages of the [`LlmSupervisor`].
#[derive(RactorMessage)]
pub enum LlmSupervisorMsg {
    /// May a call to provider `provider` go now? The worker to use, or how long the circuit
    /// stays open.
    Admit {
        provider: usize,
        reply: RpcReplyPort<Result<Admitted, Duration>>,
    },
    /// The outcome of an admitted call.
    Record {
        provider: usize,
        worker: usize,
        outcome: Outcome,
    },
    /// Every circuit's state.
    Circuits(RpcReplyPort<Vec<CircuitSnapshot>>),
}

/// An admitted call: where to run it.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub worker: usize,
    pub actor: ActorRef<LlmWorkerMsg>,
    /// True when the call is a half-open probe.
    pub probe: bool,
}

/// Messages of an [`LlmWorker`].
#[derive(RactorMessage)]
pub enum LlmWorkerMsg {
    /// Run one call; skipped with `DeadlineExceeded` when the deadline passed in the queue.
    Generate {
        request: Arc<ChatRequest>,
        deadline: Instant,
        reply: RpcReplyPort<Result<Generation, LlmError>>,
    },
}

/// One worker: runs its provider's calls one at a time.
pub struct LlmWorker;

/// A worker's provider.
pub struct LlmWorkerState {
    provider: Arc<dyn Provider>,
}

impl Actor for LlmWorker {
    type Msg = LlmWorkerMsg;
    type State = LlmWorkerState;
    type Arguments = Arc<dyn Provider>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        provider: Arc<dyn Provider>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(LlmWorkerState { provider })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            LlmWorkerMsg::Generate {
                request,
                deadline,
                reply,
            } => {
                let remaining = deadline.saturating_duration_since(Instant::now());
                let result = if remaining.is_zero() || reply.is_closed() {
                    Err(LlmError::DeadlineExceeded)
                } else {
                    state.provider.generate(&request, remaining).await
                };
                let _ = reply.send(result);
            }
        }
        Ok(())
    }
}

/// The supervisor; its data lives in [`LlmSupervisorState`].
pub struct LlmSupervisor;

/// Start-up arguments.
pub struct LlmSupervisorArgs {
    pub setup: Arc<LlmSetup>,
}

/// One provider's circuit and workers.
struct Pool {
    provider: Arc<dyn Provider>,
    breaker: CircuitBreaker,
    workers: Vec<Option<ActorRef<LlmWorkerMsg>>>,
    /// Calls admitted and not yet recorded, per worker.
    in_flight: Vec<usize>,
    /// Recent crash times, for the restart limit.
    crashes: Vec<std::time::Instant>,
}

pub struct LlmSupervisorState {
    pools: Vec<Pool>,
    /// Worker actor → (provider, slot).
    by_actor: HashMap<ActorId, (usize, usize)>,
    clock: Arc<dyn Clock>,
}

impl Actor for LlmSupervisor {
    type Msg = LlmSupervisorMsg;
    type State = LlmSupervisorState;
    type Arguments = LlmSupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: LlmSupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let setup = args.setup;
        let mut state = LlmSupervisorState {
            pools: Vec::with_capacity(setup.providers.len()),
            by_actor: HashMap::new(),
            clock: setup.clock.clone(),
        };
        let workers = setup.workers.max(1);
        for (index, provider) in setup.providers.iter().enumerate() {
            state.pools.push(Pool {
                provider: provider.clone(),
                breaker: CircuitBreaker::new(setup.circuit),
                workers: vec![None; workers],
                in_flight: vec![0; workers],
                crashes: Vec::new(),
            });
            for slot in 0..workers {
                spawn_worker(&myself, &mut state, index, slot).await?;
            }
        }
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            LlmSupervisorMsg::Admit { provider, reply } => {
                let _ = reply.send(admit(state, provider));
            }
            LlmSupervisorMsg::Record {
                provider,
                worker,
                outcome,
            } => record(state, provider, worker, outcome),
            LlmSupervisorMsg::Circuits(reply) => {
                let now = state.clock.now();
                let snapshots = state
                    .pools
                    .iter()
                    .map(|p| p.breaker.snapshot(p.provider.name(), now))
                    .collect();
                let _ = reply.send(snapshots);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Never the default (which stops the supervisor when any child exits).
        if let SupervisionEvent::ActorFailed(cell, error) = &event
            && let Some((provider, slot)) = state.by_actor.remove(&cell.get_id())
        {
            let pool = &mut state.pools[provider];
            pool.workers[slot] = None;
            pool.in_flight[slot] = 0;
            let now = std::time::Instant::now();
            pool.crashes
                .retain(|at| now.saturating_duration_since(*at) < RESTART_WINDOW);
            pool.crashes.push(now);
            let name = pool.provider.name().to_owned();
            if pool.crashes.len() > MAX_RESTARTS {
                tracing::error!(provider = %name, %error, "model worker keeps crashing; slot left empty");
            } else {
                tracing::error!(provider = %name, %error, "model worker crashed; restarting it");
                spawn_worker(&myself, state, provider, slot).await?;
            }
        } else if let SupervisionEvent::ActorTerminated(cell, ..) = &event {
            state.by_actor.remove(&cell.get_id());
        }
        Ok(())
    }
}

async fn spawn_worker(
    myself: &ActorRef<LlmSupervisorMsg>,
    state: &mut LlmSupervisorState,
    provider: usize,
    slot: usize,
) -> Result<(), ActorProcessingErr> {
    let pool = &mut state.pools[provider];
    let (worker, _) =
        Actor::spawn_linked(None, LlmWorker, pool.provider.clone(), myself.get_cell()).await?;
    state.by_actor.insert(worker.get_id(), (provider, slot));
    pool.workers[slot] = Some(worker);
    Ok(())
}

/// Asks the provider's breaker; on admission picks the least busy worker.
fn admit(state: &mut LlmSupervisorState, provider: usize) -> Result<Admitted, Duration> {
    let now = state.clock.now();
    let Some(pool) = state.pools.get_mut(provider) else {
        return Err(Duration::MAX);
    };
    let probe = match pool.breaker.admit(now) {
        Admission::Call => false,
        Admission::Probe => true,
        Admission::Rejected { retry_in } => return Err(retry_in),
    };
    let chosen = pool
        .workers
        .iter()
        .enumerate()
        .filter_map(|(i, w)| w.as_ref().map(|w| (i, w)))
        .min_by_key(|(i, _)| pool.in_flight[*i]);
    match chosen {
        Some((worker, actor)) => {
            let actor = actor.clone();
            pool.in_flight[worker] += 1;
            Ok(Admitted {
                worker,
                actor,
                probe,
            })
        }
        None => {
            // No worker left: the admission counts as a failed call.
            pool.breaker.record(now, Outcome::Failure);
            Err(Duration::ZERO)
        }
    }
}

fn record(state: &mut LlmSupervisorState, provider: usize, worker: usize, outcome: Outcome) {
    let now = state.clock.now();
    if let Some(pool) = state.pools.get_mut(provider) {
        if let Some(n) = pool.in_flight.get_mut(worker) {
            *n = n.saturating_sub(1);
        }
        let before = pool.breaker.state(now);
        pool.breaker.record(now, outcome);
        let after = pool.breaker.state(now);
        if before != after {
            tracing::warn!(provider = %pool.provider.name(), from = ?before, to = ?after, "circuit changed state");
        }
    }
}

/// The handle a planner calls models through. Cheap to clone; survives a restart of the
/// supervisor (Root publishes the new ref into it).
#[derive(Clone)]
pub struct LlmHandle {
    supervisor: Arc<RwLock<Option<ActorRef<LlmSupervisorMsg>>>>,
    /// Provider names, in chain order.
    names: Arc<Vec<String>>,
    retry: RetryPolicy,
}

impl LlmHandle {
    /// A handle for `setup`'s providers, not yet attached to a running supervisor.
    pub fn new(setup: &LlmSetup) -> Self {
        Self {
            supervisor: Arc::new(RwLock::new(None)),
            names: Arc::new(
                setup
                    .providers
                    .iter()
                    .map(|p| p.name().to_owned())
                    .collect(),
            ),
            retry: setup.retry,
        }
    }

    /// Points the handle at a (re)started supervisor, or at none.
    pub(crate) fn publish(&self, supervisor: Option<ActorRef<LlmSupervisorMsg>>) {
        if let Ok(mut slot) = self.supervisor.write() {
            *slot = supervisor;
        }
    }

    fn current(&self) -> Option<ActorRef<LlmSupervisorMsg>> {
        self.supervisor.read().ok().and_then(|s| s.clone())
    }

    /// Every circuit's state, or nothing when the supervisor is down.
    pub async fn circuits(&self) -> Vec<CircuitSnapshot> {
        let Some(supervisor) = self.current() else {
            return Vec::new();
        };
        match supervisor
            .call(LlmSupervisorMsg::Circuits, Some(ADMIT_TIMEOUT))
            .await
        {
            Ok(CallResult::Success(snapshots)) => snapshots,
            _ => Vec::new(),
        }
    }

    /// One provider's attempts (with retries) for a request.
    async fn try_provider(
        &self,
        index: usize,
        request: &Arc<ChatRequest>,
        deadline: Instant,
    ) -> Result<Generation, String> {
        let name = &self.names[index];
        let mut attempt = 1;
        loop {
            if Instant::now() >= deadline {
                return Err(format!("{name}: deadline passed"));
            }
            let supervisor = self
                .current()
                .ok_or_else(|| format!("{name}: model supervisor down"))?;
            let admitted = match supervisor
                .call(
                    |reply| LlmSupervisorMsg::Admit {
                        provider: index,
                        reply,
                    },
                    Some(ADMIT_TIMEOUT),
                )
                .await
            {
                Ok(CallResult::Success(Ok(admitted))) => admitted,
                Ok(CallResult::Success(Err(_))) => return Err(format!("{name}: circuit open")),
                _ => return Err(format!("{name}: model supervisor unavailable")),
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let sent = request.clone();
            let result = match admitted
                .actor
                .call(
                    |reply| LlmWorkerMsg::Generate {
                        request: sent,
                        deadline,
                        reply,
                    },
                    Some(remaining),
                )
                .await
            {
                Ok(CallResult::Success(result)) => result,
                Ok(CallResult::Timeout) => Err(LlmError::Timeout),
                Ok(CallResult::SenderError) | Err(_) => Err(LlmError::WorkerLost),
            };
            let outcome = match &result {
                Ok(_) => Outcome::Success,
                Err(e) if e.counts_against_circuit() => Outcome::Failure,
                Err(_) => Outcome::Neutral,
            };
            let _ = supervisor.cast(LlmSupervisorMsg::Record {
                provider: index,
                worker: admitted.worker,
                outcome,
            });
            let error = match result {
                Ok(generation) => return Ok(generation),
                Err(error) => error,
            };
            tracing::warn!(provider = %name, attempt, probe = admitted.probe, %error, "model call failed");
            if !error.is_retryable() || admitted.probe {
                return Err(format!("{name}: {error}"));
            }
            let unit: f64 = rand::random();
            match self.retry.delay(attempt + 1, error.retry_after(), unit) {
                Some(wait) if Instant::now() + wait < deadline => {
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => return Err(format!("{name}: {error}")),
            }
        }
    }
}

#[async_trait]
impl LanguageModel for LlmHandle {
    async fn generate(
        &self,
        request: &ChatRequest,
        deadline: Instant,
    ) -> Result<Generation, ModelUnavailable> {
        let request = Arc::new(request.clone());
        let mut reasons = Vec::with_capacity(self.names.len());
        for index in 0..self.names.len() {
            match self.try_provider(index, &request, deadline).await {
                Ok(generation) => return Ok(generation),
                Err(reason) => reasons.push(reason),
            }
        }
        if reasons.is_empty() {
            reasons.push("no provider configured".into());
        }
        Err(ModelUnavailable(reasons.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::circuit::ManualClock;
    use crate::llm::{Finish, Item, ModelTurn, Usage};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Panics on its first call, fails with a 500 while `failing`, answers otherwise.
    struct Flaky {
        calls: AtomicUsize,
        panic_first: bool,
        failing: bool,
    }

    #[async_trait]
    impl Provider for Flaky {
        fn name(&self) -> &str {
            "flaky"
        }
        fn model(&self) -> &str {
            "m"
        }
        async fn generate(
            &self,
            _request: &ChatRequest,
            _timeout: Duration,
        ) -> Result<Generation, LlmError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if self.panic_first && n == 0 {
                panic!("injected provider bug");
            }
            if self.failing {
                return Err(LlmError::Server {
                    status: 500,
                    retry_after: None,
                });
            }
            Ok(Generation {
                turn: ModelTurn {
                    text: Some("ok".into()),
                    calls: vec![],
                    raw: None,
                },
                usage: Usage::default(),
                finish: Finish::Stop,
                provider: "flaky".into(),
                model: "m".into(),
            })
        }
    }

    fn flaky(panic_first: bool, failing: bool) -> Arc<Flaky> {
        Arc::new(Flaky {
            calls: AtomicUsize::new(0),
            panic_first,
            failing,
        })
    }

    fn request() -> ChatRequest {
        ChatRequest {
            system: "s".into(),
            items: vec![Item::User("hi".into())],
            functions: Default::default(),
            allow_calls: true,
            max_output_tokens: 10,
        }
    }

    async fn start(
        provider: Arc<Flaky>,
        circuit: CircuitPolicy,
    ) -> (LlmHandle, ActorRef<LlmSupervisorMsg>) {
        let setup = LlmSetup {
            providers: vec![provider],
            circuit,
            retry: RetryPolicy {
                max_attempts: 3,
                base: Duration::from_millis(5),
                max_delay: Duration::from_secs(1),
            },
            workers: 1,
            clock: Arc::new(ManualClock::new()),
        };
        let handle = LlmHandle::new(&setup);
        let (supervisor, _) = Actor::spawn(
            None,
            LlmSupervisor,
            LlmSupervisorArgs {
                setup: Arc::new(setup),
            },
        )
        .await
        .unwrap();
        handle.publish(Some(supervisor.clone()));
        (handle, supervisor)
    }

    #[tokio::test]
    async fn a_crashed_worker_is_restarted_and_the_call_retried_on_it() {
        let provider = flaky(true, false);
        let (handle, supervisor) = start(provider.clone(), CircuitPolicy::default()).await;
        let generation = handle
            .generate(&request(), Instant::now() + Duration::from_secs(5))
            .await
            .expect("the retry on the restarted worker answers");
        assert_eq!(generation.turn.text.as_deref(), Some("ok"));
        assert_eq!(provider.calls.load(Ordering::SeqCst), 2);
        let circuit = &handle.circuits().await[0];
        assert_eq!(
            (circuit.calls_in_window, circuit.failures_in_window),
            (2, 1)
        );
        supervisor.stop(None);
    }

    #[tokio::test]
    async fn an_open_circuit_fails_fast_without_calling_the_provider() {
        let provider = flaky(false, true);
        let circuit = CircuitPolicy {
            min_calls: 3,
            ..CircuitPolicy::default()
        };
        let (handle, supervisor) = start(provider.clone(), circuit).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        let first = handle.generate(&request(), deadline).await.unwrap_err();
        assert!(first.0.contains("server error 500"), "{first}");
        assert_eq!(provider.calls.load(Ordering::SeqCst), 3, "three attempts");
        let second = handle.generate(&request(), deadline).await.unwrap_err();
        assert!(second.0.contains("circuit open"), "{second}");
        assert_eq!(
            provider.calls.load(Ordering::SeqCst),
            3,
            "not called while open"
        );
        assert_eq!(
            handle.circuits().await[0].state,
            crate::llm::circuit::CircuitState::Open
        );
        supervisor.stop(None);
    }

    #[tokio::test]
    async fn a_deadline_already_passed_makes_no_call() {
        let provider = flaky(false, false);
        let (handle, supervisor) = start(provider.clone(), CircuitPolicy::default()).await;
        let error = handle
            .generate(&request(), Instant::now())
            .await
            .unwrap_err();
        assert!(error.0.contains("deadline"), "{error}");
        assert_eq!(provider.calls.load(Ordering::SeqCst), 0);
        supervisor.stop(None);
    }
}
