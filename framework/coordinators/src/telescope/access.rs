//! Per-telescope permissions: who may read, configure and control a telescope, and the grants
//! (`permission/grant|revoke|list`) that extend that beyond the owner, optionally until a time.
//!
//! Ownership: the owning user, or every member of the owning group. Grants name a user or a
//! group and one of `read`, `write`, `control`; an expired grant counts for nothing. The
//! `admin` role may do everything. Control additionally needs an active session of the caller.
//!
//! Rights attach to the physical device too (`docs/authorization.md`, "Telescopes and
//! devices"): a device (Alpaca UniqueID) may appear in the pools of several telescopes, but at
//! most one active session holds it. The session on a telescope holds every device of its
//! pool; a session is not started while another telescope's active session holds one of them,
//! and a device is not put into a telescope that would give it a second holder. Both decisions
//! are taken under PostgreSQL advisory transaction locks, first on the telescope, then on each
//! device in sorted order, so two requests racing for one device are serialized.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use bigskies_core::auth::Principal;
use bigskies_core::error::HandlerError;

use super::{TelescopeCoordinator, admin, db_error, parse_id, rfc3339};

/// A permission on one telescope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perm {
    Read,
    Write,
    Control,
}

impl Perm {
    pub fn as_str(self) -> &'static str {
        match self {
            Perm::Read => "read",
            Perm::Write => "write",
            Perm::Control => "control",
        }
    }

    pub fn parse(s: &str) -> Option<Perm> {
        [Perm::Read, Perm::Write, Perm::Control]
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether a grant of `granted` satisfies a need for `self` (write and control imply read).
    fn satisfied_by(self, granted: &str) -> bool {
        granted == self.as_str()
            || (self == Perm::Read && (granted == "write" || granted == "control"))
    }
}

/// What the caller has on one telescope, read in one query.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Standing {
    pub enabled: bool,
    pub owner: bool,
    pub grants: Vec<String>,
    pub in_session: bool,
}

impl Standing {
    pub fn holds(&self, p: &Principal, perm: Perm) -> bool {
        admin(p) || self.owner || self.grants.iter().any(|g| perm.satisfied_by(g))
    }
}

/// SQL condition: telescope `c` is readable by user `$1` — owned by them or a group of
/// theirs, or granted (any permission, unexpired) to them or a group of theirs. The `admin`
/// role is not part of it; callers handle administrators themselves.
pub(crate) const READABLE_BY_USER_1: &str = "
    ((c.owner_type = 'user' AND c.owner_id = $1)
     OR (c.owner_type = 'group' AND EXISTS (
         SELECT 1 FROM user_groups g WHERE g.group_id = c.owner_id AND g.user_id = $1))
     OR EXISTS (
         SELECT 1 FROM telescope_permissions tp
          WHERE tp.telescope_id = c.id
            AND (tp.expires_at IS NULL OR tp.expires_at > now())
            AND ((tp.principal_type = 'user' AND tp.principal_id = $1)
                 OR (tp.principal_type = 'group' AND EXISTS (
                     SELECT 1 FROM user_groups g WHERE g.group_id = tp.principal_id AND g.user_id = $1)))))";

const STANDING: &str = "
SELECT c.enabled,
       ((c.owner_type = 'user' AND c.owner_id = $2)
        OR (c.owner_type = 'group' AND EXISTS (
            SELECT 1 FROM user_groups g WHERE g.group_id = c.owner_id AND g.user_id = $2))) AS owner,
       COALESCE((SELECT array_agg(DISTINCT p.permission::text) FROM telescope_permissions p
                  WHERE p.telescope_id = c.id
                    AND (p.expires_at IS NULL OR p.expires_at > now())
                    AND ((p.principal_type = 'user' AND p.principal_id = $2)
                         OR (p.principal_type = 'group' AND EXISTS (
                             SELECT 1 FROM user_groups g WHERE g.group_id = p.principal_id AND g.user_id = $2)))),
                '{}'::text[]) AS grants,
       EXISTS (SELECT 1 FROM telescope_sessions s
                WHERE s.telescope_id = c.id AND s.user_id = $2 AND s.status = 'active') AS in_session
  FROM telescope_configurations c
 WHERE c.id = $1";

