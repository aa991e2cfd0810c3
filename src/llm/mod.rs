//! Language-model providers: real HTTP clients behind one [`Provider`] trait, and what they
//! share (the provider-neutral conversation, errors, circuit breaking, retry timing).
//!
//! | module | what |
//! | --- | --- |
//! | [`gemini`] | Google's `generateContent` REST API (the primary model) |
//! | [`openai`] | OpenAI-compatible chat completions (Ollama, vLLM, llama.cpp server): the fallback |
//! | [`circuit`] | a circuit breaker per provider: a pure state machine over explicit time |
//! | [`retry`] | exponential backoff with jitter, `Retry-After` parsing |
//! | [`embeddings`] | Gemini `embedContent` / `batchEmbedContents`, for long-term memory retrieval |
//!
//! A conversation is a [`ChatRequest`]: a system instruction, the [`Item`]s so far and the
//! functions the model may call. Each provider turns it into its own wire format and its
//! answer back into a [`Generation`]. What a provider needs echoed back unchanged (Gemini's
//! parts with their thought signatures) rides along in [`ModelTurn::raw`], so a turn's history
//! goes back to the model exactly as the model wrote it.
//!
//! The clients know nothing of actors, users or the store; they never log message text.

pub mod circuit;
pub mod embeddings;
pub mod gemini;
pub mod openai;
pub mod retry;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// A function the model may call, as both providers declare it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionSpec {
    pub name: String,
    pub description: String,
    /// An OpenAPI 3.0 object schema of the arguments.
    pub parameters: Value,
}

/// The functions a request declares. A planner declares the same ones in every request, so
/// they are shared, and written as JSON once: a request's body copies that text instead of
/// walking every schema again, and its cache key hashes their digest.
#[derive(Debug, Clone)]
pub struct Functions {
    specs: Arc<[FunctionSpec]>,
    /// `specs` as a JSON array; `None` only if they could not be written, and then they are
    /// written again each time.
    json: Option<Arc<RawValue>>,
    /// SHA-256 of that JSON.
    digest: [u8; 32],
}

impl Functions {
    pub fn new(specs: Vec<FunctionSpec>) -> Self {
        let json = match serde_json::value::to_raw_value(&specs) {
            Ok(json) => Some(Arc::<RawValue>::from(json)),
            Err(error) => {
                tracing::warn!(%error, "function declarations not written once; per request");
                None
            }
        };
        let digest = match &json {
            Some(json) => Sha256::digest(json.get()),
            None => Sha256::digest(serde_json::to_string(&specs).unwrap_or_default()),
        };
        Self {
            specs: specs.into(),
            json,
            digest: digest.into(),
        }
    }

    pub fn specs(&self) -> &[FunctionSpec] {
        &self.specs
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// SHA-256 of the declarations' JSON: equal functions, equal digests.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }
}

impl Default for Functions {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl From<Vec<FunctionSpec>> for Functions {
    fn from(specs: Vec<FunctionSpec>) -> Self {
        Self::new(specs)
    }
}

impl PartialEq for Functions {
    fn eq(&self, other: &Self) -> bool {
        self.specs == other.specs
    }
}

/// As the JSON array of the declarations.
impl Serialize for Functions {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.json {
            Some(json) => json.serialize(serializer),
            None => self.specs.serialize(serializer),
        }
    }
}

/// One request to a model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatRequest {
    /// The system instruction (the ADHD coach prompt, the user's context).
    pub system: String,
    /// The conversation, oldest first; ends with a user message or tool results.
    pub items: Vec<Item>,
    /// Functions the model may call.
    pub functions: Functions,
    /// False to make the model answer in text only (the wrap-up call of a turn whose budget
    /// ran out); the functions stay declared so the history's calls still make sense.
    pub allow_calls: bool,
    /// A cap on the answer's length, in tokens.
    pub max_output_tokens: u32,
}

/// One step of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Item {
    /// What the user wrote.
    User(String),
    /// What the model answered, text and/or function calls.
    Model(ModelTurn),
    /// The results of the previous model turn's calls, in the same order.
    ToolResults(Vec<ToolResult>),
}

