//! `Directory`: user id → the user's actor. It activates a [`UserActor`](super::user) on a
//! user's first message (through the [`UserSupervisor`](super::user_supervisor)), opens the
//! actor's [`Lane`] (turns of an active user go straight down it, see [`lanes`](super::lanes)),
//! routes the turns of users who have none, and passivates an actor when it reports silence.
//!
//! Passivation is race-free because every turn is counted on the actor's lane before it is
//! sent, wherever it comes from: the Directory closes the lane and stops an idle actor only
//! when the actor has handled exactly the turns counted, so no turn can sit in a mailbox that
//! is about to close.
//!
//! While a crashed actor is being replaced, its lane is closed, and turns for that user wait
//! here and are forwarded to the replacement in arrival order.

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort};
use ractor_cluster::RactorMessage;

use super::TurnError;
use super::lanes::{Lane, Lanes};
use super::routes::NumberRoutes;
use super::user::{InboundTurn, TurnOutcome, UserMsg};
use super::user_supervisor::UserSupervisorMsg;
use crate::store::UserId;

/// The reply port of one turn.
pub type TurnReply = RpcReplyPort<Result<TurnOutcome, TurnError>>;

/// Messages of the [`Directory`].
#[derive(RactorMessage)]
pub enum DirectoryMsg {
    /// Route a turn to the user's actor, activating it if needed (a turn whose user has an
    /// open lane goes down it instead).
    Turn {
        user_id: UserId,
        turn: Arc<InboundTurn>,
        reply: TurnReply,
    },
    /// The user's actor, activated if needed (to load its state ahead of a turn).
    Activate {
        user_id: UserId,
        reply: RpcReplyPort<Result<ActorRef<UserMsg>, TurnError>>,
    },
    /// A user actor has been silent for the passivation time, having handled `handled` turns.
    Idle { user_id: UserId, handled: u64 },
    /// The supervisor replaced (or, with `None`, gave up on) the actor `old` of a user.
    Replaced {
        user_id: UserId,
        old: ActorId,
        new: Option<ActorRef<UserMsg>>,
    },
    /// The actor of a user stopped on its own (not through passivation).
    Gone { user_id: UserId, actor: ActorId },
    /// The user's actor, if active (inspection; the caller then talks to it directly).
    Lookup(UserId, RpcReplyPort<Option<ActorRef<UserMsg>>>),
    /// How many user actors are active.
    ActiveCount(RpcReplyPort<usize>),
    /// Stop the user's actor now (their account is being erased): turns waiting for it are
    /// answered "unavailable", and its in-memory state (recent turns, caches) is dropped.
    Stop(UserId, RpcReplyPort<()>),
}

/// Start-up arguments.
pub struct DirectoryArgs {
    pub supervisor: ActorRef<UserSupervisorMsg>,
    /// Number routes to forget as users stop being active.
    pub routes: Arc<NumberRoutes>,
    /// The lanes of active actors, opened and closed here; a restarted Directory adopts the
    /// ones it finds open.
    pub lanes: Arc<Lanes>,
}

/// The actor; its data lives in [`DirectoryState`].
pub struct Directory;

/// One active user.
struct Entry {
    /// The lane to the current actor (which counts the turns sent to it since it started);
    /// `None` while the supervisor is replacing a crashed actor.
    lane: Option<Arc<Lane>>,
    /// Turns waiting for a replacement actor, in arrival order.
    pending: Vec<(Arc<InboundTurn>, TurnReply)>,
}

impl Entry {
    fn active(lane: Arc<Lane>) -> Self {
        Self {
            lane: Some(lane),
            pending: Vec::new(),
        }
    }

    fn actor(&self) -> Option<&ActorRef<UserMsg>> {
        self.lane.as_ref().map(|lane| lane.actor())
    }
}

pub struct DirectoryState {
    supervisor: ActorRef<UserSupervisorMsg>,
    users: HashMap<UserId, Entry>,
    routes: Arc<NumberRoutes>,
    lanes: Arc<Lanes>,
}

