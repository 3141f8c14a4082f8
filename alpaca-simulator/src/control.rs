//! The simulator's own control API, under `/simulator/v1/` (JSON in, JSON out).
//!
//! | Method | Path | What |
//! |---|---|---|
//! | GET | `/simulator/v1/health` | liveness, device count, simulated time |
//! | GET | `/simulator/v1/clock` | mode, rate, simulated now |
//! | PUT | `/simulator/v1/clock` | `{mode?, rate?, time?, step_secs?}`: change any of them |
//! | PUT | `/simulator/v1/clock/step` | `{seconds}`: advance simulated time |
//! | GET | `/simulator/v1/faults` | every active fault |
//! | DELETE | `/simulator/v1/faults` | clear every fault |
//! | GET/PUT/DELETE | `/simulator/v1/faults/{type}/{number}` | one device's fault |
//! | GET | `/simulator/v1/state` | a snapshot of every device |
//! | GET | `/simulator/v1/state/{type}/{number}` | a snapshot of one device |
//!
//! Bad input is a 400 with `{"error": "..."}`; an unknown device a 404. The whole request is
//! checked before anything changes, so a rejected PUT leaves the clock or fault untouched.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::clock::{Clock, ClockMode, MAX_SIM_SECS, SimTime, check_rate};
use crate::faults::{DeviceKey, FaultError, FaultSpec, FaultTarget, Faults};

/// What the control API needs from a simulated device, whatever its type.
pub trait SimDevice: FaultTarget {
    fn key(&self) -> DeviceKey;
    fn unique_id(&self) -> String;
    fn name(&self) -> String;
    fn connected(&self) -> bool;
    /// The model's state at the current simulated time, as JSON.
    fn snapshot(&self) -> Value;
}

/// Shared state of the control routes.
#[derive(Clone)]
pub struct ControlState {
    pub clock: Clock,
    pub faults: Faults,
    pub devices: Arc<Vec<Arc<dyn SimDevice>>>,
    pub started: Instant,
    /// Run before a state dump, so derived state (a slaved dome) is current.
    pub refresh: Arc<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for ControlState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlState")
            .field("devices", &self.devices.len())
            .finish_non_exhaustive()
    }
}

impl ControlState {
    fn device(&self, key: &DeviceKey) -> Option<&Arc<dyn SimDevice>> {
        self.devices.iter().find(|d| d.key() == *key)
    }
}

/// An error answered as `{"error": message}`.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let status = match self {
            ControlError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ControlError::NotFound(_) => StatusCode::NOT_FOUND,
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

impl From<JsonRejection> for ControlError {
    fn from(r: JsonRejection) -> Self {
        ControlError::BadRequest(r.body_text())
    }
}

impl From<PathRejection> for ControlError {
    fn from(r: PathRejection) -> Self {
        ControlError::BadRequest(r.body_text())
    }
}

impl From<FaultError> for ControlError {
    fn from(e: FaultError) -> Self {
        match e {
            FaultError::NoSuchDevice(_) => ControlError::NotFound(e.to_string()),
            _ => ControlError::BadRequest(e.to_string()),
        }
    }
}

type Result<T> = std::result::Result<T, ControlError>;

/// The control routes, ready to merge into the main router.
pub fn router(state: ControlState) -> Router {
    Router::new()
        .route("/simulator/v1/health", get(health))
        .route("/simulator/v1/clock", get(get_clock).put(put_clock))
        .route("/simulator/v1/clock/step", put(step_clock))
        .route(
            "/simulator/v1/faults",
            get(list_faults).delete(clear_faults),
        )
        .route(
            "/simulator/v1/faults/{device_type}/{number}",
            get(get_fault).put(put_fault).delete(delete_fault),
        )
        .route("/simulator/v1/state", get(all_state))
        .route("/simulator/v1/state/{device_type}/{number}", get(one_state))
        .with_state(state)
}

/// The clock as the API reports it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct ClockView {
    /// `"running"` or `"stepped"`.
    pub mode: String,
    /// Simulated seconds per real second (present in running mode).
    pub rate: Option<f64>,
    /// Simulated now, seconds since the Unix epoch.
    pub now: f64,
    /// Simulated now, RFC 3339 UTC.
    pub utc: String,
}

impl ClockView {
    fn of(clock: &Clock) -> Self {
        let now = clock.now();
        let (mode, rate) = match clock.mode() {
            ClockMode::Running { rate } => ("running", Some(rate)),
            ClockMode::Stepped => ("stepped", None),
        };
        Self {
            mode: mode.into(),
            rate,
            now: now.secs(),
            utc: utc_string(now),
        }
    }
}

