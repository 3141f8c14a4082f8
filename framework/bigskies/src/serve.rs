//! Building and running coordinators: database credentials, migrations, the authenticator,
//! one bus connection per coordinator, and a drain on SIGINT/SIGTERM.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use bigskies_alpaca::discovery::DiscoveryOptions;
use bigskies_ascom::store::Store as AscomStore;
use bigskies_ascom::{AscomConfig, AscomEngine};
use bigskies_coordinators::{
    application, bootstrap, datastore, message, plugin, security, telescope, uielement,
};
use bigskies_core::auth::Authenticator;
use bigskies_core::bus::Bus;
use bigskies_core::config::ConfigStore;
use bigskies_core::credentials::{options_from_pgpass, resolve_database};
use bigskies_core::runtime::{Coordinator, Launch, RuntimeConfig, launch_with};
use bigskies_core::topics::Topics;
use bigskies_security::{SecurityAuthenticator, SecurityEngines};

use crate::settings::{COORDINATORS, Mode, Settings};

/// Cancel `token` on SIGINT or SIGTERM.
fn watch_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        info!("signal received; shutting down");
        token.cancel();
    });
}

/// Credentials read here, from `DATABASE_URL` or the `.pgpass` file (bootstrap, migrate, up).
fn direct_options(s: &Settings) -> anyhow::Result<PgConnectOptions> {
    match &s.database_url {
        Some(url) => url.parse().context("DATABASE_URL is invalid"),
        None => options_from_pgpass(&s.bootstrap.pgpass, &s.db_target)
            .with_context(|| format!("reading {}", s.bootstrap.pgpass.display())),
    }
}

/// Credentials from the bootstrap coordinator (or `DATABASE_URL`), over a short-lived bus link.
async fn bootstrap_options(s: &Settings, name: &str) -> anyhow::Result<PgConnectOptions> {
    if let Some(url) = &s.database_url {
        return url.parse().context("DATABASE_URL is invalid");
    }
    let stop = CancellationToken::new();
    let mut cfg = s.bus.clone();
    cfg.client_id_prefix = format!("{name}-credentials");
    // Short-lived: its session ends with it rather than lingering at the broker.
    cfg.session_expiry = 0;
    let (bus, task) = Bus::start(cfg, None, stop.clone());
    let result = async {
        bus.wait_connected(Duration::from_secs(10)).await?;
        let opts = resolve_database(
            None,
            &bus,
            &s.topics,
            name,
            &s.db_target,
            s.credentials_timeout,
        )
        .await?;
        Ok::<_, anyhow::Error>(opts)
    }
    .await;
    bus.disconnect().await;
    stop.cancel();
    let _ = task.await;
    result
}

async fn connect(options: &PgConnectOptions, max: u32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await
        .context("cannot connect to PostgreSQL")
}

/// What every coordinator of this process shares.
struct Shared {
    settings: Settings,
    options: Option<PgConnectOptions>,
    pool: Option<PgPool>,
    security: Option<SecurityEngines>,
}

impl Shared {
    fn pool(&self) -> anyhow::Result<PgPool> {
        self.pool.clone().ok_or_else(|| anyhow!("no database"))
    }

    fn launch_config(&self, name: &str, store: bool) -> Launch {
        Launch {
            bus: self.settings.component_bus(name),
            runtime: RuntimeConfig {
                topics: self.settings.topics.clone(),
                ..RuntimeConfig::default()
            },
            store: if store {
                self.pool.clone().map(ConfigStore::new)
            } else {
                None
            },
            connect_timeout: Duration::from_secs(30),
            authenticator: self
                .security
                .as_ref()
                .map(|e| e.authenticator().into_dyn() as Arc<dyn Authenticator>),
        }
    }

    /// The authenticator to keep current on a coordinator's bus.
    fn listener(&self) -> Option<SecurityAuthenticator> {
        self.security.as_ref().map(SecurityEngines::authenticator)
    }
}

