//! [`AscomEngine`]: discovery, registry, pools, instrumented calls and the health cycle.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use bigskies_alpaca::AlpacaError;
use bigskies_alpaca::client::{AlpacaClient, AlpacaClientConfig, ClientError, RemoteDevice};
use bigskies_alpaca::devices::{
    RemoteCamera, RemoteDome, RemoteFilterWheel, RemoteFocuser, RemoteRotator, RemoteTelescope,
};
use bigskies_alpaca::discovery::{DiscoveryOptions, discover};
use bigskies_alpaca::types::{DeviceType, Verb};
use bigskies_core::health::HealthReport;
use chrono::Utc;
use futures::StreamExt as _;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::registry::{DeviceRecord, DeviceStats, LinkState, Role};
use crate::store::Store;

/// Engine settings.
#[derive(Clone, Debug)]
pub struct AscomConfig {
    /// Timeout of every ordinary device call.
    pub call_timeout: Duration,
    /// Timeout of image downloads.
    pub image_timeout: Duration,
    pub health_interval: Duration,
    /// Consecutive failed health checks before a device is marked lost.
    pub failure_threshold: u32,
    /// How many devices are checked at once in a health cycle.
    pub health_concurrency: usize,
    /// UDP discovery (broadcast on the LAN); `None` to rely on `servers` only.
    pub discovery: Option<DiscoveryOptions>,
    /// Alpaca servers by address (`http://host:port`), for routed networks and real hardware.
    pub servers: Vec<String>,
    /// Alpaca ClientID this engine sends.
    pub client_id: u32,
}

impl Default for AscomConfig {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(5),
            image_timeout: Duration::from_secs(120),
            health_interval: Duration::from_secs(30),
            failure_threshold: 3,
            health_concurrency: 64,
            discovery: Some(DiscoveryOptions::default()),
            servers: Vec::new(),
            client_id: 4242,
        }
    }
}

/// Something that happened to a device.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DeviceEvent {
    Discovered {
        unique_id: String,
        server_url: String,
    },
    Moved {
        unique_id: String,
        from: String,
        to: String,
    },
    /// A known UniqueID answered at another address. Nothing moves until an administrator
    /// confirms with [`AscomEngine::move_device`].
    MoveProposed {
        unique_id: String,
        from: String,
        to: String,
    },
    Connected {
        unique_id: String,
    },
    Disconnected {
        unique_id: String,
    },
    Lost {
        unique_id: String,
        reason: String,
    },
    Recovered {
        unique_id: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("unknown device {0:?}")]
    UnknownDevice(String),
    #[error("device {unique_id} is a {actual}, not a {expected}")]
    WrongType {
        unique_id: String,
        expected: DeviceType,
        actual: DeviceType,
    },
    #[error("telescope {telescope} has no device in role {role}")]
    NoRole { telescope: Uuid, role: &'static str },
    #[error("device {0} is not connected")]
    NotConnected(String),
    #[error("device error: {0}")]
    Device(#[from] AlpacaError),
    #[error("device {unique_id} unreachable: {reason}")]
    Unreachable { unique_id: String, reason: String },
    #[error("cannot reach Alpaca server {url}: {reason}")]
    Server { url: String, reason: String },
    #[error("discovery: {0}")]
    Discovery(#[from] std::io::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("device {unique_id} not moved: {reason}")]
    MoveRefused { unique_id: String, reason: String },
}

/// What a device says about itself: compared before a confirmed move is trusted.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    pub name: String,
    pub description: String,
    pub driver_info: String,
}

/// A known device seen at another address than its registered one (discovery, an explicit
/// server, a LAN host answering UDP discovery). Recorded, never acted on by itself.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PendingMove {
    pub unique_id: String,
    pub from: String,
    pub to: String,
    pub seen: chrono::DateTime<Utc>,
}

/// What a call gets to talk to.
#[derive(Clone, Debug)]
pub struct Target {
    pub client: AlpacaClient,
    pub device_type: DeviceType,
    pub number: u32,
}

