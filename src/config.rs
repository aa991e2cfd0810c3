//! Settings: one typed tree, loaded in layers.
//!
//! Precedence, lowest first: built-in defaults < a TOML file (`--config` / `NUDGE_CONFIG`) <
//! environment variables (`NUDGE_*`, `TWILIO_*`) < command-line flags. Environment and flags
//! arrive together through clap ([`SettingsArgs`]); the file fills what they leave unset.
//! Every value is validated here, once: a bad one stops the process with one line that names
//! the setting and what is wrong ([`ConfigError`]). Secrets are `SecretString`s and can come
//! from a `*_FILE` path (Docker secrets).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::auth::password::HashParams;
use crate::auth::tokens::JwtKeys;
use crate::store::Sealer;
use crate::store::seal;

/// A setting that cannot be used, named as the operator would set it.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting}: {problem}")]
pub struct ConfigError {
    /// The environment variable (and so the flag and file key) the problem is about.
    pub setting: &'static str,
    pub problem: String,
}

impl ConfigError {
    fn new(setting: &'static str, problem: impl Into<String>) -> Self {
        Self {
            setting,
            problem: problem.into(),
        }
    }
}

/// Settings given on the command line or in the environment. Every field is optional here:
/// what is missing comes from the file, then from the defaults.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Server settings (also from the environment or --config)")]
pub struct SettingsArgs {
    /// TOML file with settings (keys as the flags, with underscores: `listen`, `data_dir`,
    /// `[twilio] auth_token`, …). Environment variables and flags override it.
    #[arg(
        long = "config",
        env = "NUDGE_CONFIG",
        global = true,
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// Address the HTTP server binds [default: 127.0.0.1:8080]. Port 0 picks a free port.
    #[arg(long, env = "NUDGE_LISTEN", global = true, value_name = "ADDR")]
    pub listen: Option<String>,

    /// Where the embedded database and generated secrets live [default: the platform's data
    /// directory, e.g. ~/.local/share/nudge].
    #[arg(long, env = "NUDGE_DATA_DIR", global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Database URL: `sqlite:PATH` (embedded default: nudge.db in the data directory) or
    /// `postgres://user:pass@host/db`.
    #[arg(
        long,
        env = "NUDGE_DATABASE_URL",
        global = true,
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// File holding the database URL (instead of NUDGE_DATABASE_URL).
    #[arg(
        long,
        env = "NUDGE_DATABASE_URL_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub database_url_file: Option<PathBuf>,

    /// PostgreSQL URL of a login role that row-level security binds (a member of nudge_app
    /// that owns nothing): every store call scoped to one person goes through it,
    /// so not even SQL that reached those connections could leave that person's rows.
    #[arg(
        long,
        env = "NUDGE_DATABASE_API_URL",
        global = true,
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_api_url: Option<String>,

    /// File holding NUDGE_DATABASE_API_URL.
    #[arg(
        long,
        env = "NUDGE_DATABASE_API_URL_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub database_api_url_file: Option<PathBuf>,

