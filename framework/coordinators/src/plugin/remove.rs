//! `plugin/remove` (Go `cmd/remove`): stop, unregister UI elements, delete files and record.

use std::path::PathBuf;

use serde_json::{Value, json};
use tracing::info;

use bigskies_core::error::HandlerError;
use bigskies_core::runtime::Context;

use super::install::remove_dir;
use super::lifecycle::PluginRef;
use super::{PluginCoordinator, db_error, guid, ui};

impl PluginCoordinator {
    pub(super) async fn remove(&self, ctx: &Context, r: PluginRef) -> Result<Value, HandlerError> {
        let id = guid(&r.guid)?;
        let _one = self.ops.lock().await;
        let rec = self
            .fetch(id)
            .await?
            .ok_or_else(|| HandlerError::not_found(format!("plugin {id} is not installed")))?;
        if rec.container_id.is_some() {
            self.stop_plugin(&rec).await?;
        }
        let link =
            ui::Link::for_service(ctx, self.service_credential(), self.settings().rpc_timeout);
        // Keep the plugin when its UI elements cannot be removed: a half-removed plugin would
        // leave menus pointing at nothing.
        let removed = link
            .unregister_elements(&rec.guid.to_string())
            .await
            .map_err(|why| {
                HandlerError::unavailable(format!(
                    "UI elements could not be removed (plugin kept): {why}"
                ))
            })?;
        remove_dir(PathBuf::from(&rec.install_dir)).await;
        sqlx::query("DELETE FROM plugins WHERE guid = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        info!(plugin = %id, "plugin removed");
        Ok(json!({"success": true, "guid": id, "removed_ui_elements": removed}))
    }
}
