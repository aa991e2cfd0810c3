//! The tool registry: every action the agent may take, with a name, a description, and a
//! JSON schema for its arguments generated from the argument type itself.
//!
//! The same schema serves two purposes: the LLM's function declarations
//! ([`ToolRegistry::declarations`], in the OpenAPI 3.0 subset Gemini accepts) and the
//! validation of a call ([`ToolRegistry::call`] deserializes the model's JSON into the tool's
//! `Args` type, which refuses unknown fields, before anything runs).
//!
//! A tool runs for the user in its [`ToolContext`] and nobody else: argument types never carry
//! a user id, so a model (or a bug) cannot point a tool at another user's rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::store::{Channel, Store, StoreError, User};

/// Everything a tool call may use. The user is fixed by the caller, never by arguments.
#[derive(Clone, Copy)]
pub struct ToolContext<'a> {
    pub store: &'a Store,
    /// The user the call runs for; every store call is scoped to `user.id`.
    pub user: &'a User,
    /// The turn's clock (fixed in tests).
    pub now: DateTime<Utc>,
    /// Where the turn came from, so results can be sized for SMS.
    pub channel: Channel,
}

/// What a tool returns: structured data for the model, and a short line for people and logs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolOutput {
    /// Given back to the model as the function response.
    pub data: Value,
    /// A short human-readable summary (used by the offline path and in audit/debug views).
    pub summary: String,
}

impl ToolOutput {
    pub fn new(data: impl Serialize, summary: impl Into<String>) -> Self {
        Self {
            data: serde_json::to_value(data).unwrap_or(Value::Null),
            summary: summary.into(),
        }
    }
}

/// Why a tool call did not run or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// No tool has this name.
    #[error("no tool named {0:?}")]
    UnknownTool(String),
    /// The arguments do not match the tool's schema or its rules; nothing ran.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The thing the call refers to does not exist for this user.
    #[error("not found: {0}")]
    NotFound(String),
    /// An outside service the tool needs is unavailable (circuit open, timeout).
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ToolError {
    /// True when the model caused the error and may correct itself.
    pub fn is_caller_error(&self) -> bool {
        matches!(
            self,
            ToolError::UnknownTool(_) | ToolError::InvalidArguments(_) | ToolError::NotFound(_)
        )
    }
}

/// One tool. `Args` is deserialized from the model's JSON and describes the schema.
///
/// `Args` types should carry `#[serde(deny_unknown_fields)]` and doc comments on each field
/// (they become the field descriptions the model reads).
#[async_trait]
pub trait Tool: Send + Sync + 'static {
    type Args: DeserializeOwned + JsonSchema + Send;
    /// The function name the model calls: `snake_case`, stable.
    const NAME: &'static str;
    /// What the tool does, for the model: one or two sentences.
    const DESCRIPTION: &'static str;

    async fn run(&self, ctx: &ToolContext<'_>, args: Self::Args) -> Result<ToolOutput, ToolError>;
}

/// A function declaration as the LLM providers expect it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionDeclaration {
    pub name: &'static str,
    pub description: &'static str,
    /// An OpenAPI 3.0 schema object (`type: object`, `properties`, `required`).
    pub parameters: Value,
}

/// The object-safe face of a [`Tool`], so tools of different `Args` share a registry.
#[async_trait]
trait ErasedTool: Send + Sync {
    fn declaration(&self) -> &FunctionDeclaration;
    async fn call(&self, ctx: &ToolContext<'_>, args: Value) -> Result<ToolOutput, ToolError>;
}

struct Registered<T: Tool> {
    tool: T,
    declaration: FunctionDeclaration,
}

#[async_trait]
impl<T: Tool> ErasedTool for Registered<T> {
    fn declaration(&self) -> &FunctionDeclaration {
        &self.declaration
    }

    async fn call(&self, ctx: &ToolContext<'_>, args: Value) -> Result<ToolOutput, ToolError> {
        // A model may send `null` or nothing for a tool without arguments.
        let args = if args.is_null() {
            Value::Object(Default::default())
        } else {
            args
        };
        let args: T::Args =
            serde_json::from_value(args).map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        self.tool.run(ctx, args).await
    }
}

/// The tools the agent can call, by name. Cheap to clone.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: Arc<BTreeMap<&'static str, Arc<dyn ErasedTool>>>,
}

impl ToolRegistry {
    /// An empty registry; add tools with [`ToolRegistry::with`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tool. Panics on a duplicate name: that is a programming error caught by tests.
    #[must_use]
    pub fn with<T: Tool>(mut self, tool: T) -> Self {
        let declaration = FunctionDeclaration {
            name: T::NAME,
            description: T::DESCRIPTION,
            parameters: parameters_schema::<T::Args>(),
        };
        let tools = Arc::make_mut(&mut self.tools);
        let previous = tools.insert(T::NAME, Arc::new(Registered { tool, declaration }));
        assert!(previous.is_none(), "tool {} registered twice", T::NAME);
        self
    }

