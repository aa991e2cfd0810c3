//! Stand-ins for the services a turn calls out to, for load runs where the LLM agent answers:
//! Gemini's `generateContent`, `embedContent` and `batchEmbedContents`, and Twilio's message
//! send (a reply that missed the webhook's window goes out through it).
//!
//! They answer in the documented shapes after a delay drawn from a configured distribution, so
//! a run measures what Nudge's own machinery costs around a model of a given speed: its real
//! Gemini and Twilio clients, the agent's planner and the turns held open while the model
//! thinks. The stand-in runs in the load generator's process, on a runtime and threads of its
//! own (like the [`baseline`](super::baseline)), so its CPU is not counted as the server's.
//! It listens where the server's `NUDGE_GEMINI_BASE_URL` points, a loopback address both
//! processes read from the same environment.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hdrhistogram::Histogram;
use rand::Rng;
use serde::Serialize;
use serde_json::{Value, json};

use super::baseline::ServerThread;
use super::recorder::{self, LatencySummary};

/// The longest delay drawn, whatever the distribution's tail: a stand-in that held a request
/// for minutes would only measure the client's timeout.
const MAX_DELAY: Duration = Duration::from_secs(60);
/// z of the 99th percentile of the standard normal distribution.
const Z_P99: f64 = 2.326_347_874;
/// The reply every `generateContent` gets: one concrete next step, SMS-sized.
pub const REPLY: &str = "Pick the smallest next step and give it five minutes. Start now.";
/// Vector size when a request does not ask for one (`outputDimensionality`).
const DEFAULT_DIMENSIONS: usize = 768;
/// The most values a vector may ask for.
const MAX_DIMENSIONS: usize = 3_072;

/// How long the stand-in takes to answer: a fixed delay, or log-normal from its median and
/// 99th percentile (service latencies are skewed that way: most answers near the median, a
/// long tail).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    median: Duration,
    p99: Duration,
}

impl Latency {
    /// No delay at all.
    pub const ZERO: Self = Self {
        median: Duration::ZERO,
        p99: Duration::ZERO,
    };

    /// Parses `MEDIAN` or `MEDIAN,P99`, in milliseconds (`800` or `800,3000`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let ms = |part: &str| -> Result<Duration, String> {
            let value: f64 = part
                .trim()
                .parse()
                .map_err(|_| format!("{part:?} is not a number of milliseconds"))?;
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!("{part:?} is not a number of milliseconds"));
            }
            let value = Duration::from_secs_f64(value / 1_000.0);
            if value > MAX_DELAY {
                return Err(format!(
                    "{part:?} ms is over the {}s limit",
                    MAX_DELAY.as_secs()
                ));
            }
            Ok(value)
        };
        let mut parts = text.split(',');
        let median = ms(parts.next().unwrap_or_default())?;
        let p99 = match parts.next() {
            Some(part) => ms(part)?,
            None => median,
        };
        if parts.next().is_some() {
            return Err(format!("{text:?}: give MEDIAN or MEDIAN,P99"));
        }
        if p99 < median {
            return Err(format!("{text:?}: the 99th percentile is below the median"));
        }
        if median.is_zero() && !p99.is_zero() {
            return Err(format!("{text:?}: a skewed delay needs a median above 0"));
        }
        Ok(Self { median, p99 })
    }

    pub fn median(&self) -> Duration {
        self.median
    }

    pub fn p99(&self) -> Duration {
        self.p99
    }

    /// One delay: `exp(mu + sigma z)` with `mu = ln median` and `sigma = ln(p99 / median) /
    /// z99`, z standard normal (Box–Muller).
    pub fn draw(&self, rng: &mut impl Rng) -> Duration {
        if self.p99 == self.median {
            return self.median;
        }
        let median = self.median.as_secs_f64();
        let sigma = (self.p99.as_secs_f64() / median).ln() / Z_P99;
        // 1 - u is in (0, 1]: its logarithm is finite.
        let u: f64 = 1.0 - rng.random::<f64>();
        let v: f64 = rng.random();
        let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
        Duration::from_secs_f64((median * (sigma * z).exp()).min(MAX_DELAY.as_secs_f64()))
    }
}

