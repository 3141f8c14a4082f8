//! The MQTT bus: one cheap-to-clone [`Bus`] handle plus one task that owns the rumqttc event loop.
//!
//! What rumqttc leaves to us, and this module does:
//! * **Resubscribe** every registered filter after every CONNACK (rumqttc never does).
//! * **Backoff**: capped exponential sleep between reconnect attempts (rumqttc retries in a spin).
//! * **Nothing lost on reconnect**: publishes not yet acknowledged when the link dropped are held
//!   by us and re-queued after the next CONNACK, even when the broker lost our session (rumqttc
//!   would silently drop them then).
//! * **Large packets**: the incoming limit is raised from rumqttc's 10 KiB, so an oversized request
//!   reaches the runtime and gets an error reply instead of tearing the connection down.
//! * A persistent session (session expiry; clean start only on the first connection) so a short
//!   outage keeps our subscriptions and queued messages at the broker, while a restarted process
//!   with a stable client id ([`BusConfig::client_id`], [`deployment_client_id`]) takes over and
//!   clears its predecessor's session instead of leaving an orphan that queues messages until it
//!   expires.
//! * Subscriptions complete only when the broker's SUBACK arrives, so a caller that subscribes and
//!   then publishes a request cannot miss the reply.
//! * **Each message once per subscriber**, even when filters overlap. The broker sends one copy
//!   of a message per matching subscription of the connection (`a/#` and `a/b/+` both match
//!   `a/b/c`); matching every copy against every local filter would hand each subscriber one
//!   copy per overlapping filter. Instead every distinct filter gets an MQTT 5 subscription
//!   identifier, and a delivered copy goes only to the subscribers of the identifiers it
//!   carries. Local subscribers of the same filter share its identifier (a second SUBSCRIBE to
//!   the same filter replaces the broker's subscription, identifier included), and the
//!   identifiers are kept when filters are restored after a reconnect. With a broker that
//!   announces no identifier support the bus falls back to matching topics.
//! * **A clean goodbye**: [`Bus::disconnect`] writes the DISCONNECT even when a subscriber has
//!   stopped reading, then reads until the broker closes, so the broker never mistakes a clean
//!   exit for a lost connection (and never publishes the last will of a client that said
//!   goodbye).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{
    Packet, PublishProperties, SubscribeProperties, SubscribeReasonCode,
};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions, Request};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::topics::filter_matches;

/// How to reach the broker and how to behave on the link.
#[derive(Clone)]
pub struct BusConfig {
    pub host: String,
    pub port: u16,
    /// Without [`BusConfig::client_id`], the client id is `<prefix>-<8 random hex>`, so two
    /// instances never evict each other.
    pub client_id_prefix: String,
    /// The exact client id, stable across restarts (see [`deployment_client_id`]): the broker
    /// keeps one session per id, so a restart takes over its own session. Two live clients must
    /// never share one (the broker disconnects the older).
    pub client_id: Option<String>,
    pub keep_alive: Duration,
    pub credentials: Option<(String, String)>,
    /// Largest packet we accept from the broker (also announced to it).
    pub max_packet_size: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Seconds the broker keeps our session while we are away.
    pub session_expiry: u32,
    /// Capacity of the request channel into the event loop.
    pub channel_capacity: usize,
    /// How long `publish` and `subscribe` wait before giving up.
    pub op_timeout: Duration,
}

impl std::fmt::Debug for BusConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id_prefix", &self.client_id_prefix)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|(u, _)| (u, "<redacted>")),
            )
            .finish_non_exhaustive()
    }
}

impl BusConfig {
    pub fn new(host: impl Into<String>, port: u16, client_id_prefix: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port,
            client_id_prefix: client_id_prefix.into(),
            client_id: None,
            keep_alive: Duration::from_secs(30),
            credentials: None,
            max_packet_size: 4 << 20,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            session_expiry: 300,
            channel_capacity: 1024,
            op_timeout: Duration::from_secs(10),
        }
    }

    /// Parse `mqtt://[user:pass@]host[:port]` or `tcp://…` or `host[:port]`.
    pub fn from_url(url: &str, client_id_prefix: &str) -> Result<Self, BusError> {
        let bad = |why: &str| BusError::Config(format!("MQTT URL {url:?}: {why}"));
        let rest = url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
            .unwrap_or(url);
        let rest = rest.trim_end_matches('/');
        let (creds, hostport) = match rest.rsplit_once('@') {
            Some((c, h)) => {
                let (u, p) = c.split_once(':').unwrap_or((c, ""));
                (Some((u.to_owned(), p.to_owned())), h)
            }
            None => (None, rest),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>().map_err(|_| bad("port is not a number"))?,
            ),
            None => (hostport, 1883),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let mut cfg = Self::new(host, port, client_id_prefix);
        cfg.credentials = creds;
        Ok(cfg)
    }
}

