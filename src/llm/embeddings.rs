//! A client for Gemini's embedding endpoints: `embedContent` (one text) and
//! `batchEmbedContents` (up to [`MAX_BATCH`] texts per request).
//!
//! - The API key travels in the `x-goog-api-key` header, never in the URL (URLs end up in
//!   logs), and the client never logs it nor the texts it embeds.
//! - `taskType` says what a vector is for: memories are embedded as `RETRIEVAL_DOCUMENT`,
//!   messages looked up against them as `RETRIEVAL_QUERY`.
//! - `outputDimensionality` truncates the model's vector (Matryoshka-style); a truncated
//!   vector is no longer unit length, so every vector is re-normalised here. A vector longer
//!   than asked is truncated here too; a shorter one is refused.
//! - Errors come as `{"error": {"code", "message", "status"}}`. 429, 500, 503 and 504 are
//!   retried with exponential backoff and full jitter, at most [`RetryPolicy::max_attempts`]
//!   times, honouring a `RetryInfo.retryDelay` detail or a `Retry-After` header (capped);
//!   other statuses (400, 403, 404, …) fail at once.
//! - Every request has a timeout; a connection or timeout failure is retried like a 503.
//!
//! Run the client's tests with: `cargo test --lib llm::embeddings`

use std::time::Duration;

use rand::Rng;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

/// Gemini's documented limit of texts in one `batchEmbedContents` request.
pub const MAX_BATCH: usize = 100;
/// The default model.
pub const DEFAULT_MODEL: &str = "gemini-embedding-001";
/// The default API base.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";
/// The default vector size: small enough for 10,000 memories in 10 MiB, and recommended by
/// the model's documentation as a good trade-off.
pub const DEFAULT_DIMENSIONS: u32 = 256;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a vector will be used for (Gemini's `taskType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskType {
    /// A text that will be searched: a memory.
    RetrievalDocument,
    /// A text searched with: the user's message.
    RetrievalQuery,
    /// Two texts compared with each other.
    SemanticSimilarity,
}

/// Why texts could not be embedded.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddingError {
    /// The API answered with an error (after retries, for retryable ones).
    #[error("embedding API error {http_status} ({status}): {message}")]
    Api {
        /// The HTTP status.
        http_status: u16,
        /// The API's status name (`RESOURCE_EXHAUSTED`, `INVALID_ARGUMENT`, …).
        status: String,
        /// The API's explanation.
        message: String,
    },
    /// The request did not complete (connection refused, reset, timeout), after retries.
    #[error("embedding request failed: {0}")]
    Transport(String),
    /// The answer is not what the API documents (wrong shape, count or size).
    #[error("unexpected embedding answer: {0}")]
    InvalidResponse(String),
    /// Nothing to embed, or an empty text.
    #[error("nothing to embed")]
    EmptyInput,
    /// The client cannot be built as configured (base URL, model name).
    #[error("invalid embedding client settings: {0}")]
    InvalidConfig(String),
}

/// How failed requests are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// The first backoff; each retry doubles it (with full jitter).
    pub base_delay: Duration,
    /// No wait is longer, whatever the server asks.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
        }
    }
}

/// A Gemini embedding client. Cheap to clone (the HTTP pool is shared).
#[derive(Clone)]
pub struct EmbeddingClient {
    /// Connection pool with the per-request timeout.
    http: reqwest::Client,
    /// `{base}/v1beta/models/{model}`, where `:embedContent` / `:batchEmbedContents` go.
    model_url: String,
    /// `models/{model}`, as batch requests name it.
    model_name: String,
    /// The bare model name, for [`EmbeddingClient::model_id`].
    model: String,
    /// Sent in the `x-goog-api-key` header only.
    api_key: SecretString,
    /// `outputDimensionality`; `None` keeps the model's size.
    dimensions: Option<u32>,
    /// How failed requests are retried.
    retry: RetryPolicy,
}

impl std::fmt::Debug for EmbeddingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingClient")
            .field("model_url", &self.model_url)
            .field("dimensions", &self.dimensions)
            .field("api_key", &"[redacted]")
            .finish()
    }
}

/// Builds an [`EmbeddingClient`].
pub struct EmbeddingClientBuilder {
    api_key: SecretString,
    base_url: String,
    model: String,
    dimensions: Option<u32>,
    timeout: Duration,
    retry: RetryPolicy,
}

