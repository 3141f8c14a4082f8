//! `device/discover|list|move|connect|disconnect|assign|unassign`.
//!
//! Unlike Go, discovered devices are registered in the engine (keyed by their Alpaca UniqueID)
//! and persisted, so `connect` and the control operations find them. Devices are named by
//! UniqueID or by the Go id `<server_url>-<DeviceType>-<n>`; both appear in every device object.
//!
//! A known UniqueID never moves to another address on discovery (anyone on the LAN can answer
//! discovery with copied UniqueIDs): the address is listed as a pending move in `device/list`,
//! and an administrator confirms it with `device/move`, which the engine checks against what
//! the device says about itself.
//!
//! Rights follow the physical device (`docs/authorization.md`): `discover` and `move` register
//! servers and are the administrator's; `connect`/`disconnect` need the session that holds the device
//! (or `admin`); `assign` needs `write` on the target telescope and control of every other
//! telescope that already uses the device (or `admin`), and is refused (`conflict`) while
//! another user's session holds the device (unless `admin`) or when it would give the device a
//! second holding session (always).

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use bigskies_alpaca::discovery::{DiscoveryOptions, discover};
use bigskies_ascom::{DeviceRecord, LinkState, Role};
use bigskies_core::auth::Principal;
use bigskies_core::error::HandlerError;

use super::access::{
    Perm, has_active_session, holders, lock_devices, lock_telescope, telescopes_using,
};
use super::{TelescopeCoordinator, admin, engine_error, parse_id, rfc3339};

#[derive(Debug, Default, Deserialize)]
pub struct Discover {
    /// An extra UDP discovery port to broadcast on; 0 or absent: the engine's configuration.
    #[serde(default)]
    pub port: u16,
    /// Alpaca servers to ask directly (`http://host:port`): routed networks, real hardware.
    #[serde(default, alias = "server_url")]
    pub servers: ServerList,
}

