//! Integration tests: the real binary on loopback, and the actor tree in-process.
//!
//! Run with: `scripts/test` (starts PostgreSQL and Redis), or `cargo nextest run` for the
//! SQLite variants only. `TEST_LOG=debug` shows the servers' logs.

#![allow(clippy::unwrap_used)]

mod accounts;
mod actors;
mod agent;
mod browser;
mod cli;
mod fakes;
mod helpers;
mod hostile;
mod live;
mod llm;
mod loadgen;
mod me_data;
mod memory;
mod privacy;
mod rls;
mod sms;
mod tools;
