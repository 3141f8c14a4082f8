//! The authentication seam of the runtime.
//!
//! Each operation says what access it needs ([`Access`], in its coordinator's [`Operation`]
//! table); the runtime asks an [`Authenticator`] (implemented by the security engines) to turn
//! the request's token or API key into a [`Principal`] and to check the permission (the
//! principal's roles and, for an API key, its scopes), before the handler runs. The principal always
//! comes from the credential, never from the payload. Without an authenticator the runtime fails
//! closed: only [`Access::Public`] operations are served.

use futures::future::BoxFuture;

use crate::error::{ErrorKind, HandlerError};

/// Where a principal's right to a permission comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rights {
    /// Roles and groups (RBAC, deny first): the [`Authenticator`] decides.
    Role,
    /// The object the request names (ownership, grants, sessions): any authenticated principal
    /// may ask, and the coordinator's handler decides against the object it loads.
    Object,
}

/// What an operation requires. Declared once per operation, in the coordinator's
/// [`Operation`] table; the runtime decides before the handler runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, no credential (login, health queries, public reads).
    Public,
    /// A valid credential whose principal holds `resource:action` (from `rights`) and, for an
    /// API key, whose scopes cover `resource:action` too.
    Permission {
        resource: &'static str,
        action: &'static str,
        rights: Rights,
    },
}

impl Access {
    /// A permission granted through roles and groups.
    pub const fn role(resource: &'static str, action: &'static str) -> Self {
        Self::Permission {
            resource,
            action,
            rights: Rights::Role,
        }
    }

    /// A permission held on the object the request names; the handler checks the object.
    pub const fn object(resource: &'static str, action: &'static str) -> Self {
        Self::Permission {
            resource,
            action,
            rights: Rights::Object,
        }
    }

    /// `resource:action`, or `None` for public operations.
    pub fn permission(&self) -> Option<String> {
        match self {
            Self::Public => None,
            Self::Permission {
                resource, action, ..
            } => Some(format!("{resource}:{action}")),
        }
    }

    /// Whether the operation can change something (everything but reads): such operations are
    /// audited when allowed as well as when refused.
    pub fn changes_state(&self) -> bool {
        matches!(self, Self::Permission { action, .. } if *action != "read")
    }
}

/// One operation of a coordinator: its name (`<action>/<resource>`, as in the request enum and
/// the topic) and what it requires. Each coordinator lists all of its operations in one table;
/// an operation without a row is never served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operation {
    pub op: &'static str,
    pub access: Access,
    /// One line for the generated reference and the access matrix.
    pub summary: &'static str,
}

impl Operation {
    pub const fn new(op: &'static str, access: Access, summary: &'static str) -> Self {
        Self {
            op,
            access,
            summary,
        }
    }
}

/// The outcome of one request, for the audit trail.
#[derive(Clone, Debug)]
pub struct AccessRecord {
    pub coordinator: &'static str,
    pub op: String,
    /// `None` when no credential could be verified.
    pub principal: Option<Principal>,
    /// What the request named (`telescope_id`, `device_id`, ...), when it named something.
    pub target: Option<String>,
    pub allowed: bool,
    /// The error code and message of a refusal.
    pub refusal: Option<(String, String)>,
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
    #[error("permission denied: the API key's scopes do not cover {resource}:{action}")]
    OutOfScope { resource: String, action: String },
    #[error("authentication service unavailable: {0}")]
    Unavailable(String),
}

impl From<AuthError> for HandlerError {
    fn from(e: AuthError) -> Self {
        let kind = match &e {
            AuthError::Forbidden { .. } | AuthError::OutOfScope { .. } => ErrorKind::Forbidden,
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

    /// Check that `principal` may do `action` on `resource`: an API key's scopes must cover
    /// it, and with [`Rights::Role`] the principal's roles and groups must grant it.
    fn authorize<'a>(
        &'a self,
        principal: &'a Principal,
        resource: &'a str,
        action: &'a str,
        rights: Rights,
    ) -> BoxFuture<'a, Result<(), AuthError>>;

    /// Record the outcome of a state-changing or refused request. The default keeps nothing.
    fn audit(&self, _record: AccessRecord) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
