//! The Alpaca HTTP server: a registry of devices by type and number turned into an axum
//! [`Router`] that applies PROTOCOL.md §1–§3 and §11 at one edge:
//!
//! * paths are lower case only; unknown type, number or member → 400 `text/plain`;
//! * GET parameters come from the query (names case-insensitive), PUT parameters from the
//!   urlencoded body (names case-sensitive: a wrongly cased name is absent);
//! * malformed ClientID / ClientTransactionID → 400, missing → fine (echo 0);
//! * ServerTransactionID counts from 1 per server and skips 0 on wrap;
//! * every 200 reply is the JSON envelope (`Value` always present on GET, type default on
//!   error) with `application/json; charset=utf-8`, or ImageBytes for `imagearray` when the
//!   client sent `Accept: application/imagebytes`;
//! * verbs other than GET/PUT → 405; a panicking device → 500 `text/plain`, never a crash.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::header::{ACCEPT, ALLOW, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures::FutureExt;
use serde::Serialize;

use crate::devices::{
    AnyDevice, Camera, Dome, FilterWheel, Focuser, Rotator, Telescope, members_of,
};
use crate::error::AlpacaError;
use crate::image::{
    IMAGE_BYTES_MIME, ImageJsonValue, encode_image_bytes, encode_image_bytes_error,
};
use crate::management::{ConfiguredDevice, ServerDescription};
use crate::types::{DeviceType, Verb};
use crate::wire::{Dispatch, ParamError, Params, Reply, ReplyValue, ValueKind};

/// What `/management/v1/description` reports about this server.
pub type ServerInfo = ServerDescription;

/// What the registrant says about a device for `configureddevices` and the setup pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceMeta {
    pub name: String,
    /// Persistent and unique per device (a UUID string).
    pub unique_id: String,
}

impl DeviceMeta {
    pub fn new(name: impl Into<String>, unique_id: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            unique_id: unique_id.into(),
        }
    }
}

const JSON: &str = "application/json; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// Builder and owner of the device registry.
#[derive(Clone, Debug)]
pub struct AlpacaServer {
    info: ServerInfo,
    devices: Registry,
}

impl AlpacaServer {
    pub fn new(info: ServerInfo) -> Self {
        Self {
            info,
            devices: BTreeMap::new(),
        }
    }

    /// Registers a device; a second registration with the same type and number replaces the first.
    pub fn with_device(mut self, number: u32, meta: DeviceMeta, device: AnyDevice) -> Self {
        if self
            .devices
            .insert((device.device_type(), number), (meta, device))
            .is_some()
        {
            tracing::warn!(
                number,
                "device registered twice; the later registration wins"
            );
        }
        self
    }

    pub fn with_telescope(self, number: u32, meta: DeviceMeta, device: Arc<dyn Telescope>) -> Self {
        self.with_device(number, meta, AnyDevice::Telescope(device))
    }
    pub fn with_camera(self, number: u32, meta: DeviceMeta, device: Arc<dyn Camera>) -> Self {
        self.with_device(number, meta, AnyDevice::Camera(device))
    }
    pub fn with_dome(self, number: u32, meta: DeviceMeta, device: Arc<dyn Dome>) -> Self {
        self.with_device(number, meta, AnyDevice::Dome(device))
    }
    pub fn with_focuser(self, number: u32, meta: DeviceMeta, device: Arc<dyn Focuser>) -> Self {
        self.with_device(number, meta, AnyDevice::Focuser(device))
    }
    pub fn with_filter_wheel(
        self,
        number: u32,
        meta: DeviceMeta,
        device: Arc<dyn FilterWheel>,
    ) -> Self {
        self.with_device(number, meta, AnyDevice::FilterWheel(device))
    }
    pub fn with_rotator(self, number: u32, meta: DeviceMeta, device: Arc<dyn Rotator>) -> Self {
        self.with_device(number, meta, AnyDevice::Rotator(device))
    }

    pub fn info(&self) -> &ServerInfo {
        &self.info
    }

    /// The `configureddevices` list, ordered by type then number.
    pub fn configured_devices(&self) -> Vec<ConfiguredDevice> {
        configured(&self.devices)
    }

