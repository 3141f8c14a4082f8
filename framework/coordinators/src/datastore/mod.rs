//! The datastore coordinator: owns the shared PostgreSQL pool and watches the database.
//!
//! * Pool settings (`max_connections`, `min_connections`, `max_lifetime`, `idle_timeout`,
//!   `acquire_timeout`) come from the `datastore-coordinator` rows; a change rebuilds the pool
//!   live (sqlx cannot resize a pool in place).
//! * Health pings the database (bounded by `ping_timeout`): `unhealthy` when it does not
//!   answer, `degraded` when the pool is near capacity. The pool reconnects by itself when
//!   the database returns (connections are tested before use), so health recovers on its own.
//! * Pool statistics are published every `stats_interval` on
//!   `<root>/coordinator/datastore/event/pool/stats` (in a framework envelope, like every
//!   event) and answered on `pool/stats`;
//!   `pool/ping` pings on demand.

mod ping;
mod stats;

use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use bigskies_core::auth::{Access, Operation};
use bigskies_core::bus::Bus;
use bigskies_core::config::CoordinatorConfig;
use bigskies_core::envelope::{Envelope, MessageType};
use bigskies_core::error::HandlerError;
use bigskies_core::health::HealthReport;
use bigskies_core::runtime::{Context, Coordinator};
use bigskies_core::topics::Topics;

pub use stats::PoolStats;

/// The coordinator's short name.
pub const NAME: &str = "datastore";

/// A request without fields.
#[derive(Debug, Default, Deserialize)]
pub struct Empty {}

/// Every operation and what it requires (see `docs/authorization.md`).
pub const OPERATIONS: &[Operation] = &[
    Operation::new(
        "pool/stats",
        Access::object("datastore", "read"),
        "Connection pool statistics",
    ),
    Operation::new(
        "pool/ping",
        Access::object("datastore", "read"),
        "Round trip to the database",
    ),
];

#[derive(Debug, Deserialize)]
#[serde(tag = "op", content = "body")]
pub enum DatastoreRequest {
    #[serde(rename = "pool/stats")]
    Stats(Empty),
    #[serde(rename = "pool/ping")]
    Ping(Empty),
}

/// The pool's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub min_connections: u32,
    pub max_lifetime: Duration,
    pub idle_timeout: Duration,
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        // The Go binary's defaults (flags 25/5, 1 h lifetime, 30 min idle); the seed rows
        // say 20/5.
        Self {
            max_connections: 25,
            min_connections: 5,
            max_lifetime: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(1800),
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Live settings from the `datastore-coordinator` rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub pool: PoolSettings,
    pub ping_timeout: Duration,
    pub stats_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            pool: PoolSettings::default(),
            ping_timeout: Duration::from_secs(2),
            stats_interval: Duration::from_secs(10),
        }
    }
}

impl Settings {
    fn from_config(c: &CoordinatorConfig, base: &Settings) -> Result<Self, HandlerError> {
        let bad = |e: bigskies_core::config::ConfigError| HandlerError::invalid(e.to_string());
        let count = |key: &str, default: u32| -> Result<u32, HandlerError> {
            let v = c.int(key, i64::from(default)).map_err(bad)?;
            u32::try_from(v)
                .ok()
                .filter(|v| *v <= 10_000)
                .ok_or_else(|| HandlerError::invalid(format!("{key} must be between 0 and 10000")))
        };
        let s = Self {
            pool: PoolSettings {
                max_connections: count("max_connections", base.pool.max_connections)?,
                min_connections: count("min_connections", base.pool.min_connections)?,
                max_lifetime: c
                    .duration("max_lifetime", base.pool.max_lifetime)
                    .map_err(bad)?,
                idle_timeout: c
                    .duration("idle_timeout", base.pool.idle_timeout)
                    .map_err(bad)?,
                acquire_timeout: c
                    .duration("acquire_timeout", base.pool.acquire_timeout)
                    .map_err(bad)?,
            },
            ping_timeout: c.duration("ping_timeout", base.ping_timeout).map_err(bad)?,
            stats_interval: c
                .duration("stats_interval", base.stats_interval)
                .map_err(bad)?,
        };
        if s.pool.max_connections == 0 || s.pool.min_connections > s.pool.max_connections {
            return Err(HandlerError::invalid(
                "max_connections must be positive and at least min_connections",
            ));
        }
        if s.ping_timeout.is_zero() || s.stats_interval.is_zero() {
            return Err(HandlerError::invalid(
                "ping_timeout and stats_interval must be positive",
            ));
        }
        Ok(s)
    }
}

