//! `plugin/update`: new files from a verified source, state `updating` meanwhile, the old
//! files restored when the new ones cannot be brought in.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{info, warn};

use bigskies_core::error::HandlerError;
use bigskies_core::runtime::Context;

use super::install::{Staged, remove_dir, stage};
use super::{PluginCoordinator, PluginRecord, db_error, guid, plugin_columns, ui};

#[derive(Debug, Deserialize)]
pub struct UpdatePlugin {
    #[serde(alias = "plugin_id", alias = "id")]
    pub guid: String,
    pub source: String,
    #[serde(default, alias = "checksum")]
    pub sha256: Option<String>,
}

impl PluginCoordinator {
    pub(super) async fn update(
        &self,
        ctx: &Context,
        r: UpdatePlugin,
    ) -> Result<Value, HandlerError> {
        let id = guid(&r.guid)?;
        let _one = self.ops.lock().await;
        let rec = self
            .fetch(id)
            .await?
            .ok_or_else(|| HandlerError::not_found(format!("plugin {id} is not installed")))?;
        let settings = self.settings();
        let staged = stage(&settings, &r.source, r.sha256.as_deref()).await?;
        if staged.manifest.guid().ok() != Some(id) {
            staged.discard().await;
            return Err(HandlerError::invalid(
                "the new manifest describes another plugin",
            ));
        }
        let was_running = rec.desired == "running";
        if rec.container_id.is_some()
            && let Err(e) = self.stop_plugin(&rec).await
        {
            staged.discard().await;
            return Err(e);
        }
        self.set_status(id, "updating", None, None).await?;
        let link = ui::Link::for_service(ctx, self.service_credential(), settings.rpc_timeout);
        match self.swap(&rec, &staged, &link, &r.source).await {
            Ok(updated) => {
                info!(plugin = %id, version = %updated.version, "plugin updated");
                let updated = if was_running {
                    self.start_plugin(&updated).await.unwrap_or(updated)
                } else {
                    updated
                };
                let updated = self.fetch(id).await?.unwrap_or(updated);
                Ok(json!({"success": true, "plugin": updated.to_json()}))
            }
            Err(e) => {
                staged.discard().await;
                self.set_status(id, "failed", None, Some(&e.message))
                    .await?;
                Err(e)
            }
        }
    }

    /// Replace files, UI elements and record; on failure put the old files and elements back.
    async fn swap(
        &self,
        rec: &PluginRecord,
        staged: &Staged,
        link: &ui::Link,
        source: &str,
    ) -> Result<PluginRecord, HandlerError> {
        let target = PathBuf::from(&rec.install_dir);
        let backup = target.with_file_name(format!(".old-{}", uuid::Uuid::new_v4().simple()));
        let (t, b) = (target.clone(), backup.clone());
        tokio::task::spawn_blocking(move || std::fs::rename(t, b))
            .await
            .map_err(|_| HandlerError::internal())?
            .map_err(|e| {
                warn!(error = %e, "old plugin files cannot be moved aside");
                HandlerError::unavailable("the plugin directory is not writable")
            })?;
        let restore = || async {
            let (t, b) = (target.clone(), backup.clone());
            let _ = tokio::task::spawn_blocking(move || {
                let _ = std::fs::remove_dir_all(&t);
                std::fs::rename(b, t)
            })
            .await;
        };
        if let Err(e) = super::install::place(staged, &target).await {
            restore().await;
            return Err(e);
        }
        let old_manifest = rec.manifest()?;
        let new_elements = link
            .unregister_elements(&rec.guid.to_string())
            .await
            .and(Ok(()));
        let registered = match new_elements {
            Ok(()) => link.register_elements(&staged.manifest).await,
            Err(e) => Err(e),
        };
        if let Err(why) = registered {
            restore().await;
            let _ = link.register_elements(&old_manifest).await;
            return Err(HandlerError::unavailable(format!(
                "UI elements could not be updated: {why}"
            )));
        }
        let manifest_json =
            serde_json::to_value(&staged.manifest).map_err(|_| HandlerError::internal())?;
        let updated = sqlx::query_as::<_, PluginRecord>(concat!(
            "UPDATE plugins SET name = $2, version = $3, source = $4, sha256 = $5, manifest = $6,
                    status = 'installed', container_id = NULL, last_error = NULL, updated_at = now()
              WHERE guid = $1 RETURNING ",
            plugin_columns!()
        ))
        .bind(rec.guid)
        .bind(&staged.manifest.name)
        .bind(&staged.manifest.version)
        .bind(source)
        .bind(&staged.digest)
        .bind(&manifest_json)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        remove_dir(backup).await;
        Ok(updated)
    }
}
