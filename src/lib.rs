//! Nudge: a production runtime for a personal assistant for people with ADHD.
//!
//! People text Nudge by SMS (one dedicated Twilio number per user) or chat in a web page. A
//! supervised actor per user runs each turn: persist the inbound message, answer it (offline
//! rules today, an LLM agent with tools later), persist the reply, send it.
//!
//! # Layout
//!
//! | module | concept |
//! | --- | --- |
//! | [`config`] | the typed settings tree, loaded in layers (defaults, TOML file, env, flags) |
//! | [`telemetry`] | logging set-up |
//! | [`app`] | start-up: store, actor tree, HTTP server, graceful shutdown |
//! | [`edges`] | everything facing the outside: the Twilio webhook, health checks |
//! | [`actors`] | the actor tree: root, directory, user supervisor, user actors, notifier |
//! | [`agent`] | what answers a turn: the offline rules engine |
//! | [`tools`] | actions on a user's data: tasks, groceries |
//! | [`sms`] | Twilio's protocol: signatures, TwiML, segments, keywords, REST client |
//! | [`store`] | persistence on SQLite or PostgreSQL |
//! | [`cli`] | the `nudge` command line |
//! | [`loadgen`] | `nudge loadgen`: the load benchmark harness and its report |

pub mod actors;
pub mod agent;
pub mod app;
pub mod cli;
pub mod config;
pub mod edges;
pub mod loadgen;
pub mod sms;
pub mod store;
pub mod telemetry;
pub mod tools;
