//! The "local processes" rung: private `postgres` and `mosquitto` servers on free ports, each in
//! its own temporary directory, stopped and cleaned up on drop.
//!
//! Every server runs under a tiny `/bin/sh` supervisor ([`SUPERVISOR`]) whose stdin is a pipe
//! from this process. Stopping writes a signal name into the pipe; the supervisor signals the
//! server, reaps it and exits, and we reap the supervisor (no zombies). The pipe is also the
//! safety net for owners that never run `Drop` (a `static` shared provision, a crashed or
//! killed test binary): when this process ends for any reason the kernel closes the pipe, the
//! supervisor sees end-of-file, stops the server and removes the temporary directory.
//!
//! PostgreSQL refuses to run as root. When we are root, `initdb`, the server and its supervisor
//! run as the `postgres` user (looked up in `/etc/passwd`; the postgresql package creates it)
//! through `CommandExt::uid`/`gid`, and the temporary directory is handed over to that user.
//! Mosquitto drops privileges by itself when started as root.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::error::ProvisionError;
use super::options::{MqttEndpoint, ProvisionEnv};
use super::probe;

/// Default time a private server may take to become ready.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a server gets to stop after the polite signal before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How often we retry a start that lost the race for a free port.
const PORT_ATTEMPTS: usize = 3;

/// Environment variable telling the supervisor which directory to remove when its owner dies.
const CLEANUP_DIR_VAR: &str = "BIGSKIES_CLEANUP_DIR";

/// The supervisor script. Arguments: the signal for owner-gone shutdown, then the server command.
///
/// - The server gets no stdin (and no copy of the pipe), its stdout joins stderr (the log file).
/// - The server pid is the only line written to stdout.
/// - The watcher subshell turns each line read from the pipe into a signal for the server; at
///   end of file (the owner is gone) it leaves the marker first, then sends the polite signal.
/// - When the server exits, the watcher is stopped and reaped, and the directory is removed only
///   if the marker says the owner is gone (a deliberate stop keeps it, e.g. for a restart).
const SUPERVISOR: &str = r#"
default_signal=$1
shift
exec 3<&0
"$@" 3<&- </dev/null >&2 &
server=$!
echo "$server"
{
    while read -r signal <&3; do
        kill -"$signal" "$server" 2>/dev/null
    done
    if [ -n "$BIGSKIES_CLEANUP_DIR" ]; then : >"$BIGSKIES_CLEANUP_DIR/.owner-gone"; fi
    kill -"$default_signal" "$server" 2>/dev/null
} >/dev/null 2>&1 &
watcher=$!
exec 3<&-
wait "$server"
status=$?
kill "$watcher" 2>/dev/null
wait "$watcher" 2>/dev/null
if [ -n "$BIGSKIES_CLEANUP_DIR" ] && [ -e "$BIGSKIES_CLEANUP_DIR/.owner-gone" ]; then
    rm -rf "$BIGSKIES_CLEANUP_DIR"
fi
exit "$status"
"#;

/// Signals the supervisor knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// PostgreSQL's "fast shutdown".
    Int,
    /// Mosquitto's clean shutdown.
    Term,
    /// No cleanup at all: simulates a crash.
    Kill,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Self::Int => "INT",
            Self::Term => "TERM",
            Self::Kill => "KILL",
        }
    }
}

/// An unprivileged OS account to run a server as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OsUser {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// Finds `name` in passwd-format text (`name:x:uid:gid:gecos:home:shell`).
fn parse_passwd(text: &str, name: &str) -> Option<OsUser> {
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.trim().parse().ok()?;
        let gid = fields.next()?.trim().parse().ok()?;
        Some(OsUser {
            name: name.to_owned(),
            uid,
            gid,
        })
    })
}

/// Looks `name` up in `/etc/passwd` (no NSS: the accounts we need are local system users).
pub(crate) fn lookup_user(name: &str) -> Result<Option<OsUser>, ProvisionError> {
    let text = std::fs::read_to_string("/etc/passwd")
        .map_err(|source| ProvisionError::io("reading /etc/passwd", source))?;
    Ok(parse_passwd(&text, name))
}

/// Whether this process runs with effective uid 0. `/proc/self` belongs to the effective user,
/// which spares us an `unsafe` libc call.
pub(crate) fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// A port that was free a moment ago on 127.0.0.1. Another process can still take it before the
/// server binds, so starts retry on "address already in use".
pub(crate) fn free_port() -> Result<u16, ProvisionError> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|source| ProvisionError::io("finding a free port on 127.0.0.1", source))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.mode() & 0o111 != 0)
}

fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default()
}

/// Debian and Ubuntu keep the server binaries out of `PATH`, one directory per major version;
/// newest first.
fn debian_postgres_dirs() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") else {
        return Vec::new();
    };
    let mut versions: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

const POSTGRES_HINT: &str = "install PostgreSQL (`apt-get install postgresql-15`) \
     or set BIGSKIES_POSTGRES_BIN_DIR to the directory holding initdb and postgres";
const MOSQUITTO_HINT: &str =
    "install Mosquitto (`apt-get install mosquitto`) or set BIGSKIES_MOSQUITTO_BIN";

/// `initdb` and `postgres` from one directory: `bin_dir` if given, else the first of `PATH`
/// and `/usr/lib/postgresql/<newest>/bin` that has both.
fn find_postgres_binaries(bin_dir: Option<&Path>) -> Result<(PathBuf, PathBuf), ProvisionError> {
    let candidates = match bin_dir {
        Some(dir) => vec![dir.to_path_buf()],
        None => {
            let mut dirs = path_dirs();
            dirs.extend(debian_postgres_dirs());
            dirs
        }
    };
    candidates
        .iter()
        .map(|dir| (dir.join("initdb"), dir.join("postgres")))
        .find(|(initdb, postgres)| is_executable(initdb) && is_executable(postgres))
        .ok_or(ProvisionError::BinaryNotFound {
            program: "initdb/postgres",
            searched: candidates,
            hint: POSTGRES_HINT,
        })
}

/// The `mosquitto` binary: `binary` if given, else `PATH`, `/usr/sbin`, `/usr/local/sbin`
/// (the Debian package installs to `/usr/sbin`, which is not in every user's `PATH`).
fn find_mosquitto(binary: Option<&Path>) -> Result<PathBuf, ProvisionError> {
    let candidates = match binary {
        Some(path) => vec![path.to_path_buf()],
        None => {
            let mut dirs = path_dirs();
            dirs.push(PathBuf::from("/usr/sbin"));
            dirs.push(PathBuf::from("/usr/local/sbin"));
            dirs.into_iter().map(|dir| dir.join("mosquitto")).collect()
        }
    };
    candidates
        .iter()
        .find(|path| is_executable(path))
        .cloned()
        .ok_or(ProvisionError::BinaryNotFound {
            program: "mosquitto",
            searched: candidates,
            hint: MOSQUITTO_HINT,
        })
}

/// The last `lines` lines of a log file, for error messages.
fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            let tail = all[all.len().saturating_sub(lines)..].join("\n");
            if tail.trim().is_empty() {
                "(the log is empty)".to_owned()
            } else {
                tail
            }
        }
        Err(error) => format!("(no log: {error})"),
    }
}

fn is_port_clash(log: &str) -> bool {
    log.to_ascii_lowercase().contains("address already in use")
}

/// A server process under the supervisor script; stopping it (or dropping it) waits until the
/// server and the supervisor are both gone.
struct Supervised {
    what: String,
    shell: Child,
    /// Kept open while the server runs: closing it early would look like "owner gone".
    stdin: Option<ChildStdin>,
    pid: u32,
    log: PathBuf,
    graceful: Signal,
    status: Option<ExitStatus>,
}