/// A model's answer as it goes back into the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelTurn {
    /// The visible text (thoughts excluded), if any.
    pub text: Option<String>,
    pub calls: Vec<ToolCall>,
    /// The provider's own encoding of this turn, echoed back verbatim to that provider.
    pub raw: Option<RawTurn>,
}

/// A provider's verbatim encoding of a model turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawTurn {
    /// Which wire format `value` is in (`gemini`, `openai`).
    pub format: String,
    pub value: Value,
}

/// A function call requested by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id for the call, when it gave one (OpenAI-compatible answers always
    /// carry one after normalisation; Gemini's often do not).
    pub id: Option<String>,
    pub name: String,
    /// The arguments as the model wrote them (validated by the tool registry, not here).
    pub args: Value,
}

/// The outcome of one call, for the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The id of the call it answers, when the call had one.
    pub id: Option<String>,
    pub name: String,
    /// A JSON object: `{"result": …}` or `{"error": "…"}`.
    pub response: Value,
}

/// Tokens one call consumed, as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub output_tokens: u32,
    pub total_tokens: u32,
}

/// Why a generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Finish {
    /// A complete answer (or calls to make).
    Stop,
    /// Cut at the output-token cap.
    Length,
    /// Anything else the provider named (safety, recitation, …).
    Other,
}

/// A model's answer to one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// The answer, ready to go back into the history.
    pub turn: ModelTurn,
    pub usage: Usage,
    pub finish: Finish,
    /// Which provider answered (`gemini`, `fallback`).
    pub provider: String,
    /// The model that answered, as configured or reported.
    pub model: String,
}

/// Why a provider gave no generation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// 429: slow down; `retry_after` when the provider said how long.
    #[error("rate limited")]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx: the provider failed.
    #[error("server error {status}")]
    Server {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No answer within the request's time.
    #[error("timed out")]
    Timeout,
    /// The connection failed (refused, reset, DNS).
    #[error("transport error: {0}")]
    Transport(String),
    /// The answer was not the documented shape.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// The provider refused the credentials or the model (401, 403, 404): retrying will
    /// not help until an operator fixes the settings.
    #[error("refused by the provider ({status}): check its settings")]
    Misconfigured { status: u16 },
    /// The provider refused this request (400, blocked prompt): not a sign of ill health.
    #[error("request rejected: {0}")]
    Rejected(String),
    /// The provider's circuit is open: the call was not made.
    #[error("circuit open")]
    CircuitOpen,
    /// The turn's deadline passed before the call could be made.
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// The worker running the call stopped (a bug, or shutdown).
    #[error("worker stopped")]
    WorkerLost,
}

impl LlmError {
    /// True when the same request may succeed if tried again a little later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LlmError::RateLimited { .. }
                | LlmError::Server { .. }
                | LlmError::Timeout
                | LlmError::Transport(_)
                | LlmError::WorkerLost
        )
    }

    /// True when the error says the provider is unhealthy (it counts against its circuit).
    pub fn counts_against_circuit(&self) -> bool {
        matches!(
            self,
            LlmError::RateLimited { .. }
                | LlmError::Server { .. }
                | LlmError::Timeout
                | LlmError::Transport(_)
                | LlmError::Malformed(_)
                | LlmError::Misconfigured { .. }
                | LlmError::WorkerLost
        )
    }

    /// How long the provider asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::RateLimited { retry_after } | LlmError::Server { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }
}

/// A language-model provider: one HTTP API.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// A short stable name for logs, metrics and usage rows (`gemini`, `fallback`).
    fn name(&self) -> &str;
    /// The model this provider calls.
    fn model(&self) -> &str;
    /// One request, answered within `timeout` or [`LlmError::Timeout`].
    async fn generate(
        &self,
        request: &ChatRequest,
        timeout: Duration,
    ) -> Result<Generation, LlmError>;
}

/// Maps a `reqwest` error of a sent request to an [`LlmError`].
fn transport_error(error: &reqwest::Error) -> LlmError {
    if error.is_timeout() {
        LlmError::Timeout
    } else if error.is_decode() || error.is_body() {
        LlmError::Malformed("unreadable body".into())
    } else {
        // The error's text names the host and the cause, never the request body.
        LlmError::Transport(error.to_string())
    }
}