    /// The router: `/api/v1/...`, `/management/...`, `/setup...`, and a fallback that answers
    /// 400 for anything else under `/api/` and 404 elsewhere. Because it has a fallback, add
    /// other routes with `.merge()` of a router *without* its own fallback, or `.route()`.
    pub fn router(self) -> Router {
        let state = Arc::new(ServerState {
            info: self.info,
            devices: self.devices,
            next_server_transaction: AtomicU32::new(1),
        });
        Router::new()
            .route(
                "/api/v1/{device_type}/{device_number}/{member}",
                any(device_handler),
            )
            .route("/management/apiversions", any(api_versions))
            .route("/management/v1/description", any(description))
            .route("/management/v1/configureddevices", any(configured_devices))
            .route("/setup", any(setup_page))
            .route(
                "/setup/v1/{device_type}/{device_number}/setup",
                any(device_setup_page),
            )
            .fallback(fallback)
            .with_state(state)
    }

    /// Serves the router on `listener` until `shutdown` completes (graceful drain).
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }
}

struct ServerState {
    info: ServerInfo,
    devices: Registry,
    next_server_transaction: AtomicU32,
}

impl ServerState {
    /// 1, 2, …; 0 is never handed out (ConformU strict mode flags it).
    fn next_server_transaction_id(&self) -> u32 {
        loop {
            let id = self.next_server_transaction.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static(TEXT))],
        message.into(),
    )
        .into_response()
}

fn bad_request(message: impl Into<String>) -> Response {
    text(StatusCode::BAD_REQUEST, message)
}

fn method_not_allowed(allowed: &'static str) -> Response {
    let mut r = text(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("only {allowed} is supported here"),
    );
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allowed));
    r
}

fn internal_error() -> Response {
    text(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
}

fn json_response(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(CONTENT_TYPE, HeaderValue::from_static(JSON))],
        body,
    )
        .into_response()
}

/// Splits a query string or form body into pairs; `+` and `%XX` are decoded.
fn parse_pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(text)
        .map_err(|e| format!("malformed parameters: {e}"))
}

/// The GET parameters of a request.
fn query_params(uri: &Uri) -> Result<Params, String> {
    parse_pairs(uri.query().unwrap_or("")).map(Params::query)
}

/// The PUT parameters: the body, which must be urlencoded (with or without a charset) when a
/// content type is given at all.
fn form_params(headers: &HeaderMap, body: &[u8]) -> Result<Params, String> {
    if let Some(ct) = headers.get(CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !mime.is_empty() && mime != "application/x-www-form-urlencoded" {
            return Err(format!(
                "PUT parameters must be application/x-www-form-urlencoded, not {mime}"
            ));
        }
    }
    let body = std::str::from_utf8(body).map_err(|_| "PUT body is not UTF-8".to_owned())?;
    parse_pairs(body).map(Params::form)
}

/// Reads ClientID and ClientTransactionID; a malformed value is a 400.
fn transaction_ids(params: &Params) -> Result<u32, String> {
    params
        .transaction_id("ClientID")
        .map_err(|e| e.to_string())?;
    let ctid = params
        .transaction_id("ClientTransactionID")
        .map_err(|e: ParamError| e.to_string())?;
    Ok(ctid.unwrap_or(0))
}

#[derive(Serialize)]
#[serde(untagged)]
enum ValueOut<'a> {
    Json(&'a serde_json::Value),
    Image(ImageJsonValue<'a>),
}

#[derive(Serialize)]
struct EnvelopeOut<'a> {
    #[serde(rename = "Type", skip_serializing_if = "Option::is_none")]
    image_type: Option<i32>,
    #[serde(rename = "Rank", skip_serializing_if = "Option::is_none")]
    rank: Option<u32>,
    #[serde(rename = "Value", skip_serializing_if = "Option::is_none")]
    value: Option<ValueOut<'a>>,
    #[serde(rename = "ClientTransactionID")]
    client_transaction_id: u32,
    #[serde(rename = "ServerTransactionID")]
    server_transaction_id: u32,
    #[serde(rename = "ErrorNumber")]
    error_number: i32,
    #[serde(rename = "ErrorMessage")]
    error_message: &'a str,
}

