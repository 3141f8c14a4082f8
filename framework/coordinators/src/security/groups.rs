//! `group/create`, `group/list`, `group/add`, `group/remove`.

use serde::Deserialize;
use serde_json::{Value, json};

use bigskies_core::error::HandlerError;
use bigskies_core::runtime::Context;
use bigskies_security::input;

use super::roles::CreateNamed;
use super::{SecurityCoordinator, SecurityEvent, to_json};

/// A user joining or leaving a group (`group` or `group_id`: a UUID or a name).
#[derive(Debug, Deserialize)]
pub struct Membership {
    pub user_id: String,
    #[serde(alias = "group_id")]
    pub group: String,
}

impl SecurityCoordinator {
    pub(super) async fn create_group(
        &self,
        ctx: &Context,
        r: CreateNamed,
    ) -> Result<Value, HandlerError> {
        let by = Self::caller(ctx)?.user_id;
        let group = self
            .engines
            .accounts
            .create_group(&r.name, r.description.as_deref(), Some(by))
            .await?;
        Ok(json!({"success": true, "group": to_json(&group)?}))
    }

    pub(super) async fn list_groups(&self) -> Result<Value, HandlerError> {
        let groups = self.engines.accounts.list_groups().await?;
        Ok(json!({"success": true, "groups": to_json(&groups)?}))
    }

    pub(super) async fn membership(
        &self,
        ctx: &Context,
        r: Membership,
        add: bool,
    ) -> Result<Value, HandlerError> {
        let by = Self::caller(ctx)?.user_id;
        let user = input::uuid("user_id", &r.user_id)?;
        let changed = if add {
            self.engines
                .accounts
                .add_to_group(user, &r.group, Some(by))
                .await?;
            true
        } else {
            self.engines
                .accounts
                .remove_from_group(user, &r.group, Some(by))
                .await?
        };
        self.broadcast(ctx, SecurityEvent::UserChanged { user_id: user })
            .await;
        Ok(json!({"success": true, "changed": changed}))
    }
}
