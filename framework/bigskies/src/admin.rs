//! `bigskies admin`: operator commands that work straight on the database, with the
//! credentials `bigskies migrate` uses (`DATABASE_URL`, else `--pgpass` and the `DB_*`
//! target). They need no bus, no running coordinator and no password of any account, so they
//! work when nobody can log in.
//!
//! * `unlock USERNAME`: lift a login lock (too many wrong passwords) and forget the counted
//!   failures; audited as `user_unlock` with `via: cli`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use bigskies_core::credentials::{DbTarget, options_from_pgpass};
use bigskies_security::accounts::{UnlockVia, UserRef};
use bigskies_security::{AccountEngine, AuditLog, SecurityError, SecuritySettings, SettingsHandle};

use crate::EXIT_CONFIG;
use crate::cli::{AdminCommand, Cli};

/// Where the database is, checked before anything is touched.
fn database(cli: &Cli, pgpass: Option<&Path>) -> Result<PgConnectOptions, String> {
    if let Some(url) = cli.database_url.as_deref().filter(|u| !u.is_empty()) {
        return url
            .parse()
            .map_err(|e| format!("DATABASE_URL is invalid: {e}"));
    }
    let pgpass = pgpass.map_or_else(
        || PathBuf::from(bigskies_coordinators::bootstrap::DEFAULT_PGPASS),
        Path::to_path_buf,
    );
    if !pgpass.is_absolute() {
        return Err(format!(
            "--pgpass {} must be an absolute path",
            pgpass.display()
        ));
    }
    let target = DbTarget {
        host: cli.db_host.clone(),
        port: cli.db_port,
        database: cli.db_name.clone(),
        user: cli.db_user.clone(),
    };
    options_from_pgpass(&pgpass, &target).map_err(|e| format!("reading {}: {e}", pgpass.display()))
}

/// Run one admin command: exit 0 when done, 64 for bad arguments, 1 when it failed.
pub async fn run(cli: &Cli, pgpass: Option<&Path>, command: &AdminCommand) -> ExitCode {
    let mut problems = Vec::new();
    match command {
        AdminCommand::Unlock { username } => {
            if let Err(e) = bigskies_security::input::username(username) {
                problems.push(format!("{username:?}: {e}"));
            }
        }
    }
    let options = database(cli, pgpass).unwrap_or_else(|e| {
        problems.push(e);
        PgConnectOptions::new()
    });
    if !problems.is_empty() {
        for p in problems {
            eprintln!("bigskies: {p}");
        }
        return ExitCode::from(EXIT_CONFIG);
    }
    match execute(options, command).await {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bigskies: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(options: PgConnectOptions, command: &AdminCommand) -> anyhow::Result<String> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .context("cannot connect to PostgreSQL")?;
    // The settings are not read by these commands; the defaults stand in.
    let accounts = AccountEngine::new(
        pool.clone(),
        SettingsHandle::new(SecuritySettings::default()),
        AuditLog::new(pool.clone()),
    );
    let result = match command {
        AdminCommand::Unlock { username } => {
            match accounts
                .unlock(UserRef::Name(username), None, UnlockVia::Cli)
                .await
            {
                Ok(done) => Ok(match done.was_locked_until {
                    Some(until) => format!(
                        "unlocked {}: password logins were refused until {until}",
                        done.username
                    ),
                    None => format!(
                        "unlocked {}: it was not locked ({} failed logins forgotten)",
                        done.username, done.cleared_failed_attempts
                    ),
                }),
                Err(SecurityError::NotFound(_)) => {
                    Err(anyhow::anyhow!("no user named {username:?}"))
                }
                Err(e) => Err(anyhow::Error::new(e).context("unlock failed")),
            }
        }
    };
    pool.close().await;
    result
}
