//! `config/create|update|delete|list|get` and `site/create|update|list|get|delete`.
//!
//! Sites are administered by the `admin` role (create, update, delete) and readable by every
//! authenticated caller. `site/update` is partial like `config/update`: only the fields given
//! change; it is checked whole before anything is written (latitude −90..90, longitude
//! −180..180, elevation −500..10 000 m, a time zone that PostgreSQL's IANA database knows,
//! such as `Europe/Berlin`), and replies `{"success": true, "site": {..}}` with the stored site.
//!
//! Go rules kept for compatibility: `altazimuth` means `altaz`, an unknown mount type on create
//! becomes `equatorial`, an empty/unknown `site_id` on create becomes no site. Go faults fixed:
//! the owner comes from the credential (an administrator may create for another user, and any
//! member may create for a group it belongs to; unknown owners are refused, never invented),
//! updates are partial, an invalid mount type on update is an invalid request, and the list
//! follows group ownership, group grants and grant expiry.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use bigskies_ascom::Role;
use bigskies_core::auth::Principal;
use bigskies_core::error::HandlerError;

use super::access::{Perm, READABLE_BY_USER_1, principal_type};
use super::{TelescopeCoordinator, admin, db_error, is_unique_violation, parse_id, rfc3339};

#[derive(Debug, Deserialize)]
pub struct CreateConfig {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub owner_id: Option<String>,
    #[serde(default)]
    pub owner_type: Option<String>,
    #[serde(default)]
    pub site_id: Option<String>,
    #[serde(default)]
    pub mount_type: String,
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct UpdateConfig {
    #[serde(alias = "config_id", alias = "telescope_id")]
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub mount_type: Option<String>,
    pub enabled: Option<bool>,
    /// `""` removes the site.
    pub site_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct DeleteConfig {
    #[serde(alias = "config_id", alias = "telescope_id")]
    pub id: String,
}

#[derive(Debug, Deserialize)]
pub struct GetConfig {
    #[serde(default, alias = "config_id", alias = "telescope_id")]
    pub id: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListConfigs {
    /// Honoured for administrators only; everyone else lists what they may see.
    #[serde(default)]
    pub user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CreateSite {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default)]
    pub elevation: f64,
    #[serde(default = "utc", alias = "time_zone")]
    pub timezone: String,
}

fn utc() -> String {
    "UTC".into()
}

/// `site/update`: the fields to change; absent (or `null`) ones are left as they are.
#[derive(Debug, Deserialize)]
pub struct UpdateSite {
    #[serde(alias = "site_id")]
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub latitude: Option<f64>,
    #[serde(default)]
    pub longitude: Option<f64>,
    #[serde(default)]
    pub elevation: Option<f64>,
    #[serde(default, alias = "time_zone")]
    pub timezone: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SiteRef {
    #[serde(alias = "site_id")]
    pub id: String,
}

#[derive(Debug, sqlx::FromRow)]
struct ConfigRow {
    id: Uuid,
    name: String,
    description: String,
    owner_id: Uuid,
    owner_type: String,
    site_id: Option<Uuid>,
    mount_type: String,
    enabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const CONFIG_COLUMNS: &str = "c.id, c.name, c.description, c.owner_id, c.owner_type, c.site_id, c.mount_type, c.enabled, c.created_at, c.updated_at";

impl ConfigRow {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "owner_id": self.owner_id,
            "owner_type": self.owner_type,
            "site_id": self.site_id,
            "mount_type": self.mount_type,
            "enabled": self.enabled,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
struct SiteRow {
    id: Uuid,
    name: String,
    description: Option<String>,
    latitude: f64,
    longitude: f64,
    elevation: f64,
    timezone: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl SiteRow {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description.clone().unwrap_or_default(),
            "latitude": self.latitude,
            "longitude": self.longitude,
            "elevation": self.elevation,
            "timezone": self.timezone,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        })
    }
}

fn check_site_name(name: &str) -> Result<(), HandlerError> {
    if name.is_empty() || name.len() > 255 {
        return Err(HandlerError::invalid("name must be 1 to 255 characters"));
    }
    Ok(())
}

fn check_latitude(v: f64) -> Result<(), HandlerError> {
    if !(v.is_finite() && (-90.0..=90.0).contains(&v)) {
        return Err(HandlerError::invalid(
            "latitude must be within -90..90 degrees",
        ));
    }
    Ok(())
}

fn check_longitude(v: f64) -> Result<(), HandlerError> {
    if !(v.is_finite() && (-180.0..=180.0).contains(&v)) {
        return Err(HandlerError::invalid(
            "longitude must be within -180..180 degrees",
        ));
    }
    Ok(())
}

fn check_elevation(v: f64) -> Result<(), HandlerError> {
    if !(v.is_finite() && (-500.0..=10_000.0).contains(&v)) {
        return Err(HandlerError::invalid(
            "elevation must be within -500..10000 metres",
        ));
    }
    Ok(())
}

const BAD_ZONE: &str = "timezone must be an IANA zone name such as Europe/Berlin";

/// Go's mount vocabulary; `None` for a value the schema does not know.
pub fn mount_type(s: &str) -> Option<&'static str> {
    match s.trim().to_ascii_lowercase().as_str() {
        "altaz" | "altazimuth" | "alt-az" => Some("altaz"),
        "equatorial" | "german-equatorial" | "german_equatorial" | "gem" => Some("equatorial"),
        "dobsonian" => Some("dobsonian"),
        _ => None,
    }
}

impl TelescopeCoordinator {
    pub(crate) async fn create_config(
        &self,
        p: &Principal,
        r: CreateConfig,
    ) -> Result<Value, HandlerError> {
        let name = r.name.trim();
        if name.is_empty() || name.len() > 255 {
            return Err(HandlerError::invalid("name must be 1 to 255 characters"));
        }
        let kind = principal_type(r.owner_type.as_deref().unwrap_or("user"))?;
        let owner = match r
            .owner_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None if kind == "user" => p.user_id,
            None => {
                return Err(HandlerError::invalid(
                    "owner_id is required for a group owner",
                ));
            }
            Some(s) => {
                Uuid::parse_str(s).map_err(|_| HandlerError::invalid("Failed to validate user"))?
            }
        };
        self.check_owner(p, kind, owner).await?;
        let mount = mount_type(&r.mount_type).unwrap_or("equatorial");
        let site = match r
            .site_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(s) => match Uuid::parse_str(s) {
                Ok(id) => self.site_exists(id).await?.then_some(id),
                Err(_) => None,
            },
        };
        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO telescope_configurations (name, description, owner_id, owner_type, site_id, mount_type, enabled)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(name)
        .bind(&r.description)
        .bind(owner)
        .bind(kind)
        .bind(site)
        .bind(mount)
        .bind(r.enabled.unwrap_or(true))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                HandlerError::conflict("Failed to create configuration: the owner already has a telescope of that name")
            } else {
                db_error(e)
            }
        })?;
        Ok(json!({"success": true, "id": id}))
    }

    /// A user may own for themself or a group they belong to; an administrator for anyone
    /// who exists.
    async fn check_owner(
        &self,
        p: &Principal,
        kind: &str,
        owner: Uuid,
    ) -> Result<(), HandlerError> {
        if kind == "user" && owner == p.user_id {
            return Ok(());
        }
        let (exists, member): (bool, bool) = if kind == "user" {
            sqlx::query_as(
                "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL), false",
            )
            .bind(owner)
            .fetch_one(&self.pool)
            .await
        } else {
            sqlx::query_as(
                "SELECT EXISTS (SELECT 1 FROM groups WHERE id = $1),
                        EXISTS (SELECT 1 FROM user_groups WHERE group_id = $1 AND user_id = $2)",
            )
            .bind(owner)
            .bind(p.user_id)
            .fetch_one(&self.pool)
            .await
        }
        .map_err(db_error)?;
        if !admin(p) && !member {
            return Err(HandlerError::forbidden(if kind == "user" {
                "only an administrator may create a telescope for another user"
            } else {
                "only members of a group may create a telescope for it"
            }));
        }
        if !exists {
            return Err(HandlerError::not_found(format!(
                "Failed to validate {kind}: {owner} not found"
            )));
        }
        Ok(())
    }

    async fn site_exists(&self, id: Uuid) -> Result<bool, HandlerError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM observatory_sites WHERE id = $1)")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)
    }

    pub(crate) async fn update_config(
        &self,
        p: &Principal,
        r: UpdateConfig,
    ) -> Result<Value, HandlerError> {
        let id = parse_id("id", &r.id)?;
        let mount = match r.mount_type.as_deref() {
            None => None,
            Some(m) => Some(mount_type(m).ok_or_else(|| {
                HandlerError::invalid(format!(
                    "mount_type {m:?} is not altaz, equatorial or dobsonian"
                ))
            })?),
        };
        if let Some(n) = &r.name
            && (n.trim().is_empty() || n.len() > 255)
        {
            return Err(HandlerError::invalid("name must be 1 to 255 characters"));
        }
        // `Some(None)` clears the site; `None` leaves it.
        let site: Option<Option<Uuid>> = match r.site_id.as_deref().map(str::trim) {
            None => None,
            Some("") => Some(None),
            Some(s) => {
                let sid = parse_id("site_id", s)?;
                if !self.site_exists(sid).await? {
                    return Err(HandlerError::not_found(format!("site {sid} not found")));
                }
                Some(Some(sid))
            }
        };
        self.standing(p, id).await.and_then(|s| {
            if s.holds(p, Perm::Write) {
                Ok(())
            } else {
                Err(HandlerError::forbidden(format!(
                    "no write permission on telescope {id}"
                )))
            }
        })?;
        let n = sqlx::query(
            "UPDATE telescope_configurations SET
                 name = COALESCE($2, name), description = COALESCE($3, description),
                 mount_type = COALESCE($4, mount_type), enabled = COALESCE($5, enabled),
                 site_id = CASE WHEN $6 THEN $7 ELSE site_id END, updated_at = now()
              WHERE id = $1",
        )
        .bind(id)
        .bind(r.name.as_deref().map(str::trim))
        .bind(r.description.as_deref())
        .bind(mount)
        .bind(r.enabled)
        .bind(site.is_some())
        .bind(site.flatten())
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                HandlerError::conflict("Failed to update configuration: the owner already has a telescope of that name")
            } else {
                db_error(e)
            }
        })?
        .rows_affected();
        if n == 0 {
            return Err(HandlerError::not_found("Configuration not found"));
        }
        Ok(json!({"success": true}))
    }

    pub(crate) async fn delete_config(
        &self,
        p: &Principal,
        r: DeleteConfig,
    ) -> Result<Value, HandlerError> {
        let id = parse_id("id", &r.id)?;
        let s = self
            .standing(p, id)
            .await
            .map_err(|_| HandlerError::not_found("Configuration not found"))?;
        if !(admin(p) || s.owner) {
            return Err(HandlerError::forbidden(
                "only the telescope's owner may delete it",
            ));
        }
        // Stop whatever the mount is being watched for, and release its devices.
        self.motions.forget(id);
        for role in Role::ALL {
            self.engine
                .unassign(id, role)
                .await
                .map_err(super::engine_error)?;
        }
        let n = sqlx::query("DELETE FROM telescope_configurations WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?
            .rows_affected();
        if n == 0 {
            return Err(HandlerError::not_found("Configuration not found"));
        }
        Ok(json!({"success": true}))
    }

    pub(crate) async fn list_configs(
        &self,
        p: &Principal,
        r: ListConfigs,
    ) -> Result<Value, HandlerError> {
        let for_user = match r
            .user_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(u) if admin(p) => Some(parse_id("user_id", u)?),
            _ if admin(p) => None,
            _ => Some(p.user_id),
        };
        let rows: Vec<ConfigRow> = match for_user {
            None => {
                let sql = format!(
                    "SELECT {CONFIG_COLUMNS} FROM telescope_configurations c ORDER BY c.name, c.id"
                );
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&self.pool)
                    .await
            }
            Some(user) => {
                let sql = format!(
                    "SELECT {CONFIG_COLUMNS} FROM telescope_configurations c
                      WHERE {READABLE_BY_USER_1}
                      ORDER BY c.name, c.id"
                );
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(user)
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(db_error)?;
        let configs: Vec<Value> = rows.iter().map(ConfigRow::to_json).collect();
        Ok(json!({"success": true, "configs": configs}))
    }

    pub(crate) async fn get_config(
        &self,
        p: &Principal,
        r: GetConfig,
    ) -> Result<Value, HandlerError> {
        if r.id.trim().is_empty() {
            return Err(HandlerError::invalid("Configuration ID is required"));
        }
        let id = Uuid::parse_str(r.id.trim())
            .map_err(|_| HandlerError::not_found("Configuration not found"))?;
        let s = self
            .standing(p, id)
            .await
            .map_err(|_| HandlerError::not_found("Configuration not found"))?;
        if !s.holds(p, Perm::Read) {
            return Err(HandlerError::forbidden(format!(
                "no read permission on telescope {id}"
            )));
        }
        let row: ConfigRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CONFIG_COLUMNS} FROM telescope_configurations c WHERE c.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .ok_or_else(|| HandlerError::not_found("Configuration not found"))?;
        let mut config = row.to_json();
        if let (Some(site), Value::Object(map)) = (row.site_id, &mut config)
            && let Some(s) = self.fetch_site(site).await?
        {
            map.insert("site".into(), s.to_json());
        }
        let devices: serde_json::Map<String, Value> = self
            .engine
            .pool(id)
            .into_iter()
            .map(|(role, d)| (role.as_str().to_owned(), super::device::device_json(&d)))
            .collect();
        if let Value::Object(map) = &mut config {
            map.insert("devices".into(), Value::Object(devices));
        }
        Ok(json!({"success": true, "config": config}))
    }

    // ---- sites -------------------------------------------------------------------------------

    pub(crate) async fn create_site(
        &self,
        p: &Principal,
        r: CreateSite,
    ) -> Result<Value, HandlerError> {
        if !admin(p) {
            return Err(HandlerError::forbidden(
                "only an administrator may create observatory sites",
            ));
        }
        let name = r.name.trim();
        check_site_name(name)?;
        check_latitude(r.latitude)?;
        check_longitude(r.longitude)?;
        check_elevation(r.elevation)?;
        let tz = r.timezone.trim();
        self.check_timezone(tz).await?;
        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO observatory_sites (name, description, latitude, longitude, elevation, timezone)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(name)
        .bind(&r.description)
        .bind(r.latitude)
        .bind(r.longitude)
        .bind(r.elevation)
        .bind(tz)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                HandlerError::conflict(format!("a site named {name:?} exists"))
            } else {
                db_error(e)
            }
        })?;
        Ok(json!({"success": true, "id": id}))
    }

    /// A zone name that PostgreSQL's copy of the IANA database knows (`UTC`, `Europe/Berlin`).
    async fn check_timezone(&self, tz: &str) -> Result<(), HandlerError> {
        if tz.is_empty() || tz.len() > 100 || tz.chars().any(char::is_whitespace) {
            return Err(HandlerError::invalid(BAD_ZONE));
        }
        let known: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)")
                .bind(tz)
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)?;
        if known {
            Ok(())
        } else {
            Err(HandlerError::invalid(format!(
                "{BAD_ZONE}; {tz:?} is not one"
            )))
        }
    }

    /// `site/update`: administrators only; every given field is checked before any is written.
    pub(crate) async fn update_site(
        &self,
        p: &Principal,
        r: UpdateSite,
    ) -> Result<Value, HandlerError> {
        if !admin(p) {
            return Err(HandlerError::forbidden(
                "only an administrator may change observatory sites",
            ));
        }
        let id = parse_id("id", &r.id)?;
        let name = r.name.as_deref().map(str::trim);
        if let Some(n) = name {
            check_site_name(n)?;
        }
        if let Some(v) = r.latitude {
            check_latitude(v)?;
        }
        if let Some(v) = r.longitude {
            check_longitude(v)?;
        }
        if let Some(v) = r.elevation {
            check_elevation(v)?;
        }
        let tz = r.timezone.as_deref().map(str::trim);
        if let Some(tz) = tz {
            self.check_timezone(tz).await?;
        }
        if name.is_none()
            && r.description.is_none()
            && r.latitude.is_none()
            && r.longitude.is_none()
            && r.elevation.is_none()
            && tz.is_none()
        {
            return Err(HandlerError::invalid(
                "nothing to update: give name, description, latitude, longitude, elevation or timezone",
            ));
        }
        let row: Option<SiteRow> = sqlx::query_as(
            "UPDATE observatory_sites SET
                 name = COALESCE($2, name), description = COALESCE($3, description),
                 latitude = COALESCE($4, latitude), longitude = COALESCE($5, longitude),
                 elevation = COALESCE($6, elevation), timezone = COALESCE($7, timezone),
                 updated_at = now()
              WHERE id = $1
              RETURNING id, name, description, latitude, longitude, elevation, timezone, created_at, updated_at",
        )
        .bind(id)
        .bind(name)
        .bind(r.description.as_deref())
        .bind(r.latitude)
        .bind(r.longitude)
        .bind(r.elevation)
        .bind(tz)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                HandlerError::conflict(format!(
                    "a site named {:?} exists",
                    name.unwrap_or_default()
                ))
            } else {
                db_error(e)
            }
        })?;
        let site = row.ok_or_else(|| HandlerError::not_found("Site not found"))?;
        Ok(json!({"success": true, "site": site.to_json()}))
    }

    async fn fetch_site(&self, id: Uuid) -> Result<Option<SiteRow>, HandlerError> {
        sqlx::query_as(
            "SELECT id, name, description, latitude, longitude, elevation, timezone, created_at, updated_at
               FROM observatory_sites WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    pub(crate) async fn list_sites(&self) -> Result<Value, HandlerError> {
        let rows: Vec<SiteRow> = sqlx::query_as(
            "SELECT id, name, description, latitude, longitude, elevation, timezone, created_at, updated_at
               FROM observatory_sites ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let sites: Vec<Value> = rows.iter().map(SiteRow::to_json).collect();
        Ok(json!({"success": true, "sites": sites}))
    }

    pub(crate) async fn get_site(&self, r: SiteRef) -> Result<Value, HandlerError> {
        let id = parse_id("id", &r.id)?;
        let site = self
            .fetch_site(id)
            .await?
            .ok_or_else(|| HandlerError::not_found("Site not found"))?;
        Ok(json!({"success": true, "site": site.to_json()}))
    }

    pub(crate) async fn delete_site(
        &self,
        p: &Principal,
        r: SiteRef,
    ) -> Result<Value, HandlerError> {
        if !admin(p) {
            return Err(HandlerError::forbidden(
                "only an administrator may delete observatory sites",
            ));
        }
        let id = parse_id("id", &r.id)?;
        let n = sqlx::query("DELETE FROM observatory_sites WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?
            .rows_affected();
        if n == 0 {
            return Err(HandlerError::not_found("Site not found"));
        }
        Ok(json!({"success": true}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_types_follow_the_go_vocabulary() {
        assert_eq!(mount_type("altazimuth"), Some("altaz"));
        assert_eq!(mount_type(" AltAz"), Some("altaz"));
        assert_eq!(mount_type("german-equatorial"), Some("equatorial"));
        assert_eq!(mount_type("dobsonian"), Some("dobsonian"));
        assert_eq!(mount_type("newtonian"), None);
    }
}
