//! Every member of every device type, driven from the protocol crate's member tables and
//! sent through its client: GETs must answer with a `Value` of the declared kind (or an ASCOM
//! error), property writes are read back, methods get plausible arguments, and nothing may
//! come back as HTTP 400/500, undecodable, NotConnected, or NotImplemented unless the device
//! says it lacks that capability.

use std::collections::{BTreeMap, BTreeSet};

use bigskies_alpaca::ErrorCode;
use bigskies_alpaca::client::ClientError;
use bigskies_alpaca::devices::{
    CAMERA_MEMBERS, COMMON_MEMBERS, DOME_MEMBERS, FILTER_WHEEL_MEMBERS, FOCUSER_MEMBERS,
    ROTATOR_MEMBERS, TELESCOPE_MEMBERS,
};
use bigskies_alpaca::image::ImageArray;
use bigskies_alpaca::types::{DeviceType, Verb};
use bigskies_alpaca::wire::{MemberInfo, ParamKind, ReplyValue, ValueKind, WireValue};
use serde_json::Value;

use crate::common::Sim;

/// Any JSON `Value` (or none), so one call path serves every member.
struct AnyJson(Option<Value>);

impl WireValue for AnyJson {
    const KIND: ValueKind = ValueKind::String;
    fn into_reply(self) -> Option<ReplyValue> {
        self.0.map(ReplyValue::Json)
    }
    fn default_reply() -> Option<ReplyValue> {
        None
    }
    fn from_wire(value: Option<Value>) -> Result<Self, String> {
        Ok(AnyJson(value))
    }
}

/// Does `v` have the shape the member table promises?
fn has_kind(v: &Option<Value>, kind: ValueKind) -> bool {
    let Some(v) = v else {
        return kind == ValueKind::Nothing;
    };
    let ints = |v: &Value| v.as_array().is_some_and(|a| a.iter().all(Value::is_i64));
    match kind {
        ValueKind::Nothing => false,
        ValueKind::Bool => v.is_boolean(),
        ValueKind::Int | ValueKind::Enum(_) => v.is_i64(),
        ValueKind::Double => v.is_number(),
        ValueKind::String => v.is_string(),
        ValueKind::Date => v
            .as_str()
            .is_some_and(|s| bigskies_alpaca::types::parse_iso_utc(s).is_some()),
        ValueKind::StringArray => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        ValueKind::IntArray | ValueKind::EnumArray(_) => ints(v),
        ValueKind::AxisRates => v.as_array().is_some_and(|a| {
            a.iter()
                .all(|r| r["Minimum"].is_number() && r["Maximum"].is_number())
        }),
        ValueKind::DeviceState => v.as_array().is_some_and(|a| {
            a.iter()
                .all(|r| r["Name"].is_string() && r.get("Value").is_some())
        }),
        ValueKind::Image => v.is_array(),
    }
}

/// Text for a parameter: the value just read for a property write, else a plausible value
/// for the parameter's name and kind.
fn argument(
    member: &MemberInfo,
    param: &str,
    kind: ParamKind,
    reads: &BTreeMap<&str, Value>,
) -> String {
    if member.verb == Verb::Put
        && member.params.len() == 1
        && let Some(v) = reads.get(member.name)
    {
        return match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
    }
    let number =
        |name: &str, fallback: f64| reads.get(name).and_then(Value::as_f64).unwrap_or(fallback);
    match (member.name, param) {
        ("Action", "Action") => "SimulatorTime".into(),
        ("Action", "Parameters") => String::new(),
        (_, "Command") => "noop".into(),
        // On the meridian, well above the horizon at the default site.
        (_, "RightAscension") => format!("{:.6}", number("SiderealTime", 12.0)),
        (_, "Declination") => "40".into(),
        (_, "Azimuth") => "120".into(),
        (_, "Altitude") => "45".into(),
        (_, "Axis") => "0".into(),
        (_, "Rate") => "0".into(),
        (_, "Direction") => "0".into(),
        ("PulseGuide", "Duration") => "20".into(),
        ("StartExposure", "Duration") => "0.5".into(),
        ("Move", "Position") if kind == ParamKind::Int => "1000".into(),
        (_, "Position") => "20".into(),
        _ => match kind {
            ParamKind::Bool => "true".into(),
            ParamKind::Int | ParamKind::Enum(_) => "0".into(),
            ParamKind::Double => "1".into(),
            ParamKind::String => "x".into(),
            ParamKind::Date => "2026-03-20T22:00:00.000Z".into(),
        },
    }
}

/// Equal as far as a round trip through text can tell.
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-6 * x.abs().max(1.0),
        _ => match (a.as_str(), b.as_str()) {
            (Some(x), Some(y)) => match (
                bigskies_alpaca::types::parse_iso_utc(x),
                bigskies_alpaca::types::parse_iso_utc(y),
            ) {
                (Some(p), Some(q)) => (p - q).num_milliseconds().abs() <= 1,
                _ => x == y,
            },
            _ => a == b,
        },
    }
}

