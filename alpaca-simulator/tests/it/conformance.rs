//! The ConformU "Check Alpaca Protocol" checklist (PROTOCOL.md §11) and the per-device rules
//! ConformU checks (§5–§10), against the whole simulator over HTTP.

use bigskies_alpaca::devices::{
    CAMERA_MEMBERS, COMMON_MEMBERS, DOME_MEMBERS, FILTER_WHEEL_MEMBERS, FOCUSER_MEMBERS,
    ROTATOR_MEMBERS, TELESCOPE_MEMBERS,
};
use bigskies_alpaca::types::Verb;
use bigskies_alpaca::wire::{MemberInfo, ParamKind};
use serde_json::Value;

use crate::common::Sim;

const TABLES: [(&str, &[MemberInfo]); 6] = [
    ("telescope", TELESCOPE_MEMBERS),
    ("camera", CAMERA_MEMBERS),
    ("dome", DOME_MEMBERS),
    ("focuser", FOCUSER_MEMBERS),
    ("filterwheel", FILTER_WHEEL_MEMBERS),
    ("rotator", ROTATOR_MEMBERS),
];

/// The exact envelope keys of a 200 reply.
fn check_envelope(v: &Value, ctid: u64, what: &str) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not a JSON object: {v}"));
    for k in obj.keys() {
        assert!(
            [
                "Value",
                "ClientTransactionID",
                "ServerTransactionID",
                "ErrorNumber",
                "ErrorMessage",
                "Type",
                "Rank"
            ]
            .contains(&k.as_str()),
            "{what}: unexpected key {k:?}"
        );
    }
    assert_eq!(v["ClientTransactionID"].as_u64(), Some(ctid), "{what}: {v}");
    assert!(
        v["ServerTransactionID"].as_u64().is_some_and(|s| s >= 1),
        "{what}: {v}"
    );
    assert!(
        v["ErrorNumber"].is_i64() && v["ErrorMessage"].is_string(),
        "{what}: {v}"
    );
    if v["ErrorNumber"] == 0 {
        assert_eq!(
            v["ErrorMessage"], "",
            "{what}: a success carries no message"
        );
    } else {
        assert_ne!(v["ErrorMessage"], "", "{what}: an error says why");
    }
}

#[tokio::test]
async fn connected_writes_in_any_parameter_order_and_bad_values_are_400() {
    let sim = Sim::start().await;
    for t in alpaca_simulator::config::DEVICE_TYPES {
        let path = format!("/api/v1/{t}/0/connected");
        for form in [
            "Connected=True&ClientID=123456&ClientTransactionID=67890",
            "ClientTransactionID=67890&Connected=False&ClientID=123456",
            "ClientID=123456&ClientTransactionID=67890&Connected=True",
        ] {
            let (st, v) = sim.put(&path, form).await;
            assert_eq!(st, 200, "{t} {form}: {v}");
            check_envelope(&v, 67890, &format!("{t} PUT connected"));
            assert!(v.get("Value").is_none(), "PUT replies have no Value: {v}");
        }
        assert_eq!(
            sim.value(&path).await,
            true,
            "{t}: the last write (True) wins"
        );
        for bad in ["Connected=", "Connected=123456", "Connected=asdqwe"] {
            let (st, _) = sim.put(&path, bad).await;
            assert_eq!(st, 400, "{t} {bad}");
        }
    }
}

#[tokio::test]
async fn bad_paths_are_client_errors() {
    let sim = Sim::start().await;
    for path in [
        "/api/v1/TELESCOPE/0/description",
        "/api/v1/Telescope/0/description",
        "/api/v1/toaster/0/description",
        "/api/v1/telescope/-1/description",
        "/api/v1/telescope/99999/description",
        "/api/v1/telescope/A/description",
        "/api/v1/telescope/0/descrip",
        "/api/v1/telescope/0/DESCRIPTION",
        "/api/v2/telescope/0/description",
        "/apx/v1/telescope/0/description",
        "/api/v1/camera/0/canslew",
    ] {
        let (st, _) = sim.get(path).await;
        assert!((400..500).contains(&st), "{path} → {st}");
    }
}

