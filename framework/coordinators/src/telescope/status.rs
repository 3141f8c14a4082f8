//! `status/get`: every field of the Go status object filled (Go never filled `at_home`,
//! `sidereal_time`, `utc_date`).
//!
//! One `DeviceState` call (Platform 7) gives all operational properties at one instant; a device
//! that does not implement it (older drivers, some real hardware) is read member by member.
//!
//! A mount that cannot be read — disconnected on request, lost by the health checks, or not
//! answering this time — is not an error: the reply is successful, with `connected: false`,
//! `null` for every field that could not be read, and the engine's view in `link_state`
//! (`connected`, `disconnected`, `lost`) and `last_error`. A telescope that does not exist, that
//! the caller may not read, or that has no mount assigned stays an error reply.

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

/// The Go status object, plus the engine's link state and last error. Every reading is
/// `None` (`null`) when the mount could not be read.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct MountStatus {
    pub connected: bool,
    pub tracking: Option<bool>,
    pub slewing: Option<bool>,
    pub at_park: Option<bool>,
    pub at_home: Option<bool>,
    pub right_ascension: Option<f64>,
    pub declination: Option<f64>,
    pub altitude: Option<f64>,
    pub azimuth: Option<f64>,
    pub sidereal_time: Option<f64>,
    pub utc_date: Option<String>,
    pub link_state: Option<LinkState>,
    pub last_error: Option<String>,
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
            tracking: Some(b("Tracking")?),
            slewing: Some(b("Slewing")?),
            at_park: Some(b("AtPark")?),
            at_home: Some(b("AtHome")?),
            right_ascension: Some(f("RightAscension")?),
            declination: Some(f("Declination")?),
            altitude: Some(f("Altitude")?),
            azimuth: Some(f("Azimuth")?),
            sidereal_time: Some(f("SiderealTime")?),
            utc_date: Some(map.get("UTCDate").and_then(|v| v.as_str())?.to_owned()),
            link_state: Some(LinkState::Connected),
            last_error: None,
        })
    }

    /// A mount that could not be read: nothing but the link state and why.
    pub fn unreadable(link_state: LinkState, last_error: Option<String>) -> Self {
        Self {
            connected: false,
            link_state: Some(link_state),
            last_error,
            ..Self::default()
        }
    }
}

/// Whether a failed read means the mount is not reachable (as opposed to a refused or broken
/// request): a transport failure, an HTTP error of the server, or the device saying it is not
/// connected.
fn is_unreachable(e: &EngineError) -> bool {
    match e {
        EngineError::Unreachable { .. }
        | EngineError::Server { .. }
        | EngineError::NotConnected(_) => true,
        EngineError::Device(a) => a.code == ErrorCode::NOT_CONNECTED,
        _ => false,
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
        let status = if record.state != LinkState::Connected {
            // A health check that got `Connected = false` is a failure without an error text.
            let last_error = record.stats.last_error.or_else(|| {
                (record.state == LinkState::Lost).then(|| {
                    format!(
                        "failed {} consecutive health checks",
                        record.stats.consecutive_failures
                    )
                })
            });
            MountStatus::unreadable(record.state, last_error)
        } else {
            match self.read_status(&mount).await {
                Ok(s) => s,
                Err(e) if is_unreachable(&e) => {
                    // Connected as far as the engine knows, but not answering now; the health
                    // checks will mark it lost if it stays so.
                    let state = self.engine.device(&mount).map_or(record.state, |d| d.state);
                    MountStatus::unreadable(state, Some(e.to_string()))
                }
                Err(e) => return Err(engine_error(e)),
            }
        };
        Ok(json!({
            "success": true,
            "telescope_id": telescope,
            "device_id": mount,
            "status": status,
            "last_motion": self.motions.last(telescope),
        }))
    }

    async fn read_status(&self, mount: &str) -> Result<MountStatus, EngineError> {
        let state = self
            .engine
            .call(mount, |t| async move {
                t.telescope().checked().device_state().await
            })
            .await;
        match state {
            Ok(items) => match MountStatus::from_device_state(&items) {
                Some(s) => Ok(s),
                None => self.status_by_member(mount).await,
            },
            Err(EngineError::Device(e)) if e.code == ErrorCode::NOT_IMPLEMENTED => {
                self.status_by_member(mount).await
            }
            Err(e) => Err(e),
        }
    }

    async fn status_by_member(&self, mount: &str) -> Result<MountStatus, EngineError> {
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
                    tracking: Some(tracking),
                    slewing: Some(slewing),
                    at_park: Some(at_park),
                    at_home: Some(at_home),
                    right_ascension: Some(ra),
                    declination: Some(dec),
                    altitude: Some(alt),
                    azimuth: Some(az),
                    sidereal_time: Some(lst),
                    utc_date: Some(super::rfc3339(utc)),
                    link_state: Some(LinkState::Connected),
                    last_error: None,
                })
            })
            .await
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
        assert!(s.connected);
        assert_eq!(
            (s.tracking, s.at_home, s.link_state),
            (Some(true), Some(false), Some(LinkState::Connected))
        );
        assert_eq!(
            (s.right_ascension, s.declination, s.sidereal_time),
            (Some(5.5), Some(10.0), Some(7.25))
        );
        assert_eq!(s.utc_date.as_deref(), Some("2026-11-27T12:00:00.000Z"));
        items.retain(|i| i.name != "SiderealTime");
        assert_eq!(MountStatus::from_device_state(&items), None);
    }

    #[test]
    fn an_unreadable_mount_serialises_nulls_with_its_link_state() {
        let s = MountStatus::unreadable(LinkState::Lost, Some("timed out".into()));
        let v = serde_json::to_value(&s).unwrap_or_default();
        assert_eq!(v["connected"], false);
        assert_eq!(v["link_state"], "lost");
        assert_eq!(v["last_error"], "timed out");
        for field in [
            "tracking",
            "slewing",
            "at_park",
            "at_home",
            "right_ascension",
            "declination",
            "altitude",
            "azimuth",
            "sidereal_time",
            "utc_date",
        ] {
            assert!(v.get(field).is_some_and(Value::is_null), "{field}: {v}");
        }
    }
}
