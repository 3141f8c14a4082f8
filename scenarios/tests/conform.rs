//! The Alpaca conformance checker (`bigskies-scenarios conform`): clean against our simulator
//! in strict mode (motion allowed), and against a deliberately faulty Alpaca server it names
//! every planted fault and fails; the CLI exit codes follow.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use alpaca_simulator::app::{RunningSimulator, Simulator};
use alpaca_simulator::config::SimulatorConfig;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderValue, Method, Request, StatusCode, header::CONTENT_TYPE};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use bigskies_alpaca::devices::{COMMON_MEMBERS, Device, TELESCOPE_MEMBERS, Telescope};
use bigskies_alpaca::server::{AlpacaServer, DeviceMeta, ServerInfo};
use bigskies_alpaca::{AlpacaError, AlpacaResult, async_trait};
use bigskies_scenarios::conform::{self, Check, Options, Outcome, Report};
use serde_json::Value;

/// Our simulator, default devices (one of each type), on a free port.
async fn simulator() -> RunningSimulator {
    let mut cfg = SimulatorConfig::default();
    cfg.server.http_port = 0;
    cfg.server.bind = "127.0.0.1".parse().unwrap();
    cfg.server.discovery = false;
    Simulator::bind(cfg).await.unwrap().spawn()
}

fn options(url: &str, strict: bool) -> Options {
    let mut o = Options::new(url);
    o.strict = strict;
    o.timeout = Duration::from_secs(10);
    o.motion_timeout = Duration::from_secs(60);
    o
}