impl EmbeddingClientBuilder {
    /// The API base (scheme, host, optional path prefix) [default: Gemini's].
    pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// The model [default: [`DEFAULT_MODEL`]].
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    /// The vector size asked for; `None` keeps the model's full size.
    pub fn dimensions(mut self, dimensions: Option<u32>) -> Self {
        self.dimensions = dimensions;
        self
    }

    /// The timeout of one request (each retry gets a fresh one).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn build(self) -> Result<EmbeddingClient, EmbeddingError> {
        let base = Url::parse(&self.base_url)
            .map_err(|e| EmbeddingError::InvalidConfig(format!("bad base URL: {e}")))?;
        if self.model.is_empty() || self.model.contains(['/', '?', '#', ':']) {
            return Err(EmbeddingError::InvalidConfig(format!(
                "bad model name {:?}",
                self.model
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(self.timeout))
            .build()
            .map_err(|e| EmbeddingError::InvalidConfig(e.to_string()))?;
        let model_url = format!(
            "{}/v1beta/models/{}",
            base.as_str().trim_end_matches('/'),
            self.model
        );
        Ok(EmbeddingClient {
            http,
            model_url,
            model_name: format!("models/{}", self.model),
            model: self.model,
            api_key: self.api_key,
            dimensions: self.dimensions.filter(|d| *d > 0),
            retry: RetryPolicy {
                max_attempts: self.retry.max_attempts.max(1),
                ..self.retry
            },
        })
    }
}

#[derive(Serialize)]
struct Part<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct Content<'a> {
    parts: [Part<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EmbedRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    content: Content<'a>,
    task_type: TaskType,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimensionality: Option<u32>,
}

#[derive(Serialize)]
struct BatchRequest<'a> {
    requests: Vec<EmbedRequest<'a>>,
}

#[derive(Deserialize)]
struct Values {
    values: Vec<f32>,
}

#[derive(Deserialize)]
struct EmbedResponse {
    embedding: Values,
}

#[derive(Deserialize)]
struct BatchResponse {
    embeddings: Vec<Values>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    details: Vec<Value>,
}

/// One failed attempt, and whether (and when) to try again.
struct Failure {
    error: EmbeddingError,
    retryable: bool,
    /// What the server asked for (RetryInfo or Retry-After).
    retry_after: Option<Duration>,
}

impl EmbeddingClient {
    /// A builder with the key; everything else has defaults.
    pub fn builder(api_key: SecretString) -> EmbeddingClientBuilder {
        EmbeddingClientBuilder {
            api_key,
            base_url: DEFAULT_BASE_URL.to_owned(),
            model: DEFAULT_MODEL.to_owned(),
            dimensions: Some(DEFAULT_DIMENSIONS),
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
        }
    }

    /// The name vectors of this client are stored under: the model and the size asked for
    /// (`gemini-embedding-001@256`), since vectors of different sizes never compare.
    pub fn model_id(&self) -> String {
        match self.dimensions {
            Some(d) => format!("{}@{d}", self.model),
            None => self.model.clone(),
        }
    }

    /// Embeds one text (`embedContent`); the vector is unit length.
    pub async fn embed(&self, text: &str, task: TaskType) -> Result<Vec<f32>, EmbeddingError> {
        if text.trim().is_empty() {
            return Err(EmbeddingError::EmptyInput);
        }
        let body = EmbedRequest {
            model: None,
            content: Content {
                parts: [Part { text }],
            },
            task_type: task,
            output_dimensionality: self.dimensions,
        };
        let url = format!("{}:embedContent", self.model_url);
        let answer: EmbedResponse = self.post(&url, &body).await?;
        self.finish(answer.embedding.values)
    }

