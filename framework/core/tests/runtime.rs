#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
//! The coordinator runtime against a real Mosquitto and PostgreSQL.
//!
//! Each test has its own topic root (and database where it needs one), so tests run in
//! parallel on one broker without crosstalk.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bigskies_core::bus::{Bus, Message};
use bigskies_core::config::{ConfigStore, ConfigType, MIGRATOR};
use bigskies_core::envelope::{Envelope, MessageType, answers, request_digest};
use bigskies_core::health::HealthStatus;
use bigskies_core::runtime::{Launch, RuntimeConfig, launch};
use bigskies_core::topics::Topics;
use serde_json::{Value, json};
use support::echo::Echo;
use tokio::sync::mpsc::Receiver;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

async fn next_json(rx: &mut Receiver<Message>) -> Value {
    let msg = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("no message in time")
        .expect("subscription closed");
    serde_json::from_slice(&msg.payload).expect("message is JSON")
}

/// Health payloads (inside their envelopes) until one has `status`.
async fn wait_health(rx: &mut Receiver<Message>, status: &str) -> Value {
    loop {
        let env = next_json(rx).await;
        assert_eq!(env["type"], "status", "health is enveloped: {env}");
        if env["payload"]["status"] == status {
            return env;
        }
    }
}

struct Running {
    topics: Topics,
    client: Bus,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), bigskies_core::runtime::RuntimeError>>,
    echo: Arc<Echo>,
}

async fn start(
    host: &str,
    port: u16,
    runtime: RuntimeConfig,
    store: Option<ConfigStore>,
) -> Running {
    start_with_auth(host, port, runtime, store, None).await
}

async fn start_with_auth(
    host: &str,
    port: u16,
    runtime: RuntimeConfig,
    store: Option<ConfigStore>,
    authenticator: Option<Arc<dyn bigskies_core::auth::Authenticator>>,
) -> Running {
    let echo = Arc::new(Echo::new());
    let stop = CancellationToken::new();
    let topics = runtime.topics.clone();
    let launch_cfg = Launch {
        bus: support::bus_config(host, port, "echo"),
        runtime,
        store,
        connect_timeout: WAIT,
        authenticator,
    };
    let task = tokio::spawn(launch(echo.clone(), launch_cfg, stop.clone()));
    let client = support::client(host, port).await;
    Running {
        topics,
        client,
        stop,
        task,
        echo,
    }
}

fn runtime_config(topics: Topics) -> RuntimeConfig {
    RuntimeConfig {
        topics,
        health_poll: Duration::from_millis(100),
        ..RuntimeConfig::default()
    }
}

/// Start a coordinator without authentication and wait until it serves; returns it with a
/// subscription to its health topic.
async fn start_ready(env: &support::Env, runtime: RuntimeConfig) -> (Running, Receiver<Message>) {
    let r = start(&env.host, env.port, runtime, None).await;
    let mut health = r
        .client
        .subscribe(&r.topics.health("echo"), 64)
        .await
        .unwrap();
    r.ready(&mut health).await;
    (r, health)
}

impl Running {
    /// Wait for the coordinator's first health message, i.e. until it serves.
    async fn ready(&self, health: &mut Receiver<Message>) {
        wait_health(health, "healthy").await;
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("coordinator stops in time")
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn replies_go_to_the_compatible_topic_with_the_correlation_id() {
    let env = support::env().await;
    let (r, _health) = start_ready(&env, runtime_config(env.topics.clone())).await;

    let mut replies = r
        .client
        .subscribe(&r.topics.response("echo", "echo", "say"), 16)
        .await
        .unwrap();
    let req = r.topics.request("echo", "echo", "say");
    r.client
        .publish(
            &req,
            json!({"text": "hi", "times": 2, "request_id": "bare-1"}).to_string(),
            false,
        )
        .await
        .unwrap();
    let mut reply = next_json(&mut replies).await;
    let digest = reply
        .as_object_mut()
        .and_then(|m| m.remove("request_digest"));
    assert!(digest.is_some(), "every reply names its request: {reply}");
    assert_eq!(
        reply,
        json!({"success": true, "text": "hihi", "had_token": false, "correlation_id": "bare-1"})
    );

    // Enveloped, with a token and a private reply topic: the reply goes only there.
    let private = format!("{}/client/test/reply", r.topics.root());
    let mut mine = r.client.subscribe(&private, 16).await.unwrap();
    let e = Envelope::new(MessageType::Request, "test", json!({"text": "yo"}))
        .with_correlation_id("env-7")
        .with_reply_to(&private)
        .with_token("t0k");
    r.client.publish(&req, e.to_bytes(), false).await.unwrap();
    let reply = next_json(&mut mine).await;
    assert_eq!(reply["correlation_id"], "env-7");
    assert_eq!(reply["had_token"], true);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), replies.recv())
            .await
            .is_err(),
        "nothing on the shared topic"
    );

    // MQTT 5 request/response: response topic and correlation data.
    let v5 = format!("{}/client/v5/reply", r.topics.root());
    let mut v5rx = r.client.subscribe(&v5, 16).await.unwrap();
    r.client
        .publish_request(
            &req,
            json!({"text": "five"}).to_string(),
            &v5,
            Some(bytes::Bytes::from_static(b"cd-1")),
        )
        .await
        .unwrap();
    let msg = tokio::time::timeout(WAIT, v5rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.correlation_data.as_deref(), Some(&b"cd-1"[..]));
    let reply: Value = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(reply["text"], "five");
    r.stop().await;
}

