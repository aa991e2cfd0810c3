//! `UserActor{id}`: owns one user's conversation state and runs their turns one at a time.
//!
//! A turn: persist the inbound message (deduped by provider message id) → carrier keywords
//! (STOP / START / HELP) → the engine answers → persist the reply with its SMS usage → return.
//! Both writes go through the group-commit [`StoreWriter`](crate::store::StoreWriter): the
//! turn waits for its own batch only, never for other users.
//! State loads lazily from the store on the first message, so activation (spawn) is cheap and
//! never blocks the [`Directory`](super::directory) on a database round trip.
//!
//! After a turn, when the unfolded history passes [`summary::FOLD_AT`] messages, the older ones
//! are folded into the rolling summary (stored, so a restart keeps it); the prompt then
//! carries the summary and the messages after it.
//!
//! Passivation: one timer per actor checks for silence; when the actor has been idle for the
//! configured time it tells the Directory, which stops it only if no turn was routed since.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;
use tokio::time::Instant;

use super::directory::DirectoryMsg;
use super::user_memory::{EmbeddedMemories, LtmCache, PostTurn, recalled};
use super::{TurnDeps, TurnError};
use crate::agent::offline::help_text;
use crate::agent::{FoldInput, TurnInput, summary};
use crate::live::Event;
use crate::sms::keywords::{self, Keyword};
use crate::sms::segments;
use crate::store::{
    Channel, ConversationSummary, Direction, Message, MessageWrite, NewLlmUsage, NewMessage,
    NewSmsUsage, StoreError, SummaryWrite, User, UserId, Written,
};

/// How many recent messages the actor keeps in memory (the model's short-term context).
pub const RECENT_TURNS: usize = 20;
/// SMS replies are cut to this many segments at most (Twilio advises ≤ 320 characters).
const MAX_REPLY_SEGMENTS: u32 = 4;

/// One inbound message to answer.
#[derive(Debug, Clone)]
pub struct InboundTurn {
    pub channel: Channel,
    pub body: String,
    /// Twilio's `MessageSid`: a retried webhook carries the same one.
    pub provider_message_id: Option<String>,
    /// `NumSegments` as Twilio billed it, when known.
    pub segments: Option<u32>,
    pub received_at: DateTime<Utc>,
}

/// What a turn produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnOutcome {
    /// The text to send back, or `None` when nothing must be sent (STOP, opted out).
    pub reply: Option<String>,
    /// True when this message had been handled before (a retried webhook).
    pub duplicate: bool,
    /// The stored reply's id, when there is one: an SMS sent later by the REST API carries it,
    /// so its usage row takes the SID.
    pub reply_id: Option<i64>,
}

/// Messages of a [`UserActor`].
#[derive(RactorMessage)]
pub enum UserMsg {
    /// Run one turn and answer on the port.
    Turn(InboundTurn, RpcReplyPort<Result<TurnOutcome, TurnError>>),
    /// Load the user's state now rather than on the first turn (activation ahead of use).
    Load(RpcReplyPort<Result<(), TurnError>>),
    /// The passivation timer fired.
    IdleCheck,
    /// A snapshot for inspection and tests.
    Inspect(RpcReplyPort<UserSnapshot>),
    /// Vectors of memories, computed and stored by a background task.
    MemoriesEmbedded(EmbeddedMemories),
}

/// What the actor holds, for inspection.
#[derive(Debug, Clone)]
pub struct UserSnapshot {
    pub user_id: UserId,
    pub loaded: bool,
    pub recent: Vec<Message>,
    /// The rolling summary of the folded older turns, if any.
    pub summary: Option<String>,
    pub turns_handled: u64,
    /// Long-term memories in the actor's cache.
    pub memories: usize,
    /// How many of them have a vector of the configured embedding model.
    pub embedded_memories: usize,
}

