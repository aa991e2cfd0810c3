//! Test support: start the real `nudge` binary on loopback against a fresh database, talk to
//! it as Twilio would (real signatures), and clean up.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nudge::sms::signature;
use nudge::store::{self, Sealer, Store};

pub const AUTH_TOKEN: &str = "test-auth-token-0123456789abcdef";
/// The master key ring every test server runs with, so tests can open what it sealed.
pub const MASTER_KEY: &str = "dGVzdC1tYXN0ZXIta2V5LTAxMjM0NTY3ODlhYmNkZWY=";
/// The access-token signing key every test server runs with.
pub const JWT_KEYS: &str = "dGVzdC1qd3Qtc2lnbmluZy1rZXktMDEyMzQ1Njc4OWE=";
pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A database the binary and the test both open.
#[derive(Debug, Clone)]
pub struct Database {
    pub label: &'static str,
    pub url: String,
}

impl Database {
    /// The embedded default: a SQLite file in `dir`.
    pub fn sqlite(dir: &Path) -> Self {
        Self {
            label: "sqlite",
            url: format!("sqlite:{}", dir.join("nudge.db").display()),
        }
    }

    /// A data directory of this database's own under `root`, so variants never share files.
    pub fn data_dir(&self, root: &Path) -> PathBuf {
        let dir = root.join(self.label);
        std::fs::create_dir_all(&dir).expect("create data dir");
        dir
    }
}

/// The databases every end-to-end test runs against: SQLite always, PostgreSQL when the
/// test server is configured (and required on CI).
pub async fn databases(dir: &Path) -> Vec<Database> {
    let mut all = vec![Database::sqlite(dir)];
    match store::testing::fresh_postgres_url().await {
        Some(url) => all.push(Database {
            label: "postgres",
            url,
        }),
        None if store::testing::require_postgres() => {
            panic!("CI is set but NUDGE_TEST_POSTGRES_URL is not: PostgreSQL tests cannot run")
        }
        None => eprintln!("NUDGE_TEST_POSTGRES_URL unset: PostgreSQL variant skipped"),
    }
    all
}

/// A running `nudge serve`, killed on drop.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub data_dir: PathBuf,
    pub database: Database,
    env: Vec<(String, String)>,
    pub http: reqwest::Client,
}

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_nudge")
}

fn base_env(data_dir: &Path, database: &Database) -> Vec<(String, String)> {
    vec![
        ("NUDGE_DATA_DIR".into(), data_dir.display().to_string()),
        ("NUDGE_DATABASE_URL".into(), database.url.clone()),
        ("TWILIO_AUTH_TOKEN".into(), AUTH_TOKEN.into()),
        ("NUDGE_MASTER_KEY".into(), MASTER_KEY.into()),
        ("NUDGE_JWT_KEYS".into(), JWT_KEYS.into()),
        // Cheap hashing: debug builds run argon2 slowly, and tests sign in often.
        ("NUDGE_ARGON2_M_KIB".into(), "64".into()),
        ("NUDGE_ARGON2_T".into(), "1".into()),
        ("NUDGE_LISTEN".into(), "127.0.0.1:0".into()),
        (
            "RUST_LOG".into(),
            std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()),
        ),
    ]
}

/// Runs a `nudge` subcommand to completion with the same environment as a server.
pub fn run_cli(data_dir: &Path, database: &Database, args: &[&str]) -> std::process::Output {
    run_cli_with(data_dir, database, &[], args)
}

/// [`run_cli`] with extra environment variables.
pub fn run_cli_with(
    data_dir: &Path,
    database: &Database,
    extra: &[(&str, &str)],
    args: &[&str],
) -> std::process::Output {
    let mut command = Command::new(binary());
    command.args(args).env_clear();
    for (k, v) in base_env(data_dir, database) {
        command.env(k, v);
    }
    for (k, v) in extra {
        command.env(k, v);
    }
    command
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("run nudge")
}

