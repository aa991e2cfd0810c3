//! The planner: one turn of the LLM agent.
//!
//! 1. Build the request: the ADHD system prompt in the user's language with their local
//!    time, the rolling summary and recalled memories; the recent turns; the functions of
//!    the tool registry.
//! 2. Call the model (through the [`LanguageModel`] chain, or the response cache).
//! 3. If it asks for tools: run each call through the registry (which validates the
//!    arguments against the tool's schema before anything runs), give the results back, and
//!    go to 2. A call the registry rejects goes back to the model as an error once per turn;
//!    a second rejected round ends the turn.
//! 4. Stop on a final answer.
//!
//! A [`Budget`] bounds every turn: model calls, tool calls, tokens and wall time. When the
//! tool or call budget runs out the model gets one last call without tools to word the
//! answer; when that is impossible (tokens or time spent, no model answering) the user gets
//! a short account of what was done. Never silence.
//!
//! When no model answers before any tool ran, the offline rules answer, and the reply says
//! plainly that it comes from the offline mode.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio::time::Instant;

use super::cache::ResponseCache;
use super::offline::OfflineRules;
use super::{
    AgentError, FoldInput, Folded, LanguageModel, Reply, ReplySource, TurnEngine, TurnInput,
    prompts, summary,
};
use crate::llm::{ChatRequest, FunctionSpec, Functions, Generation, Item, ModelTurn, ToolResult};
use crate::store::{Direction, Language, NewLlmUsage, Store, User};
use crate::tools::{ToolContext, ToolError, ToolRegistry};

/// What one turn may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Model calls per turn, the wrap-up call included.
    pub max_llm_calls: u32,
    /// Tool calls per turn (rejected ones count: they were attempts).
    pub max_tool_calls: u32,
    /// Tokens (prompt + output, summed over the turn's calls) after which no call is made.
    pub max_tokens: u32,
    /// Wall time of the whole turn.
    pub deadline: Duration,
    /// The cap on one answer's length.
    pub max_output_tokens: u32,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            max_llm_calls: 6,
            max_tool_calls: 8,
            max_tokens: 32_000,
            deadline: Duration::from_secs(20),
            max_output_tokens: 1_024,
        }
    }
}

/// How long a summary fold may take.
const FOLD_DEADLINE: Duration = Duration::from_secs(20);

/// The LLM agent.
pub struct Planner {
    model: Arc<dyn LanguageModel>,
    tools: ToolRegistry,
    /// The registry's declarations, converted and written once.
    functions: Functions,
    budget: Budget,
    cache: Option<ResponseCache>,
}

impl Planner {
    pub fn new(
        model: Arc<dyn LanguageModel>,
        tools: ToolRegistry,
        budget: Budget,
        cache: Option<ResponseCache>,
    ) -> Self {
        let functions = tools
            .declarations()
            .into_iter()
            .map(|d| FunctionSpec {
                name: d.name.to_owned(),
                description: d.description.to_owned(),
                parameters: d.parameters,
            })
            .collect::<Vec<_>>()
            .into();
        Self {
            model,
            tools,
            functions,
            budget,
            cache,
        }
    }

    /// The first request of a turn.
    pub fn first_request(&self, input: &TurnInput<'_>) -> ChatRequest {
        let system = prompts::system(
            input.user,
            input.channel,
            input.now,
            input.summary,
            input.memories,
        );
        ChatRequest {
            system,
            items: history(input),
            functions: self.functions.clone(),
            allow_calls: true,
            max_output_tokens: self.budget.max_output_tokens,
        }
    }

    /// One model step: the cache, else the model chain. Records usage in `run`.
    async fn step(
        &self,
        user: &User,
        request: &ChatRequest,
        deadline: Instant,
        run: &mut Run,
    ) -> Option<Generation> {
        run.llm_calls += 1;
        let key = self
            .cache
            .as_ref()
            .map(|_| ResponseCache::key(user.id, request));
        if let (Some(cache), Some(key)) = (&self.cache, &key)
            && let Some(hit) = cache.get(key).await
        {
            run.usage.push(usage_row(&hit, true));
            return Some(hit);
        }
        match self.model.generate(request, deadline).await {
            Ok(generation) => {
                run.tokens = run.tokens.saturating_add(generation.usage.total_tokens);
                run.usage.push(usage_row(&generation, false));
                if let (Some(cache), Some(key)) = (&self.cache, &key) {
                    cache.put(key, &generation).await;
                }
                Some(generation)
            }
            Err(unavailable) => {
                tracing::warn!(user = %user.id, error = %unavailable, "no model answered");
                None
            }
        }
    }