/// Start-up arguments.
pub struct UserArgs {
    pub user_id: UserId,
    pub deps: Arc<TurnDeps>,
    pub directory: ActorRef<DirectoryMsg>,
}

/// The actor; its data lives in [`UserState`].
pub struct UserActor;

/// Everything a user actor owns.
pub struct UserState {
    user_id: UserId,
    deps: Arc<TurnDeps>,
    directory: ActorRef<DirectoryMsg>,
    /// Loaded on the first message; `None` until then.
    user: Option<User>,
    /// The last [`RECENT_TURNS`] messages not folded into `summary`, oldest first.
    recent: VecDeque<Message>,
    /// The rolling summary of older turns; loaded with the user.
    summary: Option<ConversationSummary>,
    /// Turns handled since activation; the Directory compares it with turns routed.
    turns_handled: u64,
    last_activity: Instant,
    /// The user's long-term memories, loaded with the rest.
    ltm: LtmCache,
    /// Left by an answered turn for the memory work done after its reply is sent.
    post_turn: Option<PostTurn>,
    /// `summary` holds a fold not stored yet: it rides with the user's next write (one group
    /// commit instead of a commit of its own), or is stored when the actor stops. If the
    /// process dies first, nothing is lost: the messages it covers are reloaded at activation.
    summary_unsaved: bool,
}

impl Actor for UserActor {
    type Msg = UserMsg;
    type State = UserState;
    type Arguments = UserArgs;

    /// Stores a fold still waiting for the user's next write (passivation, shutdown).
    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(fold) = unsaved_summary(state) {
            state.summary_unsaved = false;
            let saved = Box::pin(state.deps.store.save_conversation_summary(
                state.user_id,
                &fold.text,
                fold.through_message_id,
                fold.folded_messages,
            ))
            .await;
            if let Err(error) = saved {
                tracing::warn!(user = %state.user_id, %error, "storing the summary at stop failed");
            }
        }
        Ok(())
    }

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: UserArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_after(args.deps.idle_passivate, || UserMsg::IdleCheck);
        Ok(UserState {
            user_id: args.user_id,
            deps: args.deps,
            directory: args.directory,
            user: None,
            // Grown as messages come: an actor activated for one short exchange stays small.
            recent: VecDeque::new(),
            summary: None,
            turns_handled: 0,
            last_activity: Instant::now(),
            ltm: LtmCache::default(),
            post_turn: None,
            summary_unsaved: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // The work of a message is boxed: an actor's task holds the future of its handler
        // inline, so an unboxed turn (store queries, model calls, tools) would make every
        // idle actor carry the largest turn's state machine.
        match message {
            UserMsg::Turn(turn, reply) => {
                let outcome = Box::pin(run_turn(state, turn)).await;
                state.turns_handled += 1;
                state.last_activity = Instant::now();
                if let Err(error) = &outcome {
                    tracing::error!(user = %state.user_id, %error, "turn failed");
                }
                // The caller may have stopped waiting (reply window passed): not an error.
                let _ = reply.send(outcome);
                // After the reply: folding and memory work never delay it.
                if let Err(error) = Box::pin(fold_if_long(state)).await {
                    tracing::error!(user = %state.user_id, %error, "summary fold failed");
                }
                if let (Some(post), Some(user)) = (state.post_turn.take(), state.user.as_ref()) {
                    let deps = &state.deps;
                    let done = Box::pin(state.ltm.after_turn(
                        &deps.memory,
                        &deps.store,
                        user,
                        &myself,
                        post,
                    ))
                    .await;
                    if let Err(error) = done {
                        tracing::warn!(user = %state.user_id, %error, "memory work after a turn failed");
                    }
                }
            }
            UserMsg::MemoriesEmbedded(result) => {
                if let Some(user) = state.user.as_ref() {
                    let deps = &state.deps;
                    let done = Box::pin(state.ltm.embedded(
                        &deps.memory,
                        &deps.store,
                        user,
                        &myself,
                        result,
                        Utc::now(),
                    ))
                    .await;
                    if let Err(error) = done {
                        tracing::warn!(user = %state.user_id, %error, "taking memory vectors failed");
                    }
                }
            }
            UserMsg::Load(reply) => {
                let loaded = Box::pin(ensure_loaded(state)).await;
                state.last_activity = Instant::now();
                let _ = reply.send(loaded);
            }
            UserMsg::IdleCheck => {
                let idle_for = state.last_activity.elapsed();
                let limit = state.deps.idle_passivate;
                if idle_for >= limit {
                    let _ = state.directory.cast(DirectoryMsg::Idle {
                        user_id: state.user_id,
                        handled: state.turns_handled,
                    });
                    // Checked again later in case the Directory refused (a turn was in flight).
                    myself.send_after(limit, || UserMsg::IdleCheck);
                } else {
                    myself.send_after(limit - idle_for + Duration::from_millis(1), || {
                        UserMsg::IdleCheck
                    });
                }
            }
            UserMsg::Inspect(reply) => {
                let (memories, embedded_memories) = state.ltm.counts(&state.deps.memory);
                let _ = reply.send(UserSnapshot {
                    memories,
                    embedded_memories,
                    user_id: state.user_id,
                    loaded: state.user.is_some(),
                    recent: state.recent.iter().cloned().collect(),
                    summary: state.summary.as_ref().map(|s| s.text.clone()),
                    turns_handled: state.turns_handled,
                });
            }
        }
        Ok(())
    }
}

