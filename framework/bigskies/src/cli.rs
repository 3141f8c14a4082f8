//! Command line: flags, with environment variables as fallbacks.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "bigskies",
    version,
    about = "Big Skies observatory-control framework"
)]
pub struct Cli {
    /// MQTT broker: mqtt://[user:pass@]host[:port]
    #[arg(
        long,
        env = "BIGSKIES_MQTT_URL",
        default_value = "mqtt://127.0.0.1:1883",
        global = true,
        hide_env_values = true
    )]
    pub mqtt_url: String,
    /// PostgreSQL URL; bypasses the bootstrap credentials (development).
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Topic root shared by every coordinator.
    #[arg(
        long,
        env = "BIGSKIES_TOPIC_ROOT",
        default_value = "bigskies",
        global = true
    )]
    pub topic_root: String,
    /// Which replica this is, when one deployment runs a coordinator more than once: its MQTT
    /// client ids become `<topic root>-<coordinator>-<instance>` instead of
    /// `<topic root>-<coordinator>` (two connections with one id evict each other).
    #[arg(long, env = "BIGSKIES_INSTANCE", global = true)]
    pub instance: Option<String>,
    /// Database host, port, name and user looked up in `.pgpass`.
    #[arg(long, env = "DB_HOST", default_value = "postgres", global = true)]
    pub db_host: String,
    #[arg(long, env = "DB_PORT", default_value_t = 5432, global = true)]
    pub db_port: u16,
    #[arg(long, env = "DB_NAME", default_value = "bigskies", global = true)]
    pub db_name: String,
    #[arg(long, env = "DB_USER", default_value = "bigskies", global = true)]
    pub db_user: String,
    /// Seconds to wait for the bootstrap coordinator's credentials.
    #[arg(
        long,
        env = "BIGSKIES_CREDENTIALS_TIMEOUT",
        default_value_t = 30,
        global = true
    )]
    pub credentials_timeout: u64,
    /// Credential (API key or token) the plugin coordinator uses for its own UI registrations.
    #[arg(
        long,
        env = "BIGSKIES_SERVICE_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub service_token: Option<String>,
    /// Alpaca servers the telescope coordinator registers at start (`http://host:port`,
    /// repeatable or comma-separated): simulators, routed networks, real hardware.
    #[arg(
        long = "alpaca-server",
        env = "BIGSKIES_ALPACA_SERVERS",
        value_delimiter = ',',
        global = true
    )]
    pub alpaca_servers: Vec<String>,
    /// UDP port of Alpaca discovery on the LAN; 0 turns discovery off.
    #[arg(
        long,
        env = "BIGSKIES_ALPACA_DISCOVERY_PORT",
        default_value_t = 32227,
        global = true
    )]
    pub alpaca_discovery_port: u16,
    /// Where the plugin coordinator installs plugins.
    #[arg(
        long,
        env = "BIGSKIES_PLUGIN_DIR",
        default_value = "/var/lib/bigskies/plugins",
        global = true
    )]
    pub plugin_dir: PathBuf,
    /// The broker as plugins reach it, with the plugins' own credentials
    /// (mqtt://[user:pass@]host[:port]); plugins get it as BIGSKIES_MQTT_URL. Default: the
    /// coordinators' broker address without credentials (plugins never get the coordinators').
    #[arg(
        long,
        env = "BIGSKIES_PLUGIN_MQTT_URL",
        global = true,
        hide_env_values = true
    )]
    pub plugin_mqtt_url: Option<String>,
    /// Log filter when BIGSKIES_LOG is not set.
    #[arg(long, default_value = "info", global = true)]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one coordinator.
    Coordinator {
        /// bootstrap, message, security, datastore, application, plugin, uielement or telescope
        name: String,
        #[command(flatten)]
        bootstrap: BootstrapFlags,
    },
    /// Run every coordinator in this process.
    Up {
        /// Leave these coordinators out (repeatable).
        #[arg(long)]
        without: Vec<String>,
        #[command(flatten)]
        bootstrap: BootstrapFlags,
    },
    /// Apply the database migrations and exit.
    Migrate {
        /// Read credentials from this .pgpass instead of DATABASE_URL.
        #[arg(long)]
        pgpass: Option<PathBuf>,
    },
    /// Operator commands straight on the database (DATABASE_URL or --pgpass), no bus needed.
    Admin {
        /// Read credentials from this .pgpass instead of DATABASE_URL.
        #[arg(long)]
        pgpass: Option<PathBuf>,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

/// `bigskies admin ...`.
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum AdminCommand {
    /// Lift USERNAME's login lock (after too many wrong passwords); no password needed.
    Unlock {
        /// The account to unlock, e.g. `admin`.
        username: String,
    },
}

/// The Go bootstrap binary's flags.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct BootstrapFlags {
    /// TOML file with `pgpass`, `publish_interval_seconds`, `mqtt_url`, `topic_root` and a
    /// `[database]` table (`host`, `port`, `name`, `user`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The .pgpass the bootstrap coordinator reads and advertises.
    #[arg(long, env = "PGPASSFILE")]
    pub pgpass: Option<PathBuf>,
    /// Load and check the credentials, then exit.
    #[arg(long)]
    pub validate: bool,
    #[arg(long)]
    pub skip_migrations: bool,
    /// Only publish the credentials message (no database access).
    #[arg(long)]
    pub publish_only: bool,
}
