//! Nudge: a production runtime for a personal assistant for people with ADHD.
//!
//! People text Nudge by SMS (one dedicated Twilio number per user) or chat in a web page. A
//! supervised actor per user runs each turn: persist the inbound message, answer it (the LLM
//! agent with tools when a model is configured, offline rules otherwise), persist the reply,
//! send it.
//!
//! # Layout
//!
//! | module | concept |
//! | --- | --- |
//! | [`config`] | the typed settings tree, loaded in layers (defaults, TOML file, env, flags) |
//! | [`telemetry`] | logging set-up |
//! | [`app`] | start-up: store, actor tree, HTTP server, graceful shutdown |
//! | [`auth`] | passwords (argon2id and policy), signed access tokens, opaque tokens, TOTP |
//! | [`edges`] | everything facing the outside: the Twilio webhook, the REST API, health checks |
//! | [`actors`] | the actor tree: root, directory, user supervisor, user actors, notifier, LLM supervisor |
//! | [`agent`] | what answers a turn: the LLM planner (prompts, budgets, summary, cache) and the offline rules |
//! | [`live`] | live push: the per-user registry of open WebSockets and their JSON events |
//! | [`llm`] | language-model providers (Gemini, OpenAI-compatible, Gemini embeddings), circuit breaking, retry timing |
//! | [`memory`] | long-term memory: ranking (BM25 / embeddings), extraction, consolidation |
//! | [`tools`] | the tool registry and the internal tools: tasks, goals, groceries, expenses, notes, reminders, memory; natural time |
//! | [`sms`] | Twilio's protocol: signatures, TwiML, segments, keywords, REST client |
//! | [`store`] | persistence on SQLite or PostgreSQL |
//! | [`cli`] | the `nudge` command line |
//! | [`loadgen`] | `nudge loadgen`: the load benchmark harness and its report |

/// The allocator of every binary, test and benchmark built on this crate: mimalloc.
///
/// A turn allocates on one runtime thread and frees on another (rows come from the SQLite
/// worker threads, replies go out on the connection's thread). glibc's allocator locks the
/// owning arena for each such free and spent about 30 % of the runtime threads' time at peak
/// load; mimalloc frees across threads without a lock and returns whole free pages to the
/// system on its own. Measured in docs/performance.md (round 5): peak turns per second up
/// about a quarter, and a user actor with a typical state 19.4 KiB instead of 22.7 (19.9 with
/// glibc's memory handed back by `malloc_trim` every minute, which is no longer needed).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod actors;
pub mod agent;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod edges;
pub mod live;
pub mod llm;
pub mod loadgen;
pub mod memory;
pub mod sms;
pub mod store;
pub mod telemetry;
pub mod tools;

/// Keeps the kernel from backing this process's memory with transparent huge pages.
///
/// mimalloc asks for huge pages on its arenas (`madvise(MADV_HUGEPAGE)`), so each time the
/// heap grew into a new 2 MiB, the fault that touched it zeroed all 2 MiB at once: on a node
/// activating users, one activation in about a hundred (a typical state is about 20 KiB)
/// stalled for that, which was the activation's p99. With 4 KiB pages the same zeroing is
/// spread over the activations that use the memory, and the heap's resident size follows its
/// use more closely. Measured in docs/performance.md (round 23).
///
/// Call it first thing: it holds for the whole process, mappings made before included, and is
/// inherited by the processes it starts.
pub fn small_pages_only() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    nix::sys::prctl::set_thp_disable(true).map_err(std::io::Error::from)?;
    Ok(())
}