impl Supervised {
    #[allow(clippy::too_many_arguments)]
    fn spawn(
        what: String,
        program: &Path,
        args: &[&std::ffi::OsStr],
        dir: &Path,
        log: PathBuf,
        user: Option<&OsUser>,
        graceful: Signal,
    ) -> Result<Self, ProvisionError> {
        let log_file = File::create(&log).map_err(|source| {
            ProvisionError::io(format!("creating log file {}", log.display()), source)
        })?;
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("bigskies-supervisor")
            .arg(graceful.name())
            .arg(program)
            .args(args)
            .env(CLEANUP_DIR_VAR, dir)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        if let Some(user) = user {
            command.uid(user.uid).gid(user.gid);
        }
        let mut shell = command.spawn().map_err(|source| {
            ProvisionError::io(format!("starting {what} under /bin/sh"), source)
        })?;
        let stdin = shell.stdin.take();
        let pid = shell.stdout.take().and_then(|stdout| {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).ok()?;
            line.trim().parse::<u32>().ok()
        });
        let mut supervised = Self {
            what,
            shell,
            stdin,
            pid: 0,
            log,
            graceful,
            status: None,
        };
        match pid {
            Some(pid) => {
                supervised.pid = pid;
                Ok(supervised)
            }
            None => {
                supervised.stop(Signal::Kill);
                Err(ProvisionError::Process {
                    what: supervised.what.clone(),
                    reason: format!(
                        "the supervisor did not report a pid; log:\n{}",
                        log_tail(&supervised.log, 20)
                    ),
                })
            }
        }
    }

    /// The exit status once the server (and so the supervisor) has exited.
    fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Ok(Some(status)) = self.shell.try_wait()
        {
            self.finish(status);
        }
        self.status
    }

    fn finish(&mut self, status: ExitStatus) {
        self.status = Some(status);
        // Only now: an earlier close would make the supervisor believe its owner died.
        self.stdin = None;
    }

    fn send(&mut self, signal: Signal) {
        if let Some(stdin) = self.stdin.as_mut()
            && let Err(error) = writeln!(stdin, "{}", signal.name()).and_then(|()| stdin.flush())
        {
            // The supervisor is already gone; waiting below collects it.
            tracing::debug!(what = %self.what, %error, "could not signal the supervisor");
        }
    }

    fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            match self.shell.try_wait() {
                Ok(Some(status)) => {
                    self.finish(status);
                    return Some(status);
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => return None,
                Err(error) => {
                    tracing::warn!(what = %self.what, %error, "waiting for the supervisor failed");
                    return None;
                }
            }
        }
    }

    /// Signals the server and waits (blocking) until it and the supervisor have exited.
    fn stop(&mut self, signal: Signal) {
        if self.try_status().is_some() {
            return;
        }
        self.send(signal);
        if self.wait_for(STOP_GRACE).is_some() {
            return;
        }
        tracing::warn!(what = %self.what, pid = self.pid, "server ignored {}; killing it", signal.name());
        self.send(Signal::Kill);
        if self.wait_for(STOP_GRACE).is_some() {
            return;
        }
        // Last resort: the supervisor itself is stuck. Killing it may orphan the server, but
        // blocking forever in Drop would be worse.
        tracing::error!(what = %self.what, pid = self.pid, "supervisor stuck; killing it");
        let _ = self.shell.kill();
        if let Ok(status) = self.shell.wait() {
            self.finish(status);
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop(self.graceful);
    }
}

/// Why a started server did not become ready.
enum NotReady {
    /// It exited; the text is the tail of its log.
    Exited(String),
    /// It is still running but did not answer in time; the text is the last probe error.
    TimedOut(String),
}

