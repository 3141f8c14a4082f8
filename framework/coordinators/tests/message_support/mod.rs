//! Shared plumbing of the integration tests of the message, application, datastore, plugin,
//! UI element and bootstrap coordinators: the real broker and PostgreSQL from the
//! provisioning ladder, a topic root and database per test, a small authenticator, and a
//! request helper with private reply topics and correlation ids.
#![allow(dead_code, clippy::unwrap_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bigskies_core::auth::{AuthError, Authenticator, CredentialKind, Principal, Rights};
use bigskies_core::bus::{Bus, BusConfig, Message};
use bigskies_core::config::{ConfigStore, MIGRATOR};
use bigskies_core::envelope::{Envelope, MessageType};
use bigskies_core::runtime::{Coordinator, Launch, RuntimeConfig, RuntimeError, launch_with};
use bigskies_core::topics::Topics;
use bigskies_scenarios::provision::{self, TestDatabase};
use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::mpsc::Receiver;
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(15);
/// An administrator's credential for [`TestAuth`].
pub const ADMIN: &str = "admin-token";
/// The plugin coordinator's own service credential (an administrator, like [`ADMIN`]).
pub const SERVICE: &str = "service-token";
/// A credential without any permission.
pub const NOBODY: &str = "nobody-token";

/// Accepts [`ADMIN`] (every permission) and [`NOBODY`] (authenticated, no permission).
pub struct TestAuth;

impl Authenticator for TestAuth {
    fn authenticate<'a>(
        &'a self,
        credential: &'a str,
    ) -> BoxFuture<'a, Result<Principal, AuthError>> {
        Box::pin(async move {
            let (id, name, roles) = match credential {
                ADMIN => (1, "admin", vec!["admin".to_owned()]),
                SERVICE => (3, "plugin-service", vec!["admin".to_owned()]),
                NOBODY => (2, "nobody", vec![]),
                _ => return Err(AuthError::Invalid("unknown test credential".into())),
            };
            Ok(Principal {
                user_id: uuid::Uuid::from_u128(id),
                username: name.into(),
                roles,
                credential_id: credential.into(),
                kind: CredentialKind::Token,
                scopes: vec![],
            })
        })
    }

    fn authorize<'a>(
        &'a self,
        principal: &'a Principal,
        resource: &'a str,
        action: &'a str,
        _rights: Rights,
    ) -> BoxFuture<'a, Result<(), AuthError>> {
        Box::pin(async move {
            if principal.is_admin() {
                Ok(())
            } else {
                Err(AuthError::Forbidden {
                    resource: resource.into(),
                    action: action.into(),
                })
            }
        })
    }
}

pub struct Env {
    pub host: String,
    pub port: u16,
    pub topics: Topics,
}

pub async fn env() -> Env {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BIGSKIES_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let p = provision::shared()
        .await
        .expect("provisioning PostgreSQL and Mosquitto");
    Env {
        host: p.mqtt.host.clone(),
        port: p.mqtt.port,
        topics: Topics::new(provision::unique_topic_root()),
    }
}

/// A database of this test's own with the migrations applied.
pub async fn database() -> TestDatabase {
    let p = provision::shared()
        .await
        .expect("provisioning PostgreSQL and Mosquitto");
    let db = p.fresh_database().await.expect("a fresh database");
    MIGRATOR.run(db.pool()).await.expect("migrations apply");
    db
}

pub fn bus_config(env: &Env, prefix: &str) -> BusConfig {
    let mut c = BusConfig::new(&env.host, env.port, prefix);
    c.backoff_max = Duration::from_secs(1);
    c.op_timeout = Duration::from_secs(5);
    c
}

pub async fn client(env: &Env) -> Bus {
    let (bus, _task) = Bus::start(
        bus_config(env, "test-client"),
        None,
        CancellationToken::new(),
    );
    bus.wait_connected(WAIT)
        .await
        .expect("test client connects");
    bus
}

/// Runtime settings for tests: quick health.
pub fn runtime(env: &Env) -> RuntimeConfig {
    RuntimeConfig {
        topics: env.topics.clone(),
        health_poll: Duration::from_millis(100),
        health_interval: Duration::from_secs(1),
        ..RuntimeConfig::default()
    }
}

pub struct Running {
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), RuntimeError>>,
}

impl Running {
    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("coordinator stops in time")
            .unwrap()
            .unwrap();
    }

    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

/// Launch `c` on its own bus with [`TestAuth`], config from `store`, and background `work`.
pub fn start<C, F, Fut>(env: &Env, c: Arc<C>, store: Option<ConfigStore>, work: F) -> Running
where
    C: Coordinator,
    F: FnOnce(Bus, Topics, CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let stop = CancellationToken::new();
    let topics = env.topics.clone();
    let launch = Launch {
        bus: bus_config(env, c.name()),
        runtime: runtime(env),
        store,
        connect_timeout: WAIT,
        authenticator: Some(Arc::new(TestAuth)),
    };
    let task = tokio::spawn(launch_with(c, launch, stop.clone(), move |bus, s| {
        work(bus, topics, s)
    }));
    Running { stop, task }
}

pub async fn no_work(_: Bus, _: Topics, _: CancellationToken) {}

pub async fn next_json(rx: &mut Receiver<Message>) -> Value {
    let msg = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("no message in time")
        .expect("subscription open");
    serde_json::from_slice(&msg.payload).expect("message is JSON")
}

/// Wait for health `status` of a coordinator on a health subscription.
pub async fn wait_health(rx: &mut Receiver<Message>, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let msg = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no health {status:?} in time"))
            .unwrap();
        let v: Value = serde_json::from_slice(&msg.payload).unwrap();
        if v["payload"]["status"] == status {
            return v;
        }
    }
}

/// An enveloped request with a private reply topic and a correlation id; the reply.
pub async fn request(
    client: &Bus,
    topics: &Topics,
    coordinator: &str,
    op: &str,
    payload: Value,
    token: Option<&str>,
) -> Value {
    let (action, resource) = op.split_once('/').unwrap();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let reply = topics.client_reply(&format!("test-{id}"));
    let mut rx = client.subscribe(&reply, 4).await.unwrap();
    let mut env = Envelope::new(MessageType::Request, "test", payload)
        .with_correlation_id(&id)
        .with_reply_to(&reply);
    if let Some(t) = token {
        env = env.with_token(t);
    }
    client
        .publish(
            &topics.request(coordinator, action, resource),
            env.to_bytes(),
            false,
        )
        .await
        .unwrap();
    let v = next_json(&mut rx).await;
    assert_eq!(v["correlation_id"], id.as_str(), "reply is correlated");
    v
}

/// Poll `f` until it returns `Some`, at most `within`.
pub async fn eventually<T, Fut: Future<Output = Option<T>>>(
    within: Duration,
    mut f: impl FnMut() -> Fut,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
