#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
//! The message coordinator watching a whole system on the real broker: all eight
//! coordinators healthy, one killed (its last will: offline), one silenced (unhealthy after
//! three missed intervals), and never a message republished.

mod message_support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bigskies_coordinators::application::{self, ApplicationCoordinator};
use bigskies_coordinators::datastore::{self, DatastoreCoordinator};
use bigskies_coordinators::message::{self, MessageCoordinator, SUMMARY_EVENT};
use bigskies_coordinators::plugin::{self, LocalProcessRuntime, PluginCoordinator};
use bigskies_coordinators::uielement::UiElementCoordinator;
use bigskies_core::bus::Bus;
use bigskies_core::envelope::{Envelope, MessageType};
use bigskies_core::error::HandlerError;
use bigskies_core::health::HealthReport;
use bigskies_core::runtime::{Context, Coordinator, Runtime, last_will};
use message_support as s;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Every message the observer got: topic, payload, retain flag.
type Seen = Arc<Mutex<Vec<(String, Vec<u8>, bool)>>>;

/// Stands in for a coordinator written elsewhere (security, telescope).
struct Standin(&'static str);

#[derive(Debug, Deserialize)]
#[serde(tag = "op", content = "body")]
enum StandinRequest {
    #[serde(rename = "ping/get")]
    Ping {},
}

impl Coordinator for Standin {
    type Request = StandinRequest;
    fn name(&self) -> &'static str {
        self.0
    }
    fn operations(&self) -> &'static [bigskies_core::auth::Operation] {
        use bigskies_core::auth::{Access, Operation};
        const OPS: &[Operation] = &[Operation::new("ping/get", Access::Public, "ping")];
        OPS
    }
    async fn handle(&self, _ctx: Context, _r: StandinRequest) -> Result<Value, HandlerError> {
        Ok(json!({"success": true}))
    }
}

async fn summary(client: &Bus, env: &s::Env) -> Value {
    s::request(
        client,
        &env.topics,
        message::NAME,
        "summary/get",
        json!({}),
        None,
    )
    .await
}