/// One address or a list of them.
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
pub enum ServerList {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl ServerList {
    fn into_vec(self) -> Vec<String> {
        match self {
            ServerList::None => Vec::new(),
            ServerList::One(s) => vec![s],
            ServerList::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ConnectDevice {
    pub device_id: String,
}

/// `device/move`: an administrator confirms that a known device now answers at `server_url`.
#[derive(Debug, Deserialize)]
pub struct MoveDevice {
    pub device_id: String,
    pub server_url: String,
}

#[derive(Debug, Deserialize)]
pub struct AssignDevice {
    #[serde(alias = "config_id")]
    pub telescope_id: String,
    #[serde(alias = "device_role")]
    pub role: String,
    pub device_id: String,
}

#[derive(Debug, Deserialize)]
pub struct UnassignDevice {
    #[serde(alias = "config_id")]
    pub telescope_id: String,
    #[serde(alias = "device_role")]
    pub role: String,
}

/// The Go `AlpacaDevice` shape, plus the engine's link state and call statistics.
pub fn device_json(d: &DeviceRecord) -> Value {
    let seen = rfc3339(d.last_seen);
    json!({
        "device_id": format!("{}-{}-{}", d.server_url, d.device_type.name(), d.device_number),
        "device_type": d.device_type.name(),
        "device_number": d.device_number,
        "name": d.name,
        "description": "",
        "driver_info": "",
        "driver_version": "",
        "server_url": d.server_url,
        "uuid": d.unique_id,
        "unique_id": d.unique_id,
        "connected": d.state == LinkState::Connected,
        "state": d.state,
        "stats": d.stats,
        "last_seen": seen,
        "created_at": seen,
        "updated_at": seen,
    })
}

impl TelescopeCoordinator {
    /// Administrative: it registers servers. A known UniqueID found elsewhere is not moved.
    pub(crate) async fn discover(&self, p: &Principal, r: Discover) -> Result<Value, HandlerError> {
        if !admin(p) {
            return Err(HandlerError::forbidden(
                "device discovery registers Alpaca servers: the admin role is required",
            ));
        }
        let servers = r.servers.into_vec();
        let mut found = Vec::new();
        if servers.is_empty() {
            // Configured addresses plus the engine's UDP discovery; a request that names
            // another UDP port is also broadcast there.
            found = self.engine.discover().await.map_err(engine_error)?;
            let engine_port = self.engine.config().discovery.as_ref().map(|o| o.port);
            if r.port != 0 && engine_port != Some(r.port) {
                let opts = DiscoveryOptions {
                    port: r.port,
                    window: Duration::from_secs(2),
                    ..DiscoveryOptions::default()
                };
                let answered = discover(&opts)
                    .await
                    .map_err(|e| HandlerError::unavailable(format!("discovery failed: {e}")))?;
                for s in answered {
                    match self.engine.add_server(&s.base_url()).await {
                        Ok(mut d) => found.append(&mut d),
                        Err(e) => {
                            tracing::warn!(server = %s.base_url(), error = %e, "Alpaca server did not list its devices")
                        }
                    }
                }
            }
        } else {
            for url in servers {
                let url = url.trim().trim_end_matches('/').to_owned();
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(HandlerError::invalid(format!(
                        "server {url:?} is not an http(s) URL"
                    )));
                }
                let mut d = self.engine.add_server(&url).await.map_err(engine_error)?;
                found.append(&mut d);
            }
        }
        found.sort_by(|a, b| a.unique_id.cmp(&b.unique_id));
        found.dedup_by(|a, b| a.unique_id == b.unique_id);
        // Report the engine's view (a known device keeps its connection state).
        let devices: Vec<Value> = found
            .iter()
            .map(|d| {
                device_json(
                    &self
                        .engine
                        .device(&d.unique_id)
                        .unwrap_or_else(|| d.clone()),
                )
            })
            .collect();
        Ok(json!({"success": true, "count": devices.len(), "devices": devices}))
    }

    /// The registered devices, and the known devices seen at another address (waiting for an
    /// administrator's `device/move`).
    pub(crate) fn list_devices(&self) -> Value {
        let devices: Vec<Value> = self.engine.devices().iter().map(device_json).collect();
        let moves = self.engine.pending_moves();
        json!({"success": true, "count": devices.len(), "devices": devices, "pending_moves": moves})
    }

    /// Confirm a move: administrative, refused (`conflict`) while the device is connected or
    /// held by an active session, and unless the device at the new address identifies itself
    /// as the registered one (UniqueID, type, number, name, description, driver info).
    pub(crate) async fn move_device(
        &self,
        p: &Principal,
        r: MoveDevice,
    ) -> Result<Value, HandlerError> {
        if !admin(p) {
            return Err(HandlerError::forbidden(
                "moving a device to another address needs the admin role",
            ));
        }
        let url = r.server_url.trim().trim_end_matches('/').to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(HandlerError::invalid(format!(
                "server {url:?} is not an http(s) URL"
            )));
        }
        let id = self.engine.resolve(r.device_id.trim()).ok_or_else(|| {
            HandlerError::not_found(format!("device {} not registered", r.device_id))
        })?;
        // Under the device's lock, so no session takes it between the check and the move.
        let mut tx = self.pool.begin().await.map_err(super::db_error)?;
        lock_devices(&mut tx, std::slice::from_ref(&id)).await?;
        if let Some(h) = holders(&mut *tx, std::slice::from_ref(&id), None)
            .await?
            .first()
        {
            return Err(HandlerError::conflict(format!(
                "device {id} is held by the active session on telescope {}; end it before moving the device",
                h.telescope_id
            )));
        }
        let moved = self
            .engine
            .move_device(&id, &url)
            .await
            .map_err(engine_error)?;
        tx.commit().await.map_err(super::db_error)?;
        Ok(json!({"success": true, "device": device_json(&moved)}))
    }

    /// Connecting or disconnecting a device needs the active session that holds it (the
    /// caller's, on a telescope whose pool has it, with `control` there), or the `admin` role.
    pub(crate) async fn connect_device(
        &self,
        p: &Principal,
        r: ConnectDevice,
        connect: bool,
    ) -> Result<Value, HandlerError> {
        let id = self.engine.resolve(r.device_id.trim()).ok_or_else(|| {
            HandlerError::not_found(format!("device {} not registered", r.device_id))
        })?;
        self.require_device_control(p, &id).await?;
        let result = if connect {
            self.engine.connect(&id).await
        } else {
            self.engine.disconnect(&id).await
        };
        result.map_err(|e| {
            let verb = if connect { "connect" } else { "disconnect" };
            let inner = engine_error(e);
            HandlerError::new(inner.kind, format!("failed to {verb}: {}", inner.message))
        })?;
        let device = self.engine.device(&id).map(|d| device_json(&d));
        Ok(json!({"success": true, "device": device}))
    }

    pub(crate) async fn assign(
        &self,
        p: &Principal,
        r: AssignDevice,
    ) -> Result<Value, HandlerError> {
        let telescope = parse_id("telescope_id", &r.telescope_id)?;
        let role = Role::parse(r.role.trim()).ok_or_else(|| {
            HandlerError::invalid(format!(
                "role {:?} is not one of telescope, camera, dome, focuser, filterwheel, rotator",
                r.role
            ))
        })?;
        let id = self.engine.resolve(r.device_id.trim()).ok_or_else(|| {
            HandlerError::not_found(format!("device {} not registered", r.device_id))
        })?;
        self.require(p, telescope, Perm::Write).await?;
        // Under the locks of the telescope and the device, so no session starts (and no other
        // assign lands) between the checks and the write.
        let mut tx = self.pool.begin().await.map_err(super::db_error)?;
        lock_telescope(&mut tx, telescope).await?;
        lock_devices(&mut tx, std::slice::from_ref(&id)).await?;
        if !admin(p) {
            for other in telescopes_using(&mut *tx, &id).await? {
                if other == telescope {
                    continue;
                }
                let s = self.standing(p, other).await?;
                if !s.holds(p, Perm::Control) {
                    return Err(HandlerError::forbidden(format!(
                        "device {id} is used by telescope {other}, which you may not control"
                    )));
                }
            }
        }
        let held = holders(&mut *tx, std::slice::from_ref(&id), Some(telescope)).await?;
        if let Some(h) = held.first() {
            if has_active_session(&mut *tx, telescope).await? {
                return Err(HandlerError::conflict(format!(
                    "device {id} is held by the active session on telescope {}, and telescope \
                     {telescope} has an active session too; a device has one controlling session \
                     at a time",
                    h.telescope_id
                )));
            }
            if !admin(p)
                && let Some(other) = held.iter().find(|h| h.user_id != p.user_id)
            {
                return Err(other.conflict());
            }
        }
        self.engine
            .assign(telescope, role, &id)
            .await
            .map_err(engine_error)?;
        tx.commit().await.map_err(super::db_error)?;
        Ok(
            json!({"success": true, "telescope_id": telescope, "role": role.as_str(), "device_id": id}),
        )
    }

    pub(crate) async fn unassign(
        &self,
        p: &Principal,
        r: UnassignDevice,
    ) -> Result<Value, HandlerError> {
        let telescope = parse_id("telescope_id", &r.telescope_id)?;
        let role = Role::parse(r.role.trim()).ok_or_else(|| {
            HandlerError::invalid(format!("role {:?} is not a device role", r.role))
        })?;
        self.require(p, telescope, Perm::Write).await?;
        if !self
            .engine
            .unassign(telescope, role)
            .await
            .map_err(engine_error)?
        {
            return Err(HandlerError::not_found(format!(
                "telescope {telescope} has no device in role {}",
                role.as_str()
            )));
        }
        Ok(json!({"success": true}))
    }
}
