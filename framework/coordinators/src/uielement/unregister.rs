//! `event/unregister` (Go) / `element/unregister`: by `id` (its owner or an administrator, see
//! [`super::owner`]), or every element of a plugin (administrators: the plugin coordinator).

use serde::Deserialize;
use serde_json::{Value, json};

use bigskies_core::auth::Principal;
use bigskies_core::error::HandlerError;

use super::{UiElementCoordinator, db_error, owner};

#[derive(Debug, Deserialize)]
pub struct UnregisterElement {
    #[serde(default, alias = "element_id")]
    pub id: Option<String>,
    #[serde(default, alias = "plugin_id")]
    pub plugin_guid: Option<String>,
}

impl UiElementCoordinator {
    pub(super) async fn unregister(
        &self,
        p: &Principal,
        r: UnregisterElement,
    ) -> Result<Value, HandlerError> {
        let removed: Vec<(String,)> = match (r.id, r.plugin_guid) {
            (Some(id), None) => {
                let mut tx = self.pool.begin().await.map_err(db_error)?;
                let Some(e) = Self::fetch_locked(&mut tx, &id).await? else {
                    return Ok(json!({"success": true, "removed": []}));
                };
                // Removing the element removes all of its mappings.
                owner::check_change(p, &e, owner::frameworks(&e).iter().map(String::as_str))?;
                let removed = sqlx::query_as("DELETE FROM ui_elements WHERE id = $1 RETURNING id")
                    .bind(&id)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db_error)?;
                tx.commit().await.map_err(db_error)?;
                removed
            }
            (None, Some(plugin)) => {
                if !p.is_admin() {
                    return Err(HandlerError::forbidden(
                        "only an administrator (the plugin coordinator) unregisters a plugin's elements",
                    ));
                }
                sqlx::query_as("DELETE FROM ui_elements WHERE plugin_guid = $1 RETURNING id")
                    .bind(&plugin)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?
            }
            _ => {
                return Err(HandlerError::invalid(
                    "give exactly one of id (element_id) or plugin_guid (plugin_id)",
                ));
            }
        };
        let ids: Vec<String> = removed.into_iter().map(|(id,)| id).collect();
        Ok(json!({"success": true, "removed": ids}))
    }
}
