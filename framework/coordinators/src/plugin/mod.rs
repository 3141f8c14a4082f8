//! The plugin coordinator: plugins by GUID with `plugin.json` manifests.
//!
//! * `plugin/install` (Go `cmd/install`): from a directory or a `.tar.gz`/`.tar` archive,
//!   verified against the SHA-256 the caller gives (`sha256`, alias `checksum`) before
//!   anything is written; unpacked in a staging directory, then moved into
//!   `<plugin_dir>/<guid>`. Its UI elements are registered with the UI element coordinator
//!   over MQTT (with the caller's own credential); if anything fails, everything is undone.
//! * `plugin/remove` (Go `cmd/remove`, SDK `plugin/uninstall`): stop, unregister the UI
//!   elements, delete files and record.
//! * `plugin/update`: replace the files from a new verified source (state `updating`), keeping
//!   the desired run state.
//! * `plugin/start`, `plugin/stop`, `plugin/list`, `plugin/get`, `plugin/scan`.
//!
//! States: `installed`, `running`, `stopped`, `failed`, `updating`, persisted in `plugins`.
//! A periodic scan (every `scan_interval`) notices exited plugins and missing directories,
//! restarts plugins that should run but have no live handle (after a coordinator restart), and
//! adopts plugin directories dropped into `plugin_dir` by hand. `plugin_dir` comes from a
//! `plugin_dir` row an operator wrote, else `--plugin-dir`, else the seeded row; `plugin/list`
//! shows it.
//!
//! Plugin health (`<root>/plugin/<plugin-id>/health`, Go SDK shape) is consumed: the last
//! report of each plugin shows in `plugin/get` and `plugin/list`, and an unhealthy or silent
//! running plugin degrades the coordinator's health (see [`health`]).
//!
//! Plugins run in a [`runtime::ContainerRuntime`]: [`runtime::LocalProcessRuntime`], or
//! Docker (`docker` feature, [`docker::DockerRuntime`]).
//!
//! A plugin's environment: `BIGSKIES_PLUGIN_ID`, `BIGSKIES_TOPIC_ROOT`, the broker as
//! `BIGSKIES_MQTT_URL` (and `BIGSKIES_MQTT_HOST`, `_PORT`, `_USERNAME`, `_PASSWORD`) from the
//! deployment's `--plugin-mqtt-url` (the plugins' own broker user; without it, the address
//! alone), then its manifest's own variables. A local plugin inherits nothing else of the
//! coordinator's environment ([`runtime::INHERITED_ENV`] only): no JWT secret, admin
//! password, database URL or coordinator broker credentials.

pub mod archive;
#[cfg(feature = "docker")]
pub mod docker;
pub mod health;
mod install;
mod lifecycle;
pub mod manifest;
mod query;
mod remove;
pub mod runtime;
mod scan;
mod ui;
mod update;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use bigskies_core::auth::{Access, Operation};
use bigskies_core::config::CoordinatorConfig;
use bigskies_core::error::HandlerError;
use bigskies_core::health::HealthReport;
use bigskies_core::runtime::{Context, Coordinator};

pub use health::{HealthView, PluginHealth};
pub use install::InstallPlugin;
pub use lifecycle::PluginRef;
pub use manifest::Manifest;
pub use query::ListPlugins;
pub use runtime::{ContainerRuntime, LocalProcessRuntime, PluginSpec, RuntimeStatus};
pub use update::UpdatePlugin;

/// The coordinator's short name.
pub const NAME: &str = "plugin";

/// The configuration key of the plugin directory (also `--plugin-dir`).
pub const PLUGIN_DIR_KEY: &str = "plugin_dir";

/// Plugin states.
pub const STATES: [&str; 5] = ["installed", "running", "stopped", "failed", "updating"];

/// A request without fields.
#[derive(Debug, Default, Deserialize)]
pub struct Empty {}

