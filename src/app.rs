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
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::task::TaskTracker;

use crate::actors::llm::{LlmHandle, LlmSetup};
use crate::actors::notifier::NotifierArgs;
use crate::actors::reminders::{SchedulerArgs, SchedulerConfig, SmsNudges, SystemClock};
use crate::actors::{ActorSystem, SystemOptions, TurnDeps};
use crate::agent::TurnEngine;
use crate::agent::cache::ResponseCache;
use crate::agent::offline::OfflineRules;
use crate::agent::planner::{Budget, Planner};
use crate::config::{EmbeddingSettings, LlmSettings, Retention, Settings};
use crate::edges::api::Security;
use crate::edges::metrics::Metrics;
use crate::edges::{self, AppParts, AppState};
use crate::live::LiveHub;
use crate::llm::Provider;
use crate::llm::embeddings::EmbeddingClient;
use crate::llm::gemini::GeminiClient;
use crate::llm::openai::OpenAiClient;
use crate::memory::MemoryServices;
use crate::sms::twilio::TwilioClient;
use crate::store::limits::{self, RateLimiter};
use crate::store::revocation::Revocations;
use crate::store::{self, Store, StoreWriter};

/// How long shutdown waits for late replies and the actor tree.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// How often expired data is purged.
const PURGE_EVERY: Duration = Duration::from_secs(60 * 60);

/// A built, not yet serving, Nudge node.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: AppState,
    retention: Retention,
}