/// First key of the advisory locks on telescopes (`pg_advisory_xact_lock(ns, hashtext(id))`).
const LOCK_TELESCOPE: &str = "bigskies.telescope";
/// First key of the advisory locks on devices.
const LOCK_DEVICE: &str = "bigskies.device";

/// An active session that holds a device: the session on a telescope whose pool has it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Holder {
    pub unique_id: String,
    pub telescope_id: Uuid,
    pub user_id: Uuid,
}

impl Holder {
    /// The refusal for someone who wants the device this session holds.
    pub fn conflict(&self) -> HandlerError {
        HandlerError::conflict(format!(
            "device {} is held by another session: the active session on telescope {} uses it; \
             a device has one controlling session at a time",
            self.unique_id, self.telescope_id
        ))
    }
}

/// Active sessions holding any of `devices` through a telescope other than `except`.
pub(crate) async fn holders<'e>(
    db: impl PgExecutor<'e>,
    devices: &[String],
    except: Option<Uuid>,
) -> Result<Vec<Holder>, HandlerError> {
    if devices.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as::<_, Holder>(
        "SELECT q.unique_id, q.telescope_id, s.user_id
           FROM telescope_pools q
           JOIN telescope_sessions s ON s.telescope_id = q.telescope_id AND s.status = 'active'
          WHERE q.unique_id = ANY($1) AND ($2::uuid IS NULL OR q.telescope_id <> $2)
          ORDER BY q.unique_id, q.telescope_id",
    )
    .bind(devices)
    .bind(except)
    .fetch_all(db)
    .await
    .map_err(db_error)
}

/// The devices of `telescope`'s pool, sorted (the order their locks are taken in).
pub(crate) async fn pool_devices<'e>(
    db: impl PgExecutor<'e>,
    telescope: Uuid,
) -> Result<Vec<String>, HandlerError> {
    sqlx::query_scalar(
        "SELECT DISTINCT unique_id FROM telescope_pools WHERE telescope_id = $1 ORDER BY unique_id",
    )
    .bind(telescope)
    .fetch_all(db)
    .await
    .map_err(db_error)
}

/// The telescopes whose pool holds `device`.
pub(crate) async fn telescopes_using<'e>(
    db: impl PgExecutor<'e>,
    device: &str,
) -> Result<Vec<Uuid>, HandlerError> {
    sqlx::query_scalar(
        "SELECT DISTINCT telescope_id FROM telescope_pools WHERE unique_id = $1 ORDER BY telescope_id",
    )
    .bind(device)
    .fetch_all(db)
    .await
    .map_err(db_error)
}

/// Whether `telescope` has an active session.
pub(crate) async fn has_active_session<'e>(
    db: impl PgExecutor<'e>,
    telescope: Uuid,
) -> Result<bool, HandlerError> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM telescope_sessions WHERE telescope_id = $1 AND status = 'active')",
    )
    .bind(telescope)
    .fetch_one(db)
    .await
    .map_err(db_error)
}

