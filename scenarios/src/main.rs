//! `bigskies-scenarios`: command-line entry to the harness.
//!
//! `bigskies-scenarios provision` climbs the provisioning ladder, prints the URLs as
//! `KEY=value` lines (so `eval`/`.env` files can use them) and keeps the services up until
//! Ctrl-C.

use anyhow::Context as _;
use bigskies_scenarios::provision::{ENV_DATABASE_URL, ENV_MQTT_URL, Provisioner};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "bigskies-scenarios",
    version,
    about = "Big Skies scenario harness"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Provision PostgreSQL and MQTT (see BIGSKIES_PROVISION), print their URLs, wait for Ctrl-C.
    Provision,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Provision => provision().await,
    }
}

async fn provision() -> anyhow::Result<()> {
    let provisioner = Provisioner::from_env().context("reading the provisioning settings")?;
    let services = provisioner
        .provision()
        .await
        .context("provisioning PostgreSQL and MQTT")?;
    println!("{ENV_DATABASE_URL}={}", services.database_url);
    println!("{ENV_MQTT_URL}={}", services.mqtt.url());
    tracing::info!(kind = %services.kind, "services ready; press Ctrl-C to stop them");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    tracing::info!("stopping");
    drop(services);
    Ok(())
}
