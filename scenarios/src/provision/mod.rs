//! The provisioning ladder: where the PostgreSQL and the MQTT broker for a scenario or test
//! come from.
//!
//! Each service climbs the rungs in order ([`Rung::DEFAULT_ORDER`], or `BIGSKIES_PROVISION`)
//! and takes the first one that supplies it; every rung that does not is logged with the
//! reason and kept in [`Provisioned::skipped`]:
//!
//! 1. **explicit** – `BIGSKIES_DATABASE_URL` (or `DATABASE_URL`) and `BIGSKIES_MQTT_URL`. A set
//!    URL must answer; if it does not, provisioning fails instead of quietly using something else.
//! 2. **containers** – Docker through testcontainers (feature `containers`); skipped when no
//!    engine answers.
//! 3. **local** – the machine's own services on 127.0.0.1:5432 (user `postgres`) and
//!    127.0.0.1:1883, as CI and development machines run them.
//! 4. **process** – private `postgres`/`mosquitto` processes on free ports ([`PostgresProcess`],
//!    [`MosquittoProcess`]).
//! 5. otherwise [`ProvisionError::NothingAnswered`], listing every attempt and what to install.
//!
//! The two services climb independently, so `DATABASE_URL` alone still gets a broker from the
//! ladder. Tests isolate themselves with [`Provisioned::fresh_database`] and
//! [`Provisioned::topic_root`], and share one provision per test binary through [`shared`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), bigskies_scenarios::provision::ProvisionError> {
//! let services = bigskies_scenarios::provision::shared().await?;
//! let database = services.fresh_database().await?;
//! let root = services.topic_root();
//! // ... point the code under test at database.url() / database.pool(), services.mqtt, root
//! # Ok(()) }
//! ```

#[cfg(feature = "containers")]
mod containers;
mod database;
mod error;
mod options;
mod probe;
mod process;

use std::fmt;

pub use database::{TestDatabase, unique_topic_root};
pub use error::{Attempt, AttemptOutcome, INSTALL_HINT, ProvisionError, Service};
pub use options::{
    ENV_DATABASE_URL, ENV_MOSQUITTO_BIN, ENV_MQTT_URL, ENV_PLAIN_DATABASE_URL,
    ENV_POSTGRES_BIN_DIR, ENV_PROVISION, Explicit, LOCAL_DATABASE_URL, LOCAL_MQTT_HOST,
    MQTT_DEFAULT_PORT, MqttEndpoint, POSTGRES_IMAGE_TAG, ProvisionEnv, ProvisionOptions, Rung,
    redact_url, with_database,
};
pub use process::{DEFAULT_STARTUP_TIMEOUT, MosquittoProcess, PostgresProcess};

/// Which rung supplied each service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProvisionedKind {
    /// The rung that supplied PostgreSQL.
    pub database: Rung,
    /// The rung that supplied the MQTT broker.
    pub mqtt: Rung,
}

impl fmt::Display for ProvisionedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.database == self.mqtt {
            write!(f, "{}", self.database)
        } else {
            write!(f, "database: {}, mqtt: {}", self.database, self.mqtt)
        }
    }
}

/// Something that must live as long as the provisioned services.
enum Guard {
    Postgres(PostgresProcess),
    Mosquitto(MosquittoProcess),
    #[cfg(feature = "containers")]
    Container(Box<containers::ContainerGuard>),
}

/// Running PostgreSQL and MQTT broker. Processes or containers started for them stop when this
/// value drops (a `static` never drops: see [`shared`]). Dropping blocks the current thread
/// until private servers have exited, typically well under a second; drop values holding
/// containers inside a Tokio runtime (testcontainers removes them through it).
pub struct Provisioned {
    /// A superuser-ish URL of the server's maintenance database (allowed to create databases).
    /// Tests should use [`fresh_database`](Self::fresh_database) rather than this database.
    pub database_url: String,
    /// The broker (plain TCP, anonymous).
    pub mqtt: MqttEndpoint,
    /// Which rung supplied each service.
    pub kind: ProvisionedKind,
    /// The rungs tried before, and why they did not supply the service.
    pub skipped: Vec<Attempt>,
    _guards: Vec<Guard>,
}

