//! `UserSupervisor`: spawns user actors linked to itself and restarts the ones that crash,
//! with bounded intensity: more than [`RestartPolicy::max_restarts`] crashes of one user's
//! actor within [`RestartPolicy::window`] and it gives up on that user until the window has
//! passed, reporting it (a log line at error level, and `Replaced { new: None }` to the
//! Directory, which answers that user's waiting turns with "unavailable").
//!
//! A restarted actor reloads its state from the store, so a crash loses nothing that was
//! persisted. Passivation (a stop with reason [`PASSIVATED`](super::PASSIVATED)) is not a crash.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use ractor_cluster::RactorMessage;
use tokio::time::Instant;

use super::directory::DirectoryMsg;
use super::user::{UserActor, UserArgs, UserMsg};
use super::{TurnDeps, TurnError};
use crate::store::UserId;

/// How many crashes of one user's actor are tolerated, and over how long.
#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    pub max_restarts: usize,
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            window: Duration::from_secs(60),
        }
    }
}

/// Messages of the [`UserSupervisor`].
#[derive(RactorMessage)]
pub enum UserSupervisorMsg {
    /// The Directory to tell about replacements.
    Attach(ActorRef<DirectoryMsg>),
    /// The running actor of a user, spawned if there is none.
    Start(UserId, RpcReplyPort<Result<ActorRef<UserMsg>, TurnError>>),
    /// How many user actors are alive.
    Count(RpcReplyPort<usize>),
    /// Stop this actor of a user for silence (the Directory no longer routes to it); a later
    /// `Start` for the user spawns a new one.
    Passivate { user_id: UserId, actor: ActorId },
}

pub struct UserSupervisorArgs {
    pub deps: Arc<TurnDeps>,
    pub policy: RestartPolicy,
}

/// The actor; its data lives in [`UserSupervisorState`].
pub struct UserSupervisor;

pub struct UserSupervisorState {
    deps: Arc<TurnDeps>,
    policy: RestartPolicy,
    directory: Option<ActorRef<DirectoryMsg>>,
    /// Live children by user, and the reverse map for supervision events.
    by_user: HashMap<UserId, ActorRef<UserMsg>>,
    by_actor: HashMap<ActorId, UserId>,
    /// Recent crash times per user, for the intensity limit.
    crashes: HashMap<UserId, VecDeque<Instant>>,
}

impl Actor for UserSupervisor {
    type Msg = UserSupervisorMsg;
    type State = UserSupervisorState;
    type Arguments = UserSupervisorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: UserSupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(UserSupervisorState {
            deps: args.deps,
            policy: args.policy,
            directory: None,
            by_user: HashMap::new(),
            by_actor: HashMap::new(),
            crashes: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            UserSupervisorMsg::Attach(directory) => state.directory = Some(directory),
            UserSupervisorMsg::Start(user_id, reply) => {
                let result = if let Some(actor) = state.by_user.get(&user_id) {
                    Ok(actor.clone())
                } else if quarantined(state, user_id) {
                    Err(TurnError::Unavailable)
                } else {
                    spawn_user(&myself, state, user_id).await
                };
                let _ = reply.send(result);
            }
            UserSupervisorMsg::Count(reply) => {
                let _ = reply.send(state.by_user.len());
            }
            UserSupervisorMsg::Passivate { user_id, actor } => {
                // Forgotten by user now; by actor when it has stopped (`forget`).
                if let Some(current) = state.by_user.get(&user_id)
                    && current.get_id() == actor
                    && let Some(current) = state.by_user.remove(&user_id)
                {
                    current.stop(Some(super::PASSIVATED.to_owned()));
                }
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
        match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if let Some(user_id) = forget(state, &cell) {
                    let passivated = reason.as_deref() == Some(super::PASSIVATED);
                    if !passivated && let Some(directory) = &state.directory {
                        let _ = directory.cast(DirectoryMsg::Gone {
                            user_id,
                            actor: cell.get_id(),
                        });
                    }
                }
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                if let Some(user_id) = forget(state, &cell) {
                    restart(&myself, state, user_id, cell.get_id(), &error.to_string()).await;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn forget(state: &mut UserSupervisorState, cell: &ActorCell) -> Option<UserId> {
    let user_id = state.by_actor.remove(&cell.get_id())?;
    if state
        .by_user
        .get(&user_id)
        .is_some_and(|a| a.get_id() == cell.get_id())
    {
        state.by_user.remove(&user_id);
    }
    Some(user_id)
}

/// True while a user has crashed too often within the window.
fn quarantined(state: &mut UserSupervisorState, user_id: UserId) -> bool {
    let window = state.policy.window;
    let Some(times) = state.crashes.get_mut(&user_id) else {
        return false;
    };
    while times.front().is_some_and(|t| t.elapsed() > window) {
        times.pop_front();
    }
    if times.is_empty() {
        state.crashes.remove(&user_id);
        return false;
    }
    times.len() > state.policy.max_restarts
}

async fn spawn_user(
    myself: &ActorRef<UserSupervisorMsg>,
    state: &mut UserSupervisorState,
    user_id: UserId,
) -> Result<ActorRef<UserMsg>, TurnError> {
    let directory = state.directory.clone().ok_or(TurnError::Unavailable)?;
    let args = UserArgs {
        user_id,
        deps: state.deps.clone(),
        directory,
    };
    match Actor::spawn_linked(None, UserActor, args, myself.get_cell()).await {
        Ok((actor, _join)) => {
            state.by_actor.insert(actor.get_id(), user_id);
            state.by_user.insert(user_id, actor.clone());
            Ok(actor)
        }
        Err(error) => {
            tracing::error!(user = %user_id, %error, "could not start user actor");
            Err(TurnError::Unavailable)
        }
    }
}

async fn restart(
    myself: &ActorRef<UserSupervisorMsg>,
    state: &mut UserSupervisorState,
    user_id: UserId,
    old: ActorId,
    error: &str,
) {
    state
        .crashes
        .entry(user_id)
        .or_default()
        .push_back(Instant::now());
    let new = if quarantined(state, user_id) {
        tracing::error!(
            user = %user_id,
            %error,
            max_restarts = state.policy.max_restarts,
            window_secs = state.policy.window.as_secs(),
            "user actor keeps crashing; giving up until the window passes"
        );
        None
    } else {
        tracing::warn!(user = %user_id, %error, "user actor crashed; restarting");
        spawn_user(myself, state, user_id).await.ok()
    };
    if let Some(directory) = &state.directory {
        let _ = directory.cast(DirectoryMsg::Replaced { user_id, old, new });
    }
}