    /// Runs the model's calls; returns the results and whether the registry rejected any.
    async fn run_calls(
        &self,
        ctx: &ToolContext<'_>,
        turn: &ModelTurn,
        run: &mut Run,
    ) -> Result<(Vec<ToolResult>, bool), AgentError> {
        let mut results = Vec::with_capacity(turn.calls.len());
        let mut rejected = false;
        for call in &turn.calls {
            let response = if run.tool_calls >= self.budget.max_tool_calls {
                json!({ "error": "not run: this turn's tool budget is used up" })
            } else {
                run.tool_calls += 1;
                match self.tools.call(&call.name, ctx, call.args.clone()).await {
                    Ok(output) => {
                        run.done.push(output.summary);
                        json!({ "result": output.data })
                    }
                    Err(ToolError::Store(error)) => return Err(error.into()),
                    Err(error) => {
                        if error.is_caller_error() {
                            rejected = true;
                            tracing::info!(user = %ctx.user.id, tool = %call.name, "tool call rejected");
                        }
                        json!({ "error": error.to_string() })
                    }
                }
            };
            results.push(ToolResult {
                id: call.id.clone(),
                name: call.name.clone(),
                response,
            });
        }
        Ok((results, rejected))
    }

    /// The offline rules' answer, marked as such.
    async fn offline(
        &self,
        store: &Store,
        input: TurnInput<'_>,
        run: Run,
    ) -> Result<Reply, AgentError> {
        let rules = OfflineRules.respond(store, input).await?;
        Ok(Reply {
            text: format!("{}{}", offline_notice(input.user.language), rules.text),
            source: ReplySource::OfflineFallback,
            usage: run.usage,
        })
    }
}

/// What a turn has spent and done so far.
#[derive(Debug, Default)]
struct Run {
    llm_calls: u32,
    tool_calls: u32,
    tokens: u32,
    /// Whether a rejected call already went back to the model this turn.
    corrected: bool,
    /// The summaries of the tool calls that succeeded, in order.
    done: Vec<String>,
    /// The last text the model wrote alongside calls (a partial answer in its own words).
    last_text: Option<String>,
    usage: Vec<NewLlmUsage>,
}

impl Run {
    /// The answer when the turn cannot get a final one from the model.
    fn partial(self, language: Language) -> Reply {
        let text = match (self.last_text, self.done.is_empty()) {
            (Some(text), _) => text,
            (None, false) => partial_text(language, &self.done),
            (None, true) => sorry_text(language).to_owned(),
        };
        Reply {
            text,
            source: ReplySource::Partial,
            usage: self.usage,
        }
    }
}

#[async_trait]
impl TurnEngine for Planner {
    async fn respond(&self, store: &Store, input: TurnInput<'_>) -> Result<Reply, AgentError> {
        let deadline = Instant::now() + self.budget.deadline;
        let language = input.user.language;
        let ctx = ToolContext {
            store,
            user: input.user,
            now: input.now,
            channel: input.channel,
        };
        let mut request = self.first_request(&input);
        let mut run = Run::default();
        loop {
            let out_of_time = Instant::now() >= deadline;
            if out_of_time
                || run.tokens >= self.budget.max_tokens
                || run.llm_calls >= self.budget.max_llm_calls
            {
                tracing::info!(user = %input.user.id, llm_calls = run.llm_calls, tool_calls = run.tool_calls, tokens = run.tokens, out_of_time, "turn budget used up");
                return Ok(run.partial(language));
            }
            let wrap_up = run.llm_calls + 1 >= self.budget.max_llm_calls
                || run.tool_calls >= self.budget.max_tool_calls;
            if wrap_up && request.allow_calls {
                request.allow_calls = false;
                request.items.push(Item::User(prompts::wrap_up(input.user)));
            }
            let Some(generation) = self.step(input.user, &request, deadline, &mut run).await else {
                if run.tool_calls == 0 {
                    return self.offline(store, input, run).await;
                }
                return Ok(run.partial(language));
            };
            let provider = generation.provider.clone();
            let turn = generation.turn;
            if turn.calls.is_empty() || !request.allow_calls {
                return Ok(match turn.text {
                    Some(text) => Reply {
                        text,
                        source: if request.allow_calls {
                            ReplySource::Model(provider)
                        } else {
                            ReplySource::Partial
                        },
                        usage: run.usage,
                    },
                    None => run.partial(language),
                });
            }
            if let Some(text) = &turn.text {
                run.last_text = Some(text.clone());
            }
            let (results, rejected) = self.run_calls(&ctx, &turn, &mut run).await?;
            if rejected && run.corrected {
                tracing::info!(user = %input.user.id, "second rejected tool round; ending the turn");
                return Ok(run.partial(language));
            }
            run.corrected |= rejected;
            request.items.push(Item::Model(turn));
            request.items.push(Item::ToolResults(results));
        }
    }

