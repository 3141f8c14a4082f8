//! `mapping/add` and `mapping/remove`: one framework's widget mapping of an element.

use serde::Deserialize;
use serde_json::{Value, json};

use bigskies_core::error::HandlerError;

use super::model::{self, WidgetMapping};
use super::{UiElement, UiElementCoordinator, db_error, element_columns};

#[derive(Debug, Deserialize)]
pub struct AddMapping {
    #[serde(alias = "id")]
    pub element_id: String,
    pub framework: String,
    pub mapping: WidgetMapping,
}

#[derive(Debug, Deserialize)]
pub struct RemoveMapping {
    #[serde(alias = "id")]
    pub element_id: String,
    pub framework: String,
}

impl UiElementCoordinator {
    pub(super) async fn add_mapping(&self, r: AddMapping) -> Result<Value, HandlerError> {
        let framework = model::framework(&r.framework)?;
        r.mapping.validate()?;
        let mapping = serde_json::to_value(&r.mapping).map_err(|_| HandlerError::internal())?;
        let e: UiElement = sqlx::query_as(concat!(
            "UPDATE ui_elements SET framework_mappings = jsonb_set(framework_mappings, ARRAY[$2::text], $3),
                    updated_at = now()
              WHERE id = $1 RETURNING ",
            element_columns!()
        ))
        .bind(&r.element_id)
        .bind(&framework)
        .bind(&mapping)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .ok_or_else(|| HandlerError::not_found(format!("UI element {:?} not found", r.element_id)))?;
        Ok(json!({"success": true, "element": e.to_json()}))
    }

    pub(super) async fn remove_mapping(&self, r: RemoveMapping) -> Result<Value, HandlerError> {
        let framework = model::framework(&r.framework)?;
        let existing = self.fetch(&r.element_id).await?.ok_or_else(|| {
            HandlerError::not_found(format!("UI element {:?} not found", r.element_id))
        })?;
        if existing.framework_mappings.get(&framework).is_none() {
            return Err(HandlerError::not_found(format!(
                "UI element {:?} has no {framework} mapping",
                r.element_id
            )));
        }
        let e: UiElement = sqlx::query_as(concat!(
            "UPDATE ui_elements SET framework_mappings = framework_mappings - $2::text, updated_at = now()
              WHERE id = $1 RETURNING ",
            element_columns!()
        ))
        .bind(&r.element_id)
        .bind(&framework)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(json!({"success": true, "element": e.to_json()}))
    }
}