    /// PostgreSQL connections this node opens at most, half for work across users (sign-in,
    /// schedules, migrations) and half for one person's store calls and the writer's
    /// batches [default: 24]. A cluster's nodes together must stay under the server's
    /// `max_connections` (100 by default). Ignored on SQLite.
    #[arg(
        long,
        env = "NUDGE_DATABASE_CONNECTIONS",
        global = true,
        value_name = "N"
    )]
    pub database_connections: Option<String>,

    /// The public base URL Twilio calls (scheme, host, port, path prefix), used to check
    /// webhook signatures behind a proxy [default: http://LISTEN].
    #[arg(long, env = "NUDGE_PUBLIC_URL", global = true, value_name = "URL")]
    pub public_url: Option<String>,

    /// Twilio account SID (AC…), for sending SMS through the REST API.
    #[arg(long, env = "TWILIO_ACCOUNT_SID", global = true, value_name = "SID")]
    pub twilio_account_sid: Option<String>,

    /// Twilio auth token: signs webhooks and authenticates REST calls. When unset, a local
    /// token is generated into the data directory so `nudge sms-sim` can talk to this server.
    #[arg(
        long,
        env = "TWILIO_AUTH_TOKEN",
        global = true,
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub twilio_auth_token: Option<String>,

    /// File holding the Twilio auth token (instead of TWILIO_AUTH_TOKEN).
    #[arg(
        long,
        env = "TWILIO_AUTH_TOKEN_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub twilio_auth_token_file: Option<PathBuf>,

    /// Base URL of Twilio's REST API [default: https://api.twilio.com].
    #[arg(long, env = "TWILIO_API_BASE", global = true, value_name = "URL")]
    pub twilio_api_base: Option<String>,

    /// Seconds of silence after which a user's actor is passivated (state stays in the
    /// database) [default: 900].
    #[arg(
        long,
        env = "NUDGE_IDLE_PASSIVATE_SECS",
        global = true,
        value_name = "SECS"
    )]
    pub idle_passivate_secs: Option<String>,

    /// How long the SMS webhook waits for a turn before answering empty TwiML and sending
    /// the reply through the REST API instead, in milliseconds [default: 5000; Twilio gives up
    /// after 15 s].
    #[arg(long, env = "NUDGE_REPLY_WINDOW_MS", global = true, value_name = "MS")]
    pub reply_window_ms: Option<String>,

    /// Seconds a reminder missed while the service was down may be late and still fire at
    /// start-up (saying it is late); older ones are skipped [default: 21600].
    #[arg(
        long,
        env = "NUDGE_REMINDER_GRACE_SECS",
        global = true,
        value_name = "SECS"
    )]
    pub reminder_grace_secs: Option<String>,

    /// Master key ring sealing personal data (AES-256-GCM): base64 32-byte keys separated by
    /// commas, the active key first, older keys after it until re-sealed. On SQLite it is
    /// generated into the data directory when unset; PostgreSQL deployments must set it.
    #[arg(
        long,
        env = "NUDGE_MASTER_KEY",
        global = true,
        value_name = "KEYS",
        hide_env_values = true
    )]
    pub master_key: Option<String>,

    /// File holding the master key ring (instead of NUDGE_MASTER_KEY).
    #[arg(
        long,
        env = "NUDGE_MASTER_KEY_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub master_key_file: Option<PathBuf>,

    /// Access-token signing keys (HS256): base64 32-byte keys separated by commas, the signing
    /// key first, older keys after it until their tokens have expired. On SQLite it is
    /// generated into the data directory when unset; PostgreSQL deployments must set it.
    #[arg(
        long,
        env = "NUDGE_JWT_KEYS",
        global = true,
        value_name = "KEYS",
        hide_env_values = true
    )]
    pub jwt_keys: Option<String>,

    /// File holding the access-token signing keys (instead of NUDGE_JWT_KEYS).
    #[arg(long, env = "NUDGE_JWT_KEYS_FILE", global = true, value_name = "FILE")]
    pub jwt_keys_file: Option<PathBuf>,

    /// Redis URL (`redis://…`): shares the token revocation list, rate limits and the LLM
    /// response cache between nodes. Unset: the database holds revocations, and each node
    /// limits and caches on its own.
    #[arg(
        long,
        env = "NUDGE_REDIS_URL",
        global = true,
        value_name = "URL",
        hide_env_values = true
    )]
    pub redis_url: Option<String>,

    /// Prefix of every key this deployment writes to Redis, so deployments (stage, prod) can
    /// share one Redis [default: nudge].
    #[arg(
        long,
        env = "NUDGE_REDIS_NAMESPACE",
        global = true,
        value_name = "NAME"
    )]
    pub redis_namespace: Option<String>,

    /// File holding the Redis URL (instead of NUDGE_REDIS_URL).
    #[arg(long, env = "NUDGE_REDIS_URL_FILE", global = true, value_name = "FILE")]
    pub redis_url_file: Option<PathBuf>,

    /// Lifetime of access tokens in seconds [default: 900].
    #[arg(
        long,
        env = "NUDGE_ACCESS_TOKEN_TTL_SECS",
        global = true,
        value_name = "SECS"
    )]
    pub access_token_ttl_secs: Option<String>,

    /// Lifetime of a sign-in (its refresh tokens) in days [default: 30].
    #[arg(
        long,
        env = "NUDGE_SESSION_TTL_DAYS",
        global = true,
        value_name = "DAYS"
    )]
    pub session_ttl_days: Option<String>,

    /// argon2id memory cost in KiB [default: 19456, OWASP's recommendation].
    #[arg(long, env = "NUDGE_ARGON2_M_KIB", global = true, value_name = "KIB")]
    pub argon2_m_kib: Option<String>,

    /// argon2id passes [default: 2].
    #[arg(long, env = "NUDGE_ARGON2_T", global = true, value_name = "N")]
    pub argon2_t: Option<String>,

    /// argon2id lanes [default: 1].
    #[arg(long, env = "NUDGE_ARGON2_P", global = true, value_name = "N")]
    pub argon2_p: Option<String>,

    /// Days after which a password must be changed; 0 turns forced expiry off, as NIST
    /// SP 800-63B advises [default: 0].
    #[arg(
        long,
        env = "NUDGE_PASSWORD_MAX_AGE_DAYS",
        global = true,
        value_name = "DAYS"
    )]
    pub password_max_age_days: Option<String>,

    /// The Twilio number (E.164) that sends phone-verification codes to people who have no
    /// dedicated number yet.
    #[arg(long, env = "NUDGE_SMS_SENDER", global = true, value_name = "NUMBER")]
    pub sms_sender: Option<String>,

    /// Take the client address from the last `X-Forwarded-For` entry (set it behind nginx
    /// only) [default: false].
    #[arg(
        long,
        env = "NUDGE_TRUST_FORWARDED_FOR",
        global = true,
        value_name = "BOOL"
    )]
    pub trust_forwarded_for: Option<String>,

    /// Requests per minute per client address, every route [default: 600]. 0: no limit.
    #[arg(long, env = "NUDGE_RATE_IP_PER_MIN", global = true, value_name = "N")]
    pub rate_ip_per_min: Option<String>,

    /// Sign-in, registration and other account requests per minute per client address
    /// [default: 20]. 0: no limit.
    #[arg(long, env = "NUDGE_RATE_AUTH_PER_MIN", global = true, value_name = "N")]
    pub rate_auth_per_min: Option<String>,

    /// API requests per minute per user (premium: three times as many) [default: 120].
    #[arg(long, env = "NUDGE_RATE_API_PER_MIN", global = true, value_name = "N")]
    pub rate_api_per_min: Option<String>,

    /// Inbound SMS per minute per user [default: 30].
    #[arg(long, env = "NUDGE_RATE_SMS_PER_MIN", global = true, value_name = "N")]
    pub rate_sms_per_min: Option<String>,

    /// WebSocket messages per minute per user [default: 60].
    #[arg(long, env = "NUDGE_RATE_WS_PER_MIN", global = true, value_name = "N")]
    pub rate_ws_per_min: Option<String>,

    /// Days messages are kept; 0 keeps them until the person erases their account
    /// [default: 0].
    #[arg(
        long,
        env = "NUDGE_RETENTION_MESSAGES_DAYS",
        global = true,
        value_name = "DAYS"
    )]
    pub retention_messages_days: Option<String>,

    /// Days security events are kept in the audit log [default: 90].
    #[arg(
        long,
        env = "NUDGE_RETENTION_AUDIT_DAYS",
        global = true,
        value_name = "DAYS"
    )]
    pub retention_audit_days: Option<String>,
    /// Bearer token `GET /metrics` requires; unset, the metrics are open to whoever reaches
    /// the listener (they hold counts only, no personal data).
    #[arg(
        long,
        env = "NUDGE_METRICS_TOKEN",
        global = true,
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,

    /// File holding the metrics token (instead of NUDGE_METRICS_TOKEN).
    #[arg(
        long,
        env = "NUDGE_METRICS_TOKEN_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub metrics_token_file: Option<PathBuf>,

    /// Log format on stderr: `text` or `json` [default: text]. Filter with RUST_LOG.
    #[arg(long, env = "NUDGE_LOG_FORMAT", global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,

    // LLM ------------------------------------------------------------------------------------
    /// Gemini API key. With it (or a fallback URL) turns are answered by the LLM agent;
    /// without either, by the offline rules. It also enables embeddings for long-term
    /// memory retrieval (lexical ranking without it).
    #[arg(
        long,
        env = "GEMINI_API_KEY",
        global = true,
        value_name = "KEY",
        hide_env_values = true
    )]
    pub gemini_api_key: Option<String>,

    /// File holding the Gemini API key (instead of GEMINI_API_KEY).
    #[arg(long, env = "GEMINI_API_KEY_FILE", global = true, value_name = "FILE")]
    pub gemini_api_key_file: Option<PathBuf>,

    /// Gemini model [default: gemini-2.5-flash].
    #[arg(long, env = "NUDGE_GEMINI_MODEL", global = true, value_name = "MODEL")]
    pub gemini_model: Option<String>,

    /// Gemini API base URL [default: https://generativelanguage.googleapis.com].
    #[arg(long, env = "NUDGE_GEMINI_BASE_URL", global = true, value_name = "URL")]
    pub gemini_base_url: Option<String>,

    /// Base URL of an OpenAI-compatible chat-completions API used when Gemini fails
    /// (Ollama: http://127.0.0.1:11434/v1).
    #[arg(
        long,
        env = "NUDGE_FALLBACK_LLM_URL",
        global = true,
        value_name = "URL"
    )]
    pub fallback_llm_url: Option<String>,

    /// The fallback server's model name (required with NUDGE_FALLBACK_LLM_URL).
    #[arg(
        long,
        env = "NUDGE_FALLBACK_LLM_MODEL",
        global = true,
        value_name = "MODEL"
    )]
    pub fallback_llm_model: Option<String>,

    /// Bearer key for the fallback server, if it wants one.
    #[arg(
        long,
        env = "NUDGE_FALLBACK_LLM_KEY",
        global = true,
        value_name = "KEY",
        hide_env_values = true
    )]
    pub fallback_llm_key: Option<String>,

    /// File holding the fallback server's key (instead of NUDGE_FALLBACK_LLM_KEY).
    #[arg(
        long,
        env = "NUDGE_FALLBACK_LLM_KEY_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub fallback_llm_key_file: Option<PathBuf>,

    /// Model calls per turn, the wrap-up call included [default: 6].
    #[arg(
        long,
        env = "NUDGE_TURN_MAX_LLM_CALLS",
        global = true,
        value_name = "N"
    )]
    pub turn_max_llm_calls: Option<String>,

    /// Tool calls per turn [default: 8].
    #[arg(
        long,
        env = "NUDGE_TURN_MAX_TOOL_CALLS",
        global = true,
        value_name = "N"
    )]
    pub turn_max_tool_calls: Option<String>,

    /// Tokens (prompt + output, all calls) per turn [default: 32000].
    #[arg(long, env = "NUDGE_TURN_MAX_TOKENS", global = true, value_name = "N")]
    pub turn_max_tokens: Option<String>,

    /// Wall time of one agent turn, in milliseconds [default: 20000].
    #[arg(long, env = "NUDGE_TURN_DEADLINE_MS", global = true, value_name = "MS")]
    pub turn_deadline_ms: Option<String>,

    /// How long identical model requests are answered from the cache, in seconds; 0 turns
    /// the cache off [default: 300].
    #[arg(
        long,
        env = "NUDGE_LLM_CACHE_TTL_SECS",
        global = true,
        value_name = "SECS"
    )]
    pub llm_cache_ttl_secs: Option<String>,

    /// Model calls in flight at once to each provider from this node; more wait their turn
    /// [default: 64]. A call mostly waits on the network, so this bounds what the provider
    /// sees from the node, not the node's CPU.
    #[arg(long, env = "NUDGE_LLM_CONCURRENCY", global = true, value_name = "N")]
    pub llm_concurrency: Option<String>,

    /// Embedding model for long-term memory, or `off` [default: gemini-embedding-001].
    #[arg(
        long,
        env = "NUDGE_EMBEDDING_MODEL",
        global = true,
        value_name = "MODEL"
    )]
    pub embedding_model: Option<String>,

    /// Size of memory vectors (outputDimensionality) [default: 256].
    #[arg(
        long,
        env = "NUDGE_EMBEDDING_DIMENSIONS",
        global = true,
        value_name = "N"
    )]
    pub embedding_dimensions: Option<String>,

    /// The longest a turn waits for its message's vector before ranking memories lexically,
    /// in milliseconds [default: 300; 0: never wait].
    #[arg(
        long,
        env = "NUDGE_EMBEDDING_QUERY_BUDGET_MS",
        global = true,
        value_name = "MS"
    )]
    pub embedding_query_budget_ms: Option<String>,
}