impl fmt::Debug for Provisioned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provisioned")
            .field("database_url", &redact_url(&self.database_url))
            .field("mqtt", &self.mqtt)
            .field("kind", &self.kind)
            .field("skipped", &self.skipped)
            .field("process_ids", &self.process_ids())
            .finish()
    }
}

impl Provisioned {
    /// Creates a database of its own for one test; it is dropped when the value drops.
    pub async fn fresh_database(&self) -> Result<TestDatabase, ProvisionError> {
        TestDatabase::create(&self.database_url).await
    }

    /// A topic root of its own for one test, like `bst-1a2b3c4d5e6f`.
    pub fn topic_root(&self) -> String {
        unique_topic_root()
    }

    /// The process ids of servers started by the process rung (empty for other rungs).
    pub fn process_ids(&self) -> Vec<u32> {
        self._guards
            .iter()
            .filter_map(|guard| match guard {
                Guard::Postgres(postgres) => Some(postgres.pid()),
                Guard::Mosquitto(mosquitto) => mosquitto.pid(),
                #[cfg(feature = "containers")]
                Guard::Container(_) => None,
            })
            .collect()
    }

    /// The ids of Docker containers started by the container rung (empty for other rungs).
    pub fn container_ids(&self) -> Vec<String> {
        #[cfg(feature = "containers")]
        {
            self._guards
                .iter()
                .filter_map(|guard| match guard {
                    Guard::Container(container) => Some(container.id().to_owned()),
                    _ => None,
                })
                .collect()
        }
        #[cfg(not(feature = "containers"))]
        {
            Vec::new()
        }
    }
}

/// What one rung did for one service.
enum Outcome<T> {
    Ready(T, Option<Guard>),
    Skipped(String),
    Failed(String),
}

/// Climbs the ladder with a fixed set of [`ProvisionOptions`].
#[derive(Debug, Clone, Default)]
pub struct Provisioner {
    options: ProvisionOptions,
}

impl Provisioner {
    /// A provisioner with these options.
    pub fn new(options: ProvisionOptions) -> Self {
        Self { options }
    }

    /// A provisioner configured from the process environment (read once, here).
    pub fn from_env() -> Result<Self, ProvisionError> {
        ProvisionOptions::from_env(&ProvisionEnv::from_process_env()).map(Self::new)
    }

    /// The options in use.
    pub fn options(&self) -> &ProvisionOptions {
        &self.options
    }

    /// Provisions PostgreSQL, then the broker. Everything started for the database is stopped
    /// again if the broker cannot be provisioned.
    pub async fn provision(&self) -> Result<Provisioned, ProvisionError> {
        if !self.options.rungs.contains(&Rung::Explicit) {
            let ignored: Vec<&str> = [
                self.options
                    .explicit_database_url
                    .as_ref()
                    .map(|explicit| explicit.source),
                self.options
                    .explicit_mqtt
                    .as_ref()
                    .map(|explicit| explicit.source),
            ]
            .into_iter()
            .flatten()
            .collect();
            if !ignored.is_empty() {
                tracing::info!(
                    ?ignored,
                    "explicit URLs ignored: {ENV_PROVISION} does not list `explicit`"
                );
            }
        }
        let mut ladder = Ladder {
            options: &self.options,
            docker_missing: None,
            skipped: Vec::new(),
            guards: Vec::new(),
        };
        let (database_url, database_rung) = ladder.database().await?;
        let (mqtt, mqtt_rung) = ladder.mqtt().await?;
        Ok(Provisioned {
            database_url,
            mqtt,
            kind: ProvisionedKind {
                database: database_rung,
                mqtt: mqtt_rung,
            },
            skipped: ladder.skipped,
            _guards: ladder.guards,
        })
    }
}

