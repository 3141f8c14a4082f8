//! The account security engine: users, roles, groups, permissions and their assignments,
//! login with lockout, the first administrator, and the cached per-user grants every
//! authorization decision is made from.
//!
//! A lockout (too many wrong passwords) stops password logins of that account only: tokens
//! and API keys already issued keep working, and an operator lifts it with [`AccountEngine::unlock`]
//! (the `user/unlock` operation, `bigskies admin unlock`, or the start-up secret for the first
//! administrator). See `docs/authorization.md`, "Logins and lockout".

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::audit::{AuditEvent, AuditLog, Outcome, events};
use crate::error::{SecurityError, SecurityResult};
use crate::hashpool::HashPool;
use crate::input;
use crate::password::{self, Passwords};
use crate::rbac::{self, Decision, Effect, Grant};
use crate::settings::{Secret, SettingsHandle};

/// The Go framework's fixed ids (§5.4).
pub const ADMIN_USER_ID: Uuid = Uuid::from_u128(0x0000_0000_0000_0000_0000_0000_0000_0001);
pub const ADMIN_ROLE_ID: Uuid = Uuid::from_u128(0x1000_0000_0000_0000_0000_0000_0000_0001);
pub const ADMINISTRATORS_GROUP_ID: Uuid =
    Uuid::from_u128(0x2000_0000_0000_0000_0000_0000_0000_0001);
pub const ADMIN_USERNAME: &str = "admin";
pub const ADMIN_EMAIL: &str = "admin@bigskies.local";

/// A user as clients see it (the Go shape; never the hash).
#[derive(Clone, Debug, PartialEq, Serialize, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub enabled: bool,
    #[serde(with = "go_time")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "go_time")]
    pub updated_at: DateTime<Utc>,
    /// Until when password logins are refused after repeated failures; `null` when they are not.
    #[serde(with = "go_time_opt")]
    pub locked_until: Option<DateTime<Utc>>,
}

/// RFC 3339 with `Z`, as Go's parser wants.
pub mod go_time {
    use chrono::{DateTime, SecondsFormat, Utc};
    pub fn serialize<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

/// [`go_time`], or `null`.
pub mod go_time_opt {
    use chrono::{DateTime, Utc};
    pub fn serialize<S: serde::Serializer>(
        t: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::go_time::serialize(t, s),
            None => s.serialize_none(),
        }
    }
}

/// A lock that has run out is no lock: it shows as `null`.
const USER_COLUMNS: &str = "id, username, email, enabled, created_at, updated_at,
    CASE WHEN locked_until > now() THEN locked_until END AS locked_until";

/// A user named by id or by username.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserRef<'a> {
    Id(Uuid),
    Name(&'a str),
}

/// Who lifted a lock, for the audit trail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnlockVia {
    /// The `user/unlock` operation.
    Operation,
    /// `bigskies admin unlock`, straight on the database.
    Cli,
    /// A coordinator start with the first administrator's password configured.
    StartupSecret,
}

impl UnlockVia {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operation => "operation",
            Self::Cli => "cli",
            Self::StartupSecret => "startup_secret",
        }
    }
}

/// What [`AccountEngine::unlock`] found and cleared.
#[derive(Clone, Debug, PartialEq, Serialize, sqlx::FromRow)]
pub struct Unlocked {
    pub user_id: Uuid,
    pub username: String,
    /// Password logins were refused when the lock was lifted.
    pub was_locked: bool,
    #[serde(with = "go_time_opt")]
    pub was_locked_until: Option<DateTime<Utc>>,
    /// Wrong passwords counted towards the next lock, now forgotten.
    pub cleared_failed_attempts: i32,
}

#[derive(sqlx::FromRow)]
struct LoginRow {
    id: Uuid,
    username: String,
    email: String,
    enabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    password_hash: String,
    locked_until: Option<DateTime<Utc>>,
    deleted: bool,
}

/// A role or a group.
#[derive(Clone, Debug, PartialEq, Serialize, sqlx::FromRow)]
pub struct Named {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    #[serde(with = "go_time")]
    pub created_at: DateTime<Utc>,
}

/// A permission row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Permission {
    pub id: Uuid,
    pub resource: String,
    pub action: String,
    pub effect: Effect,
}

/// Changes to a user; absent fields stay as they are (Go blanked them).
#[derive(Clone, Debug, Default)]
pub struct UserUpdate {
    pub email: Option<String>,
    pub enabled: Option<bool>,
    pub password: Option<String>,
}