    /// Embeds many texts (`batchEmbedContents`, [`MAX_BATCH`] per request), in order.
    pub async fn embed_batch(
        &self,
        texts: &[&str],
        task: TaskType,
    ) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        if texts.is_empty() || texts.iter().any(|t| t.trim().is_empty()) {
            return Err(EmbeddingError::EmptyInput);
        }
        let url = format!("{}:batchEmbedContents", self.model_url);
        let mut vectors = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(MAX_BATCH) {
            let body = BatchRequest {
                requests: chunk
                    .iter()
                    .map(|text| EmbedRequest {
                        model: Some(&self.model_name),
                        content: Content {
                            parts: [Part { text }],
                        },
                        task_type: task,
                        output_dimensionality: self.dimensions,
                    })
                    .collect(),
            };
            let answer: BatchResponse = self.post(&url, &body).await?;
            if answer.embeddings.len() != chunk.len() {
                return Err(EmbeddingError::InvalidResponse(format!(
                    "{} embeddings for {} texts",
                    answer.embeddings.len(),
                    chunk.len()
                )));
            }
            for values in answer.embeddings {
                vectors.push(self.finish(values.values)?);
            }
        }
        Ok(vectors)
    }

    /// Truncates to the size asked for and scales to unit length.
    fn finish(&self, mut values: Vec<f32>) -> Result<Vec<f32>, EmbeddingError> {
        if let Some(dimensions) = self.dimensions {
            let dimensions = dimensions as usize;
            if values.len() < dimensions {
                return Err(EmbeddingError::InvalidResponse(format!(
                    "{} dimensions, asked for {dimensions}",
                    values.len()
                )));
            }
            values.truncate(dimensions);
        }
        normalize(&mut values)
            .then_some(values)
            .ok_or_else(|| EmbeddingError::InvalidResponse("an empty or zero vector".into()))
    }

    /// POSTs `body` and decodes the answer, retrying what is worth retrying.
    async fn post<B: Serialize, A: for<'de> Deserialize<'de>>(
        &self,
        url: &str,
        body: &B,
    ) -> Result<A, EmbeddingError> {
        let mut attempt = 1;
        loop {
            match self.attempt(url, body).await {
                Ok(answer) => return Ok(answer),
                Err(failure) if failure.retryable && attempt < self.retry.max_attempts => {
                    let wait = self.backoff(attempt, failure.retry_after);
                    tracing::warn!(
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        error = %failure.error,
                        "embedding request failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(failure) => return Err(failure.error),
            }
        }
    }

    async fn attempt<B: Serialize, A: for<'de> Deserialize<'de>>(
        &self,
        url: &str,
        body: &B,
    ) -> Result<A, Failure> {
        let response = self
            .http
            .post(url)
            .header("x-goog-api-key", self.api_key.expose_secret())
            .json(body)
            .send()
            .await
            .map_err(|e| Failure {
                error: EmbeddingError::Transport(transport_reason(&e)),
                retryable: true,
                retry_after: None,
            })?;
        let status = response.status();
        let retry_after_header = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response.bytes().await.map_err(|e| Failure {
            error: EmbeddingError::Transport(transport_reason(&e)),
            retryable: true,
            retry_after: None,
        })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| Failure {
                error: EmbeddingError::InvalidResponse(e.to_string()),
                retryable: false,
                retry_after: None,
            });
        }
        let (message, api_status, retry_info) =
            match serde_json::from_slice::<ErrorEnvelope>(&bytes) {
                Ok(envelope) => {
                    let delay = envelope.error.details.iter().find_map(retry_delay);
                    (envelope.error.message, envelope.error.status, delay)
                }
                Err(_) => (
                    status.canonical_reason().unwrap_or("error").to_owned(),
                    String::new(),
                    None,
                ),
            };
        Err(Failure {
            error: EmbeddingError::Api {
                http_status: status.as_u16(),
                status: api_status,
                message,
            },
            retryable: matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS
                    | StatusCode::INTERNAL_SERVER_ERROR
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            ),
            retry_after: retry_info.or(retry_after_header),
        })
    }

    /// Exponential backoff with full jitter, or what the server asked, capped either way.
    fn backoff(&self, attempt: u32, asked: Option<Duration>) -> Duration {
        if let Some(asked) = asked {
            return asked.min(self.retry.max_delay);
        }
        let ceiling = self
            .retry
            .base_delay
            .saturating_mul(1 << (attempt - 1).min(16))
            .min(self.retry.max_delay);
        let millis = ceiling.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }
}

/// A reqwest error's kind, without the URL.
fn transport_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else if e.is_decode() || e.is_body() {
        "the answer was cut short".into()
    } else {
        "the request failed".into()
    }
}

