#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
//! Plugin health over the real broker: what plugins publish on `<root>/plugin/<id>/health`
//! shows in the plugin replies and in the plugin coordinator's own health.

mod message_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bigskies_coordinators::plugin::{self, LocalProcessRuntime, PluginCoordinator, archive};
use bigskies_core::bus::{Bus, Message};
use message_support as s;
use serde_json::{Value, json};
use tokio::sync::mpsc::Receiver;

const GUID: &str = "0b9d5c1e-3f7a-4c2d-9e8b-7a6f5e4d3c2b";

/// A plugin that runs `sleep` and says it reports health every two seconds.
fn write_plugin(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let manifest = json!({
        "id": GUID, "name": "Health reporter", "version": "1.0.0",
        "process": {"command": "sleep", "args": ["120"]},
        "health_check": {"topic": format!("bigskies/plugin/{GUID}/health"), "interval_seconds": 2}
    });
    std::fs::write(dir.join("plugin.json"), manifest.to_string()).unwrap();
}

/// What the Go example plugin publishes (envelope of type `status` around a `Result`).
fn go_health(status: &str, message: &str) -> Vec<u8> {
    json!({
        "id": "20260116120000.123456", "type": "status", "source": format!("plugin:{GUID}"),
        "timestamp": "2026-01-16T12:00:00.123456789Z",
        "payload": {"component": "health-reporter", "status": status, "message": message,
                    "timestamp": "2026-01-16T12:00:00.1234Z", "duration": 0,
                    "details": {"running": true, "uptime_seconds": 12.5}}
    })
    .to_string()
    .into_bytes()
}

async fn get(client: &Bus, env: &s::Env) -> Value {
    let r = admin(client, env, "plugin/get", json!({"guid": GUID})).await;
    assert_eq!(r["success"], true, "{r}");
    r["plugin"].clone()
}

/// Poll `plugin/get` until its health satisfies `ok`; returns that health.
async fn wait_plugin_health(client: &Bus, env: &s::Env, ok: impl Fn(&Value) -> bool) -> Value {
    s::eventually(s::WAIT, || async {
        let h = get(client, env).await["health"].clone();
        ok(&h).then_some(h)
    })
    .await
}

/// The next coordinator health report with `status`, and its plugin-health component.
async fn wait_coordinator(rx: &mut Receiver<Message>, status: &str) -> Value {
    let v = s::wait_health(rx, status).await;
    v["payload"]["components"]["plugin-health"].clone()
}

/// The first coordinator health report evaluated after now.
async fn next_report(rx: &mut Receiver<Message>) -> Value {
    let now = chrono::Utc::now();
    loop {
        let v = s::next_json(rx).await;
        let at = v["payload"]["timestamp"].as_str().unwrap();
        if chrono::DateTime::parse_from_rfc3339(at).unwrap() > now {
            return v["payload"].clone();
        }
    }
}

#[tokio::test]
async fn plugin_health_reports_show_in_replies_and_degrade_the_coordinator() {
    let env = s::env().await;
    let db = s::database().await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write_plugin(&src);
    let digest = archive::digest(&src).unwrap();

    let client = s::client(&env).await;
    let mut health = client
        .subscribe(&env.topics.health(plugin::NAME), 64)
        .await
        .unwrap();
    let pc = Arc::new(PluginCoordinator::new(
        db.pool().clone(),
        Arc::new(LocalProcessRuntime::new(BTreeMap::new())),
        plugin::Settings {
            plugin_dir: work.path().join("plugins"),
            ..Default::default()
        },
        None,
    ));
    let w = pc.clone();
    let running = s::start(&env, pc, None, move |b, t, x| w.run(b, t, x));
    s::wait_health(&mut health, "healthy").await;

    let r = admin(
        &client,
        &env,
        "plugin/install",
        json!({"guid": GUID, "source": src, "sha256": digest}),
    )
    .await;
    assert_eq!(r["plugin"]["status"], "running", "{r}");
    let topic = env.topics.plugin_health(GUID);
    let publish = |body: Vec<u8>| {
        let (client, topic) = (client.clone(), topic.clone());
        async move { client.publish(&topic, body, false).await.unwrap() }
    };

    // A report in the Go shape is recorded and shown by get and list.
    publish(go_health("healthy", "all good")).await;
    let h = wait_plugin_health(&client, &env, |h| h["status"] == "healthy").await;
    assert_eq!(h["message"], "all good");
    assert_eq!(h["details"]["uptime_seconds"], 12.5);
    assert_eq!(h["timestamp"], "2026-01-16T12:00:00.1234Z");
    assert_eq!(h["interval_seconds"], 2.0);
    assert_eq!(h["silent"], false);
    let listed = admin(&client, &env, "plugin/list", json!({})).await;
    assert_eq!(
        listed["plugins"][0]["health"]["status"], "healthy",
        "{listed}"
    );

    // Unhealthy degrades the coordinator; recovering heals it.
    publish(go_health("unhealthy", "Alpaca API gone")).await;
    let component = wait_coordinator(&mut health, "degraded").await;
    assert_eq!(
        component["details"]["unhealthy_plugins"],
        json!([GUID]),
        "{component}"
    );
    publish(go_health("healthy", "back")).await;
    s::wait_health(&mut health, "healthy").await;

    // A report that is not a health result changes nothing (the next good one is seen after it,
    // as reports of one topic are taken in order).
    publish(br#"{"status":"splendid"}"#.to_vec()).await;
    publish(b"not json".to_vec()).await;
    publish(go_health("degraded", "marker")).await;
    let h = wait_plugin_health(&client, &env, |h| h["message"] == "marker").await;
    assert_eq!(h["status"], "degraded");

    // Silence for more than three intervals degrades the coordinator too.
    let component = wait_coordinator(&mut health, "degraded").await;
    assert_eq!(
        component["details"]["silent_plugins"],
        json!([GUID]),
        "{component}"
    );
    assert_eq!(get(&client, &env).await["health"]["silent"], true);
    publish(go_health("healthy", "awake")).await;
    s::wait_health(&mut health, "healthy").await;

    // A stopped plugin is not held to its reports (the Go plugin says unhealthy on shutdown).
    let r = admin(&client, &env, "plugin/stop", json!({"guid": GUID})).await;
    assert_eq!(r["plugin"]["status"], "stopped", "{r}");
    publish(go_health("unhealthy", "shutting down")).await;
    wait_plugin_health(&client, &env, |h| h["message"] == "shutting down").await;
    let report = next_report(&mut health).await;
    assert_eq!(report["status"], "healthy", "{report}");

    // Reports for plugins that are not installed are ignored.
    let stranger = uuid::Uuid::new_v4().to_string();
    client
        .publish(
            &env.topics.plugin_health(&stranger),
            go_health("unhealthy", "who am I"),
            false,
        )
        .await
        .unwrap();
    publish(go_health("unhealthy", "after the stranger")).await;
    wait_plugin_health(&client, &env, |h| h["message"] == "after the stranger").await;
    let report = next_report(&mut health).await;
    let details = &report["components"]["plugin-health"]["details"];
    assert_eq!(details["reporting_plugins"], 1, "{report}");
    assert_eq!(details["unhealthy_plugins"], json!([]), "{report}");
    running.stop().await;
}

/// A plugin coordinator operation as the administrator.
async fn admin(client: &Bus, env: &s::Env, op: &str, body: Value) -> Value {
    s::request(client, &env.topics, plugin::NAME, op, body, Some(s::ADMIN)).await
}