#[tokio::test]
async fn every_get_member_follows_the_transaction_and_casing_rules() {
    let sim = Sim::start().await;
    sim.connect_all().await;
    for (t, table) in TABLES {
        for m in COMMON_MEMBERS
            .iter()
            .chain(table)
            .filter(|m| m.verb == Verb::Get && m.params.is_empty())
        {
            let base = format!("/api/v1/{t}/0/{}", m.path());
            let what = format!("{t} {}", m.name);
            let (st, v) = sim
                .get(&format!("{base}?ClientID=123456&ClientTransactionID=67890"))
                .await;
            assert_eq!(st, 200, "{what}: {v}");
            check_envelope(&v, 67890, &what);
            assert!(
                v.get("Value").is_some(),
                "{what}: GET replies always carry Value: {v}"
            );
            // Unknown extra parameters are ignored; GET names are case-insensitive.
            let (st, v) = sim
                .get(&format!("{base}?ClientTransactionID=67890&Bogus=1"))
                .await;
            assert_eq!(
                (st, v["ClientTransactionID"].as_u64()),
                (200, Some(67890)),
                "{what} extra: {v}"
            );
            let (st, v) = sim
                .get(&format!("{base}?clientid=123456&clienttransactionid=67891"))
                .await;
            assert_eq!(
                (st, v["ClientTransactionID"].as_u64()),
                (200, Some(67891)),
                "{what} lower case: {v}"
            );
            // Malformed IDs are 400 (ConformU strict).
            for bad in [
                "ClientID=",
                "ClientID=%20",
                "ClientTransactionID=-1",
                "ClientTransactionID=abc",
            ] {
                let (st, _) = sim.get(&format!("{base}?{bad}")).await;
                assert_eq!(st, 400, "{what} {bad}");
            }
        }
    }
}

#[tokio::test]
async fn json_replies_have_the_alpaca_content_type() {
    let sim = Sim::start().await;
    let resp = sim
        .http
        .get(format!("{}/api/v1/focuser/0/name", sim.base))
        .send()
        .await
        .expect("sent");
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    assert_eq!(ct, "application/json; charset=utf-8");
}

#[tokio::test]
async fn parameterised_gets_accept_any_name_casing_and_reject_garbage() {
    let sim = Sim::start().await;
    sim.connect("telescope", 0).await;
    let (st, v) = sim
        .get("/api/v1/telescope/0/axisrates?aXIS=0&ClientTransactionID=5")
        .await;
    assert_eq!(st, 200, "{v}");
    let rates = v["Value"].as_array().expect("array");
    assert!(!rates.is_empty());
    for r in rates {
        let obj = r.as_object().expect("object");
        assert_eq!(
            obj.keys().collect::<Vec<_>>(),
            ["Maximum", "Minimum"],
            "{r}"
        );
        assert!(r["Minimum"].as_f64() <= r["Maximum"].as_f64());
    }
    let (st, _) = sim.get("/api/v1/telescope/0/axisrates?Axis=abc").await;
    assert_eq!(st, 400);
    let (st, _) = sim.get("/api/v1/telescope/0/axisrates").await;
    assert_eq!(st, 400, "missing required parameter");
    let (st, v) = sim.get("/api/v1/telescope/0/canmoveaxis?AXIS=1").await;
    assert_eq!((st, v["Value"].is_boolean()), (200, true), "{v}");
}

/// A well-formed value for a PUT parameter.
fn good(kind: ParamKind) -> &'static str {
    match kind {
        ParamKind::Bool => "true",
        ParamKind::Int | ParamKind::Enum(_) => "0",
        ParamKind::Double => "0",
        ParamKind::String => "x",
        ParamKind::Date => "2026-03-20T22:00:00Z",
    }
}

/// A value that cannot be parsed for that kind (strings parse as anything, so none).
fn garbage(kind: ParamKind) -> Option<&'static str> {
    match kind {
        ParamKind::String => None,
        ParamKind::Date => Some("yesterday"),
        _ => Some("asduio6fghZZ"),
    }
}