/// The fold in `state.summary` as a write, when it is not stored yet.
fn unsaved_summary(state: &UserState) -> Option<SummaryWrite> {
    let summary = state.summary.as_ref().filter(|_| state.summary_unsaved)?;
    Some(SummaryWrite {
        text: summary.text.clone(),
        through_message_id: summary.through_message_id,
        folded_messages: summary.folded_messages,
    })
}

/// Loads the user's state from the store if this is the first message since activation.
async fn ensure_loaded(state: &mut UserState) -> Result<(), TurnError> {
    if state.user.is_some() {
        return Ok(());
    }
    let store = &state.deps.store;
    let user = store.user(state.user_id).await?;
    let summary = store.conversation_summary(state.user_id).await?;
    let through = summary.as_ref().map_or(0, |s| s.through_message_id);
    let recent = store
        .recent_messages(state.user_id, RECENT_TURNS as u32)
        .await?;
    state.recent = recent.into_iter().filter(|m| m.id > through).collect();
    state.summary = summary;
    state.ltm.load(store, &user).await?;
    state.user = Some(user);
    Ok(())
}

/// Folds all but the last [`summary::KEEP_AFTER_FOLD`] messages into the rolling summary
/// once more than [`summary::FOLD_AT`] are unfolded, and stores it.
async fn fold_if_long(state: &mut UserState) -> Result<(), TurnError> {
    if state.recent.len() <= summary::FOLD_AT {
        return Ok(());
    }
    let Some(user) = state.user.clone() else {
        return Ok(());
    };
    let count = state.recent.len() - summary::KEEP_AFTER_FOLD;
    let folding: Vec<Message> = state.recent.iter().take(count).cloned().collect();
    let Some(through) = folding.last().map(|m| m.id) else {
        return Ok(());
    };
    let folded = state
        .deps
        .engine
        .summarize(FoldInput {
            user: &user,
            previous: state.summary.as_ref().map(|s| s.text.as_str()),
            messages: &folding,
        })
        .await;
    let store = &state.deps.store;
    let total = state.summary.as_ref().map_or(0, |s| s.folded_messages) + folding.len() as u64;
    store
        .record_llm_usage(state.user_id, None, &folded.usage)
        .await?;
    state.recent.drain(..count);
    state.summary_unsaved = true;
    state.summary = Some(ConversationSummary {
        text: folded.text,
        through_message_id: through,
        folded_messages: total,
        updated_at: Utc::now(),
    });
    tracing::debug!(user = %state.user_id, folded = count, "older turns folded into the summary");
    Ok(())
}

