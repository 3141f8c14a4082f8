//! Configuration of the ladder: the environment seam, the options built from it, the rungs and
//! the MQTT endpoint type.
//!
//! The environment is read exactly once, into [`ProvisionEnv`], a plain struct of optional
//! values. Tests build that struct by hand instead of mutating the process environment (which
//! is process-wide and racy; clippy bans `std::env::set_var` here).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::error::ProvisionError;

/// Explicit database URL for the framework under test (takes precedence over [`ENV_PLAIN_DATABASE_URL`]).
pub const ENV_DATABASE_URL: &str = "BIGSKIES_DATABASE_URL";
/// The conventional database URL variable (sqlx, the framework's development bypass).
pub const ENV_PLAIN_DATABASE_URL: &str = "DATABASE_URL";
/// Explicit MQTT broker URL (`mqtt://host:port`, `tcp://host:port` or `host:port`).
pub const ENV_MQTT_URL: &str = "BIGSKIES_MQTT_URL";
/// Comma-separated rung list, in the order to try (`explicit,containers,local,process`).
pub const ENV_PROVISION: &str = "BIGSKIES_PROVISION";
/// Directory holding `initdb` and `postgres` for the local-process rung.
pub const ENV_POSTGRES_BIN_DIR: &str = "BIGSKIES_POSTGRES_BIN_DIR";
/// Path of the `mosquitto` binary for the local-process rung.
pub const ENV_MOSQUITTO_BIN: &str = "BIGSKIES_MOSQUITTO_BIN";

/// The standard local PostgreSQL the "local services" rung looks for (trust auth, user postgres).
pub const LOCAL_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The standard local Mosquitto the "local services" rung looks for.
pub const LOCAL_MQTT_HOST: &str = "127.0.0.1";
/// The standard MQTT port.
pub const MQTT_DEFAULT_PORT: u16 = 1883;
/// The PostgreSQL image tag the container rung starts (the module's default is 11-alpine).
pub const POSTGRES_IMAGE_TAG: &str = "16-alpine";

/// The raw provisioning settings from the environment, read once. Empty values count as unset.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProvisionEnv {
    /// `BIGSKIES_DATABASE_URL`.
    pub bigskies_database_url: Option<String>,
    /// `DATABASE_URL`.
    pub database_url: Option<String>,
    /// `BIGSKIES_MQTT_URL`.
    pub mqtt_url: Option<String>,
    /// `BIGSKIES_PROVISION`.
    pub provision: Option<String>,
    /// `BIGSKIES_POSTGRES_BIN_DIR`.
    pub postgres_bin_dir: Option<String>,
    /// `BIGSKIES_MOSQUITTO_BIN`.
    pub mosquitto_bin: Option<String>,
}

impl ProvisionEnv {
    /// Reads the process environment.
    pub fn from_process_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (a variable name to its value), e.g. a map in tests.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        Self {
            bigskies_database_url: get(ENV_DATABASE_URL),
            database_url: get(ENV_PLAIN_DATABASE_URL),
            mqtt_url: get(ENV_MQTT_URL),
            provision: get(ENV_PROVISION),
            postgres_bin_dir: get(ENV_POSTGRES_BIN_DIR),
            mosquitto_bin: get(ENV_MOSQUITTO_BIN),
        }
    }
}

// URLs can carry passwords, and secrets never appear in Debug output.
impl fmt::Debug for ProvisionEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProvisionEnv")
            .field(
                "bigskies_database_url",
                &self.bigskies_database_url.as_deref().map(redact_url),
            )
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("mqtt_url", &self.mqtt_url.as_deref().map(redact_url))
            .field("provision", &self.provision)
            .field("postgres_bin_dir", &self.postgres_bin_dir)
            .field("mosquitto_bin", &self.mosquitto_bin)
            .finish()
    }
}

/// One rung of the provisioning ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rung {
    /// URLs given in the environment (`BIGSKIES_DATABASE_URL`/`DATABASE_URL`, `BIGSKIES_MQTT_URL`).
    Explicit,
    /// Docker containers through testcontainers (feature `containers`).
    Containers,
    /// The machine's own services on the standard ports (127.0.0.1:5432, 127.0.0.1:1883).
    LocalServices,
    /// Private `postgres`/`mosquitto` processes on free ports in a temporary directory.
    LocalProcesses,
}

impl Rung {
    /// The order used when `BIGSKIES_PROVISION` is not set.
    pub const DEFAULT_ORDER: [Rung; 4] = [
        Rung::Explicit,
        Rung::Containers,
        Rung::LocalServices,
        Rung::LocalProcesses,
    ];

