//! The actor system (ractor).
//!
//! ```text
//! Root
//! ├── UserSupervisor   restarts crashed UserActors (bounded intensity)
//! │   └── UserActor{id} one user's conversation; one turn at a time, in arrival order
//! ├── Directory        user id → actor; activation and passivation: opens and closes the
//! │                    actors' lanes (see [`lanes`]), forgets the number routes of the users
//! │                    it passivates (see [`routes`])
//! ├── Notifier         outbound SMS through Twilio's REST API
//! ├── ReminderSupervisor  restarts the scheduler
//! │   └── ReminderScheduler  due reminders: claim, send, mark (at-least-once, keyed)
//! └── LlmSupervisor    circuit breaker per model provider; restarts its workers
//!     └── LlmWorker{provider, n}  one model call at a time
//! ```
//!
//! [`ActorSystem`] is the handle the edges hold: cheap to clone, it sends a turn straight to
//! its user's actor when that actor is active (down its lane), else to the Directory, waits
//! for the outcome with a timeout, and survives a restart of the Directory.

pub mod digest;
pub mod directory;
pub mod lanes;
pub mod llm;
pub mod notifier;
pub mod reminders;
pub mod root;
pub mod routes;
pub mod user;
pub mod user_memory;
pub mod user_supervisor;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorRef, ActorStatus, MessagingErr, RpcReplyPort};

use crate::agent::{AgentError, TurnEngine};
use crate::llm::circuit::CircuitSnapshot;
use crate::store::{Store, StoreError, StoreWriter, UserId};
use directory::{DirectoryMsg, TurnReply};
use lanes::Lanes;
use llm::{LlmHandle, LlmSetup};
use notifier::NotifierMsg;
use root::{Root, RootArgs, RootMsg};
use routes::NumberRoutes;
use user::{InboundTurn, TurnOutcome};
use user_supervisor::RestartPolicy;

/// How long inspection calls wait for an answer.
const INSPECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The stop reason of a user actor passivated for silence (not a crash).
pub const PASSIVATED: &str = "passivated";

/// Why a turn did not produce an outcome.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The user's actor could not be reached (crashing repeatedly, or shutting down).
    #[error("the user's assistant is unavailable right now")]
    Unavailable,
    /// The actor died while running the turn.
    #[error("the turn was interrupted")]
    Interrupted,
    /// The caller's deadline passed.
    #[error("the turn did not finish in time")]
    Timeout,
}

/// What every user actor needs to run turns.
pub struct TurnDeps {
    pub store: Store,
    /// Commits turns' messages in batches with other users' (see [`StoreWriter`]).
    pub writer: StoreWriter,
    pub engine: Arc<dyn TurnEngine>,
    /// Silence after which a user actor is passivated.
    pub idle_passivate: Duration,
    /// Long-term memory: embeddings (when configured), extraction, the query budget.
    pub memory: crate::memory::MemoryServices,
    /// The user's open WebSockets: every stored message of a turn is pushed to them.
    pub live: crate::live::LiveHub,
}

/// Tuning of the tree.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemOptions {
    pub restart: RestartPolicy,
}

/// The refs of the long-lived actors, replaced by Root when it restarts one.
#[derive(Clone)]
pub struct CoreRefs {
    pub directory: ActorRef<DirectoryMsg>,
    pub notifier: ActorRef<NotifierMsg>,
}

/// A handle on the running actor tree.
#[derive(Clone)]
pub struct ActorSystem {
    root: ActorRef<RootMsg>,
    /// Filled by Root when it starts its children, updated when it restarts one.
    core: Arc<RwLock<Option<CoreRefs>>>,
    /// The model providers' handle, when the tree supervises any.
    llm: Option<LlmHandle>,
    /// Owners of the dedicated numbers of active users (see [`routes`]).
    routes: Arc<NumberRoutes>,
    /// The lanes of active user actors: turns go straight down them (see [`lanes`]).
    lanes: Arc<Lanes>,
}

impl ActorSystem {
    /// Starts the tree.
    pub async fn start(
        deps: TurnDeps,
        notifier: notifier::NotifierArgs,
        options: SystemOptions,
    ) -> anyhow::Result<Self> {
        Self::start_with_llm(deps, notifier, options, None).await
    }

