//! OpenAI-compatible chat completions: the fallback model (Ollama, vLLM, llama.cpp server …).
//!
//! `POST {base}/chat/completions` with `model`, `messages` (system / user / assistant /
//! tool), `tools` and `tool_choice`; the answer's `choices[0].message` carries `content`
//! and/or `tool_calls`, and `usage` the tokens.
//!
//! Servers differ from OpenAI in small ways, normalised here: `arguments` may arrive as a
//! JSON object instead of a string (or as a string that is not JSON: kept as a string, so the
//! tool registry rejects it and the model hears why), and a call may come without an `id`
//! (one is made up, unique within the turn).

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Value, json};
use url::Url;

use super::endpoint_under;

use super::{
    ChatRequest, Finish, FunctionSpec, Generation, Item, LlmError, ModelTurn, Provider, RawTurn,
    ToolCall, Usage, http_client, read_answer, status_error, transport_error,
};

/// The wire format name in [`RawTurn::format`].
pub const FORMAT: &str = "openai";

/// A client for one OpenAI-compatible server. Cheap to clone.
#[derive(Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    endpoint: Url,
    api_key: Option<SecretString>,
    model: String,
}

impl std::fmt::Debug for OpenAiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl OpenAiClient {
    /// A client for `model` at `base`, the URL the server's API lives under (for Ollama
    /// `http://127.0.0.1:11434/v1`).
    pub fn new(base: &Url, api_key: Option<SecretString>, model: &str) -> Result<Self, LlmError> {
        let endpoint = endpoint_under(base, "chat/completions");
        Ok(Self {
            http: http_client(Duration::from_secs(5))?,
            endpoint,
            api_key,
            model: model.to_owned(),
        })
    }
}

#[async_trait]
impl Provider for OpenAiClient {
    fn name(&self) -> &str {
        "fallback"
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn generate(
        &self,
        request: &ChatRequest,
        timeout: Duration,
    ) -> Result<Generation, LlmError> {
        let body = request_body(request, &self.model);
        let mut call = self
            .http
            .post(self.endpoint.clone())
            .timeout(timeout)
            .json(&body);
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key.expose_secret());
        }
        let response = call.send().await.map_err(|e| transport_error(&e))?;
        match read_answer(response).await {
            Ok(value) => parse_answer(&value, &self.model),
            Err((status, retry_after, body)) => {
                let kind = body["error"]["type"]
                    .as_str()
                    .or_else(|| body["error"]["code"].as_str())
                    .unwrap_or("")
                    .to_owned();
                Err(status_error(status, retry_after, kind))
            }
        }
    }
}

/// The JSON body of a chat-completions call, borrowing the request's function declarations
/// (each is written as it goes, not copied into a tree first).
#[derive(Debug, Serialize)]
pub struct RequestBody<'a> {
    model: &'a str,
    messages: Vec<Value>,
    max_tokens: u32,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<Tool<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct Tool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: &'a FunctionSpec,
}

/// The body of a chat-completions call for `request`, to `model`.
pub fn request_body<'a>(request: &'a ChatRequest, model: &'a str) -> RequestBody<'a> {
    let mut messages = vec![json!({ "role": "system", "content": request.system })];
    // Ids of the previous model turn's calls, for the tool results that follow it.
    let mut last_ids: Vec<String> = Vec::new();
    for (index, item) in request.items.iter().enumerate() {
        match item {
            Item::User(text) => messages.push(json!({ "role": "user", "content": text })),
            Item::Model(turn) => {
                last_ids = turn
                    .calls
                    .iter()
                    .enumerate()
                    .map(|(j, c)| c.id.clone().unwrap_or_else(|| format!("call_{index}_{j}")))
                    .collect();
                let mut message = json!({
                    "role": "assistant",
                    "content": turn.text.clone().map(Value::String).unwrap_or(Value::Null),
                });
                if !turn.calls.is_empty() {
                    message["tool_calls"] = turn
                        .calls
                        .iter()
                        .zip(&last_ids)
                        .map(|(call, id)| {
                            json!({
                                "id": id,
                                "type": "function",
                                "function": {
                                    "name": call.name,
                                    "arguments": match &call.args {
                                        Value::String(s) => s.clone(),
                                        other => other.to_string(),
                                    },
                                },
                            })
                        })
                        .collect();
                }
                messages.push(message);
            }
            Item::ToolResults(results) => {
                for (j, result) in results.iter().enumerate() {
                    let id = result
                        .id
                        .clone()
                        .or_else(|| last_ids.get(j).cloned())
                        .unwrap_or_else(|| format!("call_{j}"));
                    messages.push(json!({
                        "role": "tool",
                        "tool_call_id": id,
                        "content": result.response.to_string(),
                    }));
                }
            }
        }
    }
    let declares = !request.functions.is_empty();
    RequestBody {
        model,
        messages,
        max_tokens: request.max_output_tokens,
        stream: false,
        tools: declares.then(|| {
            request
                .functions
                .specs()
                .iter()
                .map(|function| Tool {
                    kind: "function",
                    function,
                })
                .collect()
        }),
        tool_choice: declares.then_some(if request.allow_calls { "auto" } else { "none" }),
    }
}

