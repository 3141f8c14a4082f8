//! The one coordinator runtime every coordinator shares.
//!
//! A coordinator supplies a typed request enum, a handler and its health; the runtime does the
//! rest: subscribe, size check, decode (bare or enveloped), dispatch with bounded concurrency and
//! a per-request timeout, reply (to the MQTT 5 response topic, the envelope's `reply_to`, or the
//! Go-compatible shared response topic), health publication (at start, on change, every
//! interval), live configuration reload, and a drain on shutdown.
//!
//! A coordinator may also serve one-way **event routes** ([`Coordinator::event_routes`]): topics
//! outside its request space (the Go compatibility topics) whose messages are handled as one of
//! its operations, with the same decoding and the same authentication. Go senders expect no
//! reply, so an event is answered only when it names a reply topic; otherwise the outcome is
//! logged and counted (`events_handled`, `events_refused` in the health details).
//!
//! The request enum is decoded from `{"op": "<action>/<resource>", "body": <payload>}`, so a
//! coordinator declares its operations with serde:
//!
//! ```ignore
//! #[derive(serde::Deserialize)]
//! #[serde(tag = "op", content = "body")]
//! enum SecurityRequest {
//!     #[serde(rename = "auth/login")]
//!     Login(LoginRequest),
//! }
//! ```

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt as _;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::auth::{Access, AccessRecord, AuthError, Authenticator, Operation, Principal};
use crate::bus::{Bus, BusConfig, BusError, Message, Will};
use crate::config::{ConfigStore, CoordinatorConfig};
use crate::envelope::{Envelope, MessageType, REQUEST_DIGEST, Request, request_digest};
use crate::error::{ErrorKind, HandlerError};
use crate::health::{HealthReport, HealthStatus, aggregate};
use crate::lanes::{LaneLimits, LaneUse, Lanes};
use crate::replay::{Admission, Replays};
use crate::topics::{Topics, filter_matches};

/// The configuration key, in a coordinator's `coordinator_config` rows, of its health interval.
pub const HEALTH_INTERVAL_KEY: &str = "health_interval";

/// A one-way topic a coordinator also serves: a message on `topic` (a filter) is handled as
/// operation `op` (`<action>/<resource>`, as in its request enum).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRoute {
    pub topic: String,
    pub op: String,
}

impl EventRoute {
    pub fn new(topic: impl Into<String>, op: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            op: op.into(),
        }
    }
}

/// What a coordinator is. The runtime owns everything generic.
pub trait Coordinator: Send + Sync + 'static {
    /// Serde-tagged request enum (`#[serde(tag = "op", content = "body")]`).
    type Request: DeserializeOwned + Send + 'static;

    /// Short name: `security`, `telescope`, ... (topic segment and health component).
    fn name(&self) -> &'static str;

    /// Every operation this coordinator serves and what each requires. An operation of the
    /// request enum without a row here is never served (refused as unknown), so access fails
    /// closed; the access-matrix test checks that every variant has a row.
    fn operations(&self) -> &'static [Operation];

    /// Handle one decoded request. The returned value is the reply body; the runtime adds
    /// `correlation_id`.
    fn handle(
        &self,
        ctx: Context,
        request: Self::Request,
    ) -> impl Future<Output = Result<Value, HandlerError>> + Send;

    /// The coordinator's own health components (the runtime adds the bus link).
    fn health(&self) -> impl Future<Output = Vec<HealthReport>> + Send {
        async { Vec::new() }
    }

    /// Apply (re)loaded configuration. Called at start and on every config update.
    fn apply_config(&self, _config: &CoordinatorConfig) -> Result<(), HandlerError> {
        Ok(())
    }

    /// One-way topics served besides `<root>/coordinator/<name>/<action>/<resource>` (see the
    /// module documentation). Read once, when the runtime starts serving.
    fn event_routes(&self, _topics: &Topics) -> Vec<EventRoute> {
        Vec::new()
    }

    /// The resource a request works on, when it can be slow (a device): requests with the same
    /// key share a lane with its own small concurrency and queue ([`crate::lanes`]), so one hung
    /// device never holds up the rest. `None` (the default): no lane, only the coordinator-wide
    /// limit. A safety command (abort) is [`LaneUse::Urgent`]: it runs at once and cancels
    /// what still waits in its lane. Return the same key for every spelling of one resource
    /// (a canonical id), or one resource gets many lanes.
    fn lane(&self, _request: &Self::Request) -> Option<LaneUse> {
        None
    }
}