/// Launch `coordinator` with `work` as its background task, plus the security event
/// listener that keeps its authenticator current.
async fn serve<C, F, Fut>(
    shared: &Shared,
    coordinator: Arc<C>,
    store: bool,
    shutdown: CancellationToken,
    work: F,
) -> anyhow::Result<()>
where
    C: Coordinator,
    F: FnOnce(Bus, Topics, CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let name = coordinator.name();
    let topics = shared.settings.topics.clone();
    let listener = shared.listener();
    launch_with(
        coordinator,
        shared.launch_config(name, store),
        shutdown,
        move |bus, stop| async move {
            if let Some(l) = listener
                && let Err(e) = l.listen(&bus, &topics, stop.clone()).await
            {
                warn!(coordinator = name, error = %e, "security events not followed");
            }
            work(bus, topics, stop).await;
        },
    )
    .await
    .with_context(|| format!("{name} coordinator"))
}

async fn idle(_: Bus, _: Topics, _: CancellationToken) {}

async fn run_coordinator(
    name: &'static str,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let s = &shared.settings;
    match name {
        "bootstrap" => {
            let c = Arc::new(
                bootstrap::BootstrapCoordinator::new(
                    s.bootstrap.pgpass.clone(),
                    s.bootstrap.publish_interval,
                )
                .credentials_from_database_url(s.database_url.is_some()),
            );
            let w = c.clone();
            let store = !s.bootstrap.publish_only;
            serve(&shared, c, store, shutdown, move |b, t, x| w.run(b, t, x)).await
        }
        "message" => {
            let ingest = s.component_bus("message-ingest");
            let c = Arc::new(message::MessageCoordinator::new(
                message::Settings::default(),
                shared.pool.clone(),
                ingest,
            ));
            let w = c.clone();
            serve(&shared, c, true, shutdown, move |b, t, x| w.run(b, t, x)).await
        }
        "datastore" => {
            let options = shared
                .options
                .clone()
                .ok_or_else(|| anyhow!("no database"))?;
            let c = Arc::new(datastore::DatastoreCoordinator::new(
                options,
                datastore::Settings::default(),
            ));
            let w = c.clone();
            serve(&shared, c, true, shutdown, move |b, t, x| w.run(b, t, x)).await
        }
        "application" => {
            let c = Arc::new(application::ApplicationCoordinator::new(
                shared.pool()?,
                application::Settings::default(),
            ));
            let w = c.clone();
            serve(&shared, c, true, shutdown, move |b, t, x| w.run(b, t, x)).await
        }
        "plugin" => {
            let mut pc = plugin::PluginCoordinator::new(
                shared.pool()?,
                plugin_runtime(s),
                // The flag beats the seeded plugin_dir row, not one an operator wrote.
                plugin::Settings::default().with_plugin_dir(s.plugin_dir.clone()),
                s.service_token.clone(),
            );
            // Without a configured service credential, one minted per use from the shared
            // signing key: the caller's own token never travels on.
            if let Some(engines) = shared.security.clone()
                && s.service_token.is_none()
            {
                pc = pc.with_service_minter(move || service_token(&engines));
            }
            let c = Arc::new(pc);
            let w = c.clone();
            serve(&shared, c, true, shutdown, move |b, t, x| w.run(b, t, x)).await
        }
        "uielement" => {
            let c = Arc::new(uielement::UiElementCoordinator::new(shared.pool()?));
            serve(&shared, c, true, shutdown, idle).await
        }
        "security" => {
            let engines = shared.security.clone().ok_or_else(|| {
                anyhow!("the security engines need BIGSKIES_JWT_SECRET (or the jwt_secret row)")
            })?;
            let admin = bigskies_security::settings::admin_password(&|n: &str| s.lookup(n))
                .map_err(|e| anyhow!("admin password: {e}"))?;
            let c = Arc::new(
                security::SecurityCoordinator::build(engines, admin.as_ref())
                    .await
                    .map_err(|e| anyhow!("security coordinator: {e}"))?,
            );
            let w = c.clone();
            serve(&shared, c, true, shutdown, move |_b, _t, x| async move {
                w.maintenance(Duration::from_secs(60), x).await;
            })
            .await
        }
        "telescope" => {
            let pool = shared.pool()?;
            let engine = AscomEngine::build(
                AscomConfig {
                    discovery: s.alpaca.discovery_port.map(|port| DiscoveryOptions {
                        port,
                        ..DiscoveryOptions::default()
                    }),
                    servers: s.alpaca.servers.clone(),
                    ..AscomConfig::default()
                },
                Some(AscomStore::new(pool.clone())),
            )
            .await
            .context("ASCOM engine")?;
            // Register what answers now; a server that is down is only logged, and a
            // `device/discover` request (or the next start) picks it up later.
            match engine.discover().await {
                Ok(found) => info!(devices = found.len(), "Alpaca devices registered"),
                Err(e) => warn!(error = %e, "Alpaca discovery failed"),
            }
            let c = Arc::new(telescope::TelescopeCoordinator::new(
                pool,
                engine,
                telescope::TelescopeSettings::default(),
            ));
            let w = c.clone();
            serve(&shared, c, true, shutdown, move |b, t, x| {
                w.run_background(b, t, x)
            })
            .await
        }
        other => bail!("unknown coordinator {other:?}"),
    }
}

