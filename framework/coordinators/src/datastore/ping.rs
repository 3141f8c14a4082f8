//! `pool/ping` and the health check built on it.

use std::time::Instant;

use serde_json::{Value, json};

use bigskies_core::error::HandlerError;
use bigskies_core::health::HealthReport;

use super::DatastoreCoordinator;

impl DatastoreCoordinator {
    /// `SELECT 1` through the pool, bounded by `ping_timeout`.
    pub async fn ping(&self) -> Result<std::time::Duration, String> {
        let pool = self.pool();
        let timeout = self.settings().ping_timeout;
        let started = Instant::now();
        let attempt = async {
            let mut conn = pool.acquire().await?;
            sqlx::query("SELECT 1").execute(&mut *conn).await?;
            Ok::<_, sqlx::Error>(())
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(())) => Ok(started.elapsed()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }

    pub(super) async fn ping_reply(&self) -> Result<Value, HandlerError> {
        match self.ping().await {
            Ok(d) => Ok(json!({"success": true, "latency_ms": d.as_secs_f64() * 1000.0})),
            Err(e) => {
                tracing::warn!(coordinator = super::NAME, error = %e, "database ping failed");
                Err(HandlerError::unavailable("database is unreachable"))
            }
        }
    }

    /// The Go checker's rules: unhealthy when the ping fails, degraded near capacity.
    pub(super) async fn check(&self) -> HealthReport {
        // Read the pool's use before the ping borrows a connection of its own.
        let stats = self.stats();
        let report = match self.ping().await {
            Err(e) => HealthReport::unhealthy("database", format!("Database ping failed: {e}"))
                .with_detail("ping_error", e),
            Ok(_) if stats.near_capacity() => {
                HealthReport::degraded("database", "Database connection pool near capacity")
            }
            Ok(d) => HealthReport::healthy("database", "database answers")
                .with_detail("ping_ms", d.as_secs_f64() * 1000.0),
        };
        report
            .with_detail("pool_initialized", true)
            .with_detail("total_conns", stats.total)
            .with_detail("idle_conns", stats.idle)
            .with_detail("acquired_conns", stats.acquired)
            .with_detail("max_conns", stats.max)
    }
}
