//! `session/start|end`: observing sessions, exclusive per telescope.
//!
//! Starting a session needs the telescope's `control` permission (or `admin`); the database's
//! partial unique index admits one active session per telescope, so of two users racing for
//! one telescope exactly one wins, whatever the timing. The session belongs to the caller
//! (`user_id` in the payload is only honoured for administrators). Only its user or an
//! administrator ends it; `status` defaults to `completed`.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use bigskies_core::auth::Principal;
use bigskies_core::error::HandlerError;

use super::access::Perm;
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
        let row: Result<(Uuid, DateTime<Utc>), sqlx::Error> = sqlx::query_as(
            "INSERT INTO telescope_sessions (telescope_id, user_id, session_type, notes)
             VALUES ($1, $2, $3, $4) RETURNING id, started_at",
        )
        .bind(telescope)
        .bind(user)
        .bind(session_type(r.session_type.as_deref()))
        .bind(r.notes.as_deref())
        .fetch_one(&self.pool)
        .await;
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