    /// The name used in `BIGSKIES_PROVISION` and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Explicit => "explicit",
            Self::Containers => "containers",
            Self::LocalServices => "local",
            Self::LocalProcesses => "process",
        }
    }

    /// Parses a comma-separated rung list such as `process` or `local,process`.
    pub fn parse_list(text: &str) -> Result<Vec<Rung>, String> {
        let mut rungs = Vec::new();
        for part in text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
        {
            let rung: Rung = part.parse()?;
            if rungs.contains(&rung) {
                return Err(format!("rung `{part}` is listed twice"));
            }
            rungs.push(rung);
        }
        if rungs.is_empty() {
            return Err("no rung given".to_owned());
        }
        Ok(rungs)
    }
}

impl FromStr for Rung {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "explicit" | "env" => Ok(Self::Explicit),
            "containers" | "container" | "docker" | "testcontainers" => Ok(Self::Containers),
            "local" | "services" | "local-services" => Ok(Self::LocalServices),
            "process" | "processes" | "local-processes" => Ok(Self::LocalProcesses),
            other => Err(format!(
                "unknown rung `{other}` (expected explicit, containers, local or process)"
            )),
        }
    }
}

impl fmt::Display for Rung {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where an MQTT broker listens (plain TCP, anonymous).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MqttEndpoint {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl MqttEndpoint {
    /// An endpoint from its parts.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
        }
    }

    /// The URL form, `mqtt://host:port`.
    pub fn url(&self) -> String {
        if self.host.contains(':') {
            format!("mqtt://[{}]:{}", self.host, self.port)
        } else {
            format!("mqtt://{}:{}", self.host, self.port)
        }
    }

    /// Parses `mqtt://host:port`, `tcp://host:port`, `host:port` or `host` (port 1883).
    /// Credentials, paths and TLS schemes are refused: the harness talks plain anonymous MQTT.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let rest = match text.split_once("://") {
            Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
                "mqtt" | "tcp" => rest,
                other => {
                    return Err(format!(
                        "unsupported scheme `{other}` (expected mqtt:// or tcp://)"
                    ));
                }
            },
            None => text,
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('@') {
            return Err("credentials in the MQTT URL are not supported".to_owned());
        }
        if rest.contains('/') || rest.contains('?') {
            return Err("the MQTT URL must not have a path or query".to_owned());
        }
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| "unterminated `[` in IPv6 address".to_owned())?;
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port),
                None if after.is_empty() => None,
                None => return Err(format!("unexpected `{after}` after the IPv6 address")),
            };
            (host, port)
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err("the host is empty".to_owned());
        }
        let port = match port {
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(|| format!("`{port}` is not a valid port"))?,
            None => MQTT_DEFAULT_PORT,
        };
        Ok(Self::new(host, port))
    }
}

impl fmt::Display for MqttEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())
    }
}

/// A value that was set explicitly, with the variable it came from (for error messages).
#[derive(Clone, PartialEq, Eq)]
pub struct Explicit<T> {
    /// The environment variable (or option) that supplied the value.
    pub source: &'static str,
    /// The value.
    pub value: T,
}

impl<T: fmt::Debug> fmt::Debug for Explicit<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Explicit")
            .field("source", &self.source)
            .field("value", &self.value)
            .finish()
    }
}

/// How to provision: which rungs in which order, and the knobs of each rung.
#[derive(Clone)]
pub struct ProvisionOptions {
    /// Rungs to try, in order.
    pub rungs: Vec<Rung>,
    /// Database URL for the explicit rung.
    pub explicit_database_url: Option<Explicit<String>>,
    /// Broker for the explicit rung.
    pub explicit_mqtt: Option<Explicit<MqttEndpoint>>,
    /// Database URL the local-services rung probes.
    pub local_database_url: String,
    /// Broker the local-services rung probes.
    pub local_mqtt: MqttEndpoint,
    /// Where `initdb`/`postgres` live; `None` searches `PATH` and `/usr/lib/postgresql/*/bin`.
    pub postgres_bin_dir: Option<PathBuf>,
    /// The `mosquitto` binary; `None` searches `PATH`, `/usr/sbin` and `/usr/local/sbin`.
    pub mosquitto_bin: Option<PathBuf>,
    /// How long to wait for an existing service (explicit or local) to answer.
    pub connect_timeout: Duration,
    /// How long a container or local process may take to become ready.
    pub startup_timeout: Duration,
    /// Tag of the `postgres` image for the container rung.
    pub postgres_image_tag: String,
}

