//! `bigskies-scenarios`: command-line entry to the harness.
//!
//! * `run`: the scenario suite, each scenario in a deployment of its own (the main job).
//! * `provision`: climb the provisioning ladder, print the URLs as `KEY=value` lines and keep
//!   the services up until Ctrl-C.
//! * `host`: run the `bigskies` command line in this executable (coordinators the harness
//!   starts as child processes).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use bigskies_scenarios::provision::{self, ENV_DATABASE_URL, ENV_MQTT_URL, Provisioner};
use bigskies_scenarios::runner::{self, External, RunOptions};
use bigskies_scenarios::suite;
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
    /// Run the scenario suite: each scenario with its own database, topic root, simulator and
    /// coordinators, several at once. Exits 1 when a scenario fails.
    Run(RunArgs),
    /// Check an Alpaca server (our simulator or a device) against the protocol checklists;
    /// prints a per-device report. Exits 1 when a check fails, 2 when nothing could be checked.
    Conform(bigskies_scenarios::conform::cli::ConformArgs),
    /// Provision PostgreSQL and MQTT (see BIGSKIES_PROVISION), print their URLs, wait for Ctrl-C.
    Provision,
    /// Run `bigskies <args>` (for example `host coordinator message`) in this executable.
    #[command(hide = true)]
    Host {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Directory of scenario files (*.toml).
    #[arg(long, default_value_os_t = suite::default_dir())]
    scenarios: PathBuf,
    /// Only scenarios whose name contains this text or that carry this tag (repeatable).
    #[arg(long)]
    filter: Vec<String>,
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
    /// Run every scenario even after a failure (default: stop starting new ones).
    #[arg(long)]
    keep_going: bool,
    /// Scenarios at once (with --external always one: they share the deployment's devices).
    #[arg(long, short, default_value_t = 4)]
    jobs: usize,
    /// Write a JUnit XML report here.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Run against an already running deployment instead of starting one per scenario;
    /// scenarios that restart or break parts of the deployment are skipped.
    #[arg(long)]
    external: bool,
    /// With --external: the broker (mqtt://[user:pass@]host[:port]).
    #[arg(
        long,
        env = "BIGSKIES_MQTT_URL",
        default_value = "mqtt://127.0.0.1:1883"
    )]
    mqtt_url: String,
    /// With --external: the deployment's topic root.
    #[arg(long, env = "BIGSKIES_TOPIC_ROOT", default_value = "bigskies")]
    topic_root: String,
    /// With --external: the Alpaca simulator (or device server) the deployment uses.
    #[arg(long, env = "BIGSKIES_SIMULATOR_URL")]
    simulator_url: Option<String>,
    /// With --external: the admin password.
    #[arg(long, env = "BIGSKIES_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
}

fn init_logs(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BIGSKIES_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bigskies-scenarios: no Tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Host { args } => {
                let mut all = vec!["bigskies".to_owned()];
                all.extend(args);
                match bigskies::cli::Cli::try_parse_from(all) {
                    Ok(c) => {
                        bigskies::init_logs(&c.log_level);
                        bigskies::run(c).await
                    }
                    Err(e) => {
                        let _ = e.print();
                        ExitCode::from(bigskies::EXIT_CONFIG)
                    }
                }
            }
            Command::Provision => {
                init_logs("info");
                report(provision_and_wait().await)
            }
            Command::Conform(args) => {
                init_logs("warn");
                ExitCode::from(bigskies_scenarios::conform::cli::main(&args).await)
            }
            Command::Run(args) => {
                // Scenarios break things on purpose; their warnings would drown the progress.
                init_logs("error");
                match run(args).await {
                    Ok(true) => ExitCode::SUCCESS,
                    Ok(false) => ExitCode::FAILURE,
                    Err(e) => {
                        eprintln!("bigskies-scenarios: {e:#}");
                        ExitCode::from(2)
                    }
                }
            }
        }
    })
}

fn report(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bigskies-scenarios: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let mut entries = suite::entries(&args.scenarios)?;
    if !args.filter.is_empty() {
        entries.retain(|e| args.filter.iter().any(|f| e.matches(f)));
    }
    if args.list {
        for e in &entries {
            println!("{:<36} {:<5} {}", e.name(), e.kind(), e.description());
        }
        return Ok(true);
    }
    if entries.is_empty() {
        anyhow::bail!("no scenario matches");
    }
    let external = if args.external {
        Some(External {
            bus: bigskies_core::bus::BusConfig::from_url(&args.mqtt_url, "scenario")?,
            topic_root: args.topic_root.clone(),
            simulator_url: args.simulator_url.clone(),
            admin_password: args.admin_password.clone(),
        })
    } else {
        None
    };
    let provisioned = if external.is_none() {
        let t = std::time::Instant::now();
        let p = provision::shared()
            .await
            .context("provisioning PostgreSQL and MQTT")?;
        eprintln!(
            "provisioned {} in {:.1} s; running {} scenarios, {} at once",
            p.kind,
            t.elapsed().as_secs_f64(),
            entries.len(),
            args.jobs
        );
        Some(p)
    } else {
        None
    };
    let options = RunOptions {
        jobs: args.jobs,
        keep_going: args.keep_going,
        external,
        host_exe: std::env::current_exe().ok(),
        progress: true,
    };
    let report = runner::run(entries, provisioned, options).await;
    eprint!("{}", report.summary());
    if let Some(path) = &args.junit {
        std::fs::write(path, runner::junit(&report, "bigskies-scenarios"))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("JUnit report: {}", path.display());
    }
    Ok(report.success())
}

async fn provision_and_wait() -> anyhow::Result<()> {
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
