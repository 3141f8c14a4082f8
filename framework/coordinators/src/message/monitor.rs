//! Liveness of every coordinator, from the health it publishes (or stops publishing).
//!
//! A coordinator's effective status is what it last reported, unless it has been silent for
//! more than `missed_intervals` of its announced health interval (then `unhealthy`), or its
//! last will arrived (`offline`). Pure state over an injected clock, so it is tested with
//! paused time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use bigskies_core::health::{HealthStatus, overall_status};

use super::history::HistoryRow;
use super::{Settings, known_names};

/// The parts of a health message the monitor needs. Accepts the enveloped form (what every
/// coordinator publishes) and a bare result.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedHealth {
    pub status: HealthStatus,
    pub message: String,
    /// The interval the publisher announced, if any.
    pub interval: Option<Duration>,
}

#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    payload: Option<Inner>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    details: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct Inner {
    status: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    details: Option<Map<String, Value>>,
}

/// Lenient status parsing: the GTK client's `warning` means degraded, anything unknown is
/// `unknown`.
pub fn parse_status(s: &str) -> HealthStatus {
    match s.to_ascii_lowercase().as_str() {
        "healthy" | "ok" => HealthStatus::Healthy,
        "degraded" | "warning" => HealthStatus::Degraded,
        "unhealthy" | "error" => HealthStatus::Unhealthy,
        "stopping" => HealthStatus::Stopping,
        "offline" => HealthStatus::Offline,
        _ => HealthStatus::Unknown,
    }
}

/// Parse a health message; `None` when it is not one.
pub fn parse_health(bytes: &[u8]) -> Option<ParsedHealth> {
    let w: Wire = serde_json::from_slice(bytes).ok()?;
    let (status, message, details) = match w.payload {
        Some(p) => (p.status, p.message, p.details),
        None => (w.status?, w.message, w.details),
    };
    let interval = details
        .as_ref()
        .and_then(|d| d.get("health_interval_seconds"))
        .and_then(Value::as_f64)
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64);
    Some(ParsedHealth {
        status: parse_status(&status),
        message: message.unwrap_or_default(),
        interval,
    })
}

/// What the monitor knows of one coordinator.
#[derive(Clone, Debug)]
struct Tracked {
    reported: HealthStatus,
    effective: HealthStatus,
    message: String,
    interval: Option<Duration>,
    last_seen: Instant,
    last_seen_at: DateTime<Utc>,
    reports: u64,
    last_sampled: Option<Instant>,
}

/// A coordinator's state as shown in the summary.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CoordinatorState {
    pub name: String,
    pub status: HealthStatus,
    pub reported_status: Option<HealthStatus>,
    pub message: String,
    pub expected: bool,
    pub last_seen: Option<DateTime<Utc>>,
    pub seconds_since_last_seen: Option<f64>,
    pub reports: u64,
}

/// A change of a coordinator's effective status.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub coordinator: String,
    pub from: Option<HealthStatus>,
    pub to: HealthStatus,
    pub message: String,
}

impl Transition {
    pub(super) fn to_row(&self, reason: &'static str) -> HistoryRow {
        HistoryRow {
            coordinator: self.coordinator.clone(),
            status: self.to,
            message: self.message.clone(),
            reason,
            details: json!({"from": self.from.map(HealthStatus::as_str)}),
            at: Utc::now(),
        }
    }
}

#[derive(Debug)]
pub struct Monitor {
    /// Only ever holds known names: health under any other name is ignored, so made-up
    /// topics can neither grow this nor show up in the summary.
    tracked: BTreeMap<String, Tracked>,
    expected: Vec<String>,
    known: BTreeSet<String>,
    default_interval: Duration,
    missed: u32,
}

impl Monitor {
    pub fn new(settings: &Settings) -> Self {
        let mut m = Self {
            tracked: BTreeMap::new(),
            expected: Vec::new(),
            known: BTreeSet::new(),
            default_interval: settings.monitor_interval,
            missed: settings.missed_intervals,
        };
        m.configure(settings);
        m
    }