/// The optional TOML file. Unknown keys are errors, so a typo does not pass silently.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    database_url_file: Option<PathBuf>,
    database_api_url: Option<String>,
    database_api_url_file: Option<PathBuf>,
    database_connections: Option<u64>,
    public_url: Option<String>,
    idle_passivate_secs: Option<u64>,
    reply_window_ms: Option<u64>,
    reminder_grace_secs: Option<u64>,
    log_format: Option<String>,
    master_key: Option<String>,
    master_key_file: Option<PathBuf>,
    jwt_keys: Option<String>,
    jwt_keys_file: Option<PathBuf>,
    redis_url: Option<String>,
    redis_url_file: Option<PathBuf>,
    redis_namespace: Option<String>,
    access_token_ttl_secs: Option<u64>,
    session_ttl_days: Option<u64>,
    argon2_m_kib: Option<u64>,
    argon2_t: Option<u64>,
    argon2_p: Option<u64>,
    password_max_age_days: Option<u64>,
    sms_sender: Option<String>,
    trust_forwarded_for: Option<bool>,
    rate_ip_per_min: Option<u64>,
    rate_auth_per_min: Option<u64>,
    rate_api_per_min: Option<u64>,
    rate_sms_per_min: Option<u64>,
    rate_ws_per_min: Option<u64>,
    retention_messages_days: Option<u64>,
    retention_audit_days: Option<u64>,
    metrics_token: Option<String>,
    metrics_token_file: Option<PathBuf>,
    #[serde(default)]
    twilio: FileTwilio,
    #[serde(default)]
    llm: FileLlm,
    /// The `[embeddings]` table: long-term memory vectors.
    #[serde(default)]
    embeddings: FileEmbeddings,
}

/// The file's `[llm]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLlm {
    gemini_api_key: Option<String>,
    gemini_api_key_file: Option<PathBuf>,
    gemini_model: Option<String>,
    gemini_base_url: Option<String>,
    fallback_url: Option<String>,
    fallback_model: Option<String>,
    fallback_key: Option<String>,
    fallback_key_file: Option<PathBuf>,
    turn_max_llm_calls: Option<u64>,
    turn_max_tool_calls: Option<u64>,
    turn_max_tokens: Option<u64>,
    turn_deadline_ms: Option<u64>,
    cache_ttl_secs: Option<u64>,
    concurrency: Option<u64>,
}

/// The file's `[embeddings]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEmbeddings {
    model: Option<String>,
    dimensions: Option<u64>,
    query_budget_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTwilio {
    account_sid: Option<String>,
    auth_token: Option<String>,
    auth_token_file: Option<PathBuf>,
    api_base: Option<String>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the Twilio auth token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// Set by the operator (env, file, flag or secret file).
    Configured,
    /// Generated into the data directory for local use with `nudge sms-sim`.
    Local,
}

/// Twilio settings.
#[derive(Clone)]
pub struct TwilioSettings {
    /// Needed only to send SMS through the REST API.
    pub account_sid: Option<String>,
    /// Signs webhooks (always checked) and authenticates REST calls.
    pub auth_token: SecretString,
    pub token_source: TokenSource,
    /// Overridable so tests point it at a local fake Twilio.
    pub api_base: Url,
}

impl fmt::Debug for TwilioSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioSettings")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"[redacted]")
            .field("token_source", &self.token_source)
            .field("api_base", &self.api_base.as_str())
            .finish()
    }
}

// LLM ----------------------------------------------------------------------------------------

/// Embeddings for long-term memory retrieval (Gemini `embedContent`).
#[derive(Debug, Clone)]
pub struct EmbeddingSettings {
    /// `None`: no key, so no embeddings (memories are ranked lexically).
    pub api_key: Option<SecretString>,
    /// Overridable so tests point it at a local fake.
    pub base_url: Url,
    /// `None` when turned off (`NUDGE_EMBEDDING_MODEL=off`).
    pub model: Option<String>,
    pub dimensions: u32,
    /// The longest a turn waits for its message's vector.
    pub query_budget: Duration,
}

impl EmbeddingSettings {
    /// Whether embeddings are on: a key and a model.
    pub fn enabled(&self) -> bool {
        self.api_key.is_some() && self.model.is_some()
    }
}

/// A database URL whose password never reaches a log.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The URL with any password replaced, fit for logs.
    pub fn redacted(&self) -> String {
        match Url::parse(self.expose()) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                url.to_string()
            }
            _ => self.expose().to_owned(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The validated settings the application runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: DatabaseUrl,
    /// PostgreSQL only: the login role row-level security binds, for the REST API's work.
    pub database_api_url: Option<DatabaseUrl>,
    /// PostgreSQL only: connections this node opens at most (`NUDGE_DATABASE_CONNECTIONS`).
    pub database_connections: u32,
    /// `None` means "http://" + the address actually bound.
    pub public_url: Option<Url>,
    pub twilio: TwilioSettings,
    pub idle_passivate: Duration,
    pub reply_window: Duration,
    /// How late a reminder missed while down may still fire at start-up.
    pub reminder_grace: Duration,
    pub log_format: LogFormat,
    /// Seals personal columns; its `Debug` shows key ids only.
    pub sealer: Sealer,
    /// Guards `GET /metrics` when set.
    pub metrics_token: Option<SecretString>,
    /// Language models, turn budgets and the response cache.
    pub llm: LlmSettings,
    /// Embeddings for long-term memory retrieval.
    pub embeddings: EmbeddingSettings,
    /// Signs access tokens; its `Debug` shows key ids only.
    pub jwt_keys: JwtKeys,
    /// Shared revocation list and rate limits; `None`: database and in-process instead.
    pub redis_url: Option<DatabaseUrl>,
    /// Prefix of this deployment's Redis keys.
    pub redis_namespace: String,
    pub auth: AuthSettings,
    pub limits: RateLimits,
    pub retention: Retention,
    /// Client addresses come from `X-Forwarded-For` (behind a trusted proxy only).
    pub trust_forwarded_for: bool,
}

/// Accounts and sessions.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub access_ttl: Duration,
    pub session_ttl: Duration,
    pub argon2: HashParams,
    /// `None`: passwords never expire by age.
    pub password_max_age: Option<Duration>,
    /// Sends verification codes to people without a dedicated number.
    pub sms_sender: Option<String>,
}

/// Requests per minute of each route class; 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub ip_per_min: u32,
    pub auth_per_min: u32,
    pub api_per_min: u32,
    pub sms_per_min: u32,
    pub ws_per_min: u32,
}

/// How long each class of data is kept; `None` keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub messages: Option<Duration>,
    pub audit: Option<Duration>,
}

// LLM ----------------------------------------------------------------------------------------

/// Gemini, when a key is configured.
#[derive(Clone)]
pub struct GeminiSettings {
    pub api_key: SecretString,
    pub model: String,
    /// Overridable so tests point it at a local fake Gemini.
    pub base_url: Url,
}

/// The OpenAI-compatible fallback model, when a URL is configured.
#[derive(Clone)]
pub struct FallbackLlmSettings {
    pub url: Url,
    pub model: String,
    pub api_key: Option<SecretString>,
}

/// What one agent turn may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnBudgetSettings {
    pub max_llm_calls: u32,
    pub max_tool_calls: u32,
    pub max_tokens: u32,
    pub deadline: Duration,
}

/// Language-model settings.
#[derive(Clone)]
pub struct LlmSettings {
    pub gemini: Option<GeminiSettings>,
    pub fallback: Option<FallbackLlmSettings>,
    pub budget: TurnBudgetSettings,
    /// `None`: no response cache.
    pub cache_ttl: Option<Duration>,
    /// Calls in flight at once to each provider.
    pub concurrency: usize,
}

