//! Plugin health: what plugins publish on `<root>/plugin/<plugin-id>/health` (the Go SDK's
//! envelope of type `status` around a health `Result`; a bare `Result` is accepted too).
//!
//! The last report of each installed plugin is kept in memory and shown in `plugin/get` and
//! `plugin/list` replies (`health`). A running plugin is flagged when its last report says
//! `unhealthy`, or when it has been silent for more than [`MISSED_INTERVALS`] of its
//! intervals: its manifest's `health_check.interval_seconds`, else the coordinator's
//! `plugin_health_interval` (30 s by default). Silence is only held against plugins that
//! declare a `health_check` or have reported at least once, and is counted from the later of
//! the last report, the plugin's start and the coordinator's start. Any flagged plugin makes
//! the coordinator's health `degraded`. Reports are observations, never commands: they change
//! no plugin state, and reports for plugins that are not installed are ignored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use uuid::Uuid;

use bigskies_core::bus::{Bus, Message};
use bigskies_core::envelope::Request;
use bigskies_core::health::HealthReport;
use bigskies_core::topics::Topics;

use super::{NAME, PluginCoordinator, PluginRecord, lock, ts};

/// How many intervals a running plugin may miss before it counts as silent.
pub const MISSED_INTERVALS: u32 = 3;

/// The statuses a plugin may report (the Go `healthcheck` vocabulary).
pub const PLUGIN_STATUSES: [&str; 4] = ["healthy", "degraded", "unhealthy", "unknown"];

/// The last health report of one plugin.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginHealth {
    pub status: String,
    pub message: String,
    pub details: Map<String, Value>,
    /// The report's own timestamp, as the plugin sent it.
    pub timestamp: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// Why a health message was ignored.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum HealthMessageError {
    #[error("not a plugin health topic")]
    Topic,
    #[error("{0:?} is not a plugin GUID")]
    Guid(String),
    #[error("undecodable health report: {0}")]
    Decode(String),
    #[error("status must be one of {}", PLUGIN_STATUSES.join(", "))]
    Status,
}

/// Decode one message of `<root>/plugin/<id>/health` into the plugin's GUID and its report.
pub fn parse_message(
    topics: &Topics,
    msg: &Message,
) -> Result<(Uuid, PluginHealth), HealthMessageError> {
    let id = topics
        .parse_plugin_health(&msg.topic)
        .ok_or(HealthMessageError::Topic)?;
    let guid = Uuid::parse_str(id).map_err(|_| HealthMessageError::Guid(id.to_owned()))?;
    let request =
        Request::decode(&msg.payload).map_err(|e| HealthMessageError::Decode(e.to_string()))?;
    let Value::Object(mut result) = request.payload else {
        return Err(HealthMessageError::Decode(
            "the health result is not an object".into(),
        ));
    };
    let status = match result.remove("status") {
        Some(Value::String(s)) => s.to_ascii_lowercase(),
        _ => return Err(HealthMessageError::Status),
    };
    if !PLUGIN_STATUSES.contains(&status.as_str()) {
        return Err(HealthMessageError::Status);
    }
    let text = |v: Option<Value>| match v {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let message = text(result.remove("message")).unwrap_or_default();
    let timestamp = text(result.remove("timestamp"));
    let details = match result.remove("details") {
        Some(Value::Object(d)) => d,
        _ => Map::new(),
    };
    Ok((
        guid,
        PluginHealth {
            status,
            message,
            details,
            timestamp,
            received_at: Utc::now(),
        },
    ))
}

/// How a plugin's health looks from here.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthView {
    pub last: Option<PluginHealth>,
    pub interval: Duration,
    /// Whether the plugin is expected to report (it declares a `health_check` or has reported).
    pub expected: bool,
    /// Running and silent for more than [`MISSED_INTERVALS`] intervals.
    pub silent: bool,
    /// Running and its last report says `unhealthy`.
    pub unhealthy: bool,
}

