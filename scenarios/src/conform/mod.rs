//! `bigskies-scenarios conform URL`: an ASCOM Alpaca conformance checker for any Alpaca
//! server (our simulator, or a physical device before it is trusted), built from the
//! checklists in `shared/alpaca/PROTOCOL.md`: §1 transport, §2 management, §11 the ConformU
//! protocol checklist, and the protocol-observable parts of the per-device checklists
//! (§4–§10).
//!
//! It talks raw HTTP so it sees exactly what the server sends, and iterates over the member
//! tables of `bigskies-alpaca` (every member, verb and parameter of each device type).
//!
//! Module map:
//!
//! - [`http`] – hand-built requests and whole replies ([`Probe`](http::Probe)).
//! - [`report`] – [`Report`] → sections → checks (pass / issue / information), text and JSON.
//! - [`envelope`] – the JSON envelope rules applied to every HTTP 200 reply.
//! - `management` – `/management/...` and `/setup` (§2), and device discovery.
//! - `device` – the per-device run: connection (§4, §11.1), then the rest in order.
//! - `protocol` – bad URLs, verbs, and the GET/PUT request matrices (§1, §11).
//! - `semantics` – per-type rules readable without motion (§4–§10), out-of-range writes
//!   that are restored.
//! - `motion` – what needs `allow_motion`: null moves, bad coordinates, short moves, one
//!   small dark exposure.
//! - [`values`] – which members are safe to call and with which values.
//! - [`cli`] – the `conform` subcommand.
//!
//! Safety: by default nothing moves. The checker reads, writes `connected`, and writes
//! properties back with the value it just read; a few configuration properties also get an
//! out-of-range write (which must be refused) and are restored if a faulty server accepts it.
//! `allow_motion` adds everything else.

pub mod cli;
mod device;
pub mod envelope;
pub mod http;
mod management;
mod motion;
mod protocol;
pub mod report;
mod semantics;
pub mod values;

use std::time::Duration;

pub use report::{Check, Outcome, Report, Section};

use self::device::{DeviceRun, Target};
use self::http::Probe;

/// Restricts the run to some devices: `telescope` (every telescope) or `telescope/0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceFilter {
    /// Lower-case URL segment.
    pub device_type: String,
    pub number: Option<u32>,
}

impl std::str::FromStr for DeviceFilter {
    type Err = ConformError;

    fn from_str(s: &str) -> Result<Self, ConformError> {
        let bad = || ConformError::BadFilter(s.to_owned());
        let (t, n) = match s.split_once('/') {
            Some((t, n)) => (t, Some(n.trim().parse::<u32>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let t = t.trim().to_ascii_lowercase();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(bad());
        }
        Ok(Self {
            device_type: t,
            number: n,
        })
    }
}

impl DeviceFilter {
    fn matches(&self, device_type: &str, number: u32) -> bool {
        self.device_type == device_type && self.number.is_none_or(|n| n == number)
    }
}

/// What to check and how.
#[derive(Clone, Debug)]
pub struct Options {
    /// Server root, e.g. `http://192.168.1.20:11111`.
    pub url: String,
    /// Only these devices (empty: every configured device).
    pub devices: Vec<DeviceFilter>,
    /// ConformU strict mode: tolerated deviations become issues.
    pub strict: bool,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Allow calls that move hardware, expose, sync or set the clock.
    pub allow_motion: bool,
    /// Longest wait for a motion or exposure to finish.
    pub motion_timeout: Duration,
}

impl Options {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            devices: Vec::new(),
            strict: false,
            timeout: Duration::from_secs(10),
            allow_motion: false,
            motion_timeout: Duration::from_secs(120),
        }
    }
}

/// Why a run could not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum ConformError {
    #[error("{url:?} is not an http:// or https:// server URL")]
    BadUrl { url: String },
    #[error("bad device filter {0:?}: expected TYPE or TYPE/NUMBER, e.g. telescope/0")]
    BadFilter(String),
    #[error("{0} must be a positive number of seconds, not {1}")]
    BadSeconds(String, f64),
    #[error("could not build the HTTP client: {0}")]
    Client(String),
    #[error("no Alpaca server answered at {url}: {reason}")]
    Unreachable { url: String, reason: String },
}

/// Runs every check against the server and returns the report (issues included; `Err` only
/// when nothing could be checked at all).
pub async fn check(options: &Options) -> Result<Report, ConformError> {
    let url = options.url.trim().trim_end_matches('/').to_owned();
    let parsed =
        reqwest::Url::parse(&url).map_err(|_| ConformError::BadUrl { url: url.clone() })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(ConformError::BadUrl { url });
    }
    let probe = Probe::new(&url, options.timeout).map_err(ConformError::Client)?;
    let (management, listed) = management::check(&probe, options).await?;
    let mut sections = vec![management];
    for target in targets(&listed, &options.devices) {
        let run = DeviceRun::new(&probe, options, target);
        sections.push(run.run().await);
    }
    Ok(Report::new(
        url,
        options.strict,
        options.allow_motion,
        sections,
        probe.requests(),
    ))
}

/// The devices to check: the configured ones that pass the filters, plus filtered devices the
/// server did not list (checked anyway, so a broken `configureddevices` does not hide them).
fn targets(listed: &[Target], filters: &[DeviceFilter]) -> Vec<Target> {
    let mut out: Vec<Target> = listed
        .iter()
        .filter(|t| filters.is_empty() || filters.iter().any(|f| f.matches(&t.type_path, t.number)))
        .cloned()
        .collect();
    for f in filters {
        if let Some(n) = f.number
            && !out
                .iter()
                .any(|t| t.type_path == f.device_type && t.number == n)
        {
            out.push(Target::unlisted(&f.device_type, n));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_filters_parse_type_and_optional_number() {
        let f: DeviceFilter = "Telescope/0".parse().expect("valid");
        assert_eq!(
            f,
            DeviceFilter {
                device_type: "telescope".into(),
                number: Some(0)
            }
        );
        assert!(f.matches("telescope", 0) && !f.matches("telescope", 1));
        let all: DeviceFilter = "focuser".parse().expect("valid");
        assert!(all.matches("focuser", 7));
        for bad in ["", "/0", "telescope/x", "tele scope", "telescope/-1"] {
            assert!(bad.parse::<DeviceFilter>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unlisted_filtered_devices_are_checked_anyway() {
        let listed = vec![
            Target::unlisted("telescope", 0),
            Target::unlisted("dome", 0),
        ];
        let filters: Vec<DeviceFilter> = vec![
            "dome".parse().expect("valid"),
            "camera/2".parse().expect("valid"),
        ];
        let picked: Vec<(String, u32)> = targets(&listed, &filters)
            .into_iter()
            .map(|t| (t.type_path, t.number))
            .collect();
        assert_eq!(
            picked,
            vec![("dome".to_owned(), 0), ("camera".to_owned(), 2)]
        );
    }
}
