//! Wire value types shared by devices, server and client: the ASCOM enums (integers on the
//! wire), `AxisRate`, `DeviceStateItem`, the FITS time stamp, device types and verbs.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::AlpacaError;

/// Declares a fieldless enum that travels as an integer, with `TryFrom<i32>`, `Default` and
/// serde as that integer. Unknown integers are an [`AlpacaError::invalid_value`], because
/// PROTOCOL.md §5 wants e.g. `TrackingRate=5` answered with 0x401, not HTTP 400.
macro_rules! int_enum {
    (
        $(#[$meta:meta])*
        $name:ident default $default:ident { $( $(#[$vmeta:meta])* $variant:ident = $value:expr ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $value ),+
        }

        impl $name {
            /// Every variant, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The integer sent on the wire.
            pub fn to_i32(self) -> i32 {
                self as i32
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::$default
            }
        }

        impl TryFrom<i32> for $name {
            type Error = AlpacaError;
            fn try_from(v: i32) -> Result<Self, AlpacaError> {
                match v {
                    $( x if x == $value => Ok($name::$variant), )+
                    other => Err(AlpacaError::invalid_value(format!(
                        "{} is not a valid {}", other, stringify!($name)
                    ))),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_i32(self.to_i32())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let n = i64::deserialize(d)?;
                let n = i32::try_from(n).map_err(serde::de::Error::custom)?;
                $name::try_from(n).map_err(|e| serde::de::Error::custom(e.message))
            }
        }
    };
}

int_enum! {
    /// Telescope mount geometry.
    AlignmentMode default AltAz { AltAz = 0, Polar = 1, GermanPolar = 2 }
}
int_enum! {
    /// Equatorial coordinate system used by a telescope.
    EquatorialSystem default Other { Other = 0, Topocentric = 1, J2000 = 2, J2050 = 3, B1950 = 4 }
}
int_enum! {
    /// Pointing state of a mount (not the physical side).
    PierSide default Unknown { East = 0, West = 1, Unknown = -1 }
}
int_enum! {
    /// Telescope tracking rate.
    DriveRate default Sidereal { Sidereal = 0, Lunar = 1, Solar = 2, King = 3 }
}
int_enum! {
    /// Pulse-guide direction (North = +Dec, East = +RA).
    GuideDirection default North { North = 0, South = 1, East = 2, West = 3 }
}
int_enum! {
    /// Telescope axis for `MoveAxis`, `AxisRates`, `CanMoveAxis`.
    TelescopeAxis default Primary { Primary = 0, Secondary = 1, Tertiary = 2 }
}
int_enum! {
    /// Camera state machine.
    CameraState default Idle { Idle = 0, Waiting = 1, Exposing = 2, Reading = 3, Download = 4, Error = 5 }
}
int_enum! {
    /// Camera sensor colour layout.
    SensorType default Monochrome { Monochrome = 0, Color = 1, Rggb = 2, Cmyg = 3, Cmyg2 = 4, Lrgb = 5 }
}
int_enum! {
    /// Dome shutter state.
    ShutterState default Closed { Open = 0, Closed = 1, Opening = 2, Closing = 3, Error = 4 }
}

/// One range of `AxisRates` (degrees per second, both ≥ 0).
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct AxisRate {
    #[serde(rename = "Minimum")]
    pub minimum: f64,
    #[serde(rename = "Maximum")]
    pub maximum: f64,
}

impl AxisRate {
    pub fn new(minimum: f64, maximum: f64) -> Self {
        Self { minimum, maximum }
    }
}

/// One `DeviceState` entry: an operational property name (exact ASCOM casing) and its value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceStateItem {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Value")]
    pub value: serde_json::Value,
}

impl DeviceStateItem {
    pub fn new(name: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// Camera `LastExposureStartTime`: a UTC instant written in the FITS form
/// `CCYY-MM-DDThh:mm:ss.sss` with **no** zone suffix (PROTOCOL.md §1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FitsDateTime(pub DateTime<Utc>);

impl FitsDateTime {
    pub fn to_wire(self) -> String {
        self.0.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
    }

    /// Parses the FITS form; a trailing `Z` is tolerated because some devices add one.
    pub fn parse(s: &str) -> Option<Self> {
        parse_iso_utc(s).map(FitsDateTime)
    }
}

impl Default for FitsDateTime {
    fn default() -> Self {
        FitsDateTime(DateTime::<Utc>::UNIX_EPOCH)
    }
}

/// Formats a telescope `UTCDate`: ISO 8601, seven fractional digits, trailing `Z`.
pub fn format_utc_date(t: DateTime<Utc>) -> String {
    // chrono has no 7-digit fraction specifier; a leap second's nanos (≥ 1e9) are clamped.
    let ticks = (t.timestamp_subsec_nanos() / 100).min(9_999_999);
    format!("{}.{ticks:07}Z", t.format("%Y-%m-%dT%H:%M:%S"))
}

/// Parses an ISO 8601 UTC time such as `2016-03-04T17:45:31.1234567Z` (any number of
/// fractional digits up to nanoseconds). An explicit offset is honoured; a missing zone is
/// taken as UTC, which keeps us lenient towards clients that forget the `Z`.
pub fn parse_iso_utc(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix('z'))
        .unwrap_or(s);
    NaiveDateTime::parse_from_str(naive, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

/// The device types this crate serves (Alpaca also defines CoverCalibrator,
/// ObservingConditions, SafetyMonitor and Switch; they are not modelled here).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceType {
    Telescope,
    Camera,
    Dome,
    Focuser,
    FilterWheel,
    Rotator,
}

impl DeviceType {
    pub const ALL: &'static [DeviceType] = &[
        DeviceType::Telescope,
        DeviceType::Camera,
        DeviceType::Dome,
        DeviceType::Focuser,
        DeviceType::FilterWheel,
        DeviceType::Rotator,
    ];

    /// The capitalised ASCOM name used in `configureddevices`.
    pub fn name(self) -> &'static str {
        match self {
            DeviceType::Telescope => "Telescope",
            DeviceType::Camera => "Camera",
            DeviceType::Dome => "Dome",
            DeviceType::Focuser => "Focuser",
            DeviceType::FilterWheel => "FilterWheel",
            DeviceType::Rotator => "Rotator",
        }
    }

    /// The lower-case URL segment.
    pub fn path(self) -> &'static str {
        match self {
            DeviceType::Telescope => "telescope",
            DeviceType::Camera => "camera",
            DeviceType::Dome => "dome",
            DeviceType::Focuser => "focuser",
            DeviceType::FilterWheel => "filterwheel",
            DeviceType::Rotator => "rotator",
        }
    }

    /// The URL segment, exactly (paths are case-sensitive, PROTOCOL.md §1.1).
    pub fn from_path(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.path() == s)
    }

    /// A `DeviceType` name as found in `configureddevices`; case-insensitive like ConformU.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.name().eq_ignore_ascii_case(s))
    }

    /// The latest (Platform 7) interface version of this type.
    pub fn latest_interface_version(self) -> i32 {
        match self {
            DeviceType::Telescope | DeviceType::Camera => 4,
            DeviceType::Focuser | DeviceType::Rotator => 4,
            DeviceType::Dome | DeviceType::FilterWheel => 3,
        }
    }
}

