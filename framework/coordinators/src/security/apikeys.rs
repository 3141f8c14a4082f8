//! `apikey/create`, `apikey/list`, `apikey/revoke`.
//!
//! The key is in the create reply only, and that reply goes only to a private reply topic (MQTT 5
//! response topic or `reply_to`): a create without one is refused, never answered on the shared
//! response topic.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use bigskies_core::auth::CredentialKind;
use bigskies_core::error::HandlerError;
use bigskies_core::runtime::Context;
use bigskies_security::{apikeys, input};

use super::{SecurityCoordinator, SecurityEvent, to_json};

#[derive(Debug, Deserialize)]
pub struct CreateKey {
    pub name: String,
    /// `*`, `resource:*` or `resource:action`; the key can never do more than its owner.
    pub scopes: Vec<String>,
    /// Lifetime in seconds (default and maximum from configuration).
    #[serde(default)]
    pub expires_in: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct ListKeys {
    /// Every user's keys (needs `security/read`).
    #[serde(default)]
    pub all: bool,
}

#[derive(Debug, Deserialize)]
pub struct RevokeKey {
    #[serde(alias = "key_id")]
    pub id: String,
}

impl SecurityCoordinator {
    pub(super) async fn create_key(
        &self,
        ctx: &Context,
        r: CreateKey,
    ) -> Result<Value, HandlerError> {
        let who = Self::caller(ctx)?;
        if who.kind == CredentialKind::ApiKey {
            // A leaked key must not be able to mint more keys.
            return Err(HandlerError::forbidden(
                "API keys cannot create API keys; log in",
            ));
        }
        if !ctx.private_reply {
            return Err(super::auth::secret_needs_private_reply(
                "apikey/create",
                "the new key",
            ));
        }
        let created = self
            .engines
            .api_keys
            .create(
                who.user_id,
                &r.name,
                &r.scopes,
                r.expires_in.map(Duration::from_secs),
            )
            .await?;
        Ok(json!({"success": true, "api_key": created.key, "key": to_json(&created.record)?}))
    }

    pub(super) async fn list_keys(
        &self,
        ctx: &Context,
        r: ListKeys,
    ) -> Result<Value, HandlerError> {
        let who = Self::caller(ctx)?;
        let owner = if r.all {
            self.require(who, "security", "read").await?;
            None
        } else {
            Some(who.user_id)
        };
        let keys = self.engines.api_keys.list(owner).await?;
        Ok(json!({"success": true, "keys": to_json(&keys)?}))
    }

    pub(super) async fn revoke_key(
        &self,
        ctx: &Context,
        r: RevokeKey,
    ) -> Result<Value, HandlerError> {
        let who = Self::caller(ctx)?;
        let id = input::uuid("id", &r.id)?;
        let key = self.engines.api_keys.get(id).await?;
        if key.user_id != who.user_id {
            self.require(who, "security", "write").await?;
        }
        let record = self.engines.api_keys.revoke(id, Some(who.user_id)).await?;
        self.broadcast_key_revoked(ctx, id, record.expires_at).await;
        Ok(json!({"success": true, "key": to_json(&record)?}))
    }

    /// Tell every authenticator that key `id` is revoked (kept until it would have expired).
    pub(super) async fn broadcast_key_revoked(
        &self,
        ctx: &Context,
        id: uuid::Uuid,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) {
        let until = expires_at.map_or(i64::MAX / 2, |t| t.timestamp());
        self.broadcast(
            ctx,
            SecurityEvent::Revoked {
                credential_id: apikeys::credential_id(id),
                expires_at: until,
            },
        )
        .await;
    }
}