/// What the stand-in answered during a run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UpstreamReport {
    pub model_latency_median_ms: f64,
    pub model_latency_p99_ms: f64,
    pub embedding_latency_median_ms: f64,
    pub embedding_latency_p99_ms: f64,
    /// `generateContent` calls.
    pub generate_calls: u64,
    /// `embedContent` and `batchEmbedContents` calls, and the texts they carried.
    pub embed_calls: u64,
    pub texts_embedded: u64,
    /// Messages sent through Twilio's REST API: replies that missed the webhook's window.
    pub sms_sent: u64,
    /// Requests the stand-in did not recognize (answered 404 or 400).
    pub refused: u64,
    /// The delays drawn for `generateContent`, as served.
    pub model_delays: LatencySummary,
}

#[derive(Default)]
struct Counts {
    generate: AtomicU64,
    embed: AtomicU64,
    texts: AtomicU64,
    sms: AtomicU64,
    refused: AtomicU64,
}

struct Shared {
    model: Latency,
    embedding: Latency,
    counts: Counts,
    delays: Mutex<Histogram<u64>>,
}

/// A running stand-in; stopped when dropped.
pub struct Upstream {
    server: ServerThread,
    shared: Arc<Shared>,
}

impl Upstream {
    /// Starts it on `addr` (a loopback address; port 0 picks one).
    pub fn start(addr: SocketAddr, model: Latency, embedding: Latency) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            model,
            embedding,
            counts: Counts::default(),
            delays: Mutex::new(recorder::latency_histogram()),
        });
        let app = Router::new()
            .route("/v1beta/models/{call}", post(gemini))
            .route(
                "/2010-04-01/Accounts/{account}/Messages.json",
                post(twilio_send),
            )
            .fallback(unknown)
            .with_state(shared.clone());
        let server = ServerThread::start(addr, app, "upstream-stand-in", 1)?;
        Ok(Self { server, shared })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// What it has answered so far.
    pub fn report(&self) -> UpstreamReport {
        let s = &self.shared;
        let ms = |d: Duration| d.as_secs_f64() * 1_000.0;
        UpstreamReport {
            model_latency_median_ms: ms(s.model.median),
            model_latency_p99_ms: ms(s.model.p99),
            embedding_latency_median_ms: ms(s.embedding.median),
            embedding_latency_p99_ms: ms(s.embedding.p99),
            generate_calls: s.counts.generate.load(Ordering::Relaxed),
            embed_calls: s.counts.embed.load(Ordering::Relaxed),
            texts_embedded: s.counts.texts.load(Ordering::Relaxed),
            sms_sent: s.counts.sms.load(Ordering::Relaxed),
            refused: s.counts.refused.load(Ordering::Relaxed),
            model_delays: LatencySummary::of(
                &s.delays.lock().unwrap_or_else(PoisonError::into_inner),
            ),
        }
    }
}

/// Refuses a request the stand-in does not serve, counting it, with Gemini's error document.
fn refuse(shared: &Shared, status: StatusCode, message: &str) -> Response {
    shared.counts.refused.fetch_add(1, Ordering::Relaxed);
    let body = json!({
        "error": { "code": status.as_u16(), "message": message, "status": "INVALID_ARGUMENT" }
    });
    (status, axum::Json(body)).into_response()
}