    pub fn configure(&mut self, settings: &Settings) {
        self.expected.clone_from(&settings.expected);
        self.known = known_names(settings);
        // A coordinator no longer known is no longer shown.
        let known = &self.known;
        self.tracked.retain(|n, _| known.contains(n));
        self.default_interval = settings.monitor_interval;
        self.missed = settings.missed_intervals;
    }

    pub fn len(&self) -> usize {
        self.tracked.len()
    }

    /// Whether health under `name` is taken into account.
    pub fn is_known(&self, name: &str) -> bool {
        self.known.contains(name)
    }

    /// The names health is taken from.
    pub fn known(&self) -> &BTreeSet<String> {
        &self.known
    }

    pub fn is_empty(&self) -> bool {
        self.tracked.is_empty()
    }

    fn deadline(&self, t: &Tracked) -> Duration {
        t.interval.unwrap_or(self.default_interval) * self.missed
    }

    /// Fold in one health report. Returns the transition it caused (if any) and a history
    /// sample when one is due. Reports under unknown names change nothing.
    pub fn observe(
        &mut self,
        name: &str,
        report: ParsedHealth,
        now: Instant,
        sample_every: Duration,
    ) -> (Option<Transition>, Option<HistoryRow>) {
        if !self.is_known(name) {
            return (None, None);
        }
        let t = self
            .tracked
            .entry(name.to_owned())
            .or_insert_with(|| Tracked {
                reported: HealthStatus::Unknown,
                effective: HealthStatus::Unknown,
                message: String::new(),
                interval: None,
                last_seen: now,
                last_seen_at: Utc::now(),
                reports: 0,
                last_sampled: None,
            });
        let before = (t.reports > 0).then_some(t.effective);
        t.reported = report.status;
        t.effective = report.status;
        t.message = report.message;
        if report.interval.is_some() {
            t.interval = report.interval;
        }
        t.last_seen = now;
        t.last_seen_at = Utc::now();
        t.reports += 1;
        let transition = (before != Some(t.effective)).then(|| Transition {
            coordinator: name.to_owned(),
            from: before,
            to: t.effective,
            message: t.message.clone(),
        });
        let sample =
            if transition.is_none() && t.last_sampled.is_none_or(|s| now - s >= sample_every) {
                t.last_sampled = Some(now);
                Some(HistoryRow {
                    coordinator: name.to_owned(),
                    status: t.effective,
                    message: t.message.clone(),
                    reason: "sample",
                    details: json!({}),
                    at: Utc::now(),
                })
            } else {
                if transition.is_some() {
                    t.last_sampled = Some(now);
                }
                None
            };
        (transition, sample)
    }

    /// Mark coordinators silent for too long as unhealthy.
    pub fn sweep(&mut self, now: Instant) -> Vec<Transition> {
        let mut out = Vec::new();
        let names: Vec<String> = self.tracked.keys().cloned().collect();
        for name in names {
            let deadline = match self.tracked.get(&name) {
                Some(t) => self.deadline(t),
                None => continue,
            };
            let Some(t) = self.tracked.get_mut(&name) else {
                continue;
            };
            // Offline and stopping are final until the coordinator speaks again.
            if matches!(t.effective, HealthStatus::Offline | HealthStatus::Stopping) {
                continue;
            }
            let silent = now.saturating_duration_since(t.last_seen);
            if silent > deadline && t.effective != HealthStatus::Unhealthy {
                let from = t.effective;
                t.effective = HealthStatus::Unhealthy;
                t.message = format!(
                    "no health report for {:.1} s ({} missed intervals)",
                    silent.as_secs_f64(),
                    self.missed
                );
                out.push(Transition {
                    coordinator: name.clone(),
                    from: Some(from),
                    to: HealthStatus::Unhealthy,
                    message: t.message.clone(),
                });
            }
        }
        out
    }

