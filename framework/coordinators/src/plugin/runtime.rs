//! Where plugins run: the [`ContainerRuntime`] trait, and the local-process runtime that
//! starts a plugin's `process.command` as a child process (what the tests use, and what a
//! host without Docker uses). The Docker runtime is in [`super::docker`] behind the `docker`
//! feature.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::process::{Child, Command};
use uuid::Uuid;

use super::manifest::Manifest;

/// What a runtime needs to start a plugin.
#[derive(Clone, Debug)]
pub struct PluginSpec {
    pub guid: Uuid,
    pub dir: PathBuf,
    pub manifest: Manifest,
}

/// What a runtime knows of a started plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeStatus {
    Running,
    /// It stopped; the exit code when known.
    Exited(Option<i32>),
    /// The runtime does not know this handle (e.g. started by a previous coordinator).
    Unknown,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("the {runtime} runtime cannot run this plugin: {why}")]
    Unsupported { runtime: &'static str, why: String },
    #[error("plugin failed to start: {0}")]
    Start(String),
    #[error("plugin runtime: {0}")]
    Other(String),
}

/// Starts, stops and watches plugins. Handles are opaque strings (a container id, a pid).
pub trait ContainerRuntime: Send + Sync + Debug + 'static {
    fn name(&self) -> &'static str;
    fn start<'a>(&'a self, spec: &'a PluginSpec) -> BoxFuture<'a, Result<String, RuntimeError>>;
    fn stop<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>>;
    fn status<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, Result<RuntimeStatus, RuntimeError>>;
}

/// Runs a plugin's `process` section as a child of this coordinator. Output goes to
/// `plugin.log` in the plugin directory. Children die with the coordinator's runtime handle.
#[derive(Debug, Default)]
pub struct LocalProcessRuntime {
    /// Added to every plugin's environment (bus URL, topic root, ...).
    env: BTreeMap<String, String>,
    children: Mutex<HashMap<String, Child>>,
    /// How long a plugin must stay up after spawning to count as started.
    settle: Duration,
}

impl LocalProcessRuntime {
    pub fn new(env: BTreeMap<String, String>) -> Self {
        Self {
            env,
            children: Mutex::new(HashMap::new()),
            settle: Duration::from_millis(200),
        }
    }

    fn children(&self) -> std::sync::MutexGuard<'_, HashMap<String, Child>> {
        self.children.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn program(dir: &Path, command: &str) -> PathBuf {
        let local = dir.join(command);
        if !Path::new(command).is_absolute() && local.is_file() {
            local
        } else {
            PathBuf::from(command)
        }
    }

    async fn start_inner(&self, spec: &PluginSpec) -> Result<String, RuntimeError> {
        let p = spec
            .manifest
            .process
            .as_ref()
            .ok_or_else(|| RuntimeError::Unsupported {
                runtime: "local",
                why: "the manifest has no process section".into(),
            })?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(spec.dir.join("plugin.log"))
            .map_err(|e| RuntimeError::Start(format!("cannot open plugin.log: {e}")))?;
        let log2 = log
            .try_clone()
            .map_err(|e| RuntimeError::Start(format!("cannot open plugin.log: {e}")))?;
        let mut cmd = Command::new(Self::program(&spec.dir, &p.command));
        cmd.args(&p.args)
            .current_dir(&spec.dir)
            .envs(&self.env)
            .envs(&p.env)
            .env("BIGSKIES_PLUGIN_ID", spec.guid.to_string())
            .env("BIGSKIES_PLUGIN_DIR", &spec.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| RuntimeError::Start(format!("{}: {e}", p.command)))?;
        // A plugin that dies at once (bad arguments, missing library) did not start.
        tokio::time::sleep(self.settle).await;
        if let Ok(Some(status)) = child.try_wait() {
            return Err(RuntimeError::Start(format!("exited at once with {status}")));
        }
        let handle = format!("local-{}", child.id().unwrap_or_default());
        self.children().insert(handle.clone(), child);
        Ok(handle)
    }

    async fn stop_inner(&self, handle: &str) -> Result<(), RuntimeError> {
        let Some(mut child) = self.children().remove(handle) else {
            return Ok(());
        };
        // Ask politely first (SIGTERM through kill(1): this crate forbids unsafe code), then
        // insist.
        if let Some(pid) = child.id() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
        }
        match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
            Ok(_) => Ok(()),
            Err(_) => child
                .kill()
                .await
                .map_err(|e| RuntimeError::Other(format!("cannot kill {handle}: {e}"))),
        }
    }

    fn status_inner(&self, handle: &str) -> RuntimeStatus {
        let mut children = self.children();
        let Some(child) = children.get_mut(handle) else {
            return RuntimeStatus::Unknown;
        };
        match child.try_wait() {
            Ok(None) => RuntimeStatus::Running,
            Ok(Some(status)) => {
                children.remove(handle);
                RuntimeStatus::Exited(status.code())
            }
            Err(_) => RuntimeStatus::Unknown,
        }
    }
}

impl ContainerRuntime for LocalProcessRuntime {
    fn name(&self) -> &'static str {
        "local"
    }
    fn start<'a>(&'a self, spec: &'a PluginSpec) -> BoxFuture<'a, Result<String, RuntimeError>> {
        Box::pin(self.start_inner(spec))
    }
    fn stop<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(self.stop_inner(handle))
    }
    fn status<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, Result<RuntimeStatus, RuntimeError>> {
        Box::pin(async move { Ok(self.status_inner(handle)) })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec(dir: &Path, command: &str, args: &[&str]) -> PluginSpec {
        let m = serde_json::json!({"id": Uuid::new_v4().to_string(), "name": "t", "version": "1",
            "process": {"command": command, "args": args}});
        PluginSpec {
            guid: Uuid::new_v4(),
            dir: dir.to_owned(),
            manifest: serde_json::from_value(m).unwrap(),
        }
    }

    #[tokio::test]
    async fn processes_start_report_and_stop() {
        let d = tempfile::tempdir().unwrap();
        let rt = LocalProcessRuntime::default();
        let h = rt.start(&spec(d.path(), "sleep", &["30"])).await.unwrap();
        assert_eq!(rt.status(&h).await.unwrap(), RuntimeStatus::Running);
        rt.stop(&h).await.unwrap();
        assert_eq!(rt.status(&h).await.unwrap(), RuntimeStatus::Unknown);
    }

    #[tokio::test]
    async fn a_process_that_dies_at_once_did_not_start() {
        let d = tempfile::tempdir().unwrap();
        let rt = LocalProcessRuntime::default();
        let e = rt.start(&spec(d.path(), "false", &[])).await.unwrap_err();
        assert!(matches!(e, RuntimeError::Start(_)), "{e}");
        let e = rt
            .start(&spec(d.path(), "/nonexistent/binary", &[]))
            .await
            .unwrap_err();
        assert!(matches!(e, RuntimeError::Start(_)), "{e}");
    }

    #[tokio::test]
    async fn exits_are_noticed() {
        let d = tempfile::tempdir().unwrap();
        let rt = LocalProcessRuntime::default();
        let h = rt
            .start(&spec(d.path(), "sh", &["-c", "sleep 0.5; exit 3"]))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(rt.status(&h).await.unwrap(), RuntimeStatus::Exited(Some(3)));
    }
}
