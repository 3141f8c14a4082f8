//! `element/get` and `element/query` (by framework, plugin and/or type).

use serde::Deserialize;
use serde_json::{Value, json};

use bigskies_core::error::HandlerError;

use super::model;
use super::{UiElement, UiElementCoordinator, db_error, element_columns};

#[derive(Debug, Deserialize)]
pub struct GetElement {
    #[serde(alias = "element_id")]
    pub id: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct QueryElements {
    /// Only elements mapped for this framework.
    #[serde(default)]
    pub framework: Option<String>,
    #[serde(default, alias = "plugin_id")]
    pub plugin_guid: Option<String>,
    #[serde(default, rename = "type", alias = "element_type")]
    pub element_type: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

impl UiElementCoordinator {
    pub(super) async fn get(&self, r: GetElement) -> Result<Value, HandlerError> {
        let e = self
            .fetch(&r.id)
            .await?
            .ok_or_else(|| HandlerError::not_found(format!("UI element {:?} not found", r.id)))?;
        Ok(json!({"success": true, "element": e.to_json()}))
    }

    pub(super) async fn query(&self, r: QueryElements) -> Result<Value, HandlerError> {
        let framework = r.framework.as_deref().map(model::framework).transpose()?;
        let kind = r
            .element_type
            .as_deref()
            .map(model::element_type)
            .transpose()?;
        let rows: Vec<UiElement> = sqlx::query_as(concat!(
            "SELECT ",
            element_columns!(),
            " FROM ui_elements
              WHERE ($1::text IS NULL OR framework_mappings ? $1)
                AND ($2::text IS NULL OR plugin_guid = $2)
                AND ($3::text IS NULL OR element_type = $3)
                AND ($4::bool IS NULL OR enabled = $4)
              ORDER BY sort_order, id"
        ))
        .bind(&framework)
        .bind(&r.plugin_guid)
        .bind(&kind)
        .bind(r.enabled)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let elements: Vec<Value> = rows
            .iter()
            .map(|e| {
                let mut v = e.to_json();
                // For a framework query, hand the caller its own mapping directly.
                if let (Some(f), Value::Object(m)) = (&framework, &mut v) {
                    let mapping = e.framework_mappings.get(f).cloned().unwrap_or(Value::Null);
                    m.insert("mapping".into(), mapping);
                }
                v
            })
            .collect();
        Ok(json!({"success": true, "count": elements.len(), "elements": elements}))
    }
}