impl Target {
    pub fn remote(&self) -> RemoteDevice {
        self.client.device(self.device_type, self.number)
    }
    pub fn telescope(&self) -> RemoteTelescope {
        self.client.telescope(self.number)
    }
    pub fn camera(&self) -> RemoteCamera {
        self.client.camera(self.number)
    }
    pub fn dome(&self) -> RemoteDome {
        self.client.dome(self.number)
    }
    pub fn focuser(&self) -> RemoteFocuser {
        self.client.focuser(self.number)
    }
    pub fn filter_wheel(&self) -> RemoteFilterWheel {
        self.client.filter_wheel(self.number)
    }
    pub fn rotator(&self) -> RemoteRotator {
        self.client.rotator(self.number)
    }
}

struct Entry {
    record: DeviceRecord,
    client: AlpacaClient,
    /// The user asked for a connection: keep it up through failures.
    wanted: bool,
    /// Name, description and driver info read when the device was registered (best effort).
    identity: Option<Identity>,
}

struct Inner {
    config: AscomConfig,
    devices: RwLock<HashMap<String, Entry>>,
    clients: RwLock<HashMap<String, AlpacaClient>>,
    pools: RwLock<BTreeMap<Uuid, BTreeMap<Role, String>>>,
    /// Known devices seen elsewhere, by UniqueID (the latest address wins).
    moves: RwLock<BTreeMap<String, PendingMove>>,
    store: Option<Store>,
    events: broadcast::Sender<DeviceEvent>,
}

/// Cheap-`Clone` handle on the engine.
#[derive(Clone)]
pub struct AscomEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AscomEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AscomEngine")
            .field("devices", &self.read().len())
            .finish_non_exhaustive()
    }
}

/// Name, description and driver info of a device, or `None` when any of them cannot be read.
async fn read_identity(
    client: &AlpacaClient,
    device_type: DeviceType,
    number: u32,
) -> Option<Identity> {
    let dev = client.device(device_type, number);
    let (name, description, driver_info) = tokio::try_join!(
        dev.call::<String>(Verb::Get, "name", vec![]),
        dev.call::<String>(Verb::Get, "description", vec![]),
        dev.call::<String>(Verb::Get, "driverinfo", vec![]),
    )
    .ok()?;
    Some(Identity {
        name,
        description,
        driver_info,
    })
}

/// Outcome of one health cycle.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct HealthCycle {
    pub checked: usize,
    pub failed: usize,
    pub lost: Vec<String>,
    pub recovered: Vec<String>,
    pub elapsed_ms: f64,
}

