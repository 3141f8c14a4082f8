//! The message coordinator: the system's health watcher.
//!
//! Unlike the Go version it never republishes anything (§12.1 #1): it only listens.
//!
//! * [`monitor`]: per-coordinator liveness: the status each one reports, `unhealthy` after
//!   [`Settings::missed_intervals`] silent intervals, `offline` on its last will.
//! * [`traffic`]: message-rate diagnostics per coordinator and topic class.
//! * [`history`]: health history in PostgreSQL (status changes, missed deadlines and periodic
//!   samples), written in batches off the ingest path, with a retention period.
//! * [`queries`]: `summary/get`, `diagnostics/get`, `history/get`.
//!
//! The system health summary is published retained on `<root>/coordinator/message/event/
//! system/health` (a framework envelope; `message/summary/get` answers the same summary bare)
//! on every change and every `monitor_interval`.

mod history;
mod monitor;
mod queries;
mod traffic;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use bigskies_core::auth::{Access, Operation};
use bigskies_core::bus::{Bus, BusConfig, Message};
use bigskies_core::config::CoordinatorConfig;
use bigskies_core::envelope::{Envelope, MessageType};
use bigskies_core::error::HandlerError;
use bigskies_core::health::HealthReport;
use bigskies_core::runtime::{Context, Coordinator};
use bigskies_core::topics::Topics;

pub use history::HistoryQuery;
pub use monitor::{CoordinatorState, Monitor, Transition};
pub use queries::{DIAGNOSTICS_DEFAULT_LIMIT, DIAGNOSTICS_MAX_LIMIT, DiagnosticsQuery};
pub use traffic::{MAX_NAME_LEN, MAX_OTHER_NAMES, OVERFLOW, TopicClass, Traffic};

/// The coordinator's short name.
pub const NAME: &str = "message";

/// The event kind of the retained system health summary.
pub const SUMMARY_EVENT: &str = "system/health";

/// The eight coordinators of the framework, watched unless configured otherwise.
pub const DEFAULT_EXPECTED: [&str; 8] = [
    "message",
    "security",
    "datastore",
    "application",
    "plugin",
    "telescope",
    "uielement",
    "bootstrap",
];

/// The names health and traffic are tracked for: the framework's coordinators and the
/// configured expected ones. Anything else under `<root>/coordinator/` is made up (anyone may
/// publish there) and must not grow the coordinator's state.
pub fn known_names(settings: &Settings) -> BTreeSet<String> {
    DEFAULT_EXPECTED
        .iter()
        .map(|s| (*s).to_owned())
        .chain(settings.expected.iter().cloned())
        .chain(settings.also_known.iter().cloned())
        .collect()
}

/// A request without fields.
#[derive(Debug, Default, Deserialize)]
pub struct Empty {}

/// Every operation and what it requires (see `docs/authorization.md`).
pub const OPERATIONS: &[Operation] = &[
    Operation::new(
        "summary/get",
        Access::Public,
        "The system health summary (also published retained)",
    ),
    Operation::new(
        "diagnostics/get",
        Access::Public,
        "Message rates per coordinator and topic class, a page at a time",
    ),
    Operation::new(
        "history/get",
        Access::object("message", "read"),
        "Stored health history of one coordinator",
    ),
];

#[derive(Debug, Deserialize)]
#[serde(tag = "op", content = "body")]
pub enum MessageRequest {
    /// The system health summary (also published retained).
    #[serde(rename = "summary/get")]
    Summary(Empty),
    /// Message rates per coordinator and topic class, a page at a time.
    #[serde(rename = "diagnostics/get")]
    Diagnostics(DiagnosticsQuery),
    /// Stored health history of one coordinator.
    #[serde(rename = "history/get")]
    History(HistoryQuery),
}

