//! `status/get`: every field of the Go status object filled (Go never filled `at_home`,
//! `sidereal_time`, `utc_date`).
//!
//! One `DeviceState` call (Platform 7) gives all operational properties at one instant; a device
//! that does not implement it (older drivers, some real hardware) is read member by member.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Value, json};

use bigskies_alpaca::error::ErrorCode;
use bigskies_alpaca::types::DeviceStateItem;
use bigskies_ascom::{EngineError, LinkState, Role};
use bigskies_core::auth::Principal;
use bigskies_core::error::HandlerError;

use super::access::Perm;
use super::{TelescopeCoordinator, engine_error, parse_id};

#[derive(Debug, Deserialize)]
pub struct GetStatus {
    #[serde(alias = "device_id", alias = "config_id")]
    pub telescope_id: String,
}

/// The Go status object.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct MountStatus {
    pub connected: bool,
    pub tracking: bool,
    pub slewing: bool,
    pub at_park: bool,
    pub at_home: bool,
    pub right_ascension: f64,
    pub declination: f64,
    pub altitude: f64,
    pub azimuth: f64,
    pub sidereal_time: f64,
    pub utc_date: String,
}

impl MountStatus {
    /// From `DeviceState` items; `None` when a required item is missing.
    pub fn from_device_state(items: &[DeviceStateItem]) -> Option<Self> {
        let map: HashMap<&str, &Value> =
            items.iter().map(|i| (i.name.as_str(), &i.value)).collect();
        let b = |k: &str| map.get(k).and_then(|v| v.as_bool());
        let f = |k: &str| map.get(k).and_then(|v| v.as_f64());
        Some(Self {
            connected: true,
            tracking: b("Tracking")?,
            slewing: b("Slewing")?,
            at_park: b("AtPark")?,
            at_home: b("AtHome")?,
            right_ascension: f("RightAscension")?,
            declination: f("Declination")?,
            altitude: f("Altitude")?,
            azimuth: f("Azimuth")?,
            sidereal_time: f("SiderealTime")?,
            utc_date: map.get("UTCDate").and_then(|v| v.as_str())?.to_owned(),
        })
    }
}

impl TelescopeCoordinator {
    pub(crate) async fn status(&self, p: &Principal, r: GetStatus) -> Result<Value, HandlerError> {
        let telescope = parse_id("telescope_id", &r.telescope_id)?;
        self.require(p, telescope, Perm::Read).await?;
        let mount = self
            .engine
            .in_role(telescope, Role::Telescope)
            .map_err(engine_error)?;
        let record = self
            .engine
            .device(&mount)
            .ok_or_else(|| HandlerError::not_found(format!("device {mount} not registered")))?;
        if record.state != LinkState::Connected {
            return Err(engine_error(EngineError::NotConnected(mount)));
        }
        let state = self
            .engine
            .call(&mount, |t| async move {
                t.telescope().checked().device_state().await
            })
            .await;
        let status = match state {
            Ok(items) => match MountStatus::from_device_state(&items) {
                Some(s) => s,
                None => self.status_by_member(&mount).await?,
            },
            Err(EngineError::Device(e)) if e.code == ErrorCode::NOT_IMPLEMENTED => {
                self.status_by_member(&mount).await?
            }
            Err(e) => return Err(engine_error(e)),
        };
        Ok(json!({
            "success": true,
            "telescope_id": telescope,
            "device_id": mount,
            "status": status,
        }))
    }

    async fn status_by_member(&self, mount: &str) -> Result<MountStatus, HandlerError> {
        self.engine
            .call(mount, |t| async move {
                let s = t.telescope();
                let c = s.checked();
                let (tracking, slewing, at_park, at_home, ra, dec, alt, az, lst, utc) = tokio::try_join!(
                    c.tracking(),
                    c.slewing(),
                    c.at_park(),
                    c.at_home(),
                    c.right_ascension(),
                    c.declination(),
                    c.altitude(),
                    c.azimuth(),
                    c.sidereal_time(),
                    c.utc_date(),
                )?;
                Ok(MountStatus {
                    connected: true,
                    tracking,
                    slewing,
                    at_park,
                    at_home,
                    right_ascension: ra,
                    declination: dec,
                    altitude: alt,
                    azimuth: az,
                    sidereal_time: lst,
                    utc_date: super::rfc3339(utc),
                })
            })
            .await
            .map_err(engine_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_state_fills_every_field_or_none() {
        let mut items = vec![
            DeviceStateItem::new("Altitude", 45.0),
            DeviceStateItem::new("AtHome", false),
            DeviceStateItem::new("AtPark", false),
            DeviceStateItem::new("Azimuth", 180.0),
            DeviceStateItem::new("Declination", 10.0),
            DeviceStateItem::new("RightAscension", 5.5),
            DeviceStateItem::new("SiderealTime", 7.25),
            DeviceStateItem::new("Slewing", false),
            DeviceStateItem::new("Tracking", true),
            DeviceStateItem::new("UTCDate", "2026-11-27T12:00:00.000Z"),
            DeviceStateItem::new("TimeStamp", "2026-11-27T12:00:00.000"),
        ];
        let s = MountStatus::from_device_state(&items).unwrap_or_default();
        assert!(s.connected && s.tracking && !s.at_home);
        assert_eq!(
            (s.right_ascension, s.declination, s.sidereal_time),
            (5.5, 10.0, 7.25)
        );
        assert_eq!(s.utc_date, "2026-11-27T12:00:00.000Z");
        items.retain(|i| i.name != "SiderealTime");
        assert_eq!(MountStatus::from_device_state(&items), None);
    }
}
