//! The telescope coordinator: telescope configurations and observatory sites, Alpaca devices
//! and their roles in a telescope, mount control, status and observing sessions, on the Go
//! topics and reply shapes (contract §2.5), over the ASCOM engine ([`bigskies_ascom`]).
//!
//! Operations (`<root>/coordinator/telescope/<action>/<resource>`), one file per family:
//! * [`config`] — `config/create|update|delete|list|get`, `site/create|update|list|get|delete`;
//! * [`device`] — `device/discover|move|connect|disconnect|list|assign|unassign`;
//! * [`control`] — `control/slew|park|unpark|track|abort` through the asynchronous Alpaca
//!   calls: the reply comes at once, and a watcher publishes
//!   `event/slew/completed|failed|aborted` (`event/park/...` for a park) when the mount settles,
//!   and the same outcome retained on `event/motion/<telescope_id>`;
//! * [`status`] — `status/get`, every field filled from the mount's `DeviceState`, plus
//!   `last_motion` (the last motion outcome, or `null`); a mount that
//!   is disconnected, lost or not answering gives `connected: false`, its link state and last
//!   error, and `null` for what cannot be read;
//! * [`session`] — `session/start|end|list`, one active session per telescope; the list shows
//!   an administrator every session, anyone else their own sessions plus the sessions on
//!   telescopes they may read;
//! * [`access`] — per-telescope permissions (`permission/grant|revoke|list`) and the checks
//!   every operation makes.
//!
//! What Go lacked: every request is authenticated and the caller comes from the credential,
//! never from `owner_id`/`user_id` in the payload. Control needs the telescope's `control`
//! permission (owner, owning group, or an unexpired grant) plus an active session of the
//! caller, or the `admin` role. Control commands may carry `expires_at` (alias `deadline`,
//! RFC 3339): one that arrives after it (for example after a broker outage) is refused and
//! not executed. Device state changes of the engine are published on
//! `event/device/<discovered|move_proposed|moved|connected|disconnected|lost|recovered>`.
//!
//! Events are published in the framework envelope (contract §1.1): `type` `event`, `source`
//! `coordinator:telescope`, the event object in `payload`; a motion event carries the
//! `correlation_id` of the command that started the motion.
//!
//! Real hardware is taken the same way as the simulator: anything that answers
//! `/management/v1/configureddevices` is registered by its UniqueID. Put the Alpaca servers'
//! addresses in [`AscomConfig::servers`](bigskies_ascom::AscomConfig) (routed networks, VPNs,
//! Docker bridges), leave UDP discovery on for devices on the same LAN, or name a server in a
//! request: `device/discover {"server_url": "http://192.168.1.40:11111"}`. Then assign the
//! mount to a telescope (`device/assign {"telescope_id", "role": "telescope", "device_id"}`) and
//! connect it (`device/connect`); the engine keeps it connected from then on.
//!
//! Field aliases of the Go clients are accepted: `device_id`/`telescope_id`/`config_id` for the
//! telescope of a control, status or session request, `session_type`/`session_name`,
//! `tracking`/`enabled`.

pub mod access;
pub mod config;
pub mod control;
pub mod device;
pub mod session;
pub mod status;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use uuid::Uuid;

use bigskies_ascom::{AscomEngine, DeviceEvent, EngineError};
use bigskies_core::auth::{Access, Operation, Principal};
use bigskies_core::bus::Bus;
use bigskies_core::config::CoordinatorConfig;
use bigskies_core::envelope::{Envelope, MessageType};
use bigskies_core::error::{ErrorKind, HandlerError};
use bigskies_core::health::HealthReport;
use bigskies_core::lanes::LaneUse;
use bigskies_core::runtime::{Context, Coordinator};
use bigskies_core::topics::Topics;

pub use access::{GrantPermission, ListPermissions, RevokePermission};
pub use config::{
    CreateConfig, CreateSite, DeleteConfig, GetConfig, ListConfigs, SiteRef, UpdateConfig,
    UpdateSite,
};
pub use control::{Motions, Slew, TelescopeCommand, Track};
pub use device::{AssignDevice, ConnectDevice, Discover, MoveDevice, UnassignDevice};
pub use session::{EndSession, ListSessions, StartSession};
pub use status::GetStatus;