#[tokio::test]
async fn bad_requests_get_error_replies_with_their_correlation_id() {
    let env = support::env().await;
    let mut cfg = runtime_config(env.topics.clone());
    cfg.max_payload = 1024;
    cfg.handler_timeout = Duration::from_millis(300);
    let (r, _health) = start_ready(&env, cfg).await;
    let mut replies = r
        .client
        .subscribe(&r.topics.response("echo", "echo", "+"), 16)
        .await
        .unwrap();
    let say = r.topics.request("echo", "echo", "say");

    let cases: Vec<(String, Vec<u8>, &str, &str)> = vec![
        (say.clone(), b"{\"text\": \"unterminated".to_vec(), "", "invalid_request"),
        (say.clone(), b"[1, 2, 3]".to_vec(), "", "invalid_request"),
        (say.clone(), json!({"text": 5, "correlation_id": "wrong-type"}).to_string().into_bytes(), "wrong-type", "invalid_request"),
        (say.clone(), json!({"correlation_id": "missing-field"}).to_string().into_bytes(), "missing-field", "invalid_request"),
        (say.clone(), json!({"text": "x", "times": 1000, "correlation_id": "rule"}).to_string().into_bytes(), "rule", "invalid_request"),
        (
            say.clone(),
            json!({"text": "x".repeat(4096), "correlation_id": "too-big"}).to_string().into_bytes(),
            "too-big",
            "invalid_request",
        ),
        (r.topics.request("echo", "echo", "fly"), json!({"correlation_id": "unknown-op"}).to_string().into_bytes(), "unknown-op", "not_found"),
        (r.topics.request("echo", "echo", "panic"), json!({"correlation_id": "boom"}).to_string().into_bytes(), "boom", "internal"),
        (r.topics.request("echo", "echo", "sleep"), json!({"ms": 5000, "correlation_id": "slow"}).to_string().into_bytes(), "slow", "timeout"),
        (
            say.clone(),
            json!({"text": "x", "correlation_id": "reflect", "reply_to": r.topics.request("other", "user", "delete")})
                .to_string()
                .into_bytes(),
            "reflect",
            "invalid_request",
        ),
    ];
    for (topic, payload, cid, kind) in cases {
        r.client.publish(&topic, payload, false).await.unwrap();
        let reply = next_json(&mut replies).await;
        assert_eq!(reply["success"], false, "{cid}: {reply}");
        assert_eq!(reply["error_code"], kind, "{cid}: {reply}");
        assert!(
            reply["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{cid}: {reply}"
        );
        if cid.is_empty() {
            assert!(reply.get("correlation_id").is_none(), "{reply}");
        } else {
            assert_eq!(reply["correlation_id"], cid, "{reply}");
        }
    }
    // Still serving after all of that.
    r.client
        .publish(
            &say,
            json!({"text": "ok", "correlation_id": "after"}).to_string(),
            false,
        )
        .await
        .unwrap();
    let reply = next_json(&mut replies).await;
    assert_eq!(
        (reply["success"].clone(), reply["correlation_id"].clone()),
        (json!(true), json!("after"))
    );
    r.stop().await;
}

#[tokio::test]
async fn a_coordinator_keeps_serving_after_its_broker_restarts() {
    let mut broker = support::private_broker().await;
    let port = broker.port();
    let topics = support::env().await.topics.clone();
    let mut cfg = runtime_config(topics.clone());
    cfg.health_interval = Duration::from_millis(500);
    let echo = Arc::new(Echo::new());
    let stop = CancellationToken::new();
    let mut bus_cfg = support::bus_config("127.0.0.1", port, "echo");
    bus_cfg.backoff_max = Duration::from_millis(500);
    let task = tokio::spawn(launch(
        echo,
        Launch {
            bus: bus_cfg,
            runtime: cfg,
            store: None,
            connect_timeout: WAIT,
            authenticator: None,
        },
        stop.clone(),
    ));
    let probe = |client: Bus| {
        let topics = topics.clone();
        async move {
            let mut replies = client
                .subscribe(&topics.response("echo", "echo", "say"), 4)
                .await
                .unwrap();
            // The coordinator may still be reconnecting: ask until it answers.
            for attempt in 0..40 {
                let cid = format!("probe-{attempt}");
                client
                    .publish(
                        &topics.request("echo", "echo", "say"),
                        json!({"text": "?", "correlation_id": cid}).to_string(),
                        false,
                    )
                    .await
                    .unwrap();
                if let Ok(Some(m)) =
                    tokio::time::timeout(Duration::from_millis(500), replies.recv()).await
                {
                    let v: Value = serde_json::from_slice(&m.payload).unwrap();
                    assert_eq!(v["success"], true);
                    return attempt;
                }
            }
            panic!("the coordinator never answered");
        }
    };
    let before = support::client("127.0.0.1", port).await;
    probe(before.clone()).await;

    broker.kill();
    tokio::time::sleep(Duration::from_millis(800)).await;
    broker
        .restart()
        .await
        .expect("broker restarts on the same port");

    // A brand-new client after the restart; the test never asks the coordinator to resubscribe.
    let after = support::client("127.0.0.1", port).await;
    probe(after).await;
    stop.cancel();
    tokio::time::timeout(WAIT, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_killed_coordinator_is_marked_offline_and_a_stopped_one_says_stopping() {
    let env = support::env().await;
    let topics = env.topics.clone();
    let client = support::client(&env.host, env.port).await;
    let mut health = client.subscribe(&topics.health("echo"), 64).await.unwrap();

    // Killed: the connection drops without DISCONNECT, so the broker publishes the last will.
    let bus_stop = CancellationToken::new();
    let will = bigskies_core::runtime::last_will(&topics, "echo");
    let (bus, bus_task) = Bus::start(
        support::bus_config(&env.host, env.port, "echo"),
        Some(will),
        bus_stop.clone(),
    );
    bus.wait_connected(WAIT).await.unwrap();
    let rt = bigskies_core::runtime::Runtime::new(
        Arc::new(Echo::new()),
        bus,
        runtime_config(topics.clone()),
        None,
    );
    let rt_task = tokio::spawn(rt.run(CancellationToken::new()));
    wait_health(&mut health, "healthy").await;
    rt_task.abort();
    bus_task.abort();
    let offline = wait_health(&mut health, "offline").await;
    assert_eq!(offline["source"], "coordinator:echo");
    assert_eq!(offline["payload"]["component"], "echo");

    // Stopped: publishes `stopping` and leaves without a will.
    let r = start(&env.host, env.port, runtime_config(topics.clone()), None).await;
    r.ready(&mut health).await;
    r.stop().await;
    wait_health(&mut health, "stopping").await;
    assert!(
        tokio::time::timeout(Duration::from_millis(500), health.recv())
            .await
            .is_err(),
        "a clean stop publishes no last will"
    );
}

#[tokio::test]
async fn health_changes_are_published_at_once_and_aggregated() {
    let env = support::env().await;
    let (r, mut health) = start_ready(&env, runtime_config(env.topics.clone())).await;
    *r.echo.status.lock().unwrap() = HealthStatus::Degraded;
    let env_msg = wait_health(&mut health, "degraded").await;
    let payload = &env_msg["payload"];
    assert_eq!(payload["components"]["echo-engine"]["status"], "degraded");
    assert_eq!(payload["components"]["mqtt"]["status"], "healthy");
    assert_eq!(payload["details"]["mqtt_connected"], true);
    assert!(payload["message"].as_str().unwrap().contains("echo-engine"));
    r.stop().await;
}

#[tokio::test]
async fn a_config_update_changes_the_live_health_interval() {
    let env = support::env().await;
    let db = support::fresh_database().await;
    MIGRATOR.run(db.pool()).await.unwrap();
    let store = ConfigStore::new(db.pool().clone());
    store
        .set(
            "echo",
            "health_interval",
            json!(30),
            ConfigType::Duration,
            false,
            None,
        )
        .await
        .unwrap();

    let r = start(
        &env.host,
        env.port,
        runtime_config(env.topics.clone()),
        Some(store.clone()),
    )
    .await;
    let mut health = r
        .client
        .subscribe(&r.topics.health("echo"), 64)
        .await
        .unwrap();
    let first = wait_health(&mut health, "healthy").await;
    assert_eq!(first["payload"]["details"]["health_interval_seconds"], 30.0);
    // With a 30 s interval nothing more arrives for a while.
    assert!(
        tokio::time::timeout(Duration::from_millis(1200), health.recv())
            .await
            .is_err()
    );

    store
        .set(
            "echo",
            "health_interval",
            json!(0.2),
            ConfigType::Duration,
            false,
            None,
        )
        .await
        .unwrap();
    let update = Envelope::new(
        MessageType::Event,
        "test",
        json!({"config_key": "health_interval", "config_value": 0.2}),
    );
    r.client
        .publish(&r.topics.config_update("echo"), update.to_bytes(), false)
        .await
        .unwrap();
    let reloaded = wait_health(&mut health, "healthy").await;
    assert_eq!(
        reloaded["payload"]["details"]["health_interval_seconds"],
        0.2
    );
    let started = std::time::Instant::now();
    for _ in 0..5 {
        wait_health(&mut health, "healthy").await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "five publications at the new interval"
    );

    let history: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM coordinator_config_history WHERE coordinator_name = 'echo-coordinator' AND config_key = 'health_interval'",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(history, 2, "insert and change are both in the history");
    r.stop().await;
}

/// The gaps between the next `n` health reports.
async fn health_gaps(rx: &mut Receiver<Message>, n: usize) -> Vec<Duration> {
    let mut last = std::time::Instant::now();
    let mut gaps = Vec::with_capacity(n);
    for _ in 0..n {
        wait_health(rx, "healthy").await;
        let now = std::time::Instant::now();
        gaps.push(now - last);
        last = now;
    }
    gaps
}

/// Median and maximum of `gaps`, then all of them.
fn gap_summary(gaps: &[Duration]) -> String {
    let mut sorted = gaps.to_vec();
    sorted.sort();
    format!(
        "median {:?}, max {:?}, all {gaps:?}",
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    )
}

#[tokio::test]
async fn health_is_published_on_every_interval_also_after_a_live_change() {
    let env = support::env().await;
    let db = support::fresh_database().await;
    MIGRATOR.run(db.pool()).await.unwrap();
    let store = ConfigStore::new(db.pool().clone());
    let set_interval = |seconds: f64| {
        let store = store.clone();
        async move {
            store
                .set(
                    "echo",
                    "health_interval",
                    json!(seconds),
                    ConfigType::Duration,
                    false,
                    None,
                )
                .await
                .unwrap();
        }
    };
    set_interval(1.0).await;
    // The default change poll (1 s), as coordinators run in a deployment.
    let runtime = RuntimeConfig {
        topics: env.topics.clone(),
        ..RuntimeConfig::default()
    };
    let r = start(&env.host, env.port, runtime, Some(store.clone())).await;
    let mut health = r
        .client
        .subscribe(&r.topics.health("echo"), 64)
        .await
        .unwrap();
    wait_health(&mut health, "healthy").await;
    // The first gap is measured from the report just seen.
    // About 10 s of reports.
    let gaps = health_gaps(&mut health, 10).await;
    eprintln!("health gaps at 1 s: {}", gap_summary(&gaps));
    assert!(
        gaps.iter().all(|g| *g < Duration::from_millis(1500)),
        "a report on every 1 s interval: {gaps:?}"
    );

    set_interval(0.5).await;
    let update = Envelope::new(
        MessageType::Event,
        "test",
        json!({"config_key": "health_interval", "config_value": 0.5}),
    );
    r.client
        .publish(&r.topics.config_update("echo"), update.to_bytes(), false)
        .await
        .unwrap();
    loop {
        let h = wait_health(&mut health, "healthy").await;
        if h["payload"]["details"]["health_interval_seconds"] == 0.5 {
            break;
        }
    }
    let gaps = health_gaps(&mut health, 6).await;
    eprintln!(
        "health gaps at 0.5 s after a live change: {}",
        gap_summary(&gaps)
    );
    assert!(
        gaps.iter().all(|g| *g < Duration::from_millis(750)),
        "a report on every 0.5 s interval after the change: {gaps:?}"
    );
    r.stop().await;
}

/// A stand-in for the security engines: tokens `user` and `reader` are valid, `reader` holds
/// echo/read, `revoked` is revoked. (The real engines are tested in their own crate.)
struct FakeAuth;

impl bigskies_core::auth::Authenticator for FakeAuth {
    fn authenticate<'a>(
        &'a self,
        credential: &'a str,
    ) -> futures::future::BoxFuture<
        'a,
        Result<bigskies_core::auth::Principal, bigskies_core::auth::AuthError>,
    > {
        use bigskies_core::auth::{AuthError, CredentialKind, Principal};
        Box::pin(async move {
            match credential {
                "user" | "reader" => Ok(Principal {
                    user_id: uuid::Uuid::nil(),
                    username: credential.to_owned(),
                    roles: vec![],
                    credential_id: format!("jti-{credential}"),
                    kind: CredentialKind::Token,
                    scopes: vec![],
                }),
                "revoked" => Err(AuthError::Revoked),
                _ => Err(AuthError::Invalid("unknown token".into())),
            }
        })
    }

    fn authorize<'a>(
        &'a self,
        principal: &'a bigskies_core::auth::Principal,
        resource: &'a str,
        action: &'a str,
        rights: bigskies_core::auth::Rights,
    ) -> futures::future::BoxFuture<'a, Result<(), bigskies_core::auth::AuthError>> {
        Box::pin(async move {
            // Object permissions are the handler's to decide; this fake knows no key scopes.
            if rights == bigskies_core::auth::Rights::Object
                || (principal.username == "reader" && (resource, action) == ("echo", "read"))
            {
                Ok(())
            } else {
                Err(bigskies_core::auth::AuthError::Forbidden {
                    resource: resource.into(),
                    action: action.into(),
                })
            }
        })
    }
}