/// How long a minted service token lives: one UI registration exchange.
const SERVICE_TOKEN_LIFETIME: Duration = Duration::from_secs(120);

/// A short-lived token of the first administrator account for the plugin coordinator's own
/// requests (the UI element coordinator accepts plugin registrations from administrators only).
fn service_token(engines: &SecurityEngines) -> Option<String> {
    use bigskies_security::accounts::{ADMIN_EMAIL, ADMIN_USER_ID, ADMIN_USERNAME};
    let who = bigskies_security::tokens::Subject {
        user_id: ADMIN_USER_ID,
        username: ADMIN_USERNAME,
        email: ADMIN_EMAIL,
        roles: vec!["admin".to_owned()],
    };
    match engines.tokens.issue_for(who, SERVICE_TOKEN_LIFETIME) {
        Ok(t) => Some(t.token),
        Err(e) => {
            warn!(error = %e, "no service token for the plugin coordinator");
            None
        }
    }
}

#[cfg(feature = "docker")]
fn plugin_runtime(s: &Settings) -> Arc<dyn plugin::ContainerRuntime> {
    match plugin::docker::DockerRuntime::connect(s.plugin_env()) {
        // Each plugin where its manifest says: a container, or a local process.
        Ok(d) => Arc::new(plugin::runtime::ByManifest {
            containers: Arc::new(d),
            processes: local_runtime(s),
        }),
        Err(e) => {
            warn!(error = %e, "no Docker engine; plugins run as local processes");
            local_runtime(s)
        }
    }
}

#[cfg(not(feature = "docker"))]
fn plugin_runtime(s: &Settings) -> Arc<dyn plugin::ContainerRuntime> {
    local_runtime(s)
}

fn local_runtime(s: &Settings) -> Arc<dyn plugin::ContainerRuntime> {
    Arc::new(plugin::LocalProcessRuntime::new(s.plugin_env()))
}

async fn security_engines(pool: &PgPool, s: &Settings) -> Option<SecurityEngines> {
    match SecurityEngines::from_database(pool.clone(), &|n: &str| s.lookup(n)).await {
        Ok(e) => Some(e),
        Err(e) => {
            warn!(error = %e, "no authenticator: only public operations will be served");
            None
        }
    }
}

async fn migrate(options: &PgConnectOptions) -> anyhow::Result<()> {
    let applied = bootstrap::migrate(options.clone()).await?;
    info!(versions = ?applied, "migrations applied");
    Ok(())
}

