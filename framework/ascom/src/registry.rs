//! Device records and their statistics.

use std::time::Duration;

use bigskies_alpaca::types::DeviceType;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The role a device plays in a telescope pool (Go: `telescope_devices.device_role`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Telescope,
    Camera,
    Dome,
    Focuser,
    #[serde(alias = "filter_wheel")]
    Filterwheel,
    Rotator,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Telescope,
        Role::Camera,
        Role::Dome,
        Role::Focuser,
        Role::Filterwheel,
        Role::Rotator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Telescope => "telescope",
            Role::Camera => "camera",
            Role::Dome => "dome",
            Role::Focuser => "focuser",
            Role::Filterwheel => "filterwheel",
            Role::Rotator => "rotator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| {
            r.as_str().eq_ignore_ascii_case(s) || (s == "filter_wheel" && *r == Role::Filterwheel)
        })
    }

    /// The Alpaca device type a device in this role must have.
    pub fn device_type(self) -> DeviceType {
        match self {
            Role::Telescope => DeviceType::Telescope,
            Role::Camera => DeviceType::Camera,
            Role::Dome => DeviceType::Dome,
            Role::Focuser => DeviceType::Focuser,
            Role::Filterwheel => DeviceType::FilterWheel,
            Role::Rotator => DeviceType::Rotator,
        }
    }
}

/// Where a device's connection stands, as the engine sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Known but not connected (never asked, or disconnected on request).
    Disconnected,
    /// Connected and answering.
    Connected,
    /// Wanted connected, but failed its health checks; the engine keeps trying.
    Lost,
}

/// Call statistics of one device.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceStats {
    pub calls: u64,
    pub errors: u64,
    pub consecutive_failures: u32,
    /// Mean latency of successful and failed calls, milliseconds.
    pub mean_latency_ms: f64,
    pub last_latency_ms: f64,
    pub last_error: Option<String>,
}

impl DeviceStats {
    pub fn record(&mut self, latency: Duration, error: Option<String>) {
        let ms = latency.as_secs_f64() * 1000.0;
        self.calls += 1;
        self.mean_latency_ms += (ms - self.mean_latency_ms) / self.calls as f64;
        self.last_latency_ms = ms;
        if let Some(e) = error {
            self.errors += 1;
            self.last_error = Some(e);
        }
    }
}

/// What the engine knows about one device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// The Alpaca UniqueID: stable across restarts and addresses.
    pub unique_id: String,
    #[serde(with = "device_type_name")]
    pub device_type: DeviceType,
    pub device_number: u32,
    pub name: String,
    /// `http://host:port` where the device was last seen.
    pub server_url: String,
    pub state: LinkState,
    pub stats: DeviceStats,
    pub last_seen: DateTime<Utc>,
}

/// Device types travel by their ASCOM name (`Telescope`, `FilterWheel`, ...).
pub mod device_type_name {
    use bigskies_alpaca::types::DeviceType;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DeviceType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DeviceType, D::Error> {
        let s = String::deserialize(d)?;
        DeviceType::from_name(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown device type {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_map_to_device_types() {
        assert_eq!(Role::parse("FilterWheel"), Some(Role::Filterwheel));
        assert_eq!(Role::parse("filter_wheel"), Some(Role::Filterwheel));
        assert_eq!(Role::parse("guider"), None);
        assert_eq!(Role::Dome.device_type(), DeviceType::Dome);
    }

    #[test]
    fn stats_keep_a_running_mean() {
        let mut s = DeviceStats::default();
        s.record(Duration::from_millis(10), None);
        s.record(Duration::from_millis(30), Some("boom".into()));
        assert_eq!(s.calls, 2);
        assert_eq!(s.errors, 1);
        assert!((s.mean_latency_ms - 20.0).abs() < 1e-9);
        assert_eq!(s.last_error.as_deref(), Some("boom"));
    }
}