#[tokio::test]
async fn protected_operations_need_a_credential_and_a_permission() {
    let env = support::env().await;
    let r = start_with_auth(
        &env.host,
        env.port,
        runtime_config(env.topics.clone()),
        None,
        Some(Arc::new(FakeAuth)),
    )
    .await;
    let mut health = r
        .client
        .subscribe(&r.topics.health("echo"), 64)
        .await
        .unwrap();
    r.ready(&mut health).await;
    let client = r.client.clone();
    let mut replies = client
        .subscribe(&env.topics.response("echo", "echo", "+"), 16)
        .await
        .unwrap();

    let cases = [
        ("whoami", None, "unauthenticated"),
        ("whoami", Some("forged"), "unauthenticated"),
        ("whoami", Some("revoked"), "unauthenticated"),
        ("whoami", Some("user"), ""),
        ("secret", Some("user"), "forbidden"),
        ("secret", Some("reader"), ""),
    ];
    for (i, (op, token, expected)) in cases.into_iter().enumerate() {
        let mut body = json!({"correlation_id": format!("c{i}"), "user_id": "00000000-0000-0000-0000-000000000001"});
        if let Some(t) = token {
            body["token"] = json!(t);
        }
        client
            .publish(
                &env.topics.request("echo", "echo", op),
                body.to_string(),
                false,
            )
            .await
            .unwrap();
        let reply = next_json(&mut replies).await;
        assert_eq!(reply["correlation_id"], format!("c{i}"));
        if expected.is_empty() {
            assert_eq!(reply["success"], true, "{op} {token:?}: {reply}");
            assert_eq!(
                reply["user"],
                token.unwrap(),
                "the principal comes from the token, not the payload"
            );
        } else {
            assert_eq!(reply["error_code"], expected, "{op} {token:?}: {reply}");
        }
    }
    r.stop().await;
}