/// What a handler knows about the request it serves.
#[derive(Clone)]
pub struct Context {
    pub action: String,
    pub resource: String,
    pub correlation_id: Option<String>,
    /// The bearer token or API key, if the request carried one (never logged).
    pub token: Option<String>,
    /// Who is asking, established by the runtime from the credential (never from the payload).
    /// `None` only for public operations called without a valid credential.
    pub principal: Option<Principal>,
    /// Whether the reply goes to a topic the requester named (MQTT 5 response topic or
    /// `reply_to`, other than a Go shared response topic): only such a reply may carry a
    /// secret (a token, an API key), since the shared response topics are read by everyone
    /// who may read replies at all.
    pub private_reply: bool,
    /// The topic the reply goes to, if any: for a private reply it names the requesting client
    /// (`<root>/client/<id>/reply`), which is all a subscriber learns of who sent a request
    /// (per-client login limits key on it).
    pub reply_topic: Option<String>,
    pub bus: Bus,
    pub topics: Topics,
    pub received_at: Instant,
    /// Cancelled when the runtime shuts down; long handlers should watch it.
    pub shutdown: CancellationToken,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("action", &self.action)
            .field("resource", &self.resource)
            .field("correlation_id", &self.correlation_id)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("principal", &self.principal.as_ref().map(|p| &p.username))
            .finish_non_exhaustive()
    }
}

/// Generic runtime settings.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    pub topics: Topics,
    /// Larger payloads are refused with an error reply and never decoded.
    pub max_payload: usize,
    /// Requests without a lane handled at once; further ones wait (see `max_in_flight`).
    /// Requests in a lane are limited by their lane instead.
    pub concurrency: usize,
    /// Requests running or waiting at once; further ones are refused at once (`unavailable`),
    /// so the serving loop never waits on handlers (health, configuration reload and the bus
    /// reader go on whatever the handlers do).
    pub max_in_flight: usize,
    /// The shape of the per-resource lanes ([`Coordinator::lane`]).
    pub lanes: LaneLimits,
    pub health_interval: Duration,
    /// How often health is evaluated to catch changes between publications.
    pub health_poll: Duration,
    pub health_check_timeout: Duration,
    pub handler_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    pub drain_deadline: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            topics: Topics::default(),
            max_payload: 256 * 1024,
            concurrency: 64,
            max_in_flight: 512,
            lanes: LaneLimits::default(),
            health_interval: Duration::from_secs(30),
            health_poll: Duration::from_secs(1),
            health_check_timeout: Duration::from_secs(5),
            handler_timeout: Duration::from_secs(30),
            drain_deadline: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    #[error("configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("coordinator rejected its configuration: {0}")]
    Rejected(HandlerError),
}

#[derive(Default)]
struct Counters {
    handled: AtomicU64,
    failed: AtomicU64,
    rejected: AtomicU64,
    events_handled: AtomicU64,
    /// Events refused before or by their handler (undecodable, unauthenticated, invalid, ...).
    events_refused: AtomicU64,
}

/// How one message ended, for the counters.
#[derive(Clone, Copy)]
enum Tally {
    Handled,
    Failed,
    Rejected,
}