impl Default for ProvisionOptions {
    fn default() -> Self {
        Self {
            rungs: Rung::DEFAULT_ORDER.to_vec(),
            explicit_database_url: None,
            explicit_mqtt: None,
            local_database_url: LOCAL_DATABASE_URL.to_owned(),
            local_mqtt: MqttEndpoint::new(LOCAL_MQTT_HOST, MQTT_DEFAULT_PORT),
            postgres_bin_dir: None,
            mosquitto_bin: None,
            connect_timeout: Duration::from_secs(3),
            startup_timeout: Duration::from_secs(30),
            postgres_image_tag: POSTGRES_IMAGE_TAG.to_owned(),
        }
    }
}

impl ProvisionOptions {
    /// Builds the options from the environment seam; reports the first unusable value.
    pub fn from_env(env: &ProvisionEnv) -> Result<Self, ProvisionError> {
        let mut options = Self::default();
        if let Some(text) = &env.provision {
            options.rungs =
                Rung::parse_list(text).map_err(|reason| ProvisionError::InvalidSetting {
                    var: ENV_PROVISION,
                    value: text.clone(),
                    reason,
                })?;
        }
        options.explicit_database_url = match (&env.bigskies_database_url, &env.database_url) {
            (Some(url), _) => Some(Explicit {
                source: ENV_DATABASE_URL,
                value: check_database_url(ENV_DATABASE_URL, url)?,
            }),
            (None, Some(url)) => Some(Explicit {
                source: ENV_PLAIN_DATABASE_URL,
                value: check_database_url(ENV_PLAIN_DATABASE_URL, url)?,
            }),
            (None, None) => None,
        };
        if let Some(text) = &env.mqtt_url {
            let endpoint =
                MqttEndpoint::parse(text).map_err(|reason| ProvisionError::InvalidSetting {
                    var: ENV_MQTT_URL,
                    value: redact_url(text),
                    reason,
                })?;
            options.explicit_mqtt = Some(Explicit {
                source: ENV_MQTT_URL,
                value: endpoint,
            });
        }
        options.postgres_bin_dir = env.postgres_bin_dir.as_ref().map(PathBuf::from);
        options.mosquitto_bin = env.mosquitto_bin.as_ref().map(PathBuf::from);
        Ok(options)
    }

    /// The same options with another rung order.
    pub fn with_rungs(mut self, rungs: impl Into<Vec<Rung>>) -> Self {
        self.rungs = rungs.into();
        self
    }
}

impl fmt::Debug for ProvisionOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let database = self
            .explicit_database_url
            .as_ref()
            .map(|explicit| Explicit {
                source: explicit.source,
                value: redact_url(&explicit.value),
            });
        f.debug_struct("ProvisionOptions")
            .field("rungs", &self.rungs)
            .field("explicit_database_url", &database)
            .field("explicit_mqtt", &self.explicit_mqtt)
            .field("local_database_url", &redact_url(&self.local_database_url))
            .field("local_mqtt", &self.local_mqtt)
            .field("postgres_bin_dir", &self.postgres_bin_dir)
            .field("mosquitto_bin", &self.mosquitto_bin)
            .field("connect_timeout", &self.connect_timeout)
            .field("startup_timeout", &self.startup_timeout)
            .field("postgres_image_tag", &self.postgres_image_tag)
            .finish()
    }
}

fn check_database_url(var: &'static str, url: &str) -> Result<String, ProvisionError> {
    let url = url.trim();
    let scheme_ok = ["postgres://", "postgresql://"].iter().any(|scheme| {
        url.len() > scheme.len()
            && url
                .get(..scheme.len())
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case(scheme))
    });
    if scheme_ok {
        Ok(url.to_owned())
    } else {
        Err(ProvisionError::InvalidSetting {
            var,
            value: redact_url(url),
            reason: "expected a postgres:// or postgresql:// URL".to_owned(),
        })
    }
}

/// The URL with any password replaced by `***`, for logs, errors and `Debug`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => url.to_owned(),
    }
}

