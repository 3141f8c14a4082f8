//! Simulator configuration: a TOML file, overridden by command-line flags.
//!
//! ```toml
//! [server]
//! bind = "0.0.0.0"
//! http_port = 11111          # 0 = any free port
//! discovery_port = 32227
//! discovery = true
//! name = "Big Skies Alpaca Simulator"
//! location = "Backyard"
//! seed = "my-observatory"    # UniqueIDs derive from this (default: the server name)
//!
//! [clock]
//! mode = "running"           # or "stepped"
//! rate = 1.0
//! start = "2026-03-20T22:00:00Z"
//!
//! [devices]
//! connect_delay = 0.5        # simulated seconds a Platform 7 connect takes
//!
//! [devices.telescope]
//! count = 2
//! [devices.telescope.model]  # the model's own settings, shared by every telescope
//! # ...
//! [devices.telescope.instance.1.model]  # overrides for telescope 1 only
//! # ...
//!
//! [faults."telescope/0"]
//! latency_ms = 50
//! ```
//!
//! Every problem is collected by [`SimulatorConfig::validate`], so a user sees all of them at
//! once; the binary exits with [`EXIT_BAD_CONFIG`] (64, `EX_USAGE`) when there are any.
//!
//! **UniqueIDs** are derived, not stored: a UUID v5 of `"{seed}/{device_type}/{number}"` in a
//! fixed namespace. The same seed gives the same IDs on every restart and every interface;
//! two simulators on one network need different seeds (or server names).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::faults::{DeviceKey, FaultSpec};

/// `EX_USAGE` from sysexits.h: what the binary returns for a bad configuration.
pub const EXIT_BAD_CONFIG: i32 = 64;

/// Device types the simulator can serve, in URL (lower-case) form.
pub const DEVICE_TYPES: [&str; 6] = [
    "telescope",
    "dome",
    "camera",
    "focuser",
    "filterwheel",
    "rotator",
];

/// More devices than this of one type is surely a typo (and would make a huge registry).
pub const MAX_DEVICES_PER_TYPE: u32 = 1000;

/// Namespace for the simulator's device UniqueIDs (a fixed random UUID; never change it, or
/// every client that remembered a device loses it).
const UNIQUE_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6f1c_4b0e_93a2_4d5e_b7c1_2a9e_58d3_f014);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

/// The whole simulator configuration.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatorConfig {
    pub server: ServerConfig,
    pub clock: ClockConfig,
    pub devices: DevicesConfig,
    /// Faults active from start-up, keyed `"{device_type}/{number}"`.
    pub faults: BTreeMap<String, FaultSpec>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP server and the discovery responder bind to.
    pub bind: IpAddr,
    /// HTTP port; 0 picks a free one (logged, and in `BoundSimulator::http_addr`).
    pub http_port: u16,
    /// UDP discovery port; 0 picks a free one.
    pub discovery_port: u16,
    /// Answer Alpaca discovery at all.
    pub discovery: bool,
    /// `ServerName` in the management description.
    pub name: String,
    /// `Location` in the management description.
    pub location: String,
    /// Seed for the UniqueIDs; the server name when absent.
    pub seed: Option<String>,
    /// Real seconds in-flight requests get to finish after a shutdown signal.
    pub drain_secs: f64,
    /// Real seconds a "hang" fault holds a request before dropping its connection.
    pub hang_cap_secs: f64,
    /// Real seconds a client has to send a complete request header, on a new connection and
    /// between requests on a kept-alive one; slower (or idle) connections are closed.
    pub header_read_timeout_secs: f64,
    /// Connections served at once; further ones wait in the listen backlog until one closes.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            http_port: 11111,
            discovery_port: 32227,
            discovery: true,
            name: "Big Skies Alpaca Simulator".into(),
            location: "Simulated observatory".into(),
            seed: None,
            drain_secs: 5.0,
            hang_cap_secs: 300.0,
            header_read_timeout_secs: 30.0,
            max_connections: 1024,
        }
    }
}

/// How simulated time starts out.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClockModeConfig {
    #[default]
    Running,
    Stepped,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClockConfig {
    pub mode: ClockModeConfig,
    /// Simulated seconds per real second in running mode.
    pub rate: f64,
    /// Simulated start time; the wall clock when absent.
    pub start: Option<DateTime<Utc>>,
}