impl HealthView {
    pub fn to_json(&self) -> Value {
        if !self.expected {
            return Value::Null;
        }
        let last = self.last.as_ref();
        json!({
            "status": last.map(|h| h.status.as_str()),
            "message": last.map(|h| h.message.as_str()),
            "details": last.map(|h| &h.details),
            "timestamp": last.and_then(|h| h.timestamp.as_deref()),
            "received_at": last.map(|h| ts(&h.received_at)),
            "interval_seconds": self.interval.as_secs_f64(),
            "silent": self.silent,
        })
    }
}

/// The manifest's `health_check.interval_seconds`, when it is a positive number.
fn manifest_interval(manifest: &Value) -> Option<Duration> {
    let secs = manifest
        .get("health_check")?
        .get("interval_seconds")?
        .as_f64()?;
    (secs.is_finite() && secs > 0.0)
        .then(|| Duration::try_from_secs_f64(secs).ok())
        .flatten()
}

impl PluginCoordinator {
    /// Record a report for an installed plugin; reports for unknown plugins are ignored.
    pub async fn record_health(&self, guid: Uuid, report: PluginHealth) -> bool {
        match self.fetch(guid).await {
            Ok(Some(_)) => {
                lock(&self.health).insert(guid, report);
                true
            }
            Ok(None) => {
                debug!(plugin = %guid, "health of a plugin that is not installed ignored");
                false
            }
            Err(_) => false,
        }
    }

    /// The last report of a plugin.
    pub fn last_health(&self, guid: Uuid) -> Option<PluginHealth> {
        lock(&self.health).get(&guid).cloned()
    }

    /// How `rec`'s health looks now.
    pub fn health_view(&self, rec: &PluginRecord) -> HealthView {
        let last = self.last_health(rec.guid);
        let declared = manifest_interval(&rec.manifest);
        let interval = declared.unwrap_or_else(|| self.settings().plugin_health_interval);
        let expected = rec.manifest.get("health_check").is_some() || last.is_some();
        let running = rec.status == "running";
        let since = [
            last.as_ref().map(|h| h.received_at),
            Some(rec.updated_at),
            Some(self.watching_since),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or_else(Utc::now);
        let quiet = (Utc::now() - since).to_std().unwrap_or_default();
        HealthView {
            silent: running && expected && quiet > interval * MISSED_INTERVALS,
            unhealthy: running && last.as_ref().is_some_and(|h| h.status == "unhealthy"),
            last,
            interval,
            expected,
        }
    }

    /// A plugin's JSON with its health.
    pub(super) fn plugin_json(&self, rec: &PluginRecord) -> Value {
        let mut v = rec.to_json();
        if let Value::Object(map) = &mut v {
            map.insert("health".into(), self.health_view(rec).to_json());
        }
        v
    }

    /// The coordinator health component for plugin reports; forgets removed plugins.
    pub(super) fn plugin_health_report(&self, records: &[PluginRecord]) -> HealthReport {
        lock(&self.health).retain(|guid, _| records.iter().any(|r| r.guid == *guid));
        let (mut unhealthy, mut silent, mut reporting) = (Vec::new(), Vec::new(), 0);
        for rec in records {
            let view = self.health_view(rec);
            if view.unhealthy {
                unhealthy.push(rec.guid.to_string());
            }
            if view.silent {
                silent.push(rec.guid.to_string());
            }
            if view.last.is_some() {
                reporting += 1;
            }
        }
        let report = if unhealthy.is_empty() && silent.is_empty() {
            HealthReport::healthy(
                "plugin-health",
                format!("{reporting} plugin(s) reporting health"),
            )
        } else {
            HealthReport::degraded(
                "plugin-health",
                format!(
                    "{} running plugin(s) unhealthy, {} silent",
                    unhealthy.len(),
                    silent.len()
                ),
            )
        };
        report
            .with_detail("reporting_plugins", reporting)
            .with_detail("unhealthy_plugins", json!(unhealthy))
            .with_detail("silent_plugins", json!(silent))
    }

    /// Consume `<root>/plugin/+/health` until `shutdown`.
    pub async fn ingest_health(
        self: Arc<Self>,
        bus: Bus,
        topics: Topics,
        shutdown: CancellationToken,
    ) {
        let mut rx = match bus.subscribe(&topics.plugin_health_filter(), 256).await {
            Ok(rx) => rx,
            Err(e) => {
                warn!(coordinator = NAME, error = %e, "cannot subscribe to plugin health; plugin health is not watched");
                return;
            }
        };
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => return,
                msg = rx.recv() => match msg {
                    Some(m) => m,
                    None => return,
                },
            };
            match parse_message(&topics, &msg) {
                Ok((guid, report)) => {
                    self.record_health(guid, report).await;
                }
                Err(e) => {
                    debug!(coordinator = NAME, topic = %msg.topic, error = %e, "plugin health ignored")
                }
            }
        }
    }
}

