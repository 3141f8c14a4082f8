#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
//! The UI element coordinator against the real broker and PostgreSQL.

mod message_support;

use std::sync::Arc;

use bigskies_coordinators::uielement::{NAME, UiElementCoordinator};
use bigskies_core::config::ConfigStore;
use message_support as s;
use serde_json::json;

#[tokio::test]
async fn elements_register_query_map_and_unregister_with_replies() {
    let env = s::env().await;
    let db = s::database().await;
    let client = s::client(&env).await;
    let mut health = client
        .subscribe(&env.topics.health(NAME), 64)
        .await
        .unwrap();
    let ui = s::start(
        &env,
        Arc::new(UiElementCoordinator::new(db.pool().clone())),
        Some(ConfigStore::new(db.pool().clone())),
        s::no_work,
    );
    s::wait_health(&mut health, "healthy").await;

    // The Go topic and the Go integration tests' field names, raw payload with its token.
    let mut replies = client
        .subscribe(&env.topics.response(NAME, "event", "register"), 4)
        .await
        .unwrap();
    let raw = json!({"element_id": "scope-panel", "plugin_id": "p1", "type": "panel", "name": "Scope",
                     "request_id": "r-1", "token": s::ADMIN,
                     "framework_mappings": {"qt": {"widget_type": "QGroupBox"}}});
    client
        .publish(
            &env.topics.request(NAME, "event", "register"),
            raw.to_string(),
            false,
        )
        .await
        .unwrap();
    let r = s::next_json(&mut replies).await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["correlation_id"], "r-1");
    assert_eq!(r["element"]["title"], "Scope");

    let r = s::request(&client, &env.topics, NAME, "element/register",
        json!({"id": "focus-tool", "plugin_guid": "p2", "type": "tool", "title": "Focus", "order": 2}), Some(s::ADMIN)).await;
    assert_eq!(r["success"], true, "{r}");
    let bad = s::request(
        &client,
        &env.topics,
        NAME,
        "element/register",
        json!({"id": "x", "type": "dashboard", "title": "X"}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(bad["error_code"], "invalid_request");
    let hijack = s::request(
        &client,
        &env.topics,
        NAME,
        "element/register",
        json!({"id": "focus-tool", "plugin_guid": "p1", "type": "tool", "title": "Mine"}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(hijack["error_code"], "conflict");
    let anon = s::request(&client, &env.topics, NAME, "element/query", json!({}), None).await;
    assert_eq!(anon["error_code"], "unauthenticated");

    let by_type = s::request(
        &client,
        &env.topics,
        NAME,
        "element/query",
        json!({"type": "tool"}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(by_type["count"], 1);
    let by_plugin = s::request(
        &client,
        &env.topics,
        NAME,
        "element/list",
        json!({"plugin_id": "p1"}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(by_plugin["elements"][0]["id"], "scope-panel");
    let qt = s::request(
        &client,
        &env.topics,
        NAME,
        "element/query",
        json!({"framework": "qt"}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(qt["count"], 1);

    let add = s::request(&client, &env.topics, NAME, "mapping/add", json!({"element_id": "focus-tool", "framework": "Flutter",
        "mapping": {"widget_type": "Slider", "data_binding": {"property": "value", "source": "position",
                    "mqtt_topic": "bigskies/focuser/0/state/position"}}}), Some(s::ADMIN)).await;
    assert_eq!(
        add["element"]["framework_mappings"]["flutter"]["widget_type"], "Slider",
        "{add}"
    );
    let flutter = s::request(
        &client,
        &env.topics,
        NAME,
        "element/query",
        json!({"framework": "flutter"}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(
        flutter["elements"][0]["mapping"]["data_binding"]["source"],
        "position"
    );
    let rm = s::request(
        &client,
        &env.topics,
        NAME,
        "mapping/remove",
        json!({"element_id": "focus-tool", "framework": "flutter"}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(rm["element"]["framework_mappings"], json!({}));
    let rm = s::request(
        &client,
        &env.topics,
        NAME,
        "mapping/remove",
        json!({"element_id": "focus-tool", "framework": "flutter"}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(rm["error_code"], "not_found");

    let fw = s::request(
        &client,
        &env.topics,
        NAME,
        "framework/list",
        json!({}),
        None,
    )
    .await;
    assert_eq!(fw["frameworks"].as_array().unwrap().len(), 7);

    let gone = s::request(
        &client,
        &env.topics,
        NAME,
        "event/unregister",
        json!({"plugin_guid": "p1"}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(gone["removed"], json!(["scope-panel"]));
    let all = s::request(
        &client,
        &env.topics,
        NAME,
        "element/query",
        json!({}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(all["count"], 1);
    ui.stop().await;
}
