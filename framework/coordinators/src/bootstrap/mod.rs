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
        }
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
