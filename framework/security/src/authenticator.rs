//! The [`Authenticator`] every coordinator is launched with.
//!
//! Tokens are verified locally (no round trip to the security coordinator); a user's roles and
//! grants come from a cache filled from PostgreSQL and emptied by security events. Revocations
//! are loaded from the database at start and after every reconnect, and applied from the bus as
//! they happen. Every refusal is written to the audit log.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use bigskies_core::auth::{
    AccessRecord, AuthError, Authenticator, CredentialKind, Principal, Rights,
};
use bigskies_core::bus::{Bus, BusError};
use bigskies_core::topics::Topics;

use crate::SecurityEngines;
use crate::apikeys::{self, PREFIX};
use crate::audit::{AuditEvent, Outcome, events as audit_events};
use crate::events::{self, SecurityEvent};
use crate::rbac;

/// How often expired revocations are dropped from memory.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Verifies tokens and API keys and checks permissions, for any coordinator.
#[derive(Clone, Debug)]
pub struct SecurityAuthenticator {
    engines: SecurityEngines,
}

impl SecurityAuthenticator {
    pub fn new(engines: SecurityEngines) -> Self {
        Self { engines }
    }

    pub fn engines(&self) -> &SecurityEngines {
        &self.engines
    }

    pub fn into_dyn(self) -> Arc<dyn Authenticator> {
        Arc::new(self)
    }

    /// Resolve a credential without auditing (used by `auth/validate` and the authenticator).
    pub async fn principal(&self, credential: &str) -> Result<Principal, AuthError> {
        let e = &self.engines;
        if credential.starts_with(PREFIX) {
            let key = e.api_keys.resolve(credential).await?;
            let grants = e
                .accounts
                .grants(key.user_id)
                .await
                .map_err(|err| AuthError::Unavailable(err.to_string()))?;
            if !grants.active {
                return Err(AuthError::Invalid("account is disabled".into()));
            }
            return Ok(Principal {
                user_id: key.user_id,
                username: grants.username.clone(),
                roles: grants.roles.clone(),
                credential_id: apikeys::credential_id(key.id),
                kind: CredentialKind::ApiKey,
                scopes: key.scopes,
            });
        }
        let claims = e.tokens.verify(credential)?;
        let grants = e
            .accounts
            .grants(claims.user_id)
            .await
            .map_err(|err| AuthError::Unavailable(err.to_string()))?;
        if !grants.active {
            return Err(AuthError::Invalid("account is disabled".into()));
        }
        if grants.token_predates_password_change(claims.issued_ms()) {
            // Other processes learn of the change from the `UserChanged` event, which empties
            // their cached grants (and with them the old `tokens_valid_after`).
            return Err(AuthError::Revoked);
        }
        Ok(Principal {
            user_id: claims.user_id,
            username: grants.username.clone(),
            roles: grants.roles.clone(),
            credential_id: claims.jti,
            kind: CredentialKind::Token,
            scopes: Vec::new(),
        })
    }

    /// Permission check without auditing: an API key's scopes must cover `resource:action`,
    /// and with [`Rights::Role`] the user's roles and groups must grant it. With
    /// [`Rights::Object`] the coordinator decides against the object after this.
    pub async fn permits(
        &self,
        principal: &Principal,
        resource: &str,
        action: &str,
        rights: Rights,
    ) -> Result<(), AuthError> {
        if principal.kind == CredentialKind::ApiKey
            && !rbac::scopes_allow(&principal.scopes, resource, action)
        {
            return Err(AuthError::OutOfScope {
                resource: resource.to_owned(),
                action: action.to_owned(),
            });
        }
        if rights == Rights::Object {
            return Ok(());
        }
        let grants = self
            .engines
            .accounts
            .grants(principal.user_id)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        if grants.decide(resource, action).is_allowed() {
            Ok(())
        } else {
            Err(AuthError::Forbidden {
                resource: resource.to_owned(),
                action: action.to_owned(),
            })
        }
    }

