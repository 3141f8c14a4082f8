//! The app security engine's token half: HS256 JWTs with the algorithm pinned and every time,
//! issuer, audience and id claim checked, persisted revocations mirrored in memory, refresh,
//! and cleanup of revocations that have expired anyway.
//!
//! Claims stay compatible with the Go framework (`user_id`, `username`, `email`, `jti`,
//! `iss = bigskies-security`) and add `sub`, `aud` and `roles`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, TimeZone, Utc};
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use bigskies_core::auth::AuthError;

use crate::error::{SecurityError, SecurityResult};
use crate::settings::{Secret, SettingsHandle};

/// The only algorithm accepted.
pub const ALGORITHM: Algorithm = Algorithm::HS256;

/// JWT claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub user_id: Uuid,
    pub username: String,
    pub email: String,
    #[serde(default)]
    pub roles: Vec<String>,
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub jti: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    /// `iat` in milliseconds: compared with a password change, which may fall in the same
    /// second as a later login. Absent in Go's tokens (then `iat` in whole seconds is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat_ms: Option<u64>,
}

impl Claims {
    pub fn expires_at(&self) -> DateTime<Utc> {
        unix_to_utc(self.exp)
    }

    /// When the token was issued, in Unix milliseconds (`iat_ms`, else `iat` × 1000, which
    /// puts a token without `iat_ms` at the start of its second: refused when a password change
    /// falls in that second).
    pub fn issued_ms(&self) -> u64 {
        self.iat_ms.unwrap_or(self.iat.saturating_mul(1000))
    }
}

fn unix_to_utc(secs: u64) -> DateTime<Utc> {
    Utc.timestamp_opt(i64::try_from(secs).unwrap_or(i64::MAX), 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A freshly issued token.
#[derive(Clone)]
pub struct IssuedToken {
    pub token: String,
    pub claims: Claims,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("jti", &self.claims.jti)
            .field("exp", &self.claims.exp)
            .finish()
    }
}

/// Who a token is for.
#[derive(Clone, Debug)]
pub struct Subject<'a> {
    pub user_id: Uuid,
    pub username: &'a str,
    pub email: &'a str,
    pub roles: Vec<String>,
}

/// Why a token was refused; the text is what `auth/validate` reports.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token has been revoked")]
    Revoked,
    #[error("failed to parse token: token has expired")]
    Expired,
    #[error("failed to parse token: {0}")]
    Invalid(String),
}

impl From<TokenError> for AuthError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Revoked => AuthError::Revoked,
            TokenError::Expired => AuthError::Expired,
            TokenError::Invalid(why) => AuthError::Invalid(why),
        }
    }
}

fn describe(kind: &JwtErrorKind) -> String {
    match kind {
        JwtErrorKind::InvalidSignature => "signature is invalid".into(),
        JwtErrorKind::InvalidAlgorithm | JwtErrorKind::InvalidAlgorithmName => {
            "algorithm is not allowed".into()
        }
        JwtErrorKind::InvalidAudience => "audience is not accepted".into(),
        JwtErrorKind::InvalidIssuer => "issuer is not accepted".into(),
        JwtErrorKind::ImmatureSignature => "token is not valid yet".into(),
        JwtErrorKind::MissingRequiredClaim(c) => format!("required claim {c} is missing"),
        JwtErrorKind::InvalidToken => "token is malformed".into(),
        JwtErrorKind::Base64(_) | JwtErrorKind::Json(_) | JwtErrorKind::Utf8(_) => {
            "token is malformed".into()
        }
        other => format!("{other:?}"),
    }
}

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// Issues and verifies tokens; keeps the revocation set. Cheap to clone.
#[derive(Clone)]
pub struct TokenEngine {
    keys: Arc<Keys>,
    settings: SettingsHandle,
    /// Revoked credential id → expiry (Unix seconds); kept in memory for per-request checks.
    revoked: Arc<RwLock<HashMap<String, i64>>>,
    pool: PgPool,
}

impl std::fmt::Debug for TokenEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEngine")
            .field("revoked", &self.revoked_count())
            .finish_non_exhaustive()
    }
}

impl TokenEngine {
    pub fn new(secret: &Secret, settings: SettingsHandle, pool: PgPool) -> Self {
        let keys = Keys {
            encoding: EncodingKey::from_secret(secret.expose()),
            decoding: DecodingKey::from_secret(secret.expose()),
        };
        Self {
            keys: Arc::new(keys),
            settings,
            revoked: Arc::default(),
            pool,
        }
    }