fn remember(state: &mut UserState, message: Message) {
    if state.recent.len() == RECENT_TURNS {
        state.recent.pop_front();
    }
    state.recent.push_back(message);
}

/// Runs one turn. A plain function over the state, so it reads top to bottom.
async fn run_turn(state: &mut UserState, turn: InboundTurn) -> Result<TurnOutcome, TurnError> {
    ensure_loaded(state).await?;
    let store = state.deps.store.clone();
    let user_id = state.user_id;

    // 1. Persist the inbound message. Dedupe: a retried webhook (same provider id) is stored
    //    once and gets the reply it got the first time.
    let inbound = match persist_inbound(state, &turn).await? {
        Written::Stored(inbound) => inbound,
        Written::Duplicate(existing) => {
            if let Some(reply) = store.reply_to(user_id, existing.id).await? {
                let silent = state.user.as_ref().is_some_and(|u| u.sms_opted_out)
                    && turn.channel == Channel::Sms;
                return Ok(TurnOutcome {
                    reply_id: Some(reply.id),
                    reply: (!silent).then_some(reply.body),
                    duplicate: true,
                });
            }
            // Stored but never answered (the process stopped mid-turn): answer it now.
            existing
        }
    };

    // 2. Carrier keywords, on SMS only.
    let opted_out = state.user.as_ref().is_some_and(|u| u.sms_opted_out);
    if turn.channel == Channel::Sms {
        match keywords::classify(&turn.body) {
            Some(Keyword::OptOut) => {
                set_opt_out(state, true).await?;
                tracing::info!(user = %user_id, "user opted out of SMS");
                return Ok(TurnOutcome {
                    reply: None,
                    duplicate: false,
                    reply_id: None,
                });
            }
            Some(Keyword::OptIn) if opted_out || !is_yes(&turn.body) => {
                if opted_out {
                    set_opt_out(state, false).await?;
                    tracing::info!(user = %user_id, "user opted back in to SMS");
                }
                // Twilio confirms the opt-in itself.
                return Ok(TurnOutcome {
                    reply: None,
                    duplicate: false,
                    reply_id: None,
                });
            }
            Some(Keyword::Help) => {
                let language = state.user.as_ref().map(|u| u.language).unwrap_or_default();
                let text = help_text(language).to_owned();
                return finish(state, &turn, &inbound, text, &[], opted_out).await;
            }
            _ => {}
        }
    }

    // 3. A reply to the last reminder ("done", "snooze 10", "plus tard") acts on it.
    if let Some(answer) = super::reminders::classify_reply(&turn.body)
        && let Some(user) = state.user.clone()
        && let Some(text) =
            super::reminders::answer_nudge(&store, &user, answer, turn.received_at).await?
    {
        return finish(state, &turn, &inbound, text, &[], opted_out).await;
    }

    // 4. The engine answers.
    let user = state
        .user
        .clone()
        .ok_or_else(|| TurnError::Store(StoreError::NotFound))?;
    state.deps.live.publish(user_id, &Event::Typing);
    let engine = state.deps.engine.clone();
    let summary = state.summary.as_ref().map(|s| s.text.clone());
    let ranked = state
        .ltm
        .recall(&state.deps.memory, &turn.body, turn.received_at)
        .await;
    let memories: Vec<_> = ranked.iter().map(recalled).collect();
    let reply = engine
        .respond(
            &store,
            TurnInput {
                user: &user,
                text: &turn.body,
                channel: turn.channel,
                now: turn.received_at,
                recent: state.recent.make_contiguous(),
                memories: &memories,
                summary: summary.as_deref(),
            },
        )
        .await?;
    state.post_turn = Some(PostTurn {
        message_id: inbound.id,
        message: turn.body.clone(),
        reply: reply.text.clone(),
        now: turn.received_at,
        used: ranked.iter().map(|r| r.memory.id).collect(),
    });
    let outcome = finish(state, &turn, &inbound, reply.text, &reply.usage, opted_out).await;
    // The turn may have changed tasks or reminders: open clients reload their lists.
    state.deps.live.publish(user_id, &Event::TaskChanged);
    outcome
}

