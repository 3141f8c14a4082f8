//! Builds the simulator from its configuration and runs it.
//!
//! [`Simulator::build`] turns a [`SimulatorConfig`] into devices (one [`Shell`] per device,
//! all sharing one [`Clock`]), wires the couplings between them, and assembles one axum
//! router: the protocol crate's Alpaca router (device API, management API, setup pages),
//! the control API, and the fault layer in front of both. [`Simulator::bind`] then binds the
//! HTTP listener and the discovery responder (port 0 allowed), and
//! [`BoundSimulator::run`] serves until a shutdown future completes, then drains.
//!
//! ```no_run
//! # async fn demo() -> Result<(), alpaca_simulator::app::AppError> {
//! use alpaca_simulator::{app::Simulator, config::SimulatorConfig};
//! let mut cfg = SimulatorConfig::default();
//! cfg.server.http_port = 0;
//! cfg.server.discovery = false;
//! let running = Simulator::bind(cfg).await?.spawn();
//! println!("serving on http://{}", running.http_addr);
//! running.shutdown().await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use bigskies_alpaca::management::ServerDescription;
use bigskies_alpaca::server::{AlpacaServer, DeviceMeta};
use bigskies_alpaca::types::ShutterState;
use chrono::Utc;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, ClockMode, SimTime};
use crate::config::{ClockModeConfig, ConfigError, SimulatorConfig};
use crate::control::{self, ControlState, SimDevice};
use crate::devices::ModelInfo;
use crate::faults::{self, DeviceKey, FaultTarget, Faults};
use crate::models::camera::{CameraConfig, CameraModel, ContextSource, FrameContext};
use crate::models::dome::{DomeConfig, DomeModel};
use crate::models::filterwheel::{FilterWheelConfig, FilterWheelModel};
use crate::models::focuser::{FocuserConfig, FocuserModel};
use crate::models::rotator::{RotatorConfig, RotatorModel};
use crate::models::telescope::{TelescopeConfig, TelescopeModel};
use crate::shell::Shell;

/// What the application needs from a model type beyond [`ModelInfo`]: how to build it from
/// its config table, and the control-API hooks (snapshot, stuck motion).
pub trait SimModel: ModelInfo + Sized {
    type Config: DeserializeOwned;
    /// URL form of the device type.
    const DEVICE_TYPE: &'static str;
    fn problems(cfg: &Self::Config) -> Vec<String>;
    /// Tell apart several devices of one type that kept the default name.
    fn number_name(cfg: &mut Self::Config, number: u32);
    fn build(cfg: Self::Config, now: SimTime) -> Self;
    fn snapshot_json(&self, now: SimTime) -> Value;
    fn stick(&mut self, now: SimTime, stuck: bool);
    /// Add the device to the Alpaca registry under its type's trait.
    fn register(
        server: AlpacaServer,
        number: u32,
        meta: DeviceMeta,
        shell: Arc<Shell<Self>>,
    ) -> AlpacaServer;
}

macro_rules! sim_model {
    ($Model:ty, $Config:ty, $type:literal, $with:ident) => {
        impl SimModel for $Model {
            type Config = $Config;
            const DEVICE_TYPE: &'static str = $type;
            fn problems(cfg: &$Config) -> Vec<String> {
                cfg.problems()
            }
            fn number_name(cfg: &mut $Config, number: u32) {
                cfg.name = format!("{} #{number}", cfg.name);
            }
            fn build(cfg: $Config, now: SimTime) -> Self {
                <$Model>::new(cfg, now)
            }
            fn snapshot_json(&self, now: SimTime) -> Value {
                serde_json::to_value(self.snapshot(now))
                    .unwrap_or_else(|e| Value::String(e.to_string()))
            }
            fn stick(&mut self, now: SimTime, stuck: bool) {
                self.set_stuck(now, stuck);
            }
            fn register(
                server: AlpacaServer,
                number: u32,
                meta: DeviceMeta,
                shell: Arc<Shell<Self>>,
            ) -> AlpacaServer {
                server.$with(number, meta, shell)
            }
        }
    };
}

sim_model!(TelescopeModel, TelescopeConfig, "telescope", with_telescope);
sim_model!(DomeModel, DomeConfig, "dome", with_dome);
sim_model!(CameraModel, CameraConfig, "camera", with_camera);
sim_model!(FocuserModel, FocuserConfig, "focuser", with_focuser);
sim_model!(
    FilterWheelModel,
    FilterWheelConfig,
    "filterwheel",
    with_filter_wheel
);
sim_model!(RotatorModel, RotatorConfig, "rotator", with_rotator);

