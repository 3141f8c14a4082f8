//! The bootstrap coordinator: runs the migrations and hands out the database credentials.
//!
//! It publishes the credentials message (`{"pgpass_path": <base64 path>, "version": "1.0"}`,
//! retained) at start, every `publish_interval` (30 s) and whenever anything arrives on
//! `<root>/coordinator/bootstrap/request` (the Go request is the requester's bare name, not
//! JSON). The message names a file; it holds no secret. Like every coordinator it publishes
//! health, and it answers `credentials/publish` (public: it only re-sends a public message).

mod migrate;
mod publish;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use bigskies_core::auth::{Access, Operation};
use bigskies_core::config::CoordinatorConfig;
use bigskies_core::credentials::CredentialsMessage;
use bigskies_core::error::HandlerError;
use bigskies_core::health::HealthReport;
use bigskies_core::runtime::{Context, Coordinator};

pub use migrate::{MigrateError, migrate, validate_pgpass};

/// The coordinator's short name.
pub const NAME: &str = "bootstrap";

/// The Go default path advertised to coordinators.
pub const DEFAULT_PGPASS: &str = "/shared/secrets/.pgpass";

/// How often the credentials are re-published.
pub const DEFAULT_PUBLISH_INTERVAL: Duration = Duration::from_secs(30);

/// A request without fields.
#[derive(Debug, Default, Deserialize)]
pub struct Empty {}

/// Every operation and what it requires (see `docs/authorization.md`).
pub const OPERATIONS: &[Operation] = &[Operation::new(
    "credentials/publish",
    Access::Public,
    "Publish the database credentials message again",
)];

#[derive(Debug, Deserialize)]
#[serde(tag = "op", content = "body")]
pub enum BootstrapRequest {
    #[serde(rename = "credentials/publish")]
    Publish(Empty),
}

/// The bootstrap coordinator.
#[derive(Debug)]
pub struct BootstrapCoordinator {
    pgpass: PathBuf,
    base_interval: Duration,
    interval: Mutex<Duration>,
    published: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Asks the publisher task to publish now.
    wake: tokio::sync::Notify,
    /// The deployment hands every coordinator `DATABASE_URL`: nobody reads the `.pgpass`.
    from_database_url: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl BootstrapCoordinator {
    pub fn new(pgpass: impl Into<PathBuf>, publish_interval: Duration) -> Self {
        Self {
            pgpass: pgpass.into(),
            base_interval: publish_interval,
            interval: Mutex::new(publish_interval),
            published: AtomicU64::new(0),
            last_error: Mutex::new(None),
            wake: tokio::sync::Notify::new(),
            from_database_url: false,
        }
    }

    /// Whether the coordinators of this deployment get their credentials from `DATABASE_URL`
    /// (then a missing `.pgpass` is expected, not a fault).
    pub fn credentials_from_database_url(mut self, yes: bool) -> Self {
        self.from_database_url = yes;
        self
    }

    pub fn pgpass(&self) -> &Path {
        &self.pgpass
    }

    pub fn message(&self) -> CredentialsMessage {
        CredentialsMessage::for_path(&self.pgpass)
    }

    pub fn publications(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    pub fn publish_interval(&self) -> Duration {
        *lock(&self.interval)
    }
}

impl Coordinator for BootstrapCoordinator {
    type Request = BootstrapRequest;

    fn name(&self) -> &'static str {
        NAME
    }

    fn operations(&self) -> &'static [Operation] {
        OPERATIONS
    }

    async fn handle(
        &self,
        _ctx: Context,
        request: BootstrapRequest,
    ) -> Result<Value, HandlerError> {
        match request {
            BootstrapRequest::Publish(_) => {
                self.wake.notify_one();
                Ok(json!({"success": true, "credentials": self.message()}))
            }
        }
    }

    async fn health(&self) -> Vec<HealthReport> {
        let exists = self.pgpass.is_file();
        let err = lock(&self.last_error).clone();
        let r = match (err, exists) {
            (Some(e), _) => {
                HealthReport::degraded("credentials", format!("credentials not published: {e}"))
            }
            (None, false) if self.from_database_url => HealthReport::healthy(
                "credentials",
                format!(
                    "credentials come from DATABASE_URL; {} is advertised for Go coordinators \
                     but not written",
                    self.pgpass.display()
                ),
            ),
            (None, false) => HealthReport::degraded(
                "credentials",
                format!("the advertised {} does not exist", self.pgpass.display()),
            ),
            (None, true) => HealthReport::healthy("credentials", "credentials published"),
        };
        vec![
            r.with_detail("publications", self.publications())
                .with_detail("pgpass_exists", exists),
        ]
    }

    fn apply_config(&self, c: &CoordinatorConfig) -> Result<(), HandlerError> {
        let every = c
            .duration("publish_interval", self.base_interval)
            .map_err(|e| HandlerError::invalid(e.to_string()))?;
        if every.is_zero() {
            return Err(HandlerError::invalid("publish_interval must be positive"));
        }
        *lock(&self.interval) = every;
        self.wake.notify_one();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bigskies_core::health::HealthStatus;

    fn missing_pgpass() -> PathBuf {
        std::env::temp_dir().join(format!("bst-no-such-{}.pgpass", uuid::Uuid::new_v4()))
    }

    #[tokio::test]
    async fn a_missing_pgpass_is_degraded_when_coordinators_read_it() {
        let c = BootstrapCoordinator::new(missing_pgpass(), DEFAULT_PUBLISH_INTERVAL);
        let health = c.health().await;
        assert_eq!(health[0].status, HealthStatus::Degraded, "{health:?}");
    }

    /// The README's development command gives every coordinator `DATABASE_URL`: no `.pgpass`
    /// is written or read, so its absence is no fault (bootstrap said `degraded` forever).
    #[tokio::test]
    async fn with_database_url_credentials_a_missing_pgpass_is_healthy() {
        let c = BootstrapCoordinator::new(missing_pgpass(), DEFAULT_PUBLISH_INTERVAL)
            .credentials_from_database_url(true);
        let health = c.health().await;
        assert_eq!(health[0].status, HealthStatus::Healthy, "{health:?}");
        assert!(health[0].message.contains("DATABASE_URL"), "{health:?}");
    }
}
