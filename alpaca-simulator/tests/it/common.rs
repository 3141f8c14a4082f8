//! Shared helpers: start an in-process simulator on port 0 and talk to it.

use std::time::Duration;

use alpaca_simulator::app::{RunningSimulator, Simulator};
use alpaca_simulator::config::{ClockModeConfig, SimulatorConfig};
use bigskies_alpaca::client::AlpacaClient;
use serde_json::Value;

/// 2026-03-20 22:00 UTC: night at the default site, so the sky is dark and targets are up.
pub const START: &str = "2026-03-20T22:00:00Z";

/// A config for tests: port 0, no discovery, stepped clock at [`START`], instant connects.
pub fn test_config() -> SimulatorConfig {
    let mut cfg = SimulatorConfig::default();
    cfg.server.http_port = 0;
    cfg.server.bind = "127.0.0.1".parse().expect("valid address");
    cfg.server.discovery = false;
    cfg.server.drain_secs = 1.0;
    cfg.clock.mode = ClockModeConfig::Stepped;
    cfg.clock.start = Some(START.parse().expect("valid time"));
    cfg.devices.connect_delay = 0.0;
    cfg
}

/// A running simulator plus clients for it; stops when dropped.
pub struct Sim {
    pub running: RunningSimulator,
    pub client: AlpacaClient,
    pub http: reqwest::Client,
    pub base: String,
}

impl Sim {
    pub async fn start() -> Self {
        Self::start_with(test_config()).await
    }

    pub async fn start_with(cfg: SimulatorConfig) -> Self {
        let running = Simulator::bind(cfg).await.expect("simulator binds").spawn();
        let base = running.base_url();
        let client = AlpacaClient::build(base.clone()).expect("client");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client");
        Self {
            running,
            client,
            http,
            base,
        }
    }

    /// Raw GET of a device member; returns (status, body as JSON or Null).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request sent");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Raw form PUT; returns (status, body as JSON or Null).
    pub async fn put(&self, path: &str, form: &str) -> (u16, Value) {
        let resp = self
            .http
            .put(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_owned())
            .send()
            .await
            .expect("request sent");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// JSON request to the control API.
    pub async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/simulator/v1{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Advance simulated time through the control API.
    pub async fn step(&self, seconds: f64) {
        let (st, v) = self
            .control(
                reqwest::Method::PUT,
                "/clock/step",
                Some(serde_json::json!({ "seconds": seconds })),
            )
            .await;
        assert_eq!(st, 200, "step failed: {v}");
    }

    /// Connect one device with the legacy setter (immediate).
    pub async fn connect(&self, device_type: &str, number: u32) {
        let (st, v) = self
            .put(
                &format!("/api/v1/{device_type}/{number}/connected"),
                "Connected=true",
            )
            .await;
        assert_eq!(
            (st, v["ErrorNumber"].as_i64()),
            (200, Some(0)),
            "connect {device_type}/{number}: {v}"
        );
    }

    /// Connect every default device.
    pub async fn connect_all(&self) {
        for t in alpaca_simulator::config::DEVICE_TYPES {
            self.connect(t, 0).await;
        }
    }

    /// `Value` of a successful GET, panicking with the body otherwise.
    pub async fn value(&self, path: &str) -> Value {
        let (st, v) = self.get(path).await;
        assert_eq!(st, 200, "GET {path}: {v}");
        assert_eq!(v["ErrorNumber"], 0, "GET {path}: {v}");
        v["Value"].clone()
    }

    /// A PUT that must succeed.
    pub async fn ok_put(&self, path: &str, form: &str) {
        let (st, v) = self.put(path, form).await;
        assert_eq!(st, 200, "PUT {path} {form}: {v}");
        assert_eq!(v["ErrorNumber"], 0, "PUT {path} {form}: {v}");
    }

    /// The ErrorNumber of a PUT answered with 200.
    pub async fn put_error(&self, path: &str, form: &str) -> i64 {
        let (st, v) = self.put(path, form).await;
        assert_eq!(st, 200, "PUT {path} {form}: {v}");
        v["ErrorNumber"].as_i64().unwrap_or(-1)
    }

    /// The ErrorNumber of a GET answered with 200.
    pub async fn get_error(&self, path: &str) -> i64 {
        let (st, v) = self.get(path).await;
        assert_eq!(st, 200, "GET {path}: {v}");
        v["ErrorNumber"].as_i64().unwrap_or(-1)
    }

    /// One device's control-API snapshot.
    pub async fn state(&self, device_type: &str, number: u32) -> Value {
        let (st, v) = self
            .control(
                reqwest::Method::GET,
                &format!("/state/{device_type}/{number}"),
                None,
            )
            .await;
        assert_eq!(st, 200, "{v}");
        v["device"]["state"].clone()
    }
}