/// The model's config from its TOML table (unknown keys are errors, like everywhere else).
fn parse_model_config<M: SimModel>(table: &toml::Table) -> Result<M::Config, String> {
    let cfg: M::Config = toml::Value::Table(table.clone())
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_owned())?;
    let problems = M::problems(&cfg);
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(problems.join("; "))
    }
}

/// Check one device's model table against the model's own config type.
pub fn check_model_table(device_type: &str, table: &toml::Table) -> Result<(), String> {
    match device_type {
        "telescope" => parse_model_config::<TelescopeModel>(table).map(drop),
        "dome" => parse_model_config::<DomeModel>(table).map(drop),
        "camera" => parse_model_config::<CameraModel>(table).map(drop),
        "focuser" => parse_model_config::<FocuserModel>(table).map(drop),
        "filterwheel" => parse_model_config::<FilterWheelModel>(table).map(drop),
        "rotator" => parse_model_config::<RotatorModel>(table).map(drop),
        _ => Ok(()),
    }
}

/// A device as the control API and the fault table see it.
pub struct SimHandle<M> {
    key: DeviceKey,
    unique_id: String,
    shell: Arc<Shell<M>>,
}

impl<M: SimModel> FaultTarget for SimHandle<M> {
    fn set_stuck(&self, stuck: bool) {
        self.shell.with_model(|m, now| m.stick(now, stuck));
    }
    fn force_disconnect(&self) {
        self.shell.set_connected(false);
    }
}

impl<M: SimModel> SimDevice for SimHandle<M> {
    fn key(&self) -> DeviceKey {
        self.key.clone()
    }
    fn unique_id(&self) -> String {
        self.unique_id.clone()
    }
    fn name(&self) -> String {
        self.shell.with_model(|m, _| m.name())
    }
    fn connected(&self) -> bool {
        self.shell.connected()
    }
    fn snapshot(&self) -> Value {
        self.shell.with_model(|m, now| m.snapshot_json(now))
    }
}

/// Typed handles on every simulated device (for in-process tests and couplings).
#[derive(Clone, Default)]
pub struct Devices {
    pub telescopes: Vec<Arc<Shell<TelescopeModel>>>,
    pub domes: Vec<Arc<Shell<DomeModel>>>,
    pub cameras: Vec<Arc<Shell<CameraModel>>>,
    pub focusers: Vec<Arc<Shell<FocuserModel>>>,
    pub filter_wheels: Vec<Arc<Shell<FilterWheelModel>>>,
    pub rotators: Vec<Arc<Shell<RotatorModel>>>,
}

impl std::fmt::Debug for Devices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devices")
            .field("telescopes", &self.telescopes.len())
            .field("domes", &self.domes.len())
            .field("cameras", &self.cameras.len())
            .field("focusers", &self.focusers.len())
            .field("filter_wheels", &self.filter_wheels.len())
            .field("rotators", &self.rotators.len())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot bind the {what} socket on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// The simulator, built but not yet listening.
#[derive(Debug)]
pub struct Simulator {
    pub config: SimulatorConfig,
    pub clock: Clock,
    pub faults: Faults,
    pub devices: Devices,
    pub couplings: Couplings,
    router: Router,
}

/// Builds every device of one type and registers it everywhere it must be known.
struct Registrar<'a> {
    config: &'a SimulatorConfig,
    clock: &'a Clock,
    server: AlpacaServer,
    handles: Vec<Arc<dyn SimDevice>>,
    problems: Vec<String>,
}