/// `POST /v1beta/models/{model}:{method}`.
async fn gemini(
    State(shared): State<Arc<Shared>>,
    Path(call): Path<String>,
    body: Bytes,
) -> Response {
    let Some((_model, method)) = call.split_once(':') else {
        return refuse(&shared, StatusCode::NOT_FOUND, "no method in the path");
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return refuse(&shared, StatusCode::BAD_REQUEST, "the body is not JSON");
    };
    match method {
        "generateContent" => {
            let delay = shared.model.draw(&mut rand::rng());
            recorder::record_latency(
                &mut shared.delays.lock().unwrap_or_else(PoisonError::into_inner),
                delay,
            );
            shared.counts.generate.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
            // About four bytes of JSON per token: the prompt's size as the model would count it.
            let prompt = (body.len() / 4).max(1);
            let output = REPLY.len() / 4;
            axum::Json(json!({
                "candidates": [{
                    "content": { "role": "model", "parts": [{ "text": REPLY }] },
                    "finishReason": "STOP", "index": 0
                }],
                "usageMetadata": {
                    "promptTokenCount": prompt,
                    "candidatesTokenCount": output,
                    "totalTokenCount": prompt + output
                },
                "modelVersion": "stand-in"
            }))
            .into_response()
        }
        "embedContent" => {
            let Some(text) = request
                .pointer("/content/parts/0/text")
                .and_then(Value::as_str)
            else {
                return refuse(
                    &shared,
                    StatusCode::BAD_REQUEST,
                    "content.parts[0].text is missing",
                );
            };
            shared.counts.embed.fetch_add(1, Ordering::Relaxed);
            shared.counts.texts.fetch_add(1, Ordering::Relaxed);
            let delay = shared.embedding.draw(&mut rand::rng());
            tokio::time::sleep(delay).await;
            let values = vector(text, dimensions(&request));
            axum::Json(json!({ "embedding": { "values": values } })).into_response()
        }
        "batchEmbedContents" => {
            let Some(requests) = request.get("requests").and_then(Value::as_array) else {
                return refuse(&shared, StatusCode::BAD_REQUEST, "requests is missing");
            };
            shared.counts.embed.fetch_add(1, Ordering::Relaxed);
            shared
                .counts
                .texts
                .fetch_add(requests.len() as u64, Ordering::Relaxed);
            let delay = shared.embedding.draw(&mut rand::rng());
            tokio::time::sleep(delay).await;
            let embeddings: Vec<Value> = requests
                .iter()
                .map(|r| {
                    let text = r
                        .pointer("/content/parts/0/text")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    json!({ "values": vector(text, dimensions(r)) })
                })
                .collect();
            axum::Json(json!({ "embeddings": embeddings })).into_response()
        }
        _ => refuse(&shared, StatusCode::NOT_FOUND, "unknown method"),
    }
}

/// The size a request asks for, within bounds.
fn dimensions(request: &Value) -> usize {
    request
        .get("outputDimensionality")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_DIMENSIONS, |d| {
            (d as usize).clamp(1, MAX_DIMENSIONS)
        })
}