/// The stable client id of component `name` (a coordinator, or one of its extra connections)
/// in the deployment with topic root `root`: `<root>-<name>`, or `<root>-<name>-<instance>` for
/// one of several replicas. Deployments differ by root, so their ids never collide; `/` in a
/// root becomes `.` (brokers refuse ACL patterns for ids with `/`).
pub fn deployment_client_id(root: &str, name: &str, instance: Option<&str>) -> String {
    let root = root.replace('/', ".");
    match instance {
        Some(i) if !i.is_empty() => format!("{root}-{name}-{i}"),
        _ => format!("{root}-{name}"),
    }
}

/// A message the broker will publish if we vanish.
#[derive(Clone, Debug)]
pub struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// A message delivered to a subscription.
#[derive(Clone, Debug)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
    /// MQTT 5 response topic, when the sender set one.
    pub response_topic: Option<String>,
    /// MQTT 5 correlation data, when the sender set it.
    pub correlation_data: Option<Bytes>,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bus configuration: {0}")]
    Config(String),
    #[error("the bus has shut down")]
    Closed,
    #[error("timed out after {0:?} waiting for the broker")]
    Timeout(Duration),
    #[error("broker refused subscription to {filter:?}: {reason}")]
    SubscribeRefused { filter: String, reason: String },
    #[error("invalid topic or filter {0:?}")]
    InvalidTopic(String),
}

/// The largest MQTT 5 subscription identifier (a variable byte integer).
const MAX_SUBSCRIPTION_ID: usize = 268_435_455;

/// One local subscriber of one filter.
struct Subscription {
    filter: String,
    /// The subscription identifier of `filter`.
    id: usize,
    tx: mpsc::Sender<Message>,
}

/// The local subscribers and the broker subscriptions behind them.
struct Registry {
    subs: Vec<Subscription>,
    /// One broker subscription per distinct filter, with its identifier.
    ids: HashMap<String, usize>,
    /// The last identifier handed out.
    last_id: usize,
}

impl Registry {
    /// Forget subscribers whose receiver is gone, and filters nobody listens to any more.
    fn prune(&mut self) {
        self.subs.retain(|s| !s.tx.is_closed());
        let subs = &self.subs;
        self.ids
            .retain(|_, id| subs.iter().any(|s| s.id == *id && !s.tx.is_closed()));
    }

    /// The identifier of `filter`: its current one, or a new one not in use.
    fn id_for(&mut self, filter: &str) -> usize {
        if let Some(id) = self.ids.get(filter) {
            return *id;
        }
        loop {
            self.last_id = self.last_id % MAX_SUBSCRIPTION_ID + 1;
            let candidate = self.last_id;
            if !self.ids.values().any(|id| *id == candidate) {
                self.ids.insert(filter.to_owned(), candidate);
                return candidate;
            }
        }
    }
}

type AckWaiter = Option<oneshot::Sender<Result<(), String>>>;

#[derive(Default)]
struct SubAcks {
    /// Waiters in the order their SUBSCRIBE requests entered the channel.
    queued: VecDeque<AckWaiter>,
    by_pkid: HashMap<u16, AckWaiter>,
}

struct Shared {
    client_id: String,
    registry: Mutex<Registry>,
    acks: Mutex<SubAcks>,
    /// Held while a waiter is queued and its SUBSCRIBE enters the channel, so both orders agree.
    sub_order: tokio::sync::Mutex<()>,
    /// Whether the broker accepts subscription identifiers (it says so in its CONNACK).
    sub_ids: AtomicBool,
    connected: watch::Sender<bool>,
    op_timeout: Duration,
    /// Cancelled when [`Bus::disconnect`] starts: deliveries stop waiting for full
    /// subscriptions, so the event loop reaches the DISCONNECT.
    closing: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here leaves the data consistent, so poisoning carries no meaning.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Handle on the bus. Cheap to clone; all clones share one connection.
#[derive(Clone)]
pub struct Bus {
    client: AsyncClient,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("client_id", &self.shared.client_id)
            .finish_non_exhaustive()
    }
}

