//! `service/get` (alias `service/status`): one registration by `id`.

use serde::Deserialize;
use serde_json::{Value, json};

use bigskies_core::error::HandlerError;

use super::ApplicationCoordinator;

#[derive(Debug, Deserialize)]
pub struct GetService {
    #[serde(alias = "service_id")]
    pub id: String,
}

impl ApplicationCoordinator {
    pub(super) async fn get(&self, r: GetService) -> Result<Value, HandlerError> {
        let s = self.fetch(&r.id).await?.ok_or_else(|| {
            HandlerError::not_found(format!("service {:?} is not registered", r.id))
        })?;
        Ok(json!({"success": true, "service": s.to_json()}))
    }
}