/// Inverts the case of every letter (`BinX` → `bINx`).
fn invert(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_uppercase() {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect()
}

#[tokio::test]
async fn every_put_member_with_parameters_follows_the_form_rules() {
    let sim = Sim::start().await;
    for (t, table) in TABLES {
        for m in COMMON_MEMBERS
            .iter()
            .chain(table)
            .filter(|m| m.verb == Verb::Put && !m.params.is_empty())
        {
            // Fresh device state per member keeps earlier members from parking the mount etc.;
            // only the status codes matter here, and those come before any device logic.
            sim.connect(t, 0).await;
            let path = format!("/api/v1/{t}/0/{}", m.path());
            let what = format!("{t} {}", m.name);
            let form = |over: Option<(usize, String)>| -> String {
                m.params
                    .iter()
                    .enumerate()
                    .map(|(i, p)| match &over {
                        Some((j, v)) if *j == i => format!("{}={v}", p.name),
                        _ => format!("{}={}", p.name, good(p.kind)),
                    })
                    .collect::<Vec<_>>()
                    .join("&")
            };
            for (i, p) in m.params.iter().enumerate() {
                // Inverted-case name = parameter missing = 400 (unless it has no letters to flip).
                let wrong = m
                    .params
                    .iter()
                    .enumerate()
                    .map(|(j, q)| {
                        format!(
                            "{}={}",
                            if i == j {
                                invert(q.name)
                            } else {
                                q.name.to_owned()
                            },
                            good(q.kind)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("&");
                let (st, _) = sim.put(&path, &wrong).await;
                assert_eq!(st, 400, "{what}: inverted {}", p.name);
                if let Some(bad) = garbage(p.kind) {
                    let (st, v) = sim.put(&path, &form(Some((i, bad.to_owned())))).await;
                    // ConformU also accepts 200 + InvalidValue; dates are parsed that way.
                    let invalid_value =
                        st == 200 && v["ErrorNumber"] == 0x401 && p.kind == ParamKind::Date;
                    assert!(
                        st == 400 || invalid_value,
                        "{what}: unparseable {} → {st} {v}",
                        p.name
                    );
                }
            }
            if m.name == "Connected" {
                continue;
            }
            let (st, v) = sim
                .put(
                    &path,
                    &format!("{}&Extra=1&clienttransactionid=77&ClientID=3", form(None)),
                )
                .await;
            assert_eq!(st, 200, "{what} with extras: {v}");
            assert_eq!(
                v["ClientTransactionID"], 0,
                "{what}: a wrongly cased PUT ClientTransactionID is absent: {v}"
            );
            let (st, v) = sim
                .put(&path, &format!("{}&ClientTransactionID=78", form(None)))
                .await;
            assert_eq!(st, 200, "{what}: {v}");
            check_envelope(&v, 78, &what);
            let (st, _) = sim
                .put(&path, &format!("{}&ClientTransactionID=x1", form(None)))
                .await;
            assert_eq!(st, 400, "{what}: malformed ClientTransactionID");
        }
    }
}

#[tokio::test]
async fn members_need_a_connection_but_the_information_ones_do_not() {
    let sim = Sim::start().await;
    let probes = [
        ("telescope", "rightascension"),
        ("camera", "camerastate"),
        ("dome", "shutterstatus"),
        ("focuser", "position"),
        ("filterwheel", "position"),
        ("rotator", "position"),
    ];
    for (t, member) in probes {
        assert_eq!(
            sim.get_error(&format!("/api/v1/{t}/0/{member}")).await,
            0x407,
            "{t} {member}"
        );
        assert_eq!(
            sim.get_error(&format!("/api/v1/{t}/0/devicestate")).await,
            0x407,
            "{t} devicestate"
        );
        for info in [
            "connected",
            "connecting",
            "interfaceversion",
            "name",
            "description",
            "driverinfo",
            "driverversion",
            "supportedactions",
        ] {
            assert_eq!(
                sim.get_error(&format!("/api/v1/{t}/0/{info}")).await,
                0,
                "{t} {info} works disconnected"
            );
        }
        assert_eq!(sim.value(&format!("/api/v1/{t}/0/connected")).await, false);
        // P7 connect: quick, then Connecting false and Connected true.
        sim.ok_put(&format!("/api/v1/{t}/0/connect"), "").await;
        assert_eq!(sim.value(&format!("/api/v1/{t}/0/connecting")).await, false);
        assert_eq!(sim.value(&format!("/api/v1/{t}/0/connected")).await, true);
        assert_eq!(
            sim.get_error(&format!("/api/v1/{t}/0/{member}")).await,
            0,
            "{t} {member} once connected"
        );
    }
}

#[tokio::test]
async fn a_connect_delay_shows_as_connecting() {
    let mut cfg = crate::common::test_config();
    cfg.devices.connect_delay = 1.5;
    let sim = Sim::start_with(cfg).await;
    sim.ok_put("/api/v1/rotator/0/connect", "").await;
    assert_eq!(sim.value("/api/v1/rotator/0/connecting").await, true);
    assert_eq!(sim.value("/api/v1/rotator/0/connected").await, false);
    sim.step(1.5).await;
    assert_eq!(sim.value("/api/v1/rotator/0/connecting").await, false);
    assert_eq!(sim.value("/api/v1/rotator/0/connected").await, true);
}

#[tokio::test]
async fn device_state_uses_the_operational_names_and_a_timestamp() {
    let sim = Sim::start().await;
    sim.connect_all().await;
    let expected: [(&str, &[&str]); 6] = [
        (
            "camera",
            &[
                "CameraState",
                "CCDTemperature",
                "CoolerPower",
                "HeatSinkTemperature",
                "ImageReady",
                "IsPulseGuiding",
                "PercentCompleted",
            ],
        ),
        (
            "dome",
            &[
                "Altitude",
                "AtHome",
                "AtPark",
                "Azimuth",
                "ShutterStatus",
                "Slewing",
            ],
        ),
        ("filterwheel", &["Position"]),
        ("focuser", &["IsMoving", "Position", "Temperature"]),
        ("rotator", &["IsMoving", "MechanicalPosition", "Position"]),
        (
            "telescope",
            &[
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
        ),
    ];
    for (t, allowed) in expected {
        let items = sim.value(&format!("/api/v1/{t}/0/devicestate")).await;
        let items = items.as_array().expect("array");
        assert!(!items.is_empty(), "{t}");
        for item in items {
            let obj = item.as_object().expect("object");
            assert_eq!(
                obj.keys().collect::<Vec<_>>(),
                ["Name", "Value"],
                "{t}: {item}"
            );
            let name = item["Name"].as_str().unwrap_or("");
            assert!(
                allowed.contains(&name) || name == "TimeStamp",
                "{t}: {name} is not an operational property"
            );
        }
        assert!(
            items.iter().any(|i| i["Name"] == "TimeStamp"),
            "{t}: TimeStamp present"
        );
    }
}

#[tokio::test]
async fn a_parked_mount_refuses_motion_with_0x408() {
    let sim = Sim::start().await;
    sim.connect("telescope", 0).await;
    sim.ok_put("/api/v1/telescope/0/park", "").await;
    sim.step(120.0).await;
    assert_eq!(sim.value("/api/v1/telescope/0/atpark").await, true);
    sim.ok_put("/api/v1/telescope/0/park", "").await; // parking twice is harmless
    let lst = sim
        .value("/api/v1/telescope/0/siderealtime")
        .await
        .as_f64()
        .unwrap_or(0.0);
    let coords = format!("RightAscension={lst}&Declination=30");
    for (member, form) in [
        ("abortslew", String::new()),
        ("findhome", String::new()),
        ("moveaxis", "Axis=0&Rate=1".to_owned()),
        ("pulseguide", "Direction=0&Duration=100".to_owned()),
        ("slewtocoordinatesasync", coords.clone()),
        ("slewtoaltazasync", "Azimuth=120&Altitude=45".to_owned()),
        ("synctocoordinates", coords.clone()),
        ("synctoaltaz", "Azimuth=120&Altitude=45".to_owned()),
        ("tracking", "Tracking=true".to_owned()),
    ] {
        let code = sim
            .put_error(&format!("/api/v1/telescope/0/{member}"), &form)
            .await;
        assert!(code == 0x408 || code == 0x400, "{member}: {code:#x}");
        if member != "synctoaltaz" && member != "slewtoaltazasync" && member != "findhome" {
            assert_eq!(code, 0x408, "{member}");
        }
    }
    sim.ok_put("/api/v1/telescope/0/tracking", "Tracking=false")
        .await;
    assert_eq!(
        sim.value("/api/v1/telescope/0/atpark").await,
        true,
        "still parked"
    );
    sim.ok_put("/api/v1/telescope/0/unpark", "").await;
    sim.step(30.0).await;
    assert_eq!(sim.value("/api/v1/telescope/0/atpark").await, false);
}

#[tokio::test]
async fn alpaca_mounts_refuse_synchronous_slews_and_out_of_range_values() {
    let sim = Sim::start().await;
    sim.connect("telescope", 0).await;
    assert_eq!(sim.value("/api/v1/telescope/0/canslew").await, false);
    assert_eq!(sim.value("/api/v1/telescope/0/canslewaltaz").await, false);
    assert_eq!(sim.value("/api/v1/telescope/0/canslewasync").await, true);
    assert_eq!(
        sim.put_error(
            "/api/v1/telescope/0/slewtocoordinates",
            "RightAscension=1&Declination=1"
        )
        .await,
        0x400
    );
    sim.ok_put("/api/v1/telescope/0/unpark", "").await;
    sim.step(60.0).await;
    sim.ok_put("/api/v1/telescope/0/tracking", "Tracking=true")
        .await;
    for form in [
        "RightAscension=25&Declination=0",
        "RightAscension=-1&Declination=0",
        "RightAscension=1&Declination=100",
    ] {
        assert_eq!(
            sim.put_error("/api/v1/telescope/0/slewtocoordinatesasync", form)
                .await,
            0x401,
            "{form}"
        );
    }
    assert!(
        sim.get_error("/api/v1/telescope/0/targetrightascension")
            .await
            != 0,
        "target read before set"
    );
    assert_eq!(
        sim.put_error("/api/v1/telescope/0/siteelevation", "SiteElevation=-400")
            .await,
        0x401
    );
    assert_eq!(
        sim.put_error("/api/v1/telescope/0/trackingrate", "TrackingRate=5")
            .await,
        0x401
    );
    let utc = sim.value("/api/v1/telescope/0/utcdate").await;
    assert!(
        utc.as_str().is_some_and(|s| s.ends_with('Z')),
        "UTCDate ends in Z: {utc}"
    );
}

#[tokio::test]
async fn async_initiators_return_with_the_operation_under_way() {
    // On a stepped clock nothing can finish between the call and the next read, so every
    // initiator must already report the operation as in progress.
    let sim = Sim::start().await;
    sim.connect_all().await;
    sim.ok_put("/api/v1/telescope/0/unpark", "").await;
    sim.step(60.0).await;
    sim.ok_put("/api/v1/telescope/0/tracking", "Tracking=true")
        .await;
    let lst = sim
        .value("/api/v1/telescope/0/siderealtime")
        .await
        .as_f64()
        .unwrap_or(0.0);
    sim.ok_put(
        "/api/v1/telescope/0/slewtocoordinatesasync",
        &format!("RightAscension={lst}&Declination=70"),
    )
    .await;
    assert_eq!(sim.value("/api/v1/telescope/0/slewing").await, true);
    sim.ok_put("/api/v1/focuser/0/move", "Position=26000").await;
    assert_eq!(sim.value("/api/v1/focuser/0/ismoving").await, true);
    sim.ok_put("/api/v1/filterwheel/0/position", "Position=3")
        .await;
    assert_eq!(sim.value("/api/v1/filterwheel/0/position").await, -1);
    sim.ok_put("/api/v1/rotator/0/move", "Position=30").await;
    assert_eq!(sim.value("/api/v1/rotator/0/ismoving").await, true);
    sim.ok_put("/api/v1/dome/0/openshutter", "").await;
    assert_eq!(sim.value("/api/v1/dome/0/shutterstatus").await, 2);
    sim.ok_put("/api/v1/camera/0/startexposure", "Duration=2&Light=true")
        .await;
    let state = sim
        .value("/api/v1/camera/0/camerastate")
        .await
        .as_i64()
        .unwrap_or(-1);
    assert!((1..=2).contains(&state), "Waiting or Exposing, got {state}");
    assert_eq!(sim.value("/api/v1/camera/0/imageready").await, false);
}

#[tokio::test]
async fn device_specific_value_rules() {
    let sim = Sim::start().await;
    sim.connect_all().await;
    // Filter wheel: slots 0…N−1.
    let n = sim
        .value("/api/v1/filterwheel/0/names")
        .await
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(
        sim.value("/api/v1/filterwheel/0/focusoffsets")
            .await
            .as_array()
            .map(Vec::len),
        Some(n)
    );
    assert_eq!(
        sim.put_error("/api/v1/filterwheel/0/position", "Position=-1")
            .await,
        0x401
    );
    assert_eq!(
        sim.put_error("/api/v1/filterwheel/0/position", &format!("Position={n}"))
            .await,
        0x401
    );
    // Dome: azimuth 0…<360, altitude 0…90.
    for form in ["Azimuth=-10", "Azimuth=370"] {
        assert_eq!(
            sim.put_error("/api/v1/dome/0/slewtoazimuth", form).await,
            0x401,
            "{form}"
        );
    }
    for form in ["Altitude=-10", "Altitude=100"] {
        assert_eq!(
            sim.put_error("/api/v1/dome/0/slewtoaltitude", form).await,
            0x401,
            "{form}"
        );
    }
    // Camera: first-use rules, binning checked at write time, subframe at StartExposure.
    assert_eq!(sim.value("/api/v1/camera/0/imageready").await, false);
    assert_eq!(sim.value("/api/v1/camera/0/binx").await, 1);
    assert_ne!(
        sim.get_error("/api/v1/camera/0/lastexposureduration").await,
        0
    );
    assert_ne!(sim.get_error("/api/v1/camera/0/imagearray").await, 0);
    assert_eq!(
        sim.put_error("/api/v1/camera/0/binx", "BinX=0").await,
        0x401
    );
    assert_eq!(
        sim.put_error("/api/v1/camera/0/startexposure", "Duration=-1&Light=true")
            .await,
        0x401
    );
    let width = sim
        .value("/api/v1/camera/0/cameraxsize")
        .await
        .as_i64()
        .unwrap_or(0);
    sim.ok_put("/api/v1/camera/0/numx", &format!("NumX={}", width + 1))
        .await; // setters accept anything
    assert_eq!(
        sim.put_error("/api/v1/camera/0/startexposure", "Duration=1&Light=true")
            .await,
        0x401
    );
    // Rotator: CanReverse true; a sync lands within 0.001°.
    assert_eq!(sim.value("/api/v1/rotator/0/canreverse").await, true);
    sim.ok_put("/api/v1/rotator/0/sync", "Position=123.4").await;
    let p = sim
        .value("/api/v1/rotator/0/position")
        .await
        .as_f64()
        .unwrap_or(0.0);
    assert!((p - 123.4).abs() < 0.001, "{p}");
}

#[tokio::test]
async fn image_array_json_carries_type_and_rank() {
    let sim = Sim::start().await;
    sim.connect("camera", 0).await;
    sim.ok_put("/api/v1/camera/0/numx", "NumX=8").await;
    sim.ok_put("/api/v1/camera/0/numy", "NumY=6").await;
    sim.ok_put("/api/v1/camera/0/startexposure", "Duration=0.1&Light=false")
        .await;
    sim.step(30.0).await;
    assert_eq!(sim.value("/api/v1/camera/0/imageready").await, true);
    let (st, v) = sim.get("/api/v1/camera/0/imagearray").await;
    assert_eq!(st, 200);
    assert_eq!(
        v["Type"],
        2,
        "{}",
        &v.to_string()[..200.min(v.to_string().len())]
    );
    assert_eq!(v["Rank"], 2);
    let cols = v["Value"].as_array().expect("array");
    assert_eq!(cols.len(), 8, "outer index is x");
    assert!(
        cols.iter()
            .all(|c| c.as_array().is_some_and(|c| c.len() == 6)),
        "inner index is y"
    );
    // ImageBytes when asked.
    let resp = sim
        .http
        .get(format!("{}/api/v1/camera/0/imagearray", sim.base))
        .header("accept", "application/imagebytes")
        .send()
        .await
        .expect("sent");
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/imagebytes")
    );
    let body = resp.bytes().await.expect("body");
    assert!(body.len() >= 44);
    let word = |i: usize| {
        i32::from_le_bytes([
            body[i * 4],
            body[i * 4 + 1],
            body[i * 4 + 2],
            body[i * 4 + 3],
        ])
    };
    assert_eq!(
        (word(0), word(1), word(7), word(8), word(9)),
        (1, 0, 2, 8, 6),
        "metadata v1, no error, rank 2, 8×6"
    );
}

#[tokio::test]
async fn management_api_and_setup_pages() {
    let sim = Sim::start().await;
    assert_eq!(
        sim.value("/management/apiversions").await,
        serde_json::json!([1])
    );
    let d = sim.value("/management/v1/description").await;
    assert!(
        d["Manufacturer"].as_str().is_some_and(|s| !s.is_empty())
            && d["ManufacturerVersion"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
        "{d}"
    );
    let devices = sim.value("/management/v1/configureddevices").await;
    let ids: std::collections::BTreeSet<&str> = devices
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|d| d["UniqueID"].as_str())
        .collect();
    assert_eq!(ids.len(), 6, "six distinct UniqueIDs");
    let resp = sim
        .http
        .get(format!("{}/setup/v1/telescope/0/setup", sim.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 200);
    // Restarting with the same seed gives the same UniqueIDs.
    let again = Sim::start().await;
    assert_eq!(
        again.value("/management/v1/configureddevices").await,
        devices
    );
}
