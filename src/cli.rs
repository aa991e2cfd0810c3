//! The `nudge` command line: `serve`, `admin …`, `sms-sim`, `loadgen`.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use secrecy::ExposeSecret;

use crate::config::{Settings, SettingsArgs};
use crate::loadgen::{LoadgenArgs, population};
use crate::sms::{signature, twilio, twiml};
use crate::store::{self, Language, NewUser, StoreError};

/// Nudge: a personal assistant for people with ADHD, over SMS and the web.
#[derive(Debug, Parser)]
#[command(name = "nudge", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (HTTP edges and the actor system) until SIGTERM or Ctrl-C.
    Serve,
    /// Administer users and data directly in the database.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Send a signed SMS webhook to a running server, as Twilio would, and print the reply.
    SmsSim(SmsSimArgs),
    /// Load a running server with simulated users' signed webhooks and report its throughput,
    /// latency, CPU and memory against a bare axum baseline (see docs/performance.md).
    Loadgen(LoadgenArgs),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Re-seal every sealed value under the active master key (the first of NUDGE_MASTER_KEY),
    /// online, user by user; run it again to resume after an interruption.
    RotateKey(RotateKeyArgs),
    /// Create the simulated population `nudge loadgen` texts as (benchmark databases only):
    /// user i texts from +1999 and i on seven digits to +1998 and i, numbers no carrier assigns.
    /// Users already there are kept.
    Seed(SeedArgs),
}

#[derive(Debug, Args)]
pub struct RotateKeyArgs {
    /// Users re-sealed between two progress checkpoints.
    #[arg(long, default_value_t = 100)]
    pub batch: u32,
}

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// How many users (numbered from 0).
    #[arg(long)]
    pub users: u64,
    /// Messages of conversation history to store for each user created (questions and
    /// replies in turn), so that activating a user loads a typical state.
    #[arg(long, default_value_t = 0)]
    pub history: u32,
    /// Long-term memories to store for each user created (without vectors: a server with an
    /// embedding model computes them after the user's next turn).
    #[arg(long, default_value_t = 0)]
    pub memories: u32,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user with their own phone and their dedicated Twilio number; prints the id.
    Add(UserAddArgs),
    /// Give a user a role: standard, premium or admin (admins must also enroll a second
    /// factor before admin routes open to them).
    Role(UserRoleArgs),
}

#[derive(Debug, Args)]
pub struct UserRoleArgs {
    /// The user's id.
    pub id: String,
    /// standard, premium or admin.
    pub role: String,
}

#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// How Nudge addresses the user.
    #[arg(long)]
    pub name: String,
    /// The user's own phone, E.164 (e.g. +14155550100).
    #[arg(long)]
    pub phone: String,
    /// The dedicated Twilio number the user texts, E.164.
    #[arg(long)]
    pub number: String,
    /// Language of replies: en or fr.
    #[arg(long, default_value = "en")]
    pub lang: String,
    /// IANA time zone, e.g. Europe/Paris.
    #[arg(long, default_value = "UTC")]
    pub tz: String,
}

#[derive(Debug, Args)]
pub struct SmsSimArgs {
    /// The user's dedicated number (Twilio's `To`).
    #[arg(long)]
    pub to: String,
    /// The sender's phone (Twilio's `From`).
    #[arg(long)]
    pub from: String,
    /// Base URL of the server [default: NUDGE_PUBLIC_URL, else http://NUDGE_LISTEN].
    #[arg(long)]
    pub url: Option<String>,
    /// The message text.
    pub text: String,
}

/// Runs a parsed command line; `serve` is handled by `main` (it owns the runtime set-up).
pub async fn run_admin(settings: &Settings, command: AdminCommand) -> anyhow::Result<ExitCode> {
    match command {
        AdminCommand::User(UserCommand::Add(args)) => user_add(settings, args).await,
        AdminCommand::User(UserCommand::Role(args)) => user_role(settings, args).await,
        AdminCommand::RotateKey(args) => rotate_key(settings, args).await,
        AdminCommand::Seed(args) => seed(settings, args).await,
    }
}

/// Users created per round of [`seed`] (and per progress line).
const SEED_ROUND: u64 = 50_000;

