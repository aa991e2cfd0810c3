//! Fake model servers on loopback that speak Gemini's `generateContent` and the
//! OpenAI-compatible chat-completions wire formats, answering from a script and recording
//! every request (wiremock keeps the bodies).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Answers the n-th request with the n-th template (the last one repeats), or with
/// `failure` while `failing` is set.
#[derive(Clone)]
pub struct Script {
    answers: Arc<Mutex<Vec<ResponseTemplate>>>,
    next: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
    failure: ResponseTemplate,
}

impl Script {
    pub fn new(answers: Vec<ResponseTemplate>) -> Self {
        Self {
            answers: Arc::new(Mutex::new(answers)),
            next: Arc::new(AtomicUsize::new(0)),
            failing: Arc::new(AtomicBool::new(false)),
            failure: ResponseTemplate::new(500).set_body_json(json!({
                "error": { "code": 500, "message": "internal", "status": "INTERNAL" }
            })),
        }
    }

    /// From now on every request fails with a 500 (or answers from the script again).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

impl Respond for Script {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        if self.failing.load(Ordering::SeqCst) {
            return self.failure.clone();
        }
        let answers = self.answers.lock().unwrap();
        let i = self.next.fetch_add(1, Ordering::SeqCst);
        answers
            .get(i)
            .or_else(|| answers.last())
            .cloned()
            .unwrap_or_else(|| ResponseTemplate::new(500))
    }
}

/// A fake Gemini answering `POST /v1beta/models/{model}:generateContent` from `script`.
pub async fn gemini(script: impl Respond + 'static) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(
            r"^/v1beta/models/[A-Za-z0-9._-]+:generateContent$",
        ))
        .respond_with(script)
        .mount(&server)
        .await;
    server
}

/// A fake OpenAI-compatible server answering `POST /v1/chat/completions` from `script`.
pub async fn openai(script: impl Respond + 'static) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(script)
        .mount(&server)
        .await;
    server
}

/// The JSON bodies the server received, in order.
pub async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("a JSON request body"))
        .collect()
}

fn usage() -> Value {
    json!({ "promptTokenCount": 120, "candidatesTokenCount": 12, "totalTokenCount": 132 })
}

/// A Gemini answer with one text part.
pub fn gemini_text(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "candidates": [{
            "content": { "role": "model", "parts": [{ "text": text }] },
            "finishReason": "STOP", "index": 0
        }],
        "usageMetadata": usage(),
        "modelVersion": "gemini-2.5-flash"
    }))
}

/// A Gemini answer with one function call carrying a thought signature.
pub fn gemini_call(name: &str, args: Value, signature: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "candidates": [{
            "content": { "role": "model", "parts": [
                { "functionCall": { "name": name, "args": args }, "thoughtSignature": signature }
            ]},
            "finishReason": "STOP", "index": 0
        }],
        "usageMetadata": usage(),
        "modelVersion": "gemini-2.5-flash"
    }))
}

/// A chat-completions answer with text.
pub fn openai_text(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "llama3.1",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": text }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 90, "completion_tokens": 9, "total_tokens": 99 }
    }))
}

/// A chat-completions answer with one tool call, `arguments` exactly as given (a string, or
/// an object as some servers send), with or without an id.
pub fn openai_call(name: &str, arguments: Value, id: Option<&str>) -> ResponseTemplate {
    let mut call =
        json!({ "type": "function", "function": { "name": name, "arguments": arguments } });
    if let Some(id) = id {
        call["id"] = json!(id);
    }
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-2", "object": "chat.completion", "model": "llama3.1",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": null, "tool_calls": [call] }, "finish_reason": "tool_calls" }],
        "usage": { "prompt_tokens": 80, "completion_tokens": 8, "total_tokens": 88 }
    }))
}

/// The text of every part of a Gemini request's contents, for "contains" checks.
pub fn gemini_texts(body: &Value) -> Vec<String> {
    body["contents"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["parts"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["text"].as_str().map(str::to_owned))
        .collect()
}

/// One message the fake Twilio accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub sid: String,
    pub to: String,
    pub from: String,
    pub body: String,
}

/// A fake Twilio Messages API: `POST …/Messages.json` accepts (and remembers) every message
/// the moment the request arrives, answering 201 with its SID — the first answer held back
/// by `hold_first` when set, as a slow Twilio would — and `GET …/Messages.json` lists what it
/// accepted for the `To` / `From` asked, newest first, in Twilio's list shape.
pub struct FakeTwilio {
    pub server: MockServer,
    accepted: Arc<Mutex<Vec<Accepted>>>,
}

struct Accept {
    accepted: Arc<Mutex<Vec<Accepted>>>,
    hold_first: Option<std::time::Duration>,
}

impl Respond for Accept {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let form: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&request.body).unwrap_or_default();
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let mut accepted = self.accepted.lock().unwrap();
        let sid = format!("SM{:032x}", accepted.len() + 1);
        let first = accepted.is_empty();
        accepted.push(Accepted {
            sid: sid.clone(),
            to: field("To"),
            from: field("From"),
            body: field("Body"),
        });
        let answer = ResponseTemplate::new(201).set_body_json(json!({
            "sid": sid, "status": "queued", "num_segments": "1", "price": null
        }));
        match self.hold_first {
            Some(hold) if first => answer.set_delay(hold),
            _ => answer,
        }
    }
}

struct List {
    accepted: Arc<Mutex<Vec<Accepted>>>,
}

impl Respond for List {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let query: Vec<(String, String)> = request
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let param = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let created = chrono::Utc::now().to_rfc2822();
        let messages: Vec<Value> = self
            .accepted
            .lock()
            .unwrap()
            .iter()
            .rev()
            .filter(|m| param("To").is_none_or(|to| to == m.to))
            .filter(|m| param("From").is_none_or(|from| from == m.from))
            .map(|m| {
                json!({
                    "sid": m.sid, "to": m.to, "from": m.from, "body": m.body,
                    "status": "sent", "direction": "outbound-api",
                    "date_created": created, "date_sent": created, "num_segments": "1"
                })
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({
            "messages": messages, "page": 0, "page_size": 50,
            "first_page_uri": request.url.path(), "next_page_uri": null, "previous_page_uri": null
        }))
    }
}

impl FakeTwilio {
    pub async fn start(account_sid: &str, hold_first: Option<std::time::Duration>) -> Self {
        let server = MockServer::start().await;
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let messages = format!("/2010-04-01/Accounts/{account_sid}/Messages.json");
        Mock::given(method("POST"))
            .and(path(messages.as_str()))
            .respond_with(Accept {
                accepted: accepted.clone(),
                hold_first,
            })
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(messages.as_str()))
            .respond_with(List {
                accepted: accepted.clone(),
            })
            .mount(&server)
            .await;
        Self { server, accepted }
    }

    /// Every message accepted so far, oldest first.
    pub fn accepted(&self) -> Vec<Accepted> {
        self.accepted.lock().unwrap().clone()
    }

    /// How many list requests arrived.
    pub async fn list_requests(&self) -> usize {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.method == wiremock::http::Method::GET)
            .count()
    }
}
