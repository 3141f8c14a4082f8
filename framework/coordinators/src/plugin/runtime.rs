//! Where plugins run: the [`ContainerRuntime`] trait, and the local-process runtime that
//! starts a plugin's `process.command` as a child process (what the tests use, and what a
//! host without Docker uses). The Docker runtime is in [`super::docker`] behind the `docker`
//! feature.
//!
//! # Plugins die with the coordinator
//!
//! A local plugin must not outlive its coordinator, even one killed with SIGKILL (which runs no
//! destructor). Linux's `PR_SET_PDEATHSIG` needs `unsafe` (`pre_exec`), which this workspace
//! denies, so each plugin runs under a small `/bin/sh` supervisor ([`SUPERVISOR`]) whose stdin
//! is a pipe from the coordinator, as the test harness does for its private servers:
//!
//! * The supervisor is the leader of a new process group (`process_group(0)`, a safe std API),
//!   which the plugin and everything it starts inherit.
//! * Each line written into the pipe is a signal for that group (a deliberate stop).
//! * When the coordinator ends, for any reason, the kernel closes the pipe; the supervisor sees
//!   end of file, sends SIGTERM to the group, and SIGKILL after [`OWNER_GONE_GRACE`] to whatever
//!   is left.
//! * When the plugin exits by itself, its leftover children are stopped as well and the
//!   supervisor exits with the plugin's status, so exits are noticed as before.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::AsyncWriteExt as _;
use tokio::process::{Child, ChildStdin, Command};
use uuid::Uuid;

/// The only variables a local plugin inherits from the coordinator's environment.
pub const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/// Seconds a plugin's process group gets between SIGTERM and SIGKILL once the coordinator is
/// gone.
pub const OWNER_GONE_GRACE: u32 = 5;

/// The plugin supervisor. Arguments: the grace in seconds, then the plugin's command.
///
/// - The plugin starts before any trap is set, so it keeps the default signal dispositions; it
///   gets no stdin and no copy of the pipe.
/// - The supervisor and its watcher ignore SIGTERM/SIGINT/SIGHUP so that signalling the whole
///   group (`kill -TERM -$$`, `$$` being the group id) reaches the plugin and its children only.
/// - The watcher turns each line read from the pipe into a signal for the group; at end of file
///   (the coordinator is gone) it sends SIGTERM, waits up to the grace for the plugin, and
///   sends SIGKILL to the group (itself included).
/// - When the plugin exits, the supervisor stops the watcher, sends SIGTERM to what is left of
///   the group, and exits with the plugin's status.
pub const SUPERVISOR: &str = r#"
grace=$1
shift
exec 3<&0
"$@" 3<&- </dev/null &
plugin=$!
trap '' TERM INT HUP
{
    while read -r signal <&3; do
        kill -"$signal" -$$ 2>/dev/null
    done
    kill -TERM -$$ 2>/dev/null
    waited=0
    while kill -0 "$plugin" 2>/dev/null && [ "$waited" -lt "$grace" ]; do
        sleep 1
        waited=$((waited + 1))
    done
    kill -KILL -$$ 2>/dev/null
} >/dev/null 2>&1 &
watcher=$!
exec 3<&-
wait "$plugin"
status=$?
kill -KILL "$watcher" 2>/dev/null
wait "$watcher" 2>/dev/null
kill -TERM -$$ 2>/dev/null
exit "$status"
"#;

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

/// A plugin under its supervisor.
#[derive(Debug)]
struct Supervised {
    shell: Child,
    /// The pipe to the supervisor: signal names, one a line; closing it stops the plugin.
    control: Option<ChildStdin>,
}

impl Supervised {
    /// Ask the supervisor to signal the plugin's process group.
    async fn signal(&mut self, signal: &str) {
        if let Some(pipe) = self.control.as_mut() {
            let line = format!("{signal}\n");
            if let Err(e) = pipe.write_all(line.as_bytes()).await {
                // The supervisor is gone already; waiting collects it.
                tracing::debug!(error = %e, "plugin supervisor did not take a signal");
            }
        }
    }
}

/// Runs a plugin's `process` section as a child of this coordinator, under a supervisor that
/// stops it (and its children) when the coordinator ends, even by SIGKILL (see the module
/// documentation). Output goes to `plugin.log` in the plugin directory.
#[derive(Debug)]
pub struct LocalProcessRuntime {
    /// Added to every plugin's environment (bus URL, topic root, ...).
    env: BTreeMap<String, String>,
    children: Mutex<HashMap<String, Supervised>>,
    /// How long a plugin must stay up after spawning to count as started.
    settle: Duration,
}

impl Default for LocalProcessRuntime {
    fn default() -> Self {
        Self::new(BTreeMap::new())
    }
}

impl LocalProcessRuntime {
    pub fn new(env: BTreeMap<String, String>) -> Self {
        Self {
            env,
            children: Mutex::new(HashMap::new()),
            settle: Duration::from_millis(200),
        }
    }

