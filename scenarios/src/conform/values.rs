//! Which members the checker may call, and with what.
//!
//! The rule for hardware safety: by default the checker only reads, writes the `connected`
//! state, and writes properties **back to the value it just read** (so even a server that
//! wrongly accepts a malformed variant of the request changes nothing). Out-of-range probes
//! are limited to configuration properties that are restored when a faulty server accepts
//! them. Everything that can move hardware, start an exposure, sync the pointing model or set
//! the clock needs `--allow-motion`, and then uses "null moves" (the current position).

use bigskies_alpaca::types::DeviceType;
use bigskies_alpaca::wire::{MemberInfo, ParamKind};
use serde_json::Value;

/// Every Alpaca device type (PROTOCOL.md §1.1), lower case, with the first interface version
/// that has the Platform 7 members (`connect`, `disconnect`, `connecting`, `devicestate`).
pub const ALPACA_TYPES: [(&str, i32); 10] = [
    ("camera", 4),
    ("covercalibrator", 2),
    ("dome", 3),
    ("filterwheel", 3),
    ("focuser", 4),
    ("observingconditions", 2),
    ("rotator", 4),
    ("safetymonitor", 3),
    ("switch", 3),
    ("telescope", 4),
];

/// The Platform 7 common members.
pub const P7_MEMBERS: [&str; 4] = ["Connect", "Disconnect", "Connecting", "DeviceState"];

/// The first interface version with the Platform 7 members, for a lower-case type.
pub fn p7_version(type_path: &str) -> Option<i32> {
    ALPACA_TYPES
        .iter()
        .find(|(t, _)| *t == type_path)
        .map(|(_, v)| *v)
}

/// The `DeviceState` names ConformU accepts per type (plus `TimeStamp`).
pub fn device_state_names(t: DeviceType) -> &'static [&'static str] {
    match t {
        DeviceType::Camera => &[
            "CameraState",
            "CCDTemperature",
            "CoolerPower",
            "HeatSinkTemperature",
            "ImageReady",
            "IsPulseGuiding",
            "PercentCompleted",
        ],
        DeviceType::Dome => &[
            "Altitude",
            "AtHome",
            "AtPark",
            "Azimuth",
            "ShutterStatus",
            "Slewing",
        ],
        DeviceType::FilterWheel => &["Position"],
        DeviceType::Focuser => &["IsMoving", "Position", "Temperature"],
        DeviceType::Rotator => &["IsMoving", "MechanicalPosition", "Position"],
        DeviceType::Telescope => &[
            "Altitude",
            "AtHome",
            "AtPark",
            "Azimuth",
            "Declination",
            "IsPulseGuiding",
            "RightAscension",
            "SideOfPier",
            "SiderealTime",
            "Slewing",
            "Tracking",
            "UTCDate",
        ],
    }
}

/// How harmful a PUT member with parameters can be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Safety {
    /// Connection state, an unknown action, or a property written back with its own value.
    Safe,
    /// Moves, exposes, syncs, sets the clock or sends raw commands: `--allow-motion` only.
    Motion,
}

/// Classifies a PUT member (by its canonical name) of a lower-case device type.
pub fn put_safety(type_path: &str, member: &str) -> Safety {
    let safe: &[&str] = match type_path {
        "telescope" => &[
            "DeclinationRate",
            "DoesRefraction",
            "GuideRateDeclination",
            "GuideRateRightAscension",
            "RightAscensionRate",
            "SiteElevation",
            "SiteLatitude",
            "SiteLongitude",
            "SlewSettleTime",
            "TargetDeclination",
            "TargetRightAscension",
            "Tracking",
            "TrackingRate",
        ],
        "camera" => &[
            "BinX",
            "BinY",
            "CoolerOn",
            "FastReadout",
            "Gain",
            "NumX",
            "NumY",
            "Offset",
            "ReadoutMode",
            "SetCCDTemperature",
            "StartX",
            "StartY",
            "SubExposureDuration",
        ],
        "dome" => &["Slaved"],
        "focuser" => &["TempComp"],
        "rotator" => &["Reverse"],
        _ => &[],
    };
    if matches!(member, "Connected" | "Action") || safe.contains(&member) {
        Safety::Safe
    } else {
        Safety::Motion
    }
}

/// An action name no device should support.
pub const NO_SUCH_ACTION: &str = "BigSkiesConformNoSuchAction";