/// Every operation and what it requires (see `docs/authorization.md`).
pub const OPERATIONS: &[Operation] = &[
    Operation::new(
        "plugin/install",
        Access::role("plugin", "manage"),
        "Install a plugin from an archive or directory",
    ),
    Operation::new(
        "cmd/install",
        Access::role("plugin", "manage"),
        "Go name of plugin/install",
    ),
    Operation::new(
        "plugin/remove",
        Access::role("plugin", "manage"),
        "Stop and remove a plugin",
    ),
    Operation::new(
        "cmd/remove",
        Access::role("plugin", "manage"),
        "Go name of plugin/remove",
    ),
    Operation::new(
        "plugin/uninstall",
        Access::role("plugin", "manage"),
        "Another name of plugin/remove",
    ),
    Operation::new(
        "plugin/update",
        Access::role("plugin", "manage"),
        "Replace a plugin with a new version",
    ),
    Operation::new(
        "plugin/start",
        Access::role("plugin", "manage"),
        "Start a plugin",
    ),
    Operation::new(
        "plugin/stop",
        Access::role("plugin", "manage"),
        "Stop a plugin",
    ),
    Operation::new(
        "plugin/list",
        Access::object("plugin", "read"),
        "List plugins",
    ),
    Operation::new(
        "plugin/get",
        Access::object("plugin", "read"),
        "Read one plugin",
    ),
    Operation::new(
        "plugin/status",
        Access::object("plugin", "read"),
        "Go name of plugin/get",
    ),
    Operation::new(
        "plugin/scan",
        Access::role("plugin", "manage"),
        "Adopt plugin directories dropped in by hand",
    ),
];

#[derive(Debug, Deserialize)]
#[serde(tag = "op", content = "body")]
pub enum PluginRequest {
    #[serde(rename = "plugin/install", alias = "cmd/install")]
    Install(InstallPlugin),
    #[serde(
        rename = "plugin/remove",
        alias = "cmd/remove",
        alias = "plugin/uninstall"
    )]
    Remove(PluginRef),
    #[serde(rename = "plugin/update")]
    Update(UpdatePlugin),
    #[serde(rename = "plugin/start")]
    Start(PluginRef),
    #[serde(rename = "plugin/stop")]
    Stop(PluginRef),
    #[serde(rename = "plugin/list")]
    List(ListPlugins),
    #[serde(rename = "plugin/get", alias = "plugin/status")]
    Get(PluginRef),
    #[serde(rename = "plugin/scan")]
    Scan(Empty),
}

/// Live settings from the `plugin-coordinator` rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub plugin_dir: PathBuf,
    pub scan_interval: Duration,
    /// Refuse installs that do not name the SHA-256 of their source.
    pub require_checksum: bool,
    /// How long to wait for the UI element coordinator.
    pub rpc_timeout: Duration,
    /// The health interval of plugins whose manifest names none (`health_check.interval_seconds`).
    pub plugin_health_interval: Duration,
    /// The configuration keys of the values above that were given explicitly at start (the
    /// command line): they beat the migrations' seeded rows, though not operator-set ones.
    pub explicit: Vec<&'static str>,
}

impl Settings {
    /// These settings with `dir` given explicitly (`--plugin-dir`).
    #[must_use]
    pub fn with_plugin_dir(mut self, dir: PathBuf) -> Self {
        self.plugin_dir = dir;
        if !self.explicit.contains(&PLUGIN_DIR_KEY) {
            self.explicit.push(PLUGIN_DIR_KEY);
        }
        self
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            plugin_dir: PathBuf::from("/var/lib/bigskies/plugins"),
            scan_interval: Duration::from_secs(300),
            require_checksum: true,
            rpc_timeout: Duration::from_secs(10),
            plugin_health_interval: Duration::from_secs(30),
            explicit: Vec::new(),
        }
    }
}

/// One `plugins` row.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct PluginRecord {
    pub guid: Uuid,
    pub name: String,
    pub version: String,
    pub status: String,
    pub desired: String,
    pub source: String,
    pub sha256: String,
    pub install_dir: String,
    pub manifest: Value,
    pub runtime: String,
    pub container_id: Option<String>,
    pub last_error: Option<String>,
    pub installed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_verified: Option<DateTime<Utc>>,
}

macro_rules! plugin_columns {
    () => {
        "guid, name, version, status, desired, source, sha256, install_dir, manifest, runtime, container_id, last_error, installed_at, updated_at, last_verified"
    };
}
pub(crate) use plugin_columns;

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

