//! The `nudge` binary: parse the command line, load settings, start telemetry, run.
//!
//! Run with: `cargo run --release -- serve` (see the README for the rest).

use std::process::ExitCode;

use clap::Parser;

use nudge::app::{Application, shutdown_signal};
use nudge::cli::{Cli, Command, run_admin, sms_sim};
use nudge::config::Settings;

#[tokio::main]
async fn main() -> ExitCode {
    let small_pages = nudge::small_pages_only();
    // One TLS crypto provider for the whole process (reqwest and sqlx both use rustls).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let cli = Cli::parse();
    let settings = match Settings::load(&cli.settings) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    nudge::telemetry::init(settings.log_format);
    if let Err(error) = small_pages {
        tracing::warn!(%error, "transparent huge pages stay on; a heap that grows may stall");
    }

    let result = match cli.command {
        Command::Serve => serve(settings).await,
        Command::Admin(command) => run_admin(&settings, command).await,
        Command::SmsSim(args) => sms_sim(&settings, args).await,
        Command::Loadgen(args) => nudge::loadgen::run(&settings, args).await,
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<ExitCode> {
    let app = Application::build(settings).await?;
    // Machine-readable, on stdout: scripts and tests wait for this line.
    println!("nudge listening on http://{}", app.local_addr());
    app.run_until(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
