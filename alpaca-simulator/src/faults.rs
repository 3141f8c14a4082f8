//! Fault injection: per-device misbehaviour, switched on by config or the control API.
//!
//! A [`FaultSpec`] per device (type + number) can add latency, answer with an ASCOM error at
//! a rate, pretend the device is unreachable, hang requests, freeze the device's motion, or
//! break the transport (HTTP 500 at a rate, connections dropped without any response).
//!
//! Everything except "stuck" lives in one axum middleware, [`fault_layer`], in front of the
//! device routes: it reads the device from the request path (`/api/v1/{type}/{number}/…`),
//! so the device implementations know nothing about faults. "Stuck" has to reach into the
//! model, so setting it calls the device's [`FaultTarget::set_stuck`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Members that keep answering while a device is "disconnected" (ConformU reads them first).
const INFO_MEMBERS: [&str; 6] = [
    "name",
    "description",
    "driverinfo",
    "driverversion",
    "interfaceversion",
    "supportedactions",
];

/// The most latency a fault may add, so a typo cannot park a request for a day.
const MAX_LATENCY_MS: u64 = 600_000;

/// Which device a fault applies to: `telescope/0`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeviceKey {
    pub device_type: String,
    pub number: u32,
}

impl DeviceKey {
    pub fn new(device_type: &str, number: u32) -> Self {
        Self {
            device_type: device_type.to_owned(),
            number,
        }
    }
}

impl fmt::Display for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.device_type, self.number)
    }
}

impl FromStr for DeviceKey {
    type Err = FaultError;
    fn from_str(s: &str) -> Result<Self, FaultError> {
        let bad = || FaultError::BadKey(s.to_owned());
        let (t, n) = s.split_once('/').ok_or_else(bad)?;
        if !crate::config::DEVICE_TYPES.contains(&t) {
            return Err(bad());
        }
        Ok(Self {
            device_type: t.to_owned(),
            number: n.parse().map_err(|_| bad())?,
        })
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultError {
    #[error(
        "{0:?} is not a device key like \"telescope/0\" (types: telescope, dome, camera, focuser, filterwheel, rotator)"
    )]
    BadKey(String),
    #[error("no device {0}")]
    NoSuchDevice(DeviceKey),
    #[error("invalid fault: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// What is wrong with one device. Every field defaults to "fine".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSpec {
    /// Fixed delay added before every request is served (real milliseconds).
    pub latency_ms: u64,
    /// Extra random delay, uniform in 0..=jitter_ms.
    pub jitter_ms: u64,
    /// Fraction of requests (0…1) answered with HTTP 200 + `error_number`.
    pub error_rate: f64,
    /// The ASCOM error number those answers carry (0x400…0xFFF; default 0x500).
    pub error_number: u16,
    /// Their message (a default one names the fault).
    pub error_message: Option<String>,
    /// The device is unreachable: `connected` reads false and every member but the
    /// informational ones returns NotConnected. Setting it also drops the device's connection.
    pub disconnected: bool,
    /// Requests get no answer until the fault is cleared, or the hang cap passes (then the
    /// connection is dropped).
    pub hang: bool,
    /// Motion freezes: the model's `set_stuck(true)`; it reports moving but never arrives.
    pub stuck: bool,
    /// Fraction of requests (0…1) answered with HTTP 500.
    pub http500_rate: f64,
    /// Fraction of requests (0…1) whose TCP connection is closed with no response at all.
    pub drop_rate: f64,
}

impl Default for FaultSpec {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            jitter_ms: 0,
            error_rate: 0.0,
            error_number: 0x500,
            error_message: None,
            disconnected: false,
            hang: false,
            stuck: false,
            http500_rate: 0.0,
            drop_rate: 0.0,
        }
    }
}

impl FaultSpec {
    /// Everything wrong with this spec (empty = valid).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (name, rate) in [
            ("error_rate", self.error_rate),
            ("http500_rate", self.http500_rate),
            ("drop_rate", self.drop_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                p.push(format!("{name} must be between 0 and 1, got {rate}"));
            }
        }
        if !(0x400..=0xFFF).contains(&self.error_number) {
            p.push(format!(
                "error_number must be an ASCOM error number 0x400…0xFFF (1024…4095), got {}",
                self.error_number
            ));
        }
        if self.latency_ms.saturating_add(self.jitter_ms) > MAX_LATENCY_MS {
            p.push(format!(
                "latency_ms + jitter_ms must not exceed {MAX_LATENCY_MS}"
            ));
        }
        p
    }

    /// True when the spec changes nothing.
    pub fn is_noop(&self) -> bool {
        self.latency_ms == 0
            && self.jitter_ms == 0
            && self.error_rate == 0.0
            && !self.disconnected
            && !self.hang
            && !self.stuck
            && self.http500_rate == 0.0
            && self.drop_rate == 0.0
    }
}