    /// Starts the tree with an `LlmSupervisor` over `llm`'s providers, published into its
    /// handle (the one the engine in `deps` calls models through).
    pub async fn start_with_llm(
        deps: TurnDeps,
        notifier: notifier::NotifierArgs,
        options: SystemOptions,
        llm: Option<(LlmSetup, LlmHandle)>,
    ) -> anyhow::Result<Self> {
        let core = Arc::new(RwLock::new(None));
        let handle = llm.as_ref().map(|(_, handle)| handle.clone());
        let routes = Arc::new(NumberRoutes::default());
        let lanes = Arc::new(Lanes::default());
        let (root, _join) = ractor::Actor::spawn(
            None,
            Root,
            RootArgs {
                deps: Arc::new(deps),
                notifier,
                options,
                published: core.clone(),
                llm: llm.map(|(setup, handle)| (Arc::new(setup), handle)),
                routes: routes.clone(),
                lanes: lanes.clone(),
            },
        )
        .await?;
        Ok(Self {
            root,
            core,
            llm: handle,
            routes,
            lanes,
        })
    }

    /// Starts the `ReminderSupervisor` and its scheduler under Root (stopped with the tree).
    pub async fn start_reminders(&self, args: reminders::SchedulerArgs) -> anyhow::Result<()> {
        ractor::Actor::spawn_linked(
            None,
            reminders::ReminderSupervisor,
            args,
            self.root.get_cell(),
        )
        .await?;
        Ok(())
    }

    /// The state of every model provider's circuit (empty without models).
    pub async fn llm_circuits(&self) -> Vec<CircuitSnapshot> {
        match &self.llm {
            Some(handle) => handle.circuits().await,
            None => Vec::new(),
        }
    }

    /// Owners of the dedicated numbers of active users, which the SMS edge consults before
    /// the database (see [`routes`]).
    pub fn routes(&self) -> &NumberRoutes {
        &self.routes
    }

    fn refs(&self) -> Option<CoreRefs> {
        self.core.read().ok().and_then(|r| r.clone())
    }