#[tokio::test]
async fn credentials_come_from_the_bootstrap_message_or_database_url() {
    use bigskies_core::credentials::{CredentialsMessage, DbTarget, resolve_database};
    use std::os::unix::fs::PermissionsExt as _;

    let env = support::env().await;
    let client = support::client(&env.host, env.port).await;
    let dir = tempfile::tempdir().unwrap();
    let pgpass = dir.path().join(".pgpass");
    std::fs::write(&pgpass, "127.0.0.1:5432:bigskies:app:s\\:cret\n").unwrap();
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let target = DbTarget {
        host: "127.0.0.1".into(),
        port: 5432,
        database: "bigskies".into(),
        user: "app".into(),
    };

    // No bootstrap yet: a clear timeout.
    let err = resolve_database(
        None,
        &client,
        &env.topics,
        "echo",
        &target,
        Duration::from_millis(300),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("bootstrap"), "{err}");

    // Bootstrap publishes the retained message; a coordinator that starts later still gets it.
    let msg = serde_json::to_vec(&CredentialsMessage::for_path(&pgpass)).unwrap();
    client
        .publish(&env.topics.bootstrap_credentials(), msg, true)
        .await
        .unwrap();
    let opts = resolve_database(None, &client, &env.topics, "echo", &target, WAIT)
        .await
        .unwrap();
    assert_eq!(opts.get_database(), Some("bigskies"));
    assert_eq!(opts.get_username(), "app");

    // DATABASE_URL bypasses bootstrap.
    let opts = resolve_database(
        Some("postgres://dev@127.0.0.1:5432/devdb"),
        &client,
        &env.topics,
        "echo",
        &target,
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(opts.get_database(), Some("devdb"));
    // Clear the retained message so the broker does not keep it.
    client
        .publish(&env.topics.bootstrap_credentials(), Vec::<u8>::new(), true)
        .await
        .unwrap();
}

/// Health details until `events_handled` and `events_refused` reach the given counts.
async fn wait_event_counts(rx: &mut Receiver<Message>, handled: u64, refused: u64) -> Value {
    let reached = async {
        loop {
            let env = next_json(rx).await;
            let d = env["payload"]["details"].clone();
            if d["events_handled"].as_u64() >= Some(handled)
                && d["events_refused"].as_u64() >= Some(refused)
            {
                return d;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), reached)
        .await
        .expect("event counts reached in time")
}

#[tokio::test]
async fn event_routes_are_served_authenticated_and_answered_only_on_request() {
    let env = support::env().await;
    let mut cfg = runtime_config(env.topics.clone());
    cfg.health_interval = Duration::from_millis(300);
    let r = start_with_auth(&env.host, env.port, cfg, None, Some(Arc::new(FakeAuth))).await;
    let mut health = r
        .client
        .subscribe(&r.topics.health("echo"), 64)
        .await
        .unwrap();
    r.ready(&mut health).await;
    let client = r.client.clone();
    let (say, whoami) = (
        env.topics.event("legacy", "say"),
        env.topics.event("legacy", "whoami"),
    );
    // Never a reply on the shared response topics for events.
    let mut shared = client
        .subscribe(&env.topics.response("echo", "echo", "+"), 16)
        .await
        .unwrap();

    // Without a reply topic: handled or refused silently, and counted.
    client
        .publish(&say, json!({"text": "quiet"}).to_string(), false)
        .await
        .unwrap();
    client
        .publish(&whoami, json!({}).to_string(), false)
        .await
        .unwrap();
    client.publish(&say, "{not json", false).await.unwrap();
    let counts = wait_event_counts(&mut health, 1, 2).await;
    assert_eq!(counts["requests_handled"], 0, "{counts}");
    assert_eq!(counts["requests_rejected"], 0, "{counts}");

    // With a reply topic: answered there, with the same authentication as requests.
    let reply = env.topics.client_reply("events");
    let mut replies = client.subscribe(&reply, 16).await.unwrap();
    for (topic, body, cid) in [
        (&whoami, json!({}), "e1"),
        (&whoami, json!({"token": "forged"}), "e2"),
        (&whoami, json!({"token": "user"}), "e3"),
        (&say, json!({"text": "loud"}), "e4"),
    ] {
        let env = Envelope::new(MessageType::Event, "legacy", body)
            .with_correlation_id(cid)
            .with_reply_to(&reply);
        client.publish(topic, env.to_bytes(), false).await.unwrap();
    }
    let mut got = std::collections::BTreeMap::new();
    for _ in 0..4 {
        let v = next_json(&mut replies).await;
        got.insert(v["correlation_id"].as_str().unwrap().to_owned(), v);
    }
    assert_eq!(got["e1"]["error_code"], "unauthenticated");
    assert_eq!(got["e2"]["error_code"], "unauthenticated");
    assert_eq!(got["e3"]["user"], "user");
    assert_eq!(got["e4"]["text"], "loud");
    wait_event_counts(&mut health, 3, 4).await;

    // A request after the events: its reply is the first message on the shared topic.
    client
        .publish(
            &env.topics.request("echo", "echo", "say"),
            json!({"text": "request", "correlation_id": "r1"}).to_string(),
            false,
        )
        .await
        .unwrap();
    let first = next_json(&mut shared).await;
    assert_eq!(first["correlation_id"], "r1", "{first}");
    r.stop().await;
}

/// Issue 20, item 5: a third party who sees a request sends its own, faster, with the victim's
/// response topic and correlation data. The victim gets both replies on its topic; the digest
/// of what it sent tells it which one is its answer.
#[tokio::test]
async fn a_client_tells_its_reply_from_one_provoked_with_its_reply_topic() {
    let env = support::env().await;
    let (r, _health) = start_ready(&env, runtime_config(env.topics.clone())).await;
    let attacker = support::client(&env.host, env.port).await;
    let victim_topic = r.topics.client_reply("victim");
    let mut victim = r.client.subscribe(&victim_topic, 16).await.unwrap();
    let say = r.topics.request("echo", "echo", "say");
    let correlation = bytes::Bytes::from_static(b"login-1");

    let forged_request = json!({"text": "forged"}).to_string();
    let real_request = json!({"text": "real"}).to_string();
    attacker
        .publish_request(
            &say,
            forged_request.clone(),
            &victim_topic,
            Some(correlation.clone()),
        )
        .await
        .unwrap();
    r.client
        .publish_request(
            &say,
            real_request.clone(),
            &victim_topic,
            Some(correlation.clone()),
        )
        .await
        .unwrap();

    let mine = request_digest(real_request.as_bytes());
    let mut real = None;
    let mut forged = None;
    for _ in 0..2 {
        let msg = tokio::time::timeout(WAIT, victim.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(msg.correlation_data.as_ref(), Some(&correlation));
        let reply: Value = serde_json::from_slice(&msg.payload).unwrap();
        if answers(&reply, &mine) {
            assert!(real.replace(reply).is_none(), "one real reply");
        } else {
            forged = Some(reply);
        }
    }
    let real = real.expect("the victim recognises its own reply");
    assert_eq!(real["text"], "real");
    let forged = forged.expect("the provoked reply arrives too");
    assert_eq!(forged["text"], "forged");
    assert_eq!(
        forged["request_digest"],
        request_digest(forged_request.as_bytes()),
        "the provoked reply names the attacker's request"
    );
    r.stop().await;
}

/// Issue 20, item 5: a coordinator publishes replies only to private client topics and its own
/// shared response topics; a requester cannot make it publish anywhere else.
#[tokio::test]
async fn replies_to_topics_outside_the_reply_space_are_never_published() {
    let env = support::env().await;
    let (r, _health) = start_ready(&env, runtime_config(env.topics.clone())).await;
    let root = r.topics.root().to_owned();
    let elsewhere = format!("{root}-elsewhere");
    let mut watch = r
        .client
        .subscribe_many(&[format!("{root}/#"), format!("{elsewhere}/#")], 256)
        .await
        .unwrap();
    let say = r.topics.request("echo", "echo", "say");
    let shared = r.topics.response("echo", "echo", "say");
    let forbidden = [
        r.topics.response("security", "auth", "login"),
        r.topics.request("security", "user", "delete"),
        r.topics.health("security"),
        r.topics.event("telescope", "slew/completed"),
        r.topics.plugin_health("p1"),
        format!("{root}/event/x"),
        format!("{elsewhere}/client/c/reply"),
    ];
    for (i, topic) in forbidden.iter().enumerate() {
        let cid = format!("f-{i}");
        // Once as an MQTT 5 response topic, once as reply_to.
        r.client
            .publish_request(
                &say,
                json!({"text": "x", "correlation_id": cid}).to_string(),
                topic,
                None,
            )
            .await
            .unwrap();
        r.client
            .publish(
                &say,
                json!({"text": "x", "correlation_id": cid, "reply_to": topic}).to_string(),
                false,
            )
            .await
            .unwrap();
    }
    // Each is refused on the coordinator's own shared response topic; nothing reaches the
    // named topics.
    let mut refused = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    while refused < 2 * forbidden.len() {
        let msg = tokio::time::timeout_at(deadline, watch.recv())
            .await
            .expect("every refusal in time")
            .unwrap();
        assert!(
            !forbidden.contains(&msg.topic),
            "a reply was published on {}: {}",
            msg.topic,
            String::from_utf8_lossy(&msg.payload)
        );
        if msg.topic == shared {
            let reply: Value = serde_json::from_slice(&msg.payload).unwrap();
            assert_eq!(reply["error_code"], "invalid_request", "{reply}");
            refused += 1;
        }
    }
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(300), watch.recv()).await {
        assert!(
            !forbidden.contains(&msg.topic),
            "a reply was published on {}",
            msg.topic
        );
    }
    r.stop().await;
}

/// One hung device must not stall the coordinator (issue #20, item 3): its requests wait in
/// their own lane, the ones the lane has no room for are refused at once, and requests for
/// anything else, health and configuration go on. Before lanes the serving loop waited for a
/// handler slot, so with every slot held by the hung device nothing else was answered and no
/// health went out until the handlers timed out.
#[tokio::test]
async fn a_hung_device_delays_only_its_own_requests() {
    let env = support::env().await;
    let mut cfg = runtime_config(env.topics.clone());
    cfg.concurrency = 4;
    cfg.health_interval = Duration::from_millis(300);
    cfg.handler_timeout = Duration::from_secs(60);
    let lane = cfg.lanes;
    let (r, mut health) = start_ready(&env, cfg).await;
    let mine = format!("{}/client/lanes/reply", r.topics.root());
    let mut replies = r.client.subscribe(&mine, 256).await.unwrap();
    let send = |op: &'static str, body: Value, cid: String| {
        let (action, resource) = op.split_once('/').unwrap();
        let topic = r.topics.request("echo", action, resource);
        let e = Envelope::new(MessageType::Request, "test", body)
            .with_correlation_id(cid)
            .with_reply_to(&mine);
        let client = r.client.clone();
        async move { client.publish(&topic, e.to_bytes(), false).await.unwrap() }
    };

    // Twice what the hung device's lane takes (running + waiting), each hanging for a minute.
    let flood = 2 * (lane.concurrency + lane.queue);
    for i in 0..flood {
        send(
            "echo/device",
            json!({"device": "mount-1", "ms": 60_000}),
            format!("hung-{i}"),
        )
        .await;
    }
    send("echo/say", json!({"text": "still here"}), "other".into()).await;

    // The lane's overflow is refused at once, and the other request is answered.
    let mut refused = 0;
    let mut answered = false;
    while !(answered && refused == flood - (lane.concurrency + lane.queue)) {
        let reply = next_json(&mut replies).await;
        if reply["correlation_id"] == "other" {
            assert_eq!(reply["text"], "still here", "{reply}");
            answered = true;
        } else {
            assert_eq!(reply["success"], false, "{reply}");
            assert_eq!(reply["error_code"], "unavailable", "{reply}");
            refused += 1;
        }
    }
    // Health keeps its interval while the device hangs.
    for _ in 0..3 {
        wait_health(&mut health, "healthy").await;
    }
    // The stop drains what is left (the hung handlers are cancelled at the drain deadline).
    r.stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), r.task)
        .await
        .expect("the coordinator stops")
        .unwrap()
        .unwrap();
}