impl PluginRecord {
    /// The Go registry entry shape plus our fields.
    pub fn to_json(&self) -> Value {
        json!({
            "guid": self.guid,
            "name": self.name,
            "version": self.version,
            "status": self.status,
            "desired": self.desired,
            "source": self.source,
            "sha256": self.sha256,
            "install_dir": self.install_dir,
            "runtime": self.runtime,
            "container_id": self.container_id,
            "last_error": self.last_error,
            "installed_at": ts(&self.installed_at),
            "updated_at": ts(&self.updated_at),
            "last_verified": self.last_verified.as_ref().map(ts),
            "manifest": self.manifest,
        })
    }

    pub fn manifest(&self) -> Result<Manifest, HandlerError> {
        serde_json::from_value(self.manifest.clone()).map_err(|e| {
            tracing::warn!(guid = %self.guid, error = %e, "stored manifest unreadable");
            HandlerError::internal()
        })
    }

    pub fn spec(&self) -> Result<PluginSpec, HandlerError> {
        Ok(PluginSpec {
            guid: self.guid,
            dir: PathBuf::from(&self.install_dir),
            manifest: self.manifest()?,
        })
    }
}

pub(crate) fn db_error(e: sqlx::Error) -> HandlerError {
    tracing::warn!(coordinator = NAME, error = %e, "plugin registry database error");
    HandlerError::from_database(&e, "plugin registry")
}

/// Makes a service credential on demand.
#[derive(Clone)]
struct Minter(Arc<dyn Fn() -> Option<String> + Send + Sync>);

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Minter")
    }
}

/// The plugin coordinator.
#[derive(Debug)]
pub struct PluginCoordinator {
    pool: PgPool,
    runtime: Arc<dyn ContainerRuntime>,
    base: Settings,
    settings: Mutex<Settings>,
    /// The coordinator's own credential for its requests to other coordinators (UI element
    /// registrations on install, update, removal, scan): a configured one
    /// (`BIGSKIES_SERVICE_TOKEN`), else one minted per use. Never the caller's credential.
    service_token: Option<String>,
    minter: Option<Minter>,
    /// One change at a time: install, update, remove, start, stop and scan never interleave.
    ops: tokio::sync::Mutex<()>,
    reconfigured: tokio::sync::Notify,
    /// The last health report of each plugin.
    health: Mutex<health::HealthMap>,
    /// When this coordinator started watching plugin health.
    watching_since: DateTime<Utc>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl PluginCoordinator {
    pub fn new(
        pool: PgPool,
        runtime: Arc<dyn ContainerRuntime>,
        settings: Settings,
        service_token: Option<String>,
    ) -> Self {
        Self {
            pool,
            runtime,
            base: settings.clone(),
            settings: Mutex::new(settings),
            service_token,
            minter: None,
            ops: tokio::sync::Mutex::new(()),
            reconfigured: tokio::sync::Notify::new(),
            health: Mutex::new(health::HealthMap::new()),
            watching_since: Utc::now(),
        }
    }

    /// Mint the service credential per use (a short-lived token) when none is configured.
    pub fn with_service_minter(
        mut self,
        mint: impl Fn() -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.minter = Some(Minter(Arc::new(mint)));
        self
    }

    /// The credential the coordinator's own requests carry ([`PluginCoordinator::with_service_minter`]).
    pub(crate) fn service_credential(&self) -> Option<String> {
        self.service_token
            .clone()
            .or_else(|| self.minter.as_ref().and_then(|m| (m.0)()))
    }

    pub fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    pub(crate) async fn fetch(&self, guid: Uuid) -> Result<Option<PluginRecord>, HandlerError> {
        sqlx::query_as::<_, PluginRecord>(concat!(
            "SELECT ",
            plugin_columns!(),
            " FROM plugins WHERE guid = $1"
        ))
        .bind(guid)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    pub(crate) async fn set_status(
        &self,
        guid: Uuid,
        status: &str,
        container_id: Option<&str>,
        last_error: Option<&str>,
    ) -> Result<PluginRecord, HandlerError> {
        sqlx::query_as::<_, PluginRecord>(concat!(
            "UPDATE plugins SET status = $2, container_id = $3, last_error = $4, updated_at = now()
              WHERE guid = $1 RETURNING ",
            plugin_columns!()
        ))
        .bind(guid)
        .bind(status)
        .bind(container_id)
        .bind(last_error)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .ok_or_else(|| HandlerError::not_found(format!("plugin {guid} is not installed")))
    }
}

/// A GUID from a request.
pub(crate) fn guid(v: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(v.trim())
        .map_err(|_| HandlerError::invalid(format!("{v:?} is not a plugin GUID")))
}

impl Coordinator for PluginCoordinator {
    type Request = PluginRequest;

    fn name(&self) -> &'static str {
        NAME
    }

    fn operations(&self) -> &'static [Operation] {
        OPERATIONS
    }