    async fn summarize(&self, input: FoldInput<'_>) -> Folded {
        let (system, text) = prompts::fold(input.user, input.previous, input.messages);
        let request = ChatRequest {
            system,
            items: vec![Item::User(text)],
            functions: Default::default(),
            allow_calls: false,
            max_output_tokens: 512,
        };
        match self
            .model
            .generate(&request, Instant::now() + FOLD_DEADLINE)
            .await
        {
            Ok(generation) => match generation.turn.text.clone() {
                Some(text) => Folded {
                    text,
                    usage: vec![usage_row(&generation, false)],
                },
                None => Folded {
                    text: summary::extractive(input.user.language, input.previous, input.messages),
                    usage: vec![usage_row(&generation, false)],
                },
            },
            Err(error) => {
                tracing::warn!(user = %input.user.id, %error, "summary fold falls back to extractive");
                Folded {
                    text: summary::extractive(input.user.language, input.previous, input.messages),
                    usage: Vec::new(),
                }
            }
        }
    }
}

/// The recent turns as conversation items, ending with this turn's message. Leading model
/// messages are dropped (a conversation starts with the user).
fn history(input: &TurnInput<'_>) -> Vec<Item> {
    let mut items: Vec<Item> = input
        .recent
        .iter()
        .skip_while(|m| m.direction() == Direction::Outbound)
        .map(|m| match m.direction() {
            Direction::Inbound => Item::User(m.body().to_owned()),
            Direction::Outbound => Item::Model(ModelTurn {
                text: Some(m.body().to_owned()),
                calls: Vec::new(),
                raw: None,
            }),
        })
        .collect();
    let ends_with_this_message = matches!(
        input.recent.last(),
        Some(m) if m.direction() == Direction::Inbound && m.body() == input.text
    );
    if !ends_with_this_message {
        items.push(Item::User(input.text.to_owned()));
    }
    items
}

fn usage_row(generation: &Generation, cached: bool) -> NewLlmUsage {
    NewLlmUsage {
        provider: generation.provider.clone(),
        model: generation.model.clone(),
        prompt_tokens: generation.usage.prompt_tokens,
        output_tokens: generation.usage.output_tokens,
        total_tokens: generation.usage.total_tokens,
        cached,
    }
}

/// What starts a reply of the offline rules standing in for the model.
pub fn offline_notice(language: Language) -> &'static str {
    match language {
        Language::En => "Offline mode: ",
        Language::Fr => "Mode hors ligne : ",
    }
}

fn partial_text(language: Language, done: &[String]) -> String {
    let done = done.join("; ");
    match language {
        Language::En => {
            format!("Here's what I did: {done}. I had to stop there - reply to keep going.")
        }
        Language::Fr => format!(
            "Voilà ce que j'ai fait : {done}. J'ai dû m'arrêter là — réponds pour continuer."
        ),
    }
}

