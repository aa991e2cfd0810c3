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
}

/// The optional TOML file. Unknown keys are errors, so a typo does not pass silently.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    database_url_file: Option<PathBuf>,
    public_url: Option<String>,
    idle_passivate_secs: Option<u64>,
    reply_window_ms: Option<u64>,
    log_format: Option<String>,
    master_key: Option<String>,
    master_key_file: Option<PathBuf>,
    metrics_token: Option<String>,
    metrics_token_file: Option<PathBuf>,
    #[serde(default)]
    twilio: FileTwilio,
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
    /// `None` means "http://" + the address actually bound.
    pub public_url: Option<Url>,
    pub twilio: TwilioSettings,
    pub idle_passivate: Duration,
    pub reply_window: Duration,
    pub log_format: LogFormat,
    /// Seals personal columns; its `Debug` shows key ids only.
    pub sealer: Sealer,
    /// Guards `GET /metrics` when set.
    pub metrics_token: Option<SecretString>,
}

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_IDLE_PASSIVATE_SECS: u64 = 900;
const DEFAULT_REPLY_WINDOW_MS: u64 = 5_000;
/// Twilio stops waiting after 15 s; the window must leave room for the answer to travel.
const MAX_REPLY_WINDOW_MS: u64 = 14_000;
const DEFAULT_TWILIO_API_BASE: &str = "https://api.twilio.com";
const LOCAL_TOKEN_FILE: &str = "twilio_auth_token";
const LOCAL_MASTER_KEY_FILE: &str = "master.key";

impl Settings {
    /// Loads and validates the settings from the flags/environment and the optional file.
    /// Creates the data directory, and a local Twilio token when none is configured.
    pub fn load(args: &SettingsArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file_settings(path)?,
            None => FileSettings::default(),
        };

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
            listen,
            data_dir,
            database_url: DatabaseUrl(SecretString::from(database_url)),
            public_url,
            twilio: TwilioSettings {
                account_sid,
                auth_token: SecretString::from(auth_token),
                token_source,
                api_base,
            },
            idle_passivate: Duration::from_secs(idle_secs),
            reply_window: Duration::from_millis(window_ms),
            log_format,
            sealer,
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
            "listen = \"127.0.0.1:9000\"\nreply_window_ms = 1000\n[twilio]\nauth_token = \"from-file\"\n",
        )
        .unwrap();
        let mut args = args_in(dir.path());
        args.config = Some(file);
        let from_file = Settings::load(&args).unwrap();
        assert_eq!(from_file.listen.port(), 9000);
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
        assert!(Settings::load(&args).is_ok());
        args.master_key = Some("short".into());
        assert_eq!(
            Settings::load(&args).unwrap_err().setting,
            "NUDGE_MASTER_KEY"
        );
    }

    #[test]
    fn debug_output_hides_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let mut args = args_in(dir.path());
        args.twilio_auth_token = Some("tok-very-secret".into());
        args.database_url = Some("postgres://nudge:hunter2@127.0.0.1/nudge".into());
        let key = seal::encode_key(&seal::generate_key());
        args.master_key = Some(key.clone());
        let text = format!("{:?}", Settings::load(&args).unwrap());
        assert!(!text.contains(&key));
        assert!(!text.contains("tok-very-secret"));
        assert!(!text.contains("hunter2"));
    }
}