/// Drive every member of one device; returns the members that answered NotImplemented.
async fn sweep(
    sim: &Sim,
    device_type: DeviceType,
    table: &'static [MemberInfo],
) -> BTreeSet<&'static str> {
    sim.connect(device_type.path(), 0).await;
    let mut reads: BTreeMap<&str, Value> = BTreeMap::new();
    let mut written: Vec<(&str, Value)> = Vec::new();
    let mut not_implemented = BTreeSet::new();
    let mut failures = Vec::new();
    for m in COMMON_MEMBERS.iter().chain(table) {
        // Connection changes are tested on their own; here the device stays connected.
        if matches!((m.verb, m.name), (Verb::Put, "Connected" | "Disconnect")) {
            continue;
        }
        let params: Vec<(&'static str, String)> = m
            .params
            .iter()
            .map(|p| (p.name, argument(m, p.name, p.kind, &reads)))
            .collect();
        let result: Result<Option<Value>, ClientError> = if m.returns == ValueKind::Image {
            sim.client
                .call::<ImageArray>(device_type, 0, m.verb, m.name, params.clone())
                .await
                .map(|img| Some(Value::from(vec![img.width(), img.height()])))
        } else {
            sim.client
                .call::<AnyJson>(device_type, 0, m.verb, m.name, params.clone())
                .await
                .map(|v| v.0)
        };
        match result {
            Ok(v) => {
                if !has_kind(&v, m.returns) {
                    failures.push(format!(
                        "{} {}: value {v:?} is not a {:?}",
                        m.verb, m.name, m.returns
                    ));
                }
                match (m.verb, v) {
                    (Verb::Get, Some(v)) if m.params.is_empty() => {
                        reads.insert(m.name, v);
                    }
                    (Verb::Put, _) if m.params.len() == 1 && reads.contains_key(m.name) => {
                        written.push((m.name, reads[m.name].clone()));
                    }
                    _ => {}
                }
            }
            Err(ClientError::Ascom(e)) if e.code == ErrorCode::NOT_IMPLEMENTED => {
                not_implemented.insert(m.name);
            }
            Err(ClientError::Ascom(e)) if e.code == ErrorCode::NOT_CONNECTED => {
                failures.push(format!(
                    "{} {}: NotConnected while connected",
                    m.verb, m.name
                ));
            }
            // Any other ASCOM error is the device's business logic (parked, out of range…).
            Err(ClientError::Ascom(_)) => {}
            Err(other) => failures.push(format!("{} {} {params:?}: {other}", m.verb, m.name)),
        }
    }
    // Property writes that succeeded must read back what was written.
    for (name, value) in written {
        let back = sim
            .client
            .call::<AnyJson>(device_type, 0, Verb::Get, name, Vec::new())
            .await;
        match back {
            Ok(AnyJson(Some(v))) if same(&v, &value) => {}
            other => failures.push(format!(
                "{name}: wrote {value}, read back {:?}",
                other.map(|v| v.0)
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{device_type}:\n  {}",
        failures.join("\n  ")
    );
    not_implemented
}

/// The members a device may leave unimplemented: the deprecated command members always,
/// plus those whose capability the device reports as absent.
async fn allowed_not_implemented(sim: &Sim, device_type: DeviceType) -> BTreeSet<&'static str> {
    let mut allowed: BTreeSet<&'static str> =
        ["CommandBlind", "CommandBool", "CommandString"].into();
    let path = device_type.path();
    let flag = |v: Value| v.as_bool() == Some(true);
    let can = |name: &'static str| {
        let url = format!("/api/v1/{path}/0/{}", name.to_ascii_lowercase());
        async move { flag(sim.value(&url).await) }
    };
    match device_type {
        DeviceType::Telescope => {
            // Alpaca mounts must not offer the deprecated synchronous slews (PROTOCOL.md §5).
            allowed.extend(["SlewToAltAz", "SlewToCoordinates", "SlewToTarget"]);
            // Writing DoesRefraction is optional in ITelescopeV4.
            allowed.insert("DoesRefraction");
            let gated: [(&str, &[&'static str]); 10] = [
                ("CanFindHome", &["FindHome"]),
                ("CanPark", &["Park"]),
                ("CanUnpark", &["Unpark"]),
                ("CanSetPark", &["SetPark"]),
                ("CanPulseGuide", &["PulseGuide"]),
                ("CanSetPierSide", &["SideOfPier"]),
                (
                    "CanSetGuideRates",
                    &["GuideRateDeclination", "GuideRateRightAscension"],
                ),
                ("CanSlewAltAzAsync", &["SlewToAltAzAsync"]),
                ("CanSyncAltAz", &["SyncToAltAz"]),
                ("CanSync", &["SyncToCoordinates", "SyncToTarget"]),
            ];
            for (c, members) in gated {
                if !can(c).await {
                    allowed.extend(members);
                }
            }
        }
        DeviceType::Camera => {
            for (c, members) in [
                ("CanFastReadout", &["FastReadout"][..]),
                ("CanPulseGuide", &["PulseGuide"][..]),
                ("CanAbortExposure", &["AbortExposure"][..]),
                ("CanStopExposure", &["StopExposure"][..]),
                ("CanGetCoolerPower", &["CoolerPower"][..]),
                ("CanSetCCDTemperature", &["SetCCDTemperature"][..]),
            ] {
                if !can(c).await {
                    allowed.extend(members);
                }
            }
            // Gain and offset each have three consistent modes; "not implemented" is one.
            allowed.extend([
                "Gain",
                "GainMin",
                "GainMax",
                "Gains",
                "Offset",
                "OffsetMin",
                "OffsetMax",
                "Offsets",
            ]);
            // Optional members (Monochrome sensors have no Bayer offsets).
            allowed.extend([
                "BayerOffsetX",
                "BayerOffsetY",
                "SubExposureDuration",
                "CoolerOn",
                "ImageArrayVariant",
            ]);
        }
        DeviceType::Dome => {
            for (c, members) in [
                ("CanFindHome", &["FindHome"][..]),
                ("CanPark", &["Park"][..]),
                ("CanSetPark", &["SetPark"][..]),
                ("CanSetAltitude", &["SlewToAltitude"][..]),
                ("CanSetAzimuth", &["SlewToAzimuth"][..]),
                ("CanSetShutter", &["OpenShutter", "CloseShutter"][..]),
                ("CanSyncAzimuth", &["SyncToAzimuth"][..]),
                ("CanSlave", &["Slaved"][..]),
            ] {
                if !can(c).await {
                    allowed.extend(members);
                }
            }
        }
        DeviceType::Focuser => {
            if !can("TempCompAvailable").await {
                allowed.insert("TempComp");
            }
            if !can("Absolute").await {
                allowed.insert("Position");
            }
            allowed.insert("Halt");
        }
        DeviceType::Rotator => {
            allowed.insert("Halt");
        }
        DeviceType::FilterWheel => {}
    }
    allowed
}

async fn check_type(device_type: DeviceType, table: &'static [MemberInfo]) {
    let sim = Sim::start().await;
    sim.connect(device_type.path(), 0).await;
    let allowed = allowed_not_implemented(&sim, device_type).await;
    let missing = sweep(&sim, device_type, table).await;
    let unexpected: Vec<_> = missing.difference(&allowed).collect();
    assert!(
        unexpected.is_empty(),
        "{device_type}: NotImplemented without a reason: {unexpected:?}"
    );
    // The P7 disconnect completes and leaves the device disconnected.
    sim.ok_put(&format!("/api/v1/{}/0/disconnect", device_type.path()), "")
        .await;
    assert_eq!(
        sim.value(&format!("/api/v1/{}/0/connected", device_type.path()))
            .await,
        Value::Bool(false)
    );
}

#[tokio::test]
async fn every_telescope_member_round_trips() {
    check_type(DeviceType::Telescope, TELESCOPE_MEMBERS).await;
}

#[tokio::test]
async fn every_camera_member_round_trips() {
    check_type(DeviceType::Camera, CAMERA_MEMBERS).await;
}

#[tokio::test]
async fn every_dome_member_round_trips() {
    check_type(DeviceType::Dome, DOME_MEMBERS).await;
}

#[tokio::test]
async fn every_focuser_member_round_trips() {
    check_type(DeviceType::Focuser, FOCUSER_MEMBERS).await;
}

#[tokio::test]
async fn every_filter_wheel_member_round_trips() {
    check_type(DeviceType::FilterWheel, FILTER_WHEEL_MEMBERS).await;
}

#[tokio::test]
async fn every_rotator_member_round_trips() {
    check_type(DeviceType::Rotator, ROTATOR_MEMBERS).await;
}

#[tokio::test]
async fn the_member_tables_cover_every_device_type() {
    let sim = Sim::start().await;
    let devices = sim
        .client
        .configured_devices()
        .await
        .expect("management API");
    let types: BTreeSet<String> = devices.iter().map(|d| d.device_type.clone()).collect();
    assert_eq!(types.len(), 6, "{types:?}");
    for t in DeviceType::ALL {
        assert!(types.contains(t.name()), "{t} missing from {types:?}");
    }
    // Every GET member of every table is routed (no 400 for a declared member).
    for (t, table) in [
        (DeviceType::Telescope, TELESCOPE_MEMBERS),
        (DeviceType::Camera, CAMERA_MEMBERS),
        (DeviceType::Dome, DOME_MEMBERS),
        (DeviceType::Focuser, FOCUSER_MEMBERS),
        (DeviceType::FilterWheel, FILTER_WHEEL_MEMBERS),
        (DeviceType::Rotator, ROTATOR_MEMBERS),
    ] {
        for m in COMMON_MEMBERS
            .iter()
            .chain(table)
            .filter(|m| m.verb == Verb::Get && m.params.is_empty())
        {
            let (st, v) = sim
                .get(&format!("/api/v1/{}/0/{}", t.path(), m.path()))
                .await;
            assert_eq!(st, 200, "{t} {}: {v}", m.name);
            if m.returns != ValueKind::Nothing {
                assert!(
                    v.get("Value").is_some(),
                    "{t} {}: GET replies always carry Value: {v}",
                    m.name
                );
            }
        }
    }
}
