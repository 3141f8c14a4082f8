//! `service/unregister`: remove a registration (`{id}`).

use serde::Deserialize;
use serde_json::{Value, json};

use bigskies_core::error::HandlerError;
use bigskies_core::runtime::Context;

use super::{ApplicationCoordinator, db_error};

#[derive(Debug, Deserialize)]
pub struct UnregisterService {
    #[serde(alias = "service_id")]
    pub id: String,
}

impl ApplicationCoordinator {
    pub(super) async fn unregister(
        &self,
        ctx: &Context,
        r: UnregisterService,
    ) -> Result<Value, HandlerError> {
        let who = Self::caller(ctx)?;
        let existing = self.fetch(&r.id).await?.ok_or_else(|| {
            HandlerError::not_found(format!("service {:?} is not registered", r.id))
        })?;
        if !Self::may_change(who, &existing) {
            return Err(HandlerError::forbidden(
                "service is registered by another principal",
            ));
        }
        sqlx::query("DELETE FROM service_registry WHERE id = $1")
            .bind(&r.id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(json!({"success": true, "id": r.id}))
    }
}