/// The running event-loop task; await it after cancelling the token to be sure the
/// connection is closed.
pub type BusTask = tokio::task::JoinHandle<()>;

impl Bus {
    /// Start the bus. Returns at once; the connection is made (and remade) in the background.
    /// Use [`Bus::wait_connected`] to wait for the broker.
    pub fn start(
        config: BusConfig,
        will: Option<Will>,
        shutdown: CancellationToken,
    ) -> (Bus, BusTask) {
        let client_id = config.client_id.clone().unwrap_or_else(|| {
            let suffix = uuid::Uuid::new_v4().simple().to_string();
            format!("{}-{}", config.client_id_prefix, &suffix[..8])
        });
        let mut opts = MqttOptions::new(client_id.clone(), config.host.clone(), config.port);
        opts.set_keep_alive(config.keep_alive.max(Duration::from_secs(5)));
        // A new process starts clean: a session left by its predecessor under the same id is
        // discarded (its queued messages are stale and its subscription identifiers are not
        // ours). Reconnects resume the session (set after the first CONNACK).
        opts.set_clean_start(true);
        opts.set_session_expiry_interval(Some(config.session_expiry));
        opts.set_max_packet_size(Some(config.max_packet_size));
        opts.set_connection_timeout(5);
        // Requests and replies are small: without NODELAY, Nagle and delayed ACKs add ~40 ms.
        let mut net = opts.network_options();
        net.set_tcp_nodelay(true);
        opts.set_network_options(net);
        if let Some((u, p)) = &config.credentials {
            opts.set_credentials(u.clone(), p.clone());
        }
        if let Some(w) = will {
            opts.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
                w.topic,
                w.payload,
                QoS::AtLeastOnce,
                w.retain,
                None,
            ));
        }
        let (client, eventloop) = AsyncClient::new(opts, config.channel_capacity);
        let (connected, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            client_id,
            registry: Mutex::new(Registry {
                subs: Vec::new(),
                ids: HashMap::new(),
                last_id: 0,
            }),
            acks: Mutex::new(SubAcks::default()),
            sub_order: tokio::sync::Mutex::new(()),
            sub_ids: AtomicBool::new(true),
            connected,
            op_timeout: config.op_timeout,
            closing: CancellationToken::new(),
        });
        let bus = Bus { client, shared };
        let task = tokio::spawn(run_event_loop(bus.clone(), eventloop, config, shutdown));
        (bus, task)
    }

    pub fn client_id(&self) -> &str {
        &self.shared.client_id
    }

    pub fn is_connected(&self) -> bool {
        *self.shared.connected.borrow()
    }

    /// A receiver that changes whenever the link goes up or down.
    pub fn connection_watch(&self) -> watch::Receiver<bool> {
        self.shared.connected.subscribe()
    }

    /// Wait until connected to the broker, at most `timeout`.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), BusError> {
        let mut rx = self.shared.connected.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|c| *c))
            .await
            .map_err(|_| BusError::Timeout(timeout))?
            .map(|_| ())
            .map_err(|_| BusError::Closed)
    }

    /// Subscribe to `filter` (QoS 1). Messages arrive on the returned receiver; dropping it ends
    /// the subscription. Returns once the broker has acknowledged it.
    pub async fn subscribe(
        &self,
        filter: &str,
        capacity: usize,
    ) -> Result<mpsc::Receiver<Message>, BusError> {
        self.subscribe_many(&[filter], capacity).await
    }

    /// Subscribe to several filters with one receiver. A message matching two of them arrives
    /// once per matching filter, so give filters that do not overlap. Returns once the broker
    /// has acknowledged all of them; on an error none stays registered unless the link dropped
    /// (then they are restored on reconnect, as for [`Bus::subscribe`]).
    pub async fn subscribe_many<S: AsRef<str>>(
        &self,
        filters: &[S],
        capacity: usize,
    ) -> Result<mpsc::Receiver<Message>, BusError> {
        if filters.is_empty() {
            return Err(BusError::InvalidTopic(String::new()));
        }
        if let Some(bad) = filters
            .iter()
            .map(AsRef::as_ref)
            .find(|f| f.is_empty() || f.contains('\0'))
        {
            return Err(BusError::InvalidTopic(bad.to_owned()));
        }
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let ids: Vec<(String, usize)> = {
            let mut reg = lock(&self.shared.registry);
            reg.prune();
            filters
                .iter()
                .map(|f| {
                    let filter = f.as_ref().to_owned();
                    let id = reg.id_for(&filter);
                    reg.subs.push(Subscription {
                        filter: filter.clone(),
                        id,
                        tx: tx.clone(),
                    });
                    (filter, id)
                })
                .collect()
        };
        for (filter, id) in &ids {
            let outcome = self.send_subscribe(filter, *id).await;
            if let Err(e) = outcome {
                if !matches!(e, BusError::Timeout(_)) {
                    // Refused or never sent: nothing of this call stays registered.
                    drop(rx);
                    lock(&self.shared.registry).prune();
                }
                return Err(e);
            }
        }
        Ok(rx)
    }

    /// Queue a SUBSCRIBE for `filter` with identifier `id`; `waiter` learns its SUBACK.
    async fn request_subscribe(
        &self,
        filter: &str,
        id: usize,
        waiter: AckWaiter,
    ) -> Result<(), BusError> {
        let _order = self.shared.sub_order.lock().await;
        lock(&self.shared.acks).queued.push_back(waiter);
        let sent = if self.shared.sub_ids.load(Ordering::Relaxed) {
            let props = SubscribeProperties {
                id: Some(id),
                user_properties: Vec::new(),
            };
            self.client
                .subscribe_with_properties(filter, QoS::AtLeastOnce, props)
                .await
        } else {
            self.client.subscribe(filter, QoS::AtLeastOnce).await
        };
        if sent.is_err() {
            // Never entered the channel, so no SUBSCRIBE will claim the waiter: take it back
            // (it is the last one, as we hold the order lock).
            lock(&self.shared.acks).queued.pop_back();
            return Err(BusError::Closed);
        }
        Ok(())
    }

    async fn send_subscribe(&self, filter: &str, id: usize) -> Result<(), BusError> {
        let (tx, rx) = oneshot::channel();
        self.request_subscribe(filter, id, Some(tx)).await?;
        match tokio::time::timeout(self.shared.op_timeout, rx).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(reason))) => Err(BusError::SubscribeRefused {
                filter: filter.to_owned(),
                reason,
            }),
            // The link dropped before the SUBACK; the filter stays registered and is
            // restored on reconnect.
            Ok(Err(_)) => Err(BusError::Timeout(self.shared.op_timeout)),
            Err(_) => Err(BusError::Timeout(self.shared.op_timeout)),
        }
    }

    /// Publish at QoS 1.
    pub async fn publish(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        retain: bool,
    ) -> Result<(), BusError> {
        self.publish_props(topic, payload.into(), retain, None)
            .await
    }

    /// Publish a reply, echoing MQTT 5 correlation data when the request carried some.
    pub async fn publish_reply(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        correlation_data: Option<Bytes>,
    ) -> Result<(), BusError> {
        let props = correlation_data.map(|c| PublishProperties {
            correlation_data: Some(c),
            ..Default::default()
        });
        self.publish_props(topic, payload.into(), false, props)
            .await
    }

    /// Publish a request that asks for its reply on `response_topic` (MQTT 5 request/response).
    pub async fn publish_request(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        response_topic: &str,
        correlation_data: Option<Bytes>,
    ) -> Result<(), BusError> {
        let props = PublishProperties {
            response_topic: Some(response_topic.to_owned()),
            correlation_data,
            ..Default::default()
        };
        self.publish_props(topic, payload.into(), false, Some(props))
            .await
    }

    async fn publish_props(
        &self,
        topic: &str,
        payload: Bytes,
        retain: bool,
        props: Option<PublishProperties>,
    ) -> Result<(), BusError> {
        if topic.is_empty() || topic.contains(['+', '#', '\0']) {
            return Err(BusError::InvalidTopic(topic.to_owned()));
        }
        let fut = async {
            match props {
                Some(p) => {
                    self.client
                        .publish_with_properties(topic, QoS::AtLeastOnce, retain, payload, p)
                        .await
                }
                None => {
                    self.client
                        .publish(topic, QoS::AtLeastOnce, retain, payload)
                        .await
                }
            }
        };
        match tokio::time::timeout(self.shared.op_timeout, fut).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(BusError::Closed),
            Err(_) => Err(BusError::Timeout(self.shared.op_timeout)),
        }
    }

    /// Disconnect cleanly: everything queued before this call is written first, then the
    /// DISCONNECT, so the broker does not publish the last will. Waits (at most 2 s) until the
    /// event loop has sent it and stopped.
    ///
    /// A subscriber that has stopped reading (its queue full) cannot hold the goodbye back:
    /// from this call on, messages that cannot be queued at once are dropped. Without that,
    /// the event loop would wait on the full queue, the DISCONNECT would never be written, and
    /// the broker would publish the last will of a client that left cleanly.
    pub async fn disconnect(&self) {
        self.shared.closing.cancel();
        let mut link = self.shared.connected.subscribe();
        if !*link.borrow_and_update() {
            return;
        }
        let wait = async {
            self.client.disconnect().await.ok()?;
            link.wait_for(|c| !*c).await.ok()
        };
        if tokio::time::timeout(Duration::from_secs(2), wait)
            .await
            .is_err()
        {
            warn!(client_id = %self.shared.client_id, "clean disconnect did not complete in 2 s");
        }
    }

    /// The filters that still have subscribers, with their identifiers.
    fn registered_filters(&self) -> Vec<(String, usize)> {
        let mut reg = lock(&self.shared.registry);
        reg.prune();
        let mut filters: Vec<(String, usize)> =
            reg.ids.iter().map(|(f, id)| (f.clone(), *id)).collect();
        filters.sort_by_key(|(_, id)| *id);
        filters
    }

    /// Hand `msg` to each subscriber once: those of the subscription identifiers the broker
    /// sent it for, or (without identifiers) those whose filter matches its topic.
    async fn dispatch(&self, msg: Message, ids: &[usize]) {
        let targets: Vec<mpsc::Sender<Message>> = {
            let mut reg = lock(&self.shared.registry);
            reg.subs.retain(|s| !s.tx.is_closed());
            let mut targets: Vec<mpsc::Sender<Message>> = Vec::new();
            for s in reg.subs.iter().filter(|s| {
                if ids.is_empty() {
                    filter_matches(&s.filter, &msg.topic)
                } else {
                    ids.contains(&s.id)
                }
            }) {
                if !targets.iter().any(|t| t.same_channel(&s.tx)) {
                    targets.push(s.tx.clone());
                }
            }
            targets
        };
        if targets.is_empty() {
            debug!(topic = %msg.topic, "message matched no subscription");
        }
        for tx in targets {
            // Backpressure: a slow consumer slows the reading of the socket rather than
            // losing messages, until the bus is closing.
            tokio::select! {
                biased;
                _ = tx.send(msg.clone()) => {}
                _ = self.shared.closing.cancelled() => {
                    debug!(topic = %msg.topic, "closing: message for a full subscription dropped");
                }
            }
        }
    }
}

