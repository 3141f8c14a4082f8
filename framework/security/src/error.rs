//! The security engines' error type and its mapping to the edge vocabulary.

use bigskies_core::auth::AuthError;
use bigskies_core::error::{ErrorKind, HandlerError, database_error_kind};

/// What went wrong in a security engine.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// The input is malformed or breaks a rule (policy, length, charset).
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Refused at once to protect the process (hashing pool full, login rate exceeded); the
    /// client may try again later.
    #[error("{0}")]
    Busy(String),
    /// Login refused. One message for every cause, so a caller cannot tell them apart.
    #[error("Authentication failed")]
    AuthenticationFailed,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("configuration: {0}")]
    Config(String),
    #[error("cryptography: {0}")]
    Crypto(String),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("ACME: {0}")]
    Acme(String),
    #[error("database: {0}")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for SecurityError {
    fn from(e: sqlx::Error) -> Self {
        // Constraint names and SQL text stay in the logs; clients get a plain conflict.
        if let sqlx::Error::Database(db) = &e {
            match db.code().as_deref() {
                Some("23505") => return Self::Conflict("already exists".into()),
                Some("23503") => return Self::NotFound("referenced record".into()),
                // 22: data exceptions (invalid byte sequence, NUL in text, value too long,
                // invalid text representation); 23: other constraint violations.
                Some(c) if c.starts_with("22") || c.starts_with("23") => {
                    return Self::Invalid(
                        "input contains characters or lengths the store refuses".into(),
                    );
                }
                _ => {}
            }
        }
        Self::Database(e)
    }
}

impl SecurityError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid(_) => ErrorKind::InvalidRequest,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Conflict(_) => ErrorKind::Conflict,
            Self::AuthenticationFailed => ErrorKind::Unauthenticated,
            Self::Auth(AuthError::Forbidden { .. }) => ErrorKind::Forbidden,
            Self::Auth(AuthError::Unavailable(_)) => ErrorKind::Unavailable,
            Self::Auth(_) => ErrorKind::Unauthenticated,
            Self::Acme(_) | Self::Busy(_) => ErrorKind::Unavailable,
            // A database that cannot be reached is `unavailable` (the client may retry).
            Self::Database(e) => match database_error_kind(e) {
                kind @ (ErrorKind::Unavailable | ErrorKind::Timeout) => kind,
                _ => ErrorKind::Internal,
            },
            Self::Config(_) | Self::Crypto(_) | Self::Certificate(_) => ErrorKind::Internal,
        }
    }
}

impl From<SecurityError> for HandlerError {
    fn from(e: SecurityError) -> Self {
        match e.kind() {
            ErrorKind::Internal => {
                tracing::error!(error = %e, "security engine failure");
                HandlerError::internal()
            }
            // The SQL error text stays in the log.
            kind @ (ErrorKind::Unavailable | ErrorKind::Timeout)
                if matches!(e, SecurityError::Database(_)) =>
            {
                tracing::warn!(error = %e, "security store unreachable");
                HandlerError::new(kind, "security store is unavailable")
            }
            kind => HandlerError::new(kind, e.to_string()),
        }
    }
}

pub type SecurityResult<T> = Result<T, SecurityError>;