/// The coordinator's short name.
pub const NAME: &str = "telescope";

/// Configuration keys (rows of `telescope-coordinator`).
pub const HEALTH_CHECK_INTERVAL_KEY: &str = "health_check_interval";
pub const SLEW_POLL_MS_KEY: &str = "slew_poll_ms";
pub const SLEW_TIMEOUT_KEY: &str = "slew_timeout";

/// `<root>/coordinator/telescope/event/slew/<outcome>` (`completed`, `failed`, `aborted`).
pub fn slew_event_topic(topics: &Topics, outcome: &str) -> String {
    topics.event(NAME, &format!("slew/{outcome}"))
}

/// `<root>/coordinator/telescope/event/park/<outcome>`.
pub fn park_event_topic(topics: &Topics, outcome: &str) -> String {
    topics.event(NAME, &format!("park/{outcome}"))
}

/// `<root>/coordinator/telescope/event/motion/<telescope_id>`: the last motion outcome of a
/// telescope, retained.
pub fn motion_event_topic(topics: &Topics, telescope: Uuid) -> String {
    topics.event(NAME, &format!("motion/{telescope}"))
}

/// `<root>/coordinator/telescope/event/device/<kind>` (`lost`, `recovered`, ...).
pub fn device_event_topic(topics: &Topics, kind: &str) -> String {
    topics.event(NAME, &format!("device/{kind}"))
}

/// The envelope every telescope event travels in: `type` `event`, `source`
/// `coordinator:telescope`, `body` as the payload, and the correlation id of the request that
/// caused it, if any.
pub fn event_envelope(body: Value, correlation_id: Option<&str>) -> Envelope {
    let env = Envelope::new(MessageType::Event, format!("coordinator:{NAME}"), body);
    match correlation_id {
        Some(c) => env.with_correlation_id(c),
        None => env,
    }
}

/// Publish `body` enveloped on `topic`; a failure is logged, not returned (events are
/// best-effort, like Go's).
pub(crate) async fn publish_event(
    bus: &Bus,
    topic: &str,
    body: Value,
    correlation_id: Option<&str>,
) {
    let env = event_envelope(body, correlation_id);
    if let Err(e) = bus.publish(topic, env.to_bytes(), false).await {
        debug!(%topic, error = %e, "telescope event not published");
    }
}

/// Like [`publish_event`], retained: for state a late subscriber must still get.
pub(crate) async fn publish_retained_event(
    bus: &Bus,
    topic: &str,
    body: Value,
    correlation_id: Option<&str>,
) {
    let env = event_envelope(body, correlation_id);
    if let Err(e) = bus.publish(topic, env.to_bytes(), true).await {
        debug!(%topic, error = %e, "retained telescope event not published");
    }
}

/// Live settings; reloaded from `coordinator_config`.
#[derive(Clone, Debug, PartialEq)]
pub struct TelescopeSettings {
    /// Interval of the engine's health cycle (three failed cycles lose a device).
    pub health_interval: Duration,
    /// How often a slew watcher reads `Slewing`.
    pub slew_poll: Duration,
    /// A slew that has not settled by then is reported failed.
    pub slew_timeout: Duration,
}

impl Default for TelescopeSettings {
    fn default() -> Self {
        Self {
            health_interval: Duration::from_secs(30),
            slew_poll: Duration::from_millis(250),
            slew_timeout: Duration::from_secs(600),
        }
    }
}

