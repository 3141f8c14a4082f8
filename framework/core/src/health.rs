//! Health: checkers, statuses, aggregation and the Go-compatible result payload.
//!
//! The payload published on `<root>/coordinator/<name>/health/status` (inside an envelope of type
//! `status`) has the Go shape `{component, status, message?, timestamp, duration, details?}` where
//! `duration` is integer nanoseconds. We add `components` with each checker's own result.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A component's state. Order matters: aggregation takes the worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Unknown,
    Unhealthy,
    /// Published once by a coordinator that is shutting down.
    Stopping,
    /// Published by the broker as the coordinator's last will.
    Offline,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Unknown => "unknown",
            Self::Unhealthy => "unhealthy",
            Self::Stopping => "stopping",
            Self::Offline => "offline",
        }
    }
}

impl std::fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Go-compatible health result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    pub component: String,
    pub status: HealthStatus,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(with = "crate::envelope::rfc3339")]
    pub timestamp: DateTime<Utc>,
    /// How long the check took, in nanoseconds (Go `time.Duration`).
    #[serde(default)]
    pub duration: u64,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub details: Map<String, Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub components: BTreeMap<String, HealthReport>,
}

impl HealthReport {
    pub fn new(
        component: impl Into<String>,
        status: HealthStatus,
        message: impl Into<String>,
    ) -> Self {
        Self {
            component: component.into(),
            status,
            message: message.into(),
            timestamp: Utc::now(),
            duration: 0,
            details: Map::new(),
            components: BTreeMap::new(),
        }
    }
    pub fn healthy(component: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(component, HealthStatus::Healthy, message)
    }
    pub fn degraded(component: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(component, HealthStatus::Degraded, message)
    }
    pub fn unhealthy(component: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(component, HealthStatus::Unhealthy, message)
    }
    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }
    pub fn with_duration(mut self, d: Duration) -> Self {
        self.duration = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self
    }
}

/// Something that can say how healthy it is. Checks must be quick and must not hang:
/// the runtime bounds each with a timeout and reports `unhealthy` when it expires.
pub trait Checker: Send + Sync {
    fn name(&self) -> &str;
    fn check(&self) -> futures::future::BoxFuture<'_, HealthReport>;
}

/// Run every checker concurrently, each bounded by `timeout` (a check that does not answer in
/// time is reported `unhealthy`), and stamp each report with how long it took.
pub async fn run_checkers(
    checkers: &[std::sync::Arc<dyn Checker>],
    timeout: Duration,
) -> Vec<HealthReport> {
    futures::future::join_all(checkers.iter().map(|c| async move {
        let started = std::time::Instant::now();
        match tokio::time::timeout(timeout, c.check()).await {
            Ok(mut report) => {
                if report.duration == 0 {
                    report = report.with_duration(started.elapsed());
                }
                report
            }
            Err(_) => HealthReport::unhealthy(
                c.name(),
                format!("health check did not answer within {timeout:?}"),
            )
            .with_duration(started.elapsed()),
        }
    }))
    .await
}

/// The Go aggregation rule: no results → unknown; any unhealthy → unhealthy; any degraded or
/// unknown → degraded; else healthy. Stopping/offline count as unhealthy.
pub fn overall_status<'a>(statuses: impl IntoIterator<Item = &'a HealthStatus>) -> HealthStatus {
    let mut any = false;
    let mut worst = HealthStatus::Healthy;
    for s in statuses {
        any = true;
        let s = match s {
            HealthStatus::Unknown => HealthStatus::Degraded,
            HealthStatus::Stopping | HealthStatus::Offline => HealthStatus::Unhealthy,
            other => *other,
        };
        worst = worst.max(s);
    }
    if any { worst } else { HealthStatus::Unknown }
}

/// Combine component reports into one for `component`, worst status winning; the message names
/// the components that are not healthy.
pub fn aggregate(component: &str, parts: Vec<HealthReport>) -> HealthReport {
    let status = overall_status(parts.iter().map(|p| &p.status));
    let troubled: Vec<String> = parts
        .iter()
        .filter(|p| p.status != HealthStatus::Healthy)
        .map(|p| {
            if p.message.is_empty() {
                format!("{} {}", p.component, p.status)
            } else {
                format!("{}: {}", p.component, p.message)
            }
        })
        .collect();
    let message = match status {
        HealthStatus::Healthy => "Coordinator is healthy".to_owned(),
        HealthStatus::Unknown => "no health checks".to_owned(),
        _ => troubled.join("; "),
    };
    let mut report = HealthReport::new(component, status, message);
    report.duration = parts.iter().map(|p| p.duration).max().unwrap_or(0);
    report.components = parts
        .into_iter()
        .map(|p| (p.component.clone(), p))
        .collect();
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthStatus::*;

    struct Fixed(&'static str, HealthStatus, Duration);

    impl Checker for Fixed {
        fn name(&self) -> &str {
            self.0
        }
        fn check(&self) -> futures::future::BoxFuture<'_, HealthReport> {
            Box::pin(async move {
                tokio::time::sleep(self.2).await;
                HealthReport::new(self.0, self.1, "")
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn checkers_run_with_a_timeout() {
        let checkers: Vec<std::sync::Arc<dyn Checker>> = vec![
            std::sync::Arc::new(Fixed("db", Healthy, Duration::from_millis(5))),
            std::sync::Arc::new(Fixed("stuck", Healthy, Duration::from_secs(60))),
        ];
        let reports = run_checkers(&checkers, Duration::from_secs(1)).await;
        assert_eq!(reports[0].status, Healthy);
        assert_eq!(reports[1].status, Unhealthy);
        assert!(reports[1].message.contains("did not answer"));
        assert_eq!(aggregate("c", reports).status, Unhealthy);
    }

    #[test]
    fn aggregation_follows_the_go_rule() {
        assert_eq!(overall_status(&[]), Unknown);
        assert_eq!(overall_status(&[Healthy, Healthy]), Healthy);
        assert_eq!(overall_status(&[Healthy, Unknown]), Degraded);
        assert_eq!(overall_status(&[Degraded, Unhealthy, Healthy]), Unhealthy);
        assert_eq!(overall_status(&[Healthy, Offline]), Unhealthy);
    }

    #[test]
    fn aggregate_keeps_details_per_component() {
        let r = aggregate(
            "telescope",
            vec![
                HealthReport::healthy("mqtt", "connected"),
                HealthReport::degraded("ascom", "1 device down").with_detail("down", 1),
            ],
        );
        assert_eq!(r.status, Degraded);
        assert_eq!(r.message, "ascom: 1 device down");
        assert_eq!(r.components["ascom"].details["down"], 1);
    }

    #[test]
    fn report_serialises_in_the_go_shape() {
        let r = HealthReport::healthy("message", "ok").with_duration(Duration::from_millis(2));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["status"], "healthy");
        assert_eq!(v["duration"], 2_000_000);
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        let back: HealthReport = serde_json::from_value(v).unwrap();
        assert_eq!(back.component, "message");
    }
}