fn utc_string(t: SimTime) -> String {
    t.utc().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Either an RFC 3339 string or Unix seconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum TimeInput {
    Secs(f64),
    Utc(DateTime<Utc>),
}

impl TimeInput {
    fn sim_time(&self) -> SimTime {
        match self {
            TimeInput::Secs(s) => SimTime(*s),
            TimeInput::Utc(t) => SimTime::from_utc(*t),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ModeInput {
    Running,
    Stepped,
}

/// `PUT /simulator/v1/clock`. Applied in this order: time, mode/rate, step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockChange {
    pub mode: Option<ModeInput>,
    pub rate: Option<f64>,
    pub time: Option<TimeInput>,
    pub step_secs: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRequest {
    pub seconds: f64,
}

async fn health(State(s): State<ControlState>) -> Json<Value> {
    let connected = s.devices.iter().filter(|d| d.connected()).count();
    Json(json!({
        "status": "ok",
        "devices": s.devices.len(),
        "connected_devices": connected,
        "active_faults": s.faults.all().len(),
        "uptime_secs": s.started.elapsed().as_secs_f64(),
        "clock": ClockView::of(&s.clock),
    }))
}

async fn get_clock(State(s): State<ControlState>) -> Json<ClockView> {
    Json(ClockView::of(&s.clock))
}

async fn put_clock(
    State(s): State<ControlState>,
    body: std::result::Result<Json<ClockChange>, JsonRejection>,
) -> Result<Json<ClockView>> {
    let Json(change) = body?;
    // Check everything first so a half-applied change never happens.
    if let Some(rate) = change.rate {
        check_rate(rate).map_err(|e| ControlError::BadRequest(e.to_string()))?;
        if change.mode == Some(ModeInput::Stepped) {
            return Err(ControlError::BadRequest(
                "a rate makes no sense with mode \"stepped\"".into(),
            ));
        }
    }
    let time = change.time.as_ref().map(TimeInput::sim_time);
    if let Some(t) = time
        && !(t.secs().is_finite() && t.secs().abs() <= MAX_SIM_SECS)
    {
        return Err(ControlError::BadRequest(format!(
            "time must be within {MAX_SIM_SECS} s of the epoch"
        )));
    }
    if let Some(step) = change.step_secs
        && !(step.is_finite() && (0.0..=MAX_SIM_SECS).contains(&step))
    {
        return Err(ControlError::BadRequest(format!(
            "step_secs must be a number from 0 to {MAX_SIM_SECS}, got {step}"
        )));
    }
    let bad = |e: crate::clock::ClockError| ControlError::BadRequest(e.to_string());
    if let Some(t) = time {
        s.clock.set_time(t).map_err(bad)?;
    }
    match (change.mode, change.rate) {
        (Some(ModeInput::Stepped), _) => s.clock.pause(),
        (_, Some(rate)) => s.clock.set_rate(rate).map_err(bad)?,
        (Some(ModeInput::Running), None) => {
            let rate = match s.clock.mode() {
                ClockMode::Running { rate } => rate,
                ClockMode::Stepped => 1.0,
            };
            s.clock.set_rate(rate).map_err(bad)?;
        }
        (None, None) => {}
    }
    if let Some(step) = change.step_secs {
        s.clock.step(step).map_err(bad)?;
    }
    tracing::info!(clock = ?ClockView::of(&s.clock), "clock changed");
    Ok(Json(ClockView::of(&s.clock)))
}

async fn step_clock(
    State(s): State<ControlState>,
    body: std::result::Result<Json<StepRequest>, JsonRejection>,
) -> Result<Json<ClockView>> {
    let Json(req) = body?;
    s.clock
        .step(req.seconds)
        .map_err(|e| ControlError::BadRequest(e.to_string()))?;
    Ok(Json(ClockView::of(&s.clock)))
}

fn key_of(path: std::result::Result<Path<(String, String)>, PathRejection>) -> Result<DeviceKey> {
    let Path((t, n)) = path?;
    format!("{t}/{n}")
        .parse::<DeviceKey>()
        .map_err(ControlError::from)
}

async fn list_faults(State(s): State<ControlState>) -> Json<Value> {
    let map: serde_json::Map<String, Value> = s
        .faults
        .all()
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                serde_json::to_value(v).unwrap_or(Value::Null),
            )
        })
        .collect();
    Json(Value::Object(map))
}

async fn clear_faults(State(s): State<ControlState>) -> StatusCode {
    s.faults.clear_all();
    StatusCode::NO_CONTENT
}

async fn get_fault(
    State(s): State<ControlState>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<FaultSpec>> {
    let key = key_of(path)?;
    if !s.faults.has_device(&key) {
        return Err(FaultError::NoSuchDevice(key).into());
    }
    Ok(Json(s.faults.get(&key).unwrap_or_default()))
}

async fn put_fault(
    State(s): State<ControlState>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    body: std::result::Result<Json<FaultSpec>, JsonRejection>,
) -> Result<Json<FaultSpec>> {
    let key = key_of(path)?;
    let Json(spec) = body?;
    s.faults.set(&key, spec)?;
    Ok(Json(s.faults.get(&key).unwrap_or_default()))
}

async fn delete_fault(
    State(s): State<ControlState>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode> {
    let key = key_of(path)?;
    s.faults.clear(&key)?;
    Ok(StatusCode::NO_CONTENT)
}

fn device_view(s: &ControlState, d: &Arc<dyn SimDevice>) -> Value {
    let key = d.key();
    json!({
        "device_type": key.device_type,
        "device_number": key.number,
        "name": d.name(),
        "unique_id": d.unique_id(),
        "connected": d.connected(),
        "fault": s.faults.get(&key),
        "state": d.snapshot(),
    })
}

async fn all_state(State(s): State<ControlState>) -> Json<Value> {
    (s.refresh)();
    let devices: Vec<Value> = s.devices.iter().map(|d| device_view(&s, d)).collect();
    Json(json!({ "clock": ClockView::of(&s.clock), "devices": devices }))
}

async fn one_state(
    State(s): State<ControlState>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Value>> {
    let key = key_of(path)?;
    (s.refresh)();
    let d = s
        .device(&key)
        .ok_or_else(|| ControlError::NotFound(format!("no device {key}")))?;
    Ok(Json(
        json!({ "clock": ClockView::of(&s.clock), "device": device_view(&s, d) }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ClockMode;
    use axum::body::Body;
    use axum::http::Request;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tower::ServiceExt;

    struct Fake {
        stuck: AtomicBool,
        clock: Clock,
    }
    impl FaultTarget for Fake {
        fn set_stuck(&self, stuck: bool) {
            self.stuck.store(stuck, Ordering::SeqCst);
        }
        fn force_disconnect(&self) {}
    }
    impl SimDevice for Fake {
        fn key(&self) -> DeviceKey {
            DeviceKey::new("focuser", 0)
        }
        fn unique_id(&self) -> String {
            "id".into()
        }
        fn name(&self) -> String {
            "fake".into()
        }
        fn connected(&self) -> bool {
            false
        }
        fn snapshot(&self) -> Value {
            json!({ "t": self.clock.now().secs(), "stuck": self.stuck.load(Ordering::SeqCst) })
        }
    }

    fn app() -> (Router, Clock) {
        let clock = Clock::with_mode(ClockMode::Stepped, SimTime(1000.0));
        let fake: Arc<Fake> = Arc::new(Fake {
            stuck: AtomicBool::new(false),
            clock: clock.clone(),
        });
        let mut targets: HashMap<DeviceKey, Arc<dyn FaultTarget>> = HashMap::new();
        targets.insert(fake.key(), fake.clone());
        let state = ControlState {
            clock: clock.clone(),
            faults: Faults::new(targets, 0, std::time::Duration::from_secs(1)),
            devices: Arc::new(vec![fake as Arc<dyn SimDevice>]),
            started: Instant::now(),
            refresh: Arc::new(|| {}),
        };
        (router(state), clock)
    }

    async fn call(app: &Router, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .expect("valid request");
        let resp = app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn the_clock_steps_and_changes_mode() {
        let (app, clock) = app();
        let (st, v) = call(
            &app,
            "PUT",
            "/simulator/v1/clock/step",
            r#"{"seconds": 60}"#,
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(v["now"], json!(1060.0));
        assert_eq!(clock.now(), SimTime(1060.0));
        let (st, v) = call(
            &app,
            "PUT",
            "/simulator/v1/clock",
            r#"{"time": "2026-01-01T00:00:00Z"}"#,
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["utc"], json!("2026-01-01T00:00:00.000Z"));
        let (st, v) = call(&app, "PUT", "/simulator/v1/clock", r#"{"rate": 10}"#).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(v["mode"], json!("running"));
        assert_eq!(clock.mode(), ClockMode::Running { rate: 10.0 });
        let (_, v) = call(&app, "GET", "/simulator/v1/clock", "").await;
        assert_eq!(v["rate"], json!(10.0));
    }

    #[tokio::test]
    async fn bad_clock_input_is_a_400_and_changes_nothing() {
        let (app, clock) = app();
        for body in [
            r#"{"rate": -1}"#,
            r#"{"rate": 0}"#,
            r#"{"step_secs": -5}"#,
            r#"{"time": 100, "step_secs": -1}"#,
            r#"{"mode": "sideways"}"#,
            r#"{"rate": 2, "mode": "stepped"}"#,
            r#"{"bogus": 1}"#,
            "not json",
        ] {
            let (st, v) = call(&app, "PUT", "/simulator/v1/clock", body).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
            assert!(v["error"].is_string(), "{body}: {v}");
        }
        let (st, _) = call(
            &app,
            "PUT",
            "/simulator/v1/clock/step",
            r#"{"seconds": -1}"#,
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert_eq!(clock.now(), SimTime(1000.0));
        assert_eq!(clock.mode(), ClockMode::Stepped);
    }

    #[tokio::test]
    async fn an_absurd_clock_rate_time_or_step_is_a_400_and_the_clock_keeps_running() {
        let (app, clock) = app();
        let (st, v) = call(&app, "PUT", "/simulator/v1/clock", r#"{"rate": 1}"#).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        for body in [
            r#"{"rate": 1e308}"#,
            r#"{"rate": 1e5}"#,
            r#"{"mode": "running", "rate": 1e300}"#,
            r#"{"time": 1e308}"#,
            r#"{"step_secs": 1e308}"#,
        ] {
            let (st, v) = call(&app, "PUT", "/simulator/v1/clock", body).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {v}");
            assert!(v["error"].is_string(), "{body}: {v}");
        }
        let (st, _) = call(
            &app,
            "PUT",
            "/simulator/v1/clock/step",
            r#"{"seconds": 1e308}"#,
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert_eq!(clock.mode(), ClockMode::Running { rate: 1.0 });
        let before = clock.now();
        assert!(before.secs() < 2000.0, "{before:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(clock.now() > before, "the clock still runs");
    }

    #[tokio::test]
    async fn faults_round_trip_and_reach_the_device() {
        let (app, _) = app();
        let (st, v) = call(
            &app,
            "PUT",
            "/simulator/v1/faults/focuser/0",
            r#"{"stuck": true, "latency_ms": 5}"#,
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["latency_ms"], json!(5));
        let (_, v) = call(&app, "GET", "/simulator/v1/state", "").await;
        assert_eq!(v["devices"][0]["state"]["stuck"], json!(true));
        assert_eq!(v["devices"][0]["fault"]["stuck"], json!(true));
        let (_, v) = call(&app, "GET", "/simulator/v1/faults", "").await;
        assert!(v["focuser/0"].is_object(), "{v}");
        let (st, _) = call(&app, "DELETE", "/simulator/v1/faults/focuser/0", "").await;
        assert_eq!(st, StatusCode::NO_CONTENT);
        let (_, v) = call(&app, "GET", "/simulator/v1/state/focuser/0", "").await;
        assert_eq!(v["device"]["state"]["stuck"], json!(false));
        assert_eq!(v["device"]["fault"], Value::Null);
    }

    #[tokio::test]
    async fn bad_fault_requests_say_why() {
        let (app, _) = app();
        let cases = [
            (
                "PUT",
                "/simulator/v1/faults/focuser/0",
                r#"{"error_rate": 3}"#,
                StatusCode::BAD_REQUEST,
            ),
            (
                "PUT",
                "/simulator/v1/faults/focuser/0",
                r#"{"laggy": true}"#,
                StatusCode::BAD_REQUEST,
            ),
            (
                "PUT",
                "/simulator/v1/faults/focuser/0",
                r#"{"latency_ms": -1}"#,
                StatusCode::BAD_REQUEST,
            ),
            (
                "PUT",
                "/simulator/v1/faults/toaster/0",
                r#"{}"#,
                StatusCode::BAD_REQUEST,
            ),
            (
                "PUT",
                "/simulator/v1/faults/focuser/9",
                r#"{}"#,
                StatusCode::NOT_FOUND,
            ),
            (
                "GET",
                "/simulator/v1/faults/focuser/x",
                "",
                StatusCode::BAD_REQUEST,
            ),
            (
                "GET",
                "/simulator/v1/state/dome/0",
                "",
                StatusCode::NOT_FOUND,
            ),
        ];
        for (m, uri, body, want) in cases {
            let (st, v) = call(&app, m, uri, body).await;
            assert_eq!(st, want, "{m} {uri} {body}: {v}");
            assert!(v["error"].is_string(), "{m} {uri}: {v}");
        }
    }

    #[tokio::test]
    async fn health_reports_devices_and_time() {
        let (app, _) = app();
        let (st, v) = call(&app, "GET", "/simulator/v1/health", "").await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(v["status"], json!("ok"));
        assert_eq!(v["devices"], json!(1));
        assert_eq!(v["clock"]["now"], json!(1000.0));
    }
}