impl LlmSettings {
    /// True when any model is configured (the agent answers; otherwise the offline rules).
    pub fn any_model(&self) -> bool {
        self.gemini.is_some() || self.fallback.is_some()
    }
}

impl fmt::Debug for LlmSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmSettings")
            .field(
                "gemini",
                &self
                    .gemini
                    .as_ref()
                    .map(|g| (g.model.as_str(), g.base_url.as_str(), "key: [redacted]")),
            )
            .field(
                "fallback",
                &self
                    .fallback
                    .as_ref()
                    .map(|f| (f.model.as_str(), f.url.as_str())),
            )
            .field("budget", &self.budget)
            .field("cache_ttl", &self.cache_ttl)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

const DEFAULT_GEMINI_MODEL: &str = "gemini-2.5-flash";
const DEFAULT_GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com";
const DEFAULT_TURN_MAX_LLM_CALLS: u64 = 6;
const DEFAULT_TURN_MAX_TOOL_CALLS: u64 = 8;
const DEFAULT_TURN_MAX_TOKENS: u64 = 32_000;
const DEFAULT_TURN_DEADLINE_MS: u64 = 20_000;
const DEFAULT_LLM_CACHE_TTL_SECS: u64 = 300;
const DEFAULT_LLM_CONCURRENCY: u64 = 64;

/// A count that must lie in `min..=max`.
fn bounded(
    setting: &'static str,
    arg: &Option<String>,
    file: Option<u64>,
    default: u64,
    (min, max): (u64, u64),
) -> Result<u64, ConfigError> {
    let value = number(setting, arg, file, default)?;
    if !(min..=max).contains(&value) {
        return Err(ConfigError::new(
            setting,
            format!("{value} is outside {min}..={max}"),
        ));
    }
    Ok(value)
}

/// The `// LLM` block of [`Settings::load`].
fn load_llm(args: &SettingsArgs, file: FileLlm) -> Result<LlmSettings, ConfigError> {
    let gemini_key = secret_value(
        "GEMINI_API_KEY",
        pick(&args.gemini_api_key, &file.gemini_api_key),
        args.gemini_api_key_file
            .clone()
            .or(file.gemini_api_key_file),
    )?;
    let gemini = match gemini_key {
        Some(key) if key.trim().is_empty() => {
            return Err(ConfigError::new("GEMINI_API_KEY", "is empty"));
        }
        Some(key) => {
            let model =
                pick(&args.gemini_model, &file.gemini_model).unwrap_or(DEFAULT_GEMINI_MODEL.into());
            if model.is_empty()
                || !model
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(ConfigError::new(
                    "NUDGE_GEMINI_MODEL",
                    format!("{model:?} is not a model name like gemini-2.5-flash"),
                ));
            }
            let base = pick(&args.gemini_base_url, &file.gemini_base_url)
                .unwrap_or(DEFAULT_GEMINI_BASE_URL.into());
            Some(GeminiSettings {
                api_key: SecretString::from(key.trim().to_owned()),
                model,
                base_url: parse_http_url("NUDGE_GEMINI_BASE_URL", &base)?,
            })
        }
        None => None,
    };
    let fallback_key = secret_value(
        "NUDGE_FALLBACK_LLM_KEY",
        pick(&args.fallback_llm_key, &file.fallback_key),
        args.fallback_llm_key_file
            .clone()
            .or(file.fallback_key_file),
    )?;
    let fallback = match pick(&args.fallback_llm_url, &file.fallback_url) {
        Some(url) => {
            let url = parse_http_url("NUDGE_FALLBACK_LLM_URL", &url)?;
            let model = pick(&args.fallback_llm_model, &file.fallback_model)
                .filter(|m| !m.trim().is_empty())
                .ok_or_else(|| {
                    ConfigError::new(
                        "NUDGE_FALLBACK_LLM_MODEL",
                        "required with NUDGE_FALLBACK_LLM_URL (e.g. llama3.1:8b)",
                    )
                })?;
            Some(FallbackLlmSettings {
                url,
                model,
                api_key: fallback_key
                    .filter(|k| !k.is_empty())
                    .map(SecretString::from),
            })
        }
        None => None,
    };
    let budget = TurnBudgetSettings {
        max_llm_calls: bounded(
            "NUDGE_TURN_MAX_LLM_CALLS",
            &args.turn_max_llm_calls,
            file.turn_max_llm_calls,
            DEFAULT_TURN_MAX_LLM_CALLS,
            (1, 50),
        )? as u32,
        max_tool_calls: bounded(
            "NUDGE_TURN_MAX_TOOL_CALLS",
            &args.turn_max_tool_calls,
            file.turn_max_tool_calls,
            DEFAULT_TURN_MAX_TOOL_CALLS,
            (0, 100),
        )? as u32,
        max_tokens: bounded(
            "NUDGE_TURN_MAX_TOKENS",
            &args.turn_max_tokens,
            file.turn_max_tokens,
            DEFAULT_TURN_MAX_TOKENS,
            (1_000, 2_000_000),
        )? as u32,
        deadline: Duration::from_millis(bounded(
            "NUDGE_TURN_DEADLINE_MS",
            &args.turn_deadline_ms,
            file.turn_deadline_ms,
            DEFAULT_TURN_DEADLINE_MS,
            (500, 300_000),
        )?),
    };
    let ttl = number(
        "NUDGE_LLM_CACHE_TTL_SECS",
        &args.llm_cache_ttl_secs,
        file.cache_ttl_secs,
        DEFAULT_LLM_CACHE_TTL_SECS,
    )?;
    let concurrency = bounded(
        "NUDGE_LLM_CONCURRENCY",
        &args.llm_concurrency,
        file.concurrency,
        DEFAULT_LLM_CONCURRENCY,
        (1, 4_096),
    )? as usize;
    Ok(LlmSettings {
        gemini,
        fallback,
        budget,
        cache_ttl: (ttl > 0).then(|| Duration::from_secs(ttl)),
        concurrency,
    })
}

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_IDLE_PASSIVATE_SECS: u64 = 900;
const DEFAULT_REPLY_WINDOW_MS: u64 = 5_000;
const DEFAULT_REMINDER_GRACE_SECS: u64 = 6 * 3600;
/// Twilio stops waiting after 15 s; the window must leave room for the answer to travel.
const MAX_REPLY_WINDOW_MS: u64 = 14_000;
const DEFAULT_TWILIO_API_BASE: &str = "https://api.twilio.com";
const LOCAL_TOKEN_FILE: &str = "twilio_auth_token";
const LOCAL_MASTER_KEY_FILE: &str = "master.key";
// LLM
const DEFAULT_EMBEDDING_MODEL: &str = "gemini-embedding-001";
const DEFAULT_EMBEDDING_DIMENSIONS: u64 = 256;
/// gemini-embedding-001 makes 3072 dimensions at most.
const MAX_EMBEDDING_DIMENSIONS: u64 = 3072;
const DEFAULT_EMBEDDING_QUERY_BUDGET_MS: u64 = 300;
/// A turn is never held longer than this for a message's vector.
const MAX_EMBEDDING_QUERY_BUDGET_MS: u64 = 2_000;
const LOCAL_JWT_KEY_FILE: &str = "jwt.key";
const DAY_SECS: u64 = 24 * 60 * 60;

impl Settings {
    /// Opens the store these settings name (migrating it), as every command does first.
    pub async fn open_store(&self) -> anyhow::Result<crate::store::Store> {
        use anyhow::Context;
        let options = crate::store::StoreOptions {
            postgres_connections: self.database_connections,
        };
        crate::store::connect_with(self.database_url.expose(), self.sealer.clone(), options)
            .await
            .with_context(|| format!("opening database {}", self.database_url.redacted()))
    }

    /// Loads and validates the settings from the flags/environment and the optional file.
    /// Creates the data directory, and a local Twilio token when none is configured.
    pub fn load(args: &SettingsArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file_settings(path)?,
            None => FileSettings::default(),
        };
        let embeddings = embedding_settings(args, &file)?;

