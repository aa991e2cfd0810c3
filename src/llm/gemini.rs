//! Gemini's `generateContent` REST API.
//!
//! `POST {base}/v1beta/models/{model}:generateContent`, the key in the `x-goog-api-key`
//! header (never in the query string, which ends up in access logs). The request carries the
//! system instruction, the multi-turn `contents` (roles `user` / `model`), the function
//! declarations and the function-calling mode; the answer's first candidate gives text parts
//! and `functionCall` parts, and `usageMetadata` the tokens.
//!
//! A model turn goes back into the history exactly as received (its `parts`, including any
//! `thoughtSignature`), so thinking models accept the follow-up call.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Map, Value, json};
use url::Url;

use super::endpoint_under;

use super::{
    ChatRequest, Finish, Functions, Generation, Item, LlmError, ModelTurn, Provider, RawTurn,
    ToolCall, Usage, http_client, read_answer, retry, status_error, transport_error,
};

/// The wire format name in [`RawTurn::format`].
pub const FORMAT: &str = "gemini";
/// The default model.
pub const DEFAULT_MODEL: &str = "gemini-2.5-flash";
/// The default API base.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";

/// A Gemini client. Cheap to clone.
#[derive(Clone)]
pub struct GeminiClient {
    http: reqwest::Client,
    endpoint: Url,
    api_key: SecretString,
    model: String,
}

impl std::fmt::Debug for GeminiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeminiClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl GeminiClient {
    /// A client for `model` at `base` (e.g. [`DEFAULT_BASE_URL`], or a local fake in tests).
    pub fn new(base: &Url, api_key: SecretString, model: &str) -> Result<Self, LlmError> {
        let endpoint = endpoint_under(base, &format!("v1beta/models/{model}:generateContent"));
        Ok(Self {
            http: http_client(Duration::from_secs(5))?,
            endpoint,
            api_key,
            model: model.to_owned(),
        })
    }
}

#[async_trait]
impl Provider for GeminiClient {
    fn name(&self) -> &str {
        "gemini"
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn generate(
        &self,
        request: &ChatRequest,
        timeout: Duration,
    ) -> Result<Generation, LlmError> {
        let body = request_body(request);
        let response = self
            .http
            .post(self.endpoint.clone())
            .header("x-goog-api-key", self.api_key.expose_secret())
            .timeout(timeout)
            .json(&body)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        match read_answer(response).await {
            Ok(value) => parse_answer(&value, &self.model),
            Err((status, retry_after, body)) => {
                let (detail_delay, message) = error_details(&body);
                Err(status_error(status, retry_after.or(detail_delay), message))
            }
        }
    }
}

/// The JSON body of a `generateContent` call, borrowing the request's system instruction and
/// function declarations (written once, see [`Functions`](super::Functions)).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestBody<'a> {
    system_instruction: Content<'a>,
    contents: Vec<Value>,
    generation_config: GenerationConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<[Tools<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfig>,
}

#[derive(Debug, Serialize)]
struct Content<'a> {
    parts: [Text<'a>; 1],
}

#[derive(Debug, Serialize)]
struct Text<'a> {
    text: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    max_output_tokens: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Tools<'a> {
    function_declarations: &'a Functions,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig {
    function_calling_config: FunctionCallingConfig,
}

#[derive(Debug, Serialize)]
struct FunctionCallingConfig {
    mode: &'static str,
}

/// The body of a `generateContent` call for `request`.
pub fn request_body(request: &ChatRequest) -> RequestBody<'_> {
    let mut contents: Vec<Value> = Vec::with_capacity(request.items.len());
    for item in &request.items {
        let (role, parts) = match item {
            Item::User(text) => ("user", vec![json!({ "text": text })]),
            Item::Model(turn) => ("model", model_parts(turn)),
            Item::ToolResults(results) => (
                "user",
                results
                    .iter()
                    .map(|r| {
                        let mut call = Map::new();
                        if let Some(id) = &r.id {
                            call.insert("id".into(), json!(id));
                        }
                        call.insert("name".into(), json!(r.name));
                        call.insert("response".into(), r.response.clone());
                        json!({ "functionResponse": call })
                    })
                    .collect(),
            ),
        };
        // Gemini wants turns to alternate: consecutive same-role items become one content.
        match contents.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(existing) = last["parts"].as_array_mut() {
                    existing.extend(parts);
                }
            }
            _ => contents.push(json!({ "role": role, "parts": parts })),
        }
    }
    let declares = !request.functions.is_empty();
    RequestBody {
        system_instruction: Content {
            parts: [Text {
                text: &request.system,
            }],
        },
        contents,
        generation_config: GenerationConfig {
            max_output_tokens: request.max_output_tokens,
        },
        tools: declares.then_some([Tools {
            function_declarations: &request.functions,
        }]),
        tool_config: declares.then_some(ToolConfig {
            function_calling_config: FunctionCallingConfig {
                mode: if request.allow_calls { "AUTO" } else { "NONE" },
            },
        }),
    }
}