    /// The declarations of every tool, in name order (stable prompts, cacheable).
    pub fn declarations(&self) -> Vec<FunctionDeclaration> {
        self.tools
            .values()
            .map(|t| t.declaration().clone())
            .collect()
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.tools.keys().copied()
    }

    /// Validates `args` against the tool's argument type, then runs it for `ctx.user`.
    pub async fn call(
        &self,
        name: &str,
        ctx: &ToolContext<'_>,
        args: Value,
    ) -> Result<ToolOutput, ToolError> {
        let tool = self
            .tools
            .get(name)
            .ok_or_else(|| ToolError::UnknownTool(name.to_owned()))?;
        tool.call(ctx, args).await
    }
}

/// The JSON schema of an argument type, in the OpenAPI 3.0 subset LLM providers accept:
/// subschemas inlined, no `$schema`/`title`/`definitions`, `nullable` instead of type arrays.
pub fn parameters_schema<A: JsonSchema>() -> Value {
    let generator = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    let schema = generator.into_root_schema_for::<A>();
    let mut value = serde_json::to_value(schema).unwrap_or(Value::Null);
    strip_unsupported(&mut value);
    if let Value::Object(map) = &mut value {
        map.entry("type")
            .or_insert_with(|| Value::String("object".into()));
        map.entry("properties")
            .or_insert_with(|| Value::Object(Default::default()));
    }
    value
}

/// Removes keywords Gemini's schema subset refuses, at every depth.
fn strip_unsupported(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for key in [
                "$schema",
                "title",
                "definitions",
                "$defs",
                "components",
                "additionalProperties",
            ] {
                map.remove(key);
            }
            map.values_mut().for_each(strip_unsupported);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_unsupported),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Language, NewUser, Sealer, connect};
    use serde::Deserialize;

    /// Echoes its text back.
    struct Echo;

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct EchoArgs {
        /// What to say back.
        text: String,
        /// How many times (default 1).
        #[serde(default)]
        times: Option<u8>,
    }

    #[async_trait]
    impl Tool for Echo {
        type Args = EchoArgs;
        const NAME: &'static str = "echo";
        const DESCRIPTION: &'static str = "Says the text back.";

        async fn run(
            &self,
            ctx: &ToolContext<'_>,
            args: EchoArgs,
        ) -> Result<ToolOutput, ToolError> {
            let times = usize::from(args.times.unwrap_or(1));
            Ok(ToolOutput::new(
                serde_json::json!({ "text": args.text.repeat(times), "user": ctx.user.display_name }),
                "echoed",
            ))
        }
    }

    async fn context_parts() -> (Store, User) {
        let store = connect("sqlite::memory:", Sealer::generate())
            .await
            .unwrap();
        let user = store
            .create_user(&NewUser {
                display_name: "Ana".into(),
                phone: "+14155550101".into(),
                number: "+14155559001".into(),
                language: Language::En,
                time_zone: "UTC".into(),
            })
            .await
            .unwrap();
        (store, user)
    }

    #[test]
    fn declarations_carry_an_openapi_object_schema_with_field_docs() {
        let registry = ToolRegistry::new().with(Echo);
        let declarations = registry.declarations();
        assert_eq!(declarations.len(), 1);
        let schema = &declarations[0].parameters;
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["properties"]["text"]["type"], "string");
        assert_eq!(
            schema["properties"]["text"]["description"],
            "What to say back."
        );
        assert_eq!(schema["required"], serde_json::json!(["text"]));
        assert_eq!(schema["properties"]["times"]["nullable"], true);
        let text = schema.to_string();
        assert!(
            !text.contains("$schema") && !text.contains("title"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn calls_are_validated_before_anything_runs() {
        let (store, user) = context_parts().await;
        let ctx = ToolContext {
            store: &store,
            user: &user,
            now: Utc::now(),
            channel: Channel::Sms,
        };
        let registry = ToolRegistry::new().with(Echo);
        let ok = registry
            .call("echo", &ctx, serde_json::json!({"text": "hi", "times": 2}))
            .await
            .unwrap();
        assert_eq!(ok.data["text"], "hihi");
        assert_eq!(ok.data["user"], "Ana");

        for bad in [
            serde_json::json!({}),
            serde_json::json!({"text": 3}),
            serde_json::json!({"text": "hi", "user_id": "someone-else"}),
            serde_json::json!({"text": "hi", "times": 300}),
        ] {
            let err = registry.call("echo", &ctx, bad.clone()).await.unwrap_err();
            assert!(
                matches!(err, ToolError::InvalidArguments(_)),
                "{bad}: {err}"
            );
            assert!(err.is_caller_error());
        }
        let unknown = registry.call("rm_rf", &ctx, Value::Null).await.unwrap_err();
        assert!(matches!(unknown, ToolError::UnknownTool(_)));
    }
}