/// Take the transaction's lock on `telescope`: whoever changes its sessions or its pool under
/// this lock sees the other's committed result. Always taken before any device lock.
pub(crate) async fn lock_telescope(
    tx: &mut PgConnection,
    telescope: Uuid,
) -> Result<(), HandlerError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))")
        .bind(LOCK_TELESCOPE)
        .bind(telescope.to_string())
        .execute(tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Take the transaction's locks on `devices`, in sorted order (no two transactions wait for
/// each other's devices).
pub(crate) async fn lock_devices(
    tx: &mut PgConnection,
    devices: &[String],
) -> Result<(), HandlerError> {
    let mut sorted: Vec<&String> = devices.iter().collect();
    sorted.sort();
    sorted.dedup();
    for d in sorted {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))")
            .bind(LOCK_DEVICE)
            .bind(d)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
pub struct GrantPermission {
    pub telescope_id: String,
    pub principal_id: String,
    #[serde(default = "user_type")]
    pub principal_type: String,
    pub permission: String,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

fn user_type() -> String {
    "user".into()
}

#[derive(Debug, Deserialize)]
pub struct RevokePermission {
    pub telescope_id: String,
    pub principal_id: String,
    #[serde(default = "user_type")]
    pub principal_type: String,
    pub permission: String,
}

#[derive(Debug, Deserialize)]
pub struct ListPermissions {
    pub telescope_id: String,
}

#[derive(sqlx::FromRow)]
struct GrantRow {
    id: Uuid,
    principal_id: Uuid,
    principal_type: String,
    permission: String,
    granted_by: Option<Uuid>,
    granted_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
}

impl TelescopeCoordinator {
    /// The caller's standing on `telescope`; `Telescope not found` when there is no such one.
    pub(crate) async fn standing(
        &self,
        p: &Principal,
        telescope: Uuid,
    ) -> Result<Standing, HandlerError> {
        sqlx::query_as::<_, Standing>(STANDING)
            .bind(telescope)
            .bind(p.user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .ok_or_else(|| HandlerError::not_found("Telescope not found"))
    }

    /// Require `perm` on `telescope`.
    pub(crate) async fn require(
        &self,
        p: &Principal,
        telescope: Uuid,
        perm: Perm,
    ) -> Result<Standing, HandlerError> {
        let s = self.standing(p, telescope).await?;
        if !s.holds(p, perm) {
            return Err(HandlerError::forbidden(format!(
                "no {} permission on telescope {telescope}",
                perm.as_str()
            )));
        }
        Ok(s)
    }

    /// Require the right to move the mount: `control` plus an active session of the caller,
    /// or the `admin` role; the telescope must be enabled; and (for everyone but an
    /// administrator) no device of its pool may be held by another telescope's session.
    pub(crate) async fn require_control(
        &self,
        p: &Principal,
        telescope: Uuid,
    ) -> Result<(), HandlerError> {
        let s = self.require(p, telescope, Perm::Control).await?;
        if !s.enabled {
            return Err(HandlerError::conflict(format!(
                "telescope {telescope} is disabled"
            )));
        }
        if admin(p) {
            return Ok(());
        }
        if !s.in_session {
            return Err(HandlerError::forbidden(format!(
                "an active session on telescope {telescope} is required to control it"
            )));
        }
        // Session start and assign keep a device to one holder; this guards against rows
        // written around them (or before the rule existed).
        let devices = pool_devices(&self.pool, telescope).await?;
        if let Some(h) = holders(&self.pool, &devices, Some(telescope))
            .await?
            .first()
        {
            return Err(h.conflict());
        }
        Ok(())
    }

    /// Require the right to connect or disconnect `device`: an active session of the caller on
    /// a telescope whose pool holds it (with `control` there still granted) and no other
    /// user's session holding it; or the `admin` role.
    pub(crate) async fn require_device_control(
        &self,
        p: &Principal,
        device: &str,
    ) -> Result<(), HandlerError> {
        if admin(p) {
            return Ok(());
        }
        let held = holders(&self.pool, &[device.to_owned()], None).await?;
        if let Some(other) = held.iter().find(|h| h.user_id != p.user_id) {
            return Err(other.conflict());
        }
        for h in &held {
            let s = self.standing(p, h.telescope_id).await?;
            if s.holds(p, Perm::Control) && s.enabled {
                return Ok(());
            }
        }
        Err(HandlerError::forbidden(format!(
            "an active session of yours on a telescope that uses device {device} is required \
             to connect or disconnect it"
        )))
    }

    /// Only the owner (or an administrator) hands out and withdraws grants.
    async fn require_owner(&self, p: &Principal, telescope: Uuid) -> Result<(), HandlerError> {
        let s = self.standing(p, telescope).await?;
        if admin(p) || s.owner {
            Ok(())
        } else {
            Err(HandlerError::forbidden(
                "only the telescope's owner may manage its permissions",
            ))
        }
    }

    pub(crate) async fn grant(
        &self,
        p: &Principal,
        r: GrantPermission,
    ) -> Result<Value, HandlerError> {
        let telescope = parse_id("telescope_id", &r.telescope_id)?;
        let principal = parse_id("principal_id", &r.principal_id)?;
        let perm = Perm::parse(&r.permission)
            .ok_or_else(|| HandlerError::invalid("permission must be read, write or control"))?;
        let kind = principal_type(&r.principal_type)?;
        if let Some(t) = r.expires_at
            && t <= Utc::now()
        {
            return Err(HandlerError::invalid("expires_at is in the past"));
        }
        self.require_owner(p, telescope).await?;
        self.principal_exists(kind, principal).await?;
        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO telescope_permissions (telescope_id, principal_id, principal_type, permission, granted_by, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (telescope_id, principal_id, principal_type, permission)
             DO UPDATE SET granted_by = EXCLUDED.granted_by, granted_at = now(), expires_at = EXCLUDED.expires_at
             RETURNING id",
        )
        .bind(telescope)
        .bind(principal)
        .bind(kind)
        .bind(perm.as_str())
        .bind(p.user_id)
        .bind(r.expires_at)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(json!({"success": true, "id": id}))
    }

    pub(crate) async fn revoke(
        &self,
        p: &Principal,
        r: RevokePermission,
    ) -> Result<Value, HandlerError> {
        let telescope = parse_id("telescope_id", &r.telescope_id)?;
        let principal = parse_id("principal_id", &r.principal_id)?;
        let kind = principal_type(&r.principal_type)?;
        let perm = Perm::parse(&r.permission)
            .ok_or_else(|| HandlerError::invalid("permission must be read, write or control"))?;
        self.require_owner(p, telescope).await?;
        let n = sqlx::query(
            "DELETE FROM telescope_permissions
              WHERE telescope_id = $1 AND principal_id = $2 AND principal_type = $3 AND permission = $4",
        )
        .bind(telescope)
        .bind(principal)
        .bind(kind)
        .bind(perm.as_str())
        .execute(&self.pool)
        .await
        .map_err(db_error)?
        .rows_affected();
        if n == 0 {
            return Err(HandlerError::not_found("Permission not found"));
        }
        Ok(json!({"success": true}))
    }

    pub(crate) async fn list_permissions(
        &self,
        p: &Principal,
        r: ListPermissions,
    ) -> Result<Value, HandlerError> {
        let telescope = parse_id("telescope_id", &r.telescope_id)?;
        self.require(p, telescope, Perm::Read).await?;
        let rows: Vec<GrantRow> = sqlx::query_as(
            "SELECT id, principal_id, principal_type, permission, granted_by, granted_at, expires_at
               FROM telescope_permissions WHERE telescope_id = $1 ORDER BY granted_at",
        )
        .bind(telescope)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let now = Utc::now();
        let list: Vec<Value> = rows
            .into_iter()
            .map(|g| {
                json!({
                    "id": g.id,
                    "telescope_id": telescope,
                    "principal_id": g.principal_id,
                    "principal_type": g.principal_type,
                    "permission": g.permission,
                    "granted_by": g.granted_by,
                    "granted_at": rfc3339(g.granted_at),
                    "expires_at": g.expires_at.map(rfc3339),
                    "expired": g.expires_at.is_some_and(|t| t <= now),
                })
            })
            .collect();
        Ok(json!({"success": true, "permissions": list}))
    }

    async fn principal_exists(&self, kind: &str, id: Uuid) -> Result<(), HandlerError> {
        let sql = if kind == "user" {
            "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL)"
        } else {
            "SELECT EXISTS (SELECT 1 FROM groups WHERE id = $1)"
        };
        let exists: bool = sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        if exists {
            Ok(())
        } else {
            Err(HandlerError::not_found(format!("{kind} {id} not found")))
        }
    }
}

pub(crate) fn principal_type(s: &str) -> Result<&'static str, HandlerError> {
    match s.trim() {
        "" | "user" => Ok("user"),
        "group" => Ok("group"),
        other => Err(HandlerError::invalid(format!(
            "principal type {other:?} is not user or group"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_and_control_imply_read_but_not_each_other() {
        assert!(Perm::Read.satisfied_by("control"));
        assert!(Perm::Read.satisfied_by("write"));
        assert!(!Perm::Control.satisfied_by("write"));
        assert!(!Perm::Write.satisfied_by("read"));
        assert_eq!(Perm::parse(" Control"), Some(Perm::Control));
        assert_eq!(Perm::parse("own"), None);
    }
}