impl Actor for Directory {
    type Msg = DirectoryMsg;
    type State = DirectoryState;
    type Arguments = DirectoryArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: DirectoryArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        // The supervisor reports replacements here; a restarted Directory re-attaches.
        args.supervisor
            .cast(UserSupervisorMsg::Attach(myself))
            .map_err(|_| "user supervisor is not running")?;
        // Lanes opened by a Directory before a restart: their actors are still running.
        let users = args
            .lanes
            .all()
            .into_iter()
            .map(|(user_id, lane)| (user_id, Entry::active(lane)))
            .collect();
        Ok(DirectoryState {
            supervisor: args.supervisor,
            users,
            routes: args.routes,
            lanes: args.lanes,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            DirectoryMsg::Turn {
                user_id,
                turn,
                reply,
            } => route(state, user_id, turn, reply).await,
            DirectoryMsg::Activate { user_id, reply } => {
                let actor = match ensure_entry(state, user_id).await {
                    Ok(entry) => entry.actor().cloned().ok_or(TurnError::Unavailable),
                    Err(error) => Err(error),
                };
                let _ = reply.send(actor);
            }
            DirectoryMsg::Idle { user_id, handled } => passivate(state, user_id, handled),
            DirectoryMsg::Replaced { user_id, old, new } => replaced(state, user_id, old, new),
            DirectoryMsg::Gone { user_id, actor } => {
                if current_id(state, user_id) == Some(actor) {
                    remove(state, user_id);
                }
            }
            DirectoryMsg::Lookup(user_id, reply) => {
                let actor = state.users.get(&user_id).and_then(|e| e.actor().cloned());
                let _ = reply.send(actor);
            }
            DirectoryMsg::ActiveCount(reply) => {
                let _ = reply.send(state.users.len());
            }
            DirectoryMsg::Stop(user_id, reply) => {
                stop(state, user_id);
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

fn current_id(state: &DirectoryState, user_id: UserId) -> Option<ActorId> {
    state
        .users
        .get(&user_id)
        .and_then(Entry::actor)
        .map(|a| a.get_id())
}

/// Forgets the user: their entry, lane and number route. Returns the entry.
fn remove(state: &mut DirectoryState, user_id: UserId) -> Option<Entry> {
    state.routes.forget(user_id);
    let entry = state.users.remove(&user_id)?;
    if let Some(lane) = &entry.lane {
        state.lanes.remove(user_id, lane);
    }
    Some(entry)
}

/// The entry of a user, activating their actor if they have none.
async fn ensure_entry(
    state: &mut DirectoryState,
    user_id: UserId,
) -> Result<&mut Entry, TurnError> {
    if !state.users.contains_key(&user_id) {
        let actor = match activate(&state.supervisor, user_id).await {
            Ok(actor) => actor,
            Err(error) => {
                state.routes.forget(user_id);
                return Err(error);
            }
        };
        let lane = state.lanes.open(user_id, actor, 0);
        state.users.insert(user_id, Entry::active(lane));
    }
    state.users.get_mut(&user_id).ok_or(TurnError::Unavailable)
}

async fn route(
    state: &mut DirectoryState,
    user_id: UserId,
    turn: Arc<InboundTurn>,
    reply: TurnReply,
) {
    let lanes = state.lanes.clone();
    let entry = match ensure_entry(state, user_id).await {
        Ok(entry) => entry,
        Err(error) => {
            let _ = reply.send(Err(error));
            return;
        }
    };
    let Some(lane) = entry.lane.clone() else {
        entry.pending.push((turn, reply));
        return;
    };
    // Only this actor closes lanes, and it removes a closed one's entry at once.
    lane.gate().enter();
    match lane.actor().cast(UserMsg::Turn(turn, reply)) {
        Ok(()) => {}
        // The actor died and its replacement is not announced yet: hold the turn.
        Err(MessagingErr::SendErr(UserMsg::Turn(turn, reply))) => {
            lane.gate().leave();
            lanes.remove(user_id, &lane);
            entry.lane = None;
            entry.pending.push((turn, reply));
        }
        Err(_) => lane.gate().leave(),
    }
}

async fn activate(
    supervisor: &ActorRef<UserSupervisorMsg>,
    user_id: UserId,
) -> Result<ActorRef<UserMsg>, TurnError> {
    match supervisor
        .call(|port| UserSupervisorMsg::Start(user_id, port), None)
        .await
    {
        Ok(ractor::rpc::CallResult::Success(result)) => result,
        _ => Err(TurnError::Unavailable),
    }
}

fn passivate(state: &mut DirectoryState, user_id: UserId, handled: u64) {
    let Some(entry) = state.users.get(&user_id) else {
        return;
    };
    // Closing the lane succeeds only if no turn is on its way to the actor; else it stays.
    let idle = entry.pending.is_empty()
        && entry
            .lane
            .as_ref()
            .is_some_and(|lane| lane.gate().close_if_routed(handled));
    if !idle {
        return;
    }
    if let Some(entry) = remove(state, user_id)
        && let Some(actor) = entry.actor()
    {
        tracing::debug!(user = %user_id, "passivating idle user actor");
        // Through the supervisor, which forgets the actor before it handles the next
        // activation from here: an activation right after cannot be handed the dying actor.
        let passivate = UserSupervisorMsg::Passivate {
            user_id,
            actor: actor.get_id(),
        };
        if state.supervisor.cast(passivate).is_err() {
            actor.stop(Some(super::PASSIVATED.to_owned()));
        }
    }
}

fn stop(state: &mut DirectoryState, user_id: UserId) {
    if let Some(entry) = remove(state, user_id) {
        if let Some(actor) = entry.actor() {
            tracing::info!(user = %user_id, "stopping user actor: account erased");
            actor.stop(Some(super::PASSIVATED.to_owned()));
        }
        for (_, reply) in entry.pending {
            let _ = reply.send(Err(TurnError::Unavailable));
        }
    }
}

fn replaced(
    state: &mut DirectoryState,
    user_id: UserId,
    old: ActorId,
    new: Option<ActorRef<UserMsg>>,
) {
    let Some(entry) = state.users.get_mut(&user_id) else {
        // Not routed here (e.g. activated before a Directory restart): adopt the new actor.
        if let Some(actor) = new {
            let lane = state.lanes.open(user_id, actor, 0);
            state.users.insert(user_id, Entry::active(lane));
        }
        return;
    };
    if entry.actor().is_some_and(|a| a.get_id() != old) {
        return; // Stale news about an actor already replaced.
    }
    match new {
        Some(actor) => {
            if let Some(lane) = entry.lane.take() {
                state.lanes.remove(user_id, &lane);
            }
            let mut routed = 0;
            for (turn, reply) in entry.pending.drain(..) {
                match actor.cast(UserMsg::Turn(turn, reply)) {
                    Ok(()) => routed += 1,
                    Err(_) => tracing::warn!(user = %user_id, "replacement actor died at once"),
                }
            }
            entry.lane = Some(state.lanes.open(user_id, actor, routed));
        }
        None => {
            if let Some(entry) = remove(state, user_id) {
                for (_, reply) in entry.pending {
                    let _ = reply.send(Err(TurnError::Unavailable));
                }
            }
        }
    }
}