/// The report text, for assertion messages.
fn text(report: &Report) -> String {
    report.render_text(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_simulator_passes_every_check_in_strict_mode_with_motion() {
    let sim = simulator().await;
    let mut o = options(&sim.base_url(), true);
    o.allow_motion = true;
    let report = conform::check(&o).await.unwrap();
    assert!(report.passed, "{}", text(&report));
    assert_eq!(report.summary.issues, 0, "{}", text(&report));
    // Management plus one section per default device, each really exercised.
    let titles: Vec<&str> = report.sections.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(report.sections.len(), 7, "{titles:?}");
    for section in &report.sections[1..] {
        for id in [
            "json-keys",
            "client-transaction-id",
            "bad-transaction-id",
            "put-name-casing",
            "put-lowercase-ctid",
            "bad-path",
            "connected-write",
        ] {
            let check = section.find(id);
            assert!(
                check.is_some_and(|c| c.probes > 0 && c.outcome == Outcome::Pass),
                "{}: {id} did not run or failed: {check:?}",
                section.title
            );
        }
    }
    let ran = |device: &str, id: &str| {
        report
            .sections
            .iter()
            .filter(|s| s.device.as_ref().is_some_and(|d| d.device_type == device))
            .any(|s| s.find(id).is_some_and(|c| c.probes > 0))
    };
    for (device, id) in [
        ("telescope", "slew"),
        ("telescope", "out-of-range"),
        ("telescope", "sidereal-time"),
        ("camera", "image-json"),
        ("camera", "image-bytes"),
        ("focuser", "move"),
        ("rotator", "move"),
        ("filterwheel", "filter-move"),
        ("dome", "invalid-arguments"),
    ] {
        assert!(
            ran(device, id),
            "{device}: {id} did not run\n{}",
            text(&report)
        );
    }
    sim.shutdown().await.unwrap();
}

// ---- a deliberately faulty Alpaca server -----------------------------------------------------

/// A small mount; its faults are injected around the framework router by [`plant_faults`].
#[derive(Default)]
struct Mount {
    connected: AtomicBool,
    elevation: Mutex<f64>,
}

#[async_trait]
impl Device for Mount {
    async fn connected(&self) -> AlpacaResult<bool> {
        Ok(self.connected.load(Ordering::SeqCst))
    }
    async fn set_connected(&self, connected: bool) -> AlpacaResult<()> {
        self.connected.store(connected, Ordering::SeqCst);
        Ok(())
    }
    async fn description(&self) -> AlpacaResult<String> {
        Ok("A mount with classic Alpaca faults".into())
    }
    async fn driver_info(&self) -> AlpacaResult<String> {
        Ok("conform test server".into())
    }
    async fn driver_version(&self) -> AlpacaResult<String> {
        Ok("1.0".into())
    }
    async fn interface_version(&self) -> AlpacaResult<i32> {
        Ok(3)
    }
    async fn name(&self) -> AlpacaResult<String> {
        Ok("Faulty mount".into())
    }
    async fn supported_actions(&self) -> AlpacaResult<Vec<String>> {
        Ok(Vec::new())
    }
}

#[async_trait]
impl Telescope for Mount {
    async fn right_ascension(&self) -> AlpacaResult<f64> {
        Ok(5.5)
    }
    async fn declination(&self) -> AlpacaResult<f64> {
        Ok(20.0)
    }
    async fn site_elevation(&self) -> AlpacaResult<f64> {
        Ok(*self.elevation.lock().unwrap())
    }
    async fn set_site_elevation(&self, v: f64) -> AlpacaResult<()> {
        if !(-300.0..=10_000.0).contains(&v) {
            return Err(AlpacaError::invalid_value(format!("{v} m is out of range")));
        }
        *self.elevation.lock().unwrap() = v;
        Ok(())
    }
}

/// Every parameter name of the mount, for the "PUT names are case-insensitive" fault.
fn canonical_name(name: &str) -> String {
    COMMON_MEMBERS
        .iter()
        .chain(TELESCOPE_MEMBERS)
        .flat_map(|m| m.params.iter().map(|p| p.name))
        .chain(["ClientID", "ClientTransactionID"])
        .find(|known| known.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_owned(), str::to_owned)
}

fn is_member(segment: &str) -> bool {
    COMMON_MEMBERS
        .iter()
        .chain(TELESCOPE_MEMBERS)
        .any(|m| m.path() == segment)
}

/// The classic faults, one per place:
/// * PUT parameter names matched case-insensitively (inverted-case names accepted, a
///   lower-case `clienttransactionid` echoed);
/// * SiteElevation out of range answered with HTTP 400 instead of 200 + 0x401;
/// * unknown members answered with HTTP 200;
/// * `description`: `value` instead of `Value`;
/// * `targetrightascension` (an error): no `Value`;
/// * `driverinfo`: ServerTransactionID 0;
/// * `driverversion`: ClientTransactionID not echoed;
/// * `name`: Content-Type text/plain.
///
/// (The empty UniqueID comes from the registration.)
async fn plant_faults(req: Request<Body>, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let member = path.rsplit('/').next().unwrap_or("").to_owned();
    let device = path.starts_with("/api/v1/telescope/0/");
    let req = if req.method() == Method::PUT {
        let (parts, body) = req.into_parts();
        let bytes = to_bytes(body, 1 << 20).await.unwrap();
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
        let out_of_range = pairs.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("SiteElevation")
                && v.parse::<f64>()
                    .is_ok_and(|e| !(-300.0..=10_000.0).contains(&e))
        });
        if member == "siteelevation" && out_of_range {
            return (StatusCode::BAD_REQUEST, "SiteElevation out of range").into_response();
        }
        let fixed: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(k, v)| (canonical_name(&k), v))
            .collect();
        let body = serde_urlencoded::to_string(fixed).unwrap();
        Request::from_parts(parts, Body::from(body))
    } else {
        req
    };
    let resp = next.run(req).await;
    if device && resp.status() == StatusCode::BAD_REQUEST && !is_member(&member) {
        let body = r#"{"ClientTransactionID":0,"ServerTransactionID":9,"ErrorNumber":1024,"ErrorMessage":"not implemented"}"#;
        return json(body.as_bytes().to_vec());
    }
    if !device || resp.status() != StatusCode::OK {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = to_bytes(body, 1 << 24).await.unwrap();
    let mut v: Value = serde_json::from_slice(&bytes).unwrap();
    let obj = v.as_object_mut().unwrap();
    match member.as_str() {
        "description" => {
            let value = obj.remove("Value").unwrap();
            obj.insert("value".into(), value);
        }
        "targetrightascension" => {
            obj.remove("Value");
        }
        "driverinfo" => {
            obj.insert("ServerTransactionID".into(), 0.into());
        }
        "driverversion" => {
            obj.insert("ClientTransactionID".into(), 0.into());
        }
        "name" => {
            parts
                .headers
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        }
        _ => {}
    }
    Response::from_parts(parts, Body::from(serde_json::to_vec(&v).unwrap()))
}