/// Where the value of a PUT parameter comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Fixed(&'static str),
    /// The current value of these GET members (first readable one), else the fallback.
    Read(&'static [&'static str], &'static str),
    /// Focuser `Move`: the current position when absolute, 0 steps when relative.
    FocuserMove,
}

/// The value source of one parameter of a PUT member, chosen so that the call changes nothing
/// (property written back) or moves as little as possible (null moves).
pub fn source(type_path: &str, member: &MemberInfo, param: &str) -> Source {
    use Source::*;
    match (member.name, param) {
        ("Connected", _) => Fixed("True"),
        ("Action", "Action") => Fixed(NO_SUCH_ACTION),
        ("Action", _) => Fixed(""),
        (_, "Command") => Fixed(""),
        (_, "Raw") => Fixed("False"),
        ("MoveAxis", "Axis") => Fixed("0"),
        ("MoveAxis", "Rate") => Fixed("0"),
        ("PulseGuide", "Direction") => Fixed("0"),
        ("PulseGuide", "Duration") => Fixed("0"),
        ("StartExposure", "Duration") => Read(&["ExposureMin"], "0.001"),
        ("StartExposure", "Light") => Fixed("False"),
        ("TargetRightAscension", _) => Read(&["TargetRightAscension", "RightAscension"], "0"),
        ("TargetDeclination", _) => Read(&["TargetDeclination", "Declination"], "0"),
        (_, "RightAscension") => Read(&["RightAscension"], "0"),
        (_, "Declination") => Read(&["Declination"], "0"),
        (_, "Azimuth") => Read(&["Azimuth"], "0"),
        (_, "Altitude") => Read(&["Altitude"], "0"),
        ("Move", _) if type_path == "focuser" => FocuserMove,
        ("Move", _) => Fixed("0"),
        ("MoveAbsolute" | "Sync", _) => Read(&["Position"], "0"),
        ("MoveMechanical", _) => Read(&["MechanicalPosition"], "0"),
        // A property write: its own current value.
        (name, _) => Read(property_source(name), "0"),
    }
}

/// `&["Name"]` for the property `Name` (static strings for the member tables' names).
fn property_source(name: &'static str) -> &'static [&'static str] {
    // The member tables hold `&'static str`; a one-element slice of it needs a static home.
    macro_rules! one {
        ($($n:literal),* $(,)?) => {
            match name { $($n => &[$n],)* _ => &[] }
        };
    }
    one!(
        "DeclinationRate",
        "DoesRefraction",
        "GuideRateDeclination",
        "GuideRateRightAscension",
        "RightAscensionRate",
        "SideOfPier",
        "SiteElevation",
        "SiteLatitude",
        "SiteLongitude",
        "SlewSettleTime",
        "Tracking",
        "TrackingRate",
        "UTCDate",
        "BinX",
        "BinY",
        "CoolerOn",
        "FastReadout",
        "Gain",
        "NumX",
        "NumY",
        "Offset",
        "ReadoutMode",
        "SetCCDTemperature",
        "StartX",
        "StartY",
        "SubExposureDuration",
        "Slaved",
        "TempComp",
        "Position",
        "Reverse",
    )
}

/// The fallback text for a kind when nothing could be read.
pub fn kind_default(kind: ParamKind) -> &'static str {
    match kind {
        ParamKind::Bool => "False",
        ParamKind::Int | ParamKind::Enum(_) => "0",
        ParamKind::Double => "0",
        ParamKind::String => "",
        ParamKind::Date => "",
    }
}