/// Plugins' last reports, by GUID.
pub(super) type HealthMap = HashMap<Uuid, PluginHealth>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn msg(topic: &str, payload: &str) -> Message {
        Message {
            topic: topic.into(),
            payload: payload.as_bytes().to_vec().into(),
            retain: false,
            response_topic: None,
            correlation_data: None,
        }
    }

    const ID: &str = "f7e8d9c6-b5a4-3210-9876-543210fedcba";

    #[test]
    fn the_go_plugin_health_envelope_decodes() {
        let t = Topics::default();
        let go = r#"{"id":"20260116120000.123456","type":"status","source":"plugin:f7e8d9c6-b5a4-3210-9876-543210fedcba",
            "timestamp":"2026-01-16T12:00:00.123456789Z",
            "payload":{"component":"ascom-alpaca-simulator","status":"degraded","message":"Alpaca API not answering",
                       "timestamp":"2026-01-16T12:00:00.1234Z","duration":0,
                       "details":{"running":true,"uptime_seconds":12.5,"ascom_api_url":"http://localhost/api/v1"}}}"#;
        let (guid, h) = parse_message(&t, &msg(&t.plugin_health(ID), go)).unwrap();
        assert_eq!(guid.to_string(), ID);
        assert_eq!(h.status, "degraded");
        assert_eq!(h.message, "Alpaca API not answering");
        assert_eq!(h.details["uptime_seconds"], 12.5);
        assert_eq!(h.timestamp.as_deref(), Some("2026-01-16T12:00:00.1234Z"));
        // A bare result is accepted too.
        let (_, h) =
            parse_message(&t, &msg(&t.plugin_health(ID), r#"{"status":"HEALTHY"}"#)).unwrap();
        assert_eq!(h.status, "healthy");
    }

    #[test]
    fn bad_health_messages_are_refused() {
        let t = Topics::default();
        let topic = t.plugin_health(ID);
        for (topic, payload, err) in [
            (topic.as_str(), "{", "undecodable"),
            (topic.as_str(), r#"{"status":"fine"}"#, "status"),
            (topic.as_str(), r#"{"message":"no status"}"#, "status"),
            (
                topic.as_str(),
                r#"{"type":"status","source":"x","payload":[1]}"#,
                "undecodable",
            ),
            (
                "bigskies/plugin/not-a-guid/health",
                r#"{"status":"healthy"}"#,
                "GUID",
            ),
            (
                "bigskies/coordinator/plugin/health/status",
                r#"{"status":"healthy"}"#,
                "topic",
            ),
        ] {
            let e = parse_message(&t, &msg(topic, payload)).unwrap_err();
            assert!(e.to_string().contains(err), "{topic} {payload}: {e}");
        }
    }

    #[test]
    fn manifest_intervals_must_be_positive_numbers() {
        let m = |v: Value| manifest_interval(&json!({"health_check": {"interval_seconds": v}}));
        assert_eq!(m(json!(30)), Some(Duration::from_secs(30)));
        assert_eq!(m(json!(0.5)), Some(Duration::from_millis(500)));
        assert_eq!(m(json!(0)), None);
        assert_eq!(m(json!(-1)), None);
        assert_eq!(m(json!("30")), None);
        assert_eq!(manifest_interval(&json!({})), None);
    }
}
