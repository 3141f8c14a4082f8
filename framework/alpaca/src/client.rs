//! The Alpaca HTTP client: [`AlpacaClient`] (one server: base URL, ClientID, transaction ids,
//! timeouts) and device handles ([`RemoteTelescope`] and friends) that
//! implement the device traits, so a remote device and a local one are interchangeable.
//!
//! Transport problems are kept apart from ASCOM errors in [`ClientError`]. Trait methods must
//! return an [`AlpacaError`], so they fold transport errors into driver-specific numbers (see
//! [`ClientError::into_alpaca`]); [`Checked`] offers every member with the full `ClientError`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde::Deserialize;

use crate::devices::{
    RemoteCamera, RemoteDome, RemoteFilterWheel, RemoteFocuser, RemoteRotator, RemoteTelescope,
};
use crate::error::{AlpacaError, ErrorCode};
use crate::image::{IMAGE_BYTES_MIME, decode_image_bytes};
use crate::management::{ConfiguredDevice, ServerDescription};
use crate::types::{DeviceType, Verb};
use crate::wire::{ValueKind, WireValue};

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a non-200 status (400 = request not understood).
    #[error("HTTP {status}: {body}")]
    Http { status: u16, body: String },
    /// No complete reply within the call's timeout.
    #[error("request timed out")]
    Timeout,
    /// Connection refused, reset, DNS, …
    #[error("transport error: {0}")]
    Io(#[source] reqwest::Error),
    /// A 200 reply that is not valid Alpaca JSON / ImageBytes, or a `Value` of the wrong type.
    #[error("could not decode the reply: {0}")]
    Decode(String),
    /// The device understood and said no.
    #[error(transparent)]
    Ascom(#[from] AlpacaError),
}

impl ClientError {
    /// Driver-specific number used for [`ClientError::Http`] when folded into an `AlpacaError`.
    pub const HTTP_CODE: ErrorCode = ErrorCode(0x500);
    /// … for [`ClientError::Timeout`].
    pub const TIMEOUT_CODE: ErrorCode = ErrorCode(0x501);
    /// … for [`ClientError::Io`].
    pub const IO_CODE: ErrorCode = ErrorCode(0x502);
    /// … for [`ClientError::Decode`].
    pub const DECODE_CODE: ErrorCode = ErrorCode(0x503);

    /// ASCOM errors pass through unchanged; transport errors become driver-specific errors
    /// 0x500 (HTTP status), 0x501 (timeout), 0x502 (I/O), 0x503 (decode) with the text kept.
    pub fn into_alpaca(self) -> AlpacaError {
        match self.transport_code() {
            Some(code) => AlpacaError::new(code, self.to_string()),
            None => match self {
                ClientError::Ascom(e) => e,
                other => AlpacaError::unspecified(other.to_string()),
            },
        }
    }

    /// The driver-specific number a transport error is folded into; `None` for ASCOM errors.
    pub fn transport_code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Ascom(_) => None,
            ClientError::Http { .. } => Some(Self::HTTP_CODE),
            ClientError::Timeout => Some(Self::TIMEOUT_CODE),
            ClientError::Io(_) => Some(Self::IO_CODE),
            ClientError::Decode(_) => Some(Self::DECODE_CODE),
        }
    }

    /// The ASCOM error, if this is one.
    pub fn as_ascom(&self) -> Option<&AlpacaError> {
        match self {
            ClientError::Ascom(e) => Some(e),
            _ => None,
        }
    }

    fn from_reqwest(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            ClientError::Timeout
        } else {
            ClientError::Io(e)
        }
    }
}

/// Settings for [`AlpacaClient::build`].
#[derive(Clone, Debug)]
pub struct AlpacaClientConfig {
    /// `http://host:port`, without a trailing path.
    pub base_url: String,
    /// Sent with every request; 0 is reserved, so it is replaced by 1.
    pub client_id: u32,
    /// Whole-request timeout for ordinary members.
    pub timeout: Duration,
    /// Whole-request timeout for `imagearray` / `imagearrayvariant` downloads.
    pub image_timeout: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
}

