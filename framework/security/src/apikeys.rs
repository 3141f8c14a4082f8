//! API keys: random, shown once, stored only as a SHA-256 hash, with expiry, scopes and
//! revocation. A key is `bsk_` followed by 43 URL-safe base64 characters (32 random bytes).
//!
//! Resolution is cached briefly by hash; revocation goes through the same revoked-credential
//! set as tokens (`apikey:<id>`), so a revoked key stops working at once everywhere.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use bigskies_core::auth::AuthError;

use crate::accounts::go_time;
use crate::audit::{AuditEvent, AuditLog, Outcome, events};
use crate::error::{SecurityError, SecurityResult};
use crate::input;
use crate::settings::SettingsHandle;
use crate::tokens::TokenEngine;

/// Every API key starts with this.
pub const PREFIX: &str = "bsk_";

/// The credential id a revocation of key `id` names.
pub fn credential_id(id: Uuid) -> String {
    format!("apikey:{id}")
}

/// Hex SHA-256 of a key: what is stored and looked up.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// An API key's record (never the key itself).
#[derive(Clone, Debug, PartialEq, Serialize, sqlx::FromRow)]
pub struct ApiKey {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// The first characters of the key, to recognise it in listings.
    pub key_prefix: String,
    pub scopes: Vec<String>,
    #[serde(with = "go_time")]
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new key: the secret is returned exactly once.
#[derive(Clone)]
pub struct CreatedKey {
    pub key: String,
    pub record: ApiKey,
}

impl std::fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKey")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

/// What a presented key resolves to.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedKey {
    pub id: Uuid,
    pub user_id: Uuid,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// `id, user_id, scopes, expires_at, revoked_at` of a key.
type KeyRow = (
    Uuid,
    Uuid,
    Vec<String>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

const COLUMNS: &str =
    "id, user_id, name, key_prefix, scopes, created_at, expires_at, last_used_at, revoked_at";

/// API key management and resolution. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ApiKeyEngine {
    pool: PgPool,
    settings: SettingsHandle,
    tokens: TokenEngine,
    audit: AuditLog,
    cache: Arc<RwLock<HashMap<String, (Instant, ResolvedKey)>>>,
}

impl ApiKeyEngine {
    pub fn new(
        pool: PgPool,
        settings: SettingsHandle,
        tokens: TokenEngine,
        audit: AuditLog,
    ) -> Self {
        Self {
            pool,
            settings,
            tokens,
            audit,
            cache: Arc::default(),
        }
    }

