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

    let first = s::next_json(&mut events).await;
    assert_eq!(
        first,
        json!({"id": "s1", "status": "unhealthy", "timestamp": first["timestamp"]})
    );
    s::wait_health(&mut health, "degraded").await;
    let second = s::next_json(&mut events).await;
    assert_eq!(second["status"], "dropped");
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