/// Run the coordinators named, until `shutdown` or the first failure.
async fn run_all(
    names: Vec<&'static str>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut set = JoinSet::new();
    for name in names {
        let (shared, stop) = (shared.clone(), shutdown.clone());
        set.spawn(async move { (name, run_coordinator(name, shared, stop).await) });
    }
    let mut first_error = None;
    while let Some(done) = set.join_next().await {
        let (name, result) = done.map_err(|e| anyhow!("a coordinator task panicked: {e}"))?;
        match result {
            Ok(()) => info!(coordinator = name, "stopped"),
            Err(e) => {
                warn!(coordinator = name, error = %format!("{e:#}"), "failed; stopping the others");
                shutdown.cancel();
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The broker check ([`crate::broker`]), in the background so the start does not wait for it.
async fn warn_if_anonymous(bus: bigskies_core::bus::BusConfig, topics: Topics) {
    crate::broker::warn_if_anonymous(&bus, &topics).await;
}

/// Run `settings` until SIGINT/SIGTERM.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    watch_signals(shutdown.clone());
    run_until(settings, shutdown).await
}

/// Run `settings` until `shutdown` is cancelled (or a coordinator fails); no signal handling,
/// so a harness can run several stacks in one process.
pub async fn run_until(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    match settings.mode.clone() {
        Mode::Migrate => migrate(&direct_options(&settings)?).await,
        Mode::One(name) if name == "bootstrap" => {
            let b = &settings.bootstrap;
            let (options, pool) = if b.publish_only {
                (None, None)
            } else {
                let options = direct_options(&settings)?;
                if b.validate {
                    bootstrap::validate_pgpass(&b.pgpass, &settings.db_target).await?;
                    println!("credentials in {} are valid", b.pgpass.display());
                    return Ok(());
                }
                if !b.skip_migrations {
                    migrate(&options).await?;
                }
                let pool = connect(&options, 2).await?;
                (Some(options), Some(pool))
            };
            let shared = Arc::new(Shared {
                settings,
                options,
                pool,
                security: None,
            });
            run_all(vec!["bootstrap"], shared, shutdown).await
        }
        Mode::One(name) => {
            let name: &'static str = COORDINATORS
                .iter()
                .copied()
                .find(|n| *n == name)
                .ok_or_else(|| anyhow!("unknown coordinator {name:?}"))?;
            tokio::spawn(warn_if_anonymous(
                settings.bus.clone(),
                settings.topics.clone(),
            ));
            let options = bootstrap_options(&settings, name).await?;
            let pool = connect(&options, 5).await?;
            let security = security_engines(&pool, &settings).await;
            let shared = Arc::new(Shared {
                settings,
                options: Some(options),
                pool: Some(pool),
                security,
            });
            run_all(vec![name], shared, shutdown).await
        }
        Mode::Up { without } => {
            tokio::spawn(warn_if_anonymous(
                settings.bus.clone(),
                settings.topics.clone(),
            ));
            let services = Services::prepare(settings).await?;
            let names: Vec<&'static str> = services
                .names()
                .into_iter()
                .filter(|n| !without.iter().any(|w| w == n))
                .collect();
            run_all(names, services.shared, shutdown).await
        }
    }
}

/// Every coordinator of one deployment, sharing one pool and one set of security engines
/// (what `bigskies up` runs). A harness uses it to start, stop and restart coordinators one
/// by one, several deployments per process.
#[derive(Clone)]
pub struct Services {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("root", &self.shared.settings.topics.root())
            .field("security", &self.shared.security.is_some())
            .finish_non_exhaustive()
    }
}

impl Services {
    /// Read the credentials (`DATABASE_URL` or `.pgpass`), apply the migrations unless
    /// skipped, open the pool and build the security engines.
    pub async fn prepare(settings: Settings) -> anyhow::Result<Self> {
        let options = direct_options(&settings)?;
        if !settings.bootstrap.skip_migrations {
            migrate(&options).await?;
        }
        let pool = connect(&options, 20).await?;
        let security = security_engines(&pool, &settings).await;
        Ok(Self {
            shared: Arc::new(Shared {
                settings,
                options: Some(options),
                pool: Some(pool),
                security,
            }),
        })
    }

    /// The coordinators that can run, in start order (security only with a JWT secret).
    pub fn names(&self) -> Vec<&'static str> {
        COORDINATORS
            .iter()
            .copied()
            .filter(|n| *n != "security" || self.shared.security.is_some())
            .collect()
    }

    pub fn pool(&self) -> Option<&PgPool> {
        self.shared.pool.as_ref()
    }

    /// Run one coordinator until `shutdown` (or its failure).
    pub async fn run(&self, name: &str, shutdown: CancellationToken) -> anyhow::Result<()> {
        let name = COORDINATORS
            .iter()
            .copied()
            .find(|n| *n == name)
            .ok_or_else(|| anyhow!("unknown coordinator {name:?}"))?;
        run_coordinator(name, self.shared.clone(), shutdown).await
    }
}