/// The `retryDelay` of a `google.rpc.RetryInfo` detail ("1.5s").
fn retry_delay(detail: &Value) -> Option<Duration> {
    let kind = detail.get("@type")?.as_str()?;
    if !kind.ends_with("google.rpc.RetryInfo") {
        return None;
    }
    let text = detail.get("retryDelay")?.as_str()?;
    let seconds: f64 = text.strip_suffix('s')?.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// Scales `values` to unit length; false when it has no length (empty, zero or not finite).
pub fn normalize(values: &mut [f32]) -> bool {
    let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return false;
    }
    values.iter_mut().for_each(|v| *v /= norm);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use wiremock::matchers::{body_partial_json, header, method, path};
    use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

    const KEY: &str = "test-key-not-a-real-one";

    fn client(server: &MockServer, dimensions: Option<u32>) -> EmbeddingClient {
        EmbeddingClient::builder(SecretString::from(KEY))
            .base_url(server.uri())
            .dimensions(dimensions)
            .timeout(Duration::from_secs(2))
            .retry(RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(20),
            })
            .build()
            .unwrap()
    }

    fn error(code: u16, status: &str) -> ResponseTemplate {
        ResponseTemplate::new(code).set_body_json(serde_json::json!({
            "error": { "code": code, "message": "nope", "status": status }
        }))
    }

    #[tokio::test]
    async fn one_text_is_embedded_with_the_key_in_a_header_and_comes_back_unit_length() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1beta/models/gemini-embedding-001:embedContent"))
            .and(header("x-goog-api-key", KEY))
            .and(body_partial_json(serde_json::json!({
                "content": { "parts": [{ "text": "meds at 8am" }] },
                "taskType": "RETRIEVAL_QUERY",
                "outputDimensionality": 2
            })))
            // A truncated vector is not unit length; a longer one than asked is cut.
            .respond_with(
                ResponseTemplate::new(200).set_body_json(
                    serde_json::json!({ "embedding": { "values": [3.0, 4.0, 12.0] } }),
                ),
            )
            .expect(1)
            .mount(&server)
            .await;
        let vector = client(&server, Some(2))
            .embed("meds at 8am", TaskType::RetrievalQuery)
            .await
            .unwrap();
        assert_eq!(vector, vec![0.6, 0.8]);
        let requests = server.received_requests().await.unwrap();
        assert!(!requests[0].url.as_str().contains(KEY), "no key in the URL");
    }

    #[tokio::test]
    async fn a_batch_names_the_model_in_each_request_and_keeps_the_order() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(
                "/v1beta/models/gemini-embedding-001:batchEmbedContents",
            ))
            .and(header("x-goog-api-key", KEY))
            .and(body_partial_json(serde_json::json!({
                "requests": [
                    { "model": "models/gemini-embedding-001", "taskType": "RETRIEVAL_DOCUMENT",
                      "content": { "parts": [{ "text": "a" }] } },
                    { "model": "models/gemini-embedding-001", "taskType": "RETRIEVAL_DOCUMENT",
                      "content": { "parts": [{ "text": "b" }] } }
                ]
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "embeddings": [ { "values": [2.0, 0.0] }, { "values": [0.0, -5.0] } ]
            })))
            .mount(&server)
            .await;
        let vectors = client(&server, None)
            .embed_batch(&["a", "b"], TaskType::RetrievalDocument)
            .await
            .unwrap();
        assert_eq!(vectors, vec![vec![1.0, 0.0], vec![0.0, -1.0]]);
    }

    /// Answers each batch with one vector per request, counting the batches.
    struct CountingBatches(Arc<AtomicUsize>);

    impl Respond for CountingBatches {
        fn respond(&self, request: &Request) -> ResponseTemplate {
            self.0.fetch_add(1, Ordering::SeqCst);
            let body: Value = serde_json::from_slice(&request.body).unwrap();
            let n = body["requests"].as_array().unwrap().len();
            let embeddings: Vec<Value> = (0..n)
                .map(|_| serde_json::json!({ "values": [1.0, 1.0] }))
                .collect();
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({ "embeddings": embeddings }))
        }
    }

    #[tokio::test]
    async fn more_texts_than_one_batch_holds_go_in_several_requests() {
        let server = MockServer::start().await;
        let batches = Arc::new(AtomicUsize::new(0));
        Mock::given(method("POST"))
            .respond_with(CountingBatches(batches.clone()))
            .mount(&server)
            .await;
        let texts: Vec<String> = (0..(MAX_BATCH * 2 + 1)).map(|n| format!("t{n}")).collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = client(&server, Some(2))
            .embed_batch(&texts, TaskType::RetrievalDocument)
            .await
            .unwrap();
        assert_eq!(vectors.len(), texts.len());
        assert_eq!(batches.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn rate_limits_and_server_errors_are_retried_a_bounded_number_of_times() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(error(429, "RESOURCE_EXHAUSTED"))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(error(503, "UNAVAILABLE"))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({ "embedding": { "values": [1.0, 0.0] } })),
            )
            .mount(&server)
            .await;
        let vector = client(&server, Some(2))
            .embed("x", TaskType::RetrievalQuery)
            .await
            .unwrap();
        assert_eq!(vector, vec![1.0, 0.0]);
        assert_eq!(server.received_requests().await.unwrap().len(), 3);

        // Always failing: three attempts, then the API's error.
        let failing = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(error(500, "INTERNAL"))
            .mount(&failing)
            .await;
        let err = client(&failing, Some(2))
            .embed("x", TaskType::RetrievalQuery)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, EmbeddingError::Api { http_status: 500, status, .. } if status == "INTERNAL"),
            "{err}"
        );
        assert_eq!(failing.received_requests().await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn client_errors_are_not_retried() {
        for (code, status) in [
            (400, "INVALID_ARGUMENT"),
            (403, "PERMISSION_DENIED"),
            (404, "NOT_FOUND"),
        ] {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(error(code, status))
                .mount(&server)
                .await;
            let err = client(&server, Some(2))
                .embed("x", TaskType::RetrievalQuery)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, EmbeddingError::Api { http_status, .. } if *http_status == code),
                "{err}"
            );
            assert_eq!(server.received_requests().await.unwrap().len(), 1, "{code}");
            assert!(!err.to_string().contains(KEY));
        }
    }

    #[test]
    fn a_retry_delay_detail_is_read_and_the_wait_is_capped() {
        let detail = serde_json::json!({
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": "1.5s"
        });
        assert_eq!(retry_delay(&detail), Some(Duration::from_millis(1500)));
        let other = serde_json::json!({ "@type": "type.googleapis.com/google.rpc.Help" });
        assert_eq!(retry_delay(&other), None);

        let client = EmbeddingClient::builder(SecretString::from(KEY))
            .retry(RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(1),
            })
            .build()
            .unwrap();
        assert_eq!(
            client.backoff(1, Some(Duration::from_secs(30))),
            Duration::from_secs(1)
        );
        for attempt in 1..10 {
            assert!(client.backoff(attempt, None) <= Duration::from_secs(1));
        }
    }

    #[tokio::test]
    async fn a_slow_server_times_out_and_bad_answers_are_errors_not_panics() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({ "embedding": { "values": [1.0] } }))
                    .set_delay(Duration::from_secs(5)),
            )
            .mount(&server)
            .await;
        let slow = EmbeddingClient::builder(SecretString::from(KEY))
            .base_url(server.uri())
            .timeout(Duration::from_millis(100))
            .retry(RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            })
            .build()
            .unwrap();
        let err = slow.embed("x", TaskType::RetrievalQuery).await.unwrap_err();
        assert!(matches!(err, EmbeddingError::Transport(_)), "{err}");

        for body in [
            serde_json::json!({ "embedding": { "values": [0.0, 0.0] } }),
            serde_json::json!({ "embedding": { "values": [1.0] } }),
            serde_json::json!({ "unexpected": true }),
        ] {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(ResponseTemplate::new(200).set_body_json(body.clone()))
                .mount(&server)
                .await;
            let err = client(&server, Some(2))
                .embed("x", TaskType::RetrievalQuery)
                .await
                .unwrap_err();
            assert!(matches!(err, EmbeddingError::InvalidResponse(_)), "{body}");
        }
        let server = MockServer::start().await;
        assert!(matches!(
            client(&server, Some(2))
                .embed("  ", TaskType::RetrievalQuery)
                .await,
            Err(EmbeddingError::EmptyInput)
        ));
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let client = EmbeddingClient::builder(SecretString::from(KEY))
            .build()
            .unwrap();
        assert!(!format!("{client:?}").contains(KEY));
        assert_eq!(client.model_id(), "gemini-embedding-001@256");
    }
}