/// Every operation and what it requires (see `docs/authorization.md`).
pub const OPERATIONS: &[Operation] = &[
    Operation::new(
        "config/create",
        Access::object("telescope", "write"),
        "Create a telescope configuration owned by the caller (or a group of theirs)",
    ),
    Operation::new(
        "config/update",
        Access::object("telescope", "write"),
        "Change a telescope (owner, write grant, admin)",
    ),
    Operation::new(
        "config/delete",
        Access::object("telescope", "write"),
        "Delete a telescope (owner, write grant, admin)",
    ),
    Operation::new(
        "config/list",
        Access::object("telescope", "read"),
        "List the telescopes the caller may read",
    ),
    Operation::new(
        "config/get",
        Access::object("telescope", "read"),
        "Read one telescope (owner, any grant, admin)",
    ),
    Operation::new(
        "site/create",
        Access::object("site", "write"),
        "Create an observing site",
    ),
    Operation::new(
        "site/update",
        Access::object("site", "write"),
        "Change a site (its creator or admin)",
    ),
    Operation::new("site/list", Access::object("site", "read"), "List sites"),
    Operation::new("site/get", Access::object("site", "read"), "Read one site"),
    Operation::new(
        "site/delete",
        Access::object("site", "write"),
        "Delete a site (its creator or admin)",
    ),
    Operation::new(
        "device/discover",
        Access::role("device", "manage"),
        "Register Alpaca servers by address and discovery (admin only); a known device is never moved",
    ),
    Operation::new(
        "device/move",
        Access::role("device", "manage"),
        "Confirm that a known device answers at a new address (admin only; not while connected or held; identity checked)",
    ),
    Operation::new(
        "device/list",
        Access::object("device", "read"),
        "List registered devices",
    ),
    Operation::new(
        "device/connect",
        Access::object("telescope", "control"),
        "Connect a device (session holder on a telescope using it, or admin)",
    ),
    Operation::new(
        "device/disconnect",
        Access::object("telescope", "control"),
        "Disconnect a device (session holder on a telescope using it, or admin)",
    ),
    Operation::new(
        "device/assign",
        Access::object("telescope", "write"),
        "Put a device into a telescope (write on it, control of every telescope already using the device)",
    ),
    Operation::new(
        "device/unassign",
        Access::object("telescope", "write"),
        "Take a device out of a telescope",
    ),
    Operation::new(
        "control/slew",
        Access::object("telescope", "control"),
        "Slew (control right and the active session)",
    ),
    Operation::new(
        "control/park",
        Access::object("telescope", "control"),
        "Park (control right and the active session)",
    ),
    Operation::new(
        "control/unpark",
        Access::object("telescope", "control"),
        "Unpark (control right and the active session)",
    ),
    Operation::new(
        "control/abort",
        Access::object("telescope", "control"),
        "Abort a slew (control right and the active session)",
    ),
    Operation::new(
        "control/track",
        Access::object("telescope", "control"),
        "Tracking on or off (control right and the active session)",
    ),
    Operation::new(
        "status/get",
        Access::object("telescope", "read"),
        "Position and state of a telescope",
    ),
    Operation::new(
        "session/start",
        Access::object("telescope", "control"),
        "Start the exclusive session on a telescope and its devices",
    ),
    Operation::new(
        "session/end",
        Access::object("telescope", "control"),
        "End a session (its holder or admin)",
    ),
    Operation::new(
        "session/list",
        Access::object("telescope", "read"),
        "List sessions of readable telescopes",
    ),
    Operation::new(
        "permission/grant",
        Access::object("telescope", "write"),
        "Grant read, write or control on a telescope",
    ),
    Operation::new(
        "permission/revoke",
        Access::object("telescope", "write"),
        "Revoke a grant",
    ),
    Operation::new(
        "permission/list",
        Access::object("telescope", "read"),
        "List the grants of a telescope",
    ),
];