fn json(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Serves the faulty server on a free port; the task ends with the test.
async fn faulty_server() -> String {
    let info = ServerInfo {
        server_name: "Faulty".into(),
        manufacturer: "Big Skies tests".into(),
        manufacturer_version: "1".into(),
        location: "here".into(),
    };
    let router = AlpacaServer::new(info)
        .with_telescope(
            0,
            DeviceMeta::new("Faulty mount", ""),
            Arc::new(Mount::default()),
        )
        .router()
        .layer(middleware::from_fn(plant_faults));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// The check `id` of the section whose title starts with `section`.
fn check<'r>(report: &'r Report, section: &str, id: &str) -> &'r Check {
    report
        .sections
        .iter()
        .find(|s| s.title.starts_with(section))
        .and_then(|s| s.find(id))
        .unwrap_or_else(|| panic!("no {id} check in {section}\n{}", text(report)))
}

/// `id` came out as `outcome` with a failing probe whose request contains `request` and whose
/// reply contains `got`.
fn assert_found(
    report: &Report,
    section: &str,
    id: &str,
    outcome: Outcome,
    request: &str,
    got: &str,
) {
    let c = check(report, section, id);
    assert_eq!(c.outcome, outcome, "{id}: {c:#?}");
    assert!(
        c.failures
            .iter()
            .any(|f| f.request.as_deref().unwrap_or("").contains(request) && f.got.contains(got)),
        "{id}: no failing probe of {request:?} showing {got:?}: {c:#?}"
    );
}