fn envelope_json(
    value: Option<&ReplyValue>,
    error: Option<&AlpacaError>,
    ctid: u32,
    stid: u32,
) -> Response {
    let (image_type, rank, value) = match value {
        None => (None, None, None),
        Some(ReplyValue::Json(v)) => (None, None, Some(ValueOut::Json(v))),
        Some(ReplyValue::Image(img)) => (
            Some(2),
            Some(img.rank()),
            Some(ValueOut::Image(img.json_value())),
        ),
    };
    let env = EnvelopeOut {
        image_type,
        rank,
        value,
        client_transaction_id: ctid,
        server_transaction_id: stid,
        error_number: error.map_or(0, |e| i32::from(wire_error_code(e).0)),
        error_message: error.map_or("", |e| e.message.as_str()),
    };
    match serde_json::to_vec(&env) {
        Ok(body) => json_response(body),
        Err(e) => {
            tracing::error!(error = %e, "could not serialise a reply");
            internal_error()
        }
    }
}

/// An error must never travel as ErrorNumber 0 (that would read as success with a message).
fn wire_error_code(e: &AlpacaError) -> crate::ErrorCode {
    if e.code.0 == 0 {
        crate::ErrorCode::UNSPECIFIED
    } else {
        e.code
    }
}

fn wants_image_bytes(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains(IMAGE_BYTES_MIME))
}

fn image_bytes_response(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(CONTENT_TYPE, HeaderValue::from_static(IMAGE_BYTES_MIME))],
        body,
    )
        .into_response()
}

/// Turns a member's [`Reply`] into the HTTP 200 answer; `image_bytes` = an image member was
/// asked for with `Accept: application/imagebytes`.
fn reply_response(reply: Reply, image_bytes: bool, ctid: u32, stid: u32) -> Response {
    match (&reply.value, &reply.error, image_bytes) {
        (Some(ReplyValue::Image(img)), None, true) => {
            image_bytes_response(encode_image_bytes(img, ctid, stid))
        }
        (_, Some(err), true) => {
            let err = AlpacaError::new(wire_error_code(err), err.message.clone());
            image_bytes_response(encode_image_bytes_error(&err, ctid, stid))
        }
        _ => envelope_json(reply.value.as_ref(), reply.error.as_ref(), ctid, stid),
    }
}

fn is_image_member(device_type: DeviceType, member: &str) -> bool {
    members_of(device_type)
        .iter()
        .any(|m| m.returns == ValueKind::Image && m.matches_path(member))
}

fn parse_device_number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

async fn device_handler(
    State(state): State<Arc<ServerState>>,
    method: Method,
    path: Result<Path<(String, String, String)>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let verb = match method {
        Method::GET => Verb::Get,
        Method::PUT => Verb::Put,
        _ => return method_not_allowed("GET, PUT"),
    };
    let Ok(Path((type_segment, number_segment, member))) = path else {
        return bad_request("malformed path");
    };
    let Some(device_type) = DeviceType::from_path(&type_segment) else {
        return bad_request(format!(
            "unknown device type {type_segment:?} (paths are lower case)"
        ));
    };
    let Some(number) = parse_device_number(&number_segment) else {
        return bad_request(format!(
            "device number {number_segment:?} is not an unsigned integer"
        ));
    };
    let Some((_, device)) = state.devices.get(&(device_type, number)) else {
        return bad_request(format!("{device_type} {number} is not configured"));
    };
    let params = match verb {
        Verb::Get => query_params(&uri),
        Verb::Put => match &body {
            Ok(bytes) => form_params(&headers, bytes),
            Err(e) => Err(format!("could not read the body: {e}")),
        },
    };
    let params = match params {
        Ok(p) => p,
        Err(message) => return bad_request(message),
    };
    let ctid = match transaction_ids(&params) {
        Ok(id) => id,
        Err(message) => return bad_request(message),
    };
    let outcome = AssertUnwindSafe(device.dispatch(verb, &member, &params))
        .catch_unwind()
        .await;
    match outcome {
        Ok(Dispatch::Reply(reply)) => {
            let stid = state.next_server_transaction_id();
            let image_bytes = is_image_member(device_type, &member) && wants_image_bytes(&headers);
            reply_response(reply, image_bytes, ctid, stid)
        }
        Ok(Dispatch::BadRequest(message)) => bad_request(message),
        Ok(Dispatch::NoMember) => bad_request(format!(
            "{verb} {member:?} is not a member of {device_type}"
        )),
        Err(_) => {
            tracing::error!(%device_type, number, member, "device panicked while handling a request");
            internal_error()
        }
    }
}

