//! Validated settings from the command line, the environment and the bootstrap TOML file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use bigskies_core::bus::{BusConfig, deployment_client_id};
use bigskies_core::credentials::DbTarget;
use bigskies_core::topics::Topics;

use crate::cli::{BootstrapFlags, Cli, Command};

/// Every coordinator this binary can run, in start order.
/// Seconds the broker keeps a coordinator's session while it is away (a broker restart, a
/// network outage): requests sent meanwhile wait for it. Stable client ids bound the sessions
/// to one per coordinator and deployment; a restarted coordinator clears its own.
pub const COMPONENT_SESSION_EXPIRY: u32 = 3600;

pub const COORDINATORS: [&str; 8] = [
    "bootstrap",
    "datastore",
    "security",
    "message",
    "application",
    "plugin",
    "uielement",
    "telescope",
];

/// The bootstrap TOML file (`--config`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapFile {
    pub pgpass: Option<PathBuf>,
    pub publish_interval_seconds: Option<u64>,
    pub mqtt_url: Option<String>,
    pub topic_root: Option<String>,
    pub database: Option<DatabaseFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseFile {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub name: Option<String>,
    pub user: Option<String>,
}

/// What to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    One(String),
    Up { without: Vec<String> },
    Migrate,
}

/// The bootstrap coordinator's own options.
#[derive(Clone, Debug, PartialEq)]
pub struct BootstrapOptions {
    pub pgpass: PathBuf,
    pub publish_interval: Duration,
    pub validate: bool,
    pub skip_migrations: bool,
    pub publish_only: bool,
}

/// Where the telescope coordinator's ASCOM engine finds devices.
#[derive(Clone, Debug, PartialEq)]
pub struct AlpacaSettings {
    /// Alpaca servers registered at start (`http://host:port`, no trailing slash).
    pub servers: Vec<String>,
    /// UDP discovery port; `None` when discovery is off.
    pub discovery_port: Option<u16>,
}

#[derive(Clone)]
pub struct Settings {
    pub mode: Mode,
    pub bus: BusConfig,
    pub topics: Topics,
    /// The replica suffix of the MQTT client ids (`--instance`).
    pub instance: Option<String>,
    pub database_url: Option<String>,
    pub db_target: DbTarget,
    pub credentials_timeout: Duration,
    pub service_token: Option<String>,
    pub bootstrap: BootstrapOptions,
    pub alpaca: AlpacaSettings,
    pub plugin_dir: PathBuf,
    /// The broker as plugins reach it, with their own credentials (never the coordinators').
    pub plugin_bus: BusConfig,
    /// Values that take precedence over the process environment for the security settings
    /// (`BIGSKIES_JWT_SECRET`, `BIGSKIES_ADMIN_PASSWORD`, ...): lets one process run several
    /// isolated stacks (the scenario harness) without touching its environment.
    pub overrides: BTreeMap<String, String>,
}

impl std::fmt::Debug for Settings {
    // By hand: `overrides` holds secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("mode", &self.mode)
            .field("bus", &self.bus)
            .field("topics", &self.topics)
            .field("database_url", &self.database_url.as_ref().map(|_| "<set>"))
            .field("db_target", &self.db_target)
            .field("alpaca", &self.alpaca)
            .field("plugin_dir", &self.plugin_dir)
            .field("overrides", &self.overrides.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// A setting from [`Settings::overrides`], else from the environment; empty counts as unset.
    pub fn lookup(&self, name: &str) -> Option<String> {
        self.overrides
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
            .filter(|v| !v.is_empty())
    }
}

/// An Alpaca server address as `http(s)://host:port` without a trailing slash.
fn alpaca_server(raw: &str) -> Result<String, String> {
    let s = raw.trim().trim_end_matches('/');
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or_else(|| format!("--alpaca-server {raw:?}: must start with http:// or https://"))?;
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("--alpaca-server {raw:?}: needs a port (http://host:port)"))?;
    if host.is_empty() || host.contains('/') || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!(
            "--alpaca-server {raw:?}: expected http://host:port"
        ));
    }
    Ok(s.to_owned())
}

fn read_file(path: &Path) -> Result<BootstrapFile, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("--config {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("--config {}: {e}", path.display()))
}

