//! The registry sweep: silent services become unhealthy, long-silent ones are dropped.

use std::sync::Arc;

use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use bigskies_core::bus::Bus;
use bigskies_core::envelope::{Envelope, MessageType};
use bigskies_core::topics::Topics;

use super::{ApplicationCoordinator, NAME};

/// What one sweep changed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SweepOutcome {
    pub unhealthy: Vec<String>,
    pub dropped: Vec<String>,
}

impl ApplicationCoordinator {
    /// One sweep with the current settings.
    pub async fn sweep(&self) -> Result<SweepOutcome, sqlx::Error> {
        let s = self.settings();
        let unhealthy: Vec<(String,)> = sqlx::query_as(
            "UPDATE service_registry SET status = 'unhealthy'
              WHERE last_heartbeat < now() - make_interval(secs => $1) AND status <> 'unhealthy'
              RETURNING id",
        )
        .bind(s.service_timeout.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        let dropped: Vec<(String,)> = sqlx::query_as(
            "DELETE FROM service_registry WHERE last_heartbeat < now() - make_interval(secs => $1)
              RETURNING id",
        )
        .bind(s.service_drop_after.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        Ok(SweepOutcome {
            unhealthy: unhealthy.into_iter().map(|(id,)| id).collect(),
            dropped: dropped.into_iter().map(|(id,)| id).collect(),
        })
    }

    /// Sweep every `registry_check_interval` (re-read each time, so changes apply live) and
    /// announce what changed, until `shutdown`.
    pub async fn run(self: Arc<Self>, bus: Bus, topics: Topics, shutdown: CancellationToken) {
        loop {
            let every = self.settings().registry_check_interval;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.reconfigured.notified() => continue,
                _ = tokio::time::sleep(every) => {}
            }
            let outcome = match self.sweep().await {
                Ok(o) => o,
                Err(e) => {
                    warn!(coordinator = NAME, error = %e, "registry sweep failed");
                    continue;
                }
            };
            for (kind, ids) in [
                ("unhealthy", &outcome.unhealthy),
                ("dropped", &outcome.dropped),
            ] {
                for id in ids {
                    info!(coordinator = NAME, service = %id, kind, "service timed out");
                    let topic = topics.event(NAME, &format!("service/{kind}"));
                    let body = json!({"id": id, "status": kind,
                        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)});
                    let env =
                        Envelope::new(MessageType::Event, format!("coordinator:{NAME}"), body);
                    if let Err(e) = bus.publish(&topic, env.to_bytes(), false).await {
                        warn!(coordinator = NAME, error = %e, "service event not published");
                    }
                }
            }
        }
    }
}