/// Shared shape of the management replies.
fn management_reply<T: Serialize>(
    state: &ServerState,
    method: &Method,
    uri: &Uri,
    value: T,
) -> Response {
    if method != Method::GET {
        return method_not_allowed("GET");
    }
    let ctid = match query_params(uri).and_then(|p| transaction_ids(&p)) {
        Ok(id) => id,
        Err(message) => return bad_request(message),
    };
    match serde_json::to_value(value) {
        Ok(v) => envelope_json(
            Some(&ReplyValue::Json(v)),
            None,
            ctid,
            state.next_server_transaction_id(),
        ),
        Err(_) => internal_error(),
    }
}

async fn api_versions(State(state): State<Arc<ServerState>>, method: Method, uri: Uri) -> Response {
    management_reply(&state, &method, &uri, [1u32])
}

async fn description(State(state): State<Arc<ServerState>>, method: Method, uri: Uri) -> Response {
    management_reply(&state, &method, &uri, &state.info)
}

async fn configured_devices(
    State(state): State<Arc<ServerState>>,
    method: Method,
    uri: Uri,
) -> Response {
    management_reply(&state, &method, &uri, configured(&state.devices))
}

type Registry = BTreeMap<(DeviceType, u32), (DeviceMeta, AnyDevice)>;

fn configured(devices: &Registry) -> Vec<ConfiguredDevice> {
    devices
        .iter()
        .map(|((t, n), (meta, _))| ConfiguredDevice {
            device_name: meta.name.clone(),
            device_type: t.name().to_owned(),
            device_number: *n,
            unique_id: meta.unique_id.clone(),
        })
        .collect()
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html_page(title: &str, body: &str) -> Response {
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n</head>\n<body>\n{}\n</body>\n</html>\n",
        escape_html(title),
        body
    );
    (
        StatusCode::OK,
        [(CONTENT_TYPE, HeaderValue::from_static(HTML))],
        page,
    )
        .into_response()
}

async fn setup_page(State(state): State<Arc<ServerState>>, method: Method) -> Response {
    if method != Method::GET {
        return method_not_allowed("GET");
    }
    let info = &state.info;
    let mut body = format!(
        "<h1>{}</h1>\n<p>{} {} &mdash; {}</p>\n<h2>Devices</h2>\n<ul>\n",
        escape_html(&info.server_name),
        escape_html(&info.manufacturer),
        escape_html(&info.manufacturer_version),
        escape_html(&info.location)
    );
    for ((t, n), (meta, _)) in &state.devices {
        body.push_str(&format!(
            "<li><a href=\"/setup/v1/{}/{}/setup\">{} {}: {}</a></li>\n",
            t.path(),
            n,
            t.name(),
            n,
            escape_html(&meta.name)
        ));
    }
    body.push_str("</ul>");
    html_page(&format!("{} setup", info.server_name), &body)
}

async fn device_setup_page(
    State(state): State<Arc<ServerState>>,
    method: Method,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    if method != Method::GET {
        return method_not_allowed("GET");
    }
    let found = path.ok().and_then(|Path((t, n))| {
        let key = (DeviceType::from_path(&t)?, parse_device_number(&n)?);
        state.devices.get(&key).map(|(meta, _)| (key, meta))
    });
    // The management YAML answers unknown setup targets with 403.
    let Some(((t, n), meta)) = found else {
        return text(StatusCode::FORBIDDEN, "no such device");
    };
    let body = format!(
        "<h1>{} {}: {}</h1>\n<p>{} device, unique ID {}, served by {}.</p>\n<p>Nothing to configure here; settings come from the server configuration.</p>\n<p><a href=\"/setup\">All devices</a></p>",
        t.name(),
        n,
        escape_html(&meta.name),
        t.name(),
        escape_html(&meta.unique_id),
        escape_html(&state.info.server_name)
    );
    html_page(&format!("{} {} setup", t.name(), n), &body)
}

async fn fallback(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") || uri.path() == "/api" {
        bad_request(format!("{} is not an Alpaca device path", uri.path()))
    } else {
        text(StatusCode::NOT_FOUND, "not found")
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