/// The device side of faults that need the model itself.
pub trait FaultTarget: Send + Sync {
    /// Freeze (or release) the device's motion.
    fn set_stuck(&self, stuck: bool);
    /// Drop the device's connection, as a cable pull would.
    fn force_disconnect(&self);
}

/// The live fault table; cheap to clone.
#[derive(Clone)]
pub struct Faults {
    inner: Arc<FaultsInner>,
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faults")
            .field("active", &self.all())
            .finish_non_exhaustive()
    }
}

struct FaultsInner {
    specs: RwLock<HashMap<DeviceKey, FaultSpec>>,
    targets: HashMap<DeviceKey, Arc<dyn FaultTarget>>,
    /// Bumped on every change so hung requests re-check their device.
    changed: tokio::sync::watch::Sender<u64>,
    rng: Mutex<rand::rngs::StdRng>,
    hang_cap: Duration,
    /// ServerTransactionID for the answers the fault layer makes up itself.
    server_tx: AtomicU32,
}

impl Faults {
    /// A fault table for these devices. `seed` makes the random rates reproducible.
    pub fn new(
        targets: HashMap<DeviceKey, Arc<dyn FaultTarget>>,
        seed: u64,
        hang_cap: Duration,
    ) -> Self {
        let (changed, _) = tokio::sync::watch::channel(0);
        Self {
            inner: Arc::new(FaultsInner {
                specs: RwLock::new(HashMap::new()),
                targets,
                changed,
                rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
                hang_cap,
                server_tx: AtomicU32::new(0),
            }),
        }
    }

    /// Whether `key` names a device this table knows.
    pub fn has_device(&self, key: &DeviceKey) -> bool {
        self.inner.targets.contains_key(key)
    }

    /// The fault on one device, if any.
    pub fn get(&self, key: &DeviceKey) -> Option<FaultSpec> {
        self.read().get(key).cloned()
    }

