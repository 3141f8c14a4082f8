//! One isolated deployment for one scenario: its own database, topic root and simulator, an
//! optional broker of its own, and every coordinator of `bigskies up`, each of which can be
//! stopped, started, restarted or (when it runs as a child process) killed.
//!
//! Coordinators run in this process through [`bigskies::serve::Services`], sharing one pool,
//! except those named in [`StackOptions::processes`]: they run as child processes of the real
//! binary (`bigskies-scenarios host ...`, the same code as `bigskies coordinator ...`) so a
//! scenario can SIGKILL one and watch its last will.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::Parser as _;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use alpaca_simulator::app::{RunningSimulator, Simulator};
use alpaca_simulator::config::SimulatorConfig;
use bigskies::serve::Services;
use bigskies::settings::{COORDINATORS, Settings};
use bigskies_core::bus::BusConfig;
use bigskies_core::config::{ConfigStore, ConfigType};
use bigskies_core::topics::Topics;

use crate::provision::{self, MosquittoProcess, MqttEndpoint, Provisioned, TestDatabase};

/// How to build a stack.
#[derive(Debug, Default)]
pub struct StackOptions {
    /// The simulator's configuration in its own TOML format (empty: one device of each type).
    pub simulator: toml::Table,
    /// A broker of its own (restartable), instead of the provisioned one.
    pub private_broker: bool,
    /// Coordinators not to start.
    pub without: Vec<String>,
    /// Coordinators to run as child processes (killable).
    pub processes: Vec<String>,
    /// Configuration rows written before the coordinators start.
    pub config: Vec<ConfigSeed>,
    /// The executable that hosts child coordinators (`<exe> host <bigskies args>`).
    pub host_exe: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct ConfigSeed {
    pub coordinator: String,
    pub key: String,
    pub value: Value,
    pub kind: ConfigType,
}

enum Running {
    InProcess {
        stop: CancellationToken,
        task: JoinHandle<anyhow::Result<()>>,
    },
    Child(tokio::process::Child),
}

/// A running deployment. Dropping it stops everything (child processes are killed).
pub struct Stack {
    pub topics: Topics,
    pub mqtt: MqttEndpoint,
    pub admin_password: String,
    jwt_secret: String,
    db: TestDatabase,
    admin_url: String,
    sim: RunningSimulator,
    broker: Option<MosquittoProcess>,
    services: Services,
    settings: Settings,
    processes: Vec<String>,
    host_exe: Option<PathBuf>,
    running: Mutex<BTreeMap<String, Running>>,
    _plugin_dir: tempfile::TempDir,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("root", &self.topics.root())
            .field("mqtt", &self.mqtt)
            .field("database", &self.db.name())
            .field("simulator", &self.sim.base_url())
            .finish_non_exhaustive()
    }
}

fn secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

struct PgPass {
    path: PathBuf,
    host: String,
    port: u16,
    database: String,
    user: String,
}

/// A `.pgpass` (mode 0600) for the stack's database, so the bootstrap coordinator advertises
/// real credentials, as in a deployment.
fn write_pgpass(dir: &std::path::Path, url: &str) -> anyhow::Result<PgPass> {
    use std::os::unix::fs::PermissionsExt as _;
    let opts: sqlx::postgres::PgConnectOptions = url.parse().context("database URL")?;
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map_or("*", |(_, p)| p);
    let esc = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
    let pg = PgPass {
        path: dir.join(".pgpass"),
        host: opts.get_host().to_owned(),
        port: opts.get_port(),
        database: opts.get_database().unwrap_or("postgres").to_owned(),
        user: opts.get_username().to_owned(),
    };
    std::fs::write(
        &pg.path,
        format!(
            "{}:{}:{}:{}:{}\n",
            esc(&pg.host),
            pg.port,
            esc(&pg.database),
            esc(&pg.user),
            esc(password)
        ),
    )
    .context("writing .pgpass")?;
    std::fs::set_permissions(&pg.path, std::fs::Permissions::from_mode(0o600))?;
    Ok(pg)
}

