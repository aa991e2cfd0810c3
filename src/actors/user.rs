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
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;
use tokio::time::Instant;

use super::directory::DirectoryMsg;
use super::user_memory::{EmbeddedMemories, LtmCache, PostTurn, recalled};
use super::{TurnDeps, TurnError};
use crate::agent::offline::help_text;
use crate::agent::{FoldInput, Said, TurnInput, summary};
use crate::live::Event;
use crate::sms::keywords::{self, Keyword};
use crate::sms::segments;
use crate::store::{
    Channel, Committed, ConversationSummary, Direction, Message, MessageWrite, NewLlmUsage,
    NewMessage, NewSmsUsage, ReplyWrite, StoreError, SummaryWrite, User, UserId, Written,
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
    /// Run one turn and answer on the port. Shared: the sender keeps it to send again should
    /// the actor stop before answering.
    Turn(
        Arc<InboundTurn>,
        RpcReplyPort<Result<TurnOutcome, TurnError>>,
    ),
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
    /// The last [`RECENT_TURNS`] messages not folded into `summary`, oldest first, compact;
    /// the ring holds no spare slots (it grows by one up to [`RECENT_TURNS`]).
    recent: VecDeque<Said>,
    /// The rolling summary of older turns; loaded with the user.
    summary: Option<ConversationSummary>,
    /// Turns handled since activation; the Directory compares it with turns routed.
    turns_handled: u64,
    last_activity: Instant,
    /// The user's long-term memories, loaded with the rest.
    ltm: LtmCache,
    /// Left by an answered turn for the memory work done after its reply is sent (boxed: it
    /// lives between a reply and the work after it, and an idle actor keeps its slot).
    post_turn: Option<Box<PostTurn>>,
    /// `summary` holds a fold not stored yet: it rides with the user's next write (one group
    /// commit instead of a commit of its own), or is stored when the actor stops. If the
    /// process dies first, nothing is lost: the messages it covers are reloaded at activation.
    summary_unsaved: bool,
    /// The usage of the model calls that wrote the unsaved fold(s): stored with it, in the
    /// same transaction (lost with it if the process dies first).
    fold_usage: Vec<NewLlmUsage>,
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
            let store = &state.deps.store;
            let saved = Box::pin(async {
                store
                    .save_conversation_summary(
                        state.user_id,
                        &fold.text,
                        fold.through_message_id,
                        fold.folded_messages,
                    )
                    .await?;
                store
                    .record_llm_usage(state.user_id, None, &fold.model_usage)
                    .await
            })
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
            fold_usage: Vec::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // The work of a message is boxed: an actor's task holds the future of its handler
        // inline (in the message loop ractor allocates once per actor), so an unboxed handler
        // (its messages, replies and the work after a turn) would make every idle actor carry
        // the largest one's state machine.
        Box::pin(handle(myself, message, state)).await
    }
}

/// What [`UserActor`] does with one message.
async fn handle(
    myself: ActorRef<UserMsg>,
    message: UserMsg,
    state: &mut UserState,
) -> Result<(), ActorProcessingErr> {
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
            Box::pin(fold_if_long(state)).await;
            if let (Some(post), Some(user)) = (state.post_turn.take(), state.user.as_ref()) {
                let deps = &state.deps;
                let done =
                    Box::pin(
                        state
                            .ltm
                            .after_turn(&deps.memory, &deps.store, user, &myself, *post),
                    )
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
                recent: state
                    .recent
                    .iter()
                    .map(|m| m.to_message(state.user_id))
                    .collect(),
                summary: state.summary.as_ref().map(|s| s.text.clone()),
                turns_handled: state.turns_handled,
            });
        }
    }
    Ok(())
}

