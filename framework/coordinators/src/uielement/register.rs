//! `event/register` (Go) / `element/register`: add an element, or replace one the caller may
//! change ([`super::owner`]). A replaced element keeps its owner.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use bigskies_core::auth::Principal;
use bigskies_core::error::HandlerError;

use super::model::{self, check_text};
use super::owner::{self, Owner};
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
    pub(super) async fn register(
        &self,
        p: &Principal,
        r: RegisterElement,
    ) -> Result<Value, HandlerError> {
        check_text("id", &r.id, 255)?;
        check_text("title", &r.title, 255)?;
        if let Some(g) = &r.plugin_guid {
            check_text("plugin_guid", g, 255)?;
        }
        let kind = model::element_type(&r.element_type)?;
        let mappings = model::mappings(r.framework_mappings)?;
        // The mappings of a registration are its registrant's (or its plugin's).
        let registrant = Owner::for_registration(p, r.plugin_guid.as_deref())?;
        let mapping_owners = owner::mapping_owners(&registrant, mappings.keys());
        let mappings = serde_json::to_value(&mappings).map_err(|_| HandlerError::internal())?;
        let metadata = Value::Object(r.metadata.unwrap_or_default());
        let enabled = r.enabled.unwrap_or(true);

        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let e: UiElement = match Self::fetch_locked(&mut tx, &r.id).await? {
            None => sqlx::query_as(concat!(
                "INSERT INTO ui_elements (id, plugin_guid, element_type, title, api_endpoint, sort_order,
                                          enabled, metadata, framework_mappings, owner, owner_name,
                                          mapping_owners, registered_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                 ON CONFLICT (id) DO NOTHING
                 RETURNING ",
                element_columns!()
            ))
            .bind(&r.id)
            .bind(&r.plugin_guid)
            .bind(&kind)
            .bind(&r.title)
            .bind(&r.api_endpoint)
            .bind(r.order)
            .bind(enabled)
            .bind(&metadata)
            .bind(&mappings)
            .bind(&registrant.id)
            .bind(&registrant.name)
            .bind(&mapping_owners)
            .bind(p.user_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?
            // Another request created it after our look: its owner decides, so no overwrite.
            .ok_or_else(|| {
                HandlerError::conflict(format!(
                    "UI element {:?} was registered by another request at the same moment",
                    r.id
                ))
            })?,
            Some(existing) => {
                // Re-registering replaces every mapping of the element.
                owner::check_change(p, &existing, owner::frameworks(&existing).iter().map(String::as_str))?;
                // One plugin must not take over another's element, nor a plugin a user's.
                if existing.plugin_guid != r.plugin_guid {
                    return Err(HandlerError::conflict(match &existing.plugin_guid {
                        Some(g) => format!("UI element {:?} belongs to plugin {g}", r.id),
                        None => format!("UI element {:?} belongs to no plugin", r.id),
                    }));
                }
                sqlx::query_as(concat!(
                    "UPDATE ui_elements SET element_type = $2, title = $3, api_endpoint = $4,
                            sort_order = $5, enabled = $6, metadata = $7, framework_mappings = $8,
                            mapping_owners = $9, updated_at = now()
                      WHERE id = $1 RETURNING ",
                    element_columns!()
                ))
                .bind(&r.id)
                .bind(&kind)
                .bind(&r.title)
                .bind(&r.api_endpoint)
                .bind(r.order)
                .bind(enabled)
                .bind(&metadata)
                .bind(&mappings)
                .bind(&mapping_owners)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?
            }
        };
        tx.commit().await.map_err(db_error)?;
        Ok(json!({"success": true, "element": e.to_json()}))
    }
}
