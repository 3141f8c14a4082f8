//! Raw HTTP probing. Requests are spelled out by hand (path, query text, form body, headers)
//! so that the checker controls every byte it sends (parameter order, name casing, malformed
//! values), and replies are kept whole (status, `Content-Type`, body bytes) so that the
//! checks see exactly what the server answered.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;

/// The `ClientID` the checker sends (any non-zero uint32 would do).
pub const CLIENT_ID: u32 = 4321;

/// The form content type ConformU sends (no charset).
pub const FORM: &str = "application/x-www-form-urlencoded";

/// Request parameters in the order they are sent.
pub type Pairs = Vec<(String, String)>;

/// One parameter.
pub fn pair(name: impl Into<String>, value: impl Into<String>) -> (String, String) {
    (name.into(), value.into())
}

/// `application/x-www-form-urlencoded` text of `pairs`, exactly in the given order and casing.
pub fn encode(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but the unreserved characters.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One HTTP request as the checker sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// Path from the server root, e.g. `/api/v1/telescope/0/canslew`.
    pub path: String,
    /// Encoded query text without `?` (empty: no query).
    pub query: String,
    /// Encoded form body (PUT).
    pub body: Option<String>,
    pub content_type: Option<String>,
    pub accept: Option<String>,
}

impl Request {
    pub fn get(path: impl Into<String>, pairs: &[(String, String)]) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            query: encode(pairs),
            body: None,
            content_type: None,
            accept: None,
        }
    }

    pub fn put(path: impl Into<String>, pairs: &[(String, String)]) -> Self {
        Self {
            method: Method::PUT,
            path: path.into(),
            query: String::new(),
            body: Some(encode(pairs)),
            content_type: Some(FORM.to_owned()),
            accept: None,
        }
    }

    /// Any other verb, without parameters.
    pub fn other(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            query: String::new(),
            body: None,
            content_type: None,
            accept: None,
        }
    }

    pub fn with_content_type(mut self, content_type: &str) -> Self {
        self.content_type = Some(content_type.to_owned());
        self
    }

    pub fn with_accept(mut self, accept: &str) -> Self {
        self.accept = Some(accept.to_owned());
        self
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if !self.query.is_empty() {
            write!(f, "?{}", self.query)?;
        }
        if let Some(body) = &self.body {
            write!(f, " body [{body}]")?;
            if let Some(ct) = self.content_type.as_deref().filter(|ct| *ct != FORM) {
                write!(f, " as {ct}")?;
            }
        }
        if let Some(accept) = &self.accept {
            write!(f, " accepting {accept}")?;
        }
        Ok(())
    }
}

/// A reply, kept whole.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub elapsed: Duration,
}

impl Reply {
    /// The body parsed as JSON (strict RFC 8259: no NaN or Infinity).
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("not valid JSON ({e})"))
    }

    /// The start of the body as text, for reports.
    pub fn snippet(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        let mut out: String = text.chars().take(160).collect();
        if text.chars().count() > 160 {
            out.push('…');
        }
        out
    }

    /// `status: body start`, for reports.
    pub fn summary(&self) -> String {
        let snippet = self.snippet();
        if snippet.is_empty() {
            format!("HTTP {} (empty body)", self.status)
        } else {
            format!("HTTP {}: {snippet}", self.status)
        }
    }

    pub fn is_client_error(&self) -> bool {
        (400..500).contains(&self.status)
    }
}

/// The HTTP client of one check run.
#[derive(Debug)]
pub struct Probe {
    http: reqwest::Client,
    base: String,
    next_ctid: AtomicU32,
    requests: AtomicU32,
    timeout: Duration,
}

impl Probe {
    /// `base` is the server root, e.g. `http://192.168.1.20:11111`.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // The checker wants to see redirects, not follow them.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("bigskies-conform/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            next_ctid: AtomicU32::new(1),
            requests: AtomicU32::new(0),
            timeout,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A fresh ClientTransactionID (1, 2, …; never 0).
    pub fn next_ctid(&self) -> u32 {
        loop {
            let id = self.next_ctid.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }

    /// How many requests were sent so far.
    pub fn requests(&self) -> u32 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Sends `req`; `Err` is a transport failure (refused, timed out, broken reply).
    pub async fn send(&self, req: &Request) -> Result<Reply, String> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut url = format!("{}{}", self.base, req.path);
        if !req.query.is_empty() {
            url.push('?');
            url.push_str(&req.query);
        }
        let mut builder = self.http.request(req.method.clone(), &url);
        if let Some(ct) = &req.content_type {
            builder = builder.header(reqwest::header::CONTENT_TYPE, ct);
        }
        if let Some(accept) = &req.accept {
            builder = builder.header(reqwest::header::ACCEPT, accept);
        }
        if let Some(body) = &req.body {
            builder = builder.body(body.clone());
        }
        let started = Instant::now();
        let resp = builder.send().await.map_err(|e| transport_error(&e))?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let body = resp.bytes().await.map_err(|e| transport_error(&e))?;
        Ok(Reply {
            status,
            content_type,
            body: body.to_vec(),
            elapsed: started.elapsed(),
        })
    }
}

fn transport_error(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    if e.is_timeout() {
        return "no reply before the timeout".to_owned();
    }
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_order_and_casing_and_escapes_values() {
        let pairs = vec![pair("bINX", "2"), pair("ClientID", " "), pair("A", "x&y=z")];
        assert_eq!(encode(&pairs), "bINX=2&ClientID=%20&A=x%26y%3Dz");
    }

    #[test]
    fn requests_display_what_is_sent() {
        let get = Request::get(
            "/api/v1/focuser/0/position",
            &[pair("ClientTransactionID", "7")],
        );
        assert_eq!(
            get.to_string(),
            "GET /api/v1/focuser/0/position?ClientTransactionID=7"
        );
        let put = Request::put("/api/v1/focuser/0/move", &[pair("Position", "10")])
            .with_content_type("text/plain");
        assert_eq!(
            put.to_string(),
            "PUT /api/v1/focuser/0/move body [Position=10] as text/plain"
        );
    }
}
