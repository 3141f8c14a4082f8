//! `event/unregister` (Go) / `element/unregister`: by `id`, or every element of a plugin.

use serde::Deserialize;
use serde_json::{Value, json};

use bigskies_core::error::HandlerError;

use super::{UiElementCoordinator, db_error};

#[derive(Debug, Deserialize)]
pub struct UnregisterElement {
    #[serde(default, alias = "element_id")]
    pub id: Option<String>,
    #[serde(default, alias = "plugin_id")]
    pub plugin_guid: Option<String>,
}

impl UiElementCoordinator {
    pub(super) async fn unregister(&self, r: UnregisterElement) -> Result<Value, HandlerError> {
        let removed: Vec<(String,)> = match (r.id, r.plugin_guid) {
            (Some(id), None) => {
                sqlx::query_as("DELETE FROM ui_elements WHERE id = $1 RETURNING id")
                    .bind(&id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?
            }
            (None, Some(plugin)) => {
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