impl fmt::Display for DeviceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The two HTTP verbs Alpaca defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    Get,
    Put,
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verb::Get => "GET",
            Verb::Put => "PUT",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn enums_travel_as_integers_and_reject_unknown_values() {
        assert_eq!(
            serde_json::to_string(&PierSide::Unknown).ok().as_deref(),
            Some("-1")
        );
        assert_eq!(
            serde_json::from_str::<DriveRate>("3").ok(),
            Some(DriveRate::King)
        );
        assert!(serde_json::from_str::<DriveRate>("5").is_err());
        let err = DriveRate::try_from(-1).err().map(|e| e.code);
        assert_eq!(err, Some(crate::ErrorCode::INVALID_VALUE));
    }

    #[test]
    fn axis_rate_and_device_state_use_capitalised_keys() {
        let json = serde_json::to_string(&AxisRate::new(0.0, 6.5)).unwrap_or_default();
        assert_eq!(json, r#"{"Minimum":0.0,"Maximum":6.5}"#);
        let json =
            serde_json::to_string(&DeviceStateItem::new("Tracking", true)).unwrap_or_default();
        assert_eq!(json, r#"{"Name":"Tracking","Value":true}"#);
    }

    #[test]
    fn utc_date_is_written_with_z_and_parsed_with_seven_digits() {
        let t = Utc
            .with_ymd_and_hms(2016, 3, 4, 17, 45, 31)
            .single()
            .map(|t| t + chrono::Duration::nanoseconds(123_456_700));
        let t = t.expect("valid test date");
        assert_eq!(format_utc_date(t), "2016-03-04T17:45:31.1234567Z");
        assert_eq!(parse_iso_utc("2016-03-04T17:45:31.1234567Z"), Some(t));
        assert_eq!(parse_iso_utc("2016-03-04T17:45:31.1234567"), Some(t));
        assert!(parse_iso_utc("yesterday").is_none());
    }

    #[test]
    fn fits_time_has_no_zone_suffix() {
        let t = Utc
            .with_ymd_and_hms(2020, 1, 2, 3, 4, 5)
            .single()
            .expect("valid test date");
        assert_eq!(FitsDateTime(t).to_wire(), "2020-01-02T03:04:05.000");
        assert_eq!(
            FitsDateTime::parse("2020-01-02T03:04:05"),
            Some(FitsDateTime(t))
        );
    }

    #[test]
    fn device_type_paths_are_lower_case_only() {
        assert_eq!(
            DeviceType::from_path("filterwheel"),
            Some(DeviceType::FilterWheel)
        );
        assert_eq!(DeviceType::from_path("Telescope"), None);
        assert_eq!(
            DeviceType::from_name("telescope"),
            Some(DeviceType::Telescope)
        );
    }
}