    fn children(&self) -> std::sync::MutexGuard<'_, HashMap<String, Supervised>> {
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
        let program = Self::program(&spec.dir, &p.command);
        let mut cmd = Command::new("/bin/sh");
        // A plugin is third-party code: it gets none of the coordinator's environment (which
        // holds the JWT secret, the admin password, the database URL and the coordinator's
        // own broker credentials), only what a program needs to run plus what the deployment
        // gives plugins (`self.env`) and what its manifest asks for.
        cmd.env_clear();
        for key in INHERITED_ENV {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        cmd.arg("-c")
            .arg(SUPERVISOR)
            .arg("bigskies-plugin-supervisor")
            .arg(OWNER_GONE_GRACE.to_string())
            .arg(&program)
            .args(&p.args)
            .current_dir(&spec.dir)
            .envs(&self.env)
            .envs(&p.env)
            .env("BIGSKIES_PLUGIN_ID", spec.guid.to_string())
            .env("BIGSKIES_PLUGIN_DIR", &spec.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            // Its own process group, so the plugin's whole tree can be signalled.
            .process_group(0);
        // No kill_on_drop: killing the supervisor would orphan the plugin. Dropping the pipe
        // stops both.
        let mut shell = cmd
            .spawn()
            .map_err(|e| RuntimeError::Start(format!("{}: {e}", p.command)))?;
        let control = shell.stdin.take();
        let mut child = Supervised { shell, control };
        // A plugin that dies at once (bad arguments, missing program) did not start.
        tokio::time::sleep(self.settle).await;
        if let Ok(Some(status)) = child.shell.try_wait() {
            let why = match status.code() {
                Some(127) => format!("{}: command not found", program.display()),
                Some(126) => format!("{}: not executable", program.display()),
                _ => format!("exited at once with {status}"),
            };
            return Err(RuntimeError::Start(why));
        }
        let handle = format!("local-{}", child.shell.id().unwrap_or_default());
        self.children().insert(handle.clone(), child);
        Ok(handle)
    }

    async fn stop_inner(&self, handle: &str) -> Result<(), RuntimeError> {
        let Some(mut child) = self.children().remove(handle) else {
            return Ok(());
        };
        // Ask politely first, then insist; both reach the plugin's whole process group.
        child.signal("TERM").await;
        if tokio::time::timeout(Duration::from_secs(5), child.shell.wait())
            .await
            .is_ok()
        {
            return Ok(());
        }
        child.signal("KILL").await;
        match tokio::time::timeout(Duration::from_secs(5), child.shell.wait()).await {
            Ok(_) => Ok(()),
            Err(_) => {
                // The supervisor itself is stuck: closing its pipe is the last word.
                child.control = None;
                Err(RuntimeError::Other(format!("{handle} did not stop")))
            }
        }
    }

    fn status_inner(&self, handle: &str) -> RuntimeStatus {
        let mut children = self.children();
        let Some(child) = children.get_mut(handle) else {
            return RuntimeStatus::Unknown;
        };
        match child.shell.try_wait() {
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

/// Two runtimes, chosen per plugin by its manifest: plugins with a `docker` section run in
/// `containers`, the others in `processes`. A Docker engine on the machine therefore does not
/// stop a plugin that only declares a local command from starting. Handles of the container
/// runtime are kept as `docker:<handle>` so `stop` and `status` reach the runtime that started
/// the plugin.
#[derive(Debug)]
pub struct ByManifest {
    pub containers: std::sync::Arc<dyn ContainerRuntime>,
    pub processes: std::sync::Arc<dyn ContainerRuntime>,
}

const CONTAINER_HANDLE: &str = "docker:";

impl ByManifest {
    fn route<'h>(&self, handle: &'h str) -> (&dyn ContainerRuntime, &'h str) {
        match handle.strip_prefix(CONTAINER_HANDLE) {
            Some(h) => (&*self.containers, h),
            None => (&*self.processes, handle),
        }
    }
}

impl ContainerRuntime for ByManifest {
    fn name(&self) -> &'static str {
        "docker+local"
    }
    fn start<'a>(&'a self, spec: &'a PluginSpec) -> BoxFuture<'a, Result<String, RuntimeError>> {
        Box::pin(async move {
            if spec.manifest.docker.is_some() {
                let h = self.containers.start(spec).await?;
                Ok(format!("{CONTAINER_HANDLE}{h}"))
            } else {
                self.processes.start(spec).await
            }
        })
    }
    fn stop<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>> {
        let (rt, h) = self.route(handle);
        rt.stop(h)
    }
    fn status<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, Result<RuntimeStatus, RuntimeError>> {
        let (rt, h) = self.route(handle);
        rt.status(h)
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

    /// A container runtime that can run nothing (an engine without images or registry).
    #[derive(Debug)]
    struct NoContainers;

    impl ContainerRuntime for NoContainers {
        fn name(&self) -> &'static str {
            "none"
        }
        fn start<'a>(&'a self, _: &'a PluginSpec) -> BoxFuture<'a, Result<String, RuntimeError>> {
            Box::pin(async {
                Err(RuntimeError::Unsupported {
                    runtime: "none",
                    why: "no images".into(),
                })
            })
        }
        fn stop<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>> {
            Box::pin(async { Err(RuntimeError::Other("not mine".into())) })
        }
        fn status<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<RuntimeStatus, RuntimeError>> {
            Box::pin(async { Err(RuntimeError::Other("not mine".into())) })
        }
    }

    #[tokio::test]
    async fn a_plugin_without_a_docker_section_runs_locally_beside_an_engine() {
        let d = tempfile::tempdir().unwrap();
        let rt = ByManifest {
            containers: std::sync::Arc::new(NoContainers),
            processes: std::sync::Arc::new(LocalProcessRuntime::new(BTreeMap::new())),
        };
        let h = rt.start(&spec(d.path(), "sleep", &["30"])).await.unwrap();
        assert!(!h.starts_with(CONTAINER_HANDLE), "{h}");
        assert_eq!(rt.status(&h).await.unwrap(), RuntimeStatus::Running);
        rt.stop(&h).await.unwrap();
        // A container handle goes to the container runtime.
        assert!(rt.status("docker:abc").await.is_err());
    }

    #[tokio::test]
    async fn plugins_get_the_deployment_env_and_nothing_of_the_coordinator() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("env.txt");
        let script = format!("env > {}; sleep 30", out.display());
        let rt = LocalProcessRuntime::new(BTreeMap::from([(
            "BIGSKIES_MQTT_URL".to_owned(),
            "mqtt://plugin:pw@broker:1883".to_owned(),
        )]));
        // The test process plays the coordinator: whatever secret it has must not reach the
        // plugin. (HOME and PATH are set in any test environment; CARGO_* variables are set by
        // cargo for the test and stand for the coordinator's own variables.)
        assert!(std::env::var_os("CARGO_PKG_NAME").is_some());
        let h = rt
            .start(&spec(d.path(), "sh", &["-c", &script]))
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let text = loop {
            if let Ok(t) = std::fs::read_to_string(&out)
                && t.contains("BIGSKIES_PLUGIN_ID=")
            {
                break t;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the plugin wrote no env"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        rt.stop(&h).await.unwrap();
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            .collect();
        assert!(
            text.contains("BIGSKIES_MQTT_URL=mqtt://plugin:pw@broker:1883"),
            "{text}"
        );
        assert!(names.contains(&"PATH"), "{text}");
        assert!(!names.iter().any(|n| n.starts_with("CARGO")), "{text}");
        // Only the allowed names, the deployment's, the plugin's own and the shell's.
        for n in names {
            assert!(
                INHERITED_ENV.contains(&n)
                    || n.starts_with("BIGSKIES_")
                    || matches!(n, "PWD" | "SHLVL" | "_" | "OLDPWD"),
                "{n} reached the plugin: {text}"
            );
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

    /// Whether `pid` is a live process (zombies count as dead).
    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
            !matches!(state, Some('Z' | 'X'))
        })
    }

    /// Start `sh -c script` and wait for the pid it writes to `child.pid`.
    async fn start_tree(rt: &LocalProcessRuntime, dir: &Path, script: &str) -> (String, u32) {
        let h = rt.start(&spec(dir, "sh", &["-c", script])).await.unwrap();
        for _ in 0..200 {
            if let Some(pid) = std::fs::read_to_string(dir.join("child.pid"))
                .ok()
                .and_then(|t| t.trim().parse().ok())
            {
                return (h, pid);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the plugin never wrote child.pid");
    }

    async fn wait_dead(pid: u32) {
        for _ in 0..400 {
            if !alive(pid) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("process {pid} still runs");
    }

    #[tokio::test]
    async fn stopping_a_plugin_stops_its_children_too() {
        let d = tempfile::tempdir().unwrap();
        let rt = LocalProcessRuntime::default();
        let (h, child) = start_tree(&rt, d.path(), "sleep 300 & echo $! > child.pid; wait").await;
        assert!(alive(child));
        rt.stop(&h).await.unwrap();
        wait_dead(child).await;
    }

    #[tokio::test]
    async fn a_plugin_that_exits_takes_its_leftovers_along() {
        let d = tempfile::tempdir().unwrap();
        let rt = LocalProcessRuntime::default();
        let (h, child) = start_tree(
            &rt,
            d.path(),
            "sleep 300 & echo $! > child.pid; sleep 0.5; exit 4",
        )
        .await;
        wait_dead(child).await;
        assert_eq!(rt.status(&h).await.unwrap(), RuntimeStatus::Exited(Some(4)));
    }

    #[tokio::test]
    async fn dropping_the_runtime_stops_its_plugins() {
        let d = tempfile::tempdir().unwrap();
        let rt = LocalProcessRuntime::default();
        let (_h, child) = start_tree(&rt, d.path(), "sleep 300 & echo $! > child.pid; wait").await;
        drop(rt);
        wait_dead(child).await;
    }
}