impl Registrar<'_> {
    fn build<M: SimModel>(&mut self) -> Vec<Arc<Shell<M>>> {
        let t = M::DEVICE_TYPE;
        let Some(tc) = self.config.devices.get(t) else {
            return Vec::new();
        };
        let delay = self.config.devices.connect_delay_for(t);
        let mut out = Vec::new();
        for n in 0..tc.count {
            let table = tc.model_table(n);
            let mut cfg = match parse_model_config::<M>(&table) {
                Ok(c) => c,
                Err(e) => {
                    self.problems
                        .push(format!("devices.{t} (device {n}) model settings: {e}"));
                    continue;
                }
            };
            if tc.count > 1 && !table.contains_key("name") {
                M::number_name(&mut cfg, n);
            }
            let shell = Arc::new(Shell::new(
                M::build(cfg, self.clock.now()),
                self.clock.clone(),
                delay,
            ));
            let unique_id = self.config.unique_id(t, n);
            let name = shell.with_model(|m, _| m.name());
            self.handles.push(Arc::new(SimHandle {
                key: DeviceKey::new(t, n),
                unique_id: unique_id.clone(),
                shell: shell.clone(),
            }));
            let meta = DeviceMeta::new(name, unique_id);
            let server = std::mem::replace(
                &mut self.server,
                AlpacaServer::new(ServerDescription::default()),
            );
            self.server = M::register(server, n, meta, shell.clone());
            out.push(shell);
        }
        out
    }
}

/// The physical links between devices. Device `n` of one type is linked to device `n` of
/// another type when it exists, otherwise to device 0: with one of each, everything is
/// linked; with two telescopes and two domes, each dome follows its own telescope.
#[derive(Clone, Default)]
pub struct Couplings {
    /// Dome `i` and the telescope it follows when slaved.
    domes: Arc<Vec<SlavePair>>,
}

/// A dome and the telescope it follows.
type SlavePair = (Arc<Shell<DomeModel>>, Arc<Shell<TelescopeModel>>);

impl std::fmt::Debug for Couplings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Couplings")
            .field("slavable_domes", &self.domes.len())
            .finish()
    }
}

/// Device `n` of a type with these devices, or device 0 when there is no `n`.
fn partner<T>(list: &[Arc<T>], n: usize) -> Option<Arc<T>> {
    list.get(n).or_else(|| list.first()).cloned()
}

impl Couplings {
    /// Wire every coupling between `devices`: slaved domes follow their telescope, and each
    /// camera's frames see its telescope's pointing, its focuser's focus (including the
    /// current filter's focus offset), its filter wheel's filter and its dome's shutter.
    pub fn wire(devices: &Devices) -> Self {
        let domes = devices
            .domes
            .iter()
            .enumerate()
            .filter_map(|(n, d)| partner(&devices.telescopes, n).map(|t| (d.clone(), t)))
            .collect();
        for (n, camera) in devices.cameras.iter().enumerate() {
            let scope = partner(&devices.telescopes, n);
            let focuser = partner(&devices.focusers, n);
            let wheel = partner(&devices.filter_wheels, n);
            let dome = partner(&devices.domes, n);
            // Each device's lock is taken and released in turn, never two at once.
            let source = ContextSource::new(move || {
                let mut ctx = FrameContext::default();
                if let Some(t) = &scope {
                    let s = t.with_model(|m, now| m.snapshot(now));
                    ctx.pointing = Some((s.right_ascension, s.declination));
                }
                let mut filter_offset = 0;
                if let Some(w) = &wheel {
                    let s = w.with_model(|m, now| m.snapshot(now));
                    ctx.filter = s.filter;
                    filter_offset = s.focus_offset.unwrap_or(0);
                }
                if let Some(f) = &focuser {
                    ctx.focus_error_steps =
                        f.with_model(|m, now| m.focus_error_steps(now, filter_offset));
                }
                if let Some(d) = &dome {
                    ctx.shutter_open =
                        d.with_model(|m, now| m.shutter_status(now)) == ShutterState::Open;
                }
                ctx
            });
            camera.with_model(|m, _| m.set_context_source(Some(source)));
        }
        Self {
            domes: Arc::new(domes),
        }
    }

    /// Feed dome `n` its telescope's azimuth if it is slaved (before every dome request).
    pub fn feed_dome(&self, n: usize) {
        let Some((dome, scope)) = self.domes.get(n) else {
            return;
        };
        if dome.with_model(|d, _| d.slaved()) {
            let az = scope.with_model(|t, now| t.snapshot(now).azimuth);
            dome.with_model(|d, now| d.slave_to(now, az));
        }
    }

    /// Feed every slaved dome (before a state dump).
    pub fn feed_all(&self) {
        for n in 0..self.domes.len() {
            self.feed_dome(n);
        }
    }
}

/// Middleware: bring a slaved dome up to date with its telescope before it answers.
async fn coupling_layer(
    axum::extract::State(c): axum::extract::State<Couplings>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some((key, _)) = faults::device_of_path(req.uri().path())
        && key.device_type == "dome"
    {
        c.feed_dome(key.number as usize);
    }
    next.run(req).await
}

