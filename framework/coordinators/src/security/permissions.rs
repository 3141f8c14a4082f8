//! `permission/check` (Go) and `permission/list`.

use serde::Deserialize;
use serde_json::{Value, json};

use bigskies_core::error::HandlerError;
use bigskies_core::runtime::Context;
use bigskies_security::input;

use super::{SecurityCoordinator, to_json};

/// Go: `{user_id, resource, action}`; `user_id` defaults to the caller, and checking someone
/// else needs `security/read`.
#[derive(Debug, Deserialize)]
pub struct PermissionCheck {
    #[serde(default)]
    pub user_id: Option<String>,
    pub resource: String,
    pub action: String,
}

impl SecurityCoordinator {
    /// Go shape: `{"allowed": bool, "reason"?}`. Unlike Go, a malformed `user_id` is an error
    /// reply, not a silent "denied".
    pub(super) async fn check_permission(
        &self,
        ctx: &Context,
        r: PermissionCheck,
    ) -> Result<Value, HandlerError> {
        let who = Self::caller(ctx)?;
        let user = match r.user_id.as_deref() {
            Some(s) => input::uuid("user_id", s)?,
            None => who.user_id,
        };
        if user != who.user_id {
            self.require(who, "security", "read").await?;
        }
        input::name("resource", &r.resource)?;
        input::name("action", &r.action)?;
        let decision = self
            .engines
            .accounts
            .check(user, &r.resource, &r.action)
            .await?;
        let mut reply = json!({"allowed": decision.is_allowed()});
        if let Some(reason) = decision.reason() {
            reply["reason"] = json!(reason);
        }
        Ok(reply)
    }

    pub(super) async fn list_permissions(&self) -> Result<Value, HandlerError> {
        let p = self.engines.accounts.list_permissions().await?;
        Ok(json!({"success": true, "permissions": to_json(&p)?}))
    }
}