impl Counters {
    fn count(&self, event: bool, tally: Tally) {
        let counter = match (event, tally) {
            (false, Tally::Handled) => &self.handled,
            (false, Tally::Failed) => &self.failed,
            (false, Tally::Rejected) => &self.rejected,
            (true, Tally::Handled) => &self.events_handled,
            (true, Tally::Failed | Tally::Rejected) => &self.events_refused,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The next event, or never when the coordinator has no event routes.
async fn next_event(events: &mut Option<mpsc::Receiver<Message>>) -> Option<Message> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The health envelope a coordinator publishes for `report`.
pub fn health_envelope(name: &str, report: &HealthReport) -> Envelope {
    let payload = serde_json::to_value(report)
        .unwrap_or_else(|_| json!({"component": name, "status": "unknown"}));
    Envelope::new(MessageType::Status, format!("coordinator:{name}"), payload)
}

/// The last will that marks coordinator `name` offline if it vanishes; retained like every
/// health publication, so the retained status never says "healthy" for a dead coordinator.
pub fn last_will(topics: &Topics, name: &str) -> Will {
    let report = HealthReport::new(
        name,
        HealthStatus::Offline,
        "coordinator went offline (last will)",
    );
    Will {
        topic: topics.health(name),
        payload: health_envelope(name, &report).to_bytes(),
        retain: true,
    }
}

/// Everything needed to run one coordinator on its own bus connection.
#[derive(Clone)]
pub struct Launch {
    pub bus: BusConfig,
    pub runtime: RuntimeConfig,
    pub store: Option<ConfigStore>,
    /// How long to wait for the broker at start before failing.
    pub connect_timeout: Duration,
    /// Verifies credentials; without one only public operations are served.
    pub authenticator: Option<Arc<dyn Authenticator>>,
}

/// Connect a bus with the coordinator's last will, serve until `shutdown`, drain, disconnect.
pub async fn launch<C: Coordinator>(
    coordinator: Arc<C>,
    launch: Launch,
    shutdown: CancellationToken,
) -> Result<(), RuntimeError> {
    launch_with(coordinator, launch, shutdown, |_bus, _stop| async {}).await
}

/// [`launch`], plus background work that needs the coordinator's own bus connection (ingest
/// subscriptions, periodic publications, sweeps). `background` starts once the runtime serves
/// (subscribed, configuration applied), gets a token cancelled when the runtime stops
/// serving, and is awaited (at most the drain deadline) before the bus disconnects, so its
/// last publications still go out.
pub async fn launch_with<C, F, Fut>(
    coordinator: Arc<C>,
    launch: Launch,
    shutdown: CancellationToken,
    background: F,
) -> Result<(), RuntimeError>
where
    C: Coordinator,
    F: FnOnce(Bus, CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let name = coordinator.name();
    let bus_stop = CancellationToken::new();
    let (bus, task) = Bus::start(
        launch.bus.clone(),
        Some(last_will(&launch.runtime.topics, name)),
        bus_stop.clone(),
    );
    let result = async {
        bus.wait_connected(launch.connect_timeout).await?;
        let drain = launch.runtime.drain_deadline;
        let mut runtime = Runtime::new(coordinator, bus.clone(), launch.runtime, launch.store);
        if let Some(a) = launch.authenticator {
            runtime = runtime.with_authenticator(a);
        }
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        runtime.ready = Some(ready_tx);
        let background_stop = shutdown.child_token();
        let (worker_bus, worker_stop) = (bus.clone(), background_stop.clone());
        let mut worker = tokio::spawn(async move {
            // Not before the configuration is applied; never if the runtime fails to start.
            if ready_rx.await.is_ok() {
                background(worker_bus, worker_stop).await;
            }
        });
        let served = runtime.run(shutdown).await;
        background_stop.cancel();
        if tokio::time::timeout(drain, &mut worker).await.is_err() {
            warn!(
                coordinator = name,
                "background work did not stop in time; aborted"
            );
            worker.abort();
        }
        served
    }
    .await;
    bus.disconnect().await;
    bus_stop.cancel();
    let _ = task.await;
    result
}

/// A coordinator bound to a bus.
pub struct Runtime<C: Coordinator> {
    coordinator: Arc<C>,
    bus: Bus,
    config: RuntimeConfig,
    store: Option<ConfigStore>,
    counters: Arc<Counters>,
    started: Instant,
    authenticator: Option<Arc<dyn Authenticator>>,
    /// Told once the runtime has subscribed and applied its configuration.
    ready: Option<tokio::sync::oneshot::Sender<()>>,
}

impl<C: Coordinator> Runtime<C> {
    pub fn new(
        coordinator: Arc<C>,
        bus: Bus,
        config: RuntimeConfig,
        store: Option<ConfigStore>,
    ) -> Self {
        Self {
            coordinator,
            bus,
            config,
            store,
            counters: Arc::default(),
            started: Instant::now(),
            authenticator: None,
            ready: None,
        }
    }

    pub fn with_authenticator(mut self, authenticator: Arc<dyn Authenticator>) -> Self {
        self.authenticator = Some(authenticator);
        self
    }

    /// Serve until `shutdown` is cancelled, then publish `stopping` and drain.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), RuntimeError> {
        let name = self.coordinator.name();
        let topics = self.config.topics.clone();
        let mut requests = self
            .bus
            .subscribe(&topics.request_filter(name), self.config.concurrency * 2)
            .await?;
        let mut updates = self.bus.subscribe(&topics.config_update(name), 8).await?;
        let routes: Arc<[EventRoute]> = self.coordinator.event_routes(&topics).into();
        let mut events = if routes.is_empty() {
            None
        } else {
            let filters: Vec<&str> = routes.iter().map(|r| r.topic.as_str()).collect();
            Some(
                self.bus
                    .subscribe_many(&filters, self.config.concurrency * 2)
                    .await?,
            )
        };
        self.reload_config().await?;
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(());
        }

        let permits = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let lanes = Lanes::new(self.config.lanes);
        let replays = Replays::default();
        let tracker = TaskTracker::new();
        let handlers_stop = shutdown.child_token();
        let mut link = self.bus.connection_watch();

        let mut last_status = self.publish_health().await;
        // The periodic report is due one interval after the last report of any kind, on its
        // own timer: sampling it from the poll made it late by up to a poll period (every 2 s
        // at a 1 s interval). The poll only catches changes between reports.
        let mut due = tokio::time::Instant::now() + self.config.health_interval;
        let mut poll = tokio::time::interval(self.config.health_poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        info!(
            coordinator = name,
            root = topics.root(),
            "coordinator serving"
        );

        loop {
            let incoming = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                msg = requests.recv() => {
                    let Some(msg) = msg else { break };
                    msg
                }
                msg = next_event(&mut events) => {
                    let Some(msg) = msg else { break };
                    msg
                }
                upd = updates.recv() => {
                    if upd.is_none() { break }
                    match self.reload_config().await {
                        Ok(()) => info!(coordinator = name, "configuration reloaded"),
                        Err(e) => warn!(coordinator = name, error = %e, "configuration reload failed; keeping the previous settings"),
                    }
                    last_status = self.publish_health().await;
                    due = tokio::time::Instant::now() + self.config.health_interval;
                    continue;
                }
                _ = link.changed() => {
                    // Publish promptly after a reconnect so watchers see us again.
                    if *link.borrow_and_update() {
                        last_status = self.publish_health().await;
                        due = tokio::time::Instant::now() + self.config.health_interval;
                    }
                    continue;
                }
                () = tokio::time::sleep_until(due) => {
                    last_status = self.publish_health().await;
                    // On schedule; after a stall, one interval from now.
                    let now = tokio::time::Instant::now();
                    due += self.config.health_interval;
                    if due <= now {
                        due = now + self.config.health_interval;
                    }
                    continue;
                }
                // A poll no faster than the reports would only repeat them.
                _ = poll.tick(), if self.config.health_poll < self.config.health_interval => {
                    let report = self.health_report().await;
                    if report.status != last_status {
                        self.send_health(&report).await;
                        last_status = report.status;
                        due = tokio::time::Instant::now() + self.config.health_interval;
                    }
                    continue;
                }
            };
            // Never wait here: a request beyond `max_in_flight` is answered `unavailable` at
            // once; the others wait for a slot in their own task (lane first, then the
            // coordinator-wide limit), so health and configuration keep flowing.
            let admission = (tracker.len() >= self.config.max_in_flight.max(1)).then(|| {
                HandlerError::unavailable(format!(
                    "{name} is busy: {} requests are running or waiting; try again later",
                    tracker.len()
                ))
            });
            let job = Job {
                permits: permits.clone(),
                lanes: lanes.clone(),
                replays: replays.clone(),
                admission,
                coordinator: self.coordinator.clone(),
                bus: self.bus.clone(),
                config: self.config.clone(),
                counters: self.counters.clone(),
                shutdown: handlers_stop.clone(),
                authenticator: self.authenticator.clone(),
                routes: routes.clone(),
                digest: request_digest(&incoming.payload),
            };
            tracker.spawn(job.serve(incoming));
        }

        drop(requests);
        drop(events);
        drop(updates);
        let stopping =
            HealthReport::new(name, HealthStatus::Stopping, "coordinator is shutting down");
        self.send_health(&stopping).await;
        tracker.close();
        let in_flight = tracker.len();
        if tokio::time::timeout(self.config.drain_deadline, tracker.wait())
            .await
            .is_err()
        {
            warn!(
                coordinator = name,
                in_flight, "drain deadline passed; cancelling remaining handlers"
            );
            handlers_stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(1), tracker.wait()).await;
        } else {
            debug!(coordinator = name, in_flight, "drained");
        }
        Ok(())
    }