fn sorry_text(language: Language) -> &'static str {
    match language {
        Language::En => {
            "Sorry, I couldn't finish that just now. Could you send it again in a minute?"
        }
        Language::Fr => {
            "Désolé, je n'ai pas pu finir tout de suite. Tu peux renvoyer ton message dans une minute ?"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::ModelUnavailable;
    use crate::llm::{Finish, ToolCall, Usage};
    use crate::store::{Channel, NewUser, Sealer, connect};
    use chrono::Utc;
    use serde_json::Value;
    use std::sync::Mutex;

    /// A model that answers from a script and records what it was asked.
    struct Scripted {
        answers: Mutex<Vec<Result<ModelTurn, ()>>>,
        seen: Mutex<Vec<ChatRequest>>,
    }

    impl Scripted {
        fn new(answers: Vec<Result<ModelTurn, ()>>) -> Arc<Self> {
            Arc::new(Self {
                answers: Mutex::new(answers.into_iter().rev().collect()),
                seen: Mutex::new(Vec::new()),
            })
        }
        fn seen(&self) -> Vec<ChatRequest> {
            self.seen.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl LanguageModel for Scripted {
        async fn generate(
            &self,
            request: &ChatRequest,
            _deadline: Instant,
        ) -> Result<Generation, ModelUnavailable> {
            self.seen.lock().unwrap().push(request.clone());
            let next = self.answers.lock().unwrap().pop();
            match next {
                Some(Ok(turn)) => Ok(Generation {
                    turn,
                    usage: Usage {
                        prompt_tokens: 100,
                        output_tokens: 10,
                        total_tokens: 110,
                    },
                    finish: Finish::Stop,
                    provider: "gemini".into(),
                    model: "test".into(),
                }),
                _ => Err(ModelUnavailable("scripted failure".into())),
            }
        }
    }

    fn text(t: &str) -> Result<ModelTurn, ()> {
        Ok(ModelTurn {
            text: Some(t.into()),
            calls: vec![],
            raw: None,
        })
    }

    fn calls(calls: &[(&str, Value)]) -> Result<ModelTurn, ()> {
        Ok(ModelTurn {
            text: None,
            calls: calls
                .iter()
                .map(|(name, args)| ToolCall {
                    id: None,
                    name: (*name).into(),
                    args: args.clone(),
                })
                .collect(),
            raw: None,
        })
    }

    async fn fixture(language: Language) -> (Store, User) {
        let store = connect("sqlite::memory:", Sealer::generate())
            .await
            .unwrap();
        let user = store
            .create_user(&NewUser {
                display_name: "Sam".into(),
                phone: "+15550000001".into(),
                number: "+15559990001".into(),
                language,
                time_zone: "America/New_York".into(),
            })
            .await
            .unwrap();
        (store, user)
    }

    fn planner(model: Arc<Scripted>, budget: Budget) -> Planner {
        Planner::new(model, crate::tools::internal::registry(), budget, None)
    }

    async fn say(planner: &Planner, store: &Store, user: &User, text: &str) -> Reply {
        planner
            .respond(
                store,
                TurnInput {
                    user,
                    text,
                    channel: Channel::Sms,
                    now: Utc::now(),
                    recent: &[],
                    memories: &[],
                    summary: None,
                },
            )
            .await
            .unwrap()
    }

    async fn open_titles(store: &Store, user: &User) -> Vec<String> {
        store
            .open_tasks(user.id)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.title)
            .collect()
    }

    #[tokio::test]
    async fn tool_calls_run_for_the_user_and_their_results_go_back_to_the_model() {
        let (store, user) = fixture(Language::En).await;
        let model = Scripted::new(vec![
            calls(&[("add_tasks", json!({ "titles": ["call mom"] }))]),
            text("Saved: call mom."),
        ]);
        let planner = planner(model.clone(), Budget::default());
        let reply = say(&planner, &store, &user, "remind me to call mom").await;
        assert_eq!(reply.text, "Saved: call mom.");
        assert_eq!(reply.source, ReplySource::Model("gemini".into()));
        assert_eq!(reply.usage.len(), 2);
        assert_eq!(open_titles(&store, &user).await, ["call mom"]);
        let second = &model.seen()[1];
        let Item::ToolResults(results) = second.items.last().unwrap() else {
            panic!("tool results come last");
        };
        assert_eq!(
            results[0].response["result"]["added"][0]["title"],
            "call mom"
        );
    }

    #[tokio::test]
    async fn a_rejected_call_goes_back_once_and_a_second_one_ends_the_turn() {
        let (store, user) = fixture(Language::En).await;
        let model = Scripted::new(vec![
            calls(&[("add_tasks", json!({ "title": "call mom" }))]),
            calls(&[("add_tasks", json!({ "titles": "call mom" }))]),
            text("never asked"),
        ]);
        let planner = planner(model.clone(), Budget::default());
        let reply = say(&planner, &store, &user, "add call mom").await;
        assert_eq!(
            model.seen().len(),
            2,
            "no third call after a second rejection"
        );
        assert_eq!(reply.source, ReplySource::Partial);
        assert!(!reply.text.is_empty());
        assert!(open_titles(&store, &user).await.is_empty(), "nothing ran");
        let Item::ToolResults(results) = model.seen()[1].items.last().unwrap().clone() else {
            panic!("tool results come last");
        };
        assert!(
            results[0].response["error"]
                .as_str()
                .unwrap()
                .contains("invalid arguments"),
            "{results:?}"
        );
    }

    #[tokio::test]
    async fn the_tool_budget_forces_a_wrap_up_call_without_tools() {
        let (store, user) = fixture(Language::En).await;
        let model = Scripted::new(vec![
            calls(&[("add_tasks", json!({ "titles": ["a"] }))]),
            calls(&[("add_tasks", json!({ "titles": ["b"] }))]),
            text("Saved a and b. Next: start a."),
        ]);
        let budget = Budget {
            max_tool_calls: 2,
            ..Budget::default()
        };
        let planner = planner(model.clone(), budget);
        let reply = say(&planner, &store, &user, "a then b then c").await;
        assert_eq!(reply.text, "Saved a and b. Next: start a.");
        assert_eq!(reply.source, ReplySource::Partial);
        let last = model.seen().last().unwrap().clone();
        assert!(!last.allow_calls);
        assert!(matches!(last.items.last(), Some(Item::User(note)) if note.contains("budget")));
        assert_eq!(open_titles(&store, &user).await, ["a", "b"]);
    }

    #[tokio::test]
    async fn without_any_model_the_offline_rules_answer_and_say_so() {
        let (store, user) = fixture(Language::Fr).await;
        let planner = planner(Scripted::new(vec![]), Budget::default());
        let reply = say(&planner, &store, &user, "ajoute tâche payer le loyer").await;
        assert_eq!(reply.source, ReplySource::OfflineFallback);
        assert!(
            reply
                .text
                .starts_with("Mode hors ligne : Ajouté : payer le loyer"),
            "{}",
            reply.text
        );
        assert_eq!(open_titles(&store, &user).await, ["payer le loyer"]);
    }

    #[tokio::test]
    async fn when_the_model_fails_after_tools_ran_the_user_hears_what_was_done() {
        let (store, user) = fixture(Language::En).await;
        let model = Scripted::new(vec![calls(&[(
            "add_tasks",
            json!({ "titles": ["pay rent"] }),
        )])]);
        let planner = planner(model, Budget::default());
        let reply = say(&planner, &store, &user, "add pay rent").await;
        assert_eq!(reply.source, ReplySource::Partial);
        assert!(
            reply
                .text
                .starts_with("Here's what I did: added 1 task(s): pay rent."),
            "{}",
            reply.text
        );
        assert_eq!(
            open_titles(&store, &user).await,
            ["pay rent"],
            "not added twice"
        );
    }

    #[tokio::test]
    async fn the_token_budget_stops_the_turn_before_another_call() {
        let (store, user) = fixture(Language::En).await;
        let model = Scripted::new(vec![
            calls(&[("list_tasks", json!({}))]),
            text("never asked"),
        ]);
        let budget = Budget {
            max_tokens: 100,
            ..Budget::default()
        };
        let planner = planner(model.clone(), budget);
        let reply = say(&planner, &store, &user, "what's on my list").await;
        assert_eq!(model.seen().len(), 1);
        assert_eq!(reply.source, ReplySource::Partial);
        assert!(reply.text.contains("0 open task(s)"), "{}", reply.text);
    }

    #[tokio::test]
    async fn a_cached_answer_is_served_without_calling_the_model() {
        let (store, user) = fixture(Language::En).await;
        let model = Scripted::new(vec![text("Hi Sam!")]);
        let planner = Planner::new(
            model.clone(),
            crate::tools::internal::registry(),
            Budget::default(),
            Some(ResponseCache::in_process(Duration::from_secs(60))),
        );
        let now = Utc::now();
        let input = TurnInput {
            user: &user,
            text: "hi",
            channel: Channel::Sms,
            now,
            recent: &[],
            memories: &[],
            summary: None,
        };
        let first = planner.respond(&store, input).await.unwrap();
        let second = planner.respond(&store, input).await.unwrap();
        assert_eq!(first.text, second.text);
        assert_eq!(model.seen().len(), 1);
        assert!(!first.usage[0].cached && second.usage[0].cached);
    }

    #[tokio::test]
    async fn the_prompt_carries_the_summary_the_history_and_this_message_last() {
        let (store, user) = fixture(Language::En).await;
        let model = Scripted::new(vec![text("ok")]);
        let planner = planner(model.clone(), Budget::default());
        let inbound = store
            .insert_message(
                user.id,
                &crate::store::NewMessage {
                    channel: Channel::Sms,
                    direction: Direction::Inbound,
                    body: "and groceries?".into(),
                    provider_message_id: None,
                    in_reply_to: None,
                },
            )
            .await
            .unwrap();
        planner
            .respond(
                &store,
                TurnInput {
                    user: &user,
                    text: "and groceries?",
                    channel: Channel::Sms,
                    now: Utc::now(),
                    recent: &[inbound.into()],
                    memories: &[],
                    summary: Some("Sam is moving house on Friday."),
                },
            )
            .await
            .unwrap();
        let request = &model.seen()[0];
        assert!(request.system.contains("Sam is moving house on Friday."));
        assert_eq!(request.items, vec![Item::User("and groceries?".into())]);
        assert_eq!(
            request.functions.len(),
            crate::tools::internal::registry().names().count()
        );
    }
}