/// A JSON value read from the device, as parameter text of `kind`.
pub fn as_param(v: &Value, kind: ParamKind) -> Option<String> {
    match (kind, v) {
        (ParamKind::Bool, Value::Bool(b)) => Some(if *b { "True" } else { "False" }.to_owned()),
        (ParamKind::Int | ParamKind::Enum(_), Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .map(|n| n.to_string()),
        (ParamKind::Double, Value::Number(n)) => Some(n.to_string()),
        (ParamKind::String | ParamKind::Date, Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// A value of `kind` that cannot be parsed at all (strings parse as anything: none).
pub fn garbage(kind: ParamKind) -> Option<&'static str> {
    match kind {
        ParamKind::String => None,
        ParamKind::Date => Some("yesterday"),
        _ => Some("asduio6fghZZ"),
    }
}

/// Inverts the case of every letter (`BinX` → `bINx`); `None` when nothing changes.
pub fn invert_case(name: &str) -> Option<String> {
    let out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_uppercase() {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect();
    (out != name).then_some(out)
}

/// Malformed transaction ids (ConformU strict mode expects HTTP 400 for each).
pub const BAD_IDS: [(&str, &str); 8] = [
    ("ClientID", ""),
    ("ClientID", "  "),
    ("ClientID", "-1"),
    ("ClientID", "asdqwe"),
    ("ClientTransactionID", ""),
    ("ClientTransactionID", "  "),
    ("ClientTransactionID", "-1"),
    ("ClientTransactionID", "asdqwe"),
];

/// Out-of-range writes per type: (property, value). Each must be answered with
/// HTTP 200 + InvalidValue (0x401), never HTTP 400 (PROTOCOL.md §1.4); the original value is
/// written back if a faulty server accepts one. Values derived from the device (MaxBinX + 1,
/// the number of readout modes) are added by the caller.
pub fn out_of_range(t: DeviceType) -> &'static [(&'static str, &'static str)] {
    match t {
        DeviceType::Telescope => &[
            ("SiteElevation", "-400"),
            ("SiteElevation", "10001"),
            ("SiteLatitude", "-91"),
            ("SiteLatitude", "91"),
            ("SiteLongitude", "-181"),
            ("SiteLongitude", "181"),
            ("SlewSettleTime", "-1"),
            ("TrackingRate", "-1"),
            ("TrackingRate", "5"),
            ("TargetRightAscension", "-1"),
            ("TargetRightAscension", "25"),
            ("TargetDeclination", "-91"),
            ("TargetDeclination", "91"),
        ],
        DeviceType::Camera => &[
            ("BinX", "0"),
            ("BinY", "0"),
            ("SetCCDTemperature", "-280"),
            ("SetCCDTemperature", "100"),
        ],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bigskies_alpaca::devices::{COMMON_MEMBERS, members_of};
    use bigskies_alpaca::types::Verb;

    #[test]
    fn motion_members_are_never_safe() {
        for m in [
            "SlewToCoordinatesAsync",
            "MoveAxis",
            "SideOfPier",
            "UTCDate",
        ] {
            assert_eq!(put_safety("telescope", m), Safety::Motion, "{m}");
        }
        assert_eq!(put_safety("filterwheel", "Position"), Safety::Motion);
        assert_eq!(put_safety("focuser", "Move"), Safety::Motion);
        assert_eq!(put_safety("camera", "StartExposure"), Safety::Motion);
        assert_eq!(put_safety("switch", "CommandBlind"), Safety::Motion);
        assert_eq!(put_safety("telescope", "Tracking"), Safety::Safe);
        assert_eq!(put_safety("switch", "Connected"), Safety::Safe);
    }

    #[test]
    fn every_safe_property_write_is_written_back_with_its_own_value() {
        for t in DeviceType::ALL {
            for m in COMMON_MEMBERS.iter().chain(members_of(*t)) {
                if m.verb != Verb::Put || m.params.is_empty() {
                    continue;
                }
                for p in m.params {
                    let s = source(t.path(), m, p.name);
                    if let Source::Read(names, _) = s {
                        assert!(!names.is_empty(), "{t} {} {}: no source", m.name, p.name);
                    }
                    if put_safety(t.path(), m.name) == Safety::Safe
                        && !matches!(m.name, "Connected" | "Action")
                    {
                        assert!(
                            matches!(s, Source::Read(names, _) if names[0] == m.name),
                            "{t} {}: safe writes use the current value, got {s:?}",
                            m.name
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn parameter_text_helpers() {
        assert_eq!(invert_case("BinX").as_deref(), Some("bINx"));
        assert_eq!(invert_case("123"), None);
        assert_eq!(
            as_param(&serde_json::json!(2.0), ParamKind::Int).as_deref(),
            Some("2")
        );
        assert_eq!(
            as_param(&serde_json::json!(true), ParamKind::Bool).as_deref(),
            Some("True")
        );
        assert_eq!(as_param(&serde_json::json!("x"), ParamKind::Bool), None);
        assert_eq!(p7_version("dome"), Some(3));
        assert_eq!(p7_version("toaster"), None);
    }
}
