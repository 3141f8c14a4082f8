#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
//! The scenario runner end to end: the whole shipped suite passes (real PostgreSQL, Mosquitto,
//! simulator and coordinators), a failing scenario fails the command with JUnit output, and
//! `--external` runs scenarios against a deployment someone else started.

use std::path::PathBuf;
use std::process::Command;

use bigskies_scenarios::provision;
use bigskies_scenarios::runner::{self, RunOptions};
use bigskies_scenarios::scenario::{Context, Target};
use bigskies_scenarios::stack::{Stack, StackOptions};
use bigskies_scenarios::suite;

const EXE: &str = env!("CARGO_BIN_EXE_bigskies-scenarios");

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_shipped_suite_passes() {
    let entries = suite::entries(&suite::default_dir()).unwrap();
    assert!(entries.len() >= 20, "only {} scenarios", entries.len());
    let p = provision::shared().await.unwrap();
    let report = runner::run(
        entries,
        Some(p),
        RunOptions {
            jobs: 4,
            keep_going: true,
            external: None,
            host_exe: Some(PathBuf::from(EXE)),
            progress: true,
        },
    )
    .await;
    assert!(report.success(), "{}", report.summary());
    assert_eq!(report.skipped(), 0, "{}", report.summary());
}

fn scratch_suite(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

const PASSING: &str = r#"
name = "lists-configs"
tags = ["demo"]
[[step]]
login = "admin"
[[step]]
request = "telescope/config/list"
as = "admin"
expect = { success = true }
"#;

const FAILING: &str = r#"
name = "expects-the-impossible"
[[step]]
login = "admin"
[[step]]
request = "telescope/config/list"
as = "admin"
expect = { success = false }
"#;

#[test]
fn a_failing_scenario_fails_the_command_and_the_junit_report() {
    let dir = scratch_suite(&[("a.toml", PASSING), ("b.toml", FAILING)]);
    let junit = dir.path().join("report.xml");
    let out = Command::new(EXE)
        .args(["run", "--keep-going", "--scenarios"])
        .arg(dir.path())
        .arg("--junit")
        .arg(&junit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("FAIL expects-the-impossible"), "{stderr}");
    assert!(stderr.contains("PASS lists-configs"), "{stderr}");
    // The two files and the Rust scenarios.
    assert!(stderr.contains("2 passed, 1 failed"), "{stderr}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(
            "<testcase classname=\"bigskies-scenarios.file\" name=\"expects-the-impossible\""
        ),
        "{xml}"
    );
    assert!(
        xml.contains("<failure message=\"step 2 (request telescope/config/list)"),
        "{xml}"
    );
    assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
}

#[test]
fn list_filter_and_broken_files() {
    let dir = scratch_suite(&[
        ("a.toml", PASSING),
        ("b.toml", FAILING),
        ("c.toml", "name = \"broken\"\n[[step]]\nrequest = \"a/b\"\n"),
    ]);
    let out = Command::new(EXE)
        .args(["run", "--list", "--scenarios"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("lists-configs"), "{stdout}");
    assert!(stdout.contains("message-never-republishes"), "{stdout}");
    assert!(stdout.contains("does not parse"), "{stdout}");
    // A filter by tag keeps only the tagged scenario; the broken file fails the run.
    let out = Command::new(EXE)
        .args(["run", "--list", "--filter", "demo", "--scenarios"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let out = Command::new(EXE)
        .args(["run", "--filter", "c", "--scenarios"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("expected \\\"<coordinator>/<action>/<resource>\\\"")
            || stderr.contains("<coordinator>/<action>/<resource>"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_mode_runs_the_suite_twice_on_one_deployment_and_skips_what_would_break_it() {
    let p = provision::shared().await.unwrap();
    let stack = Stack::prepare(p, "external", StackOptions::default())
        .await
        .unwrap();
    let names = stack.coordinators(&[]);
    let target = Target {
        topics: stack.topics.clone(),
        bus: stack.bus_config(),
        simulator_url: Some(stack.simulator_url()),
        admin_password: Some(stack.admin_password.clone()),
    };
    let (mqtt, root, sim, password) = (
        stack.mqtt.url(),
        stack.topics.root().to_owned(),
        stack.simulator_url(),
        stack.admin_password.clone(),
    );
    // A recording client first, so the start-up health of every coordinator is seen.
    let mut cx = Context::connect(target, Some(stack)).await.unwrap();
    cx.stack().unwrap().start_all(&names).await.unwrap();
    cx.wait_started(&names, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let args = vec![
        "run".to_owned(),
        "--external".into(),
        "--keep-going".into(),
        "--mqtt-url".into(),
        mqtt,
        "--topic-root".into(),
        root,
        "--simulator-url".into(),
        sim,
        "--admin-password".into(),
        password,
    ];
    // The whole suite, twice on the same deployment: what the first run left behind (users,
    // telescopes, sites, a parked mount) must not break the second.
    for pass in 1..=2 {
        let out = tokio::process::Command::new(EXE)
            .args(&args)
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "pass {pass}: {stderr}");
        assert!(stderr.contains("PASS telescope-slew-park"), "{stderr}");
        assert!(stderr.contains("PASS observing-night"), "{stderr}");
        assert!(stderr.contains("SKIP database-outage"), "{stderr}");
        assert!(stderr.contains(" 0 failed"), "{stderr}");
    }
    assert!(cx.finish().await.is_empty());
}