    async fn reload_config(&mut self) -> Result<(), RuntimeError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let cfg = store.load(self.coordinator.name()).await?;
        let interval = cfg.duration(HEALTH_INTERVAL_KEY, self.config.health_interval)?;
        if interval.is_zero() {
            warn!(
                coordinator = self.coordinator.name(),
                "health_interval of 0 ignored"
            );
        } else if interval != self.config.health_interval {
            info!(
                coordinator = self.coordinator.name(),
                ?interval,
                "health interval changed"
            );
            self.config.health_interval = interval;
        }
        self.coordinator
            .apply_config(&cfg)
            .map_err(RuntimeError::Rejected)
    }

    async fn health_report(&self) -> HealthReport {
        let name = self.coordinator.name();
        let started = Instant::now();
        let mut parts =
            match tokio::time::timeout(self.config.health_check_timeout, self.coordinator.health())
                .await
            {
                Ok(parts) => parts,
                Err(_) => vec![HealthReport::unhealthy(name, "health check timed out")],
            };
        let connected = self.bus.is_connected();
        parts.push(if connected {
            HealthReport::healthy("mqtt", "connected")
        } else {
            HealthReport::degraded("mqtt", "MQTT client not connected")
        });
        let mut report = aggregate(name, parts).with_duration(started.elapsed());
        let c = &self.counters;
        report = report
            .with_detail("uptime_seconds", self.started.elapsed().as_secs_f64())
            .with_detail("running", true)
            .with_detail("mqtt_connected", connected)
            .with_detail("requests_handled", c.handled.load(Ordering::Relaxed))
            .with_detail("requests_failed", c.failed.load(Ordering::Relaxed))
            .with_detail("requests_rejected", c.rejected.load(Ordering::Relaxed))
            .with_detail("events_handled", c.events_handled.load(Ordering::Relaxed))
            .with_detail("events_refused", c.events_refused.load(Ordering::Relaxed))
            .with_detail(
                "health_interval_seconds",
                self.config.health_interval.as_secs_f64(),
            );
        report
    }

    async fn publish_health(&self) -> HealthStatus {
        let report = self.health_report().await;
        self.send_health(&report).await;
        report.status
    }

    async fn send_health(&self, report: &HealthReport) {
        let name = self.coordinator.name();
        let env = health_envelope(name, report);
        // Retained: a watcher that starts later (the message coordinator, a dashboard) sees
        // every coordinator's current status at once instead of after its next interval.
        if let Err(e) = self
            .bus
            .publish(&self.config.topics.health(name), env.to_bytes(), true)
            .await
        {
            debug!(coordinator = name, error = %e, "health not published");
        }
    }
}

