//! `service/heartbeat`: a service says it is alive (Go payload `{id, status}`).

use serde::Deserialize;
use serde_json::{Value, json};

use bigskies_core::error::HandlerError;
use bigskies_core::runtime::Context;

use super::{ApplicationCoordinator, STATUSES, Service, db_error};

#[derive(Debug, Deserialize)]
pub struct Heartbeat {
    #[serde(alias = "service_id")]
    pub id: String,
    /// `healthy` (default), `degraded`, `unhealthy` or `unknown`.
    #[serde(default)]
    pub status: Option<String>,
}

impl ApplicationCoordinator {
    pub(super) async fn heartbeat(
        &self,
        ctx: &Context,
        r: Heartbeat,
    ) -> Result<Value, HandlerError> {
        let who = Self::caller(ctx)?;
        let status = r
            .status
            .as_deref()
            .unwrap_or("healthy")
            .to_ascii_lowercase();
        if !STATUSES.contains(&status.as_str()) {
            return Err(HandlerError::invalid(format!(
                "status must be one of {}",
                STATUSES.join(", ")
            )));
        }
        let existing = self.fetch(&r.id).await?.ok_or_else(|| {
            HandlerError::not_found(format!("service {:?} is not registered", r.id))
        })?;
        if !Self::may_change(who, &existing) {
            return Err(HandlerError::forbidden(
                "service is registered by another principal",
            ));
        }
        let s: Service = sqlx::query_as(concat!(
            "UPDATE service_registry SET status = $2, last_heartbeat = now() WHERE id = $1
             RETURNING ",
            service_columns!(),
            ""
        ))
        .bind(&r.id)
        .bind(&status)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .ok_or_else(|| HandlerError::not_found(format!("service {:?} is not registered", r.id)))?;
        Ok(json!({"success": true, "service": s.to_json()}))
    }
}
