#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
//! Plugin installs against the real broker and PostgreSQL, with the UI element coordinator
//! running beside the plugin coordinator and the local-process runtime.

mod message_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bigskies_coordinators::plugin::{self, LocalProcessRuntime, PluginCoordinator, archive};
use bigskies_coordinators::uielement::{self, UiElementCoordinator};
use bigskies_core::config::ConfigStore;
use message_support as s;
use serde_json::{Value, json};

const GUID: &str = "f7e8d9c6-b5a4-3210-9876-543210fedcba";

/// A plugin that runs `sleep` and brings two UI elements.
fn write_plugin(dir: &Path, version: &str) {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    let manifest = json!({
        "id": GUID, "name": "Alpaca simulators", "version": version, "author": "tests",
        "capabilities": {"provides_ui": true},
        "process": {"command": "sleep", "args": ["60"]},
        "docker": {"image": "ascom/simulator:latest", "ports": ["32323:32323"]},
        "ui_elements": [
            {"id": "sim-panel", "type": "panel", "title": "Simulators", "url": "/ui",
             "framework_mappings": {"gtk": {"widget_type": "Gtk.Frame",
                 "actions": {"clicked": {"mqtt_topic": "bigskies/telescope/0/command/connect"}}}}},
            {"id": "sim-menu", "type": "menu", "title": "Simulators"}
        ]
    });
    std::fs::write(dir.join("plugin.json"), manifest.to_string()).unwrap();
    std::fs::write(dir.join("bin/readme.txt"), format!("version {version}\n")).unwrap();
}

fn tar_gz(src: &Path, out: &Path) {
    let f = std::fs::File::create(out).unwrap();
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut t = tar::Builder::new(gz);
    t.append_dir_all("alpaca-sim", src).unwrap();
    t.into_inner().unwrap().finish().unwrap();
}

fn entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

async fn ui_of_plugin(client: &bigskies_core::bus::Bus, env: &s::Env) -> Value {
    s::request(
        client,
        &env.topics,
        uielement::NAME,
        "element/query",
        json!({"plugin_guid": GUID}),
        Some(s::ADMIN),
    )
    .await
}