    /// Every expected coordinator (unknown when never heard of) and every other one seen.
    pub fn states(&self, now: Instant) -> Vec<CoordinatorState> {
        let mut names: Vec<&String> = self.expected.iter().collect();
        for n in self.tracked.keys() {
            if !self.expected.contains(n) {
                names.push(n);
            }
        }
        names
            .into_iter()
            .map(|n| match self.tracked.get(n) {
                Some(t) => CoordinatorState {
                    name: n.clone(),
                    status: t.effective,
                    reported_status: Some(t.reported),
                    message: t.message.clone(),
                    expected: self.expected.contains(n),
                    last_seen: Some(t.last_seen_at),
                    seconds_since_last_seen: Some(
                        now.saturating_duration_since(t.last_seen).as_secs_f64(),
                    ),
                    reports: t.reports,
                },
                None => CoordinatorState {
                    name: n.clone(),
                    status: HealthStatus::Unknown,
                    reported_status: None,
                    message: "never reported".into(),
                    expected: true,
                    last_seen: None,
                    seconds_since_last_seen: None,
                    reports: 0,
                },
            })
            .collect()
    }

    /// The system summary: overall status by the Go rule over the expected coordinators.
    pub fn summary(&self, now: Instant) -> Value {
        let states = self.states(now);
        let overall = overall_status(states.iter().filter(|s| s.expected).map(|s| &s.status));
        let count = |st: HealthStatus| states.iter().filter(|s| s.status == st).count();
        let coordinators: Map<String, Value> = states
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    serde_json::to_value(s).unwrap_or(Value::Null),
                )
            })
            .collect();
        json!({
            "status": overall,
            "timestamp": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "coordinators": coordinators,
            "counts": {
                "healthy": count(HealthStatus::Healthy),
                "degraded": count(HealthStatus::Degraded),
                "unhealthy": count(HealthStatus::Unhealthy),
                "unknown": count(HealthStatus::Unknown),
                "offline": count(HealthStatus::Offline),
                "stopping": count(HealthStatus::Stopping),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn settings() -> Settings {
        Settings {
            monitor_interval: Duration::from_secs(30),
            expected: vec!["a".into(), "b".into()],
            ..Settings::default()
        }
    }

    fn report(status: HealthStatus, interval: Option<u64>) -> ParsedHealth {
        ParsedHealth {
            status,
            message: String::new(),
            interval: interval.map(Duration::from_secs),
        }
    }

    #[test]
    fn health_messages_parse_enveloped_bare_and_lenient() {
        let env = br#"{"id":"1","type":"status","source":"coordinator:a","timestamp":"2026-01-01T00:00:00Z",
            "payload":{"component":"a","status":"degraded","message":"m","details":{"health_interval_seconds":2.5}}}"#;
        let p = parse_health(env).unwrap();
        assert_eq!(p.status, HealthStatus::Degraded);
        assert_eq!(p.interval, Some(Duration::from_millis(2500)));
        let bare = br#"{"component":"a","status":"WARNING","timestamp":"x"}"#;
        assert_eq!(parse_health(bare).unwrap().status, HealthStatus::Degraded);
        assert!(parse_health(b"not json").is_none());
        assert!(parse_health(br#"{"payload":{"nostatus":1}}"#).is_none());
        assert_eq!(
            parse_health(br#"{"status":"weird"}"#).unwrap().status,
            HealthStatus::Unknown
        );
    }

    #[tokio::test(start_paused = true)]
    async fn silent_coordinators_become_unhealthy_after_three_intervals() {
        let mut m = Monitor::new(&settings());
        let sample = Duration::from_secs(60);
        let (t, _) = m.observe(
            "a",
            report(HealthStatus::Healthy, Some(2)),
            Instant::now(),
            sample,
        );
        assert_eq!(t.unwrap().to, HealthStatus::Healthy);
        // No transition for a repeat.
        let (t, _) = m.observe(
            "a",
            report(HealthStatus::Healthy, None),
            Instant::now(),
            sample,
        );
        assert!(t.is_none());
        tokio::time::advance(Duration::from_millis(5900)).await;
        assert!(m.sweep(Instant::now()).is_empty());
        tokio::time::advance(Duration::from_millis(200)).await;
        let t = m.sweep(Instant::now());
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].to, HealthStatus::Unhealthy);
        assert!(m.sweep(Instant::now()).is_empty(), "reported once");
        // Speaking again heals it.
        let (t, _) = m.observe(
            "a",
            report(HealthStatus::Healthy, None),
            Instant::now(),
            sample,
        );
        assert_eq!(t.unwrap().from, Some(HealthStatus::Unhealthy));
    }

    #[tokio::test(start_paused = true)]
    async fn last_will_is_offline_and_stays_offline() {
        let mut m = Monitor::new(&settings());
        let s = Duration::from_secs(60);
        m.observe(
            "a",
            report(HealthStatus::Healthy, Some(1)),
            Instant::now(),
            s,
        );
        m.observe(
            "b",
            report(HealthStatus::Healthy, Some(1)),
            Instant::now(),
            s,
        );
        let (t, _) = m.observe("b", report(HealthStatus::Offline, None), Instant::now(), s);
        assert_eq!(t.unwrap().to, HealthStatus::Offline);
        tokio::time::advance(Duration::from_secs(10)).await;
        let t = m.sweep(Instant::now());
        assert_eq!(t.len(), 1, "only a goes unhealthy: {t:?}");
        let sum = m.summary(Instant::now());
        assert_eq!(sum["coordinators"]["b"]["status"], "offline");
        assert_eq!(sum["status"], "unhealthy");
    }

    #[tokio::test(start_paused = true)]
    async fn summary_lists_unseen_expected_coordinators_as_unknown() {
        let mut m = Monitor::new(&settings());
        let s = Duration::from_secs(60);
        m.observe("a", report(HealthStatus::Healthy, None), Instant::now(), s);
        // Known (a framework coordinator) but not expected here.
        m.observe(
            "telescope",
            report(HealthStatus::Unhealthy, None),
            Instant::now(),
            s,
        );
        let sum = m.summary(Instant::now());
        assert_eq!(sum["coordinators"]["b"]["status"], "unknown");
        assert_eq!(sum["coordinators"]["telescope"]["expected"], false);
        // b unknown ⇒ degraded by the Go rule; the unexpected one does not count.
        assert_eq!(sum["status"], "degraded");
        m.observe("b", report(HealthStatus::Healthy, None), Instant::now(), s);
        assert_eq!(m.summary(Instant::now())["status"], "healthy");
    }

    #[tokio::test(start_paused = true)]
    async fn health_under_made_up_names_is_ignored() {
        let mut m = Monitor::new(&settings());
        let s = Duration::from_secs(60);
        for i in 0..200 {
            let (t, h) = m.observe(
                &format!("fake-{i}"),
                report(HealthStatus::Healthy, None),
                Instant::now(),
                s,
            );
            assert!(t.is_none() && h.is_none());
        }
        assert!(m.is_empty());
        let sum = m.summary(Instant::now());
        assert_eq!(sum["coordinators"].as_object().unwrap().len(), 2, "{sum}");
        // Names made known on purpose (a bench's simulated coordinators) are tracked.
        m.configure(&Settings {
            also_known: vec!["fake-1".into()],
            ..settings()
        });
        m.observe(
            "fake-1",
            report(HealthStatus::Healthy, None),
            Instant::now(),
            s,
        );
        assert_eq!(m.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn samples_are_rate_limited_per_coordinator() {
        let mut m = Monitor::new(&settings());
        let every = Duration::from_secs(10);
        let (t, s) = m.observe(
            "a",
            report(HealthStatus::Healthy, None),
            Instant::now(),
            every,
        );
        assert!(t.is_some() && s.is_none(), "the first report is a change");
        let (_, s) = m.observe(
            "a",
            report(HealthStatus::Healthy, None),
            Instant::now(),
            every,
        );
        assert!(s.is_none());
        tokio::time::advance(every).await;
        let (_, s) = m.observe(
            "a",
            report(HealthStatus::Healthy, None),
            Instant::now(),
            every,
        );
        assert_eq!(s.unwrap().reason, "sample");
    }
}