        let listen_text = pick(&args.listen, &file.listen).unwrap_or(DEFAULT_LISTEN.into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            ConfigError::new(
                "NUDGE_LISTEN",
                format!("{listen_text:?} is not a socket address like 127.0.0.1:8080"),
            )
        })?;

        let data_dir = match args.data_dir.clone().or(file.data_dir) {
            Some(dir) => dir,
            None => directories::ProjectDirs::from("", "", "nudge")
                .map(|dirs| dirs.data_dir().to_path_buf())
                .ok_or_else(|| {
                    ConfigError::new(
                        "NUDGE_DATA_DIR",
                        "no home directory to derive a default from; set it",
                    )
                })?,
        };
        std::fs::create_dir_all(&data_dir).map_err(|e| {
            ConfigError::new(
                "NUDGE_DATA_DIR",
                format!("cannot create {}: {e}", data_dir.display()),
            )
        })?;

        let database_url = secret_value(
            "NUDGE_DATABASE_URL",
            pick(&args.database_url, &file.database_url),
            args.database_url_file.clone().or(file.database_url_file),
        )?
        .unwrap_or_else(|| format!("sqlite:{}", data_dir.join("nudge.db").display()));
        let scheme = database_url.split(':').next().unwrap_or_default();
        if !matches!(scheme, "sqlite" | "postgres" | "postgresql") {
            return Err(ConfigError::new(
                "NUDGE_DATABASE_URL",
                format!("unknown scheme {scheme:?}; expected sqlite: or postgres://"),
            ));
        }

        let database_api_url = secret_value(
            "NUDGE_DATABASE_API_URL",
            pick(&args.database_api_url, &file.database_api_url),
            args.database_api_url_file
                .clone()
                .or(file.database_api_url_file),
        )?;
        if let Some(url) = &database_api_url {
            let api_scheme = url.split(':').next().unwrap_or_default();
            if scheme == "sqlite" || !matches!(api_scheme, "postgres" | "postgresql") {
                return Err(ConfigError::new(
                    "NUDGE_DATABASE_API_URL",
                    "is a postgres:// URL, for a PostgreSQL NUDGE_DATABASE_URL only",
                ));
            }
        }

        let database_connections = bounded(
            "NUDGE_DATABASE_CONNECTIONS",
            &args.database_connections,
            file.database_connections,
            crate::store::postgres::DEFAULT_CONNECTIONS.into(),
            (2, 10_000),
        )? as u32;

        let public_url = match pick(&args.public_url, &file.public_url) {
            Some(text) => Some(parse_http_url("NUDGE_PUBLIC_URL", &text)?),
            None => None,
        };

        let account_sid = pick(&args.twilio_account_sid, &file.twilio.account_sid);
        if let Some(sid) = &account_sid
            && !(sid.starts_with("AC")
                && sid.len() == 34
                && sid[2..].chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(ConfigError::new(
                "TWILIO_ACCOUNT_SID",
                "expected AC followed by 32 hexadecimal characters",
            ));
        }
        let configured_token = secret_value(
            "TWILIO_AUTH_TOKEN",
            pick(&args.twilio_auth_token, &file.twilio.auth_token),
            args.twilio_auth_token_file
                .clone()
                .or(file.twilio.auth_token_file),
        )?;
        let (auth_token, token_source) = match configured_token {
            Some(token) if token.is_empty() => {
                return Err(ConfigError::new("TWILIO_AUTH_TOKEN", "is empty"));
            }
            Some(token) => (token, TokenSource::Configured),
            None if account_sid.is_some() => {
                return Err(ConfigError::new(
                    "TWILIO_AUTH_TOKEN",
                    "TWILIO_ACCOUNT_SID is set but the auth token is not",
                ));
            }
            None => (local_token(&data_dir)?, TokenSource::Local),
        };
        let api_base_text = pick(&args.twilio_api_base, &file.twilio.api_base)
            .unwrap_or(DEFAULT_TWILIO_API_BASE.into());
        let api_base = parse_http_url("TWILIO_API_BASE", &api_base_text)?;

        let idle_secs = number(
            "NUDGE_IDLE_PASSIVATE_SECS",
            &args.idle_passivate_secs,
            file.idle_passivate_secs,
            DEFAULT_IDLE_PASSIVATE_SECS,
        )?;
        if idle_secs == 0 {
            return Err(ConfigError::new(
                "NUDGE_IDLE_PASSIVATE_SECS",
                "must be at least 1",
            ));
        }
        let reminder_grace_secs = number(
            "NUDGE_REMINDER_GRACE_SECS",
            &args.reminder_grace_secs,
            file.reminder_grace_secs,
            DEFAULT_REMINDER_GRACE_SECS,
        )?;
        let window_ms = number(
            "NUDGE_REPLY_WINDOW_MS",
            &args.reply_window_ms,
            file.reply_window_ms,
            DEFAULT_REPLY_WINDOW_MS,
        )?;
        if window_ms > MAX_REPLY_WINDOW_MS {
            return Err(ConfigError::new(
                "NUDGE_REPLY_WINDOW_MS",
                format!(
                    "{window_ms} ms is past Twilio's 15 s limit; use at most {MAX_REPLY_WINDOW_MS}"
                ),
            ));
        }

        let log_format = match pick(&args.log_format, &file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::new(
                    "NUDGE_LOG_FORMAT",
                    format!("{other:?} is not one of text, json"),
                ));
            }
        };

        let sealer = match secret_value(
            "NUDGE_MASTER_KEY",
            pick(&args.master_key, &file.master_key),
            args.master_key_file.clone().or(file.master_key_file),
        )? {
            Some(text) => Sealer::from_text(&text)
                .map_err(|e| ConfigError::new("NUDGE_MASTER_KEY", e.to_string()))?,
            None if scheme == "sqlite" => local_master_key(&data_dir)?,
            None => {
                return Err(ConfigError::new(
                    "NUDGE_MASTER_KEY",
                    "required with PostgreSQL (a generated key would live on one node only); \
                     make one with: head -c 32 /dev/urandom | base64",
                ));
            }
        };

        let jwt_keys = match secret_value(
            "NUDGE_JWT_KEYS",
            pick(&args.jwt_keys, &file.jwt_keys),
            args.jwt_keys_file.clone().or(file.jwt_keys_file),
        )? {
            Some(text) => JwtKeys::from_text(&text)
                .map_err(|e| ConfigError::new("NUDGE_JWT_KEYS", e.to_string()))?,
            None if scheme == "sqlite" => local_jwt_keys(&data_dir)?,
            None => {
                return Err(ConfigError::new(
                    "NUDGE_JWT_KEYS",
                    "required with PostgreSQL (every node must verify every node's tokens); \
                     make one with: head -c 32 /dev/urandom | base64",
                ));
            }
        };

        let redis_url = secret_value(
            "NUDGE_REDIS_URL",
            pick(&args.redis_url, &file.redis_url),
            args.redis_url_file.clone().or(file.redis_url_file),
        )?;
        if let Some(url) = &redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return Err(ConfigError::new(
                "NUDGE_REDIS_URL",
                "expected a redis:// or rediss:// URL",
            ));
        }

        let redis_namespace =
            pick(&args.redis_namespace, &file.redis_namespace).unwrap_or_else(|| "nudge".into());
        if redis_namespace.is_empty()
            || redis_namespace.len() > 64
            || !redis_namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(ConfigError::new(
                "NUDGE_REDIS_NAMESPACE",
                "use 1 to 64 letters, digits, '-', '_' or '.'",
            ));
        }
        let access_ttl_secs = number(
            "NUDGE_ACCESS_TOKEN_TTL_SECS",
            &args.access_token_ttl_secs,
            file.access_token_ttl_secs,
            900,
        )?;
        if !(30..=3_600).contains(&access_ttl_secs) {
            return Err(ConfigError::new(
                "NUDGE_ACCESS_TOKEN_TTL_SECS",
                "must be between 30 and 3600: access tokens are short-lived",
            ));
        }
        let session_days = number(
            "NUDGE_SESSION_TTL_DAYS",
            &args.session_ttl_days,
            file.session_ttl_days,
            30,
        )?;
        if !(1..=365).contains(&session_days) {
            return Err(ConfigError::new(
                "NUDGE_SESSION_TTL_DAYS",
                "must be between 1 and 365",
            ));
        }
        let small = |setting: &'static str, value: u64| {
            u32::try_from(value)
                .map_err(|_| ConfigError::new(setting, format!("{value} is too large")))
        };
        let defaults = HashParams::default();
        let argon2 = HashParams {
            m_kib: small(
                "NUDGE_ARGON2_M_KIB",
                number(
                    "NUDGE_ARGON2_M_KIB",
                    &args.argon2_m_kib,
                    file.argon2_m_kib,
                    u64::from(defaults.m_kib),
                )?,
            )?,
            t: small(
                "NUDGE_ARGON2_T",
                number(
                    "NUDGE_ARGON2_T",
                    &args.argon2_t,
                    file.argon2_t,
                    u64::from(defaults.t),
                )?,
            )?,
            p: small(
                "NUDGE_ARGON2_P",
                number(
                    "NUDGE_ARGON2_P",
                    &args.argon2_p,
                    file.argon2_p,
                    u64::from(defaults.p),
                )?,
            )?,
        };
        argon2
            .validate()
            .map_err(|problem| ConfigError::new("NUDGE_ARGON2_M_KIB", problem))?;
        let max_age_days = number(
            "NUDGE_PASSWORD_MAX_AGE_DAYS",
            &args.password_max_age_days,
            file.password_max_age_days,
            0,
        )?;
        let sms_sender = pick(&args.sms_sender, &file.sms_sender);
        if let Some(sender) = &sms_sender
            && !crate::cli::is_e164(sender)
        {
            return Err(ConfigError::new(
                "NUDGE_SMS_SENDER",
                format!("{sender:?} is not an E.164 number like +14155550100"),
            ));
        }
        let trust_forwarded_for = match args.trust_forwarded_for.as_deref().map(str::trim) {
            None => file.trust_forwarded_for.unwrap_or(false),
            Some("true" | "1" | "yes") => true,
            Some("false" | "0" | "no") => false,
            Some(other) => {
                return Err(ConfigError::new(
                    "NUDGE_TRUST_FORWARDED_FOR",
                    format!("{other:?} is not true or false"),
                ));
            }
        };
        let per_min =
            |setting: &'static str, arg: &Option<String>, file: Option<u64>, default: u64| {
                small(setting, number(setting, arg, file, default)?)
            };
        let limits = RateLimits {
            ip_per_min: per_min(
                "NUDGE_RATE_IP_PER_MIN",
                &args.rate_ip_per_min,
                file.rate_ip_per_min,
                600,
            )?,
            auth_per_min: per_min(
                "NUDGE_RATE_AUTH_PER_MIN",
                &args.rate_auth_per_min,
                file.rate_auth_per_min,
                20,
            )?,
            api_per_min: per_min(
                "NUDGE_RATE_API_PER_MIN",
                &args.rate_api_per_min,
                file.rate_api_per_min,
                120,
            )?,
            sms_per_min: per_min(
                "NUDGE_RATE_SMS_PER_MIN",
                &args.rate_sms_per_min,
                file.rate_sms_per_min,
                30,
            )?,
            ws_per_min: per_min(
                "NUDGE_RATE_WS_PER_MIN",
                &args.rate_ws_per_min,
                file.rate_ws_per_min,
                60,
            )?,
        };
        let days = |n: u64| (n > 0).then(|| Duration::from_secs(n * DAY_SECS));
        let retention = Retention {
            messages: days(number(
                "NUDGE_RETENTION_MESSAGES_DAYS",
                &args.retention_messages_days,
                file.retention_messages_days,
                0,
            )?),
            audit: days(number(
                "NUDGE_RETENTION_AUDIT_DAYS",
                &args.retention_audit_days,
                file.retention_audit_days,
                90,
            )?),
        };
        let llm = load_llm(args, file.llm)?;

        let metrics_token = match secret_value(
            "NUDGE_METRICS_TOKEN",
            pick(&args.metrics_token, &file.metrics_token),
            args.metrics_token_file.clone().or(file.metrics_token_file),
        )? {
            Some(token) if token.is_empty() => {
                return Err(ConfigError::new("NUDGE_METRICS_TOKEN", "is empty"));
            }
            token => token.map(SecretString::from),
        };

        Ok(Settings {
            embeddings,
            listen,
            data_dir,
            database_url: DatabaseUrl(SecretString::from(database_url)),
            database_api_url: database_api_url.map(|u| DatabaseUrl(SecretString::from(u))),
            database_connections,
            public_url,
            twilio: TwilioSettings {
                account_sid,
                auth_token: SecretString::from(auth_token),
                token_source,
                api_base,
            },
            idle_passivate: Duration::from_secs(idle_secs),
            reply_window: Duration::from_millis(window_ms),
            reminder_grace: Duration::from_secs(reminder_grace_secs),
            log_format,
            sealer,
            llm,
            jwt_keys,
            redis_url: redis_url.map(|u| DatabaseUrl(SecretString::from(u))),
            redis_namespace,
            auth: AuthSettings {
                access_ttl: Duration::from_secs(access_ttl_secs),
                session_ttl: Duration::from_secs(session_days * DAY_SECS),
                argon2,
                password_max_age: days(max_age_days),
                sms_sender,
            },
            limits,
            retention,
            trust_forwarded_for,
            metrics_token,
        })
    }

    /// The base URL Twilio calls, given the address the server actually bound.
    pub fn public_base(&self, bound: SocketAddr) -> Url {
        match &self.public_url {
            Some(url) => url.clone(),
            None => Url::parse(&format!("http://{bound}/")).unwrap_or_else(|_| {
                // A SocketAddr always formats as a valid authority.
                Url::parse("http://127.0.0.1/").unwrap_or_else(|_| unreachable!())
            }),
        }
    }
}

