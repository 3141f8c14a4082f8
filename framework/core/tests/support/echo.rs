//! A small coordinator used by the runtime tests: it echoes, sleeps, panics and reports a
//! health status that the test can change.

use std::sync::Mutex;
use std::time::Duration;

use bigskies_core::auth::{Access, Operation};
use bigskies_core::error::HandlerError;
use bigskies_core::health::{HealthReport, HealthStatus};
use bigskies_core::lanes::LaneUse;
use bigskies_core::runtime::{Context, Coordinator, EventRoute};
use bigskies_core::topics::Topics;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
#[serde(tag = "op", content = "body")]
pub enum EchoRequest {
    #[serde(rename = "echo/say")]
    Say(Say),
    #[serde(rename = "echo/sleep")]
    Sleep { ms: u64 },
    #[serde(rename = "echo/panic")]
    Panic {},
    /// Changes state: adds one to a counter and answers its new value (any credential).
    #[serde(rename = "echo/count")]
    Count {},
    /// Sleeps like `echo/sleep`, in the lane of `device` (a device that may hang).
    #[serde(rename = "echo/device")]
    Device { device: String, ms: u64 },
    /// The safety command of `device`: urgent, cancels what waits in the device's lane.
    #[serde(rename = "echo/stop")]
    Stop { device: String },
    /// Needs any valid credential.
    #[serde(rename = "echo/whoami")]
    WhoAmI {},
    /// Needs the permission echo/read.
    #[serde(rename = "echo/secret")]
    Secret {},
}

#[derive(Debug, Deserialize)]
pub struct Say {
    pub text: String,
    #[serde(default)]
    pub times: Option<u32>,
}

pub struct Echo {
    pub status: Mutex<HealthStatus>,
    /// How often `echo/count` ran.
    pub counted: std::sync::atomic::AtomicU64,
}

impl Echo {
    pub fn new() -> Self {
        Self {
            status: Mutex::new(HealthStatus::Healthy),
            counted: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl Coordinator for Echo {
    type Request = EchoRequest;

    fn name(&self) -> &'static str {
        "echo"
    }

    fn operations(&self) -> &'static [Operation] {
        const OPS: &[Operation] = &[
            Operation::new("echo/say", Access::Public, "echo"),
            Operation::new("echo/sleep", Access::Public, "sleep"),
            Operation::new("echo/panic", Access::Public, "panic"),
            Operation::new("echo/device", Access::Public, "sleep in a device's lane"),
            Operation::new("echo/stop", Access::Public, "a device's safety command"),
            Operation::new(
                "echo/count",
                Access::object("echo", "write"),
                "add one to the counter",
            ),
            Operation::new(
                "echo/whoami",
                Access::object("echo", "whoami"),
                "any credential",
            ),
            Operation::new(
                "echo/secret",
                Access::role("echo", "read"),
                "RBAC echo:read",
            ),
        ];
        OPS
    }

    async fn handle(&self, ctx: Context, request: EchoRequest) -> Result<Value, HandlerError> {
        match request {
            EchoRequest::Say(s) => {
                let times = s.times.unwrap_or(1);
                if times > 100 {
                    return Err(HandlerError::invalid("times must be at most 100"));
                }
                Ok(
                    json!({"success": true, "text": s.text.repeat(times as usize), "had_token": ctx.token.is_some()}),
                )
            }
            EchoRequest::Sleep { ms } | EchoRequest::Device { ms, .. } => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(json!({"success": true, "slept_ms": ms}))
            }
            EchoRequest::Count {} => {
                let n = self
                    .counted
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                    + 1;
                Ok(json!({"success": true, "count": n}))
            }
            EchoRequest::Stop { device } => Ok(json!({"success": true, "stopped": device})),
            EchoRequest::Panic {} => panic!("the echo coordinator was asked to panic"),
            EchoRequest::WhoAmI {} | EchoRequest::Secret {} => {
                let p = ctx
                    .principal
                    .ok_or_else(|| HandlerError::unauthenticated("no principal"))?;
                Ok(json!({"success": true, "user": p.username}))
            }
        }
    }

    fn lane(&self, request: &EchoRequest) -> Option<LaneUse> {
        match request {
            EchoRequest::Device { device, .. } => Some(LaneUse::Queue(format!("device {device}"))),
            EchoRequest::Stop { device } => Some(LaneUse::Urgent(format!("device {device}"))),
            _ => None,
        }
    }

    /// Go-style one-way topics outside the echo request space.
    fn event_routes(&self, topics: &Topics) -> Vec<EventRoute> {
        vec![
            EventRoute::new(topics.event("legacy", "say"), "echo/say"),
            EventRoute::new(topics.event("legacy", "whoami"), "echo/whoami"),
        ]
    }

    async fn health(&self) -> Vec<HealthReport> {
        let status = *self.status.lock().unwrap();
        vec![HealthReport::new(
            "echo-engine",
            status,
            format!("engine is {status}"),
        )]
    }
}