#[derive(Debug, Deserialize)]
#[serde(tag = "op", content = "body")]
pub enum TelescopeRequest {
    #[serde(rename = "config/create")]
    CreateConfig(CreateConfig),
    #[serde(rename = "config/update")]
    UpdateConfig(UpdateConfig),
    #[serde(rename = "config/delete")]
    DeleteConfig(DeleteConfig),
    #[serde(rename = "config/list")]
    ListConfigs(ListConfigs),
    #[serde(rename = "config/get")]
    GetConfig(GetConfig),
    #[serde(rename = "site/create")]
    CreateSite(CreateSite),
    #[serde(rename = "site/update")]
    UpdateSite(UpdateSite),
    #[serde(rename = "site/list")]
    ListSites(Empty),
    #[serde(rename = "site/get")]
    GetSite(SiteRef),
    #[serde(rename = "site/delete")]
    DeleteSite(SiteRef),
    #[serde(rename = "device/discover")]
    Discover(Discover),
    #[serde(rename = "device/list")]
    ListDevices(Empty),
    #[serde(rename = "device/move")]
    Move(MoveDevice),
    #[serde(rename = "device/connect")]
    Connect(ConnectDevice),
    #[serde(rename = "device/disconnect")]
    Disconnect(ConnectDevice),
    #[serde(rename = "device/assign")]
    Assign(AssignDevice),
    #[serde(rename = "device/unassign")]
    Unassign(UnassignDevice),
    #[serde(rename = "control/slew")]
    Slew(Slew),
    #[serde(rename = "control/park")]
    Park(TelescopeCommand),
    #[serde(rename = "control/unpark")]
    Unpark(TelescopeCommand),
    #[serde(rename = "control/abort")]
    Abort(TelescopeCommand),
    #[serde(rename = "control/track")]
    Track(Track),
    #[serde(rename = "status/get")]
    Status(GetStatus),
    #[serde(rename = "session/start")]
    StartSession(StartSession),
    #[serde(rename = "session/end")]
    EndSession(EndSession),
    #[serde(rename = "session/list")]
    ListSessions(ListSessions),
    #[serde(rename = "permission/grant")]
    Grant(GrantPermission),
    #[serde(rename = "permission/revoke")]
    Revoke(RevokePermission),
    #[serde(rename = "permission/list")]
    ListPermissions(ListPermissions),
}

/// A request without fields.
#[derive(Debug, Default, Deserialize)]
pub struct Empty {}

/// The telescope coordinator. Cheap to share (`Arc`); the engine handle is cheap to clone.
pub struct TelescopeCoordinator {
    pool: PgPool,
    engine: AscomEngine,
    settings: RwLock<TelescopeSettings>,
    motions: Arc<Motions>,
}

impl std::fmt::Debug for TelescopeCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelescopeCoordinator")
            .field("engine", &self.engine)
            .field("settings", &self.settings())
            .finish_non_exhaustive()
    }
}

impl TelescopeCoordinator {
    pub fn new(pool: PgPool, engine: AscomEngine, settings: TelescopeSettings) -> Self {
        Self {
            pool,
            engine,
            settings: RwLock::new(settings),
            motions: Arc::default(),
        }
    }

    pub fn engine(&self) -> &AscomEngine {
        &self.engine
    }

    pub fn settings(&self) -> TelescopeSettings {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Background work for [`launch_with`](bigskies_core::runtime::launch_with): the engine's
    /// health cycle (at the live interval) and the publication of device events.
    pub async fn run_background(
        self: Arc<Self>,
        bus: Bus,
        topics: Topics,
        stop: CancellationToken,
    ) {
        let events = tokio::spawn(
            self.clone()
                .forward_device_events(bus, topics, stop.clone()),
        );
        // At once, not one interval late: devices that were connected before a restart are
        // connected again by this first cycle.
        tokio::select! {
            _ = stop.cancelled() => {}
            c = self.engine.health_cycle() => {
                debug!(checked = c.checked, recovered = c.recovered.len(), "first ASCOM health cycle");
            }
        }
        loop {
            let interval = self.settings().health_interval;
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(interval) => {
                    let c = self.engine.health_cycle().await;
                    debug!(checked = c.checked, failed = c.failed, elapsed_ms = c.elapsed_ms, "ASCOM health cycle");
                }
            }
        }
        let _ = events.await;
    }

    async fn forward_device_events(
        self: Arc<Self>,
        bus: Bus,
        topics: Topics,
        stop: CancellationToken,
    ) {
        let mut rx = self.engine.subscribe();
        loop {
            let event = tokio::select! {
                _ = stop.cancelled() => break,
                e = rx.recv() => e,
            };
            let event = match event {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    warn!(skipped = n, "device events lagged; some were not published");
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            let (kind, unique_id) = match &event {
                DeviceEvent::Discovered { unique_id, .. } => ("discovered", unique_id),
                DeviceEvent::Moved { unique_id, .. } => ("moved", unique_id),
                DeviceEvent::MoveProposed { unique_id, .. } => ("move_proposed", unique_id),
                DeviceEvent::Connected { unique_id } => ("connected", unique_id),
                DeviceEvent::Disconnected { unique_id } => ("disconnected", unique_id),
                DeviceEvent::Lost { unique_id, .. } => ("lost", unique_id),
                DeviceEvent::Recovered { unique_id } => ("recovered", unique_id),
            };
            let telescopes: Vec<Uuid> =
                sqlx::query_scalar("SELECT telescope_id FROM telescope_pools WHERE unique_id = $1")
                    .bind(unique_id)
                    .fetch_all(&self.pool)
                    .await
                    .unwrap_or_default();
            let mut body = serde_json::to_value(&event).unwrap_or_else(|_| json!({}));
            if let Value::Object(map) = &mut body {
                map.insert("telescopes".into(), json!(telescopes));
                map.insert("timestamp".into(), json!(rfc3339(Utc::now())));
                if let Some(d) = self.engine.device(unique_id) {
                    map.insert("device".into(), device::device_json(&d));
                }
            }
            publish_event(&bus, &device_event_topic(&topics, kind), body, None).await;
        }
    }
}

impl Coordinator for TelescopeCoordinator {
    type Request = TelescopeRequest;

