//! The one error vocabulary at the edge of every coordinator, and its Go-shaped reply.

use serde_json::{Value, json};

/// What went wrong, in words a client can act on. Internal details are logged, not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    InvalidRequest,
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict,
    Unavailable,
    Timeout,
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error a handler returns; becomes `{"success": false, "error": message, "error_code": kind}`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct HandlerError {
    pub kind: ErrorKind,
    pub message: String,
}

impl HandlerError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }
    /// An internal failure: the client sees a generic message; log the detail yourself.
    pub fn internal() -> Self {
        Self::new(ErrorKind::Internal, "internal error")
    }

    /// A database failure in the edge vocabulary, by SQLSTATE: bad input (22xxx data
    /// exceptions such as a NUL in text, 23xxx constraint violations) is the client's
    /// `invalid_request` (`conflict` for a duplicate), a database that cannot be reached or is
    /// shutting down is `unavailable`, anything else `internal`. `store` names what is
    /// unavailable ("telescope store"); log the error itself, the client gets no SQL.
    pub fn from_database(e: &sqlx::Error, store: &str) -> Self {
        match database_error_kind(e) {
            ErrorKind::InvalidRequest => {
                Self::invalid("input contains characters, lengths or values the store refuses")
            }
            ErrorKind::Conflict => Self::conflict("already exists"),
            ErrorKind::Unavailable => Self::unavailable(format!("{store} is unavailable")),
            ErrorKind::Timeout => Self::timeout(format!("{store} did not answer in time")),
            _ => Self::internal(),
        }
    }

    /// The Go-shaped error reply body.
    pub fn to_reply(&self) -> Value {
        json!({"success": false, "error": self.message, "error_code": self.kind})
    }
}

/// The edge kind of a database error (see [`HandlerError::from_database`]).
pub fn database_error_kind(e: &sqlx::Error) -> ErrorKind {
    match e {
        sqlx::Error::Database(d) => match d.code() {
            Some(code) => sqlstate_kind(&code),
            None => ErrorKind::Internal,
        },
        // The connection or the pool: the database is not reachable right now.
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

/// The edge kind of a PostgreSQL SQLSTATE.
pub fn sqlstate_kind(code: &str) -> ErrorKind {
    match code {
        "23505" => ErrorKind::Conflict,
        // Query canceled (statement_timeout) and lock timeouts.
        "57014" | "55P03" => ErrorKind::Timeout,
        // admin_shutdown, crash_shutdown, cannot_connect_now, database_dropped.
        "57P01" | "57P02" | "57P03" | "57P04" => ErrorKind::Unavailable,
        // Serialization failure and deadlock: retryable.
        "40001" | "40P01" => ErrorKind::Unavailable,
        // 22: data exception (NUL / invalid byte sequence, too long, bad text form);
        // 23: integrity constraint violation.
        c if c.starts_with("22") || c.starts_with("23") => ErrorKind::InvalidRequest,
        // 08: connection exception; 53: insufficient resources (too many connections);
        // 55000: what a database closed to connections (ALLOW_CONNECTIONS false) answers.
        c if c.starts_with("08") || c.starts_with("53") || c == "55000" => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_the_edge_vocabulary() {
        for (code, kind) in [
            ("22021", ErrorKind::InvalidRequest),
            ("22P05", ErrorKind::InvalidRequest),
            ("22001", ErrorKind::InvalidRequest),
            ("23502", ErrorKind::InvalidRequest),
            ("23505", ErrorKind::Conflict),
            ("08006", ErrorKind::Unavailable),
            ("57P01", ErrorKind::Unavailable),
            ("57P03", ErrorKind::Unavailable),
            ("53300", ErrorKind::Unavailable),
            ("57014", ErrorKind::Timeout),
            ("42P01", ErrorKind::Internal),
        ] {
            assert_eq!(sqlstate_kind(code), kind, "{code}");
        }
        assert_eq!(
            database_error_kind(&sqlx::Error::PoolTimedOut),
            ErrorKind::Unavailable
        );
        assert_eq!(
            database_error_kind(&sqlx::Error::RowNotFound),
            ErrorKind::Internal
        );
    }

    #[test]
    fn replies_keep_the_go_shape() {
        let r = HandlerError::invalid("bad").to_reply();
        assert_eq!(
            r,
            json!({"success": false, "error": "bad", "error_code": "invalid_request"})
        );
    }
}