/// A stable 64-bit seed for the fault dice (FNV-1a of the UniqueID seed).
fn fault_seed(seed: &str) -> u64 {
    seed.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Simulator {
    /// Validate the configuration and build every device, the couplings and the router.
    pub fn build(config: SimulatorConfig) -> Result<Self, AppError> {
        config.validate()?;
        let start = config
            .clock
            .start
            .map_or_else(|| SimTime::from_utc(Utc::now()), SimTime::from_utc);
        let mode = match config.clock.mode {
            ClockModeConfig::Running => ClockMode::Running {
                rate: config.clock.rate,
            },
            ClockModeConfig::Stepped => ClockMode::Stepped,
        };
        let clock = Clock::with_mode(mode, start);
        let info = ServerDescription {
            server_name: config.server.name.clone(),
            manufacturer: "Big Skies".into(),
            manufacturer_version: env!("CARGO_PKG_VERSION").into(),
            location: config.server.location.clone(),
        };
        let mut reg = Registrar {
            config: &config,
            clock: &clock,
            server: AlpacaServer::new(info),
            handles: Vec::new(),
            problems: Vec::new(),
        };
        let devices = Devices {
            telescopes: reg.build::<TelescopeModel>(),
            domes: reg.build::<DomeModel>(),
            cameras: reg.build::<CameraModel>(),
            focusers: reg.build::<FocuserModel>(),
            filter_wheels: reg.build::<FilterWheelModel>(),
            rotators: reg.build::<RotatorModel>(),
        };
        if !reg.problems.is_empty() {
            return Err(ConfigError::Invalid(reg.problems).into());
        }
        let Registrar {
            server, handles, ..
        } = reg;
        let couplings = Couplings::wire(&devices);

        let targets: HashMap<DeviceKey, Arc<dyn FaultTarget>> = handles
            .iter()
            .map(|h| (h.key(), h.clone() as Arc<dyn FaultTarget>))
            .collect();
        let faults = Faults::new(
            targets,
            fault_seed(config.seed()),
            Duration::from_secs_f64(config.server.hang_cap_secs),
        );
        let mut problems = Vec::new();
        for (key, spec) in &config.faults {
            let applied = key
                .parse::<DeviceKey>()
                .and_then(|k| faults.set(&k, spec.clone()));
            if let Err(e) = applied {
                problems.push(format!("faults.\"{key}\": {e}"));
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems).into());
        }

        let control = control::router(ControlState {
            clock: clock.clone(),
            faults: faults.clone(),
            devices: Arc::new(handles),
            started: Instant::now(),
            refresh: Arc::new({
                let c = couplings.clone();
                move || c.feed_all()
            }),
        });
        // Layers run outside in: faults first (a hung or dropped request never reaches a
        // device), then the couplings, then the routes.
        let router = server
            .router()
            .merge(control)
            .layer(axum::middleware::from_fn_with_state(
                couplings.clone(),
                coupling_layer,
            ))
            .layer(axum::middleware::from_fn_with_state(
                faults.clone(),
                faults::fault_layer,
            ));
        Ok(Self {
            config,
            clock,
            faults,
            devices,
            couplings,
            router,
        })
    }

    /// The complete router (for `oneshot` tests without sockets).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Build and bind the HTTP listener (and the discovery responder when enabled).
    pub async fn bind(config: SimulatorConfig) -> Result<BoundSimulator, AppError> {
        Self::build(config)?.bind_sockets().await
    }

    /// Bind the sockets of an already built simulator.
    pub async fn bind_sockets(self) -> Result<BoundSimulator, AppError> {
        let addr = SocketAddr::new(self.config.server.bind, self.config.server.http_port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| AppError::Bind {
                what: "HTTP",
                addr,
                source,
            })?;
        let http_addr = listener.local_addr().map_err(|source| AppError::Bind {
            what: "HTTP",
            addr,
            source,
        })?;
        tracing::info!(%http_addr, "Alpaca HTTP server bound");
        let discovery = if self.config.server.discovery {
            let port = self.config.server.discovery_port;
            let d = bigskies_alpaca::discovery::bind_discovery(port, http_addr.port())
                .await
                .map_err(|source| AppError::Bind {
                    what: "discovery",
                    addr: SocketAddr::from(([0, 0, 0, 0], port)),
                    source,
                })?;
            let v4 = d.local_addr().map_err(|source| AppError::Bind {
                what: "discovery",
                addr: SocketAddr::from(([0, 0, 0, 0], port)),
                source,
            })?;
            tracing::info!(discovery_addr = %v4, alpaca_port = http_addr.port(), "discovery responder bound (IPv4)");
            if let Some(v6) = d.local_addr_v6() {
                tracing::info!(discovery_addr = %v6, "discovery responder bound (IPv6 multicast ff12::a1:9aca)");
            }
            Some((d, v4))
        } else {
            tracing::info!("discovery disabled");
            None
        };
        let (discovery, discovery_addr) = match discovery {
            Some((d, a)) => (Some(d), Some(a)),
            None => (None, None),
        };
        Ok(BoundSimulator {
            discovery,
            http_addr,
            discovery_addr,
            clock: self.clock,
            faults: self.faults,
            devices: self.devices,
            drain: Duration::from_secs_f64(self.config.server.drain_secs),
            limits: ConnLimits {
                header_read_timeout: Duration::from_secs_f64(
                    self.config.server.header_read_timeout_secs,
                ),
                max_connections: self.config.server.max_connections,
            },
            listener,
            router: self.router,
        })
    }
}