fn is_yes(body: &str) -> bool {
    body.trim()
        .trim_end_matches(['.', '!'])
        .eq_ignore_ascii_case("yes")
}

/// Hands the inbound message and its SMS usage to the group-commit writer and waits until
/// they are durable.
async fn persist_inbound(state: &mut UserState, turn: &InboundTurn) -> Result<Written, TurnError> {
    let message = NewMessage {
        channel: turn.channel,
        direction: Direction::Inbound,
        body: turn.body.clone(),
        provider_message_id: turn.provider_message_id.clone(),
        in_reply_to: None,
    };
    let usage = if turn.channel == Channel::Sms {
        let shape = segments::analyze(&turn.body);
        let segments = turn.segments.unwrap_or(shape.segments);
        vec![NewSmsUsage {
            direction: Direction::Inbound,
            segments,
            encoding: shape.encoding,
            estimated_cost_micros: segments::estimated_cost_micros(segments),
        }]
    } else {
        Vec::new()
    };
    let written = state
        .deps
        .writer
        .write(MessageWrite {
            user: state.user_id,
            message,
            usage,
            summary: unsaved_summary(state),
        })
        .await?;
    state.summary_unsaved = false;
    if let Written::Stored(message) = &written {
        remember(state, message.clone());
    }
    Ok(written)
}

async fn set_opt_out(state: &mut UserState, opted_out: bool) -> Result<(), TurnError> {
    state
        .deps
        .store
        .set_sms_opt_out(state.user_id, opted_out)
        .await?;
    if let Some(user) = state.user.as_mut() {
        user.sms_opted_out = opted_out;
    }
    Ok(())
}

/// Persists the reply (and its SMS and model usage) before it leaves.
async fn finish(
    state: &mut UserState,
    turn: &InboundTurn,
    inbound: &Message,
    text: String,
    llm_usage: &[NewLlmUsage],
    opted_out: bool,
) -> Result<TurnOutcome, TurnError> {
    let sms = turn.channel == Channel::Sms;
    let body = if sms {
        // One curly quote would make the whole SMS UCS-2 and double its segments.
        segments::fit(&segments::normalize_punctuation(&text), MAX_REPLY_SEGMENTS)
    } else {
        text
    };
    let send_sms = sms && !opted_out;
    let usage: Vec<NewSmsUsage> = if send_sms {
        let shape = segments::analyze(&body);
        vec![NewSmsUsage {
            direction: Direction::Outbound,
            segments: shape.segments,
            encoding: shape.encoding,
            estimated_cost_micros: segments::estimated_cost_micros(shape.segments),
        }]
    } else {
        Vec::new()
    };
    let reply = NewMessage {
        channel: turn.channel,
        direction: Direction::Outbound,
        body,
        provider_message_id: None,
        in_reply_to: Some(inbound.id),
    };
    let stored = state
        .deps
        .writer
        .write(MessageWrite {
            user: state.user_id,
            message: reply,
            usage,
            summary: None,
        })
        .await?
        .into_message();
    state
        .deps
        .store
        .record_llm_usage(state.user_id, Some(stored.id), llm_usage)
        .await?;
    let live = &state.deps.live;
    live.publish(state.user_id, &Event::message(inbound));
    live.publish(state.user_id, &Event::message(&stored));
    let body = stored.body.clone();
    let reply_id = stored.id;
    remember(state, stored);
    Ok(TurnOutcome {
        reply: (!sms || send_sms).then_some(body),
        duplicate: false,
        reply_id: Some(reply_id),
    })
}