impl AlpacaClientConfig {
    /// Defaults like ConformU's: 10 s per call, 100 s for images, 5 s to connect.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            client_id: 1,
            timeout: Duration::from_secs(10),
            image_timeout: Duration::from_secs(100),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// A cheap-`Clone` handle to one Alpaca server.
#[derive(Clone, Debug)]
pub struct AlpacaClient {
    inner: Arc<ClientInner>,
}

#[derive(Debug)]
struct ClientInner {
    http: reqwest::Client,
    base: String,
    client_id: u32,
    next_transaction: AtomicU32,
    timeout: Duration,
    image_timeout: Duration,
}

/// The envelope of a JSON reply (ErrorNumber is checked before Value is looked at).
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "Value", default)]
    value: Option<serde_json::Value>,
    #[serde(rename = "ErrorNumber", default)]
    error_number: i64,
    #[serde(rename = "ErrorMessage", default)]
    error_message: Option<String>,
}

impl AlpacaClient {
    /// A client with default settings for `base_url` (e.g. `http://127.0.0.1:32323`).
    pub fn build(base_url: impl Into<String>) -> Result<Self, ClientError> {
        Self::with_config(AlpacaClientConfig::new(base_url))
    }

    pub fn with_config(config: AlpacaClientConfig) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(ClientError::Io)?;
        Ok(Self {
            inner: Arc::new(ClientInner {
                http,
                base: config.base_url.trim_end_matches('/').to_owned(),
                client_id: config.client_id.max(1),
                next_transaction: AtomicU32::new(1),
                timeout: config.timeout,
                image_timeout: config.image_timeout,
            }),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    pub fn client_id(&self) -> u32 {
        self.inner.client_id
    }

    /// The next ClientTransactionID: 1, 2, …, skipping 0 on wrap.
    pub fn next_transaction_id(&self) -> u32 {
        loop {
            let id = self.inner.next_transaction.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }

    pub fn telescope(&self, number: u32) -> RemoteTelescope {
        RemoteTelescope::new(self.clone(), number)
    }
    pub fn camera(&self, number: u32) -> RemoteCamera {
        RemoteCamera::new(self.clone(), number)
    }
    pub fn dome(&self, number: u32) -> RemoteDome {
        RemoteDome::new(self.clone(), number)
    }
    pub fn focuser(&self, number: u32) -> RemoteFocuser {
        RemoteFocuser::new(self.clone(), number)
    }
    pub fn filter_wheel(&self, number: u32) -> RemoteFilterWheel {
        RemoteFilterWheel::new(self.clone(), number)
    }
    pub fn rotator(&self, number: u32) -> RemoteRotator {
        RemoteRotator::new(self.clone(), number)
    }
    /// Common members only, for a device of any type.
    pub fn device(&self, device_type: DeviceType, number: u32) -> RemoteDevice {
        RemoteDevice::new(self.clone(), device_type, number)
    }

    /// `GET /management/apiversions`.
    pub async fn api_versions(&self) -> Result<Vec<u32>, ClientError> {
        self.management("/management/apiversions").await
    }

    /// `GET /management/v1/description`.
    pub async fn server_description(&self) -> Result<ServerDescription, ClientError> {
        self.management("/management/v1/description").await
    }

    /// `GET /management/v1/configureddevices`.
    pub async fn configured_devices(&self) -> Result<Vec<ConfiguredDevice>, ClientError> {
        self.management("/management/v1/configureddevices").await
    }

    async fn management<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, ClientError> {
        let query = self.id_pairs(Vec::new());
        let url = format!("{}{}?{}", self.inner.base, path, encode(&query)?);
        let resp = self
            .inner
            .http
            .get(url)
            .timeout(self.inner.timeout)
            .send()
            .await
            .map_err(ClientError::from_reqwest)?;
        let (_, bytes) = read_ok(resp).await?;
        let env = parse_envelope(&bytes)?;
        let value = env
            .value
            .ok_or_else(|| ClientError::Decode("reply has no Value".into()))?;
        serde_json::from_value(value).map_err(|e| ClientError::Decode(e.to_string()))
    }

    fn id_pairs(&self, mut params: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
        params.push(("ClientID", self.inner.client_id.to_string()));
        params.push((
            "ClientTransactionID",
            self.next_transaction_id().to_string(),
        ));
        params
    }

    /// One device member call: lower-case path, GET parameters in the query, PUT parameters
    /// form-encoded with their exact casing, ClientID and ClientTransactionID always sent.
    /// Image members ask for ImageBytes and use the longer image timeout.
    pub async fn call<T: WireValue>(
        &self,
        device_type: DeviceType,
        number: u32,
        verb: Verb,
        member: &str,
        params: Vec<(&'static str, String)>,
    ) -> Result<T, ClientError> {
        let url = format!(
            "{}/api/v1/{}/{}/{}",
            self.inner.base,
            device_type.path(),
            number,
            member.to_ascii_lowercase()
        );
        let params = self.id_pairs(params);
        let body = encode(&params)?;
        let image = T::KIND == ValueKind::Image;
        let request = match verb {
            Verb::Get => self.inner.http.get(format!("{url}?{body}")),
            Verb::Put => self
                .inner
                .http
                .put(url)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body),
        };
        let request = if image {
            request
                .header(ACCEPT, format!("{IMAGE_BYTES_MIME}, application/json"))
                .timeout(self.inner.image_timeout)
        } else {
            request.timeout(self.inner.timeout)
        };
        let resp = request.send().await.map_err(ClientError::from_reqwest)?;
        let (content_type, bytes) = read_ok(resp).await?;
        if content_type.starts_with(IMAGE_BYTES_MIME) {
            let reply =
                decode_image_bytes(&bytes).map_err(|e| ClientError::Decode(e.to_string()))?;
            let img = reply.result?;
            return T::from_image(img).ok_or_else(|| {
                ClientError::Decode(format!("unexpected ImageBytes reply for {member}"))
            });
        }
        let env = parse_envelope(&bytes)?;
        if env.error_number != 0 {
            let code = u16::try_from(env.error_number).map_err(|_| {
                ClientError::Decode(format!("ErrorNumber {} out of range", env.error_number))
            })?;
            return Err(ClientError::Ascom(AlpacaError::new(
                ErrorCode(code),
                env.error_message.unwrap_or_default(),
            )));
        }
        T::from_wire(env.value).map_err(|e| ClientError::Decode(format!("{member}: {e}")))
    }
}

fn encode(pairs: &[(&'static str, String)]) -> Result<String, ClientError> {
    serde_urlencoded::to_string(pairs).map_err(|e| ClientError::Decode(e.to_string()))
}

async fn read_ok(resp: reqwest::Response) -> Result<(String, bytes::Bytes), ClientError> {
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let bytes = resp.bytes().await.map_err(ClientError::from_reqwest)?;
    if status != reqwest::StatusCode::OK {
        return Err(ClientError::Http {
            status: status.as_u16(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    Ok((content_type, bytes))
}

fn parse_envelope(bytes: &[u8]) -> Result<Envelope, ClientError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ClientError::Decode(format!("bad JSON envelope: {e}")))
}

/// One device on one server: the target of every generated client method.
#[derive(Clone, Debug)]
pub struct RemoteDevice {
    client: AlpacaClient,
    device_type: DeviceType,
    number: u32,
}

impl RemoteDevice {
    pub fn new(client: AlpacaClient, device_type: DeviceType, number: u32) -> Self {
        Self {
            client,
            device_type,
            number,
        }
    }

    pub fn client(&self) -> &AlpacaClient {
        &self.client
    }

    pub fn device_type(&self) -> DeviceType {
        self.device_type
    }

    pub fn number(&self) -> u32 {
        self.number
    }

    /// Call any member by ASCOM name with pre-formatted parameters (exact PUT casing).
    pub async fn call<T: WireValue>(
        &self,
        verb: Verb,
        member: &str,
        params: Vec<(&'static str, String)>,
    ) -> Result<T, ClientError> {
        self.client
            .call(self.device_type, self.number, verb, member, params)
            .await
    }

    /// The common members with the full [`ClientError`].
    pub fn checked(&self) -> Checked<'_, Self> {
        Checked::new(self)
    }
}

pub(crate) mod sealed {
    /// Only this crate's remote handles get the blanket `Device` impl.
    pub trait Sealed {}
}

/// Implemented by the remote handles; gives them the common [`Device`](crate::devices::Device)
/// members through a blanket impl. Sealed.
pub trait AsRemote: sealed::Sealed + Send + Sync + 'static {
    fn remote(&self) -> &RemoteDevice;
}

impl sealed::Sealed for RemoteDevice {}

impl AsRemote for RemoteDevice {
    fn remote(&self) -> &RemoteDevice {
        self
    }
}

/// Every member of a remote handle, returning `Result<T, ClientError>` instead of folding
/// transport errors into an `AlpacaError`: `telescope.checked().slewing().await`.
#[derive(Clone, Copy, Debug)]
pub struct Checked<'a, T> {
    dev: &'a T,
}

impl<'a, T: AsRemote> Checked<'a, T> {
    pub fn new(dev: &'a T) -> Self {
        Self { dev }
    }

    pub fn device(&self) -> &'a RemoteDevice {
        self.dev.remote()
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