    /// Create a key for `user` with `scopes`, valid for `lifetime` (capped by configuration).
    pub async fn create(
        &self,
        user: Uuid,
        name: &str,
        scopes: &[String],
        lifetime: Option<Duration>,
    ) -> SecurityResult<CreatedKey> {
        let name = input::text("name", name)?;
        if name.is_empty() || name.len() > 255 {
            return Err(SecurityError::invalid("name must be 1-255 bytes"));
        }
        if scopes.is_empty() || scopes.len() > 64 {
            return Err(SecurityError::invalid(
                "give 1-64 scopes ('*' for everything the owner may do)",
            ));
        }
        for s in scopes {
            input::scope(s)?;
        }
        let max = self.settings.get().api_key_max_lifetime;
        let lifetime = lifetime.unwrap_or(max);
        if lifetime.is_zero() || lifetime > max {
            return Err(SecurityError::invalid(format!(
                "lifetime must be between 1 s and {} s",
                max.as_secs()
            )));
        }
        let expires_at = Utc::now()
            + chrono::Duration::from_std(lifetime)
                .map_err(|_| SecurityError::invalid("lifetime too long"))?;
        let key = format!(
            "{PREFIX}{}",
            URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
        );
        let record: ApiKey = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO api_keys (user_id, name, key_prefix, key_hash, scopes, expires_at) VALUES ($1, $2, $3, $4, $5, $6)
             RETURNING {COLUMNS}"
        )))
        .bind(user)
        .bind(name)
        .bind(&key[..12])
        .bind(hash_key(&key))
        .bind(scopes)
        .bind(expires_at)
        .fetch_one(&self.pool)
        .await?;
        self.audit
            .record(
                AuditEvent::new(events::API_KEY_CREATE, Outcome::Success)
                    .user(Some(user), None)
                    .target(record.id.to_string())
                    .detail(json!({"scopes": scopes})),
            )
            .await;
        Ok(CreatedKey { key, record })
    }

    /// Keys of `user`, or of everyone when `None`.
    pub async fn list(&self, user: Option<Uuid>) -> SecurityResult<Vec<ApiKey>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_keys WHERE ($1::uuid IS NULL OR user_id = $1) ORDER BY created_at"
        )))
        .bind(user)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn get(&self, id: Uuid) -> SecurityResult<ApiKey> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_keys WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| SecurityError::NotFound("API key".into()))
    }

    /// Revoke key `id`; returns its record. The caller broadcasts the revocation.
    pub async fn revoke(&self, id: Uuid, by: Option<Uuid>) -> SecurityResult<ApiKey> {
        let record: ApiKey = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 RETURNING {COLUMNS}"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| SecurityError::NotFound("API key".into()))?;
        let until = record
            .expires_at
            .unwrap_or_else(|| Utc::now() + chrono::Duration::days(3650));
        self.tokens
            .revoke(
                &credential_id(id),
                Some(record.user_id),
                until,
                "api key revoked",
            )
            .await?;
        self.forget(id);
        self.audit
            .record(
                AuditEvent::new(events::API_KEY_REVOKE, Outcome::Success)
                    .user(by, None)
                    .target(id.to_string()),
            )
            .await;
        Ok(record)
    }

    /// Revoke every unrevoked key of `user` (after a password change, when asked); returns their
    /// records. The caller broadcasts the revocations.
    pub async fn revoke_all_of(&self, user: Uuid, by: Option<Uuid>) -> SecurityResult<Vec<ApiKey>> {
        let mut done = Vec::new();
        for key in self.list(Some(user)).await? {
            if key.revoked_at.is_none() {
                done.push(self.revoke(key.id, by).await?);
            }
        }
        Ok(done)
    }

    /// Drop cached resolutions of key `id`.
    pub fn forget(&self, id: Uuid) {
        if let Ok(mut c) = self.cache.write() {
            c.retain(|_, (_, k)| k.id != id);
        }
    }

    /// Resolve a presented key.
    pub async fn resolve(&self, key: &str) -> Result<ResolvedKey, AuthError> {
        if !key.starts_with(PREFIX) || key.len() > 128 {
            return Err(AuthError::Invalid("not an API key".into()));
        }
        let hash = hash_key(key);
        let ttl = self.settings.get().api_key_cache_ttl;
        let cached = self.cache.read().ok().and_then(|c| {
            c.get(&hash)
                .filter(|(at, _)| at.elapsed() < ttl)
                .map(|(_, k)| k.clone())
        });
        let resolved = match cached {
            Some(k) => k,
            None => {
                let row: Option<KeyRow> = sqlx::query_as(
                    "UPDATE api_keys SET last_used_at = now() WHERE key_hash = $1
                     RETURNING id, user_id, scopes, expires_at, revoked_at",
                )
                .bind(&hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| AuthError::Unavailable(format!("API key lookup: {e}")))?;
                let Some((id, user_id, scopes, expires_at, revoked_at)) = row else {
                    return Err(AuthError::Invalid("unknown API key".into()));
                };
                if revoked_at.is_some() {
                    return Err(AuthError::Revoked);
                }
                let k = ResolvedKey {
                    id,
                    user_id,
                    scopes,
                    expires_at,
                };
                if let Ok(mut c) = self.cache.write() {
                    c.insert(hash, (Instant::now(), k.clone()));
                }
                k
            }
        };
        if self.tokens.is_revoked(&credential_id(resolved.id)) {
            return Err(AuthError::Revoked);
        }
        if resolved.expires_at.is_some_and(|t| t <= Utc::now()) {
            return Err(AuthError::Expired);
        }
        Ok(resolved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_hex_sha256() {
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            credential_id(Uuid::nil()),
            "apikey:00000000-0000-0000-0000-000000000000"
        );
    }
}
