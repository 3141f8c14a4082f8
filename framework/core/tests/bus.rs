#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
//! The bus against a real Mosquitto: overlapping subscriptions of one connection.

mod support;

use std::time::Duration;

use bigskies_core::bus::{Bus, Message};
use tokio::sync::mpsc::Receiver;

const WAIT: Duration = Duration::from_secs(10);

/// Payloads received on `rx` up to and including `last`.
async fn payloads_until(rx: &mut Receiver<Message>, last: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let msg = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {last:?} in time; got {seen:?}"))
            .expect("subscription open");
        let text = String::from_utf8(msg.payload.to_vec()).unwrap();
        if text.starts_with("probe") {
            continue;
        }
        let done = text == last;
        seen.push(text);
        if done {
            return seen;
        }
    }
}

struct Overlapping {
    all: Receiver<Message>,
    plus: Receiver<Message>,
    exact: Receiver<Message>,
    exact_again: Receiver<Message>,
    many: Receiver<Message>,
}

/// Five local subscriptions on one bus whose filters overlap on `<root>/a/b/c`.
async fn subscribe_overlapping(bus: &Bus, root: &str) -> Overlapping {
    Overlapping {
        all: bus.subscribe(&format!("{root}/a/#"), 16).await.unwrap(),
        plus: bus.subscribe(&format!("{root}/a/b/+"), 16).await.unwrap(),
        exact: bus.subscribe(&format!("{root}/a/b/c"), 16).await.unwrap(),
        // The same filter twice: both subscribers get every message.
        exact_again: bus.subscribe(&format!("{root}/a/b/c"), 16).await.unwrap(),
        // One receiver for two filters.
        many: bus
            .subscribe_many(&[format!("{root}/a/b/c"), format!("{root}/z")], 16)
            .await
            .unwrap(),
    }
}

/// Probe every filter of `subs` until each has been restored at the broker (the bus
/// resubscribes in the background after a reconnect). Probes are ignored by the checks.
async fn wait_resubscribed(publisher: &Bus, root: &str, subs: &mut Overlapping) {
    let (abc, ax, z) = (
        format!("{root}/a/b/c"),
        format!("{root}/a/x"),
        format!("{root}/z"),
    );
    let mut pending: Vec<(&mut Receiver<Message>, Vec<&str>)> = vec![
        (&mut subs.all, vec![&ax]),
        (&mut subs.plus, vec![&abc]),
        (&mut subs.exact, vec![&abc]),
        (&mut subs.exact_again, vec![&abc]),
        (&mut subs.many, vec![&abc, &z]),
    ];
    for round in 0.. {
        assert!(round < 50, "the bus never resubscribed");
        for topic in [&abc, &ax, &z] {
            publisher.publish(topic, "probe", false).await.unwrap();
        }
        for (rx, topics) in &mut pending {
            while let Ok(Some(m)) =
                tokio::time::timeout(Duration::from_millis(200), rx.recv()).await
            {
                topics.retain(|t| *t != m.topic);
            }
        }
        pending.retain(|(_, topics)| !topics.is_empty());
        if pending.is_empty() {
            return;
        }
    }
}

async fn publish_and_check(publisher: &Bus, root: &str, mut subs: Overlapping) {
    let abc = format!("{root}/a/b/c");
    for (topic, text) in [
        (abc.as_str(), "1"),
        (abc.as_str(), "2"),
        (&format!("{root}/a/x"), "3"),
        (&format!("{root}/z"), "4"),
        (abc.as_str(), "end"),
    ] {
        publisher.publish(topic, text, false).await.unwrap();
    }
    assert_eq!(
        payloads_until(&mut subs.all, "end").await,
        ["1", "2", "3", "end"]
    );
    assert_eq!(
        payloads_until(&mut subs.plus, "end").await,
        ["1", "2", "end"]
    );
    assert_eq!(
        payloads_until(&mut subs.exact, "end").await,
        ["1", "2", "end"]
    );
    assert_eq!(
        payloads_until(&mut subs.exact_again, "end").await,
        ["1", "2", "end"]
    );
    assert_eq!(
        payloads_until(&mut subs.many, "end").await,
        ["1", "2", "4", "end"]
    );
}

#[tokio::test]
async fn overlapping_subscriptions_deliver_each_message_once_to_each_subscriber() {
    let env = support::env().await;
    let root = env.topics.root().to_owned();
    let bus = support::client(&env.host, env.port).await;
    let publisher = support::client(&env.host, env.port).await;
    let subs = subscribe_overlapping(&bus, &root).await;
    publish_and_check(&publisher, &root, subs).await;
}

#[tokio::test]
async fn overlapping_subscriptions_stay_exact_after_the_broker_restarts() {
    let mut broker = support::private_broker().await;
    let port = broker.port();
    let root = support::env().await.topics.root().to_owned();
    let mut cfg = support::bus_config("127.0.0.1", port, "overlap");
    cfg.backoff_max = Duration::from_millis(300);
    let (bus, _task) = Bus::start(cfg, None, tokio_util::sync::CancellationToken::new());
    bus.wait_connected(WAIT).await.unwrap();
    let mut subs = subscribe_overlapping(&bus, &root).await;

    broker.kill();
    broker
        .restart()
        .await
        .expect("broker restarts on the same port");
    // The killed broker forgot every subscription: the bus restores them on reconnect, with
    // the identifiers it had.
    let mut link = bus.connection_watch();
    tokio::time::timeout(WAIT, link.wait_for(|up| *up))
        .await
        .unwrap()
        .unwrap();
    let publisher = support::client("127.0.0.1", port).await;
    wait_resubscribed(&publisher, &root, &mut subs).await;
    publish_and_check(&publisher, &root, subs).await;
}