/// What a running handler holds: a place in its lane, or a coordinator-wide slot (urgent
/// requests hold nothing).
enum Held {
    Lane(crate::lanes::Slot),
    Shared(#[allow(dead_code, reason = "held, not read")] tokio::sync::OwnedSemaphorePermit),
}

/// Whether a reply body is a final answer a repeat may be given: a success or a refusal of the
/// request itself, not a timeout or an outage (a retry of those must run again).
fn is_definite(body: &Value) -> bool {
    match body.get("error_code").and_then(Value::as_str) {
        None => body.get("success") != Some(&Value::Bool(false)),
        Some(code) => matches!(
            code,
            "invalid_request" | "unauthenticated" | "forbidden" | "not_found" | "conflict"
        ),
    }
}

/// One request's worth of shared state.
struct Job<C: Coordinator> {
    coordinator: Arc<C>,
    bus: Bus,
    config: RuntimeConfig,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
    authenticator: Option<Arc<dyn Authenticator>>,
    routes: Arc<[EventRoute]>,
    /// [`request_digest`] of the message being served: every reply carries it.
    digest: String,
    /// The coordinator-wide limit of running handlers.
    permits: Arc<Semaphore>,
    lanes: Lanes,
    /// Recent state-changing requests, so that a repeat is not run again.
    replays: Replays,
    /// Set when the serving loop refused this message for want of room.
    admission: Option<HandlerError>,
}

/// Whether coordinator `name` answers on `topic`, a reply topic the requester named: only a
/// private client topic or its own shared response topics ([`Topics::reply_allowed`]), so a
/// requester can never use a coordinator to publish where it may not publish itself (another
/// coordinator's requests, health, events, other roots).
fn reply_to_allowed(topics: &Topics, name: &str, topic: &str) -> bool {
    topics.reply_allowed(name, topic)
}

impl<C: Coordinator> Job<C> {
    /// `(action, resource, is_event)` of a message: a request of this coordinator, or a
    /// message on one of its event routes.
    fn classify(&self, topic: &str) -> Option<(String, String, bool)> {
        let name = self.coordinator.name();
        if let Some((action, resource)) = self.config.topics.parse_request(name, topic) {
            return Some((action.to_owned(), resource.to_owned(), false));
        }
        let route = self
            .routes
            .iter()
            .find(|r| filter_matches(&r.topic, topic))?;
        let (action, resource) = route.op.split_once('/')?;
        Some((action.to_owned(), resource.to_owned(), true))
    }

