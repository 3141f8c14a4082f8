//! `event/register` (Go) / `element/register`: add or replace an element.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use bigskies_core::error::HandlerError;

use super::model::{self, check_text};
use super::{UiElement, UiElementCoordinator, db_error, element_columns};

/// Go fields `{id, plugin_guid, type, title, api_endpoint, order, metadata}` plus
/// `framework_mappings`, which Go could not carry over MQTT.
#[derive(Debug, Deserialize)]
pub struct RegisterElement {
    #[serde(alias = "element_id")]
    pub id: String,
    #[serde(default, alias = "plugin_id")]
    pub plugin_guid: Option<String>,
    #[serde(rename = "type", alias = "element_type")]
    pub element_type: String,
    #[serde(alias = "name")]
    pub title: String,
    #[serde(default)]
    pub api_endpoint: String,
    #[serde(default)]
    pub order: i32,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub framework_mappings: Option<Map<String, Value>>,
}

impl UiElementCoordinator {
    pub(super) async fn register(&self, r: RegisterElement) -> Result<Value, HandlerError> {
        check_text("id", &r.id, 255)?;
        check_text("title", &r.title, 255)?;
        if let Some(p) = &r.plugin_guid {
            check_text("plugin_guid", p, 255)?;
        }
        let kind = model::element_type(&r.element_type)?;
        let mappings = model::mappings(r.framework_mappings)?;
        let mappings = serde_json::to_value(&mappings).map_err(|_| HandlerError::internal())?;
        if let Some(existing) = self.fetch(&r.id).await? {
            // One plugin must not take over another's element.
            if existing.plugin_guid.is_some() && existing.plugin_guid != r.plugin_guid {
                return Err(HandlerError::conflict(format!(
                    "element {:?} belongs to another plugin",
                    r.id
                )));
            }
        }
        let e: UiElement = sqlx::query_as(concat!(
            "INSERT INTO ui_elements (id, plugin_guid, element_type, title, api_endpoint, sort_order,
                                      enabled, metadata, framework_mappings)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (id) DO UPDATE SET plugin_guid = EXCLUDED.plugin_guid,
                 element_type = EXCLUDED.element_type, title = EXCLUDED.title,
                 api_endpoint = EXCLUDED.api_endpoint, sort_order = EXCLUDED.sort_order,
                 enabled = EXCLUDED.enabled, metadata = EXCLUDED.metadata,
                 framework_mappings = EXCLUDED.framework_mappings, updated_at = now()
             RETURNING ",
            element_columns!()
        ))
        .bind(&r.id)
        .bind(&r.plugin_guid)
        .bind(&kind)
        .bind(&r.title)
        .bind(&r.api_endpoint)
        .bind(r.order)
        .bind(r.enabled.unwrap_or(true))
        .bind(Value::Object(r.metadata.unwrap_or_default()))
        .bind(&mappings)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(json!({"success": true, "element": e.to_json()}))
    }
}