    fn validation(&self, audience: &str) -> Validation {
        let s = self.settings.get();
        let mut v = Validation::new(ALGORITHM);
        v.algorithms = vec![ALGORITHM];
        v.set_audience(&[audience]);
        v.set_issuer(&[s.issuer.as_str()]);
        v.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
        v.validate_exp = true;
        v.validate_nbf = true;
        v.validate_aud = true;
        v.leeway = s.leeway.as_secs();
        v
    }

    /// Issue an access token for `who`, valid for the configured lifetime.
    pub fn issue(&self, who: Subject<'_>) -> SecurityResult<IssuedToken> {
        let lifetime = self.settings.get().token_duration;
        self.issue_for(who, lifetime)
    }

    /// Issue an access token for `who`, valid for `lifetime` (at least a second): short-lived
    /// service credentials that a coordinator mints for one exchange.
    pub fn issue_for(
        &self,
        who: Subject<'_>,
        lifetime: std::time::Duration,
    ) -> SecurityResult<IssuedToken> {
        let s = self.settings.get();
        let now_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
        let now = now_ms / 1000;
        let claims = Claims {
            user_id: who.user_id,
            username: who.username.to_owned(),
            email: who.email.to_owned(),
            roles: who.roles,
            sub: who.user_id.to_string(),
            iss: s.issuer.clone(),
            aud: s.audience.clone(),
            jti: hex::encode(rand::random::<[u8; 16]>()),
            iat: now,
            nbf: now,
            exp: now.saturating_add(lifetime.as_secs().max(1)),
            iat_ms: Some(now_ms),
        };
        let token = self.sign(&claims)?;
        Ok(IssuedToken { token, claims })
    }

    /// Sign any claims with the engine key (HS256).
    pub fn sign<T: Serialize>(&self, claims: &T) -> SecurityResult<String> {
        jsonwebtoken::encode(&Header::new(ALGORITHM), claims, &self.keys.encoding)
            .map_err(|e| SecurityError::Crypto(format!("signing: {e}")))
    }

    /// Verify a token signed by this engine for `audience` without looking at revocations.
    pub fn decode<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<T, TokenError> {
        if token.is_empty() || token.len() > 8192 {
            return Err(TokenError::Invalid("token is malformed".into()));
        }
        match jsonwebtoken::decode::<T>(token, &self.keys.decoding, &self.validation(audience)) {
            Ok(data) => Ok(data.claims),
            Err(e) if matches!(e.kind(), JwtErrorKind::ExpiredSignature) => {
                Err(TokenError::Expired)
            }
            Err(e) => Err(TokenError::Invalid(describe(e.kind()))),
        }
    }