/// What a user may do, as loaded from the database.
#[derive(Clone, Debug, PartialEq)]
pub struct UserGrants {
    pub user_id: Uuid,
    pub username: String,
    /// Enabled and not deleted.
    pub active: bool,
    pub roles: Vec<String>,
    pub grants: Vec<Grant>,
    /// Tokens issued at or before this instant are refused: the password was changed or reset.
    pub tokens_valid_after: Option<DateTime<Utc>>,
}

impl UserGrants {
    /// Was a token issued at `issued_ms` (Unix milliseconds) made before the last password
    /// change? Equal counts as before: a login with the new password takes an argon2
    /// verification after the change is stored, so it is never issued in the same millisecond.
    pub fn token_predates_password_change(&self, issued_ms: u64) -> bool {
        self.tokens_valid_after.is_some_and(|t| {
            u64::try_from(t.timestamp_millis()).map_or(true, |after| issued_ms <= after)
        })
    }

    pub fn decide(&self, resource: &str, action: &str) -> Decision {
        if !self.active {
            return Decision::NotGranted;
        }
        rbac::evaluate(&self.grants, resource, action)
    }
}

/// Per-user grants with a time limit; a generation counter stops a load that raced with an
/// invalidation from putting stale grants back.
#[derive(Debug, Default)]
struct GrantCache {
    entries: RwLock<HashMap<Uuid, (Instant, Arc<UserGrants>)>>,
    generation: AtomicU64,
}

/// Users, roles, groups, permissions, login. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AccountEngine {
    pool: PgPool,
    settings: SettingsHandle,
    passwords: Passwords,
    audit: AuditLog,
    cache: Arc<GrantCache>,
}

/// Where an identifier names a role or group: a UUID or a name.
fn ident_query(table: &'static str, ident: &str) -> (String, IdentArg) {
    match Uuid::parse_str(ident) {
        Ok(id) => (
            format!("SELECT id FROM {table} WHERE id = $1"),
            IdentArg::Id(id),
        ),
        Err(_) => (
            format!("SELECT id FROM {table} WHERE name = $1"),
            IdentArg::Name(ident.to_owned()),
        ),
    }
}

enum IdentArg {
    Id(Uuid),
    Name(String),
}