impl Default for ClockConfig {
    fn default() -> Self {
        Self {
            mode: ClockModeConfig::Running,
            rate: 1.0,
            start: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DevicesConfig {
    /// Simulated seconds a Platform 7 `connect`/`disconnect` takes (per-type value wins).
    pub connect_delay: f64,
    pub telescope: DeviceTypeConfig,
    pub dome: DeviceTypeConfig,
    pub camera: DeviceTypeConfig,
    pub focuser: DeviceTypeConfig,
    pub filterwheel: DeviceTypeConfig,
    pub rotator: DeviceTypeConfig,
}

impl Default for DevicesConfig {
    fn default() -> Self {
        Self {
            connect_delay: 0.5,
            telescope: DeviceTypeConfig::default(),
            dome: DeviceTypeConfig::default(),
            camera: DeviceTypeConfig::default(),
            focuser: DeviceTypeConfig::default(),
            filterwheel: DeviceTypeConfig::default(),
            rotator: DeviceTypeConfig::default(),
        }
    }
}

impl DevicesConfig {
    pub fn get(&self, device_type: &str) -> Option<&DeviceTypeConfig> {
        Some(match device_type {
            "telescope" => &self.telescope,
            "dome" => &self.dome,
            "camera" => &self.camera,
            "focuser" => &self.focuser,
            "filterwheel" => &self.filterwheel,
            "rotator" => &self.rotator,
            _ => return None,
        })
    }

    pub fn get_mut(&mut self, device_type: &str) -> Option<&mut DeviceTypeConfig> {
        Some(match device_type {
            "telescope" => &mut self.telescope,
            "dome" => &mut self.dome,
            "camera" => &mut self.camera,
            "focuser" => &mut self.focuser,
            "filterwheel" => &mut self.filterwheel,
            "rotator" => &mut self.rotator,
            _ => return None,
        })
    }

    /// Connect delay for one device type.
    pub fn connect_delay_for(&self, device_type: &str) -> f64 {
        self.get(device_type)
            .and_then(|t| t.connect_delay)
            .unwrap_or(self.connect_delay)
    }
}

/// How many devices of one type, and their model settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceTypeConfig {
    pub count: u32,
    /// Overrides `devices.connect_delay` for this type.
    pub connect_delay: Option<f64>,
    /// Model settings shared by every device of this type (the model's own config table).
    pub model: toml::Table,
    /// Per-device overrides, keyed by device number.
    pub instance: BTreeMap<String, InstanceConfig>,
}

impl Default for DeviceTypeConfig {
    fn default() -> Self {
        Self {
            count: 1,
            connect_delay: None,
            model: toml::Table::new(),
            instance: BTreeMap::new(),
        }
    }
}

impl DeviceTypeConfig {
    /// The model table for device `number`: the shared table with that instance's keys on top.
    pub fn model_table(&self, number: u32) -> toml::Table {
        let mut table = self.model.clone();
        if let Some(inst) = self.instance.get(&number.to_string()) {
            merge(&mut table, &inst.model);
        }
        table
    }
}

/// Settings for one device number.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InstanceConfig {
    pub model: toml::Table,
}

/// Deep-merge `over` into `base` (tables merge, everything else replaces).
fn merge(base: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Command-line flags; each one, when given, overrides the file.
#[derive(Clone, Debug, Default, clap::Parser)]
#[command(
    name = "alpaca-simulator",
    version,
    about = "ASCOM Alpaca device simulator"
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(short, long, env = "ALPACA_SIM_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to bind (HTTP and discovery).
    #[arg(long)]
    pub bind: Option<IpAddr>,
    /// HTTP port (0 = any free port).
    #[arg(short, long)]
    pub port: Option<u16>,
    /// UDP discovery port.
    #[arg(long)]
    pub discovery_port: Option<u16>,
    /// Do not answer Alpaca discovery.
    #[arg(long)]
    pub no_discovery: bool,
    /// Clock rate (simulated seconds per real second).
    #[arg(long)]
    pub clock_rate: Option<f64>,
    /// Start with a stepped clock (time moves only through the control API).
    #[arg(long)]
    pub stepped: bool,
    /// Simulated start time, RFC 3339 (e.g. 2026-03-20T22:00:00Z).
    #[arg(long)]
    pub start_time: Option<DateTime<Utc>>,
    /// Simulated seconds a connect/disconnect takes.
    #[arg(long)]
    pub connect_delay: Option<f64>,
    /// Server name in the management API.
    #[arg(long)]
    pub server_name: Option<String>,
    /// Location in the management API.
    #[arg(long)]
    pub location: Option<String>,
    /// Seed for the UniqueIDs.
    #[arg(long)]
    pub seed: Option<String>,
    #[arg(long)]
    pub telescopes: Option<u32>,
    #[arg(long)]
    pub domes: Option<u32>,
    #[arg(long)]
    pub cameras: Option<u32>,
    #[arg(long)]
    pub focusers: Option<u32>,
    #[arg(long)]
    pub filterwheels: Option<u32>,
    #[arg(long)]
    pub rotators: Option<u32>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
}

impl SimulatorConfig {
    /// Parse TOML text (unknown keys are errors).
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Read and parse a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// The file named by `--config` (or defaults), flags applied, validated.
    pub fn from_cli(cli: &Cli) -> Result<Self, ConfigError> {
        let mut cfg = match &cli.config {
            Some(p) => Self::load(p)?,
            None => Self::default(),
        };
        cfg.apply_cli(cli);
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn apply_cli(&mut self, cli: &Cli) {
        let s = &mut self.server;
        if let Some(v) = cli.bind {
            s.bind = v;
        }
        if let Some(v) = cli.port {
            s.http_port = v;
        }
        if let Some(v) = cli.discovery_port {
            s.discovery_port = v;
        }
        if cli.no_discovery {
            s.discovery = false;
        }
        if let Some(v) = &cli.server_name {
            s.name.clone_from(v);
        }
        if let Some(v) = &cli.location {
            s.location.clone_from(v);
        }
        if let Some(v) = &cli.seed {
            s.seed = Some(v.clone());
        }
        if let Some(v) = cli.clock_rate {
            self.clock.rate = v;
            self.clock.mode = ClockModeConfig::Running;
        }
        if cli.stepped {
            self.clock.mode = ClockModeConfig::Stepped;
        }
        if let Some(v) = cli.start_time {
            self.clock.start = Some(v);
        }
        if let Some(v) = cli.connect_delay {
            self.devices.connect_delay = v;
        }
        let counts = [
            ("telescope", cli.telescopes),
            ("dome", cli.domes),
            ("camera", cli.cameras),
            ("focuser", cli.focusers),
            ("filterwheel", cli.filterwheels),
            ("rotator", cli.rotators),
        ];
        for (t, n) in counts {
            if let (Some(n), Some(tc)) = (n, self.devices.get_mut(t)) {
                tc.count = n;
            }
        }
    }

    /// Check everything that can be checked without binding; report every problem.
    /// Model tables are checked by the app builder through [`crate::app::check_model_tables`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let s = &self.server;
        if s.name.trim().is_empty() {
            problems.push("server.name must not be empty".to_owned());
        }
        if !(s.drain_secs.is_finite() && s.drain_secs >= 0.0) {
            problems.push(format!(
                "server.drain_secs must be a number ≥ 0, got {}",
                s.drain_secs
            ));
        }
        if !(s.hang_cap_secs.is_finite() && s.hang_cap_secs > 0.0) {
            problems.push(format!(
                "server.hang_cap_secs must be a number > 0, got {}",
                s.hang_cap_secs
            ));
        }
        if !(s.header_read_timeout_secs > 0.0 && s.header_read_timeout_secs <= 86_400.0) {
            problems.push(format!(
                "server.header_read_timeout_secs must be a number > 0 and at most 86400, got {}",
                s.header_read_timeout_secs
            ));
        }
        if s.max_connections == 0 {
            problems.push("server.max_connections must be at least 1".to_owned());
        }
        if let Err(e) = crate::clock::check_rate(self.clock.rate) {
            problems.push(format!("clock.rate: {e}"));
        }
        let d = &self.devices;
        if !(d.connect_delay.is_finite() && d.connect_delay >= 0.0) {
            problems.push(format!(
                "devices.connect_delay must be a number ≥ 0, got {}",
                d.connect_delay
            ));
        }
        let mut total = 0u64;
        for t in DEVICE_TYPES {
            let Some(tc) = d.get(t) else { continue };
            total += u64::from(tc.count);
            if tc.count > MAX_DEVICES_PER_TYPE {
                problems.push(format!(
                    "devices.{t}.count is {}, the limit is {MAX_DEVICES_PER_TYPE}",
                    tc.count
                ));
            }
            if let Some(cd) = tc.connect_delay
                && !(cd.is_finite() && cd >= 0.0)
            {
                problems.push(format!(
                    "devices.{t}.connect_delay must be a number ≥ 0, got {cd}"
                ));
            }
            for key in tc.instance.keys() {
                match key.parse::<u32>() {
                    Ok(n) if n < tc.count => {}
                    Ok(n) => problems.push(format!(
                        "devices.{t}.instance.{key}: there is no {t} {n} (count is {})",
                        tc.count
                    )),
                    Err(_) => problems.push(format!(
                        "devices.{t}.instance.{key}: the key must be a device number"
                    )),
                }
            }
            for n in 0..tc.count.min(MAX_DEVICES_PER_TYPE) {
                if let Err(e) = crate::app::check_model_table(t, &tc.model_table(n)) {
                    problems.push(format!("devices.{t} (device {n}) model settings: {e}"));
                    // One message per type is enough when the shared table is at fault.
                    if tc.instance.is_empty() {
                        break;
                    }
                }
            }
        }
        if total == 0 {
            problems.push("no devices configured: every devices.<type>.count is 0".to_owned());
        }
        for (key, spec) in &self.faults {
            match key.parse::<DeviceKey>() {
                Ok(k) => match d.get(&k.device_type) {
                    Some(tc) if k.number < tc.count => {}
                    _ => problems.push(format!("faults.\"{key}\": no such device")),
                },
                Err(e) => problems.push(format!("faults.\"{key}\": {e}")),
            }
            for p in spec.problems() {
                problems.push(format!("faults.\"{key}\": {p}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The seed UniqueIDs derive from.
    pub fn seed(&self) -> &str {
        self.server.seed.as_deref().unwrap_or(&self.server.name)
    }

    /// Stable UniqueID of one device (see the module docs).
    pub fn unique_id(&self, device_type: &str, number: u32) -> String {
        unique_id(self.seed(), device_type, number)
    }
}

/// UUID v5 of `"{seed}/{device_type}/{number}"` in the simulator's namespace.
pub fn unique_id(seed: &str, device_type: &str, number: u32) -> String {
    let name = format!("{seed}/{}/{number}", device_type.to_ascii_lowercase());
    uuid::Uuid::new_v5(&UNIQUE_ID_NAMESPACE, name.as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(text: &str) -> Result<SimulatorConfig, ConfigError> {
        SimulatorConfig::from_toml(text, Path::new("test.toml"))
    }

    #[test]
    fn defaults_are_one_of_each_on_11111() {
        let c = SimulatorConfig::default();
        assert_eq!(c.server.http_port, 11111);
        assert_eq!(c.server.discovery_port, 32227);
        assert!(c.server.discovery);
        for t in DEVICE_TYPES {
            assert_eq!(c.devices.get(t).map(|t| t.count), Some(1), "{t}");
        }
        c.validate().expect("defaults are valid");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = parse("[server]\nhttp_prot = 1\n").unwrap_err();
        assert!(err.to_string().contains("http_prot"), "{err}");
        assert!(parse("[devices.telescope]\ncont = 2\n").is_err());
    }

    #[test]
    fn validation_reports_every_problem() {
        let mut c = parse(
            r#"
            [clock]
            rate = -2.0
            [devices]
            connect_delay = -1.0
            [devices.dome]
            count = 5000
            [faults."telescope/7"]
            error_rate = 2.0
            [faults."bogus"]
            "#,
        )
        .expect("parses");
        c.server.name = " ".into();
        let ConfigError::Invalid(problems) = c.validate().unwrap_err() else {
            panic!("not Invalid")
        };
        let all = problems.join("\n");
        for needle in [
            "clock.rate",
            "connect_delay",
            "devices.dome.count",
            "telescope/7",
            "bogus",
            "error_rate",
            "server.name",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
    }

    #[test]
    fn flags_override_the_file() {
        let mut c =
            parse("[server]\nhttp_port = 9000\n[devices.camera]\ncount = 3\n").expect("parses");
        let cli = Cli::parse_from([
            "sim",
            "--port",
            "0",
            "--stepped",
            "--cameras",
            "2",
            "--no-discovery",
        ]);
        c.apply_cli(&cli);
        assert_eq!(c.server.http_port, 0);
        assert_eq!(c.clock.mode, ClockModeConfig::Stepped);
        assert_eq!(c.devices.camera.count, 2);
        assert!(!c.server.discovery);
    }

    #[test]
    fn unique_ids_are_stable_and_distinct() {
        let a = unique_id("seed", "telescope", 0);
        assert_eq!(a, unique_id("seed", "telescope", 0), "same inputs, same id");
        assert_eq!(
            a,
            unique_id("seed", "Telescope", 0),
            "type casing does not matter"
        );
        assert_ne!(a, unique_id("seed", "telescope", 1));
        assert_ne!(a, unique_id("seed", "dome", 0));
        assert_ne!(a, unique_id("other", "telescope", 0));
        assert_eq!(
            uuid::Uuid::parse_str(&a).map(|u| u.get_version_num()).ok(),
            Some(5)
        );
    }

    #[test]
    fn instance_tables_override_the_shared_model_table() {
        let c = parse(
            r#"
            [devices.focuser]
            count = 2
            [devices.focuser.model]
            max_step = 1000
            step_rate = 100.0
            [devices.focuser.instance.1.model]
            max_step = 5000
            "#,
        )
        .expect("parses");
        let t0 = c.devices.focuser.model_table(0);
        let t1 = c.devices.focuser.model_table(1);
        assert_eq!(t0.get("max_step").and_then(|v| v.as_integer()), Some(1000));
        assert_eq!(t1.get("max_step").and_then(|v| v.as_integer()), Some(5000));
        assert_eq!(t1.get("step_rate").and_then(|v| v.as_float()), Some(100.0));
    }
}