    /// Verify an access token: signature, algorithm, time, issuer, audience, id, revocation.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let audience = self.settings.get().audience.clone();
        let claims: Claims = self.decode(token, &audience)?;
        if claims.jti.is_empty() || claims.sub != claims.user_id.to_string() {
            return Err(TokenError::Invalid("token claims are inconsistent".into()));
        }
        if self.is_revoked(&claims.jti) {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    pub fn is_revoked(&self, credential_id: &str) -> bool {
        match self.revoked.read() {
            Ok(g) => g.contains_key(credential_id),
            // Fail closed.
            Err(_) => true,
        }
    }

    pub fn revoked_count(&self) -> usize {
        self.revoked.read().map(|g| g.len()).unwrap_or(0)
    }

    /// Remember a revocation heard from elsewhere (memory only).
    pub fn note_revoked(&self, credential_id: &str, expires_at: i64) {
        if let Ok(mut g) = self.revoked.write() {
            g.insert(credential_id.to_owned(), expires_at);
        }
    }

    /// Revoke a credential: persisted first, then effective in this process. Idempotent.
    pub async fn revoke(
        &self,
        credential_id: &str,
        user_id: Option<Uuid>,
        expires_at: DateTime<Utc>,
        reason: &str,
    ) -> SecurityResult<()> {
        sqlx::query(
            "INSERT INTO revoked_tokens (jti, user_id, expires_at, reason) VALUES ($1, $2, $3, $4)
             ON CONFLICT (jti) DO NOTHING",
        )
        .bind(credential_id)
        .bind(user_id)
        .bind(expires_at)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        self.note_revoked(credential_id, expires_at.timestamp());
        Ok(())
    }

    /// Load every unexpired revocation from the database (at start and after a reconnect).
    pub async fn load_revocations(&self) -> SecurityResult<usize> {
        let rows: Vec<(String, DateTime<Utc>)> =
            sqlx::query_as("SELECT jti, expires_at FROM revoked_tokens WHERE expires_at > now()")
                .fetch_all(&self.pool)
                .await?;
        let n = rows.len();
        if let Ok(mut g) = self.revoked.write() {
            for (jti, exp) in rows {
                g.insert(jti, exp.timestamp());
            }
        }
        Ok(n)
    }

    /// Forget revocations of credentials that have expired anyway: memory always, the database
    /// when `persist` (only the security coordinator needs to do that).
    pub async fn purge_expired(&self, persist: bool) -> SecurityResult<u64> {
        // Keep entries a little past expiry so the leeway cannot revive them.
        let grace = i64::try_from(self.settings.get().leeway.as_secs()).unwrap_or(0) + 1;
        let now = Utc::now().timestamp();
        if let Ok(mut g) = self.revoked.write() {
            g.retain(|_, exp| *exp + grace > now);
        }
        if !persist {
            return Ok(0);
        }
        let done = sqlx::query(
            "DELETE FROM revoked_tokens WHERE expires_at < now() - make_interval(secs => $1)",
        )
        .bind(grace as f64)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::SecuritySettings;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    fn engine(secret: &str) -> TokenEngine {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap();
        TokenEngine::new(
            &Secret::new(secret),
            SettingsHandle::new(SecuritySettings::default()),
            pool,
        )
    }

    fn subject() -> Subject<'static> {
        Subject {
            user_id: Uuid::new_v4(),
            username: "alice",
            email: "a@b.c",
            roles: vec!["observer".into()],
        }
    }

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[tokio::test]
    async fn issued_tokens_verify_with_go_compatible_claims() {
        let e = engine(KEY);
        let t = e.issue(subject()).unwrap();
        let c = e.verify(&t.token).unwrap();
        assert_eq!(c, t.claims);
        assert_eq!(c.iss, "bigskies-security");
        let raw: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(t.token.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        for k in [
            "user_id", "username", "email", "jti", "iss", "aud", "iat", "nbf", "exp", "roles",
        ] {
            assert!(raw.get(k).is_some(), "claim {k} missing: {raw}");
        }
        assert_ne!(e.issue(subject()).unwrap().claims.jti, t.claims.jti);
    }

    #[tokio::test]
    async fn bad_tokens_are_refused() {
        let e = engine(KEY);
        let good = e.issue(subject()).unwrap();
        // Another key.
        let other = engine("fedcba9876543210fedcba9876543210")
            .issue(subject())
            .unwrap();
        assert!(matches!(
            e.verify(&other.token),
            Err(TokenError::Invalid(_))
        ));
        // alg none.
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&good.claims).unwrap());
        assert!(e.verify(&format!("{header}.{body}.")).is_err());
        // HS512 with the right key is still refused: the algorithm is pinned.
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &good.claims,
            &EncodingKey::from_secret(KEY.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            e.verify(&hs512),
            Err(TokenError::Invalid("algorithm is not allowed".into()))
        );
        // Expired.
        let mut c = good.claims.clone();
        c.exp = jsonwebtoken::get_current_timestamp() - 120;
        assert_eq!(e.verify(&e.sign(&c).unwrap()), Err(TokenError::Expired));
        // Wrong audience, wrong issuer, not yet valid.
        let mut c = good.claims.clone();
        c.aud = "elsewhere".into();
        assert!(e.verify(&e.sign(&c).unwrap()).is_err());
        let mut c = good.claims.clone();
        c.iss = "mallory".into();
        assert!(e.verify(&e.sign(&c).unwrap()).is_err());
        let mut c = good.claims.clone();
        c.nbf += 3600;
        assert!(e.verify(&e.sign(&c).unwrap()).is_err());
        // Missing claims.
        let partial = e.sign(&json!({"user_id": Uuid::nil(), "exp": c.exp, "iss": "bigskies-security", "aud": "bigskies"})).unwrap();
        assert!(e.verify(&partial).is_err());
        for junk in ["", "not.a.valid.jwt.token", "a.b.c", &"x".repeat(10_000)] {
            assert!(e.verify(junk).is_err(), "{junk:?}");
        }
        // Revoked (memory).
        e.note_revoked(&good.claims.jti, good.claims.exp as i64);
        assert_eq!(e.verify(&good.token), Err(TokenError::Revoked));
    }
}