impl AscomEngine {
    /// Build the engine; with a store, the registry and pools are loaded from PostgreSQL.
    pub async fn build(config: AscomConfig, store: Option<Store>) -> Result<Self, EngineError> {
        let (events, _) = broadcast::channel(256);
        let engine = Self {
            inner: Arc::new(Inner {
                config,
                devices: RwLock::new(HashMap::new()),
                clients: RwLock::new(HashMap::new()),
                pools: RwLock::new(BTreeMap::new()),
                moves: RwLock::new(BTreeMap::new()),
                store,
                events,
            }),
        };
        if let Some(store) = &engine.inner.store {
            let devices = store.load_devices().await?;
            let pools = store.load_pools().await?;
            let n = devices.len();
            for (mut d, keep) in devices {
                let client = engine.client_for(&d.server_url)?;
                // Wanted connected before the restart: lost until the health cycle finds it
                // connected, or connects it again.
                if keep {
                    d.state = LinkState::Lost;
                }
                engine.write().insert(
                    d.unique_id.clone(),
                    Entry {
                        record: d,
                        client,
                        wanted: keep,
                        identity: None,
                    },
                );
            }
            *engine
                .inner
                .pools
                .write()
                .unwrap_or_else(|p| p.into_inner()) = pools;
            info!(devices = n, "ASCOM registry loaded");
        }
        Ok(engine)
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, Entry>> {
        self.inner.devices.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, Entry>> {
        self.inner
            .devices
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, e: DeviceEvent) {
        let _ = self.inner.events.send(e);
    }

    pub fn config(&self) -> &AscomConfig {
        &self.inner.config
    }

    /// Device events (discovered, moved, connected, lost, recovered, ...).
    pub fn subscribe(&self) -> broadcast::Receiver<DeviceEvent> {
        self.inner.events.subscribe()
    }

    fn client_for(&self, base_url: &str) -> Result<AlpacaClient, EngineError> {
        let url = base_url.trim_end_matches('/').to_owned();
        if let Some(c) = self
            .inner
            .clients
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&url)
        {
            return Ok(c.clone());
        }
        let mut cfg = AlpacaClientConfig::new(url.clone());
        cfg.client_id = self.inner.config.client_id;
        cfg.timeout = self.inner.config.call_timeout;
        cfg.connect_timeout = self.inner.config.call_timeout.min(Duration::from_secs(3));
        cfg.image_timeout = self.inner.config.image_timeout;
        let client = AlpacaClient::with_config(cfg).map_err(|e| EngineError::Server {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        self.inner
            .clients
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(url, client.clone());
        Ok(client)
    }

    /// Ask one server for its devices and register them.
    pub async fn add_server(&self, base_url: &str) -> Result<Vec<DeviceRecord>, EngineError> {
        let client = self.client_for(base_url)?;
        let listed = client
            .configured_devices()
            .await
            .map_err(|e| EngineError::Server {
                url: base_url.to_owned(),
                reason: e.to_string(),
            })?;
        let mut out = Vec::new();
        for d in listed {
            let Some(device_type) = DeviceType::from_name(&d.device_type) else {
                debug!(server = base_url, device_type = %d.device_type, "ignoring device type the engine does not model");
                continue;
            };
            if d.unique_id.trim().is_empty() {
                warn!(server = base_url, name = %d.device_name, "device without UniqueID ignored");
                continue;
            }
            let (record, new) = self.register(
                DeviceRecord {
                    unique_id: d.unique_id,
                    device_type,
                    device_number: d.device_number,
                    name: d.device_name,
                    server_url: client.base_url().to_owned(),
                    state: LinkState::Disconnected,
                    stats: DeviceStats::default(),
                    last_seen: Utc::now(),
                },
                client.clone(),
            );
            if new {
                let identity = read_identity(&client, device_type, record.device_number).await;
                if let Some(e) = self.write().get_mut(&record.unique_id) {
                    e.identity = identity;
                }
            }
            if let Some(store) = &self.inner.store {
                store.upsert_device(&record).await?;
            }
            out.push(record);
        }
        Ok(out)
    }

    /// Insert a new record or refresh a known one at its own address. A known UniqueID at
    /// another address is not moved (anyone answering discovery could claim it): the address
    /// is recorded as a pending move and the registered record comes back unchanged. Returns
    /// the engine's record and whether it is new.
    fn register(&self, mut fresh: DeviceRecord, client: AlpacaClient) -> (DeviceRecord, bool) {
        let mut devices = self.write();
        match devices.get_mut(&fresh.unique_id) {
            Some(entry) if entry.record.server_url != fresh.server_url => {
                let proposal = PendingMove {
                    unique_id: fresh.unique_id.clone(),
                    from: entry.record.server_url.clone(),
                    to: fresh.server_url.clone(),
                    seen: fresh.last_seen,
                };
                let record = entry.record.clone();
                drop(devices);
                let first = self
                    .inner
                    .moves
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(proposal.unique_id.clone(), proposal.clone())
                    .is_none_or(|m| m.to != proposal.to);
                if first {
                    warn!(unique_id = %proposal.unique_id, from = %proposal.from, to = %proposal.to,
                        "a known device answered at another address; not moved until an administrator confirms");
                    self.emit(DeviceEvent::MoveProposed {
                        unique_id: proposal.unique_id,
                        from: proposal.from,
                        to: proposal.to,
                    });
                }
                (record, false)
            }
            Some(entry) => {
                entry.record.device_type = fresh.device_type;
                entry.record.device_number = fresh.device_number;
                entry.record.name = fresh.name;
                entry.record.last_seen = fresh.last_seen;
                (entry.record.clone(), false)
            }
            None => {
                fresh.state = LinkState::Disconnected;
                self.emit(DeviceEvent::Discovered {
                    unique_id: fresh.unique_id.clone(),
                    server_url: fresh.server_url.clone(),
                });
                devices.insert(
                    fresh.unique_id.clone(),
                    Entry {
                        record: fresh.clone(),
                        client,
                        wanted: false,
                        identity: None,
                    },
                );
                (fresh, true)
            }
        }
    }

    /// Known devices seen at another address, waiting for an administrator's confirmation.
    pub fn pending_moves(&self) -> Vec<PendingMove> {
        self.inner
            .moves
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Move a known device to `to`, on an administrator's confirmation. Refused while the
    /// device is connected (or kept connected), and unless the server at `to` lists the same
    /// UniqueID with the same type, number and name, and the device there gives the same
    /// description and driver info as the device did where it was registered (read again
    /// from the old address when the engine has no record of them). The caller checks
    /// sessions and assignments.
    pub async fn move_device(
        &self,
        unique_id: &str,
        to: &str,
    ) -> Result<DeviceRecord, EngineError> {
        let to = to.trim().trim_end_matches('/').to_owned();
        let refuse = |reason: String| EngineError::MoveRefused {
            unique_id: unique_id.to_owned(),
            reason,
        };
        let (record, known_identity, old_client) = {
            let devices = self.read();
            let e = devices
                .get(unique_id)
                .ok_or_else(|| EngineError::UnknownDevice(unique_id.to_owned()))?;
            (e.record.clone(), e.identity.clone(), e.client.clone())
        };
        if record.state != LinkState::Disconnected || self.is_wanted(unique_id) {
            return Err(refuse(
                "it is connected; disconnect it before moving it".into(),
            ));
        }
        if record.server_url == to {
            self.inner
                .moves
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(unique_id);
            return Ok(record);
        }
        let client = self.client_for(&to)?;
        let listed = client
            .configured_devices()
            .await
            .map_err(|e| EngineError::Server {
                url: to.clone(),
                reason: e.to_string(),
            })?;
        let there = listed
            .into_iter()
            .find(|d| d.unique_id == record.unique_id)
            .ok_or_else(|| refuse(format!("{to} does not list this UniqueID")))?;
        if DeviceType::from_name(&there.device_type) != Some(record.device_type)
            || there.device_number != record.device_number
        {
            return Err(refuse(format!(
                "{to} lists it as {} {}, not {} {}",
                there.device_type,
                there.device_number,
                record.device_type.name(),
                record.device_number
            )));
        }
        if there.device_name != record.name {
            return Err(refuse(format!(
                "{to} names it {:?}, not {:?}",
                there.device_name, record.name
            )));
        }
        let expected = match known_identity {
            Some(i) => Some(i),
            None => read_identity(&old_client, record.device_type, record.device_number).await,
        };
        let found = read_identity(&client, record.device_type, record.device_number)
            .await
            .ok_or_else(|| refuse(format!("{to} does not describe the device")))?;
        if let Some(expected) = &expected
            && *expected != found
        {
            return Err(refuse(format!(
                "the device at {to} describes itself differently (description {:?}, driver info {:?}; registered: {:?}, {:?})",
                found.description, found.driver_info, expected.description, expected.driver_info
            )));
        }
        if found.name != record.name {
            return Err(refuse(format!(
                "the device at {to} is named {:?}",
                found.name
            )));
        }
        let moved = {
            let mut devices = self.write();
            let e = devices
                .get_mut(unique_id)
                .ok_or_else(|| EngineError::UnknownDevice(unique_id.to_owned()))?;
            if e.record.state != LinkState::Disconnected || e.wanted {
                return Err(refuse("it was connected meanwhile".into()));
            }
            e.record.server_url = client.base_url().to_owned();
            e.record.last_seen = Utc::now();
            e.client = client;
            e.identity = Some(found);
            e.record.clone()
        };
        self.inner
            .moves
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(unique_id);
        if let Some(store) = &self.inner.store {
            store.upsert_device(&moved).await?;
        }
        info!(unique_id, from = %record.server_url, to = %moved.server_url, "device moved on confirmation");
        self.emit(DeviceEvent::Moved {
            unique_id: unique_id.to_owned(),
            from: record.server_url,
            to: moved.server_url.clone(),
        });
        Ok(moved)
    }

    fn is_wanted(&self, unique_id: &str) -> bool {
        self.read().get(unique_id).is_some_and(|e| e.wanted)
    }

    /// Discover by UDP (when configured) and by the configured addresses; register everything.
    /// Servers that do not answer are skipped and logged; the rest still register.
    pub async fn discover(&self) -> Result<Vec<DeviceRecord>, EngineError> {
        let mut urls: Vec<String> = self
            .inner
            .config
            .servers
            .iter()
            .map(|s| s.trim_end_matches('/').to_owned())
            .collect();
        if let Some(opts) = &self.inner.config.discovery {
            for s in discover(opts).await? {
                urls.push(s.base_url());
            }
        }
        urls.sort();
        urls.dedup();
        let mut out = Vec::new();
        for url in urls {
            match self.add_server(&url).await {
                Ok(mut found) => out.append(&mut found),
                Err(e) => {
                    warn!(server = %url, error = %e, "Alpaca server did not list its devices")
                }
            }
        }
        Ok(out)
    }

    pub fn devices(&self) -> Vec<DeviceRecord> {
        let mut v: Vec<DeviceRecord> = self.read().values().map(|e| e.record.clone()).collect();
        v.sort_by(|a, b| a.unique_id.cmp(&b.unique_id));
        v
    }

    pub fn device(&self, unique_id: &str) -> Option<DeviceRecord> {
        self.read().get(unique_id).map(|e| e.record.clone())
    }

    /// Find a device by UniqueID, or by the Go-style id `<server_url>-<DeviceType>-<n>`.
    pub fn resolve(&self, id: &str) -> Option<String> {
        let devices = self.read();
        if devices.contains_key(id) {
            return Some(id.to_owned());
        }
        devices
            .values()
            .find(|e| {
                format!(
                    "{}-{}-{}",
                    e.record.server_url,
                    e.record.device_type.name(),
                    e.record.device_number
                ) == id
            })
            .map(|e| e.record.unique_id.clone())
    }

    fn target(&self, unique_id: &str) -> Result<Target, EngineError> {
        let devices = self.read();
        let e = devices
            .get(unique_id)
            .ok_or_else(|| EngineError::UnknownDevice(unique_id.to_owned()))?;
        Ok(Target {
            client: e.client.clone(),
            device_type: e.record.device_type,
            number: e.record.device_number,
        })
    }

    fn record_call(&self, unique_id: &str, latency: Duration, error: Option<&ClientError>) {
        if let Some(e) = self.write().get_mut(unique_id) {
            e.record.stats.record(latency, error.map(|e| e.to_string()));
        }
    }

    /// Run `f` against the device with the engine's timeout, counting latency and errors.
    /// ASCOM errors come back as [`EngineError::Device`]; transport failures as `Unreachable`.
    pub async fn call<T, F, Fut>(&self, unique_id: &str, f: F) -> Result<T, EngineError>
    where
        F: FnOnce(Target) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let target = self.target(unique_id)?;
        let started = Instant::now();
        let outcome = match tokio::time::timeout(self.inner.config.call_timeout, f(target)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout),
        };
        self.record_call(unique_id, started.elapsed(), outcome.as_ref().err());
        outcome.map_err(|e| match e {
            ClientError::Ascom(a) => EngineError::Device(a),
            other => EngineError::Unreachable {
                unique_id: unique_id.to_owned(),
                reason: other.to_string(),
            },
        })
    }

    /// Run `f` only if the device is connected.
    pub async fn call_connected<T, F, Fut>(&self, unique_id: &str, f: F) -> Result<T, EngineError>
    where
        F: FnOnce(Target) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        match self.device(unique_id) {
            None => Err(EngineError::UnknownDevice(unique_id.to_owned())),
            Some(d) if d.state != LinkState::Connected => {
                Err(EngineError::NotConnected(unique_id.to_owned()))
            }
            Some(_) => self.call(unique_id, f).await,
        }
    }

    fn set_state(
        &self,
        unique_id: &str,
        state: LinkState,
        wanted: Option<bool>,
    ) -> Option<LinkState> {
        let mut devices = self.write();
        let e = devices.get_mut(unique_id)?;
        let before = e.record.state;
        e.record.state = state;
        if let Some(w) = wanted {
            e.wanted = w;
        }
        if state == LinkState::Connected {
            e.record.stats.consecutive_failures = 0;
        }
        Some(before)
    }

    /// Connect (the synchronous `Connected = true`, which every interface version has) and
    /// confirm by reading `Connected` back. From now on the engine keeps the device connected.
    pub async fn connect(&self, unique_id: &str) -> Result<(), EngineError> {
        self.call(unique_id, |t| async move {
            let dev = t.remote();
            dev.call::<()>(
                Verb::Put,
                "connected",
                vec![("Connected", "true".to_owned())],
            )
            .await?;
            Ok(())
        })
        .await?;
        let connected: bool = self
            .call(unique_id, |t| async move {
                t.remote().call(Verb::Get, "connected", vec![]).await
            })
            .await?;
        if !connected {
            return Err(EngineError::Device(AlpacaError::unspecified(
                "device reports Connected = false after connecting",
            )));
        }
        self.set_state(unique_id, LinkState::Connected, Some(true));
        if let Some(store) = &self.inner.store {
            store.mark_connected(unique_id).await?;
        }
        self.emit(DeviceEvent::Connected {
            unique_id: unique_id.to_owned(),
        });
        Ok(())
    }

    /// Disconnect and stop keeping the device connected.
    pub async fn disconnect(&self, unique_id: &str) -> Result<(), EngineError> {
        self.set_state(unique_id, LinkState::Disconnected, Some(false))
            .ok_or_else(|| EngineError::UnknownDevice(unique_id.to_owned()))?;
        if let Some(store) = &self.inner.store {
            store.mark_disconnected(unique_id).await?;
        }
        let result = self
            .call(unique_id, |t| async move {
                t.remote()
                    .call::<()>(
                        Verb::Put,
                        "connected",
                        vec![("Connected", "false".to_owned())],
                    )
                    .await
            })
            .await;
        self.emit(DeviceEvent::Disconnected {
            unique_id: unique_id.to_owned(),
        });
        result
    }

    /// Put a device into a telescope's role (the device type must fit the role).
    pub async fn assign(
        &self,
        telescope: Uuid,
        role: Role,
        unique_id: &str,
    ) -> Result<(), EngineError> {
        let d = self
            .device(unique_id)
            .ok_or_else(|| EngineError::UnknownDevice(unique_id.to_owned()))?;
        if d.device_type != role.device_type() {
            return Err(EngineError::WrongType {
                unique_id: unique_id.to_owned(),
                expected: role.device_type(),
                actual: d.device_type,
            });
        }
        if let Some(store) = &self.inner.store {
            store.assign(telescope, role, unique_id).await?;
        }
        self.inner
            .pools
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(telescope)
            .or_default()
            .insert(role, unique_id.to_owned());
        Ok(())
    }

    pub async fn unassign(&self, telescope: Uuid, role: Role) -> Result<bool, EngineError> {
        if let Some(store) = &self.inner.store {
            store.unassign(telescope, role).await?;
        }
        let mut pools = self.inner.pools.write().unwrap_or_else(|p| p.into_inner());
        Ok(pools
            .get_mut(&telescope)
            .and_then(|p| p.remove(&role))
            .is_some())
    }

    /// A telescope's pool: role → device record.
    pub fn pool(&self, telescope: Uuid) -> BTreeMap<Role, DeviceRecord> {
        let ids = self
            .inner
            .pools
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&telescope)
            .cloned()
            .unwrap_or_default();
        ids.into_iter()
            .filter_map(|(role, id)| self.device(&id).map(|d| (role, d)))
            .collect()
    }