/// The fold in `state.summary` as a write, when it is not stored yet.
fn unsaved_summary(state: &UserState) -> Option<SummaryWrite> {
    let summary = state.summary.as_ref().filter(|_| state.summary_unsaved)?;
    Some(SummaryWrite {
        text: summary.text.clone(),
        through_message_id: summary.through_message_id,
        folded_messages: summary.folded_messages,
        model_usage: state.fold_usage.clone(),
    })
}

/// Loads the user's state from the store if this is the first message since activation.
async fn ensure_loaded(state: &mut UserState) -> Result<(), TurnError> {
    if state.user.is_some() {
        return Ok(());
    }
    let loaded = state
        .deps
        .store
        .activation(state.user_id, RECENT_TURNS as u32)
        .await?;
    let through = loaded.summary.as_ref().map_or(0, |s| s.through_message_id);
    let unfolded = |m: &&Message| m.id > through;
    // Exactly as many slots as messages: collecting a filtered iterator would round up.
    let mut ring = VecDeque::with_capacity(loaded.recent.iter().filter(unfolded).count());
    ring.extend(loaded.recent.iter().filter(unfolded).map(Said::from));
    state.recent = ring;
    state.summary = loaded.summary;
    state
        .ltm
        .fill(loaded.fingerprint, loaded.memories, &loaded.user);
    state.user = Some(loaded.user);
    Ok(())
}

/// Folds all but the last [`summary::KEEP_AFTER_FOLD`] messages into the rolling summary
/// once more than [`summary::FOLD_AT`] are unfolded. The fold and its model usage are stored
/// with the user's next write (or when the actor stops).
async fn fold_if_long(state: &mut UserState) {
    if state.recent.len() <= summary::FOLD_AT {
        return;
    }
    let Some(user) = state.user.clone() else {
        return;
    };
    let count = state.recent.len() - summary::KEEP_AFTER_FOLD;
    let folding = &state.recent.make_contiguous()[..count];
    let Some(through) = folding.last().map(Said::id) else {
        return;
    };
    let folded = state
        .deps
        .engine
        .summarize(FoldInput {
            user: &user,
            previous: state.summary.as_ref().map(|s| s.text.as_str()),
            messages: folding,
        })
        .await;
    let total = state.summary.as_ref().map_or(0, |s| s.folded_messages) + folding.len() as u64;
    state.recent.drain(..count);
    state.summary_unsaved = true;
    state.fold_usage.extend(folded.usage);
    state.summary = Some(ConversationSummary {
        text: folded.text,
        through_message_id: through,
        folded_messages: total,
        updated_at: Utc::now(),
    });
    tracing::debug!(user = %state.user_id, folded = count, "older turns folded into the summary");
}

/// Adds a message to the recent turns, dropping the oldest past [`RECENT_TURNS`]; the ring
/// grows one slot at a time (a doubling would leave spare slots for the actor's life).
fn remember(state: &mut UserState, message: Said) {
    if state.recent.len() >= RECENT_TURNS {
        state.recent.pop_front();
    } else if state.recent.len() == state.recent.capacity() {
        state.recent.reserve_exact(1);
    }
    state.recent.push_back(message);
}

/// How long a turn may take to answer before its inbound message is stored on its own. An
/// answer ready within it (the offline rules, a cached reply) is committed with the message
/// in one write; a slower one (a model call) does not keep the message waiting to be durable.
const ANSWER_WITH_MESSAGE_WITHIN: Duration = Duration::from_millis(50);

