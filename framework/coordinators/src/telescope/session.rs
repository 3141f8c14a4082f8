//! `session/start|end|list`: observing sessions, exclusive per telescope.
//!
//! Starting a session needs the telescope's `control` permission (or `admin`); the database's
//! partial unique index admits one active session per telescope, so of two users racing for
//! one telescope exactly one wins, whatever the timing. The session holds every device of the
//! telescope's pool: it is refused (`conflict`, naming the device) while another telescope's
//! active session holds one of them. The check and the insert run in one transaction under the
//! advisory locks of the telescope and of its devices (see [`super::access`]), so of two
//! sessions started at once on telescopes that share a device exactly one wins. The session belongs to the caller
//! (`user_id` in the payload is only honoured for administrators). Only its user or an
//! administrator ends it; `status` defaults to `completed`.
//!
//! `session/list` (`telescope_id`, alias `config_id`/`device_id`, and `active_only`, alias
//! `active`, both optional; `limit` 1..=1000, default 100) replies
//! `{"success": true, "count": n, "sessions": [{"id", "telescope_id", "telescope_name",
//! "user_id", "username", "status", "session_type", "notes", "started_at", "ended_at"}]}`,
//! newest first. Visibility: an administrator sees every session; anyone else sees their own
//! sessions and the sessions on telescopes they may read (owner, owning group, or an unexpired
//! grant to them or a group of theirs), so a user with access to a telescope can see who holds
//! it. A `telescope_id` that names no telescope is `Telescope not found`; one the caller may
//! not read lists only the caller's own sessions on it.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use bigskies_core::auth::Principal;
use bigskies_core::error::HandlerError;

use super::access::{
    Perm, READABLE_BY_USER_1, holders, lock_devices, lock_telescope, pool_devices,
};
use super::{TelescopeCoordinator, admin, db_error, is_unique_violation, parse_id, rfc3339};

#[derive(Debug, Deserialize)]
pub struct StartSession {
    #[serde(alias = "telescope_id", alias = "device_id")]
    pub config_id: String,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default, alias = "session_name")]
    pub session_type: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct EndSession {
    pub session_id: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

/// `session/list` filters; all optional.
#[derive(Debug, Default, Deserialize)]
pub struct ListSessions {
    #[serde(default, alias = "config_id", alias = "device_id")]
    pub telescope_id: Option<String>,
    #[serde(default, alias = "active")]
    pub active_only: Option<bool>,
    #[serde(default)]
    pub limit: Option<i64>,
}

/// Most sessions one `session/list` returns.
pub const MAX_LIST: i64 = 1000;
const DEFAULT_LIST: i64 = 100;

#[derive(Debug, sqlx::FromRow)]
struct SessionRow {
    id: Uuid,
    telescope_id: Uuid,
    telescope_name: String,
    user_id: Uuid,
    username: Option<String>,
    status: String,
    session_type: String,
    notes: Option<String>,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
}

impl SessionRow {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "telescope_id": self.telescope_id,
            "telescope_name": self.telescope_name,
            "user_id": self.user_id,
            "username": self.username,
            "status": self.status,
            "session_type": self.session_type,
            "notes": self.notes,
            "started_at": rfc3339(self.started_at),
            "ended_at": self.ended_at.map(rfc3339),
        })
    }
}

/// Go: any type other than these becomes `manual`.
fn session_type(s: Option<&str>) -> &'static str {
    match s.map(str::trim) {
        Some("automated") => "automated",
        Some("maintenance") => "maintenance",
        _ => "manual",
    }
}

