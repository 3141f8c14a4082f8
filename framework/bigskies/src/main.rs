//! `bigskies`: see the library docs for the commands.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = bigskies::cli::Cli::parse();
    bigskies::init_logs(&cli.log_level);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bigskies: cannot start the async runtime: {e}");
            return ExitCode::from(70);
        }
    };
    runtime.block_on(bigskies::run(cli))
}
