#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
//! Local plugins die with their coordinator, even when it is killed with SIGKILL (no
//! destructor runs): a helper process plays the coordinator, starts a plugin that has a child
//! of its own, and is killed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bigskies_coordinators::plugin::{ContainerRuntime, LocalProcessRuntime, PluginSpec};
use serde_json::json;

const HELPER_DIR: &str = "BST_PLUGIN_TREE_DIR";

/// Whether `pid` is a live process (zombies count as dead).
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next());
            state != Some('Z') && state != Some('X')
        }
        Err(_) => false,
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The "coordinator", in the child process: starts the plugin, reports its supervisor's
/// handle and waits to be killed.
fn play_the_coordinator(dir: std::path::PathBuf) {
    let manifest = json!({
        "id": uuid::Uuid::new_v4().to_string(), "name": "tree", "version": "1",
        "process": {"command": "sh", "args": ["-c",
            "sleep 300 & echo $! > grandchild.pid; echo $$ > plugin.pid; wait"]}
    });
    let spec = PluginSpec {
        guid: uuid::Uuid::new_v4(),
        dir,
        manifest: serde_json::from_value(manifest).unwrap(),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let runtime = LocalProcessRuntime::default();
        let handle = runtime.start(&spec).await.unwrap();
        println!("STARTED {handle}");
        tokio::time::sleep(Duration::from_secs(120)).await;
    });
}

#[test]
fn a_killed_coordinator_takes_its_plugins_with_it() {
    // The test runs itself again in a child process, which plays the coordinator.
    if let Some(dir) = std::env::var_os(HELPER_DIR) {
        play_the_coordinator(dir.into());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "a_killed_coordinator_takes_its_plugins_with_it",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_DIR, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = helper.stdout.take().unwrap();
    let supervisor: u32 = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            // libtest may print "test a_killed_... ... " on the same line.
            line.split_once("STARTED local-")
                .map(|(_, pid)| pid.trim().parse().unwrap())
        })
        .expect("the helper started a plugin");
    // The plugin writes its pids as it starts.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (plugin, grandchild) = loop {
        if let (Some(p), Some(g)) = (
            read_pid(&dir.path().join("plugin.pid")),
            read_pid(&dir.path().join("grandchild.pid")),
        ) {
            break (p, g);
        }
        assert!(Instant::now() < deadline, "the plugin never wrote its pids");
        std::thread::sleep(Duration::from_millis(50));
    };
    let tree = [supervisor, plugin, grandchild];
    assert!(tree.iter().all(|p| process_alive(*p)), "{tree:?}");

    // SIGKILL: no destructor, no cleanup code of the coordinator runs.
    helper.kill().unwrap();
    helper.wait().unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let alive: Vec<u32> = tree.iter().copied().filter(|p| process_alive(*p)).collect();
        if alive.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running 20 s after the coordinator was killed: {alive:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
