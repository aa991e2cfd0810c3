//! Tools: the actions the agent can take on a user's data, each scoped to one user.
//!
//! [`registry`] holds the [`Tool`] contract and the [`ToolRegistry`];
//! [`internal`] wraps each domain as registry tools for the LLM; each other module is one
//! domain's operations (used by the offline rules directly): [`tasks`], [`goals`],
//! [`groceries`], [`expenses`], [`notes`], [`reminders`], and [`when`], the English / French
//! natural-time grammar they share.

pub mod expenses;
pub mod goals;
pub mod groceries;
pub mod internal;
pub mod memory;
pub mod notes;
pub mod registry;
pub mod reminders;
pub mod tasks;
pub mod when;

pub use registry::{FunctionDeclaration, Tool, ToolContext, ToolError, ToolOutput, ToolRegistry};

#[cfg(test)]
mod tests;