/// Live settings, from `message-coordinator` configuration rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Summary publication period, and the health interval assumed for coordinators that do
    /// not announce theirs (`health_interval_seconds` in their details).
    pub monitor_interval: Duration,
    /// Silent intervals before a coordinator counts as unhealthy.
    pub missed_intervals: u32,
    pub expected: Vec<String>,
    /// Further names whose health is tracked without being expected (test rigs and benches
    /// that simulate coordinators); not a configuration key.
    pub also_known: Vec<String>,
    pub history_retention: Duration,
    /// At most one stored sample per coordinator per this period (changes are always stored).
    pub history_sample_interval: Duration,
    /// How often staleness is checked and rates are computed.
    pub sweep_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            monitor_interval: Duration::from_secs(30),
            missed_intervals: 3,
            expected: DEFAULT_EXPECTED.iter().map(|s| (*s).to_owned()).collect(),
            also_known: Vec::new(),
            history_retention: Duration::from_secs(7 * 24 * 3600),
            history_sample_interval: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(1),
        }
    }
}

impl Settings {
    fn from_config(c: &CoordinatorConfig, base: &Settings) -> Result<Self, HandlerError> {
        let bad = |e: bigskies_core::config::ConfigError| HandlerError::invalid(e.to_string());
        let monitor_interval = c
            .duration("monitor_interval", base.monitor_interval)
            .map_err(bad)?;
        let missed = c
            .int("missed_intervals", i64::from(base.missed_intervals))
            .map_err(bad)?;
        let expected = match c.object("expected_coordinators").map_err(bad)? {
            None => base.expected.clone(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        HandlerError::invalid("expected_coordinators must be a list of names")
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(HandlerError::invalid(
                    "expected_coordinators must be a list of names",
                ));
            }
        };
        let s = Self {
            monitor_interval,
            missed_intervals: u32::try_from(missed)
                .ok()
                .filter(|m| *m > 0)
                .ok_or_else(|| HandlerError::invalid("missed_intervals must be positive"))?,
            expected,
            also_known: base.also_known.clone(),
            history_retention: c
                .duration("history_retention", base.history_retention)
                .map_err(bad)?,
            history_sample_interval: c
                .duration("history_sample_interval", base.history_sample_interval)
                .map_err(bad)?,
            sweep_interval: c
                .duration("sweep_interval", base.sweep_interval)
                .map_err(bad)?,
        };
        if s.monitor_interval.is_zero() || s.sweep_interval.is_zero() {
            return Err(HandlerError::invalid(
                "monitor_interval and sweep_interval must be positive",
            ));
        }
        Ok(s)
    }
}

/// Counters of the ingest path, for the bench and the coordinator's own health.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub received: AtomicU64,
    pub health: AtomicU64,
    pub malformed: AtomicU64,
    /// Health reports under names that are not known coordinators (ignored).
    pub ignored_health: AtomicU64,
}

/// What the ingest path, the sweeper and the handlers share.
#[derive(Debug)]
struct State {
    monitor: Monitor,
    traffic: Traffic,
}

