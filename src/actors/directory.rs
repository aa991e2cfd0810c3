//! `Directory`: user id → the user's actor. It activates a [`UserActor`](super::user) on a
//! user's first message (through the [`UserSupervisor`](super::user_supervisor)), forwards
//! turns to it, and passivates it when it reports silence.
//!
//! Passivation is race-free because the Directory is the only router of turns: it counts the
//! turns it routed to each actor, and stops an idle actor only when the actor has handled
//! exactly that many, so no turn can sit in a mailbox that is about to close.
//!
//! While a crashed actor is being replaced, turns for that user wait here and are forwarded
//! to the replacement in arrival order.

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort};
use ractor_cluster::RactorMessage;

use super::TurnError;
use super::routes::NumberRoutes;
use super::user::{InboundTurn, TurnOutcome, UserMsg};
use super::user_supervisor::UserSupervisorMsg;
use crate::store::UserId;

/// The reply port of one turn.
pub type TurnReply = RpcReplyPort<Result<TurnOutcome, TurnError>>;

/// Messages of the [`Directory`].
#[derive(RactorMessage)]
pub enum DirectoryMsg {
    /// Route a turn to the user's actor, activating it if needed.
    Turn {
        user_id: UserId,
        turn: InboundTurn,
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
}

/// The actor; its data lives in [`DirectoryState`].
pub struct Directory;

/// One active user.
struct Entry {
    /// `None` while the supervisor is replacing a crashed actor.
    actor: Option<ActorRef<UserMsg>>,
    /// Turns routed to the current actor since it started.
    routed: u64,
    /// Turns waiting for a replacement actor, in arrival order.
    pending: Vec<(InboundTurn, TurnReply)>,
}

pub struct DirectoryState {
    supervisor: ActorRef<UserSupervisorMsg>,
    users: HashMap<UserId, Entry>,
    routes: Arc<NumberRoutes>,
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
        Ok(DirectoryState {
            supervisor: args.supervisor,
            users: HashMap::new(),
            routes: args.routes,
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
                    Ok(entry) => entry.actor.clone().ok_or(TurnError::Unavailable),
                    Err(error) => Err(error),
                };
                let _ = reply.send(actor);
            }
            DirectoryMsg::Idle { user_id, handled } => passivate(state, user_id, handled),
            DirectoryMsg::Replaced { user_id, old, new } => replaced(state, user_id, old, new),
            DirectoryMsg::Gone { user_id, actor } => {
                if current_id(state, user_id) == Some(actor) {
                    state.users.remove(&user_id);
                    state.routes.forget(user_id);
                }
            }
            DirectoryMsg::Lookup(user_id, reply) => {
                let actor = state.users.get(&user_id).and_then(|e| e.actor.clone());
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
        .and_then(|e| e.actor.as_ref())
        .map(|a| a.get_id())
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
        state.users.insert(
            user_id,
            Entry {
                actor: Some(actor),
                routed: 0,
                pending: Vec::new(),
            },
        );
    }
    state.users.get_mut(&user_id).ok_or(TurnError::Unavailable)
}

async fn route(state: &mut DirectoryState, user_id: UserId, turn: InboundTurn, reply: TurnReply) {
    let entry = match ensure_entry(state, user_id).await {
        Ok(entry) => entry,
        Err(error) => {
            let _ = reply.send(Err(error));
            return;
        }
    };
    let Some(actor) = &entry.actor else {
        entry.pending.push((turn, reply));
        return;
    };
    match actor.cast(UserMsg::Turn(turn, reply)) {
        Ok(()) => entry.routed += 1,
        // The actor died and its replacement is not announced yet: hold the turn.
        Err(MessagingErr::SendErr(UserMsg::Turn(turn, reply))) => {
            entry.actor = None;
            entry.pending.push((turn, reply));
        }
        Err(_) => {}
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
    if entry.routed != handled || !entry.pending.is_empty() {
        return; // A turn is on its way to the actor: it stays.
    }
    state.routes.forget(user_id);
    if let Some(entry) = state.users.remove(&user_id)
        && let Some(actor) = entry.actor
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
    state.routes.forget(user_id);
    if let Some(entry) = state.users.remove(&user_id) {
        for (_, reply) in entry.pending {
            let _ = reply.send(Err(TurnError::Unavailable));
        }
        if let Some(actor) = entry.actor {
            tracing::info!(user = %user_id, "stopping user actor: account erased");
            actor.stop(Some(super::PASSIVATED.to_owned()));
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
            state.users.insert(
                user_id,
                Entry {
                    actor: Some(actor),
                    routed: 0,
                    pending: Vec::new(),
                },
            );
        }
        return;
    };
    if entry.actor.as_ref().is_some_and(|a| a.get_id() != old) {
        return; // Stale news about an actor already replaced.
    }
    match new {
        Some(actor) => {
            entry.routed = 0;
            for (turn, reply) in entry.pending.drain(..) {
                match actor.cast(UserMsg::Turn(turn, reply)) {
                    Ok(()) => entry.routed += 1,
                    Err(_) => tracing::warn!(user = %user_id, "replacement actor died at once"),
                }
            }
            entry.actor = Some(actor);
        }
        None => {
            state.routes.forget(user_id);
            if let Some(entry) = state.users.remove(&user_id) {
                for (_, reply) in entry.pending {
                    let _ = reply.send(Err(TurnError::Unavailable));
                }
            }
        }
    }
}
