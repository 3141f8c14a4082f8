//! `mapping/add` and `mapping/remove`: one framework's widget mapping of an element, changed by
//! the owner of the element and of that mapping, or an administrator ([`super::owner`]). An
//! added mapping is its adder's.

use serde::Deserialize;
use serde_json::{Value, json};

use bigskies_core::auth::Principal;
use bigskies_core::error::HandlerError;

use super::model::{self, WidgetMapping};
use super::owner::{self, Owner};
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

fn not_found(id: &str) -> HandlerError {
    HandlerError::not_found(format!("UI element {id:?} not found"))
}

impl UiElementCoordinator {
    pub(super) async fn add_mapping(
        &self,
        p: &Principal,
        r: AddMapping,
    ) -> Result<Value, HandlerError> {
        let framework = model::framework(&r.framework)?;
        r.mapping.validate()?;
        let mapping = serde_json::to_value(&r.mapping).map_err(|_| HandlerError::internal())?;
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let existing = Self::fetch_locked(&mut tx, &r.element_id)
            .await?
            .ok_or_else(|| not_found(&r.element_id))?;
        owner::check_change(p, &existing, [framework.as_str()])?;
        let e: UiElement = sqlx::query_as(concat!(
            "UPDATE ui_elements SET framework_mappings = jsonb_set(framework_mappings, ARRAY[$2::text], $3),
                    mapping_owners = jsonb_set(mapping_owners, ARRAY[$2::text], $4),
                    updated_at = now()
              WHERE id = $1 RETURNING ",
            element_columns!()
        ))
        .bind(&r.element_id)
        .bind(&framework)
        .bind(&mapping)
        .bind(Owner::user(p).to_json())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(json!({"success": true, "element": e.to_json()}))
    }

    pub(super) async fn remove_mapping(
        &self,
        p: &Principal,
        r: RemoveMapping,
    ) -> Result<Value, HandlerError> {
        let framework = model::framework(&r.framework)?;
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let existing = Self::fetch_locked(&mut tx, &r.element_id)
            .await?
            .ok_or_else(|| not_found(&r.element_id))?;
        if existing.framework_mappings.get(&framework).is_none() {
            return Err(HandlerError::not_found(format!(
                "UI element {:?} has no {framework} mapping",
                r.element_id
            )));
        }
        owner::check_change(p, &existing, [framework.as_str()])?;
        let e: UiElement = sqlx::query_as(concat!(
            "UPDATE ui_elements SET framework_mappings = framework_mappings - $2::text,
                    mapping_owners = mapping_owners - $2::text, updated_at = now()
              WHERE id = $1 RETURNING ",
            element_columns!()
        ))
        .bind(&r.element_id)
        .bind(&framework)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(json!({"success": true, "element": e.to_json()}))
    }
}