/// The URL with its database name (the path) replaced by `database`, keeping the query.
pub fn with_database(url: &str, database: &str) -> Result<String, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("`{}` has no scheme", redact_url(url)))?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query_start = tail.find(['?', '#']).unwrap_or(tail.len());
    let query = &tail[query_start..];
    Ok(format!("{scheme}://{authority}/{database}{query}"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> ProvisionEnv {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        ProvisionEnv::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn empty_environment_gives_the_default_ladder() {
        let options = ProvisionOptions::from_env(&env(&[])).unwrap();
        assert_eq!(options.rungs, Rung::DEFAULT_ORDER.to_vec());
        assert!(options.explicit_database_url.is_none());
        assert!(options.explicit_mqtt.is_none());
    }

    #[test]
    fn bigskies_database_url_wins_over_plain_database_url() {
        let options = ProvisionOptions::from_env(&env(&[
            (ENV_DATABASE_URL, "postgres://a@h/one"),
            (ENV_PLAIN_DATABASE_URL, "postgres://b@h/two"),
        ]))
        .unwrap();
        let explicit = options.explicit_database_url.unwrap();
        assert_eq!(explicit.source, ENV_DATABASE_URL);
        assert_eq!(explicit.value, "postgres://a@h/one");

        let options =
            ProvisionOptions::from_env(&env(&[(ENV_PLAIN_DATABASE_URL, "postgresql://b@h/two")]))
                .unwrap();
        assert_eq!(
            options.explicit_database_url.unwrap().source,
            ENV_PLAIN_DATABASE_URL
        );
    }

    #[test]
    fn empty_values_count_as_unset() {
        let options =
            ProvisionOptions::from_env(&env(&[(ENV_DATABASE_URL, " "), (ENV_MQTT_URL, "")]))
                .unwrap();
        assert!(options.explicit_database_url.is_none());
        assert!(options.explicit_mqtt.is_none());
    }

    #[test]
    fn a_non_postgres_database_url_is_refused_without_leaking_the_password() {
        let error =
            ProvisionOptions::from_env(&env(&[(ENV_DATABASE_URL, "mysql://u:hunter2@h/db")]))
                .unwrap_err();
        let text = error.to_string();
        assert!(text.contains(ENV_DATABASE_URL), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn provision_order_is_parsed_and_checked() {
        let options =
            ProvisionOptions::from_env(&env(&[(ENV_PROVISION, "process, local")])).unwrap();
        assert_eq!(
            options.rungs,
            vec![Rung::LocalProcesses, Rung::LocalServices]
        );
        for bad in ["nonsense", "local,local", ","] {
            let error = ProvisionOptions::from_env(&env(&[(ENV_PROVISION, bad)])).unwrap_err();
            assert!(
                matches!(
                    error,
                    ProvisionError::InvalidSetting {
                        var: ENV_PROVISION,
                        ..
                    }
                ),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn mqtt_endpoints_parse_in_every_accepted_form() {
        let cases = [
            ("mqtt://broker:1884", "broker", 1884),
            ("tcp://10.0.0.1:2000/", "10.0.0.1", 2000),
            ("localhost:1999", "localhost", 1999),
            ("broker", "broker", MQTT_DEFAULT_PORT),
            ("mqtt://[::1]:1885", "::1", 1885),
            ("[::1]", "::1", MQTT_DEFAULT_PORT),
        ];
        for (text, host, port) in cases {
            assert_eq!(
                MqttEndpoint::parse(text),
                Ok(MqttEndpoint::new(host, port)),
                "{text}"
            );
        }
        for bad in [
            "mqtts://h:1",
            "mqtt://u:p@h:1",
            "mqtt://h:0",
            "mqtt://h:x",
            "mqtt://h:1/path",
            "mqtt://:1",
            "[::1",
        ] {
            assert!(MqttEndpoint::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(MqttEndpoint::new("::1", 5).url(), "mqtt://[::1]:5");
        assert_eq!(
            MqttEndpoint::parse(&MqttEndpoint::new("::1", 5).url()),
            Ok(MqttEndpoint::new("::1", 5))
        );
    }

    #[test]
    fn passwords_are_redacted_and_nothing_else_changes() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db?sslmode=disable"),
            "postgres://u:***@h:5432/db?sslmode=disable"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("not a url"), "not a url");
        let options =
            ProvisionOptions::from_env(&env(&[(ENV_DATABASE_URL, "postgres://u:secret@h/db")]))
                .unwrap();
        assert!(!format!("{options:?}").contains("secret"));
        let raw = env(&[(ENV_PLAIN_DATABASE_URL, "postgres://u:secret@h/db")]);
        assert!(!format!("{raw:?}").contains("secret"));
    }

    #[test]
    fn the_database_name_is_replaced_and_the_query_kept() {
        assert_eq!(
            with_database("postgres://u:p@h:1/postgres?sslmode=disable", "bst_x").unwrap(),
            "postgres://u:p@h:1/bst_x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h", "d").unwrap(),
            "postgres://h/d"
        );
        assert_eq!(
            with_database("postgres://h/", "d").unwrap(),
            "postgres://h/d"
        );
        assert!(with_database("nope", "d").is_err());
    }
}