// LLM
fn embedding_settings(
    args: &SettingsArgs,
    file: &FileSettings,
) -> Result<EmbeddingSettings, ConfigError> {
    let api_key = secret_value(
        "GEMINI_API_KEY",
        pick(&args.gemini_api_key, &file.llm.gemini_api_key),
        args.gemini_api_key_file
            .clone()
            .or(file.llm.gemini_api_key_file.clone()),
    )?;
    if api_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
        return Err(ConfigError::new("GEMINI_API_KEY", "is empty"));
    }
    let base_url = parse_http_url(
        "NUDGE_GEMINI_BASE_URL",
        &pick(&args.gemini_base_url, &file.llm.gemini_base_url)
            .unwrap_or(DEFAULT_GEMINI_BASE_URL.into()),
    )?;
    let model = match pick(&args.embedding_model, &file.embeddings.model) {
        None => Some(DEFAULT_EMBEDDING_MODEL.to_owned()),
        Some(m) if matches!(m.trim(), "off" | "none" | "") => None,
        Some(m)
            if m.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) =>
        {
            Some(m)
        }
        Some(m) => {
            return Err(ConfigError::new(
                "NUDGE_EMBEDDING_MODEL",
                format!("{m:?} is not a model name (letters, digits, - _ .) or off"),
            ));
        }
    };
    let dimensions = number(
        "NUDGE_EMBEDDING_DIMENSIONS",
        &args.embedding_dimensions,
        file.embeddings.dimensions,
        DEFAULT_EMBEDDING_DIMENSIONS,
    )?;
    if !(1..=MAX_EMBEDDING_DIMENSIONS).contains(&dimensions) {
        return Err(ConfigError::new(
            "NUDGE_EMBEDDING_DIMENSIONS",
            format!("{dimensions} is not between 1 and {MAX_EMBEDDING_DIMENSIONS}"),
        ));
    }
    let budget_ms = number(
        "NUDGE_EMBEDDING_QUERY_BUDGET_MS",
        &args.embedding_query_budget_ms,
        file.embeddings.query_budget_ms,
        DEFAULT_EMBEDDING_QUERY_BUDGET_MS,
    )?;
    if budget_ms > MAX_EMBEDDING_QUERY_BUDGET_MS {
        return Err(ConfigError::new(
            "NUDGE_EMBEDDING_QUERY_BUDGET_MS",
            format!("{budget_ms} ms would hold turns; use at most {MAX_EMBEDDING_QUERY_BUDGET_MS}"),
        ));
    }
    Ok(EmbeddingSettings {
        api_key: api_key.map(SecretString::from),
        base_url,
        model,
        dimensions: dimensions as u32,
        query_budget: Duration::from_millis(budget_ms),
    })
}

