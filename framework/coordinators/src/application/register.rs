//! `service/register`: add or refresh a registration (Go payload `{id, name, endpoint, metadata}`).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use bigskies_core::error::HandlerError;
use bigskies_core::runtime::Context;

use super::{ApplicationCoordinator, Service, check_text, db_error};

#[derive(Debug, Deserialize)]
pub struct RegisterService {
    #[serde(alias = "service_id")]
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

impl ApplicationCoordinator {
    pub(super) async fn register(
        &self,
        ctx: &Context,
        r: RegisterService,
    ) -> Result<Value, HandlerError> {
        let who = Self::caller(ctx)?;
        check_text("id", &r.id, 255)?;
        check_text("name", &r.name, 255)?;
        if r.endpoint.len() > 2048 {
            return Err(HandlerError::invalid("endpoint is too long"));
        }
        if let Some(existing) = self.fetch(&r.id).await?
            && !Self::may_change(who, &existing)
        {
            return Err(HandlerError::forbidden(
                "service id is registered by another principal",
            ));
        }
        let metadata = Value::Object(r.metadata.unwrap_or_default());
        let s: Service = sqlx::query_as(concat!(
            "INSERT INTO service_registry (id, name, endpoint, status, metadata, registered_by)
             VALUES ($1, $2, $3, 'healthy', $4, $5)
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, endpoint = EXCLUDED.endpoint,
                 metadata = EXCLUDED.metadata, status = 'healthy', last_heartbeat = now()
             RETURNING ",
            service_columns!(),
            ""
        ))
        .bind(&r.id)
        .bind(&r.name)
        .bind(&r.endpoint)
        .bind(&metadata)
        .bind(who.user_id)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(json!({"success": true, "service": s.to_json()}))
    }
}
