//! `user/create`, `user/update`, `user/delete`, `user/get`, `user/list`, `user/unlock`.

use serde::Deserialize;
use serde_json::{Value, json};

use bigskies_core::error::HandlerError;
use bigskies_core::runtime::Context;
use bigskies_security::SecurityError;
use bigskies_security::accounts::{UnlockVia, UserRef, UserUpdate};
use bigskies_security::input;

use super::{SecurityCoordinator, SecurityEvent, to_json};

#[derive(Debug, Deserialize)]
pub struct CreateUser {
    pub username: String,
    pub email: String,
    pub password: String,
}

/// Go sends the user object (`id`, `email`, `enabled`); absent fields are left alone here.
#[derive(Debug, Deserialize)]
pub struct UpdateUser {
    #[serde(alias = "user_id")]
    pub id: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub password: Option<String>,
    /// Needed to change one's own password without `user/write`.
    #[serde(default)]
    pub current_password: Option<String>,
    /// With a new `password`: revoke the user's API keys too. Tokens issued before a password
    /// change are always refused afterwards.
    #[serde(default)]
    pub revoke_api_keys: bool,
}

#[derive(Debug, Deserialize)]
pub struct DeleteUser {
    #[serde(alias = "id")]
    pub user_id: String,
}

#[derive(Debug, Deserialize)]
pub struct GetUser {
    /// Defaults to the caller.
    #[serde(default, alias = "id")]
    pub user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ListUsers {
    #[serde(default = "default_limit")]
    pub limit: i64,
    #[serde(default)]
    pub offset: i64,
}

/// `user/unlock`: exactly one of `username` and `user_id` (alias `id`).
#[derive(Debug, Deserialize)]
pub struct UnlockUser {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default, alias = "id")]
    pub user_id: Option<String>,
}

fn default_limit() -> i64 {
    100
}

impl SecurityCoordinator {
    pub(super) async fn create_user(
        &self,
        ctx: &Context,
        r: CreateUser,
    ) -> Result<Value, HandlerError> {
        let by = Self::caller(ctx)?.user_id;
        let user = self
            .engines
            .accounts
            .create_user(&r.username, &r.email, &r.password, Some(by))
            .await?;
        Ok(json!({"success": true, "user": to_json(&user)?}))
    }

    pub(super) async fn update_user(
        &self,
        ctx: &Context,
        r: UpdateUser,
    ) -> Result<Value, HandlerError> {
        let who = Self::caller(ctx)?;
        let id = input::uuid("id", &r.id)?;
        if r.revoke_api_keys && r.password.is_none() {
            return Err(HandlerError::invalid(
                "revoke_api_keys goes with a new password; revoke single keys with apikey/revoke",
            ));
        }
        let admin = self.holds(who, "user", "write").await;
        if id != who.user_id || r.enabled.is_some() {
            // Someone else's account, or enabling/disabling: administrators only.
            self.require(who, "user", "write").await?;
        } else if r.password.is_some() && !admin {
            let current = r.current_password.as_deref().unwrap_or_default();
            match self.engines.accounts.login(&who.username, current).await {
                Ok(_) => {}
                Err(SecurityError::AuthenticationFailed) => {
                    return Err(HandlerError::forbidden("current password is wrong"));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let update = UserUpdate {
            email: r.email,
            enabled: r.enabled,
            password: r.password,
        };
        let user = self
            .engines
            .accounts
            .update_user(id, update, Some(who.user_id))
            .await?;
        // Other authenticators drop their cached grants, and with them the old
        // `tokens_valid_after`: every token issued before a password change is refused.
        self.broadcast(ctx, SecurityEvent::UserChanged { user_id: id })
            .await;
        let mut reply = json!({"success": true, "user": to_json(&user)?});
        if r.revoke_api_keys {
            let revoked = self
                .engines
                .api_keys
                .revoke_all_of(id, Some(who.user_id))
                .await?;
            for key in &revoked {
                self.broadcast_key_revoked(ctx, key.id, key.expires_at)
                    .await;
            }
            reply["revoked_api_keys"] = json!(revoked.len());
        }
        Ok(reply)
    }

    pub(super) async fn delete_user(
        &self,
        ctx: &Context,
        r: DeleteUser,
    ) -> Result<Value, HandlerError> {
        let who = Self::caller(ctx)?;
        let id = input::uuid("user_id", &r.user_id)?;
        if id == who.user_id {
            return Err(HandlerError::invalid("you cannot delete your own account"));
        }
        self.engines
            .accounts
            .delete_user(id, Some(who.user_id))
            .await?;
        self.broadcast(ctx, SecurityEvent::UserChanged { user_id: id })
            .await;
        Ok(json!({"success": true}))
    }

    pub(super) async fn get_user(&self, ctx: &Context, r: GetUser) -> Result<Value, HandlerError> {
        let who = Self::caller(ctx)?;
        let id = match r.user_id.as_deref() {
            Some(s) => input::uuid("user_id", s)?,
            None => who.user_id,
        };
        if id != who.user_id {
            self.require(who, "user", "read").await?;
        }
        let user = self.engines.accounts.get_user(id).await?;
        let grants = self.engines.accounts.grants(id).await?;
        Ok(json!({"success": true, "user": to_json(&user)?, "roles": grants.roles}))
    }

    pub(super) async fn list_users(&self, r: ListUsers) -> Result<Value, HandlerError> {
        let users = self.engines.accounts.list_users(r.limit, r.offset).await?;
        Ok(json!({"success": true, "count": users.len(), "users": to_json(&users)?}))
    }

    /// Lift a user's login lock (the runtime has checked RBAC `user:write`, and API-key scopes).
    pub(super) async fn unlock_user(
        &self,
        ctx: &Context,
        r: UnlockUser,
    ) -> Result<Value, HandlerError> {
        let by = Self::caller(ctx)?.user_id;
        let id;
        let user = match (r.username.as_deref(), r.user_id.as_deref()) {
            (Some(name), None) => UserRef::Name(name),
            (None, Some(s)) => {
                id = input::uuid("user_id", s)?;
                UserRef::Id(id)
            }
            _ => {
                return Err(HandlerError::invalid(
                    "give exactly one of username and user_id",
                ));
            }
        };
        let done = self
            .engines
            .accounts
            .unlock(user, Some(by), UnlockVia::Operation)
            .await?;
        let mut reply = to_json(&done)?;
        reply["success"] = Value::Bool(true);
        Ok(reply)
    }
}