/// A simulator whose sockets are bound; [`BoundSimulator::run`] serves it.
#[derive(Debug)]
pub struct BoundSimulator {
    pub http_addr: SocketAddr,
    /// `None` when discovery is disabled.
    pub discovery_addr: Option<SocketAddr>,
    pub clock: Clock,
    pub faults: Faults,
    pub devices: Devices,
    drain: Duration,
    limits: ConnLimits,
    listener: tokio::net::TcpListener,
    router: Router,
    discovery: Option<bigskies_alpaca::discovery::BoundDiscovery>,
}

/// What the HTTP server allows a client, so slow or idle ones cannot hold file handles.
#[derive(Clone, Copy, Debug)]
struct ConnLimits {
    /// For a complete request header, on a new connection and between kept-alive requests.
    header_read_timeout: Duration,
    max_connections: usize,
}

/// Serve HTTP/1.1 on `listener` until `stop`, then let the open connections finish their
/// in-flight requests. Rather than `axum::serve` (no header timeout, no connection cap): a
/// connection slot is taken before `accept`, so beyond `max_connections` clients wait in the
/// listen backlog, and hyper closes a connection whose request header is not complete within
/// the header read timeout (idle kept-alive connections included). Per connection, not per
/// request, so request latency is what a bare axum handler has.
async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ConnLimits,
    stop: CancellationToken,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let connections = tokio_util::task::TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    loop {
        let slot = tokio::select! {
            () = stop.cancelled() => break,
            s = slots.clone().acquire_owned() => s.expect("the slot semaphore is never closed"),
        };
        let stream = tokio::select! {
            () = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file handles and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    }
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let stop = stop.clone();
        connections.spawn(async move {
            let _slot = slot;
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

impl BoundSimulator {
    /// `http://127.0.0.1:port` style base URL (loopback when bound to the unspecified address).
    pub fn base_url(&self) -> String {
        base_url(self.http_addr)
    }

    /// Serve until `shutdown` completes, then let in-flight requests finish within the drain
    /// deadline. Hung (fault-injected) requests are released when shutdown starts.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let stop = CancellationToken::new();
        let server = serve(self.listener, self.router, self.limits, stop.clone());
        tokio::pin!(server);
        let discovery_task = self.discovery.map(|d| {
            let stop = stop.clone();
            tokio::spawn(async move {
                if let Err(e) = d.run(async move { stop.cancelled().await }).await {
                    tracing::error!(error = %e, "discovery responder failed");
                }
            })
        });
        tokio::select! {
            r = &mut server => {
                stop.cancel();
                return r.map_err(AppError::Serve);
            }
            () = shutdown => {}
        }
        tracing::info!(
            drain_secs = self.drain.as_secs_f64(),
            "shutting down; draining in-flight requests"
        );
        stop.cancel();
        self.faults.clear_all();
        match tokio::time::timeout(self.drain, server).await {
            Ok(r) => r.map_err(AppError::Serve)?,
            Err(_) => tracing::warn!("drain deadline passed; closing the remaining connections"),
        }
        if let Some(t) = discovery_task {
            let _ = t.await;
        }
        tracing::info!("simulator stopped");
        Ok(())
    }

    /// Run in a background task; the returned handle stops it.
    pub fn spawn(self) -> RunningSimulator {
        let token = CancellationToken::new();
        let stop = token.clone();
        let (http_addr, discovery_addr) = (self.http_addr, self.discovery_addr);
        let (clock, faults, devices) = (
            self.clock.clone(),
            self.faults.clone(),
            self.devices.clone(),
        );
        let task = tokio::spawn(self.run(async move { stop.cancelled().await }));
        RunningSimulator {
            http_addr,
            discovery_addr,
            clock,
            faults,
            devices,
            token,
            task: Some(task),
        }
    }
}

fn base_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => {
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        }
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => {
            std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        }
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// A simulator serving in a background task (tests, scenarios, benches). Dropping it stops
/// the server too.
#[derive(Debug)]
pub struct RunningSimulator {
    pub http_addr: SocketAddr,
    pub discovery_addr: Option<SocketAddr>,
    pub clock: Clock,
    pub faults: Faults,
    pub devices: Devices,
    token: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<(), AppError>>>,
}

impl RunningSimulator {
    pub fn base_url(&self) -> String {
        base_url(self.http_addr)
    }

    /// Stop serving and wait for the drain to finish.
    pub async fn shutdown(mut self) -> Result<(), AppError> {
        self.token.cancel();
        match self.task.take() {
            Some(task) => task.await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "simulator task failed");
                Ok(())
            }),
            None => Ok(()),
        }
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClockModeConfig;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn config() -> SimulatorConfig {
        let mut cfg = SimulatorConfig::default();
        cfg.clock.mode = ClockModeConfig::Stepped;
        cfg.devices.connect_delay = 0.0;
        cfg
    }

    async fn get(router: &Router, uri: &str) -> serde_json::Value {
        let resp = router
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }

    #[tokio::test]
    async fn the_default_build_serves_one_of_each_device() {
        let sim = Simulator::build(config()).expect("valid config");
        assert_eq!(sim.devices.telescopes.len(), 1);
        assert_eq!(sim.devices.rotators.len(), 1);
        let devices = get(&sim.router(), "/management/v1/configureddevices").await;
        assert_eq!(
            devices["Value"].as_array().map(Vec::len),
            Some(6),
            "{devices}"
        );
        let health = get(&sim.router(), "/simulator/v1/health").await;
        assert_eq!(health["devices"], 6);
    }

    #[tokio::test]
    async fn several_devices_of_a_type_get_numbered_names_and_their_own_ids() {
        let mut cfg = config();
        cfg.devices.focuser.count = 3;
        cfg.devices.camera.count = 0;
        let sim = Simulator::build(cfg).expect("valid config");
        let devices = get(&sim.router(), "/management/v1/configureddevices").await;
        let focusers: Vec<&Value> = devices["Value"]
            .as_array()
            .expect("array")
            .iter()
            .filter(|d| d["DeviceType"] == "Focuser")
            .collect();
        assert_eq!(focusers.len(), 3);
        assert!(
            focusers[2]["DeviceName"]
                .as_str()
                .is_some_and(|n| n.ends_with("#2")),
            "{focusers:?}"
        );
        assert_ne!(focusers[0]["UniqueID"], focusers[1]["UniqueID"]);
        assert!(
            !devices.to_string().contains("\"Camera\""),
            "count 0 removes the type"
        );
    }

    #[tokio::test]
    async fn invalid_model_settings_fail_the_build() {
        let mut cfg = config();
        cfg.devices
            .filterwheel
            .model
            .insert("names".into(), toml::Value::Array(Vec::new()));
        let err = Simulator::build(cfg).expect_err("empty wheel refused");
        assert!(
            matches!(err, AppError::Config(ConfigError::Invalid(_))),
            "{err}"
        );
    }

    #[test]
    fn base_urls_use_loopback_for_the_unspecified_address() {
        assert_eq!(
            base_url("0.0.0.0:80".parse().expect("addr")),
            "http://127.0.0.1:80"
        );
        assert_eq!(
            base_url("[::]:80".parse().expect("addr")),
            "http://[::1]:80"
        );
        assert_eq!(
            base_url("10.1.2.3:9".parse().expect("addr")),
            "http://10.1.2.3:9"
        );
    }
}
