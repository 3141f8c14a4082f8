//! The application coordinator: a persisted service registry.
//!
//! Operations (on `<root>/coordinator/application/<action>/<resource>`, each with a reply):
//! `service/register`, `service/heartbeat`, `service/unregister`, `service/list`,
//! `service/get` (alias `service/status`, the Go flows name). Payload fields are the Go ones
//! (`id`, `name`, `endpoint`, `metadata`, `status`).
//!
//! The Go event topics `<root>/coordinator/service/event/register` and `.../heartbeat` (bare or
//! enveloped `{id, name, endpoint, metadata}` and `{id, status}`) are served too, as event routes
//! of the runtime: the same operations with the same authentication, answered only when the
//! message names a reply topic (Go senders expect none); a refused event is logged and counted
//! and changes nothing.
//!
//! A service whose last heartbeat is older than `service_timeout` is marked `unhealthy`; after
//! `service_drop_after` it is removed. Both are announced on
//! `<root>/coordinator/application/event/service/{unhealthy,dropped}` (framework envelopes).
//! The registry lives in
//! PostgreSQL (`service_registry`), so a restart keeps it.

/// The columns of a [`Service`], for `concat!` into static queries.
macro_rules! service_columns {
    () => {
        "id, name, endpoint, status, metadata, registered_at, last_heartbeat, registered_by"
    };
}

mod get;
mod heartbeat;
mod list;
mod register;
mod sweep;
mod unregister;

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;

use bigskies_core::auth::{Access, Operation, Principal};
use bigskies_core::config::CoordinatorConfig;
use bigskies_core::error::HandlerError;
use bigskies_core::health::HealthReport;
use bigskies_core::runtime::{Context, Coordinator, EventRoute};
use bigskies_core::topics::Topics;

pub use get::GetService;
pub use heartbeat::Heartbeat;
pub use list::ListServices;
pub use register::RegisterService;
pub use unregister::UnregisterService;

/// The coordinator's short name.
pub const NAME: &str = "application";

/// The Go framework's pseudo-coordinator segment of the service event topics.
pub const GO_SERVICE_SEGMENT: &str = "service";

/// The Go compatibility event topics and the operations they map to.
pub fn go_event_routes(topics: &Topics) -> Vec<EventRoute> {
    vec![
        EventRoute::new(
            topics.event(GO_SERVICE_SEGMENT, "register"),
            "service/register",
        ),
        EventRoute::new(
            topics.event(GO_SERVICE_SEGMENT, "heartbeat"),
            "service/heartbeat",
        ),
    ]
}

/// Service statuses (the Go `healthcheck` vocabulary).
pub const STATUSES: [&str; 4] = ["healthy", "degraded", "unhealthy", "unknown"];

/// Every operation and what it requires (see `docs/authorization.md`).
pub const OPERATIONS: &[Operation] = &[
    Operation::new(
        "service/register",
        Access::object("application", "write"),
        "Register a service",
    ),
    Operation::new(
        "service/heartbeat",
        Access::object("application", "write"),
        "A service's heartbeat",
    ),
    Operation::new(
        "service/unregister",
        Access::object("application", "write"),
        "Remove a service",
    ),
    Operation::new(
        "service/list",
        Access::object("application", "read"),
        "List services",
    ),
    Operation::new(
        "service/get",
        Access::object("application", "read"),
        "Read one service",
    ),
    Operation::new(
        "service/status",
        Access::object("application", "read"),
        "Go name of service/get",
    ),
];

#[derive(Debug, Deserialize)]
#[serde(tag = "op", content = "body")]
pub enum ApplicationRequest {
    #[serde(rename = "service/register")]
    Register(RegisterService),
    #[serde(rename = "service/heartbeat")]
    Heartbeat(Heartbeat),
    #[serde(rename = "service/unregister")]
    Unregister(UnregisterService),
    #[serde(rename = "service/list")]
    List(ListServices),
    #[serde(rename = "service/get", alias = "service/status")]
    Get(GetService),
}

/// Live settings from the `application-coordinator` rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub registry_check_interval: Duration,
    pub service_timeout: Duration,
    pub service_drop_after: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            registry_check_interval: Duration::from_secs(60),
            service_timeout: Duration::from_secs(180),
            service_drop_after: Duration::from_secs(900),
        }
    }
}

/// One registry entry as stored and as replied.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub endpoint: String,
    pub status: String,
    pub metadata: Value,
    pub registered_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    pub registered_by: Option<uuid::Uuid>,
}

impl Service {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "endpoint": self.endpoint,
            "status": self.status,
            "metadata": self.metadata,
            "registered_at": self.registered_at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "last_heartbeat": self.last_heartbeat.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        })
    }
}

