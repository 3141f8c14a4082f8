#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
//! The application coordinator against the real broker and PostgreSQL.

mod message_support;

use std::sync::Arc;
use std::time::Duration;

use bigskies_coordinators::application::{ApplicationCoordinator, NAME, Settings};
use bigskies_core::config::{ConfigStore, ConfigType};
use bigskies_core::envelope::{Envelope, MessageType};
use message_support as s;
use serde_json::json;

fn start(env: &s::Env, pool: &sqlx::PgPool) -> (Arc<ApplicationCoordinator>, s::Running) {
    let c = Arc::new(ApplicationCoordinator::new(
        pool.clone(),
        Settings::default(),
    ));
    let w = c.clone();
    let r = s::start(
        env,
        c.clone(),
        Some(ConfigStore::new(pool.clone())),
        move |b, t, x| w.run(b, t, x),
    );
    (c, r)
}

#[tokio::test]
async fn the_registry_survives_a_coordinator_restart() {
    let env = s::env().await;
    let db = s::database().await;
    let client = s::client(&env).await;
    let mut health = client
        .subscribe(&env.topics.health(NAME), 64)
        .await
        .unwrap();
    let (_c, running) = start(&env, db.pool());
    s::wait_health(&mut health, "healthy").await;

    // Changes need a credential.
    let refused = s::request(
        &client,
        &env.topics,
        NAME,
        "service/register",
        json!({"id": "cam-1", "name": "camera"}),
        None,
    )
    .await;
    assert_eq!(refused["success"], false);
    assert_eq!(refused["error_code"], "unauthenticated");

    let reg = s::request(
        &client,
        &env.topics,
        NAME,
        "service/register",
        json!({"id": "cam-1", "name": "camera", "endpoint": "http://cam:8080", "metadata": {"model": "x"}}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(reg["success"], true, "{reg}");
    assert_eq!(reg["service"]["status"], "healthy");
    let hb = s::request(
        &client,
        &env.topics,
        NAME,
        "service/heartbeat",
        json!({"id": "cam-1", "status": "degraded"}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(hb["service"]["status"], "degraded");
    // Another principal may not take the registration over.
    let other = s::request(
        &client,
        &env.topics,
        NAME,
        "service/heartbeat",
        json!({"id": "cam-1"}),
        Some(s::NOBODY),
    )
    .await;
    assert_eq!(other["error_code"], "forbidden");

    running.stop().await;
    s::wait_health(&mut health, "stopping").await;
    let (_c, running) = start(&env, db.pool());
    s::wait_health(&mut health, "healthy").await;
    let listed = s::request(
        &client,
        &env.topics,
        NAME,
        "service/list",
        json!({}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(listed["count"], 1, "{listed}");
    assert_eq!(listed["services"][0]["id"], "cam-1");
    assert_eq!(listed["services"][0]["endpoint"], "http://cam:8080");
    assert_eq!(listed["services"][0]["metadata"]["model"], "x");
    let got = s::request(
        &client,
        &env.topics,
        NAME,
        "service/status",
        json!({"id": "cam-1"}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(got["service"]["status"], "degraded");

    let gone = s::request(
        &client,
        &env.topics,
        NAME,
        "service/unregister",
        json!({"id": "cam-1"}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(gone["success"], true);
    let missing = s::request(
        &client,
        &env.topics,
        NAME,
        "service/get",
        json!({"id": "cam-1"}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(missing["error_code"], "not_found");
    running.stop().await;
}

#[tokio::test]
async fn silent_services_turn_unhealthy_then_are_dropped_after_a_live_reconfiguration() {
    let env = s::env().await;
    let db = s::database().await;
    let client = s::client(&env).await;
    let mut health = client
        .subscribe(&env.topics.health(NAME), 64)
        .await
        .unwrap();
    let mut events = client
        .subscribe(&env.topics.event(NAME, "service/+"), 16)
        .await
        .unwrap();
    let (c, running) = start(&env, db.pool());
    s::wait_health(&mut health, "healthy").await;

    // Go clients send enveloped payloads: accepted here too.
    let reg = s::request(
        &client,
        &env.topics,
        NAME,
        "service/register",
        json!({"id": "s1", "name": "weather"}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(reg["success"], true);

    let store = ConfigStore::new(db.pool().clone());
    for (k, v) in [
        ("registry_check_interval", 0.2),
        ("service_timeout", 1.0),
        ("service_drop_after", 2.5),
    ] {
        store
            .set(
                "application",
                k,
                json!(v),
                ConfigType::Duration,
                false,
                None,
            )
            .await
            .unwrap();
    }
    let update = Envelope::new(
        MessageType::Event,
        "test",
        json!({"config_key": "service_timeout", "config_value": 1}),
    );
    client
        .publish(&env.topics.config_update(NAME), update.to_bytes(), false)
        .await
        .unwrap();
    s::eventually(Duration::from_secs(5), || async {
        (c.settings().service_timeout == Duration::from_secs(1)).then_some(())
    })
    .await;

    // Framework envelopes, like every event.
    let first = s::next_json(&mut events).await;
    assert_eq!(first["type"], "event", "{first}");
    assert_eq!(first["source"], "coordinator:application", "{first}");
    let first = &first["payload"];
    assert_eq!(
        *first,
        json!({"id": "s1", "status": "unhealthy", "timestamp": first["timestamp"]})
    );
    s::wait_health(&mut health, "degraded").await;
    let second = s::next_json(&mut events).await;
    assert_eq!(second["payload"]["status"], "dropped", "{second}");
    let listed = s::request(
        &client,
        &env.topics,
        NAME,
        "service/list",
        json!({}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(listed["count"], 0);
    running.stop().await;
}

/// Waits for a health report whose details reach `handled` and `refused` events.
async fn wait_events(
    health: &mut tokio::sync::mpsc::Receiver<bigskies_core::bus::Message>,
    handled: u64,
    refused: u64,
) {
    let reached = async {
        loop {
            let v = s::next_json(health).await;
            let d = v["payload"]["details"].clone();
            if d["events_handled"].as_u64() >= Some(handled)
                && d["events_refused"].as_u64() >= Some(refused)
            {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), reached)
        .await
        .unwrap_or_else(|_| panic!("never {handled} events handled and {refused} refused"));
}

#[tokio::test]
async fn the_go_service_event_topics_register_and_heartbeat_behind_authentication() {
    let env = s::env().await;
    let db = s::database().await;
    let client = s::client(&env).await;
    let mut health = client
        .subscribe(&env.topics.health(NAME), 64)
        .await
        .unwrap();
    let (_c, running) = start(&env, db.pool());
    s::wait_health(&mut health, "healthy").await;
    let register = env.topics.event("service", "register");
    let heartbeat = env.topics.event("service", "heartbeat");
    assert_eq!(
        register,
        format!("{}/coordinator/service/event/register", env.topics.root())
    );
    let publish = |topic: String, body: Vec<u8>| {
        let client = client.clone();
        async move { client.publish(&topic, body, false).await.unwrap() }
    };

    // Refused, and nothing changes: what the Go framework sends (an envelope without a
    // credential), a payload without its name, and bytes that are not JSON.
    let go = json!({"id": "20260116120000.123456", "type": "event", "source": "service:cam",
        "timestamp": "2026-01-16T12:00:00.123456789Z",
        "payload": {"id": "go-cam", "name": "camera", "endpoint": "http://cam", "metadata": {}}});
    publish(register.clone(), go.to_string().into_bytes()).await;
    let nameless = json!({"id": "bad-cam", "token": s::ADMIN});
    publish(register.clone(), nameless.to_string().into_bytes()).await;
    publish(register.clone(), b"{not json".to_vec()).await;
    let beat_unknown =
        json!({"id": "nobody-registered-me", "status": "healthy", "token": s::ADMIN});
    publish(heartbeat.clone(), beat_unknown.to_string().into_bytes()).await;
    wait_events(&mut health, 0, 4).await;

    // An event that asks for a reply gets one.
    let reply = env.topics.client_reply("events-test");
    let mut replies = client.subscribe(&reply, 4).await.unwrap();
    let asking = Envelope::new(
        MessageType::Event,
        "test",
        json!({"id": "go-cam", "name": "camera"}),
    )
    .with_correlation_id("ask-1")
    .with_reply_to(&reply);
    publish(register.clone(), asking.to_bytes()).await;
    let answer = s::next_json(&mut replies).await;
    assert_eq!(answer["error_code"], "unauthenticated", "{answer}");
    assert_eq!(answer["correlation_id"], "ask-1");

    // With a credential, enveloped (register) and bare (heartbeat): both apply.
    let good = Envelope::new(
        MessageType::Event,
        "service:cam",
        json!({"id": "cam-2", "name": "camera 2", "endpoint": "http://cam2:8080", "metadata": {"k": "v"}}),
    )
    .with_token(s::ADMIN);
    publish(register.clone(), good.to_bytes()).await;
    let list = || async {
        s::request(
            &client,
            &env.topics,
            NAME,
            "service/list",
            json!({}),
            Some(s::ADMIN),
        )
        .await
    };
    let listed = s::eventually(Duration::from_secs(10), || async {
        let l = list().await;
        (l["count"] == 1).then_some(l)
    })
    .await;
    assert_eq!(listed["services"][0]["id"], "cam-2", "{listed}");
    assert_eq!(listed["services"][0]["endpoint"], "http://cam2:8080");
    assert_eq!(listed["services"][0]["metadata"]["k"], "v");
    let beat = json!({"id": "cam-2", "status": "degraded", "token": s::ADMIN});
    publish(heartbeat.clone(), beat.to_string().into_bytes()).await;
    s::eventually(Duration::from_secs(10), || async {
        let got = s::request(
            &client,
            &env.topics,
            NAME,
            "service/get",
            json!({"id": "cam-2"}),
            Some(s::ADMIN),
        )
        .await;
        (got["service"]["status"] == "degraded").then_some(())
    })
    .await;
    // A heartbeat from another principal is refused like the request would be.
    let foreign = json!({"id": "cam-2", "status": "unhealthy", "token": s::NOBODY});
    publish(heartbeat, foreign.to_string().into_bytes()).await;
    wait_events(&mut health, 2, 6).await;

    let listed = list().await;
    assert_eq!(
        listed["count"], 1,
        "only the authenticated registration: {listed}"
    );
    assert_eq!(listed["services"][0]["status"], "degraded");
    running.stop().await;
}