/// A clean disconnect must never let the broker publish the last will, even when a
/// subscriber of the connection has stopped reading and its queue is full (the event loop
/// would wait on it and never write the DISCONNECT): watchers would take a coordinator that
/// said `stopping` for one that crashed.
#[tokio::test]
async fn a_clean_disconnect_never_publishes_the_last_will() {
    use bigskies_core::bus::Will;
    use tokio_util::sync::CancellationToken;

    let env = support::env().await;
    let root = env.topics.root().to_owned();
    let watcher = support::client(&env.host, env.port).await;
    let mut wills = watcher
        .subscribe(&format!("{root}/will/#"), 1024)
        .await
        .unwrap();
    let mut byes = watcher
        .subscribe(&format!("{root}/bye/#"), 1024)
        .await
        .unwrap();
    let flooder = support::client(&env.host, env.port).await;

    const ROUNDS: usize = 10;
    for round in 0..ROUNDS {
        let mut tasks = Vec::new();
        for n in 0..4 {
            let (host, port, root) = (env.host.clone(), env.port, root.clone());
            let (flooder, flooder2) = (flooder.clone(), flooder.clone());
            let marker_watch = watcher.clone();
            tasks.push(tokio::spawn(async move {
                let name = format!("{round}-{n}");
                let will = Will {
                    topic: format!("{root}/will/{name}"),
                    payload: b"offline".to_vec(),
                    retain: false,
                };
                let stop = CancellationToken::new();
                let (bus, task) = Bus::start(
                    support::bus_config(&host, port, "will"),
                    Some(will),
                    stop.clone(),
                );
                bus.wait_connected(WAIT).await.unwrap();
                let rx = bus
                    .subscribe(&format!("{root}/in/{name}"), 4)
                    .await
                    .unwrap();
                // Traffic towards the connection that nobody reads: the queue of 4 fills and
                // the rest waits at the broker and in the socket.
                let in_topic = format!("{root}/in/{name}");
                let flood = tokio::spawn(async move {
                    for i in 0..200 {
                        if flooder
                            .publish(&in_topic, format!("m{i}"), false)
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                });
                flood.await.unwrap();
                // The broker handles publications in order: once the marker is back, the flood
                // has been sent towards the connection, which soon waits on the full queue.
                let mut marker = marker_watch
                    .subscribe(&format!("{root}/marker/{name}"), 1)
                    .await
                    .unwrap();
                flooder2
                    .publish(&format!("{root}/marker/{name}"), "m", false)
                    .await
                    .unwrap();
                tokio::time::timeout(WAIT, marker.recv())
                    .await
                    .unwrap()
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
                bus.publish(&format!("{root}/bye/{name}"), "stopping", false)
                    .await
                    .unwrap();
                let started = std::time::Instant::now();
                bus.disconnect().await;
                let took = started.elapsed();
                assert!(took < Duration::from_secs(1), "disconnect took {took:?}");
                drop(rx);
                stop.cancel();
                task.await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
    // Every goodbye arrives; no will does.
    let mut said = Vec::new();
    while said.len() < ROUNDS * 4 {
        match tokio::time::timeout(WAIT, byes.recv()).await {
            Ok(Some(m)) => said.push(m.topic),
            _ => panic!("only {} goodbyes arrived: {said:?}", said.len()),
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut published = Vec::new();
    while let Ok(m) = wills.try_recv() {
        published.push(m.topic);
    }
    assert!(
        published.is_empty(),
        "wills published on clean disconnects: {published:?}"
    );
}

/// Issue 20, item 9: a coordinator that restarts connects with the same client id and takes
/// over its own session (clearing it) instead of leaving an orphan behind that holds its
/// subscriptions and queues messages until it expires.
#[tokio::test]
async fn a_restart_takes_over_its_own_session() {
    use bigskies_core::bus::deployment_client_id;
    use tokio_util::sync::CancellationToken;

    let env = support::env().await;
    let root = env.topics.root().to_owned();
    let topic = format!("{root}/coordinator/svc/op/x");
    let publisher = support::client(&env.host, env.port).await;
    let mut config = support::bus_config(&env.host, env.port, "svc");
    config.client_id = Some(deployment_client_id(&root, "svc", None));

    let start = || {
        let stop = CancellationToken::new();
        let (bus, task) = Bus::start(config.clone(), None, stop.clone());
        (bus, task, stop)
    };
    let (first, task, stop) = start();
    first.wait_connected(WAIT).await.unwrap();
    let first_id = first.client_id().to_owned();
    let _keep = first.subscribe(&topic, 8).await.unwrap();
    first.disconnect().await;
    stop.cancel();
    task.await.unwrap();

    // While it is away its session (expiry > 0) would queue this for it.
    publisher.publish(&topic, "stale", false).await.unwrap();

    let (second, task, stop) = start();
    second.wait_connected(WAIT).await.unwrap();
    assert_eq!(
        second.client_id(),
        first_id,
        "a restart reuses its client id, so it cannot leave its old session behind"
    );
    let mut rx = second.subscribe(&topic, 8).await.unwrap();
    publisher.publish(&topic, "fresh", false).await.unwrap();
    let got = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        &got.payload[..],
        b"fresh",
        "the old session was cleared, not resumed with stale messages"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err()
    );
    second.disconnect().await;
    stop.cancel();
    task.await.unwrap();
}