/// Flag/env value first, then the file's.
fn pick(arg: &Option<String>, file: &Option<String>) -> Option<String> {
    arg.clone().or_else(|| file.clone())
}

fn read_file_settings(path: &Path) -> Result<FileSettings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            "NUDGE_CONFIG",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    toml::from_str(&text).map_err(|e| {
        ConfigError::new(
            "NUDGE_CONFIG",
            format!("{}: {}", path.display(), e.message()),
        )
    })
}

/// A secret from its value or its `*_FILE` path; both at once is a mistake worth naming.
fn secret_value(
    setting: &'static str,
    value: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<String>, ConfigError> {
    match (value, file) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            setting,
            format!("set either {setting} or {setting}_FILE, not both"),
        )),
        (Some(value), None) => Ok(Some(value)),
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map(|text| Some(text.trim_end_matches(['\n', '\r']).to_owned()))
            .map_err(|e| {
                ConfigError::new(
                    setting,
                    format!("cannot read {setting}_FILE {}: {e}", path.display()),
                )
            }),
        (None, None) => Ok(None),
    }
}

fn number(
    setting: &'static str,
    arg: &Option<String>,
    file: Option<u64>,
    default: u64,
) -> Result<u64, ConfigError> {
    match arg {
        Some(text) => text.trim().parse().map_err(|_| {
            ConfigError::new(
                setting,
                format!("{text:?} is not a whole non-negative number"),
            )
        }),
        None => Ok(file.unwrap_or(default)),
    }
}

fn parse_http_url(setting: &'static str, text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text)
        .map_err(|e| ConfigError::new(setting, format!("{text:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::new(
            setting,
            format!("{text:?} must be an http:// or https:// URL with a host"),
        ));
    }
    Ok(url)
}