/// Maps a non-success HTTP status to an [`LlmError`]; `retry_after` from the headers or
/// the body, `message` a short provider-given reason (never user text).
fn status_error(status: u16, retry_after: Option<Duration>, message: String) -> LlmError {
    match status {
        429 => LlmError::RateLimited { retry_after },
        401 | 403 | 404 => LlmError::Misconfigured { status },
        500..=599 => LlmError::Server {
            status,
            retry_after,
        },
        408 => LlmError::Timeout,
        _ => LlmError::Rejected(format!("{status}: {message}")),
    }
}

/// Reads an answer's body as JSON, keeping what a failure needs (status, `Retry-After`).
async fn read_answer(response: reqwest::Response) -> Result<Value, (u16, Option<Duration>, Value)> {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry::parse_retry_after(v, chrono::Utc::now()));
    let body = response.bytes().await.unwrap_or_default();
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        Ok(value)
    } else {
        Err((status, retry_after, value))
    }
}

/// `base` with `suffix` appended to its path (a base may carry a path prefix, e.g. `/v1`).
fn endpoint_under(base: &url::Url, suffix: &str) -> url::Url {
    let mut endpoint = base.clone();
    endpoint.set_path(&format!("{}/{suffix}", base.path().trim_end_matches('/')));
    endpoint
}

/// A reqwest client for model APIs: connect timeout, no proxy surprises, our user agent.
fn http_client(connect_timeout: Duration) -> Result<reqwest::Client, LlmError> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .user_agent(concat!("nudge/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| LlmError::Transport(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> FunctionSpec {
        FunctionSpec {
            name: name.into(),
            description: format!("Does {name}, \"quoted\" and\nmultiline."),
            parameters: serde_json::json!({
                "type": "object",
                "properties": { "titles": { "type": "array", "items": { "type": "string" } } },
                "required": ["titles"],
            }),
        }
    }

    #[test]
    fn functions_written_once_serialize_as_their_declarations_would() {
        let specs = vec![spec("add_tasks"), spec("list_tasks")];
        let functions = Functions::new(specs.clone());
        assert_eq!(functions.len(), 2);
        assert_eq!(
            serde_json::to_value(&functions).unwrap(),
            serde_json::to_value(&specs).unwrap()
        );
        let request = |functions: Functions| ChatRequest {
            system: "s".into(),
            items: vec![Item::User("hi".into())],
            functions,
            allow_calls: true,
            max_output_tokens: 10,
        };
        let written = serde_json::to_value(request(functions.clone())).unwrap();
        assert_eq!(written["functions"][1]["name"], "list_tasks");
        assert_eq!(written["items"][0]["User"], "hi");

        assert_eq!(functions.digest(), Functions::new(specs).digest());
        assert_ne!(
            functions.digest(),
            Functions::new(vec![spec("add_tasks")]).digest()
        );
        assert!(Functions::default().is_empty());
        assert_eq!(serde_json::to_string(&Functions::default()).unwrap(), "[]");
    }

    #[test]
    fn only_transient_failures_are_retried_and_only_health_failures_trip_the_circuit() {
        let rate = LlmError::RateLimited { retry_after: None };
        assert!(rate.is_retryable() && rate.counts_against_circuit());
        let server = status_error(503, Some(Duration::from_secs(2)), String::new());
        assert!(server.is_retryable() && server.counts_against_circuit());
        assert_eq!(server.retry_after(), Some(Duration::from_secs(2)));
        let bad_key = status_error(403, None, String::new());
        assert!(!bad_key.is_retryable() && bad_key.counts_against_circuit());
        let bad_request = status_error(400, None, "schema".into());
        assert!(!bad_request.is_retryable() && !bad_request.counts_against_circuit());
        let malformed = LlmError::Malformed("no candidates".into());
        assert!(!malformed.is_retryable() && malformed.counts_against_circuit());
        assert!(!LlmError::CircuitOpen.counts_against_circuit());
    }
}