/// The message coordinator. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct MessageCoordinator {
    state: Mutex<State>,
    /// What the coordinator was built with: the defaults configuration rows override.
    base: Settings,
    settings: Mutex<Settings>,
    stats: IngestStats,
    subscribed: AtomicBool,
    changed: Notify,
    history: Option<history::History>,
    /// The ingest listens on a connection of its own: on the coordinator's connection its
    /// `<root>/coordinator/#` filter would overlap the request filter, and a broker delivers
    /// one copy per matching subscription (requests would be handled twice).
    ingest_bus: BusConfig,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Critical sections leave the data consistent; poisoning carries no meaning here.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MessageCoordinator {
    /// A coordinator that stores health history in `pool` (none without one) and listens to
    /// the traffic over a connection made from `ingest_bus`.
    pub fn new(settings: Settings, pool: Option<PgPool>, ingest_bus: BusConfig) -> Self {
        Self {
            state: Mutex::new(State {
                monitor: Monitor::new(&settings),
                traffic: Traffic::new(known_names(&settings)),
            }),
            base: settings.clone(),
            settings: Mutex::new(settings),
            stats: IngestStats::default(),
            subscribed: AtomicBool::new(false),
            changed: Notify::new(),
            history: pool.map(history::History::new),
            ingest_bus,
        }
    }

    pub fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    /// Replace the live settings (a configuration reload starts again from the settings the
    /// coordinator was built with). For code holding the coordinator: tests and benches.
    pub fn set_settings(&self, settings: Settings) {
        *lock(&self.settings) = settings;
        self.changed.notify_one();
    }

    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// The current state of every known coordinator.
    pub fn coordinators(&self) -> Vec<CoordinatorState> {
        let now = tokio::time::Instant::now();
        lock(&self.state).monitor.states(now)
    }

    /// The system summary as published.
    pub fn summary(&self) -> Value {
        let now = tokio::time::Instant::now();
        lock(&self.state).monitor.summary(now)
    }

    /// Background work: ingest, sweeping, summary publication, history writing and
    /// retention, until `shutdown`. Run it on the coordinator's own bus.
    pub async fn run(self: Arc<Self>, bus: Bus, topics: Topics, shutdown: CancellationToken) {
        let link_stop = CancellationToken::new();
        let (ingest_bus, link) = Bus::start(self.ingest_bus.clone(), None, link_stop.clone());
        // The subscription is registered at once and (re)made on every connect, so a broker
        // that is not there yet only delays the ingest.
        let rx = tokio::select! {
            _ = shutdown.cancelled() => None,
            r = async {
                loop {
                    // Subscribing before the first CONNACK would only time out.
                    if ingest_bus.wait_connected(Duration::from_secs(5)).await.is_err() {
                        continue;
                    }
                    match ingest_bus.subscribe(&topics.coordinator_traffic_filter(), 4096).await {
                        Ok(rx) => return rx,
                        Err(e) => {
                            warn!(error = %e, "ingest subscription failed; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            } => Some(r),
        };
        let Some(rx) = rx else {
            link_stop.cancel();
            let _ = link.await;
            return;
        };
        self.subscribed.store(true, Ordering::Relaxed);
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(self.clone().ingest(rx, topics.clone(), shutdown.clone()));
        tasks.spawn(self.clone().publish_loop(bus, topics, shutdown.clone()));
        if let Some(h) = &self.history {
            tasks.spawn(h.clone().writer(shutdown.clone()));
            let me = self.clone();
            tasks.spawn(async move {
                if let Some(h) = &me.history {
                    h.retention(|| lock(&me.settings).history_retention, shutdown)
                        .await;
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        ingest_bus.disconnect().await;
        link_stop.cancel();
        let _ = link.await;
    }

    /// The hot path: classify, count, and fold health reports into the monitor. Never
    /// publishes and never waits for the database.
    async fn ingest(
        self: Arc<Self>,
        mut rx: tokio::sync::mpsc::Receiver<Message>,
        topics: Topics,
        shutdown: CancellationToken,
    ) {
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => return,
                m = rx.recv() => match m { Some(m) => m, None => return },
            };
            self.observe(&topics, &msg);
        }
    }

    fn observe(&self, topics: &Topics, msg: &Message) {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        let Some((coordinator, class)) = traffic::classify(topics, &msg.topic) else {
            return;
        };
        let parsed = if class == TopicClass::Health {
            self.stats.health.fetch_add(1, Ordering::Relaxed);
            match monitor::parse_health(&msg.payload) {
                Some(p) => Some(p),
                None => {
                    self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                    None
                }
            }
        } else {
            None
        };
        let now = tokio::time::Instant::now();
        let (transition, sample) = {
            let mut st = lock(&self.state);
            st.traffic.count(coordinator, class, msg.payload.len());
            match parsed {
                // The broker cannot tell us who published (MQTT gives subscribers no
                // publisher identity; only the broker's ACL keeps others off these topics),
                // so at least nobody adds coordinators by inventing names.
                Some(_) if !st.monitor.is_known(coordinator) => {
                    self.stats.ignored_health.fetch_add(1, Ordering::Relaxed);
                    (None, None)
                }
                Some(p) => {
                    let sample_every = lock(&self.settings).history_sample_interval;
                    st.monitor.observe(coordinator, p, now, sample_every)
                }
                None => (None, None),
            }
        };
        if let Some(h) = &self.history {
            if let Some(t) = &transition {
                h.record(t.to_row("change"));
            }
            if let Some(s) = sample {
                h.record(s);
            }
        }
        if transition.is_some() {
            self.changed.notify_one();
        }
    }

    /// Sweep for silent coordinators, compute rates, and publish the retained summary on
    /// change and every `monitor_interval`. Publishing happens here, never in `ingest`, so a
    /// full outgoing queue can never stall the reading of the socket.
    async fn publish_loop(self: Arc<Self>, bus: Bus, topics: Topics, shutdown: CancellationToken) {
        let summary_topic = topics.event(NAME, SUMMARY_EVENT);
        let mut last_published: Option<tokio::time::Instant> = None;
        let mut last_summary = Value::Null;
        loop {
            let settings = self.settings();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.changed.notified() => {}
                _ = tokio::time::sleep(settings.sweep_interval) => {}
            }
            let now = tokio::time::Instant::now();
            let (transitions, summary) = {
                let mut st = lock(&self.state);
                st.monitor.configure(&settings);
                let State { monitor, traffic } = &mut *st;
                traffic.configure(monitor.known());
                let t = st.monitor.sweep(now);
                st.traffic.tick(now);
                (t, st.monitor.summary(now))
            };
            if let Some(h) = &self.history {
                for t in &transitions {
                    h.record(t.to_row("missed"));
                }
            }
            let due = last_published.is_none_or(|t| now - t >= settings.monitor_interval);
            let changed = strip_volatile(&summary) != strip_volatile(&last_summary);
            if due || changed {
                let env = Envelope::new(
                    MessageType::Event,
                    format!("coordinator:{NAME}"),
                    summary.clone(),
                );
                match bus.publish(&summary_topic, env.to_bytes(), true).await {
                    Ok(()) => {
                        last_published = Some(now);
                        last_summary = summary;
                    }
                    Err(e) => debug!(error = %e, "system health summary not published"),
                }
            }
        }
    }
}

/// The summary without its timestamps, to tell a real change from the clock moving.
fn strip_volatile(v: &Value) -> Value {
    let mut v = v.clone();
    if let Value::Object(m) = &mut v {
        m.remove("timestamp");
        if let Some(Value::Object(cs)) = m.get_mut("coordinators") {
            for c in cs.values_mut() {
                if let Value::Object(c) = c {
                    c.remove("last_seen");
                    c.remove("seconds_since_last_seen");
                    c.remove("reports");
                }
            }
        }
    }
    v
}

impl Coordinator for MessageCoordinator {
    type Request = MessageRequest;

    fn name(&self) -> &'static str {
        NAME
    }

    /// Health is public information in the Go framework (anyone could subscribe to it).
    fn operations(&self) -> &'static [Operation] {
        OPERATIONS
    }

    async fn handle(&self, _ctx: Context, request: MessageRequest) -> Result<Value, HandlerError> {
        match request {
            MessageRequest::Summary(_) => Ok(self.summary_reply()),
            MessageRequest::Diagnostics(q) => self.diagnostics_reply(&q),
            MessageRequest::History(q) => self.history_reply(q).await,
        }
    }

    async fn health(&self) -> Vec<HealthReport> {
        let received = self.stats.received.load(Ordering::Relaxed);
        let health = self.stats.health.load(Ordering::Relaxed);
        let malformed = self.stats.malformed.load(Ordering::Relaxed);
        let subscribed = self.subscribed.load(Ordering::Relaxed);
        let mut ingest = if subscribed {
            HealthReport::healthy("ingest", "watching coordinator health")
        } else {
            HealthReport::degraded("ingest", "No topics subscribed")
        };
        ingest = ingest
            .with_detail("subscribed_topics", u64::from(subscribed))
            .with_detail("messages_received", received)
            .with_detail("health_messages", health)
            .with_detail("malformed_health_messages", malformed)
            .with_detail(
                "ignored_health_messages",
                self.stats.ignored_health.load(Ordering::Relaxed),
            )
            .with_detail("coordinators_known", lock(&self.state).monitor.len());
        let mut parts = vec![ingest];
        if let Some(h) = &self.history {
            parts.push(h.health());
        }
        parts
    }

    fn apply_config(&self, config: &CoordinatorConfig) -> Result<(), HandlerError> {
        let s = Settings::from_config(config, &self.base)?;
        *lock(&self.settings) = s;
        // Wake the sweeper so new intervals apply now, not after the old period.
        self.changed.notify_one();
        Ok(())
    }
}