impl Settings {
    /// Validate everything; all problems are returned together.
    pub fn from_cli(cli: &Cli) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let (mode, flags) = match &cli.command {
            Command::Coordinator { name, bootstrap } => {
                (Mode::One(name.clone()), bootstrap.clone())
            }
            Command::Up { without, bootstrap } => (
                Mode::Up {
                    without: without.clone(),
                },
                bootstrap.clone(),
            ),
            Command::Admin { .. } => {
                // `bigskies::run` hands these to `admin` before settings are made.
                return Err(vec!["`bigskies admin` runs no coordinators".into()]);
            }
            Command::Migrate { pgpass } => (
                Mode::Migrate,
                BootstrapFlags {
                    pgpass: pgpass.clone(),
                    ..Default::default()
                },
            ),
        };
        let file = match &flags.config {
            Some(p) => read_file(p).unwrap_or_else(|e| {
                problems.push(e);
                BootstrapFile::default()
            }),
            None => BootstrapFile::default(),
        };
        match &mode {
            Mode::One(name) if !COORDINATORS.contains(&name.as_str()) => problems.push(format!(
                "unknown coordinator {name:?}; one of {}",
                COORDINATORS.join(", ")
            )),
            Mode::Up { without } => {
                for w in without {
                    if !COORDINATORS.contains(&w.as_str()) {
                        problems.push(format!("--without {w:?}: not a coordinator"));
                    }
                }
            }
            _ => {}
        }
        let mqtt_url = file
            .mqtt_url
            .clone()
            .unwrap_or_else(|| cli.mqtt_url.clone());
        let bus = BusConfig::from_url(&mqtt_url, "bigskies").unwrap_or_else(|e| {
            problems.push(e.to_string());
            BusConfig::new("127.0.0.1", 1883, "bigskies")
        });
        let root = file
            .topic_root
            .clone()
            .unwrap_or_else(|| cli.topic_root.clone());
        let topics = Topics::checked(root).unwrap_or_else(|e| {
            problems.push(e.to_string());
            Topics::default()
        });
        let db = file.database.unwrap_or_default();
        let db_target = DbTarget {
            host: db.host.unwrap_or_else(|| cli.db_host.clone()),
            port: db.port.unwrap_or(cli.db_port),
            database: db.name.unwrap_or_else(|| cli.db_name.clone()),
            user: db.user.unwrap_or_else(|| cli.db_user.clone()),
        };
        let pgpass = flags
            .pgpass
            .clone()
            .or(file.pgpass)
            .unwrap_or_else(|| PathBuf::from(bigskies_coordinators::bootstrap::DEFAULT_PGPASS));
        if !pgpass.is_absolute() {
            problems.push(format!(
                "--pgpass {} must be an absolute path",
                pgpass.display()
            ));
        }
        let publish_interval = match file.publish_interval_seconds {
            Some(0) => {
                problems.push("publish_interval_seconds must be positive".into());
                Duration::from_secs(30)
            }
            Some(s) => Duration::from_secs(s),
            None => bigskies_coordinators::bootstrap::DEFAULT_PUBLISH_INTERVAL,
        };
        if flags.publish_only && flags.validate {
            problems.push("--publish-only and --validate exclude each other".into());
        }
        let mut servers = Vec::new();
        for raw in cli.alpaca_servers.iter().filter(|s| !s.trim().is_empty()) {
            match alpaca_server(raw) {
                Ok(s) if !servers.contains(&s) => servers.push(s),
                Ok(_) => {}
                Err(e) => problems.push(e),
            }
        }
        let plugin_bus = match cli
            .plugin_mqtt_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
        {
            Some(url) => BusConfig::from_url(url, "plugin").unwrap_or_else(|e| {
                problems.push(format!("--plugin-mqtt-url: {e}"));
                BusConfig::new("127.0.0.1", 1883, "plugin")
            }),
            None => BusConfig::new(bus.host.clone(), bus.port, "plugin"),
        };
        if !cli.plugin_dir.is_absolute() {
            problems.push(format!(
                "--plugin-dir {} must be an absolute path",
                cli.plugin_dir.display()
            ));
        }
        let instance = cli.instance.clone().filter(|i| !i.is_empty());
        if let Some(i) = &instance
            && !i
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            problems.push(format!(
                "--instance {i:?}: use letters, digits, '-', '_' or '.'"
            ));
        }
        if cli.credentials_timeout == 0 {
            problems.push("--credentials-timeout must be positive".into());
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            mode,
            bus,
            topics,
            instance,
            database_url: cli.database_url.clone().filter(|u| !u.is_empty()),
            db_target,
            credentials_timeout: Duration::from_secs(cli.credentials_timeout),
            service_token: cli.service_token.clone().filter(|t| !t.is_empty()),
            bootstrap: BootstrapOptions {
                pgpass,
                publish_interval,
                validate: flags.validate,
                skip_migrations: flags.skip_migrations,
                publish_only: flags.publish_only,
            },
            alpaca: AlpacaSettings {
                servers,
                discovery_port: (cli.alpaca_discovery_port != 0)
                    .then_some(cli.alpaca_discovery_port),
            },
            plugin_dir: cli.plugin_dir.clone(),
            plugin_bus,
            overrides: BTreeMap::new(),
        })
    }

    /// The MQTT connection of component `name` (a coordinator or one of its extra connections)
    /// of this deployment: the broker settings with the stable client id
    /// `<root>-<name>[-<instance>]`, so a restart takes over its own broker session instead of
    /// leaving an orphan, and a persistent session that outlives short outages.
    pub fn component_bus(&self, name: &str) -> BusConfig {
        let mut bus = self.bus.clone();
        bus.client_id_prefix = name.to_owned();
        bus.client_id = Some(deployment_client_id(
            self.topics.root(),
            name,
            self.instance.as_deref(),
        ));
        bus.session_expiry = COMPONENT_SESSION_EXPIRY;
        bus
    }

    /// The environment the deployment gives every plugin: its topic root and its broker
    /// (`BIGSKIES_MQTT_URL`, and the same in parts).
    pub fn plugin_env(&self) -> BTreeMap<String, String> {
        let b = &self.plugin_bus;
        let mut env = BTreeMap::from([
            (
                "BIGSKIES_TOPIC_ROOT".to_owned(),
                self.topics.root().to_owned(),
            ),
            ("BIGSKIES_MQTT_HOST".to_owned(), b.host.clone()),
            ("BIGSKIES_MQTT_PORT".to_owned(), b.port.to_string()),
        ]);
        let userinfo = match &b.credentials {
            Some((user, password)) => {
                env.insert("BIGSKIES_MQTT_USERNAME".into(), user.clone());
                env.insert("BIGSKIES_MQTT_PASSWORD".into(), password.clone());
                format!("{user}:{password}@")
            }
            None => String::new(),
        };
        env.insert(
            "BIGSKIES_MQTT_URL".into(),
            format!("mqtt://{userinfo}{}:{}", b.host, b.port),
        );
        env
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser as _;

    fn parse(args: &[&str]) -> Result<Settings, Vec<String>> {
        let mut all = vec!["bigskies"];
        all.extend_from_slice(args);
        Settings::from_cli(&Cli::try_parse_from(all).unwrap())
    }

    #[test]
    fn all_problems_are_reported_together() {
        let e = parse(&[
            "--mqtt-url",
            "mqtt://:1",
            "--topic-root",
            "a/+",
            "coordinator",
            "nope",
            "--pgpass",
            "rel",
        ])
        .unwrap_err();
        assert_eq!(e.len(), 4, "{e:?}");
    }

    #[test]
    fn plugins_get_their_own_broker_credentials_never_the_coordinators() {
        let s = parse(&[
            "--mqtt-url",
            "mqtt://bigskies:coordinator-secret@broker:1999",
            "--topic-root",
            "obs",
            "up",
        ])
        .unwrap();
        let env = s.plugin_env();
        assert_eq!(env["BIGSKIES_MQTT_URL"], "mqtt://broker:1999");
        assert_eq!(env["BIGSKIES_MQTT_HOST"], "broker");
        assert_eq!(env["BIGSKIES_MQTT_PORT"], "1999");
        assert_eq!(env["BIGSKIES_TOPIC_ROOT"], "obs");
        assert!(!env.contains_key("BIGSKIES_MQTT_PASSWORD"));
        assert!(!format!("{env:?}").contains("coordinator-secret"));

        let s = parse(&[
            "--mqtt-url",
            "mqtt://bigskies:coordinator-secret@broker:1999",
            "--plugin-mqtt-url",
            "mqtt://plugin:plugin-secret@mosquitto:1883",
            "up",
        ])
        .unwrap();
        let env = s.plugin_env();
        assert_eq!(
            env["BIGSKIES_MQTT_URL"],
            "mqtt://plugin:plugin-secret@mosquitto:1883"
        );
        assert_eq!(env["BIGSKIES_MQTT_USERNAME"], "plugin");
        assert_eq!(env["BIGSKIES_MQTT_PASSWORD"], "plugin-secret");
        assert!(!format!("{env:?}").contains("coordinator-secret"));

        let e = parse(&["--plugin-mqtt-url", "mqtt://:x", "up"]).unwrap_err();
        assert!(e[0].contains("--plugin-mqtt-url"), "{e:?}");
    }

    #[test]
    fn config_file_overrides_defaults() {
        let dir = std::env::temp_dir().join(format!("bsk-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bootstrap.toml");
        std::fs::write(
            &f,
            "pgpass = \"/run/secrets/pgpass\"\npublish_interval_seconds = 5\n[database]\nhost = \"db\"\n",
        )
        .unwrap();
        let s = parse(&[
            "coordinator",
            "bootstrap",
            "--config",
            f.to_str().unwrap(),
            "--skip-migrations",
        ])
        .unwrap();
        assert_eq!(s.bootstrap.pgpass, PathBuf::from("/run/secrets/pgpass"));
        assert_eq!(s.bootstrap.publish_interval, Duration::from_secs(5));
        assert!(s.bootstrap.skip_migrations);
        assert_eq!(s.db_target.host, "db");
        std::fs::write(&f, "surprise = 1\n").unwrap();
        assert!(parse(&["coordinator", "bootstrap", "--config", f.to_str().unwrap()]).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn alpaca_servers_are_checked_and_normalised() {
        let s = parse(&[
            "--alpaca-server",
            "http://10.0.0.5:11111/,http://sim:32323",
            "--alpaca-discovery-port",
            "0",
            "up",
        ])
        .unwrap();
        assert_eq!(
            s.alpaca.servers,
            vec!["http://10.0.0.5:11111", "http://sim:32323"]
        );
        assert_eq!(s.alpaca.discovery_port, None);
        let e = parse(&[
            "--alpaca-server",
            "10.0.0.5:11111",
            "--alpaca-server",
            "http://host",
            "--alpaca-server",
            "http://host:0",
            "up",
        ])
        .unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
    }
}
