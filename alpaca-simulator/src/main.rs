//! `alpaca-simulator`: config → validate (exit 64 on any problem) → bind (log every address)
//! → serve until Ctrl-C / SIGTERM → drain.

use std::process::ExitCode;

use alpaca_simulator::app::Simulator;
use alpaca_simulator::config::{Cli, EXIT_BAD_CONFIG, SimulatorConfig};
use clap::Parser;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage_error = e.use_stderr();
            let _ = e.print();
            return if usage_error {
                ExitCode::from(EXIT_BAD_CONFIG as u8)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let config = match SimulatorConfig::from_cli(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("alpaca-simulator: {e}");
            return ExitCode::from(EXIT_BAD_CONFIG as u8);
        }
    };
    if cli.print_config {
        match toml::to_string_pretty(&config) {
            Ok(text) => {
                print!("{text}");
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("alpaca-simulator: cannot print the configuration: {e}");
                return ExitCode::FAILURE;
            }
        }
    }

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("alpaca-simulator: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let sim = Simulator::build(config)?;
        let bound = sim.bind_sockets().await?;
        tracing::info!(url = %bound.base_url(), "simulator ready");
        bound.run(shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(alpaca_simulator::app::AppError::Config(e)) => {
            eprintln!("alpaca-simulator: {e}");
            ExitCode::from(EXIT_BAD_CONFIG as u8)
        }
        Err(e) => {
            eprintln!("alpaca-simulator: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
