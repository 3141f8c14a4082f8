//! `service/list`: every registration, optionally filtered by `status` or `name`.

use serde::Deserialize;
use serde_json::{Value, json};

use bigskies_core::error::HandlerError;

use super::{ApplicationCoordinator, Service, db_error};

#[derive(Debug, Default, Deserialize)]
pub struct ListServices {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

impl ApplicationCoordinator {
    pub(super) async fn list(&self, r: ListServices) -> Result<Value, HandlerError> {
        let rows: Vec<Service> = sqlx::query_as(concat!(
            "SELECT ",
            service_columns!(),
            " FROM service_registry
              WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR name = $2)
              ORDER BY name, id"
        ))
        .bind(r.status)
        .bind(r.name)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let services: Vec<Value> = rows.iter().map(Service::to_json).collect();
        Ok(json!({"success": true, "count": services.len(), "services": services}))
    }
}
