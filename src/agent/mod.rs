//! The agent: what answers a user's turn.
//!
//! Two engines implement [`TurnEngine`]:
//! - [`planner::Planner`]: the LLM agent. It builds the prompt, calls a [`LanguageModel`]
//!   (Gemini, then the OpenAI-compatible fallback, behind circuit breakers), runs the tool
//!   calls the model asks for through the tool registry and feeds the results back, under a
//!   per-turn [`planner::Budget`]. When no model answers it falls back to the offline rules
//!   and says so.
//! - [`offline::OfflineRules`]: a deterministic English / French rules engine that needs no
//!   model: the embedded default, and the planner's last resort.
//!
//! | module | what |
//! | --- | --- |
//! | [`planner`] | the plan → call model → run tools → answer loop, budgets, partial answers |
//! | [`prompts`] | the versioned prompt files of `prompts/`, rendered for a user and a turn |
//! | [`summary`] | folding older turns into a rolling summary (by the model, or extractive offline) |
//! | [`cache`] | the model-response cache (in-process, or Redis) |
//! | [`history`] | the recent conversation as a user actor keeps it, compact |
//! | [`offline`] | the rules engine |

pub mod cache;
pub mod history;
pub mod memory_rules;
pub mod offline;
pub mod planner;
pub mod prompts;
pub mod summary;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::llm::{ChatRequest, Generation};
use crate::store::{Channel, NewLlmUsage, Store, StoreError, User};
pub use history::Said;

/// Errors an engine can end a turn with.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Everything an engine is given for one turn.
#[derive(Debug, Clone, Copy)]
pub struct TurnInput<'a> {
    /// The user whose turn it is; every tool call is scoped to `user.id`.
    pub user: &'a User,
    /// What the user wrote, as received.
    pub text: &'a str,
    /// Where the turn came from: SMS replies must stay SMS-sized.
    pub channel: Channel,
    /// The turn's clock, so engines are testable with a fixed time.
    pub now: DateTime<Utc>,
    /// The conversation before this turn's message, oldest first (the message is `text`; it is
    /// stored with its reply, so it is not among them).
    pub recent: &'a [Said],
    /// Long-term memories retrieved for this message, most relevant first.
    pub memories: &'a [RecalledMemory],
    /// The rolling summary of the conversation before `recent`, if older turns were folded.
    pub summary: Option<&'a str>,
}

/// A long-term memory retrieved for a turn.
#[derive(Debug, Clone, PartialEq)]
pub struct RecalledMemory {
    pub id: i64,
    pub text: String,
    /// What sort of fact it is (`preference`, `routine`, `health`, …).
    pub kind: String,
    /// Relevance to this message, blended with importance and recency; higher is better.
    pub score: f32,
}

/// Where a reply came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplySource {
    /// The offline rules, configured as the engine (no model set up).
    Rules,
    /// A language model's final answer; the provider that gave it.
    Model(String),
    /// The offline rules standing in for models that did not answer (the reply says so).
    OfflineFallback,
    /// The turn's budget ran out, or the models stopped answering after tools ran: the best
    /// answer that could be made from what was done.
    Partial,
}

/// What an engine answers a turn with.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The text for the user: short, concrete, in their language.
    pub text: String,
    pub source: ReplySource,
    /// Tokens the turn's model calls used, stored with the reply for cost metrics.
    pub usage: Vec<NewLlmUsage>,
}

impl Reply {
    /// A reply of the rules engine (no model involved).
    pub fn rules(text: String) -> Self {
        Self {
            text,
            source: ReplySource::Rules,
            usage: Vec::new(),
        }
    }
}

/// Older messages to fold into the rolling summary.
#[derive(Debug, Clone, Copy)]
pub struct FoldInput<'a> {
    pub user: &'a User,
    /// The summary so far, if any.
    pub previous: Option<&'a str>,
    /// The messages to fold, oldest first.
    pub messages: &'a [Said],
}

/// A new rolling summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Folded {
    pub text: String,
    /// Tokens spent making it (empty for an extractive summary).
    pub usage: Vec<NewLlmUsage>,
}

/// Something that turns a user's message into a reply, using tools over the store.
#[async_trait]
pub trait TurnEngine: Send + Sync + 'static {
    /// Answers one message. The reply is short, concrete, in the user's language.
    async fn respond(&self, store: &Store, input: TurnInput<'_>) -> Result<Reply, AgentError>;

    /// Whether a reply comes at once, with no model to wait for. The user's open clients are
    /// told the assistant is typing only while a reply may take a while: before one that
    /// comes at once, the indicator would only flicker.
    fn answers_at_once(&self) -> bool {
        false
    }

    /// Folds older messages into the rolling summary. The default is extractive (no model).
    async fn summarize(&self, input: FoldInput<'_>) -> Folded {
        Folded {
            text: summary::extractive(input.user.language, input.previous, input.messages),
            usage: Vec::new(),
        }
    }
}

/// No language model could answer (every provider failed or had its circuit open).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no language model answered ({0})")]
pub struct ModelUnavailable(pub String);

/// The chain of language models a planner calls: Gemini, then the fallback, each behind its
/// circuit breaker, retried within the deadline. The actor tree provides the real one
/// (`actors::llm::LlmHandle`); tests and benches use in-process fakes.
#[async_trait]
pub trait LanguageModel: Send + Sync + 'static {
    /// One generation, or [`ModelUnavailable`] once every provider failed, or `deadline`
    /// passed.
    async fn generate(
        &self,
        request: &ChatRequest,
        deadline: Instant,
    ) -> Result<Generation, ModelUnavailable>;
}