impl Application {
    /// Builds the node: the LLM agent when a model is configured (Gemini key or fallback
    /// URL), the offline rules otherwise.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        if !settings.llm.any_model() {
            tracing::info!("no language model configured: turns are answered by the offline rules");
            return Self::build_with(settings, Arc::new(OfflineRules), SystemOptions::default())
                .await;
        }
        let mut setup = LlmSetup::new(providers(&settings.llm)?);
        setup.workers = settings.llm.concurrency;
        let handle = LlmHandle::new(&setup);
        let cache = match (settings.llm.cache_ttl, &settings.redis_url) {
            (None, _) => None,
            (Some(ttl), None) => Some(ResponseCache::in_process(ttl)),
            (Some(ttl), Some(url)) => Some(
                ResponseCache::redis(
                    url.expose(),
                    &settings.redis_namespace,
                    ttl,
                    settings.sealer.clone(),
                )
                .await
                .context("NUDGE_REDIS_URL")?,
            ),
        };
        let budget = settings.llm.budget;
        let planner = Planner::new(
            Arc::new(handle.clone()),
            crate::tools::internal::registry(),
            Budget {
                max_llm_calls: budget.max_llm_calls,
                max_tool_calls: budget.max_tool_calls,
                max_tokens: budget.max_tokens,
                deadline: budget.deadline,
                ..Budget::default()
            },
            cache.clone(),
        );
        let names: Vec<&str> = setup.providers.iter().map(|p| p.name()).collect();
        tracing::info!(providers = ?names, "turns are answered by the LLM agent");
        Self::build_inner(
            settings,
            Arc::new(planner),
            SystemOptions::default(),
            Some((setup, handle)),
            cache,
        )
        .await
    }

    /// Builds the node with a given engine and actor options (no model providers).
    pub async fn build_with(
        settings: Settings,
        engine: Arc<dyn TurnEngine>,
        options: SystemOptions,
    ) -> anyhow::Result<Self> {
        Self::build_inner(settings, engine, options, None, None).await
    }

    async fn build_inner(
        settings: Settings,
        engine: Arc<dyn TurnEngine>,
        options: SystemOptions,
        llm: Option<(LlmSetup, LlmHandle)>,
        model_cache: Option<ResponseCache>,
    ) -> anyhow::Result<Self> {
        let store = settings.open_store().await?;
        let store = match &settings.database_api_url {
            Some(url) => store
                .with_scoped_pool(url.expose())
                .await
                .with_context(|| format!("opening the API's database role {}", url.redacted()))?,
            None => store,
        };
        let started = chrono::Utc::now();
        store
            .note_active_key("seal", settings.sealer.active_key_id(), started)
            .await
            .context("recording the active sealing key")?;
        store
            .note_active_key("jwt", settings.jwt_keys.active_kid(), started)
            .await
            .context("recording the active token-signing key")?;
        let listener =
            listen(settings.listen).with_context(|| format!("binding {}", settings.listen))?;
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
        let live = LiveHub::new();
        let notifier = NotifierArgs {
            store: store.clone(),
            twilio,
            // Twilio reports delivery there (signed like the inbound webhook).
            status_callback: public_base.join("sms/status").ok().map(String::from),
            tasks: tasks.clone(),
            circuit: Default::default(),
        };
        let actors = ActorSystem::start_with_llm(
            TurnDeps {
                store: store.clone(),
                writer: writer.clone(),
                engine,
                idle_passivate: settings.idle_passivate,
                memory: memory_services(&settings.embeddings)?,
                live: live.clone(),
            },
            notifier.clone(),
            options,
            llm,
        )
        .await
        .context("starting the actor tree")?;
        actors
            .start_reminders(SchedulerArgs {
                store: store.clone(),
                sink: Arc::new(SmsNudges {
                    notifier,
                    live: live.clone(),
                }),
                clock: Arc::new(SystemClock),
                config: SchedulerConfig {
                    grace: chrono::TimeDelta::from_std(settings.reminder_grace)
                        .unwrap_or(chrono::TimeDelta::MAX),
                    ..SchedulerConfig::default()
                },
            })
            .await
            .context("starting the reminder scheduler")?;

        let (limiter, revocations) = match &settings.redis_url {
            Some(url) => {
                let redis = limits::connect_redis(url.expose())
                    .await
                    .with_context(|| format!("connecting to Redis {}", url.redacted()))?;
                // A revocation outlives every access token issued before it.
                let ttl = settings.auth.access_ttl + Duration::from_secs(60);
                let namespace = &settings.redis_namespace;
                (
                    RateLimiter::shared(redis.clone(), namespace),
                    Revocations::in_redis(store.clone(), redis, ttl, namespace),
                )
            }
            None => (RateLimiter::local(), Revocations::in_store(store.clone())),
        };
        let security = Arc::new(Security::new(
            settings.jwt_keys.clone(),
            settings.auth.clone(),
            settings.limits,
            limiter,
            revocations,
            settings.trust_forwarded_for,
        ));
        let backend = store.backend();
        let state = AppState::new(AppParts {
            security,
            store,
            actors,
            public_base: Arc::new(public_base),
            twilio_auth_token: Arc::new(settings.twilio.auth_token.clone()),
            reply_window: settings.reply_window,
            tasks,
            metrics: Arc::new(
                Metrics::new(writer, backend, settings.metrics_token.clone())
                    .context("registering metrics")?,
            ),
            live,
            model_cache,
        });
        Ok(Self {
            listener,
            local_addr,
            state,
            retention: settings.retention,
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
        let purger = tokio::spawn(purge_periodically(state.store.clone(), self.retention));
        let router = edges::router(self.state);
        tracing::info!(addr = %self.local_addr, public_url = %state.public_base, "serving");
        axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP server")?;

        purger.abort();
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

/// The configured model providers, in the order turns try them: Gemini, then the fallback.
fn providers(llm: &LlmSettings) -> anyhow::Result<Vec<Arc<dyn Provider>>> {
    let mut providers: Vec<Arc<dyn Provider>> = Vec::new();
    if let Some(gemini) = &llm.gemini {
        let client = GeminiClient::new(&gemini.base_url, gemini.api_key.clone(), &gemini.model)
            .context("building the Gemini client")?;
        providers.push(Arc::new(client));
    }
    if let Some(fallback) = &llm.fallback {
        let client = OpenAiClient::new(&fallback.url, fallback.api_key.clone(), &fallback.model)
            .context("building the fallback model client")?;
        providers.push(Arc::new(client));
    }
    Ok(providers)
}

/// Long-term memory's services: an embedding client when a key and a model are configured.
fn memory_services(settings: &EmbeddingSettings) -> anyhow::Result<MemoryServices> {
    let embedder = match (&settings.api_key, &settings.model) {
        (Some(key), Some(model)) => Some(
            EmbeddingClient::builder(key.clone())
                .base_url(settings.base_url.as_str())
                .model(model.as_str())
                .dimensions(Some(settings.dimensions))
                .build()
                .context("building the embedding client")?,
        ),
        _ => None,
    };
    tracing::info!(
        embeddings = embedder.as_ref().map(EmbeddingClient::model_id),
        "long-term memory ranking: {}",
        if embedder.is_some() {
            "embeddings and BM25"
        } else {
            "BM25"
        }
    );
    Ok(MemoryServices {
        embedder,
        query_budget: settings.query_budget,
        ..MemoryServices::default()
    })
}

/// Purges, once: expired sessions, tokens, codes and counters; audit events and messages
/// past their retention. Returns how many rows went.
pub async fn purge_once(
    store: &Store,
    retention: Retention,
    now: chrono::DateTime<chrono::Utc>,
) -> store::Result<u64> {
    let mut purged = store.purge_expired(now).await?;
    let before = |keep: Duration| chrono::Duration::from_std(keep).map(|keep| now - keep).ok();
    if let Some(cutoff) = retention.audit.and_then(before) {
        purged += store.purge_audit_before(cutoff).await?;
    }
    if let Some(cutoff) = retention.messages.and_then(before) {
        purged += store.purge_messages_before(cutoff).await?;
    }
    Ok(purged)
}

/// Runs [`purge_once`] now and then every [`PURGE_EVERY`], until aborted.
async fn purge_periodically(store: Store, retention: Retention) {
    let mut tick = tokio::time::interval(PURGE_EVERY);
    loop {
        tick.tick().await;
        match purge_once(&store, retention, chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "retention purge"),
            Err(error) => tracing::error!(%error, "retention purge failed"),
        }
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

/// Connections the kernel holds for the server before it accepts them. A burst larger than
/// this (web clients reconnecting together, a load generator opening its connections) has
/// its extra connection attempts dropped, and each client retries a second later; the
/// kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` with [`LISTEN_BACKLOG`] (tokio's default is 1,024).
fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}