    fn name(&self) -> &'static str {
        NAME
    }

    /// Every operation needs a credential; per-telescope permissions are checked in the
    /// handlers, as the grants are this coordinator's data.
    fn operations(&self) -> &'static [Operation] {
        OPERATIONS
    }

    /// Requests that talk to a device wait in that telescope's (or device's) lane, so a hung
    /// mount delays only its own requests. `abort` is urgent: it never waits, and it cancels
    /// the slews and parks still waiting in the telescope's lane, which must not start after
    /// it. Keys are canonical (a telescope's UUID however spelled, a device the engine knows);
    /// an id that is neither gets no lane, as its handler refuses it at once.
    fn lane(&self, request: &TelescopeRequest) -> Option<LaneUse> {
        use TelescopeRequest as R;
        let telescope = |id: &str| {
            parse_id("telescope_id", id)
                .ok()
                .map(|id| format!("telescope {id}"))
        };
        match request {
            R::Abort(r) => telescope(&r.telescope_id).map(LaneUse::Urgent),
            R::Slew(r) => telescope(&r.telescope_id).map(LaneUse::Queue),
            R::Park(r) | R::Unpark(r) => telescope(&r.telescope_id).map(LaneUse::Queue),
            R::Track(r) => telescope(&r.telescope_id).map(LaneUse::Queue),
            R::Status(r) => telescope(&r.telescope_id).map(LaneUse::Queue),
            R::Connect(r) | R::Disconnect(r) => self
                .engine
                .device(r.device_id.trim())
                .map(|d| LaneUse::Queue(format!("device {}", d.unique_id))),
            _ => None,
        }
    }

    async fn handle(&self, ctx: Context, request: TelescopeRequest) -> Result<Value, HandlerError> {
        let p = ctx
            .principal
            .clone()
            .ok_or_else(|| HandlerError::unauthenticated("authentication required"))?;
        use TelescopeRequest as R;
        match request {
            R::CreateConfig(r) => self.create_config(&p, r).await,
            R::UpdateConfig(r) => self.update_config(&p, r).await,
            R::DeleteConfig(r) => self.delete_config(&p, r).await,
            R::ListConfigs(r) => self.list_configs(&p, r).await,
            R::GetConfig(r) => self.get_config(&p, r).await,
            R::CreateSite(r) => self.create_site(&p, r).await,
            R::UpdateSite(r) => self.update_site(&p, r).await,
            R::ListSites(_) => self.list_sites().await,
            R::GetSite(r) => self.get_site(r).await,
            R::DeleteSite(r) => self.delete_site(&p, r).await,
            R::Discover(r) => self.discover(&p, r).await,
            R::ListDevices(_) => Ok(self.list_devices()),
            R::Move(r) => self.move_device(&p, r).await,
            R::Connect(r) => self.connect_device(&p, r, true).await,
            R::Disconnect(r) => self.connect_device(&p, r, false).await,
            R::Assign(r) => self.assign(&p, r).await,
            R::Unassign(r) => self.unassign(&p, r).await,
            R::Slew(r) => self.slew(&ctx, &p, r).await,
            R::Park(r) => self.park(&ctx, &p, r).await,
            R::Unpark(r) => self.unpark(&p, r).await,
            R::Abort(r) => self.abort(&p, r).await,
            R::Track(r) => self.track(&p, r).await,
            R::Status(r) => self.status(&p, r).await,
            R::StartSession(r) => self.start_session(&p, r).await,
            R::EndSession(r) => self.end_session(&p, r).await,
            R::ListSessions(r) => self.list_sessions(&p, r).await,
            R::Grant(r) => self.grant(&p, r).await,
            R::Revoke(r) => self.revoke(&p, r).await,
            R::ListPermissions(r) => self.list_permissions(&p, r).await,
        }
    }

    async fn health(&self) -> Vec<HealthReport> {
        let db = match sqlx::query_scalar::<_, i64>("SELECT count(*) FROM telescope_configurations")
            .fetch_one(&self.pool)
            .await
        {
            Ok(n) => {
                HealthReport::healthy("telescope_store", format!("{n} telescope configuration(s)"))
                    .with_detail("configurations", n)
            }
            Err(e) => {
                HealthReport::unhealthy("telescope_store", format!("database unavailable: {e}"))
            }
        };
        vec![
            self.engine.health(),
            db.with_detail("slews_in_progress", self.motions.len()),
        ]
    }

    fn apply_config(&self, cfg: &CoordinatorConfig) -> Result<(), HandlerError> {
        let current = self.settings();
        let bad = |e: bigskies_core::config::ConfigError| HandlerError::invalid(e.to_string());
        let next = TelescopeSettings {
            health_interval: cfg
                .duration(HEALTH_CHECK_INTERVAL_KEY, current.health_interval)
                .map_err(bad)?,
            slew_poll: Duration::from_millis(
                u64::try_from(
                    cfg.int(
                        SLEW_POLL_MS_KEY,
                        i64::try_from(current.slew_poll.as_millis()).unwrap_or(250),
                    )
                    .map_err(bad)?,
                )
                .unwrap_or(250)
                .max(1),
            ),
            slew_timeout: cfg
                .duration(SLEW_TIMEOUT_KEY, current.slew_timeout)
                .map_err(bad)?,
        };
        if next.health_interval.is_zero() {
            return Err(HandlerError::invalid(format!(
                "{HEALTH_CHECK_INTERVAL_KEY} must be > 0"
            )));
        }
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }
}