#[tokio::test]
async fn eight_coordinators_healthy_then_killed_offline_and_silenced_unhealthy_without_republishing()
 {
    let env = s::env().await;
    let db = s::database().await;
    let pool = db.pool().clone();
    let client = s::client(&env).await;

    // Everything under the root, as the broker delivers it, on a connection of its own with
    // this one subscription (overlapping subscriptions of one client get copies per match).
    let observer = s::client(&env).await;
    let seen: Seen = Arc::default();
    let mut all = observer
        .subscribe(&format!("{}/#", env.topics.root()), 65_536)
        .await
        .unwrap();
    let recorder = seen.clone();
    tokio::spawn(async move {
        while let Some(m) = all.recv().await {
            recorder
                .lock()
                .unwrap()
                .push((m.topic, m.payload.to_vec(), m.retain));
        }
    });

    let settings = message::Settings {
        monitor_interval: Duration::from_secs(1),
        sweep_interval: Duration::from_millis(100),
        history_sample_interval: Duration::from_secs(1),
        ..message::Settings::default()
    };
    let mc = Arc::new(MessageCoordinator::new(
        settings,
        Some(pool.clone()),
        s::bus_config(&env, "message-ingest"),
    ));
    let w = mc.clone();
    let mut running = vec![s::start(&env, mc.clone(), None, move |b, t, x| {
        w.run(b, t, x)
    })];

    let ds = Arc::new(DatastoreCoordinator::new(
        db.url().parse().unwrap(),
        datastore::Settings::default(),
    ));
    let w = ds.clone();
    running.push(s::start(&env, ds, None, move |b, t, x| w.run(b, t, x)));
    let app = Arc::new(ApplicationCoordinator::new(
        pool.clone(),
        application::Settings::default(),
    ));
    let w = app.clone();
    running.push(s::start(&env, app, None, move |b, t, x| w.run(b, t, x)));
    let dir = tempfile::tempdir().unwrap();
    let pc = Arc::new(PluginCoordinator::new(
        pool.clone(),
        Arc::new(LocalProcessRuntime::new(BTreeMap::new())),
        plugin::Settings {
            plugin_dir: dir.path().to_owned(),
            ..Default::default()
        },
        None,
    ));
    let w = pc.clone();
    running.push(s::start(&env, pc, None, move |b, t, x| w.run(b, t, x)));
    running.push(s::start(
        &env,
        Arc::new(UiElementCoordinator::new(pool.clone())),
        None,
        s::no_work,
    ));
    running.push(s::start(
        &env,
        Arc::new(Standin("security")),
        None,
        s::no_work,
    ));

    // The telescope stand-in on a bus we can kill without a goodbye.
    let kill = CancellationToken::new();
    let (tbus, _ttask) = Bus::start(
        s::bus_config(&env, "telescope"),
        Some(last_will(&env.topics, "telescope")),
        kill.clone(),
    );
    tbus.wait_connected(s::WAIT).await.unwrap();
    let telescope = tokio::spawn(
        Runtime::new(Arc::new(Standin("telescope")), tbus, s::runtime(&env), None)
            .run(CancellationToken::new()),
    );

    // "bootstrap" (a stand-in) is a peer that publishes its own health, then goes silent while connected.
    let (abus, _atask) = Bus::start(
        s::bus_config(&env, "bootstrap"),
        Some(last_will(&env.topics, "bootstrap")),
        CancellationToken::new(),
    );
    abus.wait_connected(s::WAIT).await.unwrap();
    let silence = CancellationToken::new();
    let (ab, topics, quiet) = (abus.clone(), env.topics.clone(), silence.clone());
    tokio::spawn(async move {
        while !quiet.is_cancelled() {
            let report = HealthReport::healthy("bootstrap", "ok")
                .with_detail("health_interval_seconds", 0.5);
            let env = Envelope::new(
                MessageType::Status,
                "coordinator:bootstrap",
                serde_json::to_value(&report).unwrap(),
            );
            let _ = ab
                .publish(&topics.health("bootstrap"), env.to_bytes(), false)
                .await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });

    let sum = s::eventually(Duration::from_secs(30), || async {
        let v = summary(&client, &env).await;
        (v["status"] == "healthy").then_some(v)
    })
    .await;
    assert_eq!(sum["counts"]["healthy"], 8, "{sum}");
    for name in message::DEFAULT_EXPECTED {
        assert_eq!(
            sum["coordinators"][name]["status"], "healthy",
            "{name}: {sum}"
        );
    }
    // The retained summary reaches a late subscriber.
    let mut retained = client
        .subscribe(&env.topics.event(message::NAME, SUMMARY_EVENT), 16)
        .await
        .unwrap();
    let first = s::next_json(&mut retained).await;
    assert_eq!(first["source"], "coordinator:message", "{first}");
    assert!(
        first["payload"]["coordinators"]["telescope"].is_object(),
        "{first}"
    );

    // Traffic of every class, each payload unique.
    let marker = uuid::Uuid::new_v4().to_string();
    let markers = [
        env.topics.request("security", "auth", "login"),
        env.topics.request("telescope", "control", "slew"),
        env.topics.config_update("nothing"),
        env.topics.event("plugin", "custom/thing"),
        format!("{}/coordinator/message/bogus", env.topics.root()),
    ];
    for (i, t) in markers.iter().enumerate() {
        client
            .publish(t, json!({"marker": marker, "n": i}).to_string(), false)
            .await
            .unwrap();
    }

    kill.cancel();
    telescope.abort();
    silence.cancel();
    let sum = s::eventually(Duration::from_secs(30), || async {
        let v = summary(&client, &env).await;
        (v["coordinators"]["telescope"]["status"] == "offline"
            && v["coordinators"]["bootstrap"]["status"] == "unhealthy")
            .then_some(v)
    })
    .await;
    assert_eq!(sum["status"], "unhealthy");
    let why = sum["coordinators"]["bootstrap"]["message"]
        .as_str()
        .unwrap();
    assert!(why.contains("missed"), "{why}");
    assert_eq!(
        sum["coordinators"]["telescope"]["reported_status"],
        "offline"
    );
    assert_eq!(sum["counts"]["healthy"], 6, "{sum}");

    let diag = s::request(
        &client,
        &env.topics,
        message::NAME,
        "diagnostics/get",
        json!({}),
        None,
    )
    .await;
    let traffic = &diag["traffic"]["coordinators"];
    assert!(
        traffic["security"]["request"]["messages"].as_u64().unwrap() >= 1,
        "{diag}"
    );
    assert!(
        traffic["nothing"]["config"]["messages"].as_u64().unwrap() >= 1,
        "{diag}"
    );
    assert!(
        traffic["datastore"]["health"]["messages"].as_u64().unwrap() >= 1,
        "{diag}"
    );

    let history = s::eventually(Duration::from_secs(10), || async {
        let h = s::request(
            &client,
            &env.topics,
            message::NAME,
            "history/get",
            json!({"coordinator": "telescope"}),
            Some(s::ADMIN),
        )
        .await;
        (h["history"]
            .as_array()
            .is_some_and(|a| a.iter().any(|e| e["status"] == "offline")))
        .then_some(h)
    })
    .await;
    assert_eq!(history["history"][0]["reason"], "change", "{history}");

    // No message was ever delivered twice: a republishing coordinator would duplicate them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = seen.lock().unwrap().clone();
    let mut counts: HashMap<(&str, &[u8]), usize> = HashMap::new();
    for (t, p, retain) in &seen {
        if !retain {
            *counts.entry((t.as_str(), p.as_slice())).or_default() += 1;
        }
    }
    let dups: Vec<_> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|((t, _), n)| (*t, *n))
        .collect();
    assert!(dups.is_empty(), "republished: {dups:?}");
    for t in &markers {
        let n = seen
            .iter()
            .filter(|(topic, p, _)| topic == t && String::from_utf8_lossy(p).contains(&marker))
            .count();
        assert_eq!(n, 1, "{t} delivered {n} times");
    }
    assert!(
        seen.len() > 50,
        "the recorder saw the traffic ({})",
        seen.len()
    );

    for r in running {
        r.stop().await;
    }
}
