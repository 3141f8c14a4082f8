//! The container rung (feature `containers`): PostgreSQL and Mosquitto in Docker through
//! testcontainers-modules.
//!
//! Without a Docker engine testcontainers fails within a millisecond
//! (`ClientError::Init(SocketNotFoundError)`, or a refused connection when `DOCKER_HOST` points
//! at nothing); that makes the rung unavailable, not the ladder fail. Containers are removed
//! when their guard drops, which testcontainers does through the current Tokio runtime: drop a
//! [`Provisioned`](super::Provisioned) holding containers inside a runtime.

use std::error::Error as _;

use testcontainers_modules::mosquitto::Mosquitto;
use testcontainers_modules::postgres::Postgres;
use testcontainers_modules::testcontainers::bollard::errors::Error as BollardError;
use testcontainers_modules::testcontainers::core::error::ClientError;
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt, TestcontainersError};

use super::options::MqttEndpoint;

/// A running container, removed on drop.
pub(crate) enum ContainerGuard {
    Postgres(ContainerAsync<Postgres>),
    Mosquitto(ContainerAsync<Mosquitto>),
}

impl ContainerGuard {
    pub(crate) fn id(&self) -> &str {
        match self {
            Self::Postgres(container) => container.id(),
            Self::Mosquitto(container) => container.id(),
        }
    }
}

/// Why the rung did not supply a service.
pub(crate) enum ContainerFailure {
    /// No Docker engine answers: skip the rung (for every service).
    NoEngine(String),
    /// The engine answered but the container did not come up.
    Failed(String),
}

fn classify(error: TestcontainersError) -> ContainerFailure {
    let text = error.to_string();
    let no_engine = match &error {
        TestcontainersError::Client(ClientError::Init(_)) => true,
        // DOCKER_HOST naming a port where nothing listens only shows up at the first request,
        // as a connect error inside whichever call came first. The client error does not
        // expose the bollard error as its `source`, so look inside by hand.
        TestcontainersError::Client(
            ClientError::CreateContainer(inner)
            | ClientError::ListContainers(inner)
            | ClientError::InspectContainer(inner)
            | ClientError::StartContainer(inner)
            | ClientError::PullImage { err: inner, .. },
        ) => cannot_connect(inner),
        _ => false,
    };
    if no_engine {
        ContainerFailure::NoEngine(text)
    } else {
        ContainerFailure::Failed(text)
    }
}

fn cannot_connect(error: &BollardError) -> bool {
    if let BollardError::HyperLegacyError { err } = error
        && err.is_connect()
    {
        return true;
    }
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            )
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Starts `postgres:<tag>`; returns its URL and the guard.
pub(crate) async fn postgres(tag: &str) -> Result<(String, ContainerGuard), ContainerFailure> {
    let container = Postgres::default()
        .with_tag(tag)
        .start()
        .await
        .map_err(classify)?;
    let port = container.get_host_port_ipv4(5432).await.map_err(classify)?;
    let host = container.get_host().await.map_err(classify)?;
    let url = format!("postgres://postgres:postgres@{host}:{port}/postgres");
    Ok((url, ContainerGuard::Postgres(container)))
}

/// Starts the module's pinned `eclipse-mosquitto` image (anonymous listener on 1883).
pub(crate) async fn mosquitto() -> Result<(MqttEndpoint, ContainerGuard), ContainerFailure> {
    let container = Mosquitto::default().start().await.map_err(classify)?;
    let port = container.get_host_port_ipv4(1883).await.map_err(classify)?;
    let host = container.get_host().await.map_err(classify)?;
    Ok((
        MqttEndpoint::new(host.to_string(), port),
        ContainerGuard::Mosquitto(container),
    ))
}
