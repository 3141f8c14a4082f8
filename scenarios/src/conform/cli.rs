//! The `conform` subcommand: arguments, and printing the report.

use std::io::Write as _;
use std::time::Duration;

use super::{ConformError, DeviceFilter, Options, check};

/// Exit code: every check passed (information allowed).
pub const EXIT_PASS: u8 = 0;
/// Exit code: at least one check is an issue.
pub const EXIT_ISSUES: u8 = 1;
/// Exit code: nothing could be checked (bad arguments, no server).
pub const EXIT_ERROR: u8 = 2;

/// `bigskies-scenarios conform URL [options]`.
#[derive(Clone, Debug, clap::Args)]
pub struct ConformArgs {
    /// Alpaca server root, e.g. http://192.168.1.20:11111
    pub url: String,
    /// Only this device, TYPE or TYPE/NUMBER (e.g. telescope/0); repeatable. Default: every
    /// device in /management/v1/configureddevices.
    #[arg(long = "device", value_name = "TYPE[/NUMBER]")]
    pub devices: Vec<DeviceFilter>,
    /// ConformU strict mode: tolerated deviations (e.g. 200 for a malformed ClientID) are issues.
    #[arg(long)]
    pub strict: bool,
    /// Seconds to wait for each HTTP reply.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub timeout: f64,
    /// Also run checks that move hardware, expose, sync or set the clock (short moves, undone).
    #[arg(long)]
    pub allow_motion: bool,
    /// Seconds to wait for a move or exposure to finish (with --allow-motion).
    #[arg(long, value_name = "SECONDS", default_value_t = 120.0)]
    pub motion_timeout: f64,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// List every kept failing request of each check, not just the first three.
    #[arg(long, short)]
    pub verbose: bool,
}

fn seconds(what: &str, v: f64) -> Result<Duration, ConformError> {
    if v.is_finite() && v > 0.0 {
        Duration::try_from_secs_f64(v).map_err(|_| ConformError::BadSeconds(what.to_owned(), v))
    } else {
        Err(ConformError::BadSeconds(what.to_owned(), v))
    }
}

impl ConformArgs {
    pub fn options(&self) -> Result<Options, ConformError> {
        Ok(Options {
            url: self.url.clone(),
            devices: self.devices.clone(),
            strict: self.strict,
            timeout: seconds("--timeout", self.timeout)?,
            allow_motion: self.allow_motion,
            motion_timeout: seconds("--motion-timeout", self.motion_timeout)?,
        })
    }
}

/// Runs the check, prints the report to stdout (errors to stderr) and returns the exit code:
/// [`EXIT_PASS`], [`EXIT_ISSUES`] or [`EXIT_ERROR`].
pub async fn main(args: &ConformArgs) -> u8 {
    let report = match args.options() {
        Ok(options) => check(&options).await,
        Err(e) => Err(e),
    };
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("conform: {e}");
            return EXIT_ERROR;
        }
    };
    let text = if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(t) => t + "\n",
            Err(e) => {
                eprintln!("conform: could not write the JSON report: {e}");
                return EXIT_ERROR;
            }
        }
    } else {
        report.render_text(args.verbose)
    };
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        eprintln!("conform: could not print the report: {e}");
        return EXIT_ERROR;
    }
    if report.passed {
        EXIT_PASS
    } else {
        EXIT_ISSUES
    }
}
