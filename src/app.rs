//! Start-up and shutdown: settings → store → actor tree → HTTP server.
//!
//! [`Application::build`] binds the listener (port 0 works: tests use it) and starts
//! everything; [`Application::run_until`] serves until the shutdown future resolves, then
//! stops taking requests, lets running requests and late replies finish, stops the actor
//! tree and closes the store.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::actors::notifier::NotifierArgs;
use crate::actors::{ActorSystem, SystemOptions, TurnDeps};
use crate::agent::TurnEngine;
use crate::agent::offline::OfflineRules;
use crate::config::Settings;
use crate::edges::metrics::Metrics;
use crate::edges::{self, AppState};
use crate::sms::twilio::TwilioClient;
use crate::store::{self, Store, StoreWriter};

/// How long shutdown waits for late replies and the actor tree.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// A built, not yet serving, Nudge node.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: AppState,
}

impl Application {
    /// Builds the node with the offline rules engine.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, Arc::new(OfflineRules), SystemOptions::default()).await
    }

    /// Builds the node with a given engine and actor options.
    pub async fn build_with(
        settings: Settings,
        engine: Arc<dyn TurnEngine>,
        options: SystemOptions,
    ) -> anyhow::Result<Self> {
        let store = store::connect(settings.database_url.expose(), settings.sealer.clone())
            .await
            .with_context(|| format!("opening database {}", settings.database_url.redacted()))?;
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        let local_addr = listener.local_addr()?;
        let public_base = settings.public_base(local_addr);
        let tasks = TaskTracker::new();

        let twilio = match &settings.twilio.account_sid {
            Some(sid) => Some(
                TwilioClient::builder(sid.clone(), settings.twilio.auth_token.clone())
                    .base_url(settings.twilio.api_base.as_str())
                    .build()
                    .context("building the Twilio client")?,
            ),
            None => None,
        };
        let writer = StoreWriter::start(store.clone());
        let actors = ActorSystem::start(
            TurnDeps {
                store: store.clone(),
                writer: writer.clone(),
                engine,
                idle_passivate: settings.idle_passivate,
            },
            NotifierArgs {
                store: store.clone(),
                twilio,
                status_callback: None,
                tasks: tasks.clone(),
            },
            options,
        )
        .await
        .context("starting the actor tree")?;

        let state = AppState {
            store,
            actors,
            public_base: Arc::new(public_base),
            twilio_auth_token: Arc::new(settings.twilio.auth_token.clone()),
            reply_window: settings.reply_window,
            tasks,
            metrics: Arc::new(
                Metrics::new(writer, settings.metrics_token.clone())
                    .context("registering metrics")?,
            ),
        };
        Ok(Self {
            listener,
            local_addr,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn store(&self) -> Store {
        self.state.store.clone()
    }

    pub fn actors(&self) -> ActorSystem {
        self.state.actors.clone()
    }

    /// Serves until `shutdown` resolves, then shuts down gracefully.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        let router = edges::router(self.state);
        tracing::info!(addr = %self.local_addr, public_url = %state.public_base, "serving");
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("HTTP server")?;

        tracing::info!("stopped taking requests; finishing late replies");
        state.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, state.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("late replies still running at shutdown");
        }
        state.actors.shutdown(SHUTDOWN_GRACE).await;
        tracing::info!("shut down");
        Ok(())
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