/// Creates a user through the CLI and returns its id.
pub fn add_user(
    data_dir: &Path,
    database: &Database,
    name: &str,
    phone: &str,
    number: &str,
    lang: &str,
) -> String {
    let output = run_cli(
        data_dir,
        database,
        &[
            "admin",
            "user",
            "add",
            "--name",
            name,
            "--phone",
            phone,
            "--number",
            number,
            "--lang",
            lang,
            "--tz",
            "Europe/Paris",
        ],
    );
    assert!(
        output.status.success(),
        "admin user add failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

impl Server {
    /// Starts the binary with extra environment variables and waits until it listens.
    pub fn start(data_dir: &Path, database: &Database, extra: &[(&str, &str)]) -> Server {
        let mut env = base_env(data_dir, database);
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let mut command = Command::new(binary());
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if std::env::var("TEST_LOG").is_ok() {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        for (k, v) in &env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn nudge serve");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("nudge listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let base = match rx.recv_timeout(START_TIMEOUT) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!("nudge serve did not start within {START_TIMEOUT:?} (exit: {status:?})");
            }
        };
        Server {
            child: Some(child),
            base,
            data_dir: data_dir.to_path_buf(),
            database: database.clone(),
            env,
            // No idle connections kept: the server closes a connection whose body it refused
            // unread (415, 413), and a pooled connection reused after that close fails.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(0)
                .build()
                .expect("http client"),
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        assert!(status.success(), "nudge exited with {status}");
                        return;
                    }
                    Ok(None) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!("nudge did not stop within 30 s of SIGTERM");
                    }
                }
            }
        }
    }

    /// Stops this server and starts another on the same data directory and database.
    pub fn restart(self) -> Server {
        let data_dir = self.data_dir.clone();
        let database = self.database.clone();
        let extra: Vec<(String, String)> = self.env.clone();
        self.stop();
        let extra: Vec<(&str, &str)> = extra
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Server::start(&data_dir, &database, &extra)
    }

    /// Kills this server with SIGKILL (no shutdown at all, as a crash or an OOM kill) and
    /// starts another on the same data directory and database.
    pub fn kill_and_restart(mut self) -> Server {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let extra: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Server::start(&self.data_dir, &self.database, &extra)
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Opens the server's database from the test, to look at what was stored.
    pub async fn store(&self) -> Store {
        store::connect(&self.database.url, sealer())
            .await
            .expect("open store")
    }

    /// Posts a Twilio-signed inbound SMS webhook.
    pub async fn sms(&self, sid: &str, from: &str, to: &str, body: &str) -> reqwest::Response {
        let params = sms_params(sid, from, to, body);
        let signature =
            signature::expected_signature(AUTH_TOKEN, &self.url("/sms/inbound"), &params);
        self.http
            .post(self.url("/sms/inbound"))
            .header("X-Twilio-Signature", signature)
            .form(&params)
            .send()
            .await
            .expect("post webhook")
    }

    /// Posts a webhook and returns the text of its TwiML `<Message>` (empty if none).
    pub async fn text(&self, sid: &str, from: &str, to: &str, body: &str) -> String {
        let response = self.sms(sid, from, to, body).await;
        assert_eq!(
            response.status(),
            200,
            "webhook answered {}",
            response.status()
        );
        let xml = response.text().await.expect("body");
        nudge::sms::twiml::parse_messages(&xml).join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The key ring of [`MASTER_KEY`].
pub fn sealer() -> Sealer {
    Sealer::from_text(MASTER_KEY).expect("test master key")
}

/// The form Twilio posts for an inbound SMS.
pub fn sms_params(sid: &str, from: &str, to: &str, body: &str) -> Vec<(String, String)> {
    vec![
        ("ToCountry".into(), "US".into()),
        ("SmsMessageSid".into(), sid.into()),
        ("NumMedia".into(), "0".into()),
        ("SmsSid".into(), sid.into()),
        ("SmsStatus".into(), "received".into()),
        ("Body".into(), body.into()),
        ("To".into(), to.into()),
        ("NumSegments".into(), "1".into()),
        ("MessageSid".into(), sid.into()),
        ("AccountSid".into(), ACCOUNT_SID.into()),
        ("From".into(), from.into()),
        ("ApiVersion".into(), "2010-04-01".into()),
    ]
}

/// A fresh Twilio-shaped message SID.
pub fn sid() -> String {
    nudge::sms::twilio::new_message_sid()
}
