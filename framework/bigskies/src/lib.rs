//! The Big Skies binary, as a library so its wiring is testable.
//!
//! * `bigskies coordinator <name>`: one coordinator (`bootstrap`, `message`, `security`,
//!   `datastore`, `application`, `plugin`, `uielement`, `telescope`).
//! * `bigskies up`: all of them in one process, each on its own bus connection.
//! * `bigskies migrate`: apply the migrations and exit.
//! * `bigskies admin unlock USERNAME`: operator commands straight on the database.
//!
//! * [`cli`]: flags and environment variables.
//! * [`broker`]: the start-up check that warns when anonymous clients can read requests.
//! * [`admin`]: `bigskies admin`, without the bus.
//! * [`settings`]: validated settings (every problem reported at once, exit 64).
//! * [`serve`]: building and running coordinators until a signal ([`serve::run`]) or a token
//!   ([`serve::run_until`], for harnesses that run several isolated stacks in one process).

pub mod admin;
pub mod broker;
pub mod cli;
pub mod serve;
pub mod settings;

use std::process::ExitCode;

/// Exit status for invalid configuration (`EX_USAGE`).
pub const EXIT_CONFIG: u8 = 64;

pub fn init_logs(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BIGSKIES_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Run a parsed command line to completion.
pub async fn run(cli: cli::Cli) -> ExitCode {
    if let cli::Command::Admin { pgpass, command } = &cli.command {
        return admin::run(&cli, pgpass.as_deref(), command).await;
    }
    let settings = match settings::Settings::from_cli(&cli) {
        Ok(s) => s,
        Err(problems) => {
            for p in problems {
                eprintln!("bigskies: {p}");
            }
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match serve::run(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bigskies: {e:#}");
            ExitCode::FAILURE
        }
    }
}