/// Build the simulator configuration: the scenario's table on top of the defaults, bound to
/// 127.0.0.1 on free ports without UDP discovery, no connect delay unless asked.
pub fn simulator_config(table: &toml::Table, seed: &str) -> anyhow::Result<SimulatorConfig> {
    let mut t = table.clone();
    let devices = t
        .entry("devices")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(d) = devices {
        d.entry("connect_delay").or_insert(toml::Value::Float(0.0));
    }
    let mut cfg: SimulatorConfig = toml::Value::Table(t)
        .try_into()
        .context("simulator configuration")?;
    cfg.server.bind = std::net::IpAddr::from([127, 0, 0, 1]);
    cfg.server.http_port = 0;
    cfg.server.discovery_port = 0;
    cfg.server.discovery = false;
    cfg.server.seed.get_or_insert_with(|| seed.to_owned());
    Ok(cfg)
}

impl Stack {
    /// Create the database, simulator and broker, and prepare the coordinators (migrations,
    /// configuration seeds) without starting them: start a recording client first, then
    /// [`Stack::start_all`], so nothing the coordinators publish is missed.
    pub async fn prepare(p: &Provisioned, name: &str, opts: StackOptions) -> anyhow::Result<Self> {
        for n in opts.without.iter().chain(&opts.processes) {
            if !COORDINATORS.contains(&n.as_str()) {
                bail!(
                    "{n:?} is not a coordinator (one of {})",
                    COORDINATORS.join(", ")
                );
            }
        }
        let db = p.fresh_database().await.context("a database of its own")?;
        let topics = Topics::new(provision::unique_topic_root());
        let sim = Simulator::bind(simulator_config(&opts.simulator, name)?)
            .await
            .context("starting the simulator")?
            .spawn();
        let broker = if opts.private_broker {
            Some(
                MosquittoProcess::start()
                    .await
                    .context("a private Mosquitto (needs the mosquitto binary)")?,
            )
        } else {
            None
        };
        let mqtt = broker
            .as_ref()
            .map_or_else(|| p.mqtt.clone(), MosquittoProcess::endpoint);
        let plugin_dir = tempfile::Builder::new()
            .prefix("bigskies-plugins-")
            .tempdir()
            .context("a plugin directory")?;
        let pgpass = write_pgpass(plugin_dir.path(), db.url())?;
        let args = [
            "bigskies".to_owned(),
            "--db-host".into(),
            pgpass.host.clone(),
            "--db-port".into(),
            pgpass.port.to_string(),
            "--db-name".into(),
            pgpass.database.clone(),
            "--db-user".into(),
            pgpass.user.clone(),
            "--mqtt-url".into(),
            mqtt.url(),
            "--database-url".into(),
            db.url().to_owned(),
            "--topic-root".into(),
            topics.root().to_owned(),
            "--alpaca-server".into(),
            sim.base_url(),
            "--alpaca-discovery-port".into(),
            "0".into(),
            "--plugin-dir".into(),
            plugin_dir.path().join("plugins").display().to_string(),
            "up".into(),
            "--pgpass".into(),
            pgpass.path.display().to_string(),
        ];
        let cli = bigskies::cli::Cli::try_parse_from(&args).context("stack settings")?;
        let mut settings = Settings::from_cli(&cli).map_err(|e| anyhow!(e.join("; ")))?;
        let admin_password = secret();
        let jwt_secret = secret();
        settings.overrides.extend([
            (
                bigskies_security::settings::ENV_JWT_SECRET.to_owned(),
                jwt_secret.clone(),
            ),
            (
                bigskies_security::settings::ENV_ADMIN_PASSWORD.to_owned(),
                admin_password.clone(),
            ),
        ]);
        let services = Services::prepare(settings.clone())
            .await
            .context("preparing the coordinators")?;
        let pool = services
            .pool()
            .ok_or_else(|| anyhow!("the stack has no database pool"))?;
        let store = ConfigStore::new(pool.clone());
        for s in &opts.config {
            store
                .set(&s.coordinator, &s.key, s.value.clone(), s.kind, false, None)
                .await
                .with_context(|| format!("configuration {}.{}", s.coordinator, s.key))?;
        }
        let mut processes = opts.processes;
        processes.retain(|p| !opts.without.contains(p));
        let stack = Self {
            topics,
            mqtt,
            admin_password,
            jwt_secret,
            admin_url: p.database_url.clone(),
            db,
            sim,
            broker,
            services,
            settings,
            processes,
            host_exe: opts.host_exe,
            running: Mutex::new(BTreeMap::new()),
            _plugin_dir: plugin_dir,
        };
        Ok(stack)
    }