    async fn serve(self, msg: Message) {
        let arrived = Instant::now();
        let name = self.coordinator.name();
        let topics = &self.config.topics;
        let Some((action, resource, event)) = self.classify(&msg.topic) else {
            return;
        };
        // Requests fall back to the Go shared response topic; events are answered only when
        // they ask for it.
        let fallback = (!event).then(|| topics.response(name, &action, &resource));
        let asked = |t: &Option<String>| t.clone().filter(|t| reply_to_allowed(topics, name, t));

        if msg.payload.len() > self.config.max_payload {
            self.counters.count(event, Tally::Rejected);
            let cid = Request::sniff_correlation_id(&msg.payload);
            let err = HandlerError::invalid(format!(
                "payload of {} bytes exceeds the limit of {} bytes",
                msg.payload.len(),
                self.config.max_payload
            ));
            warn!(coordinator = name, topic = %msg.topic, size = msg.payload.len(), "oversized message refused");
            let target = asked(&msg.response_topic).or(fallback);
            self.respond(
                &msg.topic,
                target,
                err.to_reply(),
                cid,
                msg.correlation_data,
            )
            .await;
            return;
        }

        let request = match Request::decode(&msg.payload) {
            Ok(r) => r,
            Err(e) => {
                self.counters.count(event, Tally::Rejected);
                let cid = Request::sniff_correlation_id(&msg.payload);
                let target = asked(&msg.response_topic).or(fallback);
                debug!(coordinator = name, topic = %msg.topic, error = %e, "undecodable message");
                self.respond(
                    &msg.topic,
                    target,
                    HandlerError::invalid(e.to_string()).to_reply(),
                    cid,
                    msg.correlation_data,
                )
                .await;
                return;
            }
        };

        let requested = msg
            .response_topic
            .clone()
            .or_else(|| request.reply_to.clone());
        let target = match &requested {
            Some(t) if reply_to_allowed(topics, name, t) => Some(t.clone()),
            Some(t) => {
                self.counters.count(event, Tally::Rejected);
                warn!(coordinator = name, topic = %msg.topic, reply_topic = %t, "reply topic refused: replies go only to <root>/client/... or the coordinator's own response topics");
                let err = HandlerError::invalid(format!("reply topic {t:?} is not allowed"));
                self.respond(
                    &msg.topic,
                    fallback,
                    err.to_reply(),
                    request.correlation_id.clone(),
                    msg.correlation_data,
                )
                .await;
                return;
            }
            None => fallback,
        };

        let op = format!("{action}/{resource}");
        let Some(operation) = self
            .coordinator
            .operations()
            .iter()
            .find(|o| o.op == op)
            .copied()
        else {
            self.counters.count(event, Tally::Rejected);
            let err = HandlerError::new(ErrorKind::NotFound, format!("unknown operation {op:?}"));
            self.respond(
                &msg.topic,
                target,
                err.to_reply(),
                request.correlation_id,
                msg.correlation_data,
            )
            .await;
            return;
        };
        let audit_target = audit_target(&request.payload);

        // The credential is checked before the body is decoded: a stranger learns nothing of
        // an operation's schema.
        let principal = match self
            .check_access(&operation.access, request.token.as_deref())
            .await
        {
            Ok(p) => p,
            Err((who, e)) => {
                self.counters.count(event, Tally::Rejected);
                debug!(coordinator = name, %op, error = %e, "request refused");
                let err: HandlerError = e.into();
                let body = err.to_reply();
                self.respond(
                    &msg.topic,
                    target,
                    body.clone(),
                    request.correlation_id,
                    msg.correlation_data,
                )
                .await;
                self.audit(&op, who, audit_target, &body).await;
                return;
            }
        };

        let decoded: Result<C::Request, HandlerError> =
            if matches!(request.payload, Value::Object(_) | Value::Null) {
                serde_json::from_value(json!({"op": op, "body": request.payload}))
                    .map_err(|e| HandlerError::invalid(format!("invalid {op} request: {e}")))
            } else {
                // Serde would fill a struct from an array by position: only an object (or
                // nothing) can be a request, so `["a", 1]` never becomes one.
                Err(HandlerError::invalid(format!(
                    "invalid {op} request: the payload must be a JSON object"
                )))
            };
        let typed = match decoded {
            Ok(t) => t,
            Err(err) => {
                self.counters.count(event, Tally::Rejected);
                self.respond(
                    &msg.topic,
                    target,
                    err.to_reply(),
                    request.correlation_id,
                    msg.correlation_data,
                )
                .await;
                return;
            }
        };

        // Urgent requests (a safety command) skip everything that could make them wait or
        // refuse them for load, and cancel what waits in their lane.
        let lane = self.coordinator.lane(&typed);
        let urgent = matches!(lane, Some(LaneUse::Urgent(_)));
        if let (Some(err), false) = (self.admission.clone(), urgent) {
            self.counters.count(event, Tally::Rejected);
            self.respond(
                &msg.topic,
                target,
                err.to_reply(),
                request.correlation_id,
                msg.correlation_data,
            )
            .await;
            return;
        }

        // A state-changing request seen before (QoS 1 redelivery, a client's retry) gets the
        // first one's outcome instead of running again (never an urgent one: a second abort
        // must stop the mount again).
        let first = if operation.access.changes_state() && !urgent {
            match self.replays.admit(
                &op,
                request.correlation_id.as_deref(),
                &self.digest,
                target.as_deref(),
            ) {
                Some(Admission::Repeat(rx)) => {
                    let body = crate::replay::outcome(rx, self.config.handler_timeout)
                        .await
                        .unwrap_or_else(|| {
                            HandlerError::unavailable(
                                "the first delivery of this request did not finish; send it again",
                            )
                            .to_reply()
                        });
                    debug!(coordinator = name, %op, "repeated request answered with its first outcome");
                    self.counters.count(event, Tally::Handled);
                    self.respond(
                        &msg.topic,
                        target,
                        body,
                        request.correlation_id,
                        msg.correlation_data,
                    )
                    .await;
                    return;
                }
                Some(Admission::First(first)) => Some(first),
                None => None,
            }
        } else {
            None
        };

        // A place in the request's lane (refused at once when the lane is full or stuck), or,
        // without a lane, a coordinator-wide slot: lane requests do not take those, or a few
        // hung devices could hold every slot. The wait counts against the handler timeout.
        let deadline = tokio::time::Instant::now() + self.config.handler_timeout;
        let ticket = match lane {
            None => Ok(None),
            Some(LaneUse::Urgent(key)) => {
                self.lanes.flush(&key);
                Ok(None)
            }
            Some(LaneUse::Queue(key)) => self.lanes.enter(&key).map(Some),
        };
        let ticket = match ticket {
            Ok(t) => t,
            Err(err) => {
                self.counters.count(event, Tally::Rejected);
                debug!(coordinator = name, %op, error = %err, "lane refused the request");
                self.respond(
                    &msg.topic,
                    target,
                    err.to_reply(),
                    request.correlation_id,
                    msg.correlation_data,
                )
                .await;
                return;
            }
        };
        let slots = async {
            match ticket {
                Some(t) => t.run().await.map(|s| Some(Held::Lane(s))),
                None if urgent => Ok(None),
                None => Ok(self
                    .permits
                    .clone()
                    .acquire_owned()
                    .await
                    .ok()
                    .map(Held::Shared)),
            }
        };
        let waited = tokio::select! {
            r = tokio::time::timeout_at(deadline, slots) => r.map_err(|_| HandlerError::unavailable(format!(
                "{op} could not start within {:?}: the coordinator is busy",
                self.config.handler_timeout
            ))),
            _ = self.shutdown.cancelled() => Err(HandlerError::unavailable("coordinator is shutting down")),
        };
        let mut held = match waited.and_then(|r| r) {
            Ok(h) => h,
            Err(err) => {
                self.counters.count(event, Tally::Rejected);
                self.respond(
                    &msg.topic,
                    target,
                    err.to_reply(),
                    request.correlation_id,
                    msg.correlation_data,
                )
                .await;
                return;
            }
        };

        let audited = operation.access.changes_state();
        let who = principal.clone();
        let ctx = Context {
            action,
            resource,
            correlation_id: request.correlation_id.clone(),
            token: request.token.clone(),
            principal,
            private_reply: target
                .as_deref()
                .is_some_and(|t| !topics.is_shared_response(t)),
            reply_topic: target.clone(),
            bus: self.bus.clone(),
            topics: topics.clone(),
            received_at: arrived,
            shutdown: self.shutdown.clone(),
        };
        let handling = AssertUnwindSafe(self.coordinator.handle(ctx, typed)).catch_unwind();
        let outcome = tokio::select! {
            r = tokio::time::timeout_at(deadline, handling) => r,
            _ = self.shutdown.cancelled() => Ok(Ok(Err(HandlerError::unavailable("coordinator is shutting down")))),
        };
        let outcome_kind: Result<(), ()> = outcome.as_ref().map(|_| ()).map_err(|_| ());
        let body = match outcome {
            Ok(Ok(Ok(body))) => {
                self.counters.count(event, Tally::Handled);
                body
            }
            Ok(Ok(Err(e))) => {
                self.counters.count(event, Tally::Failed);
                e.to_reply()
            }
            Ok(Err(_panic)) => {
                self.counters.count(event, Tally::Failed);
                error!(coordinator = name, %op, "handler panicked");
                HandlerError::internal().to_reply()
            }
            Err(_) => {
                self.counters.count(event, Tally::Failed);
                warn!(coordinator = name, %op, "handler timed out");
                HandlerError::timeout(format!(
                    "{op} did not finish within {:?}",
                    self.config.handler_timeout
                ))
                .to_reply()
            }
        };
        // The lane saw an answer (anything but a timeout), and is free for the next request
        // before the reply and the audit go out.
        if let (Some(Held::Lane(slot)), Ok(_)) = (held.as_mut(), &outcome_kind) {
            slot.answered();
        }
        drop(held);
        // Only a definite outcome is kept for repeats; after a timeout or an outage a retry
        // must run again.
        if let Some(first) = first
            && is_definite(&body)
        {
            first.finish(&body);
        }
        let refused = is_refusal(&body);
        let record = (audited || refused).then(|| body.clone());
        self.respond(
            &msg.topic,
            target,
            body,
            request.correlation_id,
            msg.correlation_data,
        )
        .await;
        if let Some(body) = record {
            self.audit(&op, who, audit_target, &body).await;
        }
    }

