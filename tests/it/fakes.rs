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