/// A state-changing request delivered twice (an MQTT QoS 1 redelivery, a client's retry with
/// the same correlation id) runs once; both deliveries get the first outcome (issue #20,
/// item 9: a duplicated control command ran twice). The same operation with another
/// correlation id is a new request.
#[tokio::test]
async fn a_repeated_request_runs_once_and_gets_the_first_outcome() {
    let env = support::env().await;
    let r = start_with_auth(
        &env.host,
        env.port,
        runtime_config(env.topics.clone()),
        None,
        Some(Arc::new(FakeAuth)),
    )
    .await;
    let mut health = r
        .client
        .subscribe(&r.topics.health("echo"), 64)
        .await
        .unwrap();
    r.ready(&mut health).await;
    let mine = format!("{}/client/repeat/reply", r.topics.root());
    let mut replies = r.client.subscribe(&mine, 16).await.unwrap();
    let topic = r.topics.request("echo", "echo", "count");
    let request = |cid: &str| {
        Envelope::new(MessageType::Request, "test", json!({}))
            .with_correlation_id(cid)
            .with_reply_to(&mine)
            .with_token("user")
            .to_bytes()
    };
    let once = request("count-1");
    for _ in 0..3 {
        r.client.publish(&topic, once.clone(), false).await.unwrap();
    }
    for _ in 0..3 {
        let reply = next_json(&mut replies).await;
        assert_eq!(reply["correlation_id"], "count-1", "{reply}");
        assert_eq!(
            reply["count"], 1,
            "every delivery gets the first outcome: {reply}"
        );
    }
    assert_eq!(
        r.echo.counted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "ran once"
    );
    r.client
        .publish(&topic, request("count-2"), false)
        .await
        .unwrap();
    let reply = next_json(&mut replies).await;
    assert_eq!(
        reply["count"], 2,
        "a new correlation id is a new request: {reply}"
    );
    r.stop().await;
}