/// Reads, or creates with owner-only permissions, the local Twilio token of the embedded
/// default, so `nudge sms-sim` signs webhooks this server accepts without a Twilio account.
fn local_token(data_dir: &Path) -> Result<String, ConfigError> {
    let path = data_dir.join(LOCAL_TOKEN_FILE);
    let fail = |e: std::io::Error| {
        ConfigError::new(
            "TWILIO_AUTH_TOKEN",
            format!(
                "not set, and the local token {} is unusable: {e}",
                path.display()
            ),
        )
    };
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    let token: String = {
        use rand::RngCore;
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    write_private(&path, token.as_bytes()).map_err(fail)?;
    Ok(token)
}

/// Reads, or creates with owner-only permissions, the master key of the embedded default.
/// Losing this file loses every sealed value: back it up with the database.
fn local_master_key(data_dir: &Path) -> Result<Sealer, ConfigError> {
    let path = data_dir.join(LOCAL_MASTER_KEY_FILE);
    let fail = |problem: String| {
        ConfigError::new(
            "NUDGE_MASTER_KEY",
            format!(
                "not set, and the local key {} is unusable: {problem}",
                path.display()
            ),
        )
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => return Sealer::from_text(&text).map_err(|e| fail(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e.to_string())),
    }
    let key = seal::generate_key();
    write_private(&path, format!("{}\n", seal::encode_key(&key)).as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    Sealer::new(&[key]).map_err(|e| fail(e.to_string()))
}

/// Reads, or creates with owner-only permissions, the access-token signing key of the
/// embedded default.
fn local_jwt_keys(data_dir: &Path) -> Result<JwtKeys, ConfigError> {
    use crate::auth::tokens;
    let path = data_dir.join(LOCAL_JWT_KEY_FILE);
    let fail = |problem: String| {
        ConfigError::new(
            "NUDGE_JWT_KEYS",
            format!(
                "not set, and the local key {} is unusable: {problem}",
                path.display()
            ),
        )
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => return JwtKeys::from_text(&text).map_err(|e| fail(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e.to_string())),
    }
    let key: [u8; tokens::KEY_LEN] = rand::random();
    write_private(&path, format!("{}\n", tokens::encode_key(&key)).as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    JwtKeys::new(&[key]).map_err(|e| fail(e.to_string()))
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_in(dir: &Path) -> SettingsArgs {
        SettingsArgs {
            data_dir: Some(dir.to_path_buf()),
            ..SettingsArgs::default()
        }
    }

    #[test]
    fn defaults_give_a_sqlite_file_in_the_data_dir_and_a_local_token() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::load(&args_in(dir.path())).unwrap();
        assert_eq!(settings.listen.to_string(), DEFAULT_LISTEN);
        assert!(settings.database_url.expose().starts_with("sqlite:"));
        assert!(settings.database_url.expose().ends_with("nudge.db"));
        assert_eq!(settings.twilio.token_source, TokenSource::Local);
        assert_eq!(settings.database_connections, 24);
        let again = Settings::load(&args_in(dir.path())).unwrap();
        assert_eq!(
            settings.twilio.auth_token.expose_secret(),
            again.twilio.auth_token.expose_secret(),
            "the local token is generated once and reused"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(LOCAL_TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nudge.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nreply_window_ms = 1000\ndatabase_connections = 40\n[twilio]\nauth_token = \"from-file\"\n",
        )
        .unwrap();
        let mut args = args_in(dir.path());
        args.config = Some(file);
        let from_file = Settings::load(&args).unwrap();
        assert_eq!(from_file.listen.port(), 9000);
        assert_eq!(from_file.database_connections, 40);
        assert_eq!(from_file.reply_window, Duration::from_millis(1000));
        assert_eq!(from_file.twilio.auth_token.expose_secret(), "from-file");

        args.listen = Some("127.0.0.1:9100".into());
        args.twilio_auth_token = Some("from-flag".into());
        let overridden = Settings::load(&args).unwrap();
        assert_eq!(overridden.listen.port(), 9100);
        assert_eq!(overridden.twilio.auth_token.expose_secret(), "from-flag");
        assert_eq!(overridden.reply_window, Duration::from_millis(1000));
    }

    #[test]
    fn a_bad_value_names_its_setting() {
        let dir = tempfile::tempdir().unwrap();
        let mut args = args_in(dir.path());
        args.listen = Some("not-an-address".into());
        let err = Settings::load(&args).unwrap_err();
        assert_eq!(err.setting, "NUDGE_LISTEN");
        assert!(err.to_string().contains("not-an-address"));

        let mut args = args_in(dir.path());
        args.database_url = Some("mysql://x".into());
        assert_eq!(
            Settings::load(&args).unwrap_err().setting,
            "NUDGE_DATABASE_URL"
        );

        let mut args = args_in(dir.path());
        args.reply_window_ms = Some("20000".into());
        assert_eq!(
            Settings::load(&args).unwrap_err().setting,
            "NUDGE_REPLY_WINDOW_MS"
        );

        let mut args = args_in(dir.path());
        args.database_api_url = Some("postgres://nudge_api@127.0.0.1/nudge".into());
        assert_eq!(
            Settings::load(&args).unwrap_err().setting,
            "NUDGE_DATABASE_API_URL",
            "a PostgreSQL API role needs a PostgreSQL database"
        );

        for connections in ["1", "10001", "many"] {
            let mut args = args_in(dir.path());
            args.database_connections = Some(connections.into());
            assert_eq!(
                Settings::load(&args).unwrap_err().setting,
                "NUDGE_DATABASE_CONNECTIONS",
                "{connections}"
            );
        }

        let mut args = args_in(dir.path());
        args.twilio_account_sid = Some("nope".into());
        assert_eq!(
            Settings::load(&args).unwrap_err().setting,
            "TWILIO_ACCOUNT_SID"
        );
    }

    #[test]
    fn an_unknown_file_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nudge.toml");
        std::fs::write(&file, "lisen = \"127.0.0.1:9000\"\n").unwrap();
        let mut args = args_in(dir.path());
        args.config = Some(file);
        let err = Settings::load(&args).unwrap_err();
        assert_eq!(err.setting, "NUDGE_CONFIG");
        assert!(err.problem.contains("lisen"), "{}", err.problem);
    }

    #[test]
    fn secrets_come_from_files_but_not_from_both_places() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("token");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let mut args = args_in(dir.path());
        args.twilio_auth_token_file = Some(secret);
        let settings = Settings::load(&args).unwrap();
        assert_eq!(settings.twilio.auth_token.expose_secret(), "s3cret");
        assert_eq!(settings.twilio.token_source, TokenSource::Configured);

        args.twilio_auth_token = Some("other".into());
        assert_eq!(
            Settings::load(&args).unwrap_err().setting,
            "TWILIO_AUTH_TOKEN"
        );
    }

    #[test]
    fn the_embedded_default_generates_its_master_key_once_and_postgres_requires_one() {
        let dir = tempfile::tempdir().unwrap();
        let first = Settings::load(&args_in(dir.path())).unwrap();
        let again = Settings::load(&args_in(dir.path())).unwrap();
        assert_eq!(first.sealer.active_key_id(), again.sealer.active_key_id());
        let sealed = first.sealer.seal("x", "kept");
        assert_eq!(again.sealer.open("x", &sealed).unwrap(), "kept");

        let mut args = args_in(dir.path());
        args.database_url = Some("postgres://nudge@127.0.0.1/nudge".into());
        assert_eq!(
            Settings::load(&args).unwrap_err().setting,
            "NUDGE_MASTER_KEY"
        );
        args.master_key = Some(seal::encode_key(&seal::generate_key()));
        assert_eq!(Settings::load(&args).unwrap_err().setting, "NUDGE_JWT_KEYS");
        args.jwt_keys = Some(seal::encode_key(&seal::generate_key()));
        assert!(Settings::load(&args).is_ok());
        args.master_key = Some("short".into());
        assert_eq!(
            Settings::load(&args).unwrap_err().setting,
            "NUDGE_MASTER_KEY"
        );
    }

    #[test]
    fn llm_settings_default_to_no_model_and_documented_budgets() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::load(&args_in(dir.path())).unwrap();
        assert!(!settings.llm.any_model());
        assert_eq!(
            settings.llm.budget,
            TurnBudgetSettings {
                max_llm_calls: 6,
                max_tool_calls: 8,
                max_tokens: 32_000,
                deadline: Duration::from_secs(20),
            }
        );
        assert_eq!(settings.llm.cache_ttl, Some(Duration::from_secs(300)));
        assert_eq!(settings.llm.concurrency, 64);
    }

    #[test]
    fn llm_settings_come_from_env_file_and_secret_files() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("gemini.key");
        std::fs::write(&key_file, "g-key\n").unwrap();
        let file = dir.path().join("nudge.toml");
        std::fs::write(
            &file,
            "[llm]\nfallback_url = \"http://127.0.0.1:11434/v1\"\nfallback_model = \"llama3.1\"\nturn_max_tool_calls = 3\ncache_ttl_secs = 0\n",
        )
        .unwrap();
        let mut args = args_in(dir.path());
        args.config = Some(file);
        args.gemini_api_key_file = Some(key_file);
        args.gemini_base_url = Some("http://127.0.0.1:9999".into());
        let llm = Settings::load(&args).unwrap().llm;
        let gemini = llm.gemini.expect("gemini configured");
        assert_eq!(gemini.api_key.expose_secret(), "g-key");
        assert_eq!(gemini.model, "gemini-2.5-flash");
        assert_eq!(gemini.base_url.as_str(), "http://127.0.0.1:9999/");
        let fallback = llm.fallback.expect("fallback configured");
        assert_eq!(fallback.model, "llama3.1");
        assert!(fallback.api_key.is_none());
        assert_eq!(llm.budget.max_tool_calls, 3);
        assert_eq!(llm.cache_ttl, None);
    }

    #[test]
    fn bad_llm_settings_name_their_setting() {
        let dir = tempfile::tempdir().unwrap();
        let mut args = args_in(dir.path());
        args.fallback_llm_url = Some("http://127.0.0.1:11434/v1".into());
        assert_eq!(
            Settings::load(&args).unwrap_err().setting,
            "NUDGE_FALLBACK_LLM_MODEL"
        );
        let mut args = args_in(dir.path());
        args.llm_concurrency = Some("0".into());
        assert_eq!(
            Settings::load(&args).unwrap_err().setting,
            "NUDGE_LLM_CONCURRENCY"
        );
        let mut args = args_in(dir.path());
        args.turn_max_llm_calls = Some("0".into());
        assert_eq!(
            Settings::load(&args).unwrap_err().setting,
            "NUDGE_TURN_MAX_LLM_CALLS"
        );
        let mut args = args_in(dir.path());
        args.gemini_api_key = Some("k".into());
        args.gemini_model = Some("../../etc".into());
        assert_eq!(
            Settings::load(&args).unwrap_err().setting,
            "NUDGE_GEMINI_MODEL"
        );
        let mut args = args_in(dir.path());
        args.redis_url = Some("http://localhost".into());
        assert_eq!(
            Settings::load(&args).unwrap_err().setting,
            "NUDGE_REDIS_URL"
        );
    }

    #[test]
    fn embeddings_are_on_with_a_key_and_off_without_one_or_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let off = Settings::load(&args_in(dir.path())).unwrap().embeddings;
        assert!(!off.enabled());
        assert_eq!(off.model.as_deref(), Some("gemini-embedding-001"));
        assert_eq!(off.dimensions, 256);
        assert_eq!(off.query_budget, Duration::from_millis(300));
        assert_eq!(
            off.base_url.as_str(),
            "https://generativelanguage.googleapis.com/"
        );

        let key_file = dir.path().join("gemini");
        std::fs::write(&key_file, "AIza-test\n").unwrap();
        let mut args = args_in(dir.path());
        args.gemini_api_key_file = Some(key_file);
        args.gemini_base_url = Some("http://127.0.0.1:9/".into());
        args.embedding_dimensions = Some("128".into());
        let on = Settings::load(&args).unwrap().embeddings;
        assert!(on.enabled());
        assert_eq!(on.api_key.as_ref().unwrap().expose_secret(), "AIza-test");
        assert_eq!(on.dimensions, 128);
        assert!(!format!("{on:?}").contains("AIza-test"));

        args.embedding_model = Some("off".into());
        assert!(!Settings::load(&args).unwrap().embeddings.enabled());

        for (setting, bad) in [
            ("NUDGE_EMBEDDING_DIMENSIONS", "0"),
            ("NUDGE_EMBEDDING_QUERY_BUDGET_MS", "60000"),
            ("NUDGE_EMBEDDING_MODEL", "models/x?y"),
            ("NUDGE_GEMINI_BASE_URL", "ftp://x"),
        ] {
            let mut args = args_in(dir.path());
            match setting {
                "NUDGE_EMBEDDING_DIMENSIONS" => args.embedding_dimensions = Some(bad.into()),
                "NUDGE_EMBEDDING_QUERY_BUDGET_MS" => {
                    args.embedding_query_budget_ms = Some(bad.into())
                }
                "NUDGE_EMBEDDING_MODEL" => args.embedding_model = Some(bad.into()),
                _ => args.gemini_base_url = Some(bad.into()),
            }
            assert_eq!(Settings::load(&args).unwrap_err().setting, setting, "{bad}");
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let mut args = args_in(dir.path());
        args.twilio_auth_token = Some("tok-very-secret".into());
        args.database_url = Some("postgres://nudge:hunter2@127.0.0.1/nudge".into());
        let key = seal::encode_key(&seal::generate_key());
        args.master_key = Some(key.clone());
        args.gemini_api_key = Some("gemini-very-secret".into());
        let jwt = seal::encode_key(&seal::generate_key());
        args.jwt_keys = Some(jwt.clone());
        args.redis_url = Some("redis://:redispass@127.0.0.1:6379".into());
        let text = format!("{:?}", Settings::load(&args).unwrap());
        assert!(!text.contains("gemini-very-secret"));
        assert!(!text.contains("redis-pass"));
        assert!(!text.contains(&key));
        assert!(!text.contains(&jwt));
        assert!(!text.contains("redispass"));
        assert!(!text.contains("tok-very-secret"));
        assert!(!text.contains("hunter2"));
    }
}
