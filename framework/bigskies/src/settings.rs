//! Validated settings from the command line, the environment and the bootstrap TOML file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use bigskies_core::bus::BusConfig;
use bigskies_core::credentials::DbTarget;
use bigskies_core::topics::Topics;

use crate::cli::{BootstrapFlags, Cli, Command};

/// Every coordinator this binary can run, in start order.
pub const COORDINATORS: [&str; 7] = [
    "bootstrap",
    "datastore",
    "security",
    "message",
    "application",
    "plugin",
    "uielement",
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

#[derive(Clone, Debug)]
pub struct Settings {
    pub mode: Mode,
    pub bus: BusConfig,
    pub topics: Topics,
    pub database_url: Option<String>,
    pub db_target: DbTarget,
    pub credentials_timeout: Duration,
    pub service_token: Option<String>,
    pub bootstrap: BootstrapOptions,
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
        })
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
}