    /// Hand the outcome of a state-changing or refused request to the audit trail (after the
    /// reply is out, so the requester never waits for it).
    async fn audit(
        &self,
        op: &str,
        principal: Option<Principal>,
        target: Option<String>,
        body: &Value,
    ) {
        let Some(auth) = &self.authenticator else {
            return;
        };
        let refusal = (body.get("success") == Some(&Value::Bool(false))).then(|| {
            let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            (field("error_code"), field("error"))
        });
        auth.audit(AccessRecord {
            coordinator: self.coordinator.name(),
            op: op.to_owned(),
            principal,
            target,
            allowed: !is_refusal(body),
            refusal,
        })
        .await;
    }

    /// Reply on `target`; without one (an event that asked for no reply) log the outcome.
    async fn respond(
        &self,
        topic: &str,
        target: Option<String>,
        body: Value,
        correlation_id: Option<String>,
        correlation_data: Option<Bytes>,
    ) {
        match target {
            Some(t) => self.reply(&t, body, correlation_id, correlation_data).await,
            None if body.get("success") == Some(&Value::Bool(false)) => {
                let error = body.get("error").and_then(Value::as_str).unwrap_or("");
                let code = body.get("error_code").and_then(Value::as_str).unwrap_or("");
                warn!(
                    coordinator = self.coordinator.name(),
                    topic, error, code, "event refused"
                );
            }
            None => debug!(
                coordinator = self.coordinator.name(),
                topic, "event handled"
            ),
        }
    }