    /// The UniqueID of the device in `role` of `telescope`.
    pub fn in_role(&self, telescope: Uuid, role: Role) -> Result<String, EngineError> {
        self.inner
            .pools
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&telescope)
            .and_then(|p| p.get(&role).cloned())
            .ok_or(EngineError::NoRole {
                telescope,
                role: role.as_str(),
            })
    }

    /// One health cycle over every device the user wants connected: read `Connected` from each
    /// (concurrently, each bounded by the call timeout). Failures count; at the threshold a
    /// device is lost. A lost device that answers is reconnected.
    pub async fn health_cycle(&self) -> HealthCycle {
        let started = Instant::now();
        let wanted: Vec<(String, LinkState)> = self
            .read()
            .values()
            .filter(|e| e.wanted)
            .map(|e| (e.record.unique_id.clone(), e.record.state))
            .collect();
        let results: Vec<(String, LinkState, Result<bool, EngineError>)> =
            futures::stream::iter(wanted)
                .map(|(id, state)| async move {
                    let r = self
                        .call(&id, |t| async move {
                            t.remote()
                                .call::<bool>(Verb::Get, "connected", vec![])
                                .await
                        })
                        .await;
                    (id, state, r)
                })
                .buffer_unordered(self.inner.config.health_concurrency.max(1))
                .collect()
                .await;
        let mut cycle = HealthCycle {
            checked: results.len(),
            ..HealthCycle::default()
        };
        for (id, state, r) in results {
            match r {
                Ok(true) => {
                    if state == LinkState::Lost {
                        self.set_state(&id, LinkState::Connected, None);
                        info!(unique_id = %id, "device recovered");
                        self.emit(DeviceEvent::Recovered {
                            unique_id: id.clone(),
                        });
                        cycle.recovered.push(id);
                    } else if let Some(e) = self.write().get_mut(&id) {
                        e.record.stats.consecutive_failures = 0;
                    }
                }
                Ok(false) if state == LinkState::Lost => {
                    // Answers again but forgot its connection: reconnect it ourselves.
                    cycle.failed += 1;
                    match self.connect(&id).await {
                        Ok(()) => {
                            info!(unique_id = %id, "device reconnected");
                            self.emit(DeviceEvent::Recovered {
                                unique_id: id.clone(),
                            });
                            cycle.recovered.push(id);
                        }
                        Err(e) => debug!(unique_id = %id, error = %e, "reconnect failed"),
                    }
                }
                other => {
                    cycle.failed += 1;
                    let reason = match other {
                        Ok(_) => "device reports Connected = false".to_owned(),
                        Err(e) => e.to_string(),
                    };
                    let lost_now = {
                        let mut devices = self.write();
                        match devices.get_mut(&id) {
                            Some(e) => {
                                e.record.stats.consecutive_failures += 1;
                                let lost = e.record.state == LinkState::Connected
                                    && e.record.stats.consecutive_failures
                                        >= self.inner.config.failure_threshold;
                                if lost {
                                    e.record.state = LinkState::Lost;
                                }
                                lost
                            }
                            None => false,
                        }
                    };
                    if lost_now {
                        warn!(unique_id = %id, %reason, "device lost after repeated failed health checks");
                        self.emit(DeviceEvent::Lost {
                            unique_id: id.clone(),
                            reason,
                        });
                        cycle.lost.push(id);
                    }
                }
            }
        }
        cycle.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        cycle
    }

    /// Run health cycles every `health_interval` until `shutdown`.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.inner.config.health_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    let c = self.health_cycle().await;
                    debug!(checked = c.checked, failed = c.failed, elapsed_ms = c.elapsed_ms, "ASCOM health cycle");
                }
            }
        }
    }

    /// The engine's health: degraded while any wanted device is lost.
    pub fn health(&self) -> HealthReport {
        let devices = self.read();
        let total = devices.len();
        let wanted = devices.values().filter(|e| e.wanted).count();
        let connected = devices
            .values()
            .filter(|e| e.record.state == LinkState::Connected)
            .count();
        let lost: Vec<&str> = devices
            .values()
            .filter(|e| e.record.state == LinkState::Lost)
            .map(|e| e.record.unique_id.as_str())
            .collect();
        let report = if lost.is_empty() {
            HealthReport::healthy(
                "ascom_engine",
                format!("{connected}/{total} devices connected"),
            )
        } else {
            HealthReport::degraded(
                "ascom_engine",
                format!(
                    "{} device(s) not answering: {}",
                    lost.len(),
                    lost.join(", ")
                ),
            )
        };
        report
            .with_detail("total_devices", total)
            .with_detail("wanted_devices", wanted)
            .with_detail("connected_devices", connected)
            .with_detail("lost_devices", lost.len())
    }
}