/// A safety command overtakes what waits for its device and cancels it: a slew queued behind
/// status polls must not start after the abort meant to stop the mount (review of issue #20,
/// item 3). Running requests go on; the stop itself is answered at once.
#[tokio::test]
async fn an_urgent_request_runs_at_once_and_cancels_what_waits_in_its_lane() {
    let env = support::env().await;
    let cfg = runtime_config(env.topics.clone());
    let lane = cfg.lanes;
    let (r, _health) = start_ready(&env, cfg).await;
    let mine = format!("{}/client/urgent/reply", r.topics.root());
    let mut replies = r.client.subscribe(&mine, 256).await.unwrap();
    let send = |op: &'static str, body: Value, cid: String| {
        let (action, resource) = op.split_once('/').unwrap();
        let topic = r.topics.request("echo", action, resource);
        let e = Envelope::new(MessageType::Request, "test", body)
            .with_correlation_id(cid)
            .with_reply_to(&mine);
        let client = r.client.clone();
        async move { client.publish(&topic, e.to_bytes(), false).await.unwrap() }
    };
    // The lane's running places, busy for a while; then two that wait.
    for i in 0..lane.concurrency {
        let body = json!({"device": "mount-1", "ms": 1500});
        send("echo/device", body, format!("running-{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..2 {
        let body = json!({"device": "mount-1", "ms": 10});
        send("echo/device", body, format!("waiting-{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    send("echo/stop", json!({"device": "mount-1"}), "stop".into()).await;

    let mut seen = Vec::new();
    while seen.len() < lane.concurrency + 3 {
        let reply = next_json(&mut replies).await;
        seen.push(reply["correlation_id"].as_str().unwrap().to_owned());
        match reply["correlation_id"].as_str().unwrap() {
            "stop" => {
                assert_eq!(reply["stopped"], "mount-1", "{reply}");
                assert!(
                    !seen.iter().any(|c| c.starts_with("running")),
                    "the stop does not wait for the running ones: {seen:?}"
                );
            }
            c if c.starts_with("waiting") => {
                assert_eq!(reply["error_code"], "conflict", "{reply}");
            }
            _ => assert_eq!(reply["success"], true, "running ones go on: {reply}"),
        }
    }
    r.stop().await;
}