/// Polls `probe` until it succeeds, the server exits, or `timeout` passes.
async fn wait_until_ready<F, Fut>(
    server: &mut Supervised,
    timeout: Duration,
    mut probe: F,
) -> Result<(), NotReady>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if server.try_status().is_some() {
            return Err(NotReady::Exited(log_tail(&server.log, 20)));
        }
        let last_error = match probe().await {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(NotReady::TimedOut(last_error));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A private PostgreSQL cluster on a free port in a temporary directory: `initdb` with trust
/// authentication for user `postgres`, started with durability off (fsync, synchronous commit,
/// full-page writes) because test data is thrown away. Dropping it shuts the server down
/// (SIGINT, "fast shutdown"), waits for it and removes the directory.
pub struct PostgresProcess {
    // Declared before `dir`: the server must be gone before its directory is removed.
    server: Supervised,
    port: u16,
    url: String,
    dir: TempDir,
}

impl std::fmt::Debug for PostgresProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresProcess")
            .field("pid", &self.server.pid)
            .field("url", &self.url)
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl PostgresProcess {
    /// Starts a cluster with the binaries from `BIGSKIES_POSTGRES_BIN_DIR` or the usual places.
    pub async fn start() -> Result<Self, ProvisionError> {
        let env = ProvisionEnv::from_process_env();
        let bin_dir = env.postgres_bin_dir.map(PathBuf::from);
        Self::start_with(bin_dir.as_deref(), DEFAULT_STARTUP_TIMEOUT).await
    }

    /// Starts a cluster with the binaries in `bin_dir` (or the usual places when `None`),
    /// waiting at most `startup_timeout` for `initdb` and again for the server to accept logins.
    pub async fn start_with(
        bin_dir: Option<&Path>,
        startup_timeout: Duration,
    ) -> Result<Self, ProvisionError> {
        let (initdb, postgres) = find_postgres_binaries(bin_dir)?;
        let user = if running_as_root() {
            Some(
                lookup_user("postgres")?
                    .ok_or(ProvisionError::NoUnprivilegedUser { user: "postgres" })?,
            )
        } else {
            None
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix("bigskies-pg-");
        // The unprivileged user must be able to reach the directory; root's TMPDIR may sit
        // below a private home, /tmp never does.
        let dir = match &user {
            Some(_) => builder.tempdir_in("/tmp"),
            None => builder.tempdir(),
        }
        .map_err(|source| ProvisionError::io("creating a temporary directory", source))?;
        if let Some(user) = &user {
            std::os::unix::fs::chown(dir.path(), Some(user.uid), Some(user.gid)).map_err(
                |source| {
                    ProvisionError::io(
                        format!("handing {} to user {}", dir.path().display(), user.name),
                        source,
                    )
                },
            )?;
        }
        let data = dir.path().join("data");
        run_initdb(&initdb, &data, dir.path(), user.as_ref(), startup_timeout).await?;

        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let port_text = port.to_string();
            let what = format!("postgres on 127.0.0.1:{port}");
            let args: [&std::ffi::OsStr; 16] = [
                "-D".as_ref(),
                data.as_os_str(),
                "-p".as_ref(),
                port_text.as_ref(),
                "-k".as_ref(),
                dir.path().as_os_str(),
                "-c".as_ref(),
                "listen_addresses=127.0.0.1".as_ref(),
                "-c".as_ref(),
                "fsync=off".as_ref(),
                "-c".as_ref(),
                "synchronous_commit=off".as_ref(),
                "-c".as_ref(),
                "full_page_writes=off".as_ref(),
                "-c".as_ref(),
                "max_connections=200".as_ref(),
            ];
            let mut server = Supervised::spawn(
                what.clone(),
                &postgres,
                &args,
                dir.path(),
                dir.path().join("postgres.log"),
                user.as_ref(),
                Signal::Int,
            )?;
            let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
            let ready = wait_until_ready(&mut server, startup_timeout, || {
                probe::postgres(&url, Duration::from_secs(2))
            })
            .await;
            match ready {
                Ok(()) => {
                    tracing::info!(pid = server.pid, port, dir = %dir.path().display(), "started private PostgreSQL");
                    return Ok(Self {
                        server,
                        port,
                        url,
                        dir,
                    });
                }
                Err(NotReady::Exited(log)) if is_port_clash(&log) => {
                    last_error = Some(ProvisionError::Process {
                        what,
                        reason: format!("port taken; log:\n{log}"),
                    });
                }
                Err(NotReady::Exited(log)) => {
                    return Err(ProvisionError::Process {
                        what,
                        reason: format!("exited during start-up; log:\n{log}"),
                    });
                }
                Err(NotReady::TimedOut(error)) => {
                    return Err(ProvisionError::Process {
                        what,
                        reason: format!(
                            "not accepting logins after {startup_timeout:?} ({error}); log:\n{}",
                            log_tail(&server.log, 20)
                        ),
                    });
                }
            }
        }
        Err(last_error.unwrap_or(ProvisionError::Process {
            what: "postgres".to_owned(),
            reason: "no free port".to_owned(),
        }))
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication, superuser).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> u32 {
        self.server.pid
    }

    /// The temporary directory (data directory, socket, log), removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

async fn run_initdb(
    initdb: &Path,
    data: &Path,
    workdir: &Path,
    user: Option<&OsUser>,
    timeout: Duration,
) -> Result<(), ProvisionError> {
    let mut command = tokio::process::Command::new(initdb);
    command
        .arg("-D")
        .arg(data)
        .args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
            "--no-instructions",
        ])
        // initdb complains when it cannot stat the caller's working directory (e.g. /root).
        .current_dir(workdir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(user) = user {
        command.uid(user.uid).gid(user.gid);
    }
    let output = tokio::time::timeout(timeout, command.output())
        .await
        .map_err(|_| ProvisionError::Process {
            what: "initdb".to_owned(),
            reason: format!("did not finish within {timeout:?}"),
        })?
        .map_err(|source| ProvisionError::io(format!("running {}", initdb.display()), source))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    Err(ProvisionError::Process {
        what: format!("{} -D {}", initdb.display(), data.display()),
        reason: format!("{}: {}{}", output.status, stderr.trim(), stdout.trim()),
    })
}

/// A private Mosquitto broker on a free port of 127.0.0.1, anonymous, without persistence.
/// It can be killed (a crash, no goodbye to clients) and restarted on the same port, which is
/// what "keeps serving after its broker restarts" tests need. Dropping it stops the broker and
/// removes its temporary directory.
pub struct MosquittoProcess {
    // Declared before `dir`: the broker must be gone before its directory is removed.
    server: Option<Supervised>,
    binary: PathBuf,
    port: u16,
    startup_timeout: Duration,
    dir: TempDir,
}

impl std::fmt::Debug for MosquittoProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MosquittoProcess")
            .field("pid", &self.pid())
            .field("port", &self.port)
            .field("binary", &self.binary)
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// The broker configuration: one plain listener, anonymous access, nothing written to disk,
/// and TCP_NODELAY (request/reply messages are small; without it Nagle and delayed ACKs add
/// about 40 ms to every round trip), and a per-client queue large enough for the health
/// bursts of the ingest benches (Mosquitto's default of 1000 drops the rest).
fn mosquitto_config(port: u16) -> String {
    format!(
        "# generated by bigskies-scenarios: a throwaway test broker\n\
         listener {port} 127.0.0.1\n\
         allow_anonymous true\n\
         persistence false\n\
         set_tcp_nodelay true\n\
         max_queued_messages 20000\n\
         log_dest stderr\n\
         log_type error\n\
         log_type warning\n\
         log_type notice\n"
    )
}

impl MosquittoProcess {
    /// Starts a broker with the binary from `BIGSKIES_MOSQUITTO_BIN` or the usual places.
    pub async fn start() -> Result<Self, ProvisionError> {
        let env = ProvisionEnv::from_process_env();
        let binary = env.mosquitto_bin.map(PathBuf::from);
        Self::start_with(binary.as_deref(), DEFAULT_STARTUP_TIMEOUT).await
    }

    /// Starts a broker with `binary` (or the usual places when `None`), waiting at most
    /// `startup_timeout` for it to accept an MQTT connection.
    pub async fn start_with(
        binary: Option<&Path>,
        startup_timeout: Duration,
    ) -> Result<Self, ProvisionError> {
        let binary = find_mosquitto(binary)?;
        let dir = tempfile::Builder::new()
            .prefix("bigskies-mqtt-")
            .tempdir()
            .map_err(|source| ProvisionError::io("creating a temporary directory", source))?;
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            match launch_mosquitto(&binary, dir.path(), port, startup_timeout).await {
                Ok(server) => {
                    tracing::info!(pid = server.pid, port, "started private Mosquitto");
                    return Ok(Self {
                        server: Some(server),
                        binary,
                        port,
                        startup_timeout,
                        dir,
                    });
                }
                Err(Launch::PortTaken(error)) => last_error = Some(error),
                Err(Launch::Failed(error)) => return Err(error),
            }
        }
        Err(last_error.unwrap_or(ProvisionError::Process {
            what: "mosquitto".to_owned(),
            reason: "no free port".to_owned(),
        }))
    }

    /// Where the broker listens (also while it is killed: the port stays reserved for restart).
    pub fn endpoint(&self) -> MqttEndpoint {
        MqttEndpoint::new("127.0.0.1", self.port)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.server
            .as_ref()
            .filter(|server| server.status.is_none())
            .map(|server| server.pid)
    }

    /// Whether the broker process is still running.
    pub fn is_running(&mut self) -> bool {
        self.server
            .as_mut()
            .is_some_and(|server| server.try_status().is_none())
    }

    /// Kills the broker with SIGKILL, like a crash (clients get no DISCONNECT, no will is
    /// delayed), and waits until it is gone. Does nothing if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.stop(Signal::Kill);
        }
    }

    /// Stops the broker cleanly (SIGTERM) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.stop(Signal::Term);
        }
    }

    /// Starts the broker again on the same port (stopping it first if it still runs) and waits
    /// until it accepts connections. Retries while the port is briefly unavailable.
    pub async fn restart(&mut self) -> Result<(), ProvisionError> {
        self.stop();
        let deadline = tokio::time::Instant::now() + self.startup_timeout;
        loop {
            match launch_mosquitto(
                &self.binary,
                self.dir.path(),
                self.port,
                self.startup_timeout,
            )
            .await
            {
                Ok(server) => {
                    tracing::info!(
                        pid = server.pid,
                        port = self.port,
                        "restarted private Mosquitto"
                    );
                    self.server = Some(server);
                    return Ok(());
                }
                Err(Launch::PortTaken(error)) if tokio::time::Instant::now() >= deadline => {
                    return Err(error);
                }
                Err(Launch::PortTaken(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(Launch::Failed(error)) => return Err(error),
            }
        }
    }
}

enum Launch {
    PortTaken(ProvisionError),
    Failed(ProvisionError),
}

async fn launch_mosquitto(
    binary: &Path,
    dir: &Path,
    port: u16,
    startup_timeout: Duration,
) -> Result<Supervised, Launch> {
    let what = format!("mosquitto on 127.0.0.1:{port}");
    let config = dir.join("mosquitto.conf");
    std::fs::write(&config, mosquitto_config(port)).map_err(|source| {
        Launch::Failed(ProvisionError::io(
            format!("writing {}", config.display()),
            source,
        ))
    })?;
    let args: [&std::ffi::OsStr; 2] = ["-c".as_ref(), config.as_os_str()];
    let mut server = Supervised::spawn(
        what.clone(),
        binary,
        &args,
        dir,
        dir.join("mosquitto.log"),
        None,
        Signal::Term,
    )
    .map_err(Launch::Failed)?;
    let endpoint = MqttEndpoint::new("127.0.0.1", port);
    let ready = wait_until_ready(&mut server, startup_timeout, || {
        probe::mqtt(&endpoint, Duration::from_secs(2))
    })
    .await;
    match ready {
        Ok(()) => Ok(server),
        Err(NotReady::Exited(log)) if is_port_clash(&log) => {
            Err(Launch::PortTaken(ProvisionError::Process {
                what,
                reason: format!("port taken; log:\n{log}"),
            }))
        }
        Err(NotReady::Exited(log)) => Err(Launch::Failed(ProvisionError::Process {
            what,
            reason: format!("exited during start-up; log:\n{log}"),
        })),
        Err(NotReady::TimedOut(error)) => Err(Launch::Failed(ProvisionError::Process {
            what,
            reason: format!(
                "no MQTT CONNACK after {startup_timeout:?} ({error}); log:\n{}",
                log_tail(&server.log, 20)
            ),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines_are_parsed_by_exact_name() {
        let text = "root:x:0:0:root:/root:/bin/bash\n\
                    postgres-old:x:7:7::/:/bin/false\n\
                    postgres:x:101:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\n";
        assert_eq!(
            parse_passwd(text, "postgres"),
            Some(OsUser {
                name: "postgres".into(),
                uid: 101,
                gid: 104
            })
        );
        assert_eq!(parse_passwd(text, "postgre"), None);
        assert_eq!(
            parse_passwd("broken:x:notanumber:1::/:/bin/sh", "broken"),
            None
        );
    }

    #[test]
    fn free_ports_are_nonzero_and_bindable() {
        let port = free_port().unwrap();
        assert_ne!(port, 0);
        std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    }

    #[test]
    fn port_clashes_are_recognised_in_both_servers_logs() {
        assert!(is_port_clash(
            "LOG:  could not bind IPv4 address \"127.0.0.1\": Address already in use"
        ));
        assert!(is_port_clash("1700000000: Error: Address already in use"));
        assert!(!is_port_clash("FATAL:  data directory has wrong ownership"));
    }

    #[test]
    fn a_missing_binary_names_what_to_install() {
        let error = find_mosquitto(Some(Path::new("/nonexistent/mosquitto"))).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("apt-get install mosquitto"), "{text}");
        assert!(text.contains("/nonexistent/mosquitto"), "{text}");
        let error = find_postgres_binaries(Some(Path::new("/nonexistent"))).unwrap_err();
        assert!(error.to_string().contains("postgresql-15"), "{error}");
    }

    #[test]
    fn the_broker_config_listens_on_loopback_only_and_persists_nothing() {
        let config = mosquitto_config(40123);
        assert!(config.contains("listener 40123 127.0.0.1\n"));
        assert!(config.contains("allow_anonymous true\n"));
        assert!(config.contains("persistence false\n"));
    }
}
