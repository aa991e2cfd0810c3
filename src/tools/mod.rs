//! Tools: the actions the agent can take on a user's data, each scoped to one user.

pub mod groceries;
pub mod tasks;