    /// Apply an event heard on the bus (or produced locally).
    pub fn apply(&self, event: &SecurityEvent) {
        let e = &self.engines;
        match event {
            SecurityEvent::Revoked {
                credential_id,
                expires_at,
            } => {
                e.tokens.note_revoked(credential_id, *expires_at);
                if let Some(id) = credential_id
                    .strip_prefix("apikey:")
                    .and_then(|s| uuid::Uuid::parse_str(s).ok())
                {
                    e.api_keys.forget(id);
                }
            }
            SecurityEvent::UserChanged { user_id } => e.accounts.invalidate(Some(*user_id)),
            SecurityEvent::GrantsChanged => e.accounts.invalidate(None),
        }
    }

    /// Subscribe to security events on `bus` and keep this authenticator current until
    /// `shutdown`. Revocations are reloaded from the database after every (re)connect, and
    /// caches emptied, because events may have been missed while disconnected.
    pub async fn listen(
        &self,
        bus: &Bus,
        topics: &Topics,
        shutdown: CancellationToken,
    ) -> Result<JoinHandle<()>, BusError> {
        let mut rx = bus.subscribe(&events::filter(topics), 256).await?;
        if let Err(e) = self.engines.tokens.load_revocations().await {
            tracing::warn!(error = %e, "revocations not loaded");
        }
        let me = self.clone();
        let mut link = bus.connection_watch();
        Ok(tokio::spawn(async move {
            let mut purge = tokio::time::interval(PURGE_EVERY);
            purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    msg = rx.recv() => {
                        let Some(msg) = msg else { break };
                        match events::decode(&me.engines.tokens, &msg.payload) {
                            Ok(ev) => me.apply(&ev),
                            Err(err) => tracing::warn!(topic = %msg.topic, error = %err, "unverifiable security event ignored"),
                        }
                    }
                    changed = link.changed() => {
                        if changed.is_err() { break }
                        if *link.borrow_and_update() {
                            me.engines.accounts.invalidate(None);
                            if let Err(e) = me.engines.tokens.load_revocations().await {
                                tracing::warn!(error = %e, "revocations not reloaded after reconnect");
                            }
                        }
                    }
                    _ = purge.tick() => {
                        let _ = me.engines.tokens.purge_expired(false).await;
                    }
                }
            }
        }))
    }
}

impl Authenticator for SecurityAuthenticator {
    fn authenticate<'a>(
        &'a self,
        credential: &'a str,
    ) -> BoxFuture<'a, Result<Principal, AuthError>> {
        Box::pin(async move {
            match self.principal(credential).await {
                Ok(p) => Ok(p),
                Err(err) => {
                    self.engines
                        .audit
                        .record(
                            AuditEvent::new(audit_events::AUTHENTICATE, Outcome::Denied)
                                .detail(json!({"reason": err.to_string(), "credential": if credential.starts_with(PREFIX) { "api_key" } else { "token" }})),
                        )
                        .await;
                    Err(err)
                }
            }
        })
    }

    fn authorize<'a>(
        &'a self,
        principal: &'a Principal,
        resource: &'a str,
        action: &'a str,
        rights: Rights,
    ) -> BoxFuture<'a, Result<(), AuthError>> {
        // Refusals are audited by the runtime ([`Authenticator::audit`]), with the operation.
        Box::pin(self.permits(principal, resource, action, rights))
    }

    fn audit(&self, r: AccessRecord) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let outcome = match (&r.refusal, r.allowed) {
                (_, false) => Outcome::Denied,
                (Some(_), true) => Outcome::Failure,
                (None, true) => Outcome::Success,
            };
            let (user_id, username) = match &r.principal {
                Some(p) => (Some(p.user_id), Some(p.username.as_str())),
                None => (None, None),
            };
            let mut detail = json!({
                "coordinator": r.coordinator,
                "operation": r.op,
                "decision": if r.allowed { "allowed" } else { "refused" },
            });
            if let Some(p) = &r.principal {
                detail["credential_kind"] = json!(p.kind);
                detail["credential_id"] = json!(p.credential_id);
            }
            if let Some((code, message)) = &r.refusal {
                detail["error_code"] = json!(code);
                detail["error"] = json!(message);
            }
            let mut event = AuditEvent::new(audit_events::OPERATION, outcome)
                .user(user_id, username)
                .detail(detail);
            if let Some(t) = r.target {
                event = event.target(t);
            }
            self.engines.audit.record(event).await;
        })
    }
}