/// A vector that depends on the text alone (the same text, the same vector), with values
/// spread over [-1, 1]: the text's FNV-1a hash (the lexical index's term id) seeds a
/// SplitMix64 sequence.
fn vector(text: &str, dimensions: usize) -> Vec<f32> {
    let mut state = u64::from(crate::memory::lexical::term_id(text));
    (0..dimensions)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            // The top 24 bits, as a fraction in [0, 1), then to [-1, 1).
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`: accepted and queued at once.
async fn twilio_send(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    body: Bytes,
) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let (Some(to), Some(text)) = (field("To"), field("Body")) else {
        shared.counts.refused.fetch_add(1, Ordering::Relaxed);
        let body =
            json!({ "code": 21604, "message": "A 'To' and a 'Body' are required.", "status": 400 });
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    };
    let n = shared.counts.sms.fetch_add(1, Ordering::Relaxed);
    let body = json!({
        "sid": format!("SM{n:032x}"),
        "account_sid": account,
        "to": to,
        "from": field("From"),
        "messaging_service_sid": field("MessagingServiceSid"),
        "body": text,
        "status": "queued",
        "num_segments": "1",
        "error_code": null,
        "price": null
    });
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

async fn unknown(State(shared): State<Arc<Shared>>) -> Response {
    refuse(
        &shared,
        StatusCode::NOT_FOUND,
        "the stand-in does not serve this path",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::embeddings::{EmbeddingClient, TaskType};
    use crate::llm::gemini::GeminiClient;
    use crate::llm::{ChatRequest, Item, Provider};
    use crate::sms::twilio::{OutboundSms, TwilioClient};
    use rand::SeedableRng;
    use secrecy::SecretString;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn latency_reads_a_median_and_an_optional_99th_percentile() {
        let skewed = Latency::parse("800, 3000").unwrap();
        assert_eq!((skewed.median(), skewed.p99()), (ms(800), ms(3000)));
        let fixed = Latency::parse("250").unwrap();
        assert_eq!((fixed.median(), fixed.p99()), (ms(250), ms(250)));
        assert_eq!(Latency::parse("0").unwrap(), Latency::ZERO);
        for bad in [
            "", "fast", "-5", "800,100", "0,100", "1,2,3", "NaN", "90000",
        ] {
            assert!(Latency::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn drawn_delays_have_the_configured_median_and_99th_percentile() {
        let latency = Latency::parse("800,3000").unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut drawn: Vec<Duration> = (0..20_000).map(|_| latency.draw(&mut rng)).collect();
        drawn.sort();
        let median = drawn[drawn.len() / 2].as_secs_f64() * 1_000.0;
        let p99 = drawn[drawn.len() * 99 / 100].as_secs_f64() * 1_000.0;
        assert!((760.0..840.0).contains(&median), "median {median} ms");
        assert!((2_700.0..3_300.0).contains(&p99), "p99 {p99} ms");
        let fixed = Latency::parse("40").unwrap();
        assert!((0..100).all(|_| fixed.draw(&mut rng) == ms(40)));
    }

    #[test]
    fn a_text_gets_the_same_vector_every_time_and_another_text_another() {
        let a = vector("call the pharmacy", 16);
        assert_eq!(a, vector("call the pharmacy", 16));
        assert_ne!(a, vector("buy milk", 16));
        assert!(a.iter().all(|v| (-1.0..1.0).contains(v)));
    }

    /// Nudge's own clients, pointed at the stand-in, get answers they can read.
    #[tokio::test]
    async fn the_products_gemini_embedding_and_twilio_clients_read_its_answers() {
        let upstream = Upstream::start(
            "127.0.0.1:0".parse().unwrap(),
            Latency::parse("5").unwrap(),
            Latency::ZERO,
        )
        .unwrap();
        let base = url::Url::parse(&format!("http://{}", upstream.addr())).unwrap();
        let key = || SecretString::from("stand-in-key");

        let gemini = GeminiClient::new(&base, key(), "gemini-2.5-flash").unwrap();
        let request = ChatRequest {
            system: "Be brief.".into(),
            items: vec![Item::User("what's next?".into())],
            functions: Default::default(),
            allow_calls: true,
            max_output_tokens: 256,
        };
        let generation = gemini
            .generate(&request, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(generation.turn.text.as_deref(), Some(REPLY));
        assert!(generation.usage.prompt_tokens > 0);

        let embeddings = EmbeddingClient::builder(key())
            .base_url(base.as_str().trim_end_matches('/'))
            .dimensions(Some(8))
            .build()
            .unwrap();
        let one = embeddings
            .embed("buy milk", TaskType::RetrievalQuery)
            .await
            .unwrap();
        assert_eq!(one.len(), 8);
        let many = embeddings
            .embed_batch(&["buy milk", "call mom"], TaskType::RetrievalDocument)
            .await
            .unwrap();
        assert_eq!(many.len(), 2);
        assert_eq!(many[0], one, "the same text, the same (unit) vector");

        let twilio = TwilioClient::new(
            base.as_str().trim_end_matches('/'),
            "AC00000000000000000000000000000000",
            SecretString::from("token"),
        )
        .unwrap();
        let sent = twilio
            .send_sms(&OutboundSms {
                from: "+15550000001",
                to: "+15550000002",
                body: "Your reply",
                status_callback: None,
            })
            .await
            .unwrap();
        assert!(sent.sid.starts_with("SM"));

        let report = upstream.report();
        assert_eq!(
            (
                report.generate_calls,
                report.embed_calls,
                report.texts_embedded,
                report.sms_sent
            ),
            (1, 2, 3, 1)
        );
        assert_eq!(report.refused, 0);
        assert_eq!(report.model_delays.count, 1);
        assert!(report.model_delays.max_ms >= 5.0);
    }

    #[tokio::test]
    async fn unknown_paths_and_bodies_are_refused_with_a_json_error() {
        let upstream =
            Upstream::start("127.0.0.1:0".parse().unwrap(), Latency::ZERO, Latency::ZERO).unwrap();
        let http = reqwest::Client::new();
        let base = format!("http://{}", upstream.addr());
        let not_json = http
            .post(format!("{base}/v1beta/models/m:generateContent"))
            .body("{")
            .send()
            .await
            .unwrap();
        assert_eq!(not_json.status(), 400);
        let elsewhere = http.post(format!("{base}/v2/other")).send().await.unwrap();
        assert_eq!(elsewhere.status(), 404);
        let body: Value = elsewhere.json().await.unwrap();
        assert_eq!(body["error"]["code"], 404);
        assert_eq!(upstream.report().refused, 2);
        drop(upstream);
    }
}