/// A model turn's parts: verbatim when Gemini wrote them, rebuilt otherwise.
fn model_parts(turn: &ModelTurn) -> Vec<Value> {
    if let Some(RawTurn { format, value }) = &turn.raw
        && format == FORMAT
        && let Some(parts) = value.as_array()
    {
        return parts.clone();
    }
    let mut parts = Vec::new();
    if let Some(text) = turn.text.as_deref().filter(|t| !t.is_empty()) {
        parts.push(json!({ "text": text }));
    }
    for call in &turn.calls {
        let mut fc = Map::new();
        if let Some(id) = &call.id {
            fc.insert("id".into(), json!(id));
        }
        fc.insert("name".into(), json!(call.name));
        fc.insert("args".into(), call.args.clone());
        parts.push(json!({ "functionCall": fc }));
    }
    parts
}

/// Reads a `generateContent` answer.
pub fn parse_answer(value: &Value, model: &str) -> Result<Generation, LlmError> {
    let usage = &value["usageMetadata"];
    let count = |key: &str| {
        usage[key]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0)
    };
    let usage = Usage {
        prompt_tokens: count("promptTokenCount"),
        output_tokens: count("candidatesTokenCount") + count("thoughtsTokenCount"),
        total_tokens: count("totalTokenCount"),
    };
    let Some(candidate) = value["candidates"].as_array().and_then(|c| c.first()) else {
        return match value["promptFeedback"]["blockReason"].as_str() {
            Some(reason) => Err(LlmError::Rejected(format!("prompt blocked: {reason}"))),
            None => Err(LlmError::Malformed("no candidates".into())),
        };
    };
    let finish_reason = candidate["finishReason"].as_str().unwrap_or("STOP");
    let finish = match finish_reason {
        "STOP" => Finish::Stop,
        "MAX_TOKENS" => Finish::Length,
        _ => Finish::Other,
    };
    let parts = match candidate["content"]["parts"].as_array() {
        Some(parts) => parts.clone(),
        None if finish == Finish::Stop => {
            return Err(LlmError::Malformed("candidate without parts".into()));
        }
        None => {
            return Err(LlmError::Rejected(format!(
                "answer withheld: {finish_reason}"
            )));
        }
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for part in &parts {
        if part["thought"].as_bool() == Some(true) {
            continue;
        }
        if let Some(t) = part["text"].as_str() {
            text.push_str(t);
        }
        if let Some(call) = part.get("functionCall") {
            let name = call["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| LlmError::Malformed("functionCall without a name".into()))?;
            calls.push(ToolCall {
                id: call["id"].as_str().map(str::to_owned),
                name: name.to_owned(),
                args: call.get("args").cloned().unwrap_or(Value::Null),
            });
        }
    }
    Ok(Generation {
        turn: ModelTurn {
            text: (!text.trim().is_empty()).then(|| text.trim().to_owned()),
            calls,
            raw: Some(RawTurn {
                format: FORMAT.into(),
                value: Value::Array(parts),
            }),
        },
        usage,
        finish,
        provider: "gemini".into(),
        model: value["modelVersion"].as_str().unwrap_or(model).to_owned(),
    })
}

/// The retry delay (`RetryInfo.retryDelay`) and status of an error body.
fn error_details(body: &Value) -> (Option<Duration>, String) {
    let error = &body["error"];
    let delay = error["details"].as_array().and_then(|details| {
        details
            .iter()
            .filter(|d| {
                d["@type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
            })
            .find_map(|d| {
                d["retryDelay"]
                    .as_str()
                    .and_then(retry::parse_proto_duration)
            })
    });
    let status = error["status"].as_str().unwrap_or("").to_owned();
    (delay, status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{FunctionSpec, ToolResult};

    fn request() -> ChatRequest {
        ChatRequest {
            system: "be brief".into(),
            items: vec![
                Item::User("hi".into()),
                Item::User("add call mom".into()),
                Item::Model(ModelTurn {
                    text: None,
                    calls: vec![],
                    raw: Some(RawTurn {
                        format: FORMAT.into(),
                        value: json!([{ "functionCall": { "name": "add_tasks", "args": { "titles": ["call mom"] } }, "thoughtSignature": "sig-1" }]),
                    }),
                }),
                Item::ToolResults(vec![ToolResult {
                    id: None,
                    name: "add_tasks".into(),
                    response: json!({ "result": { "added": 1 } }),
                }]),
            ],
            functions: vec![FunctionSpec {
                name: "add_tasks".into(),
                description: "Add tasks.".into(),
                parameters: json!({ "type": "object", "properties": {} }),
            }]
            .into(),
            allow_calls: true,
            max_output_tokens: 256,
        }
    }

    #[test]
    fn the_body_merges_same_role_turns_and_echoes_model_parts_verbatim() {
        let body = serde_json::to_value(request_body(&request())).unwrap();
        assert_eq!(body["systemInstruction"]["parts"][0]["text"], "be brief");
        let contents = body["contents"].as_array().unwrap();
        assert_eq!(contents.len(), 3);
        assert_eq!(contents[0]["parts"].as_array().unwrap().len(), 2);
        assert_eq!(contents[1]["role"], "model");
        assert_eq!(contents[1]["parts"][0]["thoughtSignature"], "sig-1");
        assert_eq!(
            contents[2]["parts"][0]["functionResponse"],
            json!({ "name": "add_tasks", "response": { "result": { "added": 1 } } })
        );
        assert_eq!(
            body["tools"][0]["functionDeclarations"][0]["name"],
            "add_tasks"
        );
        assert_eq!(body["toolConfig"]["functionCallingConfig"]["mode"], "AUTO");
        assert_eq!(body["generationConfig"]["maxOutputTokens"], 256);
    }

    #[test]
    fn an_answer_gives_text_calls_usage_and_keeps_thoughts_out_of_the_text() {
        let answer = json!({
            "candidates": [{
                "content": { "role": "model", "parts": [
                    { "text": "planning…", "thought": true },
                    { "text": "On it." },
                    { "functionCall": { "name": "list_tasks", "args": {} }, "thoughtSignature": "abc" }
                ]},
                "finishReason": "STOP"
            }],
            "usageMetadata": { "promptTokenCount": 100, "candidatesTokenCount": 20, "thoughtsTokenCount": 5, "totalTokenCount": 125 },
            "modelVersion": "gemini-2.5-flash-001"
        });
        let generation = parse_answer(&answer, "gemini-2.5-flash").unwrap();
        assert_eq!(generation.turn.text.as_deref(), Some("On it."));
        assert_eq!(generation.turn.calls[0].name, "list_tasks");
        assert_eq!(generation.usage.total_tokens, 125);
        assert_eq!(generation.usage.output_tokens, 25);
        assert_eq!(generation.model, "gemini-2.5-flash-001");
        let raw = generation.turn.raw.unwrap();
        assert_eq!(raw.value[2]["thoughtSignature"], "abc");
    }

    #[test]
    fn blocked_prompts_and_empty_answers_are_told_apart() {
        let blocked = json!({ "promptFeedback": { "blockReason": "SAFETY" } });
        assert!(matches!(
            parse_answer(&blocked, "m"),
            Err(LlmError::Rejected(_))
        ));
        assert!(matches!(
            parse_answer(&json!({}), "m"),
            Err(LlmError::Malformed(_))
        ));
        let withheld = json!({ "candidates": [{ "finishReason": "SAFETY" }] });
        assert!(matches!(
            parse_answer(&withheld, "m"),
            Err(LlmError::Rejected(_))
        ));
    }

    #[test]
    fn error_bodies_give_their_retry_delay() {
        let body = json!({ "error": { "code": 429, "status": "RESOURCE_EXHAUSTED", "details": [
            { "@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s" }
        ]}});
        let (delay, status) = error_details(&body);
        assert_eq!(delay, Some(Duration::from_secs(2)));
        assert_eq!(status, "RESOURCE_EXHAUSTED");
    }
}