    /// Runs one turn for a user and waits for its outcome, at most `timeout`.
    ///
    /// The turn goes straight to the user's actor when it is active (down its lane), else
    /// through the Directory, which activates it. If the actor dies during the turn, the turn
    /// is tried once more on the restarted actor (turns queued behind a crashing one are not
    /// lost); a second failure is reported.
    pub async fn turn(
        &self,
        user_id: UserId,
        turn: InboundTurn,
        timeout: Duration,
    ) -> Result<TurnOutcome, TurnError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let turn = Arc::new(turn);
        match self.attempt(user_id, turn.clone(), deadline).await {
            Some(outcome) => outcome,
            // The actor stopped without answering: once more, through the Directory if its
            // lane has closed meanwhile.
            None => self
                .attempt(user_id, turn, deadline)
                .await
                .unwrap_or(Err(TurnError::Interrupted)),
        }
    }

    /// Sends the turn and waits for its outcome until `deadline`; `None` when the actor
    /// stopped without answering.
    async fn attempt(
        &self,
        user_id: UserId,
        turn: Arc<InboundTurn>,
        deadline: tokio::time::Instant,
    ) -> Option<Result<TurnOutcome, TurnError>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Err(error) = self.send_turn(user_id, turn, RpcReplyPort::from(tx)) {
            return Some(Err(error));
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(outcome)) => Some(outcome),
            Ok(Err(_)) => None,
            Err(_) => Some(Err(TurnError::Timeout)),
        }
    }

    /// Sends a turn down the user's lane, or to the Directory when they have none open (or its
    /// actor has just stopped).
    fn send_turn(
        &self,
        user_id: UserId,
        turn: Arc<InboundTurn>,
        reply: TurnReply,
    ) -> Result<(), TurnError> {
        let (turn, reply) = match self.lanes.get(user_id) {
            Some(lane) if lane.gate().enter() => {
                match lane.actor().cast(user::UserMsg::Turn(turn, reply)) {
                    Ok(()) => return Ok(()),
                    Err(MessagingErr::SendErr(user::UserMsg::Turn(turn, reply))) => {
                        lane.gate().leave();
                        (turn, reply)
                    }
                    Err(_) => {
                        lane.gate().leave();
                        return Err(TurnError::Unavailable);
                    }
                }
            }
            _ => (turn, reply),
        };
        let directory = self.refs().ok_or(TurnError::Unavailable)?.directory;
        directory
            .cast(DirectoryMsg::Turn {
                user_id,
                turn,
                reply,
            })
            .map_err(|_| TurnError::Unavailable)
    }

    /// Activates the user's actor if it is passivated and loads its state, so that the next
    /// turn finds it ready (a web client connecting; benchmarks of activation).
    pub async fn warm(&self, user_id: UserId, timeout: Duration) -> Result<(), TurnError> {
        let directory = self.refs().ok_or(TurnError::Unavailable)?.directory;
        let actor = match directory
            .call(
                |reply| DirectoryMsg::Activate { user_id, reply },
                Some(timeout),
            )
            .await
        {
            Ok(CallResult::Success(actor)) => actor?,
            Ok(CallResult::Timeout) => return Err(TurnError::Timeout),
            _ => return Err(TurnError::Unavailable),
        };
        match actor.call(user::UserMsg::Load, Some(timeout)).await {
            Ok(CallResult::Success(loaded)) => loaded,
            Ok(CallResult::Timeout) => Err(TurnError::Timeout),
            _ => Err(TurnError::Interrupted),
        }
    }

    /// Passivates the user's actor now, as its idle timer would: unless a turn is on its way
    /// to it. Returns false when the user had no active actor.
    pub async fn passivate(&self, user_id: UserId) -> bool {
        let Some(snapshot) = self.inspect(user_id).await else {
            return false;
        };
        let Some(refs) = self.refs() else {
            return false;
        };
        refs.directory
            .cast(DirectoryMsg::Idle {
                user_id,
                handled: snapshot.turns_handled,
            })
            .is_ok()
    }

    /// Asks the notifier to send an SMS (fire and forget; it retries and logs on its own);
    /// `message_id` is the stored reply it carries, if it is one.
    pub fn send_sms(&self, user_id: UserId, body: String, message_id: Option<i64>) {
        if let Some(refs) = self.refs() {
            let _ = refs.notifier.cast(NotifierMsg::SendSms {
                user_id,
                body,
                message_id,
            });
        }
    }

    /// Asks the notifier to send a verification code by SMS (fire and forget).
    pub fn send_code(&self, to: String, from: String, body: String) {
        if let Some(refs) = self.refs() {
            let _ = refs.notifier.cast(NotifierMsg::SendCode { to, from, body });
        }
    }

    /// Stops the user's actor, if active, and waits until the Directory has let it go.
    pub async fn stop_user(&self, user_id: UserId) {
        let Some(refs) = self.refs() else {
            return;
        };
        let _ = refs
            .directory
            .call(|r| DirectoryMsg::Stop(user_id, r), Some(INSPECT_TIMEOUT))
            .await;
    }

    /// The user's actor, if it is active right now.
    pub async fn lookup(&self, user_id: UserId) -> Option<ActorRef<user::UserMsg>> {
        let refs = self.refs()?;
        match refs
            .directory
            .call(|r| DirectoryMsg::Lookup(user_id, r), Some(INSPECT_TIMEOUT))
            .await
        {
            Ok(CallResult::Success(actor)) => actor,
            _ => None,
        }
    }

    /// What the user's actor holds, if it is active (it answers between turns).
    pub async fn inspect(&self, user_id: UserId) -> Option<user::UserSnapshot> {
        let actor = self.lookup(user_id).await?;
        match actor
            .call(user::UserMsg::Inspect, Some(INSPECT_TIMEOUT))
            .await
        {
            Ok(CallResult::Success(snapshot)) => Some(snapshot),
            _ => None,
        }
    }

    /// How many user actors are active.
    pub async fn active_users(&self) -> usize {
        let Some(refs) = self.refs() else {
            return 0;
        };
        match refs
            .directory
            .call(DirectoryMsg::ActiveCount, Some(INSPECT_TIMEOUT))
            .await
        {
            Ok(CallResult::Success(n)) => n,
            _ => 0,
        }
    }

    /// True while the tree is up: root and its children running.
    pub fn is_running(&self) -> bool {
        self.root.get_status() == ActorStatus::Running
            && self
                .refs()
                .is_some_and(|r| r.directory.get_status() == ActorStatus::Running)
    }

    /// Stops the tree. Call it after the edges stopped taking work and their turns finished.
    pub async fn shutdown(&self, grace: Duration) {
        if let Err(error) = self
            .root
            .stop_and_wait(Some("shutdown".into()), Some(grace))
            .await
        {
            tracing::warn!(%error, "actor tree did not stop in time");
        }
    }
}