impl TelescopeCoordinator {
    pub(crate) async fn start_session(
        &self,
        p: &Principal,
        r: StartSession,
    ) -> Result<Value, HandlerError> {
        let telescope = parse_id("config_id", &r.config_id)?;
        let user = match r
            .user_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(u) if admin(p) => parse_id("user_id", u)?,
            Some(u) if u != p.user_id.to_string() => {
                return Err(HandlerError::forbidden(
                    "a session can only be started for yourself",
                ));
            }
            _ => p.user_id,
        };
        let standing = self.require(p, telescope, Perm::Control).await?;
        if !standing.enabled {
            return Err(HandlerError::conflict(format!(
                "telescope {telescope} is disabled"
            )));
        }
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        lock_telescope(&mut tx, telescope).await?;
        let devices = pool_devices(&mut *tx, telescope).await?;
        lock_devices(&mut tx, &devices).await?;
        if let Some(h) = holders(&mut *tx, &devices, Some(telescope)).await?.first() {
            return Err(h.conflict());
        }
        let row: Result<(Uuid, DateTime<Utc>), sqlx::Error> = sqlx::query_as(
            "INSERT INTO telescope_sessions (telescope_id, user_id, session_type, notes)
             VALUES ($1, $2, $3, $4) RETURNING id, started_at",
        )
        .bind(telescope)
        .bind(user)
        .bind(session_type(r.session_type.as_deref()))
        .bind(r.notes.as_deref())
        .fetch_one(&mut *tx)
        .await;
        // On an error the transaction rolls back (dropped) and releases the locks.
        let row = match row {
            Ok(r) => tx.commit().await.map(|()| r),
            Err(e) => Err(e),
        };
        match row {
            Ok((id, started_at)) => Ok(json!({
                "success": true,
                "session_id": id,
                "telescope_id": telescope,
                "user_id": user,
                "started_at": rfc3339(started_at),
            })),
            Err(e) if is_unique_violation(&e) => Err(HandlerError::conflict(format!(
                "telescope {telescope} is in use: another session is active"
            ))),
            Err(sqlx::Error::Database(d)) if d.code().as_deref() == Some("23503") => Err(
                HandlerError::not_found("Failed to start session: unknown user or telescope"),
            ),
            Err(e) => Err(db_error(e)),
        }
    }

    pub(crate) async fn end_session(
        &self,
        p: &Principal,
        r: EndSession,
    ) -> Result<Value, HandlerError> {
        let id = Uuid::parse_str(r.session_id.trim())
            .map_err(|_| HandlerError::not_found("Session not found or already ended"))?;
        let status = match r.status.as_deref().map(str::trim) {
            None | Some("") => "completed",
            Some(s @ ("completed" | "aborted" | "error")) => match s {
                "aborted" => "aborted",
                "error" => "error",
                _ => "completed",
            },
            Some(other) => {
                return Err(HandlerError::invalid(format!(
                    "status {other:?} is not completed, aborted or error"
                )));
            }
        };
        let ended: Option<(Uuid, DateTime<Utc>)> = sqlx::query_as(
            "UPDATE telescope_sessions
                SET status = $2, ended_at = now(), notes = COALESCE($3, notes)
              WHERE id = $1 AND status = 'active' AND (user_id = $4 OR $5)
              RETURNING telescope_id, ended_at",
        )
        .bind(id)
        .bind(status)
        .bind(r.notes.as_deref())
        .bind(p.user_id)
        .bind(admin(p))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        let (telescope, ended_at) =
            ended.ok_or_else(|| HandlerError::not_found("Session not found or already ended"))?;
        Ok(json!({
            "success": true,
            "session_id": id,
            "telescope_id": telescope,
            "status": status,
            "ended_at": rfc3339(ended_at),
        }))
    }
}

impl TelescopeCoordinator {
    pub(crate) async fn list_sessions(
        &self,
        p: &Principal,
        r: ListSessions,
    ) -> Result<Value, HandlerError> {
        let telescope = match r
            .telescope_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(t) => Some(parse_id("telescope_id", t)?),
            None => None,
        };
        let limit = r.limit.unwrap_or(DEFAULT_LIST);
        if !(1..=MAX_LIST).contains(&limit) {
            return Err(HandlerError::invalid(format!(
                "limit must be within 1..{MAX_LIST}"
            )));
        }
        if let Some(t) = telescope {
            // Unknown telescope: an error, not an empty list.
            self.standing(p, t).await?;
        }
        let rows: Vec<SessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT s.id, s.telescope_id, c.name AS telescope_name, s.user_id, u.username,
                    s.status, s.session_type, s.notes, s.started_at, s.ended_at
               FROM telescope_sessions s
               JOIN telescope_configurations c ON c.id = s.telescope_id
               LEFT JOIN users u ON u.id = s.user_id
              WHERE ($2::uuid IS NULL OR s.telescope_id = $2)
                AND (NOT $3 OR s.status = 'active')
                AND ($4 OR s.user_id = $1 OR {READABLE_BY_USER_1})
              ORDER BY s.started_at DESC, s.id
              LIMIT $5"
        )))
        .bind(p.user_id)
        .bind(telescope)
        .bind(r.active_only.unwrap_or(false))
        .bind(admin(p))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let sessions: Vec<Value> = rows.iter().map(SessionRow::to_json).collect();
        Ok(json!({"success": true, "count": sessions.len(), "sessions": sessions}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_session_types_become_manual() {
        assert_eq!(session_type(Some("automated")), "automated");
        assert_eq!(session_type(Some("Night of 27 Nov")), "manual");
        assert_eq!(session_type(None), "manual");
    }
}