/// Runs one turn. A plain function over the state, so it reads top to bottom.
///
/// The inbound message is durable before the reply leaves, and never later than
/// [`ANSWER_WITH_MESSAGE_WITHIN`] after the answer began, whichever comes first: a quick
/// answer is stored with its message in one commit of the group-commit writer. A turn that
/// fails (or panics) before it has an answer stores its message alone, so nothing the user
/// wrote is lost.
async fn run_turn(state: &mut UserState, turn: Arc<InboundTurn>) -> Result<TurnOutcome, TurnError> {
    ensure_loaded(state).await?;

    // 1. Dedupe: a retried webhook (same provider id) gets the reply it got the first time.
    //    Seen in the recent turns here; the store refuses any older copy at the commit.
    if let Some(outcome) = replay(state, &turn).await? {
        return Ok(outcome);
    }

    // 2–4. The answer; the message is stored alone meanwhile if it takes long.
    let writer = state.deps.writer.clone();
    let alone = message_write(state, &turn, None);
    let (answered, stored_first) = {
        let mut answering = Box::pin(AssertUnwindSafe(answer(state, &turn)).catch_unwind());
        tokio::select! {
            biased;
            answered = &mut answering => (answered, None),
            () = tokio::time::sleep(ANSWER_WITH_MESSAGE_WITHIN) => {
                let (written, answered) = tokio::join!(writer.write(alone.clone()), answering);
                (answered, Some(written))
            }
        }
    };
    let stored_first = match stored_first {
        Some(written) => Some(took(state, written?)),
        None => None,
    };
    let failed = match answered {
        Ok(Ok(answer)) => return commit(state, &turn, answer, alone, stored_first).await,
        Ok(Err(error)) => Ok(error),
        Err(panic) => Err(panic),
    };
    if stored_first.is_none() {
        store_alone(state, alone).await;
    }
    match failed {
        Ok(error) => Err(error),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Stores the message of a turn that has no answer, logging a failure (the turn's own error
/// is what its caller hears).
async fn store_alone(state: &mut UserState, write: MessageWrite) {
    match state.deps.writer.write(write).await {
        Ok(written) => {
            took(state, written);
        }
        Err(error) => {
            tracing::error!(user = %state.user_id, %error, "storing a failed turn's message failed");
        }
    }
}

/// The reply stored for a message seen among the recent turns, for a retried webhook.
async fn replay(state: &UserState, turn: &InboundTurn) -> Result<Option<TurnOutcome>, TurnError> {
    let Some(sid) = turn.provider_message_id.as_deref() else {
        return Ok(None);
    };
    let Some(seen) = state
        .recent
        .iter()
        .find(|m| m.direction() == Direction::Inbound && m.provider_message_id() == Some(sid))
    else {
        return Ok(None);
    };
    let reply = match state
        .recent
        .iter()
        .find(|m| m.in_reply_to() == Some(seen.id()))
    {
        Some(reply) => Some((reply.id(), reply.body().to_owned())),
        None => {
            let stored = state.deps.store.reply_to(state.user_id, seen.id()).await?;
            stored.map(|reply| (reply.id, reply.body))
        }
    };
    // Stored but never answered (STOP, or the process stopped mid-turn): answered now.
    Ok(reply.map(|(id, body)| replayed(state, turn, id, body)))
}

/// A stored reply (its id and body) given again to a retried webhook (nothing, to an
/// opted-out phone).
fn replayed(state: &UserState, turn: &InboundTurn, reply_id: i64, body: String) -> TurnOutcome {
    let silent =
        state.user.as_ref().is_some_and(|u| u.sms_opted_out) && turn.channel == Channel::Sms;
    TurnOutcome {
        reply_id: Some(reply_id),
        reply: (!silent).then_some(body),
        duplicate: true,
    }
}

/// What a turn answers, before anything of it is stored.
struct Answer {
    /// `None` when nothing must be sent (STOP, START).
    text: Option<String>,
    /// Model usage of the reply, stored with its id.
    llm_usage: Vec<NewLlmUsage>,
    /// The user had opted out of SMS when the message came.
    opted_out: bool,
    /// Set when the engine answered: the memories it was given, for the after-turn work.
    recalled: Option<Vec<i64>>,
}

impl Answer {
    fn fixed(text: Option<String>, opted_out: bool) -> Self {
        Self {
            text,
            llm_usage: Vec::new(),
            opted_out,
            recalled: None,
        }
    }
}

/// Carrier keywords, answers to reminders, then the engine.
async fn answer(state: &mut UserState, turn: &InboundTurn) -> Result<Answer, TurnError> {
    let store = state.deps.store.clone();
    let user_id = state.user_id;

    // 2. Carrier keywords, on SMS only.
    let opted_out = state.user.as_ref().is_some_and(|u| u.sms_opted_out);
    if turn.channel == Channel::Sms {
        match keywords::classify(&turn.body) {
            Some(Keyword::OptOut) => {
                set_opt_out(state, true).await?;
                tracing::info!(user = %user_id, "user opted out of SMS");
                return Ok(Answer::fixed(None, opted_out));
            }
            Some(Keyword::OptIn) if opted_out || !is_yes(&turn.body) => {
                if opted_out {
                    set_opt_out(state, false).await?;
                    tracing::info!(user = %user_id, "user opted back in to SMS");
                }
                // Twilio confirms the opt-in itself.
                return Ok(Answer::fixed(None, opted_out));
            }
            Some(Keyword::Help) => {
                let language = state.user.as_ref().map(|u| u.language).unwrap_or_default();
                return Ok(Answer::fixed(
                    Some(help_text(language).to_owned()),
                    opted_out,
                ));
            }
            _ => {}
        }
    }

    // 3. A reply to the last reminder ("done", "snooze 10", "plus tard") acts on it.
    if let Some(answer) = super::reminders::classify_reply(&turn.body)
        && let Some(user) = state.user.as_ref()
        && let Some(text) =
            super::reminders::answer_nudge(&store, user, answer, turn.received_at).await?
    {
        return Ok(Answer::fixed(Some(text), opted_out));
    }

    // 4. The engine answers.
    // The state's fields are borrowed apart, so nothing of it is copied for the engine.
    let user = state
        .user
        .as_ref()
        .ok_or_else(|| TurnError::Store(StoreError::NotFound))?;
    let engine = &state.deps.engine;
    if !engine.answers_at_once() {
        state.deps.live.publish(user_id, &Event::Typing);
    }
    let ranked = state
        .ltm
        .recall(&state.deps.memory, &turn.body, turn.received_at)
        .await;
    let memories: Vec<_> = ranked.iter().map(recalled).collect();
    let reply = engine
        .respond(
            &store,
            TurnInput {
                user,
                text: &turn.body,
                channel: turn.channel,
                now: turn.received_at,
                recent: state.recent.make_contiguous(),
                memories: &memories,
                summary: state.summary.as_ref().map(|s| s.text.as_str()),
            },
        )
        .await?;
    Ok(Answer {
        text: Some(reply.text),
        llm_usage: reply.usage,
        opted_out,
        recalled: Some(ranked.iter().map(|r| r.memory.id).collect()),
    })
}

fn is_yes(body: &str) -> bool {
    body.trim()
        .trim_end_matches(['.', '!'])
        .eq_ignore_ascii_case("yes")
}

/// Stores the inbound `message` with its answer (or the answer alone, when the message was
/// stored first), then tells open clients.
async fn commit(
    state: &mut UserState,
    turn: &InboundTurn,
    answer: Answer,
    message: MessageWrite,
    stored_first: Option<Committed>,
) -> Result<TurnOutcome, TurnError> {
    let sms = turn.channel == Channel::Sms;
    let send_sms = sms && !answer.opted_out;
    let reply = answer
        .text
        .map(|text| reply_write(turn, text, send_sms, answer.llm_usage));
    let committed = match stored_first {
        Some(committed) => committed,
        None => {
            let write = MessageWrite {
                reply: reply.clone(),
                ..message
            };
            let committed = state.deps.writer.write(write).await?;
            took(state, committed)
        }
    };
    // The store's memories as of the turn's last commit: what the after-turn work compares
    // its cache with.
    let mut memories = committed.memories;
    let (inbound, answered) = match committed.written {
        Written::Answered { message, reply } => (message, Some(reply)),
        Written::Stored(message) => (message, None),
        Written::Duplicate(existing) => {
            // A copy the recent turns no longer held: the reply it got stands.
            if let Some(stored) = state
                .deps
                .store
                .reply_to(state.user_id, existing.id)
                .await?
            {
                return Ok(replayed(state, turn, stored.id, stored.body));
            }
            // Stored but never answered: this answer is its reply.
            (existing, None)
        }
    };
    // A message stored without its reply (first, or before this turn): the reply follows alone.
    let stored = match (answered, reply) {
        (Some(stored), _) => Some(stored),
        (None, Some(reply)) => {
            let committed = write_reply(state, &inbound, reply).await?;
            memories = committed.memories;
            Some(committed.written.into_message())
        }
        (None, None) => None,
    };
    let Some(stored) = stored else {
        return Ok(TurnOutcome {
            reply: None,
            duplicate: false,
            reply_id: None,
        });
    };
    let live = &state.deps.live;
    live.publish(state.user_id, &Event::message(&inbound));
    live.publish(state.user_id, &Event::message(&stored));
    if let Some(used) = answer.recalled {
        state.post_turn = Some(Box::new(PostTurn {
            message_id: inbound.id,
            message: turn.body.clone(),
            reply: stored.body.clone(),
            now: turn.received_at,
            used,
            memories,
        }));
        // The turn may have changed tasks or reminders: open clients reload their lists.
        live.publish(state.user_id, &Event::TaskChanged);
    }
    let reply_id = stored.id;
    remember(state, Said::from(&stored));
    let body = stored.body;
    Ok(TurnOutcome {
        reply: (!sms || send_sms).then_some(body),
        duplicate: false,
        reply_id: Some(reply_id),
    })
}

/// The reply as stored: SMS-sized on SMS, with its usage row when it is sent as an SMS, and
/// the usage of the model calls that wrote it.
fn reply_write(
    turn: &InboundTurn,
    text: String,
    send_sms: bool,
    model_usage: Vec<NewLlmUsage>,
) -> ReplyWrite {
    let body = if turn.channel == Channel::Sms {
        // One curly quote would make the whole SMS UCS-2 and double its segments.
        segments::fit(&segments::normalize_punctuation(&text), MAX_REPLY_SEGMENTS)
    } else {
        text
    };
    let usage = if send_sms {
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
    ReplyWrite {
        message: NewMessage {
            channel: turn.channel,
            direction: Direction::Outbound,
            body,
            provider_message_id: None,
            in_reply_to: None,
        },
        usage,
        model_usage,
    }
}

/// The inbound message with its SMS usage, the summary fold waiting to be stored, and the
/// reply (if any), as one write of the group-commit writer.
fn message_write(state: &UserState, turn: &InboundTurn, reply: Option<ReplyWrite>) -> MessageWrite {
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
    MessageWrite {
        user: state.user_id,
        message,
        usage,
        model_usage: Vec::new(),
        summary: unsaved_summary(state),
        reply,
    }
}

/// Takes note of a [`message_write`] stored: its summary fold is saved, and the message
/// joins the recent turns.
fn took(state: &mut UserState, committed: Committed) -> Committed {
    state.summary_unsaved = false;
    state.fold_usage.clear();
    if let Written::Stored(message) | Written::Answered { message, .. } = &committed.written {
        remember(state, Said::from(message));
    }
    committed
}

/// Stores a reply to a message stored before.
async fn write_reply(
    state: &mut UserState,
    inbound: &Message,
    reply: ReplyWrite,
) -> Result<Committed, TurnError> {
    let committed = state
        .deps
        .writer
        .write(MessageWrite {
            user: state.user_id,
            message: NewMessage {
                in_reply_to: Some(inbound.id),
                ..reply.message
            },
            usage: reply.usage,
            model_usage: reply.model_usage,
            summary: None,
            reply: None,
        })
        .await?;
    Ok(committed)
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
