#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
//! Anyone may publish under `<root>/coordinator/`: made-up coordinator names must not grow
//! the message coordinator's state, bloat its diagnostics reply or add coordinators to the
//! system summary (issue 20, item 7). Real broker, one topic root per test.

mod message_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bigskies_coordinators::message::{self, DEFAULT_EXPECTED, MessageCoordinator};
use bigskies_core::bus::Bus;
use bigskies_core::envelope::{Envelope, MessageType};
use message_support as s;
use serde_json::{Value, json};

/// A message coordinator without history, sweeping often; returned once its ingest sees its
/// own health (so the ingest subscription is live).
async fn start(env: &s::Env) -> (Arc<MessageCoordinator>, s::Running) {
    let settings = message::Settings {
        monitor_interval: Duration::from_secs(1),
        sweep_interval: Duration::from_millis(100),
        ..message::Settings::default()
    };
    let mc = Arc::new(MessageCoordinator::new(
        settings,
        None,
        s::bus_config(env, "message-ingest"),
    ));
    let w = mc.clone();
    let running = s::start(env, mc.clone(), None, move |b, t, x| w.run(b, t, x));
    let seen = mc.clone();
    s::eventually(s::WAIT, || {
        let seen = seen.clone();
        async move {
            seen.coordinators()
                .iter()
                .any(|c| c.name == message::NAME && c.reports > 0)
                .then_some(())
        }
    })
    .await;
    (mc, running)
}

/// Publish `n` messages from `make(i)` (topic, payload) and wait until the ingest has read
/// them all.
async fn flood(
    client: &Bus,
    mc: &MessageCoordinator,
    n: usize,
    make: impl Fn(usize) -> (String, Vec<u8>),
) {
    let before = mc.stats().received.load(Ordering::Relaxed);
    for i in 0..n {
        let (topic, payload) = make(i);
        client.publish(&topic, payload, false).await.unwrap();
    }
    s::eventually(Duration::from_secs(60), || async {
        (mc.stats().received.load(Ordering::Relaxed) >= before + n as u64).then_some(())
    })
    .await;
}

async fn diagnostics(client: &Bus, env: &s::Env, body: Value) -> Value {
    s::request(
        client,
        &env.topics,
        message::NAME,
        "diagnostics/get",
        body,
        None,
    )
    .await
}

#[tokio::test]
async fn fake_health_topics_add_no_coordinators_to_the_summary() {
    let env = s::env().await;
    let client = s::client(&env).await;
    let (mc, running) = start(&env).await;
    let root = env.topics.root().to_owned();

    flood(&client, &mc, 200, |i| {
        let name = format!("fake-{i}");
        let env = Envelope::new(
            MessageType::Status,
            format!("coordinator:{name}"),
            json!({"component": name, "status": "unhealthy", "message": "forged"}),
        );
        (
            format!("{root}/coordinator/{name}/health/status"),
            env.to_bytes().to_vec(),
        )
    })
    .await;

    let known: BTreeSet<&str> = DEFAULT_EXPECTED.into_iter().collect();
    let tracked: Vec<String> = mc.coordinators().into_iter().map(|c| c.name).collect();
    assert!(
        tracked.iter().all(|n| known.contains(n.as_str())),
        "only known coordinators are tracked: {tracked:?}"
    );
    let sum = s::request(
        &client,
        &env.topics,
        message::NAME,
        "summary/get",
        json!({}),
        None,
    )
    .await;
    let names: Vec<&String> = sum["coordinators"].as_object().unwrap().keys().collect();
    assert!(
        names.iter().all(|n| known.contains(n.as_str())),
        "the summary lists only known coordinators: {names:?}"
    );
    assert_eq!(sum["counts"]["unhealthy"], 0, "{sum}");
    running.stop().await;
}

#[tokio::test]
async fn thousands_of_invented_names_stay_within_the_cap_and_diagnostics_is_paginated() {
    let env = s::env().await;
    let client = s::client(&env).await;
    let (mc, running) = start(&env).await;
    let root = env.topics.root().to_owned();
    let padding = "x".repeat(300);

    flood(&client, &mc, 3000, |i| {
        (
            format!("{root}/coordinator/{i}-{padding}/made/up"),
            b"{}".to_vec(),
        )
    })
    .await;

    // The default page: bounded, and it says how many there are.
    let first = diagnostics(&client, &env, json!({})).await;
    assert_eq!(first["success"], true, "{first}");
    let total = first["total"].as_u64().expect("the reply states the total") as usize;
    assert!(
        total <= DEFAULT_EXPECTED.len() + 64 + 1,
        "the known names, the capped others and the overflow bucket: {total}"
    );
    assert!(
        first.to_string().len() < 64 * 1024,
        "the reply is bounded: {} bytes",
        first.to_string().len()
    );
    assert!(first["traffic"]["coordinators"].as_object().unwrap().len() <= 50);
    assert!(
        first["traffic"]["total_messages"].as_u64().unwrap() >= 3000,
        "every message is still counted: {}",
        first["traffic"]["total_messages"]
    );

    // Walking the pages gives every name once, each cut to a bounded length.
    let mut names = BTreeSet::new();
    let mut offset = 0;
    loop {
        let page = diagnostics(&client, &env, json!({"limit": 7, "offset": offset})).await;
        assert_eq!(page["total"], total, "{page}");
        let entries = page["traffic"]["coordinators"].as_object().unwrap();
        assert!(entries.len() <= 7);
        for name in entries.keys() {
            assert!(name.len() <= 64, "a long name is cut: {name}");
            assert!(names.insert(name.clone()), "{name} on two pages");
        }
        match page["next_offset"].as_u64() {
            Some(next) => offset = next,
            None => break,
        }
    }
    assert_eq!(names.len(), total);

    for body in [
        json!({"limit": 0}),
        json!({"limit": 101}),
        json!({"limit": 1_000_000}),
        json!({"limit": -1}),
        json!({"offset": -5}),
    ] {
        let r = diagnostics(&client, &env, body.clone()).await;
        assert_eq!(r["success"], false, "{body}: {r}");
        assert_eq!(r["error_code"], "invalid_request", "{body}: {r}");
    }
    running.stop().await;
}