    async fn handle(&self, ctx: Context, request: PluginRequest) -> Result<Value, HandlerError> {
        match request {
            PluginRequest::Install(r) => self.install(&ctx, r).await,
            PluginRequest::Remove(r) => self.remove(&ctx, r).await,
            PluginRequest::Update(r) => self.update(&ctx, r).await,
            PluginRequest::Start(r) => self.start_request(r).await,
            PluginRequest::Stop(r) => self.stop_request(r).await,
            PluginRequest::List(r) => self.list(r).await,
            PluginRequest::Get(r) => self.get(r).await,
            PluginRequest::Scan(_) => {
                let link = ui::Link::for_service(
                    &ctx,
                    self.service_credential(),
                    self.settings().rpc_timeout,
                );
                let report = self.scan(Some(&link)).await?;
                Ok(json!({"success": true, "scan": report}))
            }
        }
    }

    async fn health(&self) -> Vec<HealthReport> {
        let records: Result<Vec<PluginRecord>, _> =
            sqlx::query_as(concat!("SELECT ", plugin_columns!(), " FROM plugins"))
                .fetch_all(&self.pool)
                .await;
        let mut reports = Vec::new();
        let counts = records.map(|records| {
            reports.push(self.plugin_health_report(&records));
            let count = |s: &str| records.iter().filter(|r| r.status == s).count();
            (records.len(), count("failed"), count("running"))
        });
        let r = match counts {
            Ok((total, 0, running)) => {
                HealthReport::healthy("plugins", format!("{total} plugin(s), {running} running"))
                    .with_detail("total_plugins", total)
                    .with_detail("failed_plugins", 0)
                    .with_detail("running_plugins", running)
            }
            Ok((total, failed, running)) => {
                HealthReport::degraded("plugins", format!("{failed} plugin(s) failed"))
                    .with_detail("total_plugins", total)
                    .with_detail("failed_plugins", failed)
                    .with_detail("running_plugins", running)
            }
            Err(e) => {
                HealthReport::unhealthy("plugins", format!("plugin registry unavailable: {e}"))
            }
        };
        reports.insert(0, r.with_detail("runtime", self.runtime.name()));
        reports
    }

    fn apply_config(&self, c: &CoordinatorConfig) -> Result<(), HandlerError> {
        let bad = |e: bigskies_core::config::ConfigError| HandlerError::invalid(e.to_string());
        let c = &c.with_explicit(&self.base.explicit);
        let dir = c
            .string(PLUGIN_DIR_KEY, &self.base.plugin_dir.to_string_lossy())
            .map_err(bad)?;
        let s = Settings {
            plugin_dir: PathBuf::from(&dir),
            scan_interval: c
                .duration("scan_interval", self.base.scan_interval)
                .map_err(bad)?,
            require_checksum: c
                .bool("require_checksum", self.base.require_checksum)
                .map_err(bad)?,
            rpc_timeout: c
                .duration("rpc_timeout", self.base.rpc_timeout)
                .map_err(bad)?,
            plugin_health_interval: c
                .duration("plugin_health_interval", self.base.plugin_health_interval)
                .map_err(bad)?,
            explicit: self.base.explicit.clone(),
        };
        if !s.plugin_dir.is_absolute() {
            return Err(HandlerError::invalid("plugin_dir must be an absolute path"));
        }
        if s.scan_interval.is_zero()
            || s.rpc_timeout.is_zero()
            || s.plugin_health_interval.is_zero()
        {
            return Err(HandlerError::invalid(
                "scan_interval, rpc_timeout and plugin_health_interval must be positive",
            ));
        }
        *lock(&self.settings) = s;
        self.reconfigured.notify_one();
        Ok(())
    }
}