/// Build a pool that connects lazily: the coordinator starts (and reports `unhealthy`) even
/// when the database is down.
pub fn build_pool(options: &PgConnectOptions, s: &PoolSettings) -> PgPool {
    PgPoolOptions::new()
        .max_connections(s.max_connections)
        .min_connections(s.min_connections)
        .max_lifetime((!s.max_lifetime.is_zero()).then_some(s.max_lifetime))
        .idle_timeout((!s.idle_timeout.is_zero()).then_some(s.idle_timeout))
        .acquire_timeout(s.acquire_timeout)
        .test_before_acquire(true)
        .connect_lazy_with(options.clone())
}

/// The datastore coordinator.
#[derive(Debug)]
pub struct DatastoreCoordinator {
    options: PgConnectOptions,
    pool: RwLock<PgPool>,
    base: Settings,
    settings: Mutex<Settings>,
    reconfigured: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl DatastoreCoordinator {
    /// Never fails: the pool connects on first use.
    pub fn new(options: PgConnectOptions, settings: Settings) -> Self {
        let pool = build_pool(&options, &settings.pool);
        Self {
            options,
            pool: RwLock::new(pool),
            base: settings.clone(),
            settings: Mutex::new(settings),
            reconfigured: tokio::sync::Notify::new(),
        }
    }

    /// The pool this coordinator owns (a cheap handle; it follows reconfiguration only if
    /// fetched again).
    pub fn pool(&self) -> PgPool {
        self.pool.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    /// Publish pool statistics every `stats_interval` until `shutdown`.
    pub async fn run(self: Arc<Self>, bus: Bus, topics: Topics, shutdown: CancellationToken) {
        let topic = topics.event(NAME, "pool/stats");
        loop {
            let every = self.settings().stats_interval;
            let mut body = self.stats().to_json();
            body["timestamp"] = Value::String(
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            );
            let env = Envelope::new(MessageType::Event, format!("coordinator:{NAME}"), body);
            if let Err(e) = bus.publish(&topic, env.to_bytes(), false).await {
                warn!(coordinator = NAME, error = %e, "pool statistics not published");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.reconfigured.notified() => {}
                _ = tokio::time::sleep(every) => {}
            }
        }
        self.pool().close().await;
    }
}

impl Coordinator for DatastoreCoordinator {
    type Request = DatastoreRequest;

    fn name(&self) -> &'static str {
        NAME
    }

    fn operations(&self) -> &'static [Operation] {
        OPERATIONS
    }

    async fn handle(
        &self,
        _ctx: Context,
        request: DatastoreRequest,
    ) -> Result<Value, HandlerError> {
        match request {
            DatastoreRequest::Stats(_) => {
                Ok(json!({"success": true, "stats": self.stats().to_json()}))
            }
            DatastoreRequest::Ping(_) => self.ping_reply().await,
        }
    }

    async fn health(&self) -> Vec<HealthReport> {
        vec![self.check().await]
    }

    fn apply_config(&self, c: &CoordinatorConfig) -> Result<(), HandlerError> {
        let new = Settings::from_config(c, &self.base)?;
        let old = std::mem::replace(&mut *lock(&self.settings), new.clone());
        if old.pool != new.pool {
            let fresh = build_pool(&self.options, &new.pool);
            let previous = std::mem::replace(
                &mut *self.pool.write().unwrap_or_else(|p| p.into_inner()),
                fresh,
            );
            info!(
                coordinator = NAME,
                max = new.pool.max_connections,
                min = new.pool.min_connections,
                "pool rebuilt with new settings"
            );
            // Let borrowers finish with the old pool; close it in the background.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { previous.close().await });
            }
        }
        self.reconfigured.notify_one();
        Ok(())
    }
}
