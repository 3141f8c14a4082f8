//! `auth/login`, `auth/logout`, `auth/validate`, `auth/refresh`.

use serde::Deserialize;
use serde_json::{Value, json};

use bigskies_core::auth::{AuthError, CredentialKind};
use bigskies_core::error::HandlerError;
use bigskies_core::runtime::Context;
use bigskies_security::SecurityError;
use bigskies_security::accounts::User;
use bigskies_security::audit::{AuditEvent, Outcome, events};
use bigskies_security::tokens::{IssuedToken, Subject, TokenError};

use super::{SecurityCoordinator, SecurityEvent, to_json};

/// `auth/login`: missing fields count as empty, which fails like any wrong password.
#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
}

/// `auth/logout` and `auth/validate`.
#[derive(Debug, Deserialize)]
pub struct TokenRequest {
    #[serde(default)]
    pub token: String,
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl SecurityCoordinator {
    async fn issue_for(&self, user: &User) -> Result<IssuedToken, HandlerError> {
        let grants = self.engines.accounts.grants(user.id).await?;
        self.engines
            .tokens
            .issue(Subject {
                user_id: user.id,
                username: &user.username,
                email: &user.email,
                roles: grants.roles.clone(),
            })
            .map_err(HandlerError::from)
    }

    fn token_reply(issued: &IssuedToken, user: &User) -> Result<Value, HandlerError> {
        Ok(json!({
            "success": true,
            "token": issued.token,
            "token_type": "Bearer",
            "expires_at": rfc3339(issued.claims.expires_at()),
            "user": to_json(user)?,
            "roles": issued.claims.roles,
        }))
    }

    /// Go shape: success `{token, expires_at, user}` (we add `success: true`); failure
    /// `{"success": false, "error": "Authentication failed"}` for every cause.
    pub(super) async fn login(
        &self,
        ctx: &Context,
        r: LoginRequest,
    ) -> Result<Value, HandlerError> {
        if !ctx.private_reply && !self.engines.settings.get().go_shared_login_replies {
            // Refused before the password is checked: nothing is learnt, nothing is counted.
            return Err(secret_needs_private_reply("auth/login", "a token"));
        }
        // Before the database and the hasher: a flood is refused at the cost of a map lookup.
        // The source is the private reply topic (a client's own); requests answered on the Go
        // shared topic share one bucket.
        let source = match (&ctx.reply_topic, ctx.private_reply) {
            (Some(t), true) => t.as_str(),
            _ => "shared response topic",
        };
        let limits = self.engines.settings.get().login_limits;
        if let Err(e) = self.login_limits.check(limits, source, &r.username) {
            tracing::warn!(%source, error = %e, "login refused by rate limit");
            return Err(e.into());
        }
        let user = match self.engines.accounts.login(&r.username, &r.password).await {
            Ok(u) => u,
            Err(SecurityError::AuthenticationFailed) => {
                return Err(HandlerError::unauthenticated("Authentication failed"));
            }
            Err(e) => return Err(e.into()),
        };
        let issued = self
            .issue_for(&user)
            .await
            .map_err(|_| HandlerError::internal_with("Failed to generate token"))?;
        Self::token_reply(&issued, &user)
    }

    /// Revoke the presented token. Holding it is the proof; an invalid, expired or already
    /// revoked token gets the Go failure reply.
    pub(super) async fn logout(
        &self,
        ctx: &Context,
        r: TokenRequest,
    ) -> Result<Value, HandlerError> {
        let failed = || json!({"success": false, "error": "Failed to logout", "error_code": "unauthenticated"});
        let Ok(claims) = self.engines.tokens.verify(&r.token) else {
            return Ok(failed());
        };
        if let Err(e) = self
            .engines
            .tokens
            .revoke(
                &claims.jti,
                Some(claims.user_id),
                claims.expires_at(),
                "logout",
            )
            .await
        {
            tracing::error!(error = %e, "revocation not stored");
            return Ok(failed());
        }
        self.broadcast(
            ctx,
            SecurityEvent::Revoked {
                credential_id: claims.jti.clone(),
                expires_at: claims.exp as i64,
            },
        )
        .await;
        self.engines
            .audit
            .record(
                AuditEvent::new(events::LOGOUT, Outcome::Success)
                    .user(Some(claims.user_id), Some(&claims.username))
                    .target(claims.jti),
            )
            .await;
        Ok(json!({"success": true, "message": "Logout successful"}))
    }

    /// Go shape: `{"valid": true, "user_id"}` or `{"valid": false, "error"}`. Unlike Go, a token
    /// of a disabled or deleted user is not valid.
    pub(super) async fn validate(&self, r: TokenRequest) -> Result<Value, HandlerError> {
        match self.auth.principal(&r.token).await {
            Ok(p) => {
                let mut reply = json!({
                    "valid": true,
                    "user_id": p.user_id,
                    "username": p.username,
                    "roles": p.roles,
                    "credential": p.kind,
                });
                if p.kind == CredentialKind::Token
                    && let Ok(c) = self.engines.tokens.verify(&r.token)
                {
                    reply["expires_at"] = json!(rfc3339(c.expires_at()));
                }
                Ok(reply)
            }
            Err(AuthError::Unavailable(why)) => {
                tracing::error!(%why, "validation unavailable");
                Err(HandlerError::unavailable("validation is unavailable"))
            }
            Err(e) => {
                let error = match e {
                    AuthError::Revoked => TokenError::Revoked.to_string(),
                    AuthError::Expired => TokenError::Expired.to_string(),
                    AuthError::Invalid(why) => TokenError::Invalid(why).to_string(),
                    other => other.to_string(),
                };
                Ok(json!({"valid": false, "error": error}))
            }
        }
    }

    /// Swap a valid token for a fresh one; the old one is revoked.
    pub(super) async fn refresh(&self, ctx: &Context) -> Result<Value, HandlerError> {
        let who = Self::caller(ctx)?;
        if who.kind != CredentialKind::Token {
            // A key must not mint a token: the token would carry none of the key's scopes.
            return Err(HandlerError::forbidden(
                "only tokens can be refreshed; an API key cannot mint a token",
            ));
        }
        if !ctx.private_reply {
            return Err(secret_needs_private_reply("auth/refresh", "a token"));
        }
        let token = ctx.token.as_deref().unwrap_or_default();
        let old = self
            .engines
            .tokens
            .verify(token)
            .map_err(|e| HandlerError::from(AuthError::from(e)))?;
        let user = self.engines.accounts.get_user(who.user_id).await?;
        let issued = self.issue_for(&user).await?;
        self.engines
            .tokens
            .revoke(&old.jti, Some(old.user_id), old.expires_at(), "refreshed")
            .await?;
        self.broadcast(
            ctx,
            SecurityEvent::Revoked {
                credential_id: old.jti.clone(),
                expires_at: old.exp as i64,
            },
        )
        .await;
        self.engines
            .audit
            .record(
                AuditEvent::new(events::TOKEN_REFRESH, Outcome::Success)
                    .user(Some(user.id), Some(&user.username))
                    .target(old.jti),
            )
            .await;
        Self::token_reply(&issued, &user)
    }
}

/// The refusal of a request whose reply would carry a secret but would go to a shared topic.
pub(super) fn secret_needs_private_reply(op: &str, what: &str) -> HandlerError {
    HandlerError::invalid(format!(
        "{op} answers with {what}: send it with a private reply topic (MQTT 5 response topic \
         or reply_to, e.g. <root>/client/<your client id>/reply); a reply on the shared \
         response topic would be readable by every client"
    ))
}

trait InternalWith {
    fn internal_with(message: &str) -> HandlerError;
}

impl InternalWith for HandlerError {
    /// An internal failure with the Go reply text.
    fn internal_with(message: &str) -> HandlerError {
        HandlerError::new(bigskies_core::error::ErrorKind::Internal, message)
    }
}