async fn seed(settings: &Settings, args: SeedArgs) -> anyhow::Result<ExitCode> {
    if args.users == 0 || args.users > population::MAX_USERS {
        eprintln!("error: --users must be 1 to {}", population::MAX_USERS);
        return Ok(ExitCode::from(2));
    }
    let store = settings.open_store().await?;
    let started = std::time::Instant::now();
    let mut created = 0;
    let mut first = 0;
    while first < args.users {
        let last = (first + SEED_ROUND).min(args.users);
        let users: Vec<NewUser> = (first..last).map(population::new_user).collect();
        let ids = store
            .create_users(&users)
            .await
            .context("creating the population")?;
        population::store_history(&store, &ids, args.history)
            .await
            .context("storing conversation history")?;
        population::store_memories(&store, &ids, args.memories)
            .await
            .context("storing long-term memories")?;
        created += ids.len() as u64;
        if args.users > SEED_ROUND {
            eprintln!("{last} / {} users", args.users);
        }
        first = last;
    }
    println!(
        "created {created} users ({} were already there) in {:.1} s",
        args.users - created,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// The base URL to send webhooks to (`url` if given, else the public URL, else the listen
/// address), and the base the server checks signatures against (its public URL when it has
/// one).
pub fn webhook_bases(settings: &Settings, url: Option<&str>) -> (String, String) {
    let base = match (url, &settings.public_url) {
        (Some(url), _) => url.trim_end_matches('/').to_owned(),
        (None, Some(url)) => url.as_str().trim_end_matches('/').to_owned(),
        (None, None) => format!("http://{}", settings.listen),
    };
    let signed_base = settings
        .public_url
        .as_ref()
        .map(|u| u.as_str().trim_end_matches('/').to_owned())
        .unwrap_or_else(|| base.clone());
    (base, signed_base)
}

/// True for a phone number in E.164: `+`, a non-zero digit, 7 to 15 digits in all.
pub fn is_e164(text: &str) -> bool {
    let Some(digits) = text.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0')
}

async fn user_add(settings: &Settings, args: UserAddArgs) -> anyhow::Result<ExitCode> {
    let problem = if args.name.trim().is_empty() {
        Some("--name must not be empty".to_owned())
    } else if !is_e164(&args.phone) {
        Some(format!(
            "--phone {:?} is not an E.164 number like +14155550100",
            args.phone
        ))
    } else if !is_e164(&args.number) {
        Some(format!(
            "--number {:?} is not an E.164 number like +14155550100",
            args.number
        ))
    } else if args.phone == args.number {
        Some("--phone and --number must differ".to_owned())
    } else if args.tz.parse::<chrono_tz::Tz>().is_err() {
        Some(format!(
            "--tz {:?} is not an IANA time zone like Europe/Paris",
            args.tz
        ))
    } else {
        None
    };
    if let Some(problem) = problem {
        eprintln!("error: {problem}");
        return Ok(ExitCode::from(2));
    }
    let language: Language = match args.lang.parse() {
        Ok(language) => language,
        Err(problem) => {
            eprintln!("error: --lang: {problem}");
            return Ok(ExitCode::from(2));
        }
    };
    let store = settings.open_store().await?;
    let new = NewUser {
        display_name: args.name.trim().to_owned(),
        phone: args.phone.clone(),
        number: args.number.clone(),
        language,
        time_zone: args.tz,
    };
    match store.create_user(&new).await {
        Ok(user) => {
            println!("{}", user.id);
            Ok(ExitCode::SUCCESS)
        }
        Err(StoreError::Conflict(field)) => {
            let which = if field == "number" {
                format!("the number {} is already assigned to a user", args.number)
            } else {
                format!("the phone {} is already registered to a user", args.phone)
            };
            eprintln!("error: {which}");
            Ok(ExitCode::from(1))
        }
        Err(error) => Err(error).context("creating the user"),
    }
}

async fn rotate_key(settings: &Settings, args: RotateKeyArgs) -> anyhow::Result<ExitCode> {
    let store = settings.open_store().await?;
    let key = settings.sealer.active_key_id().to_owned();
    eprintln!("re-sealing under key {key}");
    let columns = store
        .sealed_columns()
        .await
        .context("finding sealed columns")?;
    let (mut resealed, mut unreadable) = (0, 0);
    for (table, column) in &columns {
        let step = store
            .reseal_column(table, column, args.batch, |step| {
                eprintln!(
                    "{}.{}: {} users, {} values re-sealed{}",
                    step.table,
                    step.column,
                    step.users,
                    step.resealed,
                    if step.done { ", done" } else { "" }
                );
            })
            .await
            .with_context(|| format!("re-sealing {table}.{column}"))?;
        resealed += step.resealed;
        unreadable += step.unreadable;
    }
    let outcome = if unreadable == 0 {
        store::Outcome::Success
    } else {
        store::Outcome::Failure
    };
    store
        .audit(
            &store::NewAuditEvent {
                event: "key_rotation",
                outcome,
                actor: None,
                subject: None,
                ip: None,
                detail: serde_json::json!({
                    "key": key, "columns": columns.len(), "resealed": resealed, "unreadable": unreadable,
                }),
            },
            chrono::Utc::now(),
        )
        .await
        .context("logging the rotation")?;
    println!(
        "{resealed} values re-sealed under key {key} in {} columns",
        columns.len()
    );
    if unreadable > 0 {
        eprintln!(
            "error: {unreadable} values open with no key of the ring; keep every old key until they are dealt with"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

async fn user_role(settings: &Settings, args: UserRoleArgs) -> anyhow::Result<ExitCode> {
    let Ok(id) = args.id.parse::<store::UserId>() else {
        eprintln!("error: {:?} is not a user id", args.id);
        return Ok(ExitCode::from(2));
    };
    let role: store::Role = match args.role.parse() {
        Ok(role) => role,
        Err(problem) => {
            eprintln!("error: {problem} (expected standard, premium or admin)");
            return Ok(ExitCode::from(2));
        }
    };
    let store = settings.open_store().await?;
    match store.set_role(id, role).await {
        Ok(()) => {
            store
                .audit_quietly(
                    store::NewAuditEvent {
                        event: "role_changed",
                        outcome: store::Outcome::Success,
                        actor: None,
                        subject: Some(id),
                        ip: None,
                        detail: serde_json::json!({ "role": role.as_str(), "by": "cli" }),
                    },
                    chrono::Utc::now(),
                )
                .await;
            println!("{id} is now {}", role.as_str());
            Ok(ExitCode::SUCCESS)
        }
        Err(StoreError::NotFound) => {
            eprintln!("error: no user has the id {id}");
            Ok(ExitCode::from(1))
        }
        Err(error) => Err(error).context("changing the role"),
    }
}

/// Posts one signed webhook and prints the TwiML reply's text.
pub async fn sms_sim(settings: &Settings, args: SmsSimArgs) -> anyhow::Result<ExitCode> {
    let (base, signed_base) = webhook_bases(settings, args.url.as_deref());
    let params: Vec<(String, String)> = vec![
        ("MessageSid".into(), twilio::new_message_sid()),
        (
            "AccountSid".into(),
            settings
                .twilio
                .account_sid
                .clone()
                .unwrap_or_else(|| format!("AC{}", "0".repeat(32))),
        ),
        ("From".into(), args.from),
        ("To".into(), args.to),
        ("Body".into(), args.text),
        ("NumMedia".into(), "0".into()),
        ("ApiVersion".into(), "2010-04-01".into()),
    ];
    let signature = signature::expected_signature(
        settings.twilio.auth_token.expose_secret(),
        &format!("{signed_base}/sms/inbound"),
        &params,
    );
    let response = reqwest::Client::new()
        .post(format!("{base}/sms/inbound"))
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .send()
        .await
        .with_context(|| format!("posting to {base}/sms/inbound (is `nudge serve` running?)"))?;
    let status = response.status();
    let text = response.text().await.context("reading the answer")?;
    if !status.is_success() {
        eprintln!("error: the server answered {status}: {text}");
        return Ok(ExitCode::from(1));
    }
    let messages = twiml::parse_messages(&text);
    if messages.is_empty() {
        println!("(no reply in the webhook answer)");
    }
    for message in messages {
        println!("{message}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// A subcommand's help lists its own options first; the server's settings, which every
    /// subcommand takes, follow under a heading of their own.
    #[test]
    fn a_subcommands_help_keeps_its_own_options_apart_from_the_server_settings() {
        let mut cli = Cli::command();
        cli.build();
        let loadgen = cli
            .find_subcommand_mut("loadgen")
            .expect("loadgen is a subcommand");
        let help = loadgen.render_long_help().to_string();
        let heading = help
            .find("Server settings")
            .expect("the server settings have their heading");
        for own in ["--target", "--users", "--concurrency", "--rate", "--json"] {
            let at = help.find(own).unwrap_or_else(|| panic!("{own} missing"));
            assert!(at < heading, "{own} is listed among the server settings");
        }
        for setting in ["--listen", "--database-url", "--reply-window-ms"] {
            let at = help
                .find(setting)
                .unwrap_or_else(|| panic!("{setting} missing"));
            assert!(at > heading, "{setting} is mixed into loadgen's options");
        }
    }
}
