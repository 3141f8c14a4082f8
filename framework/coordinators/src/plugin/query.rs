//! `plugin/list`: installed plugins, optionally by state, and the directory plugins are
//! installed in.

use serde::Deserialize;
use serde_json::{Value, json};

use bigskies_core::error::HandlerError;

use super::{PluginCoordinator, PluginRecord, STATES, db_error, plugin_columns};

#[derive(Debug, Default, Deserialize)]
pub struct ListPlugins {
    #[serde(default)]
    pub status: Option<String>,
}

impl PluginCoordinator {
    pub(super) async fn list(&self, r: ListPlugins) -> Result<Value, HandlerError> {
        if let Some(s) = &r.status
            && !STATES.contains(&s.as_str())
        {
            return Err(HandlerError::invalid(format!(
                "status must be one of {}",
                STATES.join(", ")
            )));
        }
        let rows: Vec<PluginRecord> = sqlx::query_as(concat!(
            "SELECT ",
            plugin_columns!(),
            " FROM plugins WHERE ($1::text IS NULL OR status = $1) ORDER BY name, guid"
        ))
        .bind(&r.status)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let plugins: Vec<Value> = rows.iter().map(|r| self.plugin_json(r)).collect();
        Ok(json!({
            "success": true,
            "count": plugins.len(),
            "plugins": plugins,
            "plugin_dir": self.settings().plugin_dir,
        }))
    }
}
