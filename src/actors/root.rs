//! `Root`: starts the long-lived actors linked to itself and keeps them running.
//!
//! A crashed Directory or Notifier is restarted (their state is rebuilt: the Directory
//! re-attaches to the UserSupervisor, whose live actors it adopts as they report). A crashed
//! UserSupervisor is escalated: Root stops, readiness turns false, and the operator's process
//! manager restarts the node — its user actors' state is all in the store.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_cluster::RactorMessage;

use super::directory::{Directory, DirectoryArgs, DirectoryMsg};
use super::lanes::Lanes;
use super::llm::{LlmHandle, LlmSetup, LlmSupervisor, LlmSupervisorArgs, LlmSupervisorMsg};
use super::notifier::{Notifier, NotifierArgs, NotifierMsg};
use super::routes::NumberRoutes;
use super::user_supervisor::{UserSupervisor, UserSupervisorArgs, UserSupervisorMsg};
use super::{CoreRefs, SystemOptions, TurnDeps};

/// How long Root waits for its children when it stops.
const CHILD_STOP_GRACE: Duration = Duration::from_secs(10);

/// Root takes no requests; it only supervises.
#[derive(RactorMessage)]
pub enum RootMsg {}

pub struct RootArgs {
    pub deps: Arc<TurnDeps>,
    pub notifier: NotifierArgs,
    pub options: SystemOptions,
    /// Where Root publishes the refs of its children for [`ActorSystem`](super::ActorSystem).
    pub published: Arc<RwLock<Option<CoreRefs>>>,
    /// The model providers to supervise, and the handle planners reach them through.
    pub llm: Option<(Arc<LlmSetup>, LlmHandle)>,
    /// Number routes the Directory keeps in step with the active users.
    pub routes: Arc<NumberRoutes>,
    /// The lanes of active user actors, which the Directory opens and closes.
    pub lanes: Arc<Lanes>,
}

/// The actor; its data lives in [`RootState`].
pub struct Root;

pub struct RootState {
    supervisor: ActorRef<UserSupervisorMsg>,
    directory: ActorRef<DirectoryMsg>,
    notifier: ActorRef<NotifierMsg>,
    notifier_args: NotifierArgs,
    published: Arc<RwLock<Option<CoreRefs>>>,
    /// The LLM supervisor, its setup and the handle it is published into.
    llm: Option<(ActorRef<LlmSupervisorMsg>, Arc<LlmSetup>, LlmHandle)>,
    /// Handed to each Directory Root starts.
    routes: Arc<NumberRoutes>,
    lanes: Arc<Lanes>,
}

impl RootState {
    fn publish(&self) {
        if let Ok(mut slot) = self.published.write() {
            *slot = Some(CoreRefs {
                directory: self.directory.clone(),
                notifier: self.notifier.clone(),
            });
        }
    }
}

impl Actor for Root {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = RootArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: RootArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let cell = myself.get_cell();
        let (supervisor, _) = Actor::spawn_linked(
            None,
            UserSupervisor,
            UserSupervisorArgs {
                deps: args.deps,
                policy: args.options.restart,
            },
            cell.clone(),
        )
        .await?;
        let (directory, _) = Actor::spawn_linked(
            None,
            Directory,
            DirectoryArgs {
                supervisor: supervisor.clone(),
                routes: args.routes.clone(),
                lanes: args.lanes.clone(),
            },
            cell.clone(),
        )
        .await?;
        let (notifier, _) =
            Actor::spawn_linked(None, Notifier, args.notifier.clone(), cell.clone()).await?;
        let llm = match args.llm {
            Some((setup, handle)) => {
                let (llm, _) = Actor::spawn_linked(
                    None,
                    LlmSupervisor,
                    LlmSupervisorArgs {
                        setup: setup.clone(),
                    },
                    cell,
                )
                .await?;
                handle.publish(Some(llm.clone()));
                Some((llm, setup, handle))
            }
            None => None,
        };
        let state = RootState {
            supervisor,
            directory,
            notifier,
            notifier_args: args.notifier,
            published: args.published,
            llm,
            routes: args.routes,
            lanes: args.lanes,
        };
        state.publish();
        Ok(state)
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Ok(mut slot) = state.published.write() {
            *slot = None;
        }
        if let Some((_, _, handle)) = &state.llm {
            handle.publish(None);
        }
        myself
            .stop_children_and_wait(Some("shutdown".into()), Some(CHILD_STOP_GRACE))
            .await;
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, why) = match &event {
            SupervisionEvent::ActorFailed(cell, error) => (cell, error.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, reason.clone().unwrap_or_else(|| "stopped".into()))
            }
            _ => return Ok(()),
        };
        let id = cell.get_id();
        if id == state.directory.get_id() {
            tracing::error!(reason = %why, "directory stopped; restarting it");
            let (directory, _) = Actor::spawn_linked(
                None,
                Directory,
                DirectoryArgs {
                    supervisor: state.supervisor.clone(),
                    routes: state.routes.clone(),
                    lanes: state.lanes.clone(),
                },
                myself.get_cell(),
            )
            .await?;
            state.directory = directory;
            state.publish();
        } else if id == state.notifier.get_id() {
            tracing::error!(reason = %why, "notifier stopped; restarting it");
            let (notifier, _) = Actor::spawn_linked(
                None,
                Notifier,
                state.notifier_args.clone(),
                myself.get_cell(),
            )
            .await?;
            state.notifier = notifier;
            state.publish();
        } else if let Some((llm, setup, handle)) = &mut state.llm
            && id == llm.get_id()
        {
            // Its circuits restart closed; the workers are respawned with it.
            tracing::error!(reason = %why, "LLM supervisor stopped; restarting it");
            handle.publish(None);
            let (restarted, _) = Actor::spawn_linked(
                None,
                LlmSupervisor,
                LlmSupervisorArgs {
                    setup: setup.clone(),
                },
                myself.get_cell(),
            )
            .await?;
            handle.publish(Some(restarted.clone()));
            *llm = restarted;
        } else if id == state.supervisor.get_id() {
            tracing::error!(reason = %why, "user supervisor stopped; stopping the actor tree");
            myself.stop(Some("user supervisor stopped".into()));
        }
        Ok(())
    }
}