/// Reads a chat-completions answer, normalising the usual deviations.
pub fn parse_answer(value: &Value, model: &str) -> Result<Generation, LlmError> {
    let choice = value["choices"]
        .as_array()
        .and_then(|c| c.first())
        .ok_or_else(|| LlmError::Malformed("no choices".into()))?;
    let message = choice
        .get("message")
        .filter(|m| m.is_object())
        .ok_or_else(|| LlmError::Malformed("choice without a message".into()))?;
    let text = message["content"]
        .as_str()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    let mut calls = Vec::new();
    for (j, call) in message["tool_calls"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let function = &call["function"];
        let name = function["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| LlmError::Malformed("tool call without a name".into()))?;
        let args = match &function["arguments"] {
            Value::String(s) if s.trim().is_empty() => Value::Object(Default::default()),
            Value::String(s) => {
                serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
            }
            Value::Null => Value::Object(Default::default()),
            other => other.clone(),
        };
        let id = call["id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("call_{}_{j}", uuid::Uuid::now_v7().simple()));
        calls.push(ToolCall {
            id: Some(id),
            name: name.to_owned(),
            args,
        });
    }
    let finish = match choice["finish_reason"].as_str() {
        Some("length") => Finish::Length,
        Some("stop" | "tool_calls" | "function_call") | None => Finish::Stop,
        Some(_) => Finish::Other,
    };
    let usage = &value["usage"];
    let count = |key: &str| {
        usage[key]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0)
    };
    let prompt_tokens = count("prompt_tokens");
    let output_tokens = count("completion_tokens");
    let total = count("total_tokens");
    Ok(Generation {
        turn: ModelTurn {
            text,
            calls,
            raw: Some(RawTurn {
                format: FORMAT.into(),
                value: message.clone(),
            }),
        },
        usage: Usage {
            prompt_tokens,
            output_tokens,
            total_tokens: if total == 0 {
                prompt_tokens + output_tokens
            } else {
                total
            },
        },
        finish,
        provider: "fallback".into(),
        model: value["model"].as_str().unwrap_or(model).to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{FunctionSpec, ToolResult};

    #[test]
    fn arguments_as_objects_strings_or_garbage_and_missing_ids_are_normalised() {
        let answer = json!({
            "choices": [{ "message": { "role": "assistant", "content": null, "tool_calls": [
                { "id": "a1", "type": "function", "function": { "name": "add_tasks", "arguments": "{\"titles\":[\"x\"]}" } },
                { "function": { "name": "list_tasks", "arguments": { } } },
                { "function": { "name": "complete_task", "arguments": "number 2" } }
            ]}, "finish_reason": "tool_calls" }],
            "usage": { "prompt_tokens": 10, "completion_tokens": 5 }
        });
        let generation = parse_answer(&answer, "llama").unwrap();
        let calls = &generation.turn.calls;
        assert_eq!(calls[0].id.as_deref(), Some("a1"));
        assert_eq!(calls[0].args, json!({ "titles": ["x"] }));
        assert_eq!(calls[1].args, json!({}));
        assert!(
            calls[1]
                .id
                .as_deref()
                .is_some_and(|id| id.starts_with("call_"))
        );
        assert_ne!(calls[1].id, calls[2].id);
        assert_eq!(calls[2].args, json!("number 2"));
        assert_eq!(generation.usage.total_tokens, 15);
        assert_eq!(generation.turn.text, None);
    }

    #[test]
    fn the_body_pairs_tool_results_with_their_calls_even_when_gemini_gave_no_ids() {
        let request = ChatRequest {
            system: "sys".into(),
            items: vec![
                Item::User("list".into()),
                Item::Model(ModelTurn {
                    text: None,
                    calls: vec![ToolCall {
                        id: None,
                        name: "list_tasks".into(),
                        args: json!({}),
                    }],
                    raw: None,
                }),
                Item::ToolResults(vec![ToolResult {
                    id: None,
                    name: "list_tasks".into(),
                    response: json!({ "result": [] }),
                }]),
            ],
            functions: vec![FunctionSpec {
                name: "list_tasks".into(),
                description: "List.".into(),
                parameters: json!({ "type": "object", "properties": {} }),
            }]
            .into(),
            allow_calls: false,
            max_output_tokens: 100,
        };
        let body = serde_json::to_value(request_body(&request, "llama3")).unwrap();
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages[0]["role"], "system");
        let id = messages[2]["tool_calls"][0]["id"].as_str().unwrap();
        assert_eq!(messages[2]["tool_calls"][0]["function"]["arguments"], "{}");
        assert_eq!(messages[3]["tool_call_id"], id);
        assert_eq!(messages[3]["content"], "{\"result\":[]}");
        assert_eq!(body["tool_choice"], "none");
        assert_eq!(body["tools"][0]["type"], "function");
        assert_eq!(body["tools"][0]["function"]["name"], "list_tasks");
        assert_eq!(body["tools"][0]["function"]["parameters"]["type"], "object");
        assert_eq!(
            (&body["model"], &body["max_tokens"], &body["stream"]),
            (&json!("llama3"), &json!(100), &json!(false))
        );

        // Without functions, neither `tools` nor `tool_choice` is sent.
        let plain = ChatRequest {
            functions: Default::default(),
            ..request
        };
        let body = serde_json::to_value(request_body(&plain, "llama3")).unwrap();
        assert!(body.get("tools").is_none() && body.get("tool_choice").is_none());
    }

    #[test]
    fn an_answer_without_choices_is_malformed() {
        assert!(matches!(
            parse_answer(&json!({ "choices": [] }), "m"),
            Err(LlmError::Malformed(_))
        ));
    }
}
