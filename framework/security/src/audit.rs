//! The audit trail: every security decision (login success and failure, lockout, grants,
//! revocations, refusals) is written to `audit_log`. Writing is best effort: a failing audit
//! write is logged loudly but does not turn a refusal into an acceptance or vice versa.

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// How a decision came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }
}

/// One audit record.
#[derive(Clone, Debug)]
pub struct AuditEvent {
    pub event: &'static str,
    pub outcome: Outcome,
    pub user_id: Option<Uuid>,
    pub username: Option<String>,
    pub target: Option<String>,
    pub detail: Value,
}

impl AuditEvent {
    pub fn new(event: &'static str, outcome: Outcome) -> Self {
        Self {
            event,
            outcome,
            user_id: None,
            username: None,
            target: None,
            detail: Value::Object(Default::default()),
        }
    }

    pub fn user(mut self, id: Option<Uuid>, username: Option<&str>) -> Self {
        self.user_id = id;
        // Bounded: an attacker's 100 kB "username" is not worth storing in full.
        self.username = username.map(|u| u.chars().take(255).collect());
        self
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into().chars().take(1024).collect());
        self
    }

    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}

/// Event names, defined once.
pub mod events {
    pub const LOGIN: &str = "login";
    pub const LOCKOUT: &str = "lockout";
    pub const LOGOUT: &str = "logout";
    pub const TOKEN_REFRESH: &str = "token_refresh";
    pub const REVOKE: &str = "revoke";
    pub const AUTHENTICATE: &str = "authenticate";
    /// A coordinator operation that changed state, or that was refused (runtime-wide).
    pub const OPERATION: &str = "operation";
    pub const USER_CREATE: &str = "user_create";
    pub const USER_UPDATE: &str = "user_update";
    pub const USER_DELETE: &str = "user_delete";
    /// A login lock lifted by an operator (operation, CLI or start-up secret).
    pub const USER_UNLOCK: &str = "user_unlock";
    pub const ADMIN_BOOTSTRAP: &str = "admin_bootstrap";
    pub const GRANT: &str = "grant";
    pub const UNGRANT: &str = "ungrant";
    pub const ROLE_CREATE: &str = "role_create";
    pub const GROUP_CREATE: &str = "group_create";
    pub const PERMISSION_CREATE: &str = "permission_create";
    pub const API_KEY_CREATE: &str = "api_key_create";
    pub const API_KEY_REVOKE: &str = "api_key_revoke";
    pub const CERTIFICATE: &str = "certificate";
}

/// Writes audit records.
#[derive(Clone, Debug)]
pub struct AuditLog {
    pool: PgPool,
}

impl AuditLog {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn record(&self, e: AuditEvent) {
        let result = sqlx::query(
            "INSERT INTO audit_log (event, outcome, user_id, username, target, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(e.event)
        .bind(e.outcome.as_str())
        .bind(e.user_id)
        // NUL bytes cannot be stored in text columns; keep the record instead of losing it.
        .bind(e.username.as_deref().map(|s| s.replace('\0', "\u{FFFD}")))
        .bind(e.target.as_deref().map(|s| s.replace('\0', "\u{FFFD}")))
        .bind(&e.detail)
        .execute(&self.pool)
        .await;
        if let Err(err) = result {
            tracing::error!(event = e.event, outcome = e.outcome.as_str(), error = %err, "audit record not written");
        }
    }

    /// Count records of `event` with `outcome` (for health and tests).
    pub async fn count(&self, event: &str, outcome: Outcome) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE event = $1 AND outcome = $2")
            .bind(event)
            .bind(outcome.as_str())
            .fetch_one(&self.pool)
            .await
    }
}
