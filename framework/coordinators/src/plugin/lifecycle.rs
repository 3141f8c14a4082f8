//! `plugin/start` and `plugin/stop`, and the state changes they make.

use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{info, warn};

use bigskies_core::error::HandlerError;

use super::runtime::RuntimeStatus;
use super::{PluginCoordinator, PluginRecord, db_error, guid};

/// A plugin by GUID (`guid`, alias `plugin_id` or `id`).
#[derive(Debug, Deserialize)]
pub struct PluginRef {
    #[serde(alias = "plugin_id", alias = "id")]
    pub guid: String,
}

impl PluginCoordinator {
    async fn set_desired(&self, rec: &PluginRecord, desired: &str) -> Result<(), HandlerError> {
        sqlx::query("UPDATE plugins SET desired = $2 WHERE guid = $1")
            .bind(rec.guid)
            .bind(desired)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Start in the runtime: `running`, or `failed` with the reason (also returned as error).
    pub(super) async fn start_plugin(
        &self,
        rec: &PluginRecord,
    ) -> Result<PluginRecord, HandlerError> {
        self.set_desired(rec, "running").await?;
        let spec = rec.spec()?;
        match self.runtime.start(&spec).await {
            Ok(handle) => {
                info!(plugin = %rec.guid, %handle, "plugin running");
                self.set_status(rec.guid, "running", Some(&handle), None)
                    .await
            }
            Err(e) => {
                warn!(plugin = %rec.guid, error = %e, "plugin failed to start");
                let msg = e.to_string();
                self.set_status(rec.guid, "failed", None, Some(&msg))
                    .await?;
                Err(HandlerError::unavailable(msg))
            }
        }
    }

    /// Stop in the runtime (if it runs there) and record `stopped`.
    pub(super) async fn stop_plugin(
        &self,
        rec: &PluginRecord,
    ) -> Result<PluginRecord, HandlerError> {
        self.set_desired(rec, "stopped").await?;
        if let Some(handle) = &rec.container_id
            && let Err(e) = self.runtime.stop(handle).await
        {
            warn!(plugin = %rec.guid, error = %e, "plugin did not stop cleanly");
            let msg = e.to_string();
            self.set_status(rec.guid, "failed", Some(handle), Some(&msg))
                .await?;
            return Err(HandlerError::unavailable(msg));
        }
        info!(plugin = %rec.guid, "plugin stopped");
        self.set_status(rec.guid, "stopped", None, None).await
    }

    async fn existing(&self, r: &PluginRef) -> Result<PluginRecord, HandlerError> {
        let id = guid(&r.guid)?;
        self.fetch(id)
            .await?
            .ok_or_else(|| HandlerError::not_found(format!("plugin {id} is not installed")))
    }

    pub(super) async fn start_request(&self, r: PluginRef) -> Result<Value, HandlerError> {
        let _one = self.ops.lock().await;
        let rec = self.existing(&r).await?;
        if rec.status == "updating" {
            return Err(HandlerError::conflict("plugin is being updated"));
        }
        if let (Some(h), "running") = (&rec.container_id, rec.status.as_str())
            && matches!(self.runtime.status(h).await, Ok(RuntimeStatus::Running))
        {
            return Ok(json!({"success": true, "plugin": rec.to_json()}));
        }
        let rec = self.start_plugin(&rec).await?;
        Ok(json!({"success": true, "plugin": rec.to_json()}))
    }

    pub(super) async fn stop_request(&self, r: PluginRef) -> Result<Value, HandlerError> {
        let _one = self.ops.lock().await;
        let rec = self.existing(&r).await?;
        let rec = self.stop_plugin(&rec).await?;
        Ok(json!({"success": true, "plugin": rec.to_json()}))
    }

    pub(super) async fn get(&self, r: PluginRef) -> Result<Value, HandlerError> {
        let rec = self.existing(&r).await?;
        Ok(json!({"success": true, "plugin": self.plugin_json(&rec)}))
    }
}