/// State of one climb.
struct Ladder<'a> {
    options: &'a ProvisionOptions,
    /// Once Docker is known to be absent, the second service skips the rung with the same reason.
    #[cfg_attr(not(feature = "containers"), allow(dead_code))]
    docker_missing: Option<String>,
    skipped: Vec<Attempt>,
    guards: Vec<Guard>,
}

impl Ladder<'_> {
    /// Records the outcome of one rung; returns the value when the rung supplied it.
    fn record<T>(&mut self, service: Service, rung: Rung, outcome: Outcome<T>) -> Option<T> {
        let outcome = match outcome {
            Outcome::Ready(value, guard) => {
                tracing::info!(service = %service, rung = %rung, "provisioned");
                self.guards.extend(guard);
                return Some(value);
            }
            Outcome::Skipped(reason) => {
                tracing::info!(service = %service, rung = %rung, %reason, "provisioning rung skipped");
                AttemptOutcome::Skipped(reason)
            }
            Outcome::Failed(reason) => {
                tracing::warn!(service = %service, rung = %rung, %reason, "provisioning rung failed");
                AttemptOutcome::Failed(reason)
            }
        };
        self.skipped.push(Attempt {
            service,
            rung,
            outcome,
        });
        None
    }

    fn nothing_answered(&self, service: Service) -> ProvisionError {
        ProvisionError::NothingAnswered {
            service,
            attempts: self
                .skipped
                .iter()
                .filter(|attempt| attempt.service == service)
                .cloned()
                .collect(),
        }
    }

    async fn database(&mut self) -> Result<(String, Rung), ProvisionError> {
        let options = self.options;
        for &rung in &options.rungs {
            let outcome = match rung {
                Rung::Explicit => match &options.explicit_database_url {
                    None => Outcome::Skipped(format!(
                        "neither {ENV_DATABASE_URL} nor {ENV_PLAIN_DATABASE_URL} is set"
                    )),
                    Some(explicit) => {
                        probe::postgres(&explicit.value, options.connect_timeout)
                            .await
                            .map_err(|reason| ProvisionError::ExplicitUnreachable {
                                service: Service::Database,
                                var: explicit.source,
                                url: redact_url(&explicit.value),
                                reason,
                            })?;
                        Outcome::Ready(explicit.value.clone(), None)
                    }
                },
                Rung::Containers => self.database_container().await,
                Rung::LocalServices => {
                    let url = &options.local_database_url;
                    match probe::postgres(url, options.connect_timeout).await {
                        Ok(()) => Outcome::Ready(url.clone(), None),
                        Err(reason) => Outcome::Skipped(format!(
                            "nothing usable answers at {}: {reason}",
                            redact_url(url)
                        )),
                    }
                }
                Rung::LocalProcesses => {
                    let started = PostgresProcess::start_with(
                        options.postgres_bin_dir.as_deref(),
                        options.startup_timeout,
                    )
                    .await;
                    match started {
                        Ok(postgres) => {
                            let url = postgres.url().to_owned();
                            Outcome::Ready(url, Some(Guard::Postgres(postgres)))
                        }
                        Err(error @ ProvisionError::BinaryNotFound { .. }) => {
                            Outcome::Skipped(error.to_string())
                        }
                        Err(error) => Outcome::Failed(error.to_string()),
                    }
                }
            };
            if let Some(url) = self.record(Service::Database, rung, outcome) {
                return Ok((url, rung));
            }
        }
        Err(self.nothing_answered(Service::Database))
    }

    async fn mqtt(&mut self) -> Result<(MqttEndpoint, Rung), ProvisionError> {
        let options = self.options;
        for &rung in &options.rungs {
            let outcome = match rung {
                Rung::Explicit => match &options.explicit_mqtt {
                    None => Outcome::Skipped(format!("{ENV_MQTT_URL} is not set")),
                    Some(explicit) => {
                        probe::mqtt(&explicit.value, options.connect_timeout)
                            .await
                            .map_err(|reason| ProvisionError::ExplicitUnreachable {
                                service: Service::Mqtt,
                                var: explicit.source,
                                url: explicit.value.url(),
                                reason,
                            })?;
                        Outcome::Ready(explicit.value.clone(), None)
                    }
                },
                Rung::Containers => self.mqtt_container().await,
                Rung::LocalServices => {
                    let endpoint = &options.local_mqtt;
                    match probe::mqtt(endpoint, options.connect_timeout).await {
                        Ok(()) => Outcome::Ready(endpoint.clone(), None),
                        Err(reason) => Outcome::Skipped(format!(
                            "nothing usable answers at {endpoint}: {reason}"
                        )),
                    }
                }
                Rung::LocalProcesses => {
                    let started = MosquittoProcess::start_with(
                        options.mosquitto_bin.as_deref(),
                        options.startup_timeout,
                    )
                    .await;
                    match started {
                        Ok(mosquitto) => {
                            let endpoint = mosquitto.endpoint();
                            Outcome::Ready(endpoint, Some(Guard::Mosquitto(mosquitto)))
                        }
                        Err(error @ ProvisionError::BinaryNotFound { .. }) => {
                            Outcome::Skipped(error.to_string())
                        }
                        Err(error) => Outcome::Failed(error.to_string()),
                    }
                }
            };
            if let Some(endpoint) = self.record(Service::Mqtt, rung, outcome) {
                return Ok((endpoint, rung));
            }
        }
        Err(self.nothing_answered(Service::Mqtt))
    }

    #[cfg(not(feature = "containers"))]
    async fn database_container(&mut self) -> Outcome<String> {
        Outcome::Skipped(NO_CONTAINERS_FEATURE.to_owned())
    }

    #[cfg(not(feature = "containers"))]
    async fn mqtt_container(&mut self) -> Outcome<MqttEndpoint> {
        Outcome::Skipped(NO_CONTAINERS_FEATURE.to_owned())
    }

    #[cfg(feature = "containers")]
    async fn database_container(&mut self) -> Outcome<String> {
        if let Some(reason) = &self.docker_missing {
            return Outcome::Skipped(reason.clone());
        }
        match containers::postgres(&self.options.postgres_image_tag).await {
            Ok((url, guard)) => Outcome::Ready(url, Some(Guard::Container(Box::new(guard)))),
            Err(failure) => self.container_failure(failure),
        }
    }

    #[cfg(feature = "containers")]
    async fn mqtt_container(&mut self) -> Outcome<MqttEndpoint> {
        if let Some(reason) = &self.docker_missing {
            return Outcome::Skipped(reason.clone());
        }
        match containers::mosquitto().await {
            Ok((endpoint, guard)) => {
                Outcome::Ready(endpoint, Some(Guard::Container(Box::new(guard))))
            }
            Err(failure) => self.container_failure(failure),
        }
    }

    #[cfg(feature = "containers")]
    fn container_failure<T>(&mut self, failure: containers::ContainerFailure) -> Outcome<T> {
        match failure {
            containers::ContainerFailure::NoEngine(error) => {
                let reason = format!("no Docker engine answers ({error})");
                self.docker_missing = Some(reason.clone());
                Outcome::Skipped(reason)
            }
            containers::ContainerFailure::Failed(error) => Outcome::Failed(error),
        }
    }
}

#[cfg(not(feature = "containers"))]
const NO_CONTAINERS_FEATURE: &str = "built without the `containers` feature";

static SHARED: tokio::sync::OnceCell<Provisioned> = tokio::sync::OnceCell::const_new();

/// One provision per process, configured from the environment, for tests to share. The first
/// caller provisions; a failure is returned to that caller and the next caller tries again.
///
/// Hold only URLs and endpoints from it: pools and MQTT clients belong to one Tokio runtime,
/// and every `#[tokio::test]` has its own. A `static` is never dropped, so servers of the
/// process rung are stopped and their directories removed by their supervisors when the test
/// binary exits (see [`PostgresProcess`]); containers are left to Docker.
pub async fn shared() -> Result<&'static Provisioned, ProvisionError> {
    SHARED
        .get_or_try_init(|| async { Provisioner::from_env()?.provision().await })
        .await
}