// ---- helpers shared by the operation files ----------------------------------------------------

pub(crate) fn db_error(e: sqlx::Error) -> HandlerError {
    warn!(coordinator = NAME, error = %e, "telescope database error");
    HandlerError::from_database(&e, "telescope store")
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"))
}

pub(crate) fn parse_id(field: &str, value: &str) -> Result<Uuid, HandlerError> {
    if value.trim().is_empty() {
        return Err(HandlerError::invalid(format!("{field} is required")));
    }
    Uuid::parse_str(value.trim())
        .map_err(|_| HandlerError::invalid(format!("{field} is not a UUID")))
}

/// Go's time format: RFC 3339 with nanoseconds, zone `Z`.
pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Edge errors for engine failures: device errors keep the Alpaca text (as Go replied it).
pub(crate) fn engine_error(e: EngineError) -> HandlerError {
    match e {
        EngineError::UnknownDevice(id) => {
            HandlerError::not_found(format!("device {id} not registered"))
        }
        EngineError::NoRole { .. } => HandlerError::not_found("Telescope not found"),
        EngineError::NotConnected(id) => {
            HandlerError::new(ErrorKind::Conflict, format!("device {id} is not connected"))
        }
        EngineError::WrongType { .. } => HandlerError::invalid(e.to_string()),
        EngineError::MoveRefused { .. } => HandlerError::conflict(e.to_string()),
        EngineError::Device(a) => HandlerError::new(
            ErrorKind::Conflict,
            format!("API error {}: {}", a.code.0, a.message),
        ),
        EngineError::Unreachable { .. } | EngineError::Server { .. } => {
            HandlerError::unavailable(e.to_string())
        }
        EngineError::Discovery(err) => {
            HandlerError::unavailable(format!("discovery failed: {err}"))
        }
        EngineError::Database(err) => db_error(err),
    }
}

/// Whether the principal is an administrator.
pub(crate) fn admin(p: &Principal) -> bool {
    p.is_admin()
}