impl AccountEngine {
    pub fn new(pool: PgPool, settings: SettingsHandle, audit: AuditLog) -> Self {
        Self {
            pool,
            settings,
            passwords: Passwords::default(),
            audit,
            cache: Arc::default(),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The same engine hashing in `hashes` instead of the process-wide pool (a test's flood
    /// must not crowd out the other tests of its process).
    pub fn with_hash_pool(self, hashes: HashPool) -> Self {
        Self {
            passwords: Passwords::with_pool(hashes),
            ..self
        }
    }

    // ---- login ---------------------------------------------------------------------------

    /// Check a username and password. Every refusal is the same [`SecurityError::AuthenticationFailed`]
    /// and costs one argon2 verification, whether the user exists or not. When the hashing pool
    /// is full the attempt is refused with [`SecurityError::Busy`] before any password is checked
    /// or any failure counted.
    ///
    /// `max_failed_logins` wrong passwords in a row lock the account's password logins for
    /// `lockout_duration`. While it is locked every attempt is refused, the right password
    /// too; the password is still verified (a lock must not be told apart by the reply time)
    /// but the result is discarded, nothing is counted and the lock is not extended. So a
    /// stranger holds an account locked for at most `lockout_duration` after the guess that
    /// locked it, and then needs `max_failed_logins` more guesses for the next lock.
    pub async fn login(&self, username: &str, password: &str) -> SecurityResult<User> {
        let s = self.settings.get();
        let plausible =
            input::username(username).is_ok() && password.len() <= s.password_max_length;
        let row: Option<LoginRow> = if plausible {
            sqlx::query_as(
                "SELECT id, username, email, enabled, created_at, updated_at, password_hash, locked_until,
                        deleted_at IS NOT NULL AS deleted
                   FROM users WHERE username = $1",
            )
            .bind(username)
            .fetch_optional(&self.pool)
            .await?
        } else {
            None
        };
        // Oversized passwords are cut for the dummy check: it must fail anyway, and must not
        // become a way to make the server hash megabytes.
        let bounded = &password[..floor_char_boundary(password, s.password_max_length)];
        let Some(row) = row else {
            // A full hashing pool refuses before anything is recorded: nothing was checked.
            self.passwords.verify_dummy(bounded, s.argon2).await?;
            self.audit
                .record(
                    AuditEvent::new(events::LOGIN, Outcome::Failure)
                        .user(None, Some(username))
                        .detail(json!({"reason": "unknown user"})),
                )
                .await;
            return Err(SecurityError::AuthenticationFailed);
        };
        let ok = self.passwords.verify(bounded, &row.password_hash).await?;
        let who = AuditEvent::new(events::LOGIN, Outcome::Failure)
            .user(Some(row.id), Some(&row.username));
        if row.deleted || !row.enabled {
            self.audit
                .record(who.detail(json!({"reason": "account disabled"})))
                .await;
            return Err(SecurityError::AuthenticationFailed);
        }
        if row.locked_until.is_some_and(|t| t > Utc::now()) {
            self.audit
                .record(who.detail(json!({"reason": "account locked"})))
                .await;
            return Err(SecurityError::AuthenticationFailed);
        }
        if !ok {
            // One statement, so concurrent guesses cannot slip past the threshold; and only on
            // an unlocked row, so a guess that raced with the lock neither clears nor extends it.
            let counted: Option<Option<DateTime<Utc>>> = sqlx::query_scalar(
                "UPDATE users SET
                    locked_until = CASE WHEN failed_attempts + 1 >= $2 THEN now() + make_interval(secs => $3) ELSE NULL END,
                    failed_attempts = CASE WHEN failed_attempts + 1 >= $2 THEN 0 ELSE failed_attempts + 1 END
                  WHERE id = $1 AND (locked_until IS NULL OR locked_until <= now())
                  RETURNING locked_until",
            )
            .bind(row.id)
            .bind(i32::try_from(s.max_failed_logins).unwrap_or(i32::MAX))
            .bind(s.lockout_duration.as_secs_f64())
            .fetch_optional(&self.pool)
            .await?;
            let Some(locked) = counted else {
                self.audit
                    .record(who.detail(json!({"reason": "account locked"})))
                    .await;
                return Err(SecurityError::AuthenticationFailed);
            };
            self.audit
                .record(who.clone().detail(json!({"reason": "wrong password"})))
                .await;
            if let Some(until) = locked {
                self.audit
                    .record(
                        AuditEvent::new(events::LOCKOUT, Outcome::Denied)
                            .user(Some(row.id), Some(&row.username))
                            .detail(json!({"locked_until": until.to_rfc3339(), "after_failures": s.max_failed_logins})),
                    )
                    .await;
                tracing::warn!(user = %row.username, %until, "account locked after repeated login failures");
            }
            return Err(SecurityError::AuthenticationFailed);
        }
        sqlx::query("UPDATE users SET failed_attempts = 0, locked_until = NULL, last_login_at = now() WHERE id = $1")
            .bind(row.id)
            .execute(&self.pool)
            .await?;
        if password::needs_rehash(&row.password_hash, s.argon2) {
            // Parameters were raised since this hash was made: upgrade it while we hold the password.
            match self.passwords.hash(password, s.argon2).await {
                Ok(h) => {
                    sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                        .bind(row.id)
                        .bind(h)
                        .execute(&self.pool)
                        .await?;
                }
                Err(e) => tracing::warn!(error = %e, "password re-hash failed"),
            }
        }
        self.audit
            .record(
                AuditEvent::new(events::LOGIN, Outcome::Success)
                    .user(Some(row.id), Some(&row.username)),
            )
            .await;
        Ok(User {
            id: row.id,
            username: row.username,
            email: row.email,
            enabled: row.enabled,
            created_at: row.created_at,
            updated_at: row.updated_at,
            locked_until: None,
        })
    }

    /// Lift a login lock and forget the failures counted towards the next one. No password is
    /// needed: the caller is an operator (an administrator's credential, the database, or the
    /// start-up secret). Audited with `via`, also when there was nothing to lift.
    pub async fn unlock(
        &self,
        user: UserRef<'_>,
        by: Option<Uuid>,
        via: UnlockVia,
    ) -> SecurityResult<Unlocked> {
        let (id, name) = match user {
            UserRef::Id(id) => (Some(id), None),
            UserRef::Name(name) => {
                input::username(name)?;
                (None, Some(name))
            }
        };
        // The old values come from a locked read of the same row, in the same statement.
        let done: Unlocked = sqlx::query_as(
            "WITH old AS (
                SELECT id, username, locked_until, failed_attempts FROM users
                 WHERE (id = $1 OR username = $2) AND deleted_at IS NULL FOR UPDATE)
             UPDATE users u SET failed_attempts = 0, locked_until = NULL FROM old WHERE u.id = old.id
             RETURNING old.id AS user_id, old.username,
                       COALESCE(old.locked_until > now(), false) AS was_locked,
                       CASE WHEN old.locked_until > now() THEN old.locked_until END AS was_locked_until,
                       old.failed_attempts AS cleared_failed_attempts",
        )
        .bind(id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| SecurityError::NotFound("user".into()))?;
        self.audit
            .record(
                AuditEvent::new(events::USER_UNLOCK, Outcome::Success)
                    .user(by, None)
                    .target(done.user_id.to_string())
                    .detail(json!({
                        "via": via.as_str(),
                        "username": done.username,
                        "was_locked": done.was_locked,
                        "was_locked_until": done.was_locked_until.map(|t| t.to_rfc3339()),
                        "cleared_failed_attempts": done.cleared_failed_attempts,
                    })),
            )
            .await;
        tracing::info!(user = %done.username, via = via.as_str(), was_locked = done.was_locked, "login lock lifted");
        Ok(done)
    }

    // ---- users ---------------------------------------------------------------------------

    pub async fn create_user(
        &self,
        username: &str,
        email: &str,
        password: &str,
        by: Option<Uuid>,
    ) -> SecurityResult<User> {
        self.create_user_with_id(None, username, email, password, by)
            .await
    }

    async fn create_user_with_id(
        &self,
        id: Option<Uuid>,
        username: &str,
        email: &str,
        password: &str,
        by: Option<Uuid>,
    ) -> SecurityResult<User> {
        let s = self.settings.get();
        input::username(username)?;
        input::email(email)?;
        password::check_policy(password, username, &s)?;
        let hash = self.passwords.hash(password, s.argon2).await?;
        let user: User = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO users (id, username, email, password_hash) VALUES (COALESCE($1, gen_random_uuid()), $2, $3, $4)
             RETURNING {USER_COLUMNS}"
        )))
        .bind(id)
        .bind(username)
        .bind(email.to_ascii_lowercase())
        .bind(hash)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match SecurityError::from(e) {
            SecurityError::Conflict(_) => SecurityError::Conflict("username or email already exists".into()),
            other => other,
        })?;
        self.audit
            .record(
                AuditEvent::new(events::USER_CREATE, Outcome::Success)
                    .user(by, None)
                    .target(user.id.to_string()),
            )
            .await;
        Ok(user)
    }

    pub async fn get_user(&self, id: Uuid) -> SecurityResult<User> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| SecurityError::NotFound("user".into()))
    }

    /// Users that are not deleted, by name, at most `limit` from `offset`.
    pub async fn list_users(&self, limit: i64, offset: i64) -> SecurityResult<Vec<User>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE deleted_at IS NULL ORDER BY username LIMIT $1 OFFSET $2"
        )))
        .bind(limit.clamp(1, 1000))
        .bind(offset.max(0))
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn update_user(
        &self,
        id: Uuid,
        update: UserUpdate,
        by: Option<Uuid>,
    ) -> SecurityResult<User> {
        let current = self.get_user(id).await?;
        if let Some(e) = &update.email {
            input::email(e)?;
        }
        let hash = match &update.password {
            Some(p) => {
                let s = self.settings.get();
                password::check_policy(p, &current.username, &s)?;
                Some(self.passwords.hash(p, s.argon2).await?)
            }
            None => None,
        };
        // From this process's clock, as token `iat_ms` is: the comparison must not depend on
        // the database host's clock agreeing with ours.
        let cutoff = hash.as_ref().map(|_| now_millis());
        let user: User = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE users SET email = COALESCE($2, email), enabled = COALESCE($3, enabled),
                    password_hash = COALESCE($4, password_hash),
                    password_changed_at = CASE WHEN $4 IS NULL THEN password_changed_at ELSE now() END,
                    tokens_valid_after = COALESCE($5, tokens_valid_after),
                    failed_attempts = CASE WHEN $4 IS NULL THEN failed_attempts ELSE 0 END,
                    locked_until = CASE WHEN $4 IS NULL THEN locked_until ELSE NULL END,
                    updated_at = now()
              WHERE id = $1 AND deleted_at IS NULL RETURNING {USER_COLUMNS}"
        )))
        .bind(id)
        .bind(update.email.as_deref().map(str::to_ascii_lowercase))
        .bind(update.enabled)
        .bind(hash)
        .bind(cutoff)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| match SecurityError::from(e) {
            SecurityError::Conflict(_) => SecurityError::Conflict("email already exists".into()),
            other => other,
        })?
        .ok_or_else(|| SecurityError::NotFound("user".into()))?;
        self.invalidate(Some(id));
        let changed: Vec<&str> = [
            ("email", update.email.is_some()),
            ("enabled", update.enabled.is_some()),
            ("password", update.password.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.then_some(k))
        .collect();
        self.audit
            .record(
                AuditEvent::new(events::USER_UPDATE, Outcome::Success)
                    .user(by, None)
                    .target(id.to_string())
                    .detail(json!({"changed": changed})),
            )
            .await;
        Ok(user)
    }

    /// Soft delete: the row stays (audit, foreign keys) but the user can no longer log in, and
    /// every credential of theirs stops working once the change is heard.
    pub async fn delete_user(&self, id: Uuid, by: Option<Uuid>) -> SecurityResult<()> {
        let done = sqlx::query("UPDATE users SET deleted_at = now(), enabled = false, updated_at = now() WHERE id = $1 AND deleted_at IS NULL")
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(SecurityError::NotFound("user".into()));
        }
        self.invalidate(Some(id));
        self.audit
            .record(
                AuditEvent::new(events::USER_DELETE, Outcome::Success)
                    .user(by, None)
                    .target(id.to_string()),
            )
            .await;
        Ok(())
    }

    /// Create the first administrator (Go's fixed id, user `admin`) when no active user holds
    /// the `admin` role. Returns whether one was created. The password is the start-up secret.
    ///
    /// Whoever holds the start-up secret is the operator: when it is given and the first
    /// administrator exists, its login lock (and failure count) is lifted, logged and audited;
    /// its password is left as it is.
    pub async fn ensure_admin(&self, password: Option<&Secret>) -> SecurityResult<bool> {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM users u JOIN user_roles ur ON ur.user_id = u.id
                             WHERE ur.role_id = $1 AND u.deleted_at IS NULL AND u.enabled)",
        )
        .bind(ADMIN_ROLE_ID)
        .fetch_one(&self.pool)
        .await?;
        if exists {
            if password.is_some() {
                self.lift_bootstrap_lock().await?;
            }
            return Ok(false);
        }
        let Some(password) = password else {
            tracing::warn!(
                "no administrator exists and no BIGSKIES_ADMIN_PASSWORD was given; nobody can administer security"
            );
            return Ok(false);
        };
        let password = std::str::from_utf8(password.expose())
            .map_err(|_| SecurityError::invalid("the admin password must be UTF-8"))?;
        let taken: Option<Uuid> = sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
            .bind(ADMIN_USERNAME)
            .fetch_optional(&self.pool)
            .await?;
        let id = match taken {
            // An `admin` user exists but lost the role or was disabled: restore it with the new secret.
            Some(id) => {
                let s = self.settings.get();
                password::check_policy(password, "", &s)?;
                let hash = self.passwords.hash(password, s.argon2).await?;
                sqlx::query(
                    "UPDATE users SET password_hash = $2, enabled = true, deleted_at = NULL, failed_attempts = 0,
                            locked_until = NULL, password_changed_at = now(), tokens_valid_after = $3,
                            updated_at = now() WHERE id = $1",
                )
                .bind(id)
                .bind(hash)
                .bind(now_millis())
                .execute(&self.pool)
                .await?;
                id
            }
            None => {
                self.create_user_with_id(
                    Some(ADMIN_USER_ID),
                    ADMIN_USERNAME,
                    ADMIN_EMAIL,
                    password,
                    None,
                )
                .await?
                .id
            }
        };
        sqlx::query(
            "INSERT INTO user_roles (user_id, role_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(ADMIN_ROLE_ID)
        .execute(&self.pool)
        .await?;
        sqlx::query(
            "INSERT INTO user_groups (user_id, group_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(ADMINISTRATORS_GROUP_ID)
        .execute(&self.pool)
        .await?;
        self.invalidate(Some(id));
        self.audit
            .record(
                AuditEvent::new(events::ADMIN_BOOTSTRAP, Outcome::Success)
                    .user(Some(id), Some(ADMIN_USERNAME)),
            )
            .await;
        tracing::info!("first administrator created from the start-up secret");
        Ok(true)
    }

    /// The start-up secret's unlock of user `admin`, when it is locked or has failures counted.
    async fn lift_bootstrap_lock(&self) -> SecurityResult<()> {
        let pending: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM users WHERE username = $1 AND deleted_at IS NULL
                              AND (locked_until > now() OR failed_attempts > 0))",
        )
        .bind(ADMIN_USERNAME)
        .fetch_one(&self.pool)
        .await?;
        if !pending {
            return Ok(());
        }
        let done = self
            .unlock(
                UserRef::Name(ADMIN_USERNAME),
                None,
                UnlockVia::StartupSecret,
            )
            .await?;
        tracing::warn!(
            user = ADMIN_USERNAME,
            was_locked = done.was_locked,
            cleared_failed_attempts = done.cleared_failed_attempts,
            "start-up secret given: the first administrator's login lock is lifted"
        );
        Ok(())
    }

    // ---- roles, groups, permissions -----------------------------------------------------------

    async fn resolve(&self, table: &'static str, ident: &str) -> SecurityResult<Uuid> {
        let what = if table == "roles" { "role" } else { "group" };
        if Uuid::parse_str(ident).is_err() {
            input::name(what, ident)?;
        }
        let (sql, arg) = ident_query(table, ident);
        let q = sqlx::query_scalar::<_, Uuid>(sqlx::AssertSqlSafe(sql));
        let q = match arg {
            IdentArg::Id(id) => q.bind(id),
            IdentArg::Name(n) => q.bind(n),
        };
        q.fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| SecurityError::NotFound(what.into()))
    }

    pub async fn role_id(&self, ident: &str) -> SecurityResult<Uuid> {
        self.resolve("roles", ident).await
    }

    pub async fn group_id(&self, ident: &str) -> SecurityResult<Uuid> {
        self.resolve("groups", ident).await
    }

    async fn create_named(
        &self,
        table: &'static str,
        name: &str,
        description: Option<&str>,
        by: Option<Uuid>,
    ) -> SecurityResult<Named> {
        let what = if table == "roles" { "role" } else { "group" };
        input::name(what, name)?;
        if let Some(d) = description {
            input::text("description", d)?;
        }
        let row: Named = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (name, description) VALUES ($1, $2) RETURNING id, name, description, created_at"
        )))
        .bind(name)
        .bind(description)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match SecurityError::from(e) {
            SecurityError::Conflict(_) => SecurityError::Conflict(format!("{what} {name} already exists")),
            other => other,
        })?;
        let event = if table == "roles" {
            events::ROLE_CREATE
        } else {
            events::GROUP_CREATE
        };
        self.audit
            .record(
                AuditEvent::new(event, Outcome::Success)
                    .user(by, None)
                    .target(name),
            )
            .await;
        Ok(row)
    }

    pub async fn create_role(
        &self,
        name: &str,
        description: Option<&str>,
        by: Option<Uuid>,
    ) -> SecurityResult<Named> {
        self.create_named("roles", name, description, by).await
    }

    pub async fn create_group(
        &self,
        name: &str,
        description: Option<&str>,
        by: Option<Uuid>,
    ) -> SecurityResult<Named> {
        self.create_named("groups", name, description, by).await
    }

    pub async fn list_roles(&self) -> SecurityResult<Vec<Named>> {
        Ok(
            sqlx::query_as("SELECT id, name, description, created_at FROM roles ORDER BY name")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    pub async fn list_groups(&self) -> SecurityResult<Vec<Named>> {
        Ok(
            sqlx::query_as("SELECT id, name, description, created_at FROM groups ORDER BY name")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Find or create the permission row for `effect` on `action`/`resource`.
    pub async fn permission(
        &self,
        resource: &str,
        action: &str,
        effect: Effect,
    ) -> SecurityResult<Permission> {
        input::pattern("resource", resource)?;
        input::pattern("action", action)?;
        let id: Uuid = sqlx::query_scalar(
            "WITH ins AS (
                INSERT INTO permissions (resource, action, effect) VALUES ($1, $2, $3)
                ON CONFLICT (resource, action, effect) DO NOTHING RETURNING id)
             SELECT id FROM ins UNION ALL
             SELECT id FROM permissions WHERE resource = $1 AND action = $2 AND effect = $3
             LIMIT 1",
        )
        .bind(resource)
        .bind(action)
        .bind(effect.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(Permission {
            id,
            resource: resource.to_owned(),
            action: action.to_owned(),
            effect,
        })
    }

    pub async fn list_permissions(&self) -> SecurityResult<Vec<Permission>> {
        let rows: Vec<(Uuid, String, String, String)> =
            sqlx::query_as("SELECT id, resource, action, effect FROM permissions ORDER BY resource, action, effect").fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, resource, action, effect)| {
                Effect::parse(&effect).map(|effect| Permission {
                    id,
                    resource,
                    action,
                    effect,
                })
            })
            .collect())
    }

    async fn link(
        &self,
        sql: &'static str,
        a: Uuid,
        b: Uuid,
        add: bool,
        audit_target: String,
        by: Option<Uuid>,
    ) -> SecurityResult<bool> {
        let done = sqlx::query(sql).bind(a).bind(b).execute(&self.pool).await?;
        // Any grant change may affect any cached user (roles and groups are shared).
        self.invalidate(None);
        let event = if add { events::GRANT } else { events::UNGRANT };
        self.audit
            .record(
                AuditEvent::new(event, Outcome::Success)
                    .user(by, None)
                    .target(audit_target),
            )
            .await;
        Ok(done.rows_affected() > 0)
    }

    async fn active_user(&self, user: Uuid) -> SecurityResult<()> {
        let ok: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL)",
        )
        .bind(user)
        .fetch_one(&self.pool)
        .await?;
        if ok {
            Ok(())
        } else {
            Err(SecurityError::NotFound("user".into()))
        }
    }

    /// Give `user` the role (idempotent, as in Go).
    pub async fn assign_role(
        &self,
        user: Uuid,
        role: &str,
        by: Option<Uuid>,
    ) -> SecurityResult<()> {
        self.active_user(user).await?;
        let role_id = self.role_id(role).await?;
        self.link(
            "INSERT INTO user_roles (user_id, role_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            user,
            role_id,
            true,
            format!("user:{user} role:{role_id}"),
            by,
        )
        .await
        .map(drop)
    }

    pub async fn unassign_role(
        &self,
        user: Uuid,
        role: &str,
        by: Option<Uuid>,
    ) -> SecurityResult<bool> {
        let role_id = self.role_id(role).await?;
        self.link(
            "DELETE FROM user_roles WHERE user_id = $1 AND role_id = $2",
            user,
            role_id,
            false,
            format!("user:{user} role:{role_id}"),
            by,
        )
        .await
    }

    pub async fn add_to_group(
        &self,
        user: Uuid,
        group: &str,
        by: Option<Uuid>,
    ) -> SecurityResult<()> {
        self.active_user(user).await?;
        let group_id = self.group_id(group).await?;
        self.link(
            "INSERT INTO user_groups (user_id, group_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            user,
            group_id,
            true,
            format!("user:{user} group:{group_id}"),
            by,
        )
        .await
        .map(drop)
    }

    pub async fn remove_from_group(
        &self,
        user: Uuid,
        group: &str,
        by: Option<Uuid>,
    ) -> SecurityResult<bool> {
        let group_id = self.group_id(group).await?;
        self.link(
            "DELETE FROM user_groups WHERE user_id = $1 AND group_id = $2",
            user,
            group_id,
            false,
            format!("user:{user} group:{group_id}"),
            by,
        )
        .await
    }

    /// Attach a permission (allow or deny) to a role.
    pub async fn grant_role(
        &self,
        role: &str,
        resource: &str,
        action: &str,
        effect: Effect,
        by: Option<Uuid>,
    ) -> SecurityResult<Permission> {
        let role_id = self.role_id(role).await?;
        let p = self.permission(resource, action, effect).await?;
        self.link(
            "INSERT INTO role_permissions (role_id, permission_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            role_id,
            p.id,
            true,
            format!("role:{role_id} {}:{}/{}", effect.as_str(), resource, action),
            by,
        )
        .await?;
        Ok(p)
    }

    pub async fn ungrant_role(
        &self,
        role: &str,
        resource: &str,
        action: &str,
        effect: Effect,
        by: Option<Uuid>,
    ) -> SecurityResult<bool> {
        let role_id = self.role_id(role).await?;
        let p = self.permission(resource, action, effect).await?;
        self.link(
            "DELETE FROM role_permissions WHERE role_id = $1 AND permission_id = $2",
            role_id,
            p.id,
            false,
            format!("role:{role_id} {}:{}/{}", effect.as_str(), resource, action),
            by,
        )
        .await
    }

    /// Attach a permission (allow or deny) to a group.
    pub async fn grant_group(
        &self,
        group: &str,
        resource: &str,
        action: &str,
        effect: Effect,
        by: Option<Uuid>,
    ) -> SecurityResult<Permission> {
        let group_id = self.group_id(group).await?;
        let p = self.permission(resource, action, effect).await?;
        self.link(
            "INSERT INTO group_permissions (group_id, permission_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            group_id,
            p.id,
            true,
            format!("group:{group_id} {}:{}/{}", effect.as_str(), resource, action),
            by,
        )
        .await?;
        Ok(p)
    }

    pub async fn ungrant_group(
        &self,
        group: &str,
        resource: &str,
        action: &str,
        effect: Effect,
        by: Option<Uuid>,
    ) -> SecurityResult<bool> {
        let group_id = self.group_id(group).await?;
        let p = self.permission(resource, action, effect).await?;
        self.link(
            "DELETE FROM group_permissions WHERE group_id = $1 AND permission_id = $2",
            group_id,
            p.id,
            false,
            format!(
                "group:{group_id} {}:{}/{}",
                effect.as_str(),
                resource,
                action
            ),
            by,
        )
        .await
    }

    // ---- grants and their cache -------------------------------------------------------------

    /// Load a user's grants from the database, bypassing the cache.
    pub async fn load_grants(&self, user: Uuid) -> SecurityResult<UserGrants> {
        let row: Option<(String, bool, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT username, enabled AND deleted_at IS NULL, tokens_valid_after FROM users WHERE id = $1",
        )
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        let Some((username, active, tokens_valid_after)) = row else {
            return Ok(UserGrants {
                user_id: user,
                username: String::new(),
                active: false,
                roles: vec![],
                grants: vec![],
                tokens_valid_after: None,
            });
        };
        let roles: Vec<String> =
            sqlx::query_scalar("SELECT r.name FROM roles r JOIN user_roles ur ON ur.role_id = r.id WHERE ur.user_id = $1 ORDER BY r.name")
                .bind(user)
                .fetch_all(&self.pool)
                .await?;
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT p.resource, p.action, p.effect FROM permissions p
               JOIN role_permissions rp ON rp.permission_id = p.id
               JOIN user_roles ur ON ur.role_id = rp.role_id WHERE ur.user_id = $1
             UNION
             SELECT p.resource, p.action, p.effect FROM permissions p
               JOIN group_permissions gp ON gp.permission_id = p.id
               JOIN user_groups ug ON ug.group_id = gp.group_id WHERE ug.user_id = $1",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        let grants = rows
            .into_iter()
            .filter_map(|(r, a, e)| Effect::parse(&e).map(|e| Grant::new(r, a, e)))
            .collect();
        Ok(UserGrants {
            user_id: user,
            username,
            active,
            roles,
            grants,
            tokens_valid_after,
        })
    }

    /// A user's grants, from the cache when fresh.
    pub async fn grants(&self, user: Uuid) -> SecurityResult<Arc<UserGrants>> {
        let ttl = self.settings.get().permission_cache_ttl;
        if let Ok(map) = self.cache.entries.read()
            && let Some((at, g)) = map.get(&user)
            && at.elapsed() < ttl
        {
            return Ok(g.clone());
        }
        let generation = self.cache.generation.load(Ordering::Acquire);
        let g = Arc::new(self.load_grants(user).await?);
        if let Ok(mut map) = self.cache.entries.write()
            && self.cache.generation.load(Ordering::Acquire) == generation
        {
            map.insert(user, (Instant::now(), g.clone()));
        }
        Ok(g)
    }

    /// Deny-first decision for `user`.
    pub async fn check(
        &self,
        user: Uuid,
        resource: &str,
        action: &str,
    ) -> SecurityResult<Decision> {
        Ok(self.grants(user).await?.decide(resource, action))
    }

    /// Drop cached grants: one user's, or everyone's.
    pub fn invalidate(&self, user: Option<Uuid>) {
        self.cache.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut map) = self.cache.entries.write() {
            match user {
                Some(u) => {
                    map.remove(&u);
                }
                None => map.clear(),
            }
        }
    }
}

/// Now, cut to whole milliseconds (the precision tokens carry).
fn now_millis() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

/// The largest index `<= max` that is a char boundary of `s`.
fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    (0..=max)
        .rev()
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_ids_match_the_go_seeds() {
        assert_eq!(
            ADMIN_USER_ID.to_string(),
            "00000000-0000-0000-0000-000000000001"
        );
        assert_eq!(
            ADMIN_ROLE_ID.to_string(),
            "10000000-0000-0000-0000-000000000001"
        );
        assert_eq!(
            ADMINISTRATORS_GROUP_ID.to_string(),
            "20000000-0000-0000-0000-000000000001"
        );
    }

    #[test]
    fn char_boundaries() {
        assert_eq!(floor_char_boundary("héllo", 2), 1);
        assert_eq!(floor_char_boundary("abc", 10), 3);
    }

    #[test]
    fn inactive_users_get_nothing() {
        let g = UserGrants {
            user_id: Uuid::nil(),
            username: "x".into(),
            active: false,
            roles: vec![],
            grants: vec![Grant::new("*", "*", Effect::Allow)],
            tokens_valid_after: None,
        };
        assert_eq!(g.decide("a", "b"), Decision::NotGranted);
    }
}
