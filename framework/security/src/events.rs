//! Security events on the bus: revocations and grant changes, so every coordinator's
//! authenticator reacts at once instead of waiting for a cache to expire.
//!
//! Events travel on `<root>/coordinator/security/event/<kind>` as `{"event": "<jwt>"}`: each is
//! signed with the JWT key under its own audience, so nobody without the key can forge one
//! (which would let them revoke others' tokens) and an event can never pass as an access token.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use bigskies_core::bus::Bus;
use bigskies_core::topics::Topics;

use crate::error::{SecurityError, SecurityResult};
use crate::tokens::{TokenEngine, TokenError};

/// The audience of event tokens (never accepted for access).
pub const EVENT_AUDIENCE: &str = "bigskies-security-events";
/// Event kind segment: a credential was revoked.
pub const KIND_REVOKED: &str = "revoked";
/// Event kind segment: users or grants changed.
pub const KIND_CHANGED: &str = "changed";
/// How long a published event stays acceptable (replays after that are ignored).
const EVENT_LIFETIME_SECS: u64 = 300;

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SecurityEvent {
    /// A token (`jti`) or API key (`apikey:<id>`) was revoked; `expires_at` is Unix seconds.
    Revoked {
        credential_id: String,
        expires_at: i64,
    },
    /// One user's account, roles or groups changed.
    UserChanged { user_id: Uuid },
    /// Role or group grants changed: every cached user may be affected.
    GrantsChanged,
}

impl SecurityEvent {
    /// The topic segment this event is published under.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Revoked { .. } => KIND_REVOKED,
            Self::UserChanged { .. } | Self::GrantsChanged => KIND_CHANGED,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct EventClaims {
    event: SecurityEvent,
    iss: String,
    aud: String,
    sub: String,
    iat: u64,
    nbf: u64,
    exp: u64,
}

/// The filter covering every security event.
pub fn filter(topics: &Topics) -> String {
    topics.event("security", "+")
}

/// Sign `event` into the bus payload.
pub fn encode(
    tokens: &TokenEngine,
    issuer: &str,
    event: &SecurityEvent,
) -> SecurityResult<Vec<u8>> {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = EventClaims {
        event: event.clone(),
        iss: issuer.to_owned(),
        aud: EVENT_AUDIENCE.into(),
        sub: "security-event".into(),
        iat: now,
        nbf: now,
        exp: now + EVENT_LIFETIME_SECS,
    };
    let jwt = tokens.sign(&claims)?;
    serde_json::to_vec(&json!({"event": jwt, "published_at": Utc::now().to_rfc3339()}))
        .map_err(|e| SecurityError::Crypto(e.to_string()))
}

/// Verify and read a bus payload.
pub fn decode(tokens: &TokenEngine, payload: &[u8]) -> Result<SecurityEvent, TokenError> {
    let v: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|_| TokenError::Invalid("event is not JSON".into()))?;
    let jwt = v
        .get("event")
        .and_then(|e| e.as_str())
        .ok_or_else(|| TokenError::Invalid("event field missing".into()))?;
    let claims: EventClaims = tokens.decode(jwt, EVENT_AUDIENCE)?;
    Ok(claims.event)
}

/// Publish `event` so every authenticator hears it.
pub async fn publish(
    bus: &Bus,
    topics: &Topics,
    tokens: &TokenEngine,
    issuer: &str,
    event: &SecurityEvent,
) -> SecurityResult<()> {
    let payload = encode(tokens, issuer, event)?;
    bus.publish(&topics.event("security", event.kind()), payload, false)
        .await
        .map_err(|e| SecurityError::Config(format!("publishing security event: {e}")))
}
