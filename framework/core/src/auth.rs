//! The authentication seam of the runtime.
//!
//! Each operation says what access it needs ([`Access`]); the runtime asks an [`Authenticator`]
//! (implemented by the security engines) to turn the request's token or API key into a
//! [`Principal`] and to check the permission, before the handler runs. The principal always
//! comes from the credential, never from the payload. Without an authenticator the runtime fails
//! closed: only [`Access::Public`] operations are served.

use futures::future::BoxFuture;

use crate::error::{ErrorKind, HandlerError};

/// What an operation requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, no credential (login, health queries, public reads).
    Public,
    /// Any valid credential.
    Authenticated,
    /// A valid credential whose principal holds `action` on `resource`.
    Permission { resource: String, action: String },
}

impl Access {
    pub fn permission(resource: impl Into<String>, action: impl Into<String>) -> Self {
        Self::Permission {
            resource: resource.into(),
            action: action.into(),
        }
    }
}

/// How the principal proved itself.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    Token,
    ApiKey,
}

/// Who is asking.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Principal {
    pub user_id: uuid::Uuid,
    pub username: String,
    pub roles: Vec<String>,
    /// Token id (`jti`) or API key id: what a revocation names.
    pub credential_id: String,
    pub kind: CredentialKind,
    /// API key scopes (`resource:action`, `*` allowed); empty for tokens.
    pub scopes: Vec<String>,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == "admin")
    }
}

/// Why a credential or permission was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required")]
    Missing,
    #[error("invalid credential: {0}")]
    Invalid(String),
    #[error("credential has been revoked")]
    Revoked,
    #[error("credential has expired")]
    Expired,
    #[error("permission denied: {resource}/{action}")]
    Forbidden { resource: String, action: String },
    #[error("authentication service unavailable: {0}")]
    Unavailable(String),
}

impl From<AuthError> for HandlerError {
    fn from(e: AuthError) -> Self {
        let kind = match &e {
            AuthError::Forbidden { .. } => ErrorKind::Forbidden,
            AuthError::Unavailable(_) => ErrorKind::Unavailable,
            _ => ErrorKind::Unauthenticated,
        };
        HandlerError::new(kind, e.to_string())
    }
}

/// Verifies credentials and permissions. Implementations must be fast (cache; the runtime calls
/// this for every protected request) and must record refusals in the audit log themselves.
pub trait Authenticator: Send + Sync + 'static {
    /// Resolve a bearer token or API key into a principal.
    fn authenticate<'a>(
        &'a self,
        credential: &'a str,
    ) -> BoxFuture<'a, Result<Principal, AuthError>>;

    /// Check that `principal` may do `action` on `resource`.
    fn authorize<'a>(
        &'a self,
        principal: &'a Principal,
        resource: &'a str,
        action: &'a str,
    ) -> BoxFuture<'a, Result<(), AuthError>>;
}
