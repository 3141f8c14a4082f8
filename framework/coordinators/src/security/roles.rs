//! `role/assign` (Go), `role/unassign`, `role/create`, `role/list`, and grants of permissions
//! to roles and groups (`role/grant|ungrant`, `group/grant|ungrant`).

use serde::Deserialize;
use serde_json::{Value, json};

use bigskies_core::error::HandlerError;
use bigskies_core::runtime::Context;
use bigskies_security::input;
use bigskies_security::rbac::Effect;

use super::{SecurityCoordinator, SecurityEvent, to_json};

/// Go: `{user_id, role_id}`; a role name is accepted as well.
#[derive(Debug, Deserialize)]
pub struct Assignment {
    pub user_id: String,
    #[serde(alias = "role")]
    pub role_id: String,
}

#[derive(Debug, Deserialize)]
pub struct CreateNamed {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// A permission for a role (`role`/`role_id`) or a group (`group`/`group_id`).
#[derive(Debug, Deserialize)]
pub struct GrantRequest {
    #[serde(default, alias = "role_id")]
    pub role: Option<String>,
    #[serde(default, alias = "group_id")]
    pub group: Option<String>,
    pub resource: String,
    pub action: String,
    /// `allow` (default) or `deny`.
    #[serde(default)]
    pub effect: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Target {
    Role,
    Group,
}

impl SecurityCoordinator {
    pub(super) async fn assign_role(
        &self,
        ctx: &Context,
        r: Assignment,
        add: bool,
    ) -> Result<Value, HandlerError> {
        let by = Self::caller(ctx)?.user_id;
        let user = input::uuid("user_id", &r.user_id)?;
        let changed = if add {
            self.engines
                .accounts
                .assign_role(user, &r.role_id, Some(by))
                .await?;
            true
        } else {
            self.engines
                .accounts
                .unassign_role(user, &r.role_id, Some(by))
                .await?
        };
        self.broadcast(ctx, SecurityEvent::UserChanged { user_id: user })
            .await;
        Ok(json!({"success": true, "changed": changed}))
    }

    pub(super) async fn create_role(
        &self,
        ctx: &Context,
        r: CreateNamed,
    ) -> Result<Value, HandlerError> {
        let by = Self::caller(ctx)?.user_id;
        let role = self
            .engines
            .accounts
            .create_role(&r.name, r.description.as_deref(), Some(by))
            .await?;
        Ok(json!({"success": true, "role": to_json(&role)?}))
    }

    pub(super) async fn list_roles(&self) -> Result<Value, HandlerError> {
        let roles = self.engines.accounts.list_roles().await?;
        Ok(json!({"success": true, "roles": to_json(&roles)?}))
    }

    pub(super) async fn grant(
        &self,
        ctx: &Context,
        r: GrantRequest,
        target: Target,
        add: bool,
    ) -> Result<Value, HandlerError> {
        let by = Self::caller(ctx)?.user_id;
        let effect = match r.effect.as_deref() {
            None => Effect::Allow,
            Some(e) => Effect::parse(e)
                .ok_or_else(|| HandlerError::invalid("effect must be allow or deny"))?,
        };
        let a = &self.engines.accounts;
        let changed = match (target, add) {
            (Target::Role, _) => {
                let role = r
                    .role
                    .as_deref()
                    .ok_or_else(|| HandlerError::invalid("role is required"))?;
                if add {
                    a.grant_role(role, &r.resource, &r.action, effect, Some(by))
                        .await?;
                    true
                } else {
                    a.ungrant_role(role, &r.resource, &r.action, effect, Some(by))
                        .await?
                }
            }
            (Target::Group, _) => {
                let group = r
                    .group
                    .as_deref()
                    .ok_or_else(|| HandlerError::invalid("group is required"))?;
                if add {
                    a.grant_group(group, &r.resource, &r.action, effect, Some(by))
                        .await?;
                    true
                } else {
                    a.ungrant_group(group, &r.resource, &r.action, effect, Some(by))
                        .await?
                }
            }
        };
        self.broadcast(ctx, SecurityEvent::GrantsChanged).await;
        Ok(json!({"success": true, "changed": changed}))
    }
}