    /// Names of the coordinators this stack runs (`without` left out).
    pub fn coordinators(&self, without: &[String]) -> Vec<&'static str> {
        self.services
            .names()
            .into_iter()
            .filter(|n| !without.iter().any(|w| w == n))
            .collect()
    }

    pub fn bus_config(&self) -> BusConfig {
        BusConfig::new(self.mqtt.host.clone(), self.mqtt.port, "scenario")
    }

    pub fn simulator_url(&self) -> String {
        self.sim.base_url()
    }

    pub fn simulator(&self) -> &RunningSimulator {
        &self.sim
    }

    pub fn pool(&self) -> Option<&sqlx::PgPool> {
        self.services.pool()
    }

    /// Start every named coordinator.
    pub async fn start_all(&self, names: &[&'static str]) -> anyhow::Result<()> {
        for n in names {
            self.start(n).await?;
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start one coordinator (an error when it is already running).
    pub async fn start(&self, name: &str) -> anyhow::Result<()> {
        if self.lock().contains_key(name) {
            bail!("{name} is already running");
        }
        let running = if self.processes.iter().any(|p| p == name) {
            Running::Child(self.spawn_child(name)?)
        } else {
            let stop = CancellationToken::new();
            let services = self.services.clone();
            let (n, s) = (name.to_owned(), stop.clone());
            let task = tokio::spawn(async move { services.run(&n, s).await });
            Running::InProcess { stop, task }
        };
        self.lock().insert(name.to_owned(), running);
        Ok(())
    }

    fn spawn_child(&self, name: &str) -> anyhow::Result<tokio::process::Child> {
        let exe = self.host_exe.as_ref().ok_or_else(|| {
            anyhow!("{name} must run as a process, but no host executable is known")
        })?;
        let s = &self.settings;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("host")
            .args(["--mqtt-url", &self.mqtt.url()])
            .args(["--topic-root", s.topics.root()])
            .args(["--plugin-dir", &s.plugin_dir.display().to_string()])
            .args(["--db-host", &s.db_target.host])
            .args(["--db-port", &s.db_target.port.to_string()])
            .args(["--db-name", &s.db_target.database])
            .args(["--db-user", &s.db_target.user])
            .args(["--alpaca-discovery-port", "0"])
            .args(["--alpaca-server", &self.sim.base_url()])
            .args(["coordinator", name])
            .env("DATABASE_URL", self.db.url())
            .env(
                bigskies_security::settings::ENV_JWT_SECRET,
                &self.jwt_secret,
            )
            .env(
                bigskies_security::settings::ENV_ADMIN_PASSWORD,
                &self.admin_password,
            )
            .env("BIGSKIES_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        cmd.spawn()
            .with_context(|| format!("starting {} host coordinator {name}", exe.display()))
    }

    /// Stop one coordinator cleanly (it publishes `stopping`, then disconnects).
    pub async fn stop(&self, name: &str) -> anyhow::Result<()> {
        let running = self
            .lock()
            .remove(name)
            .ok_or_else(|| anyhow!("{name} is not running"))?;
        match running {
            Running::InProcess { stop, task } => {
                stop.cancel();
                match tokio::time::timeout(Duration::from_secs(15), task).await {
                    Ok(Ok(Ok(()))) => Ok(()),
                    Ok(Ok(Err(e))) => Err(e.context(format!("{name} stopped with an error"))),
                    Ok(Err(e)) => Err(anyhow!("{name} panicked: {e}")),
                    Err(_) => Err(anyhow!("{name} did not stop within 15 s")),
                }
            }
            Running::Child(mut child) => {
                if let Some(pid) = child.id() {
                    // SIGTERM: the binary drains like a service manager would make it.
                    let _ = std::process::Command::new("kill")
                        .args(["-TERM", &pid.to_string()])
                        .status();
                }
                match tokio::time::timeout(Duration::from_secs(15), child.wait()).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(anyhow!("waiting for {name}: {e}")),
                    Err(_) => {
                        let _ = child.kill().await;
                        Err(anyhow!("{name} did not stop within 15 s; killed"))
                    }
                }
            }
        }
    }

    /// SIGKILL a coordinator that runs as a child process (no goodbye: the broker publishes
    /// its last will).
    pub async fn kill(&self, name: &str) -> anyhow::Result<()> {
        let running = self
            .lock()
            .remove(name)
            .ok_or_else(|| anyhow!("{name} is not running"))?;
        match running {
            Running::Child(mut child) => {
                child.kill().await.context("SIGKILL")?;
                Ok(())
            }
            other => {
                self.lock().insert(name.to_owned(), other);
                bail!("{name} runs in-process; list it in `setup.processes` to kill it")
            }
        }
    }

    /// Whether a coordinator task has ended on its own (a crash), with its error.
    pub fn crashed(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut running = self.lock();
        for (name, r) in running.iter_mut() {
            match r {
                Running::InProcess { task, .. } if task.is_finished() => {
                    out.push(format!("{name} ended on its own"));
                }
                Running::Child(c) => {
                    if let Ok(Some(status)) = c.try_wait() {
                        out.push(format!("{name} process exited: {status}"));
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Restart the private broker on the same port (clients reconnect by themselves).
    pub async fn restart_broker(&mut self, hard: bool) -> anyhow::Result<()> {
        let b = self
            .broker
            .as_mut()
            .ok_or_else(|| anyhow!("broker restarts need `broker = \"private\"` in the setup"))?;
        if hard {
            b.kill();
        } else {
            b.stop();
        }
        b.restart().await.context("restarting the broker")?;
        Ok(())
    }

    /// Take this stack's database away (new connections refused, open ones terminated), or
    /// give it back. Other scenarios' databases on the same server are untouched.
    pub async fn database(&self, up: bool) -> anyhow::Result<()> {
        use sqlx::Connection as _;
        let mut admin = sqlx::PgConnection::connect(&self.admin_url)
            .await
            .context("admin connection")?;
        let name = self.db.name().replace('"', "\"\"");
        let sql = format!("ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS {up}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .context("ALTER DATABASE")?;
        if !up {
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(self.db.name())
            .execute(&mut admin)
            .await
            .context("terminating connections")?;
        }
        let _ = admin.close().await;
        Ok(())
    }

    /// Stop every coordinator (in reverse start order) and the simulator.
    pub async fn shutdown(self) -> Vec<String> {
        let mut problems = Vec::new();
        let names: Vec<String> = self.lock().keys().cloned().collect();
        // Stop all at once: each drains within its own deadline.
        let me = &self;
        let stops = names
            .iter()
            .map(|n| async move { me.stop(n).await.err().map(|e| format!("{e:#}")) });
        for p in futures::future::join_all(stops).await.into_iter().flatten() {
            problems.push(p);
        }
        let _ = self.database(true).await;
        // Close our pools, then drop the database here, asynchronously. Leaving it to
        // `TestDatabase::drop` would block a runtime thread while `DROP DATABASE` waits for
        // every backend of the database, including one still in its password exchange with a
        // pool of this very runtime: with SCRAM logins that stalled whole suites for the
        // server's 60 s authentication timeout.
        if let Some(pool) = self.services.pool() {
            pool.close().await;
        }
        let Stack { db, .. } = self;
        if let Err(e) = db.cleanup().await {
            problems.push(format!("dropping the test database: {e}"));
        }
        problems
    }
}