/// The application coordinator.
#[derive(Debug)]
pub struct ApplicationCoordinator {
    pool: PgPool,
    base: Settings,
    settings: Mutex<Settings>,
    /// Wakes the sweeper when the interval changes.
    reconfigured: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Database failures are logged here and reach clients in the edge vocabulary (no SQL).
pub(crate) fn db_error(e: sqlx::Error) -> HandlerError {
    tracing::warn!(coordinator = NAME, error = %e, "service registry database error");
    HandlerError::from_database(&e, "service registry")
}

/// Ids and names: non-empty, bounded, printable.
pub(crate) fn check_text(field: &str, v: &str, max: usize) -> Result<(), HandlerError> {
    if v.trim().is_empty() {
        return Err(HandlerError::invalid(format!("{field} is required")));
    }
    if v.len() > max || v.chars().any(char::is_control) {
        return Err(HandlerError::invalid(format!(
            "{field} must be at most {max} printable characters"
        )));
    }
    Ok(())
}

impl ApplicationCoordinator {
    pub fn new(pool: PgPool, settings: Settings) -> Self {
        Self {
            pool,
            base: settings.clone(),
            settings: Mutex::new(settings),
            reconfigured: tokio::sync::Notify::new(),
        }
    }

    pub fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn caller(ctx: &Context) -> Result<&Principal, HandlerError> {
        ctx.principal
            .as_ref()
            .ok_or_else(|| HandlerError::unauthenticated("authentication required"))
    }

    /// The registrant or an administrator may change a registration.
    fn may_change(who: &Principal, s: &Service) -> bool {
        who.is_admin() || s.registered_by.is_none_or(|by| by == who.user_id)
    }

    pub(crate) async fn fetch(&self, id: &str) -> Result<Option<Service>, HandlerError> {
        sqlx::query_as::<_, Service>(concat!(
            "SELECT ",
            service_columns!(),
            " FROM service_registry WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }
}

impl Coordinator for ApplicationCoordinator {
    type Request = ApplicationRequest;

    fn name(&self) -> &'static str {
        NAME
    }

    fn operations(&self) -> &'static [Operation] {
        OPERATIONS
    }

    fn event_routes(&self, topics: &Topics) -> Vec<EventRoute> {
        go_event_routes(topics)
    }

    async fn handle(
        &self,
        ctx: Context,
        request: ApplicationRequest,
    ) -> Result<Value, HandlerError> {
        match request {
            ApplicationRequest::Register(r) => self.register(&ctx, r).await,
            ApplicationRequest::Heartbeat(r) => self.heartbeat(&ctx, r).await,
            ApplicationRequest::Unregister(r) => self.unregister(&ctx, r).await,
            ApplicationRequest::List(r) => self.list(r).await,
            ApplicationRequest::Get(r) => self.get(r).await,
        }
    }

    async fn health(&self) -> Vec<HealthReport> {
        let counts: Result<(i64, i64), _> = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE status = 'unhealthy') FROM service_registry",
        )
        .fetch_one(&self.pool)
        .await;
        let r = match counts {
            Ok((total, 0)) => {
                HealthReport::healthy("registry", format!("{total} service(s) registered"))
                    .with_detail("total_services", total)
                    .with_detail("unhealthy_services", 0)
            }
            Ok((total, bad)) => {
                HealthReport::degraded("registry", format!("{bad} service(s) unhealthy"))
                    .with_detail("total_services", total)
                    .with_detail("unhealthy_services", bad)
            }
            Err(e) => {
                HealthReport::unhealthy("registry", format!("service registry unavailable: {e}"))
            }
        };
        vec![r]
    }

    fn apply_config(&self, c: &CoordinatorConfig) -> Result<(), HandlerError> {
        let bad = |e: bigskies_core::config::ConfigError| HandlerError::invalid(e.to_string());
        let s = Settings {
            registry_check_interval: c
                .duration("registry_check_interval", self.base.registry_check_interval)
                .map_err(bad)?,
            service_timeout: c
                .duration("service_timeout", self.base.service_timeout)
                .map_err(bad)?,
            service_drop_after: c
                .duration("service_drop_after", self.base.service_drop_after)
                .map_err(bad)?,
        };
        if s.registry_check_interval.is_zero() || s.service_timeout.is_zero() {
            return Err(HandlerError::invalid(
                "registry_check_interval and service_timeout must be positive",
            ));
        }
        if s.service_drop_after < s.service_timeout {
            return Err(HandlerError::invalid(
                "service_drop_after must not be shorter than service_timeout",
            ));
        }
        *lock(&self.settings) = s;
        self.reconfigured.notify_one();
        Ok(())
    }
}