/// How long to wait after a DISCONNECT for the broker to close the connection.
const DISCONNECT_DRAIN: Duration = Duration::from_secs(1);

fn publish_of(req: &Request) -> bool {
    matches!(req, Request::Publish(_))
}

async fn run_event_loop(
    bus: Bus,
    mut eventloop: EventLoop,
    config: BusConfig,
    shutdown: CancellationToken,
) {
    let mut backoff = config.backoff_initial;
    // Publishes carried across a reconnect (see module docs).
    let mut carried: VecDeque<Request> = VecDeque::new();
    let client_id = bus.shared.client_id.clone();
    loop {
        let event = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            ev = eventloop.poll() => ev,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                info!(client_id, host = %config.host, port = config.port, session_present = ack.session_present, "connected to MQTT broker");
                backoff = config.backoff_initial;
                eventloop.options.set_clean_start(false);
                let ids_available = ack
                    .properties
                    .as_ref()
                    .and_then(|p| p.subscription_identifiers_available)
                    != Some(0);
                if !ids_available && bus.shared.sub_ids.swap(false, Ordering::Relaxed) {
                    warn!(
                        client_id,
                        "broker does not support subscription identifiers; overlapping subscriptions may see duplicates"
                    );
                }
                // Re-queue what the last link did not get acknowledged.
                eventloop.pending.extend(carried.drain(..));
                // Waiters from the old link will never see their SUBACK.
                lock(&bus.shared.acks).by_pkid.clear();
                let filters = bus.registered_filters();
                let b = bus.clone();
                tokio::spawn(async move {
                    for (f, id) in filters {
                        match b.request_subscribe(&f, id, None).await {
                            Ok(()) => debug!(filter = %f, id, "resubscribed"),
                            Err(_) => return,
                        }
                    }
                });
                bus.shared.connected.send_replace(true);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let topic = String::from_utf8_lossy(&p.topic).into_owned();
                let (response_topic, correlation_data, ids) = match p.properties {
                    Some(props) => (
                        props.response_topic,
                        props.correlation_data,
                        props.subscription_identifiers,
                    ),
                    None => (None, None, Vec::new()),
                };
                bus.dispatch(
                    Message {
                        topic,
                        payload: p.payload,
                        retain: p.retain,
                        response_topic,
                        correlation_data,
                    },
                    &ids,
                )
                .await;
            }
            Ok(Event::Outgoing(Outgoing::Subscribe(pkid))) => {
                let mut acks = lock(&bus.shared.acks);
                let waiter = acks.queued.pop_front().flatten();
                acks.by_pkid.insert(pkid, waiter);
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let waiter = lock(&bus.shared.acks).by_pkid.remove(&ack.pkid).flatten();
                let refused = ack
                    .return_codes
                    .iter()
                    .find(|c| !matches!(c, SubscribeReasonCode::Success(_)));
                if let Some(code) = refused {
                    warn!(?code, "broker refused a subscription");
                }
                if let Some(w) = waiter {
                    let _ = w.send(match refused {
                        Some(code) => Err(format!("{code:?}")),
                        None => Ok(()),
                    });
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                // Read on until the broker closes its side. Closing ours now, with bytes still
                // unread (a PUBACK for the last publication, messages on their way), makes the
                // kernel send a reset, and a broker that sees the reset before it has read the
                // DISCONNECT (Mosquitto checks socket errors first) drops the connection as
                // lost: it publishes the last will and discards what preceded the DISCONNECT.
                debug!(
                    client_id,
                    "sent DISCONNECT; reading until the broker closes"
                );
                let drained = tokio::time::timeout(DISCONNECT_DRAIN, async {
                    while eventloop.poll().await.is_ok() {}
                })
                .await;
                if drained.is_err() {
                    debug!(
                        client_id,
                        "broker kept the connection open after DISCONNECT"
                    );
                }
                break;
            }
            Ok(Event::Incoming(Packet::Disconnect(d))) => {
                warn!(client_id, reason = ?d.reason_code, "broker sent DISCONNECT");
            }
            Ok(_) => {}
            Err(e) => {
                if bus.shared.connected.send_replace(false) {
                    warn!(client_id, error = %e, "lost MQTT broker; reconnecting with backoff");
                } else {
                    debug!(client_id, error = %e, retry_in = ?backoff, "MQTT broker still unreachable");
                }
                // SUBSCRIBEs in flight or drained from the channel are dropped (the filters are
                // restored after the next CONNACK): their waiters will never see a SUBACK. The
                // drained ones are the oldest queued waiters, as the queue follows the channel.
                let dropped = eventloop
                    .pending
                    .iter()
                    .filter(|r| matches!(r, Request::Subscribe(_)))
                    .count();
                {
                    let mut acks = lock(&bus.shared.acks);
                    acks.by_pkid.clear();
                    for _ in 0..dropped {
                        acks.queued.pop_front();
                    }
                }
                // Keep unacknowledged publishes ourselves: rumqttc drops them if the
                // broker forgot our session.
                carried.extend(eventloop.pending.drain(..).filter(publish_of));
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(config.backoff_max);
            }
        }
    }
    bus.shared.connected.send_replace(false);
    if !carried.is_empty() {
        warn!(
            client_id,
            dropped = carried.len(),
            "bus stopped with publishes never delivered"
        );
    }
    debug!(client_id, "bus event loop stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_client_ids_are_stable_and_apart() {
        assert_eq!(
            deployment_client_id("bst-1", "security", None),
            "bst-1-security"
        );
        assert_eq!(
            deployment_client_id("bst-1", "security", Some("b")),
            "bst-1-security-b"
        );
        assert_eq!(
            deployment_client_id("obs/north", "telescope", Some("")),
            "obs.north-telescope"
        );
        assert_ne!(
            deployment_client_id("bst-1", "security", None),
            deployment_client_id("bst-2", "security", None)
        );
    }

    #[test]
    fn urls_parse() {
        let c = BusConfig::from_url("mqtt://u:p@broker:1999", "x").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("broker", 1999));
        assert_eq!(c.credentials, Some(("u".into(), "p".into())));
        let c = BusConfig::from_url("127.0.0.1", "x").unwrap();
        assert_eq!(c.port, 1883);
        assert!(BusConfig::from_url("tcp://:1", "x").is_err());
        assert!(BusConfig::from_url("tcp://h:port", "x").is_err());
        assert!(!format!("{c:?}").contains("secret"));
    }
}