    /// Every active fault, sorted by device.
    pub fn all(&self) -> BTreeMap<DeviceKey, FaultSpec> {
        self.read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Replace the fault on one device (a no-op spec clears it).
    pub fn set(&self, key: &DeviceKey, spec: FaultSpec) -> Result<(), FaultError> {
        let target = self
            .inner
            .targets
            .get(key)
            .ok_or_else(|| FaultError::NoSuchDevice(key.clone()))?;
        let problems = spec.problems();
        if !problems.is_empty() {
            return Err(FaultError::Invalid(problems));
        }
        let was_stuck = self.get(key).is_some_and(|s| s.stuck);
        if spec.stuck != was_stuck {
            target.set_stuck(spec.stuck);
        }
        if spec.disconnected {
            target.force_disconnect();
        }
        tracing::info!(device = %key, ?spec, "fault set");
        {
            let mut w = self.inner.specs.write().unwrap_or_else(|p| p.into_inner());
            if spec.is_noop() {
                w.remove(key);
            } else {
                w.insert(key.clone(), spec);
            }
        }
        self.inner.changed.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// Remove the fault on one device (releasing stuck motion and hung requests).
    pub fn clear(&self, key: &DeviceKey) -> Result<(), FaultError> {
        self.set(key, FaultSpec::default())
    }

    /// Remove every fault.
    pub fn clear_all(&self) {
        let keys: Vec<DeviceKey> = self.read().keys().cloned().collect();
        for k in keys {
            // Keys in the table always have a target, so this cannot fail.
            let _ = self.clear(&k);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<DeviceKey, FaultSpec>> {
        // Every write leaves the map consistent, so a poisoned lock is still usable.
        self.inner.specs.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A uniform number in [0, 1).
    fn roll(&self) -> f64 {
        self.inner
            .rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .random::<f64>()
    }

    fn jitter(&self, max_ms: u64) -> u64 {
        if max_ms == 0 {
            0
        } else {
            self.inner
                .rng
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .random_range(0..=max_ms)
        }
    }

    fn next_server_tx(&self) -> u32 {
        // Never 0: ConformU strict mode flags it.
        loop {
            let n = self
                .inner
                .server_tx
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_add(1);
            if n != 0 {
                return n;
            }
        }
    }

    /// Wait while `key` has a hang fault. `true` once it is cleared, `false` when the cap passes.
    async fn wait_out_hang(&self, key: &DeviceKey) -> bool {
        let mut rx = self.inner.changed.subscribe();
        let deadline = tokio::time::Instant::now() + self.inner.hang_cap;
        loop {
            if !self.get(key).is_some_and(|s| s.hang) {
                return true;
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return false },
                _ = tokio::time::sleep_until(deadline) => return false,
            }
        }
    }
}

/// `(device, member)` from `/api/v1/{type}/{number}/{member}`; `None` for any other path.
pub fn device_of_path(path: &str) -> Option<(DeviceKey, &str)> {
    let rest = path.strip_prefix("/api/v1/")?;
    let mut parts = rest.split('/');
    let (t, n, m) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !crate::config::DEVICE_TYPES.contains(&t) {
        return None;
    }
    Some((DeviceKey::new(t, n.parse().ok()?), m))
}

/// The axum middleware: apply the request's device fault, if any, then pass it on.
pub async fn fault_layer(State(faults): State<Faults>, req: Request, next: Next) -> Response {
    let Some((key, member)) = device_of_path(req.uri().path()) else {
        return next.run(req).await;
    };
    let member = member.to_owned();
    let Some(mut spec) = faults.get(&key) else {
        return next.run(req).await;
    };
    if spec.hang {
        if !faults.wait_out_hang(&key).await {
            tracing::debug!(device = %key, "hang cap reached; dropping the connection");
            return dropped_connection();
        }
        match faults.get(&key) {
            Some(s) => spec = s,
            None => return next.run(req).await,
        }
    }
    let delay = spec
        .latency_ms
        .saturating_add(faults.jitter(spec.jitter_ms));
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if spec.drop_rate > 0.0 && faults.roll() < spec.drop_rate {
        return dropped_connection();
    }
    if spec.http500_rate > 0.0 && faults.roll() < spec.http500_rate {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("simulated fault: internal server error on {key}"),
        )
            .into_response();
    }
    if spec.disconnected && !INFO_MEMBERS.contains(&member.as_str()) {
        let is_get = req.method() == Method::GET;
        let client_tx = client_transaction_id(req).await;
        return match (is_get, member.as_str()) {
            (true, "connected" | "connecting") => {
                envelope(&faults, client_tx, Some(false.into()), 0, "")
            }
            (false, "disconnect") => envelope(&faults, client_tx, None, 0, ""),
            _ => envelope(
                &faults,
                client_tx,
                default_value(&key.device_type, &member, is_get),
                0x407,
                "simulated fault: the device is unreachable",
            ),
        };
    }
    if spec.error_rate > 0.0 && faults.roll() < spec.error_rate {
        let is_get = req.method() == Method::GET;
        let client_tx = client_transaction_id(req).await;
        let message = spec
            .error_message
            .clone()
            .unwrap_or_else(|| format!("simulated fault on {key}"));
        let value = default_value(&key.device_type, &member, is_get);
        return envelope(&faults, client_tx, value, spec.error_number, &message);
    }
    next.run(req).await
}

/// The `Value` an error reply carries: the member's type default for a GET (ConformU strict
/// mode wants `Value` even on errors), nothing for a PUT, looked up in the protocol tables.
fn default_value(device_type: &str, member: &str, is_get: bool) -> Option<serde_json::Value> {
    use bigskies_alpaca::devices as d;
    use bigskies_alpaca::types::Verb;
    use bigskies_alpaca::wire::ValueKind;
    use serde_json::{Value, json};
    if !is_get {
        return None;
    }
    let table: &[bigskies_alpaca::wire::MemberInfo] = match device_type {
        "telescope" => d::TELESCOPE_MEMBERS,
        "camera" => d::CAMERA_MEMBERS,
        "dome" => d::DOME_MEMBERS,
        "focuser" => d::FOCUSER_MEMBERS,
        "filterwheel" => d::FILTER_WHEEL_MEMBERS,
        "rotator" => d::ROTATOR_MEMBERS,
        _ => &[],
    };
    let kind = d::COMMON_MEMBERS
        .iter()
        .chain(table)
        .find(|m| m.verb == Verb::Get && m.matches_path(member))
        .map(|m| m.returns);
    Some(match kind {
        Some(ValueKind::Nothing) => return None,
        Some(ValueKind::Bool) => json!(false),
        Some(ValueKind::Int | ValueKind::Enum(_)) => json!(0),
        Some(ValueKind::Double) => json!(0.0),
        Some(ValueKind::String | ValueKind::Date) => json!(""),
        Some(_) => json!([]),
        None => Value::Null,
    })
}

/// A response whose body fails at once: hyper then closes the connection without writing
/// anything (the head is still buffered when the body errors), so the client sees EOF.
fn dropped_connection() -> Response {
    let stream = futures::stream::iter([Err::<Bytes, std::io::Error>(std::io::Error::other(
        "simulated fault: connection dropped",
    ))]);
    Response::new(Body::from_stream(stream))
}

/// An Alpaca JSON envelope made up by the fault layer.
fn envelope(
    faults: &Faults,
    client_tx: u32,
    value: Option<serde_json::Value>,
    error_number: u16,
    message: &str,
) -> Response {
    let mut obj = serde_json::Map::new();
    if let Some(v) = value {
        obj.insert("Value".into(), v);
    }
    obj.insert("ClientTransactionID".into(), client_tx.into());
    obj.insert("ServerTransactionID".into(), faults.next_server_tx().into());
    obj.insert("ErrorNumber".into(), error_number.into());
    obj.insert("ErrorMessage".into(), message.into());
    let mut resp = Response::new(Body::from(serde_json::Value::Object(obj).to_string()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// ClientTransactionID as the Alpaca rules read it: any casing in a GET query, exact casing
/// in a PUT body; 0 when absent or unreadable.
async fn client_transaction_id(req: Request) -> u32 {
    const NAME: &str = "ClientTransactionID";
    if req.method() == Method::GET {
        let q = req.uri().query().unwrap_or("");
        serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .ok()
            .and_then(|pairs| {
                pairs
                    .into_iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(NAME))
            })
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0)
    } else {
        let Ok(body) = axum::body::to_bytes(req.into_body(), 64 * 1024).await else {
            return 0;
        };
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
            .ok()
            .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == NAME))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[derive(Default)]
    struct Target {
        stuck: AtomicBool,
        disconnects: AtomicU32,
    }
    impl FaultTarget for Target {
        fn set_stuck(&self, stuck: bool) {
            self.stuck.store(stuck, Ordering::SeqCst);
        }
        fn force_disconnect(&self) {
            self.disconnects.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn table() -> (Faults, Arc<Target>) {
        let t = Arc::new(Target::default());
        let mut targets: HashMap<DeviceKey, Arc<dyn FaultTarget>> = HashMap::new();
        targets.insert(DeviceKey::new("focuser", 0), t.clone());
        (Faults::new(targets, 1, Duration::from_millis(200)), t)
    }

    #[test]
    fn keys_parse_and_print() {
        let k: DeviceKey = "telescope/3".parse().expect("valid");
        assert_eq!(k, DeviceKey::new("telescope", 3));
        assert_eq!(k.to_string(), "telescope/3");
        for bad in [
            "telescope",
            "Telescope/0",
            "toaster/0",
            "dome/-1",
            "dome/x",
            "",
        ] {
            assert!(bad.parse::<DeviceKey>().is_err(), "{bad}");
        }
    }

    #[test]
    fn device_paths_are_recognised() {
        assert_eq!(
            device_of_path("/api/v1/dome/2/slewing"),
            Some((DeviceKey::new("dome", 2), "slewing"))
        );
        assert_eq!(device_of_path("/api/v1/dome/2"), None);
        assert_eq!(device_of_path("/api/v1/DOME/2/slewing"), None);
        assert_eq!(device_of_path("/simulator/v1/faults/dome/2"), None);
        assert_eq!(device_of_path("/api/v1/dome/x/slewing"), None);
    }

    #[test]
    fn bad_specs_are_refused_with_every_reason() {
        let (f, _) = table();
        let spec = FaultSpec {
            error_rate: 1.5,
            drop_rate: -0.1,
            error_number: 7,
            ..FaultSpec::default()
        };
        let Err(FaultError::Invalid(p)) = f.set(&DeviceKey::new("focuser", 0), spec) else {
            panic!("accepted")
        };
        assert_eq!(p.len(), 3, "{p:?}");
        assert_eq!(
            f.set(&DeviceKey::new("dome", 0), FaultSpec::default()),
            Err(FaultError::NoSuchDevice(DeviceKey::new("dome", 0)))
        );
    }

    #[test]
    fn stuck_and_disconnect_reach_the_device() {
        let (f, t) = table();
        let k = DeviceKey::new("focuser", 0);
        f.set(
            &k,
            FaultSpec {
                stuck: true,
                disconnected: true,
                ..FaultSpec::default()
            },
        )
        .expect("valid");
        assert!(t.stuck.load(Ordering::SeqCst));
        assert_eq!(t.disconnects.load(Ordering::SeqCst), 1);
        assert!(f.get(&k).is_some());
        f.clear(&k).expect("known device");
        assert!(!t.stuck.load(Ordering::SeqCst));
        assert!(f.get(&k).is_none(), "a cleared fault leaves no entry");
        assert!(f.all().is_empty());
    }

    #[tokio::test]
    async fn a_hang_ends_when_cleared_or_at_the_cap() {
        let (f, _) = table();
        let k = DeviceKey::new("focuser", 0);
        f.set(
            &k,
            FaultSpec {
                hang: true,
                ..FaultSpec::default()
            },
        )
        .expect("valid");
        assert!(!f.wait_out_hang(&k).await, "cap of 200 ms reached");
        let f2 = f.clone();
        let k2 = k.clone();
        let waiter = tokio::spawn(async move { f2.wait_out_hang(&k2).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        f.clear(&k).expect("known device");
        assert!(waiter.await.expect("no panic"), "released by the clear");
    }

    #[test]
    fn server_transaction_ids_skip_zero() {
        let (f, _) = table();
        f.inner.server_tx.store(u32::MAX - 1, Ordering::Relaxed);
        assert_eq!(f.next_server_tx(), u32::MAX);
        assert_eq!(f.next_server_tx(), 1);
    }

    /// A server with the fault layer in front of one fake device route.
    async fn serve(faults: Faults) -> std::net::SocketAddr {
        use axum::routing::get;
        let app = axum::Router::new()
            .route(
                "/api/v1/focuser/0/position",
                get(|| async { r#"{"Value":1}"# }).put(|| async { "{}" }),
            )
            .layer(axum::middleware::from_fn_with_state(faults, fault_layer));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// Send one raw HTTP/1.1 request and read until the server closes.
    async fn raw(addr: std::net::SocketAddr, request: &str) -> Vec<u8> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(request.as_bytes()).await.expect("write");
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        out
    }

    const GET: &str = "GET /api/v1/focuser/0/position?ClientTransactionID=9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

    #[tokio::test]
    async fn a_dropped_connection_gets_no_bytes_at_all() {
        let (f, _) = table();
        let addr = serve(f.clone()).await;
        assert!(String::from_utf8_lossy(&raw(addr, GET).await).starts_with("HTTP/1.1 200"));
        f.set(
            &DeviceKey::new("focuser", 0),
            FaultSpec {
                drop_rate: 1.0,
                ..FaultSpec::default()
            },
        )
        .expect("valid");
        assert_eq!(
            raw(addr, GET).await,
            b"",
            "the connection closes with nothing written"
        );
    }

    #[tokio::test]
    async fn transport_and_ascom_errors_are_answered_as_configured() {
        let (f, _) = table();
        let addr = serve(f.clone()).await;
        let k = DeviceKey::new("focuser", 0);
        f.set(
            &k,
            FaultSpec {
                http500_rate: 1.0,
                ..FaultSpec::default()
            },
        )
        .expect("valid");
        assert!(String::from_utf8_lossy(&raw(addr, GET).await).starts_with("HTTP/1.1 500"));

        f.set(
            &k,
            FaultSpec {
                error_rate: 1.0,
                error_number: 0x555,
                ..FaultSpec::default()
            },
        )
        .expect("valid");
        let text = String::from_utf8_lossy(&raw(addr, GET).await).into_owned();
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(
            text.contains(r#""ErrorNumber":1365"#) && text.contains(r#""ClientTransactionID":9"#),
            "{text}"
        );
        assert!(
            text.contains(r#""Value":0"#),
            "focuser Position defaults to 0: {text}"
        );

        f.set(
            &k,
            FaultSpec {
                disconnected: true,
                ..FaultSpec::default()
            },
        )
        .expect("valid");
        let put = "PUT /api/v1/focuser/0/position HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
                   Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 23\r\n\r\nClientTransactionID=417";
        let text = String::from_utf8_lossy(&raw(addr, put).await).into_owned();
        assert!(
            text.contains(r#""ErrorNumber":1031"#) && text.contains(r#""ClientTransactionID":417"#),
            "{text}"
        );
        assert!(
            !text.contains("Value"),
            "PUT answers carry no Value: {text}"
        );
    }

    #[tokio::test]
    async fn latency_delays_the_answer() {
        let (f, _) = table();
        let addr = serve(f.clone()).await;
        f.set(
            &DeviceKey::new("focuser", 0),
            FaultSpec {
                latency_ms: 150,
                ..FaultSpec::default()
            },
        )
        .expect("valid");
        let t0 = std::time::Instant::now();
        assert!(String::from_utf8_lossy(&raw(addr, GET).await).starts_with("HTTP/1.1 200"));
        assert!(t0.elapsed() >= Duration::from_millis(150));
    }
}