    /// Establish the principal and check `access`. Public operations still get a principal
    /// when a valid credential comes with them. A refusal carries the principal when the
    /// credential was valid.
    async fn check_access(
        &self,
        access: &Access,
        credential: Option<&str>,
    ) -> Result<Option<Principal>, (Option<Principal>, AuthError)> {
        let auth = self.authenticator.as_deref();
        let Access::Permission {
            resource,
            action,
            rights,
        } = *access
        else {
            return Ok(match (auth, credential) {
                (Some(a), Some(c)) => a.authenticate(c).await.ok(),
                _ => None,
            });
        };
        let credential = credential.ok_or((None, AuthError::Missing))?;
        let auth = auth.ok_or_else(|| {
            (
                None,
                AuthError::Unavailable("no authenticator is configured".into()),
            )
        })?;
        let principal = auth.authenticate(credential).await.map_err(|e| (None, e))?;
        match auth.authorize(&principal, resource, action, rights).await {
            Ok(()) => Ok(Some(principal)),
            Err(e) => Err((Some(principal), e)),
        }
    }

    async fn reply(
        &self,
        topic: &str,
        mut body: Value,
        correlation_id: Option<String>,
        correlation_data: Option<Bytes>,
    ) {
        if let Value::Object(map) = &mut body {
            if let Some(cid) = correlation_id {
                map.insert("correlation_id".into(), Value::String(cid));
            }
            // Which request this answers: a client tells its own reply from one that someone
            // who saw its request provoked with the same reply topic and correlation data.
            map.insert(REQUEST_DIGEST.into(), Value::String(self.digest.clone()));
        }
        let bytes = serde_json::to_vec(&body)
            .unwrap_or_else(|_| b"{\"success\":false,\"error\":\"internal error\"}".to_vec());
        if let Err(e) = self.bus.publish_reply(topic, bytes, correlation_data).await {
            warn!(coordinator = self.coordinator.name(), topic, error = %e, "reply not published");
        }
    }
}

/// Whether a reply refuses the request for want of a credential or a right.
fn is_refusal(body: &Value) -> bool {
    matches!(
        body.get("error_code").and_then(Value::as_str),
        Some("forbidden" | "unauthenticated")
    )
}

/// What a request names, for the audit trail: the first identifying field of its payload.
fn audit_target(payload: &Value) -> Option<String> {
    const KEYS: [&str; 12] = [
        "telescope_id",
        "config_id",
        "device_id",
        "session_id",
        "element_id",
        "plugin_id",
        "user_id",
        "username",
        "key_id",
        "id",
        "name",
        "service_id",
    ];
    let map = payload.as_object()?;
    KEYS.iter().find_map(|k| {
        let v = map.get(*k)?;
        let text = v
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string());
        Some(format!(
            "{k}={}",
            text.chars().take(256).collect::<String>()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_topics_cannot_target_requests() {
        let t = Topics::new("r");
        let ok = |topic: &str| reply_to_allowed(&t, "security", topic);
        assert!(ok("r/client/abc/reply"));
        assert!(ok("r/coordinator/security/response/auth/login/response"));
        assert!(!ok(
            "r/coordinator/telescope/response/control/slew/response"
        ));
        assert!(!ok("r/coordinator/security/user/delete"));
        assert!(!ok("r/coordinator/config/update/security-coordinator"));
        assert!(!ok("r/coordinator/security/health/status"));
        assert!(!ok("r/coordinator/security/event/revoked"));
        assert!(!ok("elsewhere/x"));
        assert!(!ok("a/+/b"));
        assert!(!ok("$SYS/x"));
    }
}