#[tokio::test]
async fn install_verifies_checksums_runs_registers_ui_and_removal_clears_both() {
    let env = s::env().await;
    let db = s::database().await;
    let work = tempfile::tempdir().unwrap();
    let plugin_dir = work.path().join("plugins");
    let src = work.path().join("src");
    write_plugin(&src, "1.0.0");
    let tgz = work.path().join("alpaca-sim.tar.gz");
    tar_gz(&src, &tgz);
    let good = archive::digest(&tgz).unwrap();

    let client = s::client(&env).await;
    let mut ui_health = client
        .subscribe(&env.topics.health(uielement::NAME), 64)
        .await
        .unwrap();
    let mut pl_health = client
        .subscribe(&env.topics.health(plugin::NAME), 64)
        .await
        .unwrap();
    let ui = s::start(
        &env,
        Arc::new(UiElementCoordinator::new(db.pool().clone())),
        Some(ConfigStore::new(db.pool().clone())),
        s::no_work,
    );
    let pc = Arc::new(PluginCoordinator::new(
        db.pool().clone(),
        Arc::new(LocalProcessRuntime::new(BTreeMap::new())),
        // As `--plugin-dir` gives it: it beats the seeded plugin_dir row.
        plugin::Settings::default().with_plugin_dir(plugin_dir.clone()),
        // Its own credential for the UI element registrations.
        Some(s::SERVICE.to_owned()),
    ));
    let w = pc.clone();
    let pl = s::start(
        &env,
        pc,
        Some(ConfigStore::new(db.pool().clone())),
        move |b, t, x| w.run(b, t, x),
    );
    s::wait_health(&mut ui_health, "healthy").await;
    s::wait_health(&mut pl_health, "healthy").await;

    // Without the permission: refused.
    let r = s::request(
        &client,
        &env.topics,
        plugin::NAME,
        "plugin/install",
        json!({"source": tgz, "sha256": good}),
        Some(s::NOBODY),
    )
    .await;
    assert_eq!(r["error_code"], "forbidden", "{r}");

    // A wrong checksum is refused and leaves nothing behind.
    let wrong = "0".repeat(64);
    let r = admin(
        &client,
        &env,
        "plugin/install",
        json!({"guid": GUID, "source": tgz, "sha256": wrong}),
    )
    .await;
    assert_eq!(r["success"], false, "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("checksum mismatch"),
        "{r}"
    );
    assert!(
        entries(&plugin_dir).is_empty(),
        "left behind: {:?}",
        entries(&plugin_dir)
    );
    let listed = admin(&client, &env, "plugin/list", json!({})).await;
    assert_eq!(listed["count"], 0);
    assert_eq!(ui_of_plugin(&client, &env).await["count"], 0);
    // A missing checksum too.
    let r = admin(
        &client,
        &env,
        "cmd/install",
        json!({"guid": GUID, "source": tgz}),
    )
    .await;
    assert!(r["error"].as_str().unwrap().contains("sha256"), "{r}");

    // The good one: installed, running, UI elements queryable. The plugin coordinator's own
    // requests to the UI element coordinator carry its service credential, never the
    // administrator's token (issue 20, item 4).
    let mut ui_requests = client
        .subscribe(&env.topics.request_filter(uielement::NAME), 64)
        .await
        .unwrap();
    let r = admin(
        &client,
        &env,
        "plugin/install",
        json!({"plugin_id": GUID, "source": tgz, "checksum": good}),
    )
    .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["plugin"]["status"], "running", "{r}");
    assert_eq!(r["ui_elements"], json!(["sim-panel", "sim-menu"]));
    let mut registrations = 0;
    while let Ok(Some(m)) =
        tokio::time::timeout(Duration::from_millis(500), ui_requests.recv()).await
    {
        let text = String::from_utf8_lossy(&m.payload);
        assert!(
            !text.contains(s::ADMIN),
            "the caller's token travelled on: {text}"
        );
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        if m.topic.ends_with("/element/register") {
            assert_eq!(v["token"], s::SERVICE, "{v}");
            registrations += 1;
        }
    }
    assert_eq!(registrations, 2);
    drop(ui_requests);
    assert!(plugin_dir.join(GUID).join("plugin.json").is_file());
    assert_eq!(
        entries(&plugin_dir),
        vec![GUID.to_owned()],
        "no staging left"
    );
    let elements = ui_of_plugin(&client, &env).await;
    assert_eq!(elements["count"], 2, "{elements}");
    let gtk = s::request(
        &client,
        &env.topics,
        uielement::NAME,
        "element/query",
        json!({"framework": "gtk", "plugin_id": GUID}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(gtk["count"], 1);
    assert_eq!(gtk["elements"][0]["mapping"]["widget_type"], "Gtk.Frame");

    // Installing again is a conflict; stop and start work.
    let again = admin(
        &client,
        &env,
        "plugin/install",
        json!({"source": tgz, "sha256": good}),
    )
    .await;
    assert_eq!(again["error_code"], "conflict");
    let stopped = admin(&client, &env, "plugin/stop", json!({"guid": GUID})).await;
    assert_eq!(stopped["plugin"]["status"], "stopped", "{stopped}");
    let started = admin(&client, &env, "plugin/start", json!({"guid": GUID})).await;
    assert_eq!(started["plugin"]["status"], "running", "{started}");

    // Update from a directory source: new version, UI elements re-registered, still running.
    let src2 = work.path().join("src2");
    write_plugin(&src2, "1.1.0");
    let d2 = archive::digest(&src2).unwrap();
    let up = admin(
        &client,
        &env,
        "plugin/update",
        json!({"guid": GUID, "source": src2, "sha256": d2}),
    )
    .await;
    assert_eq!(up["success"], true, "{up}");
    assert_eq!(up["plugin"]["version"], "1.1.0");
    assert_eq!(up["plugin"]["status"], "running");
    assert_eq!(ui_of_plugin(&client, &env).await["count"], 2);

    // Removal clears the plugin and its UI elements.
    let gone = admin(&client, &env, "cmd/remove", json!({"guid": GUID})).await;
    assert_eq!(gone["success"], true, "{gone}");
    assert_eq!(gone["removed_ui_elements"].as_array().unwrap().len(), 2);
    assert!(
        entries(&plugin_dir).is_empty(),
        "{:?}",
        entries(&plugin_dir)
    );
    let listed = admin(&client, &env, "plugin/list", json!({})).await;
    assert_eq!(listed["count"], 0);
    assert_eq!(ui_of_plugin(&client, &env).await["count"], 0);

    pl.stop().await;
    ui.stop().await;
    // The scan interval default is long; the coordinator stopped with nothing to resume.
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// A plugin coordinator operation as the administrator.
async fn admin(client: &bigskies_core::bus::Bus, env: &s::Env, op: &str, body: Value) -> Value {
    s::request(client, &env.topics, plugin::NAME, op, body, Some(s::ADMIN)).await
}
