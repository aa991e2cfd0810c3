//! Tools: the actions the agent can take on a user's data, each scoped to one user.
//!
//! [`registry`] holds the [`Tool`](registry::Tool) contract and the [`ToolRegistry`]; each
//! other module is one domain's operations (used by the offline rules directly, and wrapped
//! as registry tools for the LLM).

pub mod groceries;
pub mod internal;
pub mod registry;
pub mod tasks;
pub mod when;

pub use registry::{FunctionDeclaration, Tool, ToolContext, ToolError, ToolOutput, ToolRegistry};