#[tokio::test]
async fn every_planted_fault_is_reported_as_an_issue() {
    let url = faulty_server().await;
    let report = conform::check(&options(&url, true)).await.unwrap();
    // `CONFORM_PRINT=1 cargo test … -- --nocapture` shows the report as an operator sees it.
    if std::env::var_os("CONFORM_PRINT").is_some() {
        println!("{}", report.render_text(false));
    }
    assert!(!report.passed, "{}", text(&report));
    let mount = "Telescope 0";
    let m = "Management";
    assert_found(
        &report,
        m,
        "unique-id",
        Outcome::Issue,
        "configureddevices",
        "UniqueID \"\"",
    );
    assert_found(
        &report,
        mount,
        "json-keys",
        Outcome::Issue,
        "/description?",
        "key \"value\" should be \"Value\"",
    );
    assert_found(
        &report,
        mount,
        "value-present",
        Outcome::Issue,
        "/targetrightascension?",
        "no Value key",
    );
    assert_found(
        &report,
        mount,
        "server-transaction-id",
        Outcome::Issue,
        "/driverinfo?",
        "ServerTransactionID 0",
    );
    assert_found(
        &report,
        mount,
        "client-transaction-id",
        Outcome::Issue,
        "/driverversion?",
        "ClientTransactionID 0",
    );
    assert_found(
        &report,
        mount,
        "content-type",
        Outcome::Issue,
        "/name?",
        "text/plain",
    );
    assert_found(
        &report,
        mount,
        "bad-path",
        Outcome::Issue,
        "/descrip?",
        "HTTP 200",
    );
    assert_found(
        &report,
        mount,
        "out-of-range",
        Outcome::Issue,
        "SiteElevation=-400",
        "HTTP 400",
    );
    assert_found(
        &report,
        mount,
        "put-name-casing",
        Outcome::Issue,
        "sITEeLEVATION=",
        "HTTP 200",
    );
    assert_found(
        &report,
        mount,
        "put-name-casing",
        Outcome::Issue,
        "cONNECTED=True",
        "HTTP 200",
    );
    assert_found(
        &report,
        mount,
        "put-lowercase-ctid",
        Outcome::Issue,
        "clienttransactionid=",
        "(echoed)",
    );
    // What the server does right is not blamed on it.
    for id in [
        "bad-transaction-id",
        "unparseable-value",
        "connected-write",
        "error-fields",
    ] {
        assert_eq!(
            check(&report, mount, id).outcome,
            Outcome::Pass,
            "{id}\n{}",
            text(&report)
        );
    }
    // The text report names the faults with request, expectation and reply.
    let shown = report.render_text(false);
    assert!(shown.contains("Result: FAIL"), "{shown}");
    assert!(
        shown.contains("expected: HTTP 200 with ErrorNumber 0x401 for SiteElevation=-400"),
        "{shown}"
    );

    // Tolerant mode: the strict-only rules become information, the rest stay issues.
    let tolerant = conform::check(&options(&url, false)).await.unwrap();
    assert!(!tolerant.passed);
    let missing_on_error = check(&tolerant, mount, "value-present")
        .failures
        .iter()
        .find(|f| {
            f.request
                .as_deref()
                .unwrap_or("")
                .contains("/targetrightascension?")
        })
        .map(|f| f.outcome);
    assert_eq!(
        missing_on_error,
        Some(Outcome::Information),
        "{}",
        text(&tolerant)
    );
    assert_eq!(
        check(&tolerant, mount, "put-lowercase-ctid").outcome,
        Outcome::Information
    );
    assert_eq!(check(&tolerant, mount, "json-keys").outcome, Outcome::Issue);
}

#[tokio::test]
async fn a_device_filter_checks_only_that_device_and_a_dead_server_is_an_error() {
    let sim = simulator().await;
    let mut o = options(&sim.base_url(), true);
    o.devices = vec!["focuser/0".parse().unwrap()];
    let report = conform::check(&o).await.unwrap();
    let titles: Vec<&str> = report.sections.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(titles.len(), 2, "{titles:?}");
    assert!(titles[1].starts_with("Focuser 0"), "{titles:?}");
    assert!(report.passed, "{}", text(&report));
    // A device that is not configured is checked anyway and fails.
    o.devices = vec!["focuser/7".parse().unwrap()];
    let report = conform::check(&o).await.unwrap();
    assert!(!report.passed);
    assert_eq!(
        check(&report, "Focuser 7", "listed").outcome,
        Outcome::Issue
    );
    let base = sim.base_url();
    sim.shutdown().await.unwrap();
    let err = conform::check(&options(&base, true)).await.unwrap_err();
    assert!(
        matches!(err, conform::ConformError::Unreachable { .. }),
        "{err}"
    );
}

/// Runs the binary; (exit code, stdout).
async fn cli(args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_bigskies-scenarios"))
        .arg("conform")
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_exits_zero_on_a_clean_server_and_non_zero_on_faults() {
    let sim = simulator().await;
    let (code, out) = cli(&[&sim.base_url(), "--strict", "--device", "filterwheel/0"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Result: PASS"), "{out}");

    let faulty = faulty_server().await;
    let (code, out) = cli(&[&faulty, "--strict"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("ISSUE"), "{out}");
    let (code, out) = cli(&[&faulty, "--json"]).await;
    assert_eq!(code, 1, "{out}");
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["passed"], false);
    assert!(json["summary"]["issues"].as_u64().unwrap() > 0, "{json}");

    let (code, _) = cli(&["not a url"]).await;
    assert_eq!(code, 2);
    let (code, _) = cli(&[&faulty, "--device", "tele/scope"]).await;
    assert_eq!(code, 2, "a bad filter is refused by the argument parser");
    sim.shutdown().await.unwrap();
}
