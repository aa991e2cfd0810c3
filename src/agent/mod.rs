//! The agent: what answers a user's turn.
//!
//! Today the only engine is [`offline::OfflineRules`], a deterministic English / French rules
//! engine that needs no model. It stays as the last resort behind the LLM providers.

pub mod memory_rules;
pub mod offline;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::store::{Channel, Message, Store, StoreError, User};

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
    /// The conversation so far, oldest first; the last entry is this turn's inbound message.
    pub recent: &'a [Message],
    /// Long-term memories retrieved for this message, most relevant first.
    pub memories: &'a [RecalledMemory],
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

/// Something that turns a user's message into a reply, using tools over the store.
#[async_trait]
pub trait TurnEngine: Send + Sync + 'static {
    /// Answers one message. The reply is short, concrete, in the user's language.
    async fn respond(&self, store: &Store, input: TurnInput<'_>) -> Result<String, AgentError>;
}
