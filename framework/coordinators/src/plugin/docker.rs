//! The Docker runtime (feature `docker`): a plugin's `docker` section becomes a container
//! named `bigskies-plugin-<guid>`, labelled with the plugin id, through the engine API
//! (`bollard`). The image is pulled when it is not present.

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, RemoveContainerOptions, StopContainerOptions,
};
use futures::StreamExt as _;
use futures::future::BoxFuture;
use std::collections::{BTreeMap, HashMap};

use super::runtime::{ContainerRuntime, PluginSpec, RuntimeError, RuntimeStatus};

#[derive(Debug, Clone)]
pub struct DockerRuntime {
    docker: Docker,
    /// What the deployment gives every plugin (broker, topic root); the manifest's own
    /// `environment` comes after it and may override it.
    env: BTreeMap<String, String>,
}

fn other(e: bollard::errors::Error) -> RuntimeError {
    RuntimeError::Other(e.to_string())
}

impl DockerRuntime {
    /// Connect to the local engine (socket or `DOCKER_HOST`); containers get `env`.
    pub fn connect(env: BTreeMap<String, String>) -> Result<Self, RuntimeError> {
        Ok(Self {
            docker: Docker::connect_with_local_defaults().map_err(other)?,
            env,
        })
    }

    async fn start_inner(&self, spec: &PluginSpec) -> Result<String, RuntimeError> {
        let d = spec
            .manifest
            .docker
            .as_ref()
            .ok_or_else(|| RuntimeError::Unsupported {
                runtime: "docker",
                why: "the manifest has no docker section".into(),
            })?;
        if self.docker.inspect_image(&d.image).await.is_err() {
            let mut pull = self.docker.create_image(
                Some(CreateImageOptions {
                    from_image: Some(d.image.clone()),
                    ..Default::default()
                }),
                None,
                None,
            );
            while let Some(step) = pull.next().await {
                step.map_err(|e| RuntimeError::Start(format!("pulling {}: {e}", d.image)))?;
            }
        }
        // One entry per name: the deployment's, overridden by the manifest's, and the id.
        let mut vars = self.env.clone();
        vars.extend(d.environment.clone());
        vars.insert("BIGSKIES_PLUGIN_ID".into(), spec.guid.to_string());
        let env: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut exposed = Vec::new();
        let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        for p in &d.ports {
            let (host, container) = p.split_once(':').unwrap_or((p.as_str(), p.as_str()));
            let key = if container.contains('/') {
                container.to_owned()
            } else {
                format!("{container}/tcp")
            };
            exposed.push(key.clone());
            bindings.insert(
                key,
                Some(vec![PortBinding {
                    host_ip: None,
                    host_port: Some(host.to_owned()),
                }]),
            );
        }
        let body = ContainerCreateBody {
            image: Some(d.image.clone()),
            env: Some(env),
            exposed_ports: Some(exposed),
            labels: Some(HashMap::from([(
                "bigskies.plugin".to_owned(),
                spec.guid.to_string(),
            )])),
            host_config: Some(HostConfig {
                port_bindings: Some(bindings),
                binds: (!d.volumes.is_empty()).then(|| d.volumes.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = format!("bigskies-plugin-{}", spec.guid);
        // A leftover container of an earlier run would make the name clash.
        let _ = self
            .docker
            .remove_container(
                &name,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(|e| RuntimeError::Start(e.to_string()))?;
        self.docker
            .start_container(&created.id, None)
            .await
            .map_err(|e| RuntimeError::Start(e.to_string()))?;
        Ok(created.id)
    }
}

impl ContainerRuntime for DockerRuntime {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn start<'a>(&'a self, spec: &'a PluginSpec) -> BoxFuture<'a, Result<String, RuntimeError>> {
        Box::pin(self.start_inner(spec))
    }

    fn stop<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(async move {
            self.docker
                .stop_container(handle, None::<StopContainerOptions>)
                .await
                .map_err(other)?;
            self.docker
                .remove_container(
                    handle,
                    Some(RemoveContainerOptions {
                        force: true,
                        ..Default::default()
                    }),
                )
                .await
                .map_err(other)
        })
    }

    fn status<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, Result<RuntimeStatus, RuntimeError>> {
        Box::pin(async move {
            match self.docker.inspect_container(handle, None).await {
                Ok(c) => {
                    let state = c.state.unwrap_or_default();
                    Ok(if state.running.unwrap_or(false) {
                        RuntimeStatus::Running
                    } else {
                        RuntimeStatus::Exited(state.exit_code.and_then(|c| i32::try_from(c).ok()))
                    })
                }
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => Ok(RuntimeStatus::Unknown),
                Err(e) => Err(other(e)),
            }
        })
    }
}
