#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
//! The telescope coordinator end to end: real PostgreSQL, Mosquitto, the Alpaca simulator over
//! real sockets, and the real security engines (JWT) as authenticator.
//!
//! Each test has its own database, topic root and simulator.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use alpaca_simulator::app::{RunningSimulator, Simulator};
use alpaca_simulator::config::SimulatorConfig;
use bigskies_ascom::store::Store;
use bigskies_ascom::{AscomConfig, AscomEngine};
use bigskies_coordinators::telescope::{TelescopeCoordinator, TelescopeSettings};
use bigskies_core::bus::{Bus, BusConfig, Message};
use bigskies_core::config::MIGRATOR;
use bigskies_core::envelope::{Envelope, MessageType};
use bigskies_core::runtime::{Launch, RuntimeConfig, launch_with};
use bigskies_core::topics::Topics;
use bigskies_scenarios::provision::{self, TestDatabase};
use bigskies_security::tokens::Subject;
use bigskies_security::{Secret, SecurityEngines, SecuritySettings};
use serde_json::{Value, json};
use tokio::sync::mpsc::Receiver;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);
const SECRET: &str = "test-only-signing-secret-0123456789abcdef";
const PASSWORD: &str = "a perfectly fine passphrase";

fn bus_config(host: &str, port: u16, prefix: &str) -> BusConfig {
    let mut c = BusConfig::new(host, port, prefix);
    c.backoff_max = Duration::from_secs(1);
    c.op_timeout = Duration::from_secs(5);
    c
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BIGSKIES_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

#[derive(Clone)]
struct User {
    id: Uuid,
    token: String,
}

struct Harness {
    _db: TestDatabase,
    pool: sqlx::PgPool,
    topics: Topics,
    client: Bus,
    replies: Receiver<Message>,
    pending: HashMap<String, Value>,
    reply_topic: String,
    events: Receiver<Message>,
    health: Receiver<Message>,
    stop: CancellationToken,
    engines: SecurityEngines,
    sim: Option<RunningSimulator>,
    next: u64,
    /// The observatory's administrator, made on first use: discovery and connecting a mount
    /// outside a session are administrative.
    operator: Option<User>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Harness {
    async fn start(seed: &str) -> Self {
        init_logs();
        let p = provision::shared()
            .await
            .expect("provisioning PostgreSQL and Mosquitto");
        let db = p.fresh_database().await.expect("a fresh database");
        MIGRATOR.run(db.pool()).await.unwrap();
        let pool = db.pool().clone();
        let topics = Topics::new(provision::unique_topic_root());
        let (host, port) = (p.mqtt.host.clone(), p.mqtt.port);
        let stop = CancellationToken::new();

        let mut sim_cfg = SimulatorConfig::default();
        sim_cfg.server.bind = "127.0.0.1".parse().unwrap();
        sim_cfg.server.http_port = 0;
        sim_cfg.server.discovery_port = 0;
        sim_cfg.server.seed = Some(seed.to_owned());
        sim_cfg.devices.connect_delay = 0.0;
        let sim = Simulator::bind(sim_cfg).await.unwrap().spawn();

        let (client, _task) = Bus::start(
            bus_config(&host, port, "telescope-test"),
            None,
            stop.clone(),
        );
        client.wait_connected(WAIT).await.unwrap();
        let mut health = client
            .subscribe(&topics.health("telescope"), 256)
            .await
            .unwrap();
        let events = client
            .subscribe(&topics.event("telescope", "#"), 256)
            .await
            .unwrap();
        let reply_topic = topics.client_reply(&Uuid::new_v4().simple().to_string());
        let replies = client.subscribe(&reply_topic, 64).await.unwrap();

        let engines = SecurityEngines::new(
            pool.clone(),
            SecuritySettings {
                leeway: Duration::ZERO,
                ..SecuritySettings::default()
            },
            &Secret::new(SECRET),
        );
        let engine = AscomEngine::build(
            AscomConfig {
                call_timeout: Duration::from_secs(2),
                discovery: None,
                servers: vec![sim.base_url()],
                ..AscomConfig::default()
            },
            Some(Store::new(pool.clone())),
        )
        .await
        .unwrap();
        let settings = TelescopeSettings {
            health_interval: Duration::from_millis(200),
            slew_poll: Duration::from_millis(50),
            slew_timeout: Duration::from_secs(60),
        };
        let coordinator = Arc::new(TelescopeCoordinator::new(pool.clone(), engine, settings));
        let launch = Launch {
            bus: bus_config(&host, port, "telescope"),
            runtime: RuntimeConfig {
                topics: topics.clone(),
                health_poll: Duration::from_millis(100),
                ..RuntimeConfig::default()
            },
            store: None,
            connect_timeout: WAIT,
            authenticator: Some(engines.authenticator().into_dyn()),
        };
        let background = coordinator.clone();
        let bg_topics = topics.clone();
        tokio::spawn(launch_with(
            coordinator,
            launch,
            stop.clone(),
            move |bus, s| background.run_background(bus, bg_topics, s),
        ));
        wait_health(&mut health, "healthy").await;
        Self {
            _db: db,
            pool,
            topics,
            client,
            replies,
            pending: HashMap::new(),
            reply_topic,
            events,
            health,
            stop,
            engines,
            sim: Some(sim),
            next: 0,
            operator: None,
        }
    }

    fn sim(&self) -> &RunningSimulator {
        self.sim.as_ref().unwrap()
    }

    async fn user(&self, name: &str, admin: bool) -> User {
        let email = format!("{name}@example.org");
        let u = self
            .engines
            .accounts
            .create_user(name, &email, PASSWORD, None)
            .await
            .unwrap();
        if admin {
            self.engines
                .accounts
                .assign_role(u.id, "admin", None)
                .await
                .unwrap();
        }
        let token = self
            .engines
            .tokens
            .issue(Subject {
                user_id: u.id,
                username: name,
                email: &email,
                roles: vec![],
            })
            .unwrap()
            .token;
        User { id: u.id, token }
    }

    /// Publish a request; returns its correlation id.
    async fn send(&mut self, token: Option<&str>, op: &str, body: Value) -> String {
        self.next += 1;
        let cid = format!("req-{}", self.next);
        let mut env = Envelope::new(MessageType::Request, "telescope-test", body)
            .with_correlation_id(cid.clone())
            .with_reply_to(self.reply_topic.clone());
        if let Some(t) = token {
            env = env.with_token(t);
        }
        let (action, resource) = op.split_once('/').unwrap();
        self.client
            .publish(
                &self.topics.request("telescope", action, resource),
                env.to_bytes(),
                false,
            )
            .await
            .unwrap();
        cid
    }

    async fn reply(&mut self, cid: &str) -> Value {
        if let Some(v) = self.pending.remove(cid) {
            return v;
        }
        loop {
            let msg = tokio::time::timeout(WAIT, self.replies.recv())
                .await
                .expect("a reply in time")
                .unwrap();
            let v: Value = serde_json::from_slice(&msg.payload).unwrap();
            let got = v["correlation_id"].as_str().unwrap_or_default().to_owned();
            if got == cid {
                return v;
            }
            self.pending.insert(got, v);
        }
    }

    async fn call(&mut self, user: Option<&User>, op: &str, body: Value) -> Value {
        let cid = self.send(user.map(|u| u.token.as_str()), op, body).await;
        self.reply(&cid).await
    }

    async fn ok(&mut self, user: &User, op: &str, body: Value) -> Value {
        let r = self.call(Some(user), op, body).await;
        assert_eq!(r["success"], true, "{op} failed: {r}");
        r
    }

    /// The payload of the next event on `<root>/coordinator/telescope/event/<kind>` that
    /// satisfies `pred`. Every event must come in the framework envelope.
    async fn event(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.event_envelope(kind, pred).await.payload
    }

    /// The whole envelope of the next such event.
    async fn event_envelope(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Envelope {
        let topic = self.topics.event("telescope", kind);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no {kind} event in time"))
                .unwrap();
            let env: Envelope = serde_json::from_slice(&msg.payload).unwrap_or_else(|e| {
                panic!(
                    "event on {} is not an envelope ({e}): {}",
                    msg.topic,
                    String::from_utf8_lossy(&msg.payload)
                )
            });
            assert_eq!(env.kind, MessageType::Event, "{env:?}");
            assert_eq!(env.source, "coordinator:telescope", "{env:?}");
            if msg.topic == topic && pred(&env.payload) {
                return env;
            }
        }
    }

    async fn simulator(&self, method: reqwest::Method, path: &str, body: Option<Value>) {
        let url = format!("{}/simulator/v1/{path}", self.sim().base_url());
        let mut req = reqwest::Client::new().request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        assert!(
            resp.status().is_success(),
            "simulator control said {}",
            resp.status()
        );
    }

    /// The harness's administrator (`operator`), created on first use.
    async fn operator(&mut self) -> User {
        if let Some(u) = &self.operator {
            return u.clone();
        }
        let u = self.user("operator", true).await;
        self.operator = Some(u.clone());
        u
    }

    /// The simulator's mount, registered by the administrator's `device/discover`.
    async fn discover_mount(&mut self) -> String {
        let operator = self.operator().await;
        let found = self.ok(&operator, "device/discover", json!({})).await;
        assert_eq!(found["count"], 6, "{found}");
        found["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["device_type"] == "Telescope")
            .unwrap()["uuid"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A telescope owned by `owner` with the simulator's mount assigned (by the owner) and
    /// connected (by the administrator: the owner holds no session yet).
    async fn ready_telescope(&mut self, owner: &User, name: &str) -> (String, String) {
        let created = self
            .ok(
                owner,
                "config/create",
                json!({"name": name, "mount_type": "equatorial", "description": "test scope"}),
            )
            .await;
        let id = created["id"].as_str().unwrap().to_owned();
        let mount = self.discover_mount().await;
        self.ok(
            owner,
            "device/assign",
            json!({"telescope_id": id, "role": "telescope", "device_id": mount}),
        )
        .await;
        let operator = self.operator().await;
        let connected = self
            .ok(&operator, "device/connect", json!({"device_id": mount}))
            .await;
        assert_eq!(connected["device"]["connected"], true, "{connected}");
        (id, mount)
    }

    async fn status(&mut self, user: &User, telescope: &str) -> Value {
        let r = self
            .ok(user, "status/get", json!({"telescope_id": telescope}))
            .await;
        r["status"].clone()
    }
}

async fn wait_health(rx: &mut Receiver<Message>, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let msg = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("health never became {status}"))
            .unwrap();
        let v: Value = serde_json::from_slice(&msg.payload).unwrap();
        if v["payload"]["status"] == status {
            return v;
        }
    }
}

/// The fields of the Go status object that are read from the mount.
const READINGS: [&str; 10] = [
    "tracking",
    "slewing",
    "at_park",
    "at_home",
    "right_ascension",
    "declination",
    "altitude",
    "azimuth",
    "sidereal_time",
    "utc_date",
];

fn hour_diff(a: f64, b: f64) -> f64 {
    let d = (a - b).rem_euclid(24.0);
    d.min(24.0 - d)
}

#[tokio::test]
async fn discover_assign_connect_slew_completes_status_shows_target_then_park() {
    let mut h = Harness::start("telescope-flow").await;
    let alice = h.user("alice", false).await;
    let (scope, mount) = h.ready_telescope(&alice, "Alice's refractor").await;

    // The pool is persisted and visible in the configuration.
    let cfg = h.ok(&alice, "config/get", json!({"id": scope})).await;
    assert_eq!(
        cfg["config"]["devices"]["telescope"]["uuid"],
        mount.as_str()
    );
    let listed = h.ok(&alice, "config/list", json!({})).await;
    assert_eq!(listed["configs"].as_array().unwrap().len(), 1);

    h.ok(
        &alice,
        "session/start",
        json!({"config_id": scope, "session_type": "manual"}),
    )
    .await;
    h.simulator(reqwest::Method::PUT, "clock", Some(json!({"rate": 60.0})))
        .await;
    h.ok(
        &alice,
        "control/track",
        json!({"telescope_id": scope, "enabled": true}),
    )
    .await;

    let before = h.status(&alice, &scope).await;
    let ra = (before["sidereal_time"].as_f64().unwrap() + 1.5).rem_euclid(24.0);
    let dec = 35.0;
    let accepted = h
        .ok(&alice, "control/slew", json!({"device_id": scope, "right_ascension": ra, "declination": dec, "target_name": "M13"}))
        .await;
    let slew_id = accepted["slew_id"].as_str().unwrap().to_owned();
    let done = h
        .event_envelope("slew/completed", |e| e["slew_id"] == slew_id.as_str())
        .await;
    // The event names the command that started the motion.
    assert_eq!(
        done.correlation_id.as_deref(),
        accepted["correlation_id"].as_str(),
        "{done:?}"
    );
    assert!(done.correlation_id.is_some(), "{done:?}");
    let done = done.payload;
    assert_eq!(done["telescope_id"], scope.as_str());
    assert_eq!(done["target"]["name"], "M13");
    assert!(
        hour_diff(done["right_ascension"].as_f64().unwrap(), ra) < 0.01,
        "{done}"
    );

    let status = h.status(&alice, &scope).await;
    for field in READINGS.iter().chain(&["connected"]) {
        assert!(!status[*field].is_null(), "{field} missing in {status}");
    }
    assert_eq!(status["connected"], true);
    assert_eq!(status["slewing"], false);
    assert_eq!(status["tracking"], true);
    assert!(
        hour_diff(status["right_ascension"].as_f64().unwrap(), ra) < 0.01,
        "{status}"
    );
    assert!(
        (status["declination"].as_f64().unwrap() - dec).abs() < 0.01,
        "{status}"
    );
    assert!(!status["utc_date"].as_str().unwrap().is_empty());

    let parked = h
        .ok(&alice, "control/park", json!({"telescope_id": scope}))
        .await;
    let park_id = parked["park_id"].as_str().unwrap().to_owned();
    h.event("park/completed", |e| e["park_id"] == park_id.as_str())
        .await;
    let status = h.status(&alice, &scope).await;
    assert_eq!(status["at_park"], true, "{status}");
    assert_eq!(status["tracking"], false, "{status}");

    // Parked: a slew is refused by the mount, and the reply says so.
    let refused = h
        .call(
            Some(&alice),
            "control/slew",
            json!({"telescope_id": scope, "right_ascension": ra, "declination": dec}),
        )
        .await;
    assert_eq!(refused["success"], false, "{refused}");
    h.ok(&alice, "control/unpark", json!({"telescope_id": scope}))
        .await;
    assert_eq!(h.status(&alice, &scope).await["at_park"], false);
    h.sim.take().unwrap().shutdown().await.unwrap();
}

#[tokio::test]
async fn an_abort_ends_the_slew_with_an_aborted_event() {
    let mut h = Harness::start("telescope-abort").await;
    let alice = h.user("alice", false).await;
    let (scope, _) = h.ready_telescope(&alice, "abortable").await;
    h.ok(&alice, "session/start", json!({"config_id": scope}))
        .await;
    h.ok(
        &alice,
        "control/track",
        json!({"telescope_id": scope, "tracking": true}),
    )
    .await;
    // Real time: a long slew is still under way when the abort arrives.
    h.simulator(reqwest::Method::PUT, "clock", Some(json!({"rate": 1.0})))
        .await;
    let before = h.status(&alice, &scope).await;
    let ra = (before["right_ascension"].as_f64().unwrap() + 6.0).rem_euclid(24.0);
    let accepted = h
        .ok(
            &alice,
            "control/slew",
            json!({"telescope_id": scope, "right_ascension": ra, "declination": -20.0}),
        )
        .await;
    let slew_id = accepted["slew_id"].as_str().unwrap().to_owned();
    assert_eq!(h.status(&alice, &scope).await["slewing"], true);
    h.ok(&alice, "control/abort", json!({"telescope_id": scope}))
        .await;
    let ev = h
        .event("slew/aborted", |e| e["slew_id"] == slew_id.as_str())
        .await;
    assert!(
        hour_diff(ev["right_ascension"].as_f64().unwrap(), ra) > 0.1,
        "stopped short: {ev}"
    );
    assert_eq!(h.status(&alice, &scope).await["slewing"], false);
}

#[tokio::test]
async fn a_dropped_mount_is_lost_after_failed_checks_degrades_health_and_comes_back_by_itself() {
    let mut h = Harness::start("telescope-fault").await;
    let alice = h.user("alice", false).await;
    let (scope, mount) = h.ready_telescope(&alice, "flaky").await;
    assert_eq!(h.status(&alice, &scope).await["connected"], true);

    h.simulator(
        reqwest::Method::PUT,
        "faults/telescope/0",
        Some(json!({"disconnected": true})),
    )
    .await;
    let lost = h
        .event("device/lost", |e| e["unique_id"] == mount.as_str())
        .await;
    assert_eq!(lost["telescopes"], json!([scope]), "{lost}");
    assert_eq!(lost["device"]["state"], "lost");
    assert!(
        lost["device"]["stats"]["consecutive_failures"]
            .as_u64()
            .unwrap()
            >= 3,
        "{lost}"
    );
    let degraded = wait_health(&mut h.health, "degraded").await;
    assert!(
        degraded["payload"].to_string().contains(&mount),
        "{degraded}"
    );
    // Status still answers: not connected, the link state and why, null for every reading.
    let r = h
        .call(Some(&alice), "status/get", json!({"telescope_id": scope}))
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["device_id"], mount.as_str(), "{r}");
    let status = &r["status"];
    assert_eq!(status["connected"], false, "{status}");
    assert_eq!(status["link_state"], "lost", "{status}");
    assert!(
        status["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{status}"
    );
    for field in READINGS {
        assert!(
            status.get(field).is_some_and(Value::is_null),
            "{field} should be null: {status}"
        );
    }
    // A telescope that does not exist is still an error.
    let r = h
        .call(
            Some(&alice),
            "status/get",
            json!({"telescope_id": Uuid::new_v4()}),
        )
        .await;
    assert_eq!(r["error_code"], "not_found", "{r}");

    // Cleared: the engine reconnects the mount by itself, no command sent.
    h.simulator(reqwest::Method::DELETE, "faults/telescope/0", None)
        .await;
    h.event("device/recovered", |e| e["unique_id"] == mount.as_str())
        .await;
    wait_health(&mut h.health, "healthy").await;
    let status = h.status(&alice, &scope).await;
    assert_eq!(status["connected"], true, "{status}");
    assert_eq!(status["link_state"], "connected", "{status}");
    assert!(status["last_error"].is_null(), "{status}");
    for field in READINGS {
        assert!(!status[field].is_null(), "{field} missing in {status}");
    }
    let devices = h.ok(&alice, "device/list", json!({})).await;
    let d = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["uuid"] == mount.as_str())
        .unwrap()
        .clone();
    assert_eq!(d["state"], "connected", "{d}");
}

#[tokio::test]
async fn control_without_token_permission_session_or_in_time_is_refused_and_nothing_moves() {
    let mut h = Harness::start("telescope-refusals").await;
    let alice = h.user("alice", false).await;
    let bob = h.user("bob", false).await;
    let (scope, _) = h.ready_telescope(&alice, "guarded").await;
    // Tracking stays off: a mount that holds still keeps its altitude and azimuth.
    let before = h.status(&alice, &scope).await;
    let slew = |expires: Option<String>| {
        let mut b = json!({"telescope_id": scope, "right_ascension": 3.0, "declination": 20.0});
        if let Some(e) = expires {
            b["expires_at"] = json!(e);
        }
        b
    };

    let r = h.call(None, "control/slew", slew(None)).await;
    assert_eq!(
        (r["success"].clone(), r["error_code"].clone()),
        (json!(false), json!("unauthenticated")),
        "{r}"
    );

    let r = h.call(Some(&bob), "control/slew", slew(None)).await;
    assert_eq!(r["error_code"], "forbidden", "{r}");
    // Nor may bob take a session or read the mount.
    let r = h
        .call(Some(&bob), "session/start", json!({"config_id": scope}))
        .await;
    assert_eq!(r["error_code"], "forbidden", "{r}");
    let r = h
        .call(Some(&bob), "status/get", json!({"telescope_id": scope}))
        .await;
    assert_eq!(r["error_code"], "forbidden", "{r}");
    // An expired grant counts for nothing.
    sqlx::query(
        "INSERT INTO telescope_permissions (telescope_id, principal_id, principal_type, permission, granted_by, expires_at)
         VALUES ($1, $2, 'user', 'control', $3, now() - interval '1 minute')",
    )
    .bind(Uuid::parse_str(&scope).unwrap())
    .bind(bob.id)
    .bind(alice.id)
    .execute(&h.pool)
    .await
    .unwrap();
    let r = h
        .call(Some(&bob), "session/start", json!({"config_id": scope}))
        .await;
    assert_eq!(r["error_code"], "forbidden", "{r}");

    // The owner, but without an active session.
    let r = h.call(Some(&alice), "control/slew", slew(None)).await;
    assert_eq!(r["error_code"], "forbidden", "{r}");
    assert!(r["error"].as_str().unwrap().contains("session"), "{r}");

    // With a session, but the command expired before it arrived.
    h.ok(&alice, "session/start", json!({"config_id": scope}))
        .await;
    let past = (chrono::Utc::now() - chrono::Duration::seconds(1)).to_rfc3339();
    let r = h
        .call(Some(&alice), "control/slew", slew(Some(past.clone())))
        .await;
    assert_eq!(r["error_code"], "timeout", "{r}");
    assert!(r["error"].as_str().unwrap().contains("expired"), "{r}");
    let r = h
        .call(
            Some(&alice),
            "control/park",
            json!({"telescope_id": scope, "deadline": past}),
        )
        .await;
    assert_eq!(r["error_code"], "timeout", "{r}");

    let after = h.status(&alice, &scope).await;
    assert_eq!(after["slewing"], false);
    assert_eq!(after["at_park"], false);
    for axis in ["altitude", "azimuth"] {
        let (a, b) = (
            before[axis].as_f64().unwrap(),
            after[axis].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-6, "{axis} moved from {a} to {b}");
    }

    // A command with time left runs (so the refusals above were about time, not the body).
    let future = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc3339();
    h.ok(
        &alice,
        "control/track",
        json!({"telescope_id": scope, "tracking": true, "expires_at": future}),
    )
    .await;
}

#[tokio::test]
async fn two_users_contend_for_one_telescope_and_one_session_wins() {
    let mut h = Harness::start("telescope-contention").await;
    let alice = h.user("alice", false).await;
    let bob = h.user("bob", false).await;
    let admin = h.user("root", true).await;
    let (scope, _) = h.ready_telescope(&alice, "shared scope").await;
    let until = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    h.ok(&alice, "permission/grant", json!({"telescope_id": scope, "principal_id": bob.id, "permission": "control", "expires_at": until}))
        .await;
    // Bob cannot hand out grants on alice's telescope.
    let r = h
        .call(
            Some(&bob),
            "permission/grant",
            json!({"telescope_id": scope, "principal_id": bob.id, "permission": "write"}),
        )
        .await;
    assert_eq!(r["error_code"], "forbidden", "{r}");

    // Both ask at once; the database admits one active session.
    let a = h
        .send(
            Some(&alice.token),
            "session/start",
            json!({"config_id": scope}),
        )
        .await;
    let b = h
        .send(
            Some(&bob.token),
            "session/start",
            json!({"config_id": scope}),
        )
        .await;
    let (ra, rb) = (h.reply(&a).await, h.reply(&b).await);
    let wins = [&ra, &rb].iter().filter(|r| r["success"] == true).count();
    assert_eq!(wins, 1, "exactly one session: {ra} / {rb}");
    let (winner, loser, won, lost) = if ra["success"] == true {
        (&alice, &bob, ra, rb)
    } else {
        (&bob, &alice, rb, ra)
    };
    assert_eq!(lost["error_code"], "conflict", "{lost}");

    // The loser may not control; the winner may.
    let r = h
        .call(
            Some(loser),
            "control/track",
            json!({"telescope_id": scope, "tracking": true}),
        )
        .await;
    assert_eq!(r["error_code"], "forbidden", "{r}");
    h.ok(
        winner,
        "control/track",
        json!({"telescope_id": scope, "tracking": true}),
    )
    .await;
    // An administrator controls without a session.
    h.ok(
        &admin,
        "control/track",
        json!({"telescope_id": scope, "tracking": false}),
    )
    .await;

    // Only the session's user ends it; then the other may start one.
    let sid = won["session_id"].as_str().unwrap().to_owned();
    let r = h
        .call(Some(loser), "session/end", json!({"session_id": sid}))
        .await;
    assert_eq!(r["success"], false, "{r}");
    h.ok(
        winner,
        "session/end",
        json!({"session_id": sid, "status": "completed"}),
    )
    .await;
    let r = h
        .call(Some(winner), "session/end", json!({"session_id": sid}))
        .await;
    assert_eq!(r["error"], "Session not found or already ended", "{r}");
    h.ok(
        loser,
        "session/start",
        json!({"config_id": scope, "session_name": "second"}),
    )
    .await;
}

#[tokio::test]
async fn a_nul_in_a_name_is_an_invalid_request_not_a_database_outage() {
    let mut h = Harness::start("telescope-nul").await;
    let alice = h.user("alice", false).await;
    let r = h
        .call(
            Some(&alice),
            "config/create",
            json!({"name": "a\u{0}b", "mount_type": "altazimuth", "owner_id": alice.id}),
        )
        .await;
    assert_eq!(r["success"], false, "{r}");
    assert_eq!(r["error_code"], "invalid_request", "{r}");
    // The store is fine: the same request without the NUL succeeds.
    h.ok(
        &alice,
        "config/create",
        json!({"name": "ab", "mount_type": "altazimuth", "owner_id": alice.id}),
    )
    .await;
}

#[tokio::test]
async fn configurations_and_sites_follow_the_go_shapes_and_ownership() {
    let mut h = Harness::start("telescope-config").await;
    let alice = h.user("alice", false).await;
    let bob = h.user("bob", false).await;
    let admin = h.user("root", true).await;

    let r = h
        .call(
            Some(&alice),
            "site/create",
            json!({"name": "Roof", "latitude": 52.5, "longitude": 13.4}),
        )
        .await;
    assert_eq!(r["error_code"], "forbidden", "{r}");
    let site = h
        .ok(&admin, "site/create", json!({"name": "Roof", "latitude": 52.5, "longitude": 13.4, "elevation": 40.0, "timezone": "Europe/Berlin"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = h
        .call(
            Some(&admin),
            "site/create",
            json!({"name": "Bad", "latitude": 95.0, "longitude": 0.0}),
        )
        .await;
    assert_eq!(r["error_code"], "invalid_request", "{r}");
    let sites = h.ok(&alice, "site/list", json!({})).await;
    assert_eq!(
        sites["sites"].as_array().unwrap().len(),
        2,
        "seed plus one: {sites}"
    );

    let id = h
        .ok(&alice, "config/create", json!({"name": "Dob", "mount_type": "altazimuth", "site_id": site, "owner_id": alice.id}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The payload cannot make someone else the owner, and names are unique per owner.
    let r = h
        .call(
            Some(&bob),
            "config/create",
            json!({"name": "Stolen", "mount_type": "altaz", "owner_id": alice.id}),
        )
        .await;
    assert_eq!(r["error_code"], "forbidden", "{r}");
    let r = h
        .call(
            Some(&alice),
            "config/create",
            json!({"name": "Dob", "mount_type": "altaz"}),
        )
        .await;
    assert_eq!(r["error_code"], "conflict", "{r}");

    let got = h.ok(&alice, "config/get", json!({"id": id})).await["config"].clone();
    assert_eq!(got["mount_type"], "altaz");
    assert_eq!(got["site_id"], site.as_str());
    assert_eq!(got["site"]["timezone"], "Europe/Berlin");
    assert_eq!(got["owner_type"], "user");
    let r = h.call(Some(&bob), "config/get", json!({"id": id})).await;
    assert_eq!(r["error_code"], "forbidden", "{r}");
    assert_eq!(
        h.ok(&bob, "config/list", json!({})).await["configs"],
        json!([])
    );

    // Partial update: only what is given changes.
    h.ok(
        &alice,
        "config/update",
        json!({"id": id, "description": "13 inch"}),
    )
    .await;
    let got = h.ok(&alice, "config/get", json!({"id": id})).await["config"].clone();
    assert_eq!(
        (
            got["description"].clone(),
            got["name"].clone(),
            got["enabled"].clone()
        ),
        (json!("13 inch"), json!("Dob"), json!(true))
    );
    let r = h
        .call(
            Some(&alice),
            "config/update",
            json!({"id": id, "mount_type": "newtonian"}),
        )
        .await;
    assert_eq!(r["error_code"], "invalid_request", "{r}");

    // A read grant lets bob see it in his list, and not delete it.
    h.ok(
        &alice,
        "permission/grant",
        json!({"telescope_id": id, "principal_id": bob.id, "permission": "read"}),
    )
    .await;
    assert_eq!(
        h.ok(&bob, "config/list", json!({})).await["configs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = h.call(Some(&bob), "config/delete", json!({"id": id})).await;
    assert_eq!(r["error_code"], "forbidden", "{r}");
    h.ok(&alice, "config/delete", json!({"id": id})).await;
    let r = h.call(Some(&alice), "config/get", json!({"id": id})).await;
    assert_eq!(r["error"], "Configuration not found", "{r}");
}

#[tokio::test]
async fn status_of_a_mount_disconnected_on_request_is_a_reply_with_nulls_not_an_error() {
    let mut h = Harness::start("telescope-status-disconnected").await;
    let alice = h.user("alice", false).await;
    let (scope, mount) = h.ready_telescope(&alice, "resting").await;
    // Disconnecting is control: it needs the session that holds the mount.
    h.ok(&alice, "session/start", json!({"config_id": scope}))
        .await;
    h.ok(&alice, "device/disconnect", json!({"device_id": mount}))
        .await;
    h.event("device/disconnected", |e| e["unique_id"] == mount.as_str())
        .await;

    let status = h.status(&alice, &scope).await;
    assert_eq!(status["connected"], false, "{status}");
    assert_eq!(status["link_state"], "disconnected", "{status}");
    assert!(status.get("last_error").is_some(), "{status}");
    for field in READINGS {
        assert!(
            status.get(field).is_some_and(Value::is_null),
            "{field} should be null: {status}"
        );
    }

    // Errors stay errors: no such telescope, no read permission, no mount assigned.
    let bob = h.user("bob", false).await;
    let r = h
        .call(Some(&bob), "status/get", json!({"telescope_id": scope}))
        .await;
    assert_eq!(r["error_code"], "forbidden", "{r}");
    let r = h
        .call(
            Some(&alice),
            "status/get",
            json!({"telescope_id": Uuid::new_v4()}),
        )
        .await;
    assert_eq!(r["error_code"], "not_found", "{r}");
    let bare = h
        .ok(&alice, "config/create", json!({"name": "no mount yet"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = h
        .call(Some(&alice), "status/get", json!({"telescope_id": bare}))
        .await;
    assert_eq!(r["error_code"], "not_found", "{r}");

    // Connected again: every reading is back.
    h.ok(&alice, "device/connect", json!({"device_id": mount}))
        .await;
    let status = h.status(&alice, &scope).await;
    assert_eq!(status["connected"], true, "{status}");
    assert_eq!(status["link_state"], "connected", "{status}");
    for field in READINGS {
        assert!(!status[field].is_null(), "{field} missing in {status}");
    }
}

#[tokio::test]
async fn sites_are_updated_by_administrators_and_bad_input_changes_nothing() {
    let mut h = Harness::start("telescope-site-update").await;
    let alice = h.user("alice", false).await;
    let admin = h.user("root", true).await;
    let roof = h
        .ok(&admin, "site/create", json!({"name": "Roof", "description": "flat roof", "latitude": 52.5, "longitude": 13.4, "elevation": 40.0, "timezone": "Europe/Berlin"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.ok(
        &admin,
        "site/create",
        json!({"name": "Hill", "latitude": 47.0, "longitude": 8.0}),
    )
    .await;
    let original = h.ok(&admin, "site/get", json!({"id": roof})).await["site"].clone();

    // Partial: only the given fields change; the reply carries the stored site.
    let r = h
        .ok(
            &admin,
            "site/update",
            json!({"id": roof, "elevation": 55.5, "timezone": "Europe/Paris"}),
        )
        .await;
    let updated = r["site"].clone();
    assert_eq!(updated["id"], roof.as_str(), "{r}");
    assert_eq!(updated["elevation"], 55.5, "{r}");
    assert_eq!(updated["timezone"], "Europe/Paris", "{r}");
    for same in ["name", "description", "latitude", "longitude", "created_at"] {
        assert_eq!(updated[same], original[same], "{same}: {r}");
    }
    assert_ne!(updated["updated_at"], original["updated_at"], "{r}");
    let got = h.ok(&alice, "site/get", json!({"site_id": roof})).await["site"].clone();
    assert_eq!(got, updated);

    // The Go aliases, and every field at once.
    let r = h
        .ok(
            &admin,
            "site/update",
            json!({"site_id": roof, "name": " Roof terrace ", "description": "", "latitude": -33.9,
                   "longitude": -180.0, "elevation": -20.0, "time_zone": "UTC"}),
        )
        .await;
    let current = r["site"].clone();
    assert_eq!(
        (
            current["name"].clone(),
            current["description"].clone(),
            current["latitude"].clone(),
            current["longitude"].clone(),
            current["elevation"].clone(),
            current["timezone"].clone()
        ),
        (
            json!("Roof terrace"),
            json!(""),
            json!(-33.9),
            json!(-180.0),
            json!(-20.0),
            json!("UTC")
        ),
        "{r}"
    );

    // Refused, each with a clear invalid_request, and nothing written: a valid field next to
    // an invalid one does not change either.
    let long_name = "x".repeat(256);
    for (bad, mentions) in [
        (json!({"latitude": 90.5}), "latitude"),
        (json!({"latitude": -91.0, "name": "Moved"}), "latitude"),
        (json!({"longitude": 180.1}), "longitude"),
        (json!({"longitude": -200.0, "elevation": 10.0}), "longitude"),
        (json!({"elevation": 20000.0}), "elevation"),
        (json!({"elevation": -1000.0}), "elevation"),
        (json!({"timezone": "Mars/Olympus_Mons"}), "timezone"),
        (json!({"timezone": ""}), "timezone"),
        (
            json!({"timezone": "Europe/ Berlin", "latitude": 10.0}),
            "timezone",
        ),
        (json!({"name": "  "}), "name"),
        (json!({"name": long_name}), "name"),
        (json!({"latitude": "north"}), "expected f64"),
        (json!({}), "nothing to update"),
    ] {
        let mut body = bad.clone();
        body["id"] = json!(roof);
        let r = h.call(Some(&admin), "site/update", body).await;
        assert_eq!(r["success"], false, "{bad}: {r}");
        assert_eq!(r["error_code"], "invalid_request", "{bad}: {r}");
        assert!(
            r["error"].as_str().unwrap().contains(mentions),
            "{bad}: {r}"
        );
    }
    let r = h
        .call(
            Some(&admin),
            "site/update",
            json!({"id": "not-a-uuid", "elevation": 1.0}),
        )
        .await;
    assert_eq!(r["error_code"], "invalid_request", "{r}");
    // Not an administrator.
    let r = h
        .call(
            Some(&alice),
            "site/update",
            json!({"id": roof, "elevation": 1.0}),
        )
        .await;
    assert_eq!(r["error_code"], "forbidden", "{r}");
    // Another site's name.
    let r = h
        .call(
            Some(&admin),
            "site/update",
            json!({"id": roof, "name": "Hill", "elevation": 1.0}),
        )
        .await;
    assert_eq!(r["error_code"], "conflict", "{r}");
    let got = h.ok(&admin, "site/get", json!({"id": roof})).await["site"].clone();
    assert_eq!(got, current, "a refused update changed the site");

    // An unknown id is NotFound, and no site is created for it.
    let r = h
        .call(
            Some(&admin),
            "site/update",
            json!({"id": Uuid::new_v4(), "elevation": 1.0}),
        )
        .await;
    assert_eq!(
        (r["error_code"].clone(), r["error"].clone()),
        (json!("not_found"), json!("Site not found")),
        "{r}"
    );
    let sites = h.ok(&admin, "site/list", json!({})).await;
    assert_eq!(
        sites["sites"].as_array().unwrap().len(),
        3,
        "seed plus two: {sites}"
    );
}

#[tokio::test]
async fn session_list_shows_each_caller_what_they_may_see() {
    let mut h = Harness::start("telescope-session-list").await;
    let alice = h.user("alice", false).await;
    let bob = h.user("bob", false).await;
    let carol = h.user("carol", false).await;
    let admin = h.user("root", true).await;
    let create = |name: &str| json!({"name": name, "mount_type": "equatorial"});
    let a_scope = h.ok(&alice, "config/create", create("alice's")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b_scope = h.ok(&bob, "config/create", create("bob's")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Carol may control alice's telescope; bob may only read it.
    h.ok(
        &alice,
        "permission/grant",
        json!({"telescope_id": a_scope, "principal_id": carol.id, "permission": "control"}),
    )
    .await;
    h.ok(
        &alice,
        "permission/grant",
        json!({"telescope_id": a_scope, "principal_id": bob.id, "permission": "read"}),
    )
    .await;

    // Alice: one ended session on her telescope, then carol holds it; bob on his own.
    let a1 = h
        .ok(
            &alice,
            "session/start",
            json!({"config_id": a_scope, "notes": "first light"}),
        )
        .await["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.ok(&alice, "session/end", json!({"session_id": a1})).await;
    let c1 = h
        .ok(&carol, "session/start", json!({"config_id": a_scope}))
        .await["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b1 = h
        .ok(&bob, "session/start", json!({"telescope_id": b_scope}))
        .await["session_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let ids = |r: &Value| -> Vec<String> {
        let mut v: Vec<String> = r["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<&String>| -> Vec<String> {
        v.sort();
        v.into_iter().cloned().collect()
    };

    // The administrator sees everything; filters narrow it.
    let all = h.ok(&admin, "session/list", json!({})).await;
    assert_eq!(ids(&all), sorted(vec![&a1, &c1, &b1]), "{all}");
    assert_eq!(all["count"], 3, "{all}");
    let active = h
        .ok(&admin, "session/list", json!({"active_only": true}))
        .await;
    assert_eq!(ids(&active), sorted(vec![&c1, &b1]), "{active}");
    let on_a = h
        .ok(&admin, "session/list", json!({"telescope_id": a_scope}))
        .await;
    assert_eq!(ids(&on_a), sorted(vec![&a1, &c1]), "{on_a}");
    let both = h
        .ok(
            &admin,
            "session/list",
            json!({"config_id": a_scope, "active": true}),
        )
        .await;
    assert_eq!(ids(&both), vec![c1.clone()], "{both}");

    // The owner sees every session on her telescope, not bob's on his.
    let r = h.ok(&alice, "session/list", json!({})).await;
    assert_eq!(ids(&r), sorted(vec![&a1, &c1]), "{r}");
    // Bob reads alice's telescope, so he sees who holds it, plus his own.
    let r = h.ok(&bob, "session/list", json!({})).await;
    assert_eq!(ids(&r), sorted(vec![&a1, &c1, &b1]), "{r}");
    // Carol sees alice's telescope through her grant.
    let r = h.ok(&carol, "session/list", json!({})).await;
    assert_eq!(ids(&r), sorted(vec![&a1, &c1]), "{r}");
    // A telescope carol may not read: nothing of it, and no error.
    let r = h
        .ok(&carol, "session/list", json!({"telescope_id": b_scope}))
        .await;
    assert_eq!(r["sessions"], json!([]), "{r}");

    // Once carol's grant is gone she still sees her own session, and no longer alice's.
    h.ok(
        &alice,
        "permission/revoke",
        json!({"telescope_id": a_scope, "principal_id": carol.id, "permission": "control"}),
    )
    .await;
    let r = h.ok(&carol, "session/list", json!({})).await;
    assert_eq!(ids(&r), vec![c1.clone()], "{r}");

    // Newest first, with the row's fields.
    let r = h
        .ok(&alice, "session/list", json!({"telescope_id": a_scope}))
        .await;
    let rows = r["sessions"].as_array().unwrap();
    assert_eq!(rows[0]["id"], c1.as_str(), "{r}");
    let first = &rows[1];
    assert_eq!(first["id"], a1.as_str(), "{r}");
    assert_eq!(first["telescope_id"], a_scope.as_str());
    assert_eq!(first["telescope_name"], "alice's");
    assert_eq!(first["user_id"], json!(alice.id));
    assert_eq!(first["username"], "alice");
    assert_eq!(first["status"], "completed");
    assert_eq!(first["session_type"], "manual");
    assert_eq!(first["notes"], "first light");
    assert!(first["ended_at"].is_string(), "{first}");
    assert!(rows[0]["ended_at"].is_null(), "{r}");
    let r = h
        .ok(
            &alice,
            "session/list",
            json!({"telescope_id": a_scope, "limit": 1}),
        )
        .await;
    assert_eq!(ids(&r), vec![c1.clone()], "{r}");

    // Bad input and unknown telescopes.
    for bad in [
        json!({"telescope_id": "nope"}),
        json!({"limit": 0}),
        json!({"limit": 1001}),
        json!({"active_only": "yes"}),
    ] {
        let r = h.call(Some(&alice), "session/list", bad.clone()).await;
        assert_eq!(r["error_code"], "invalid_request", "{bad}: {r}");
    }
    let r = h
        .call(
            Some(&alice),
            "session/list",
            json!({"telescope_id": Uuid::new_v4()}),
        )
        .await;
    assert_eq!(r["error_code"], "not_found", "{r}");
    let r = h.call(None, "session/list", json!({})).await;
    assert_eq!(r["error_code"], "unauthenticated", "{r}");
}

// ---- rights attach to the physical device (issue 11, items 1 and 4) ---------------------------

/// The telescope ids whose pool holds `mount`, from the database.
async fn telescopes_using(h: &Harness, mount: &str) -> Vec<Uuid> {
    let mut v: Vec<Uuid> =
        sqlx::query_scalar("SELECT telescope_id FROM telescope_pools WHERE unique_id = $1")
            .bind(mount)
            .fetch_all(&h.pool)
            .await
            .unwrap();
    v.sort();
    v
}

/// Active sessions on `telescope`, from the database.
async fn active_sessions(h: &Harness, telescope: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM telescope_sessions WHERE telescope_id = $1 AND status = 'active'",
    )
    .bind(Uuid::parse_str(telescope).unwrap())
    .fetch_one(&h.pool)
    .await
    .unwrap()
}

fn refused(r: &Value, codes: &[&str]) {
    assert_eq!(r["success"], false, "{r}");
    assert!(
        codes.iter().any(|c| r["error_code"] == *c),
        "expected one of {codes:?}: {r}"
    );
}

#[tokio::test]
async fn a_second_configuration_cannot_take_or_command_a_mount_held_by_another_session() {
    let mut h = Harness::start("telescope-second-config").await;
    let alice = h.user("alice", false).await;
    let mallory = h.user("mallory", false).await;
    let admin = h.operator().await;
    let (scope, mount) = h.ready_telescope(&alice, "alice's mount").await;
    let held = h
        .ok(&alice, "session/start", json!({"config_id": scope}))
        .await["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.ok(
        &alice,
        "control/track",
        json!({"telescope_id": scope, "tracking": false}),
    )
    .await;
    let before = h.status(&alice, &scope).await;

    // Mallory makes a configuration of her own and tries to put alice's mount into it.
    let hers = h
        .ok(
            &mallory,
            "config/create",
            json!({"name": "mallory's", "mount_type": "equatorial"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = h
        .call(
            Some(&mallory),
            "device/assign",
            json!({"telescope_id": hers, "role": "telescope", "device_id": mount}),
        )
        .await;
    refused(&r, &["forbidden", "conflict"]);
    assert_eq!(
        telescopes_using(&h, &mount).await,
        vec![Uuid::parse_str(&scope).unwrap()],
        "a refused assign changes nothing"
    );
    // Her own session on her empty configuration gives her nothing to command.
    h.ok(&mallory, "session/start", json!({"config_id": hers}))
        .await;
    let r = h
        .call(
            Some(&mallory),
            "control/slew",
            json!({"telescope_id": hers, "right_ascension": 5.0, "declination": 60.0}),
        )
        .await;
    assert_eq!(r["success"], false, "{r}");
    // An administrator cannot put a held device into a telescope that has a session of its
    // own either: that would give the device two controlling sessions.
    let r = h
        .call(
            Some(&admin),
            "device/assign",
            json!({"telescope_id": hers, "role": "telescope", "device_id": mount}),
        )
        .await;
    refused(&r, &["conflict"]);
    assert!(r["error"].as_str().unwrap().contains(&mount), "{r}");
    assert_eq!(telescopes_using(&h, &mount).await.len(), 1);
    let mine = h
        .ok(
            &mallory,
            "session/list",
            json!({"telescope_id": hers, "active": true}),
        )
        .await;
    let sid = mine["sessions"][0]["id"].as_str().unwrap().to_owned();
    h.ok(&mallory, "session/end", json!({"session_id": sid}))
        .await;

    // Without a session there, the administrator may put the mount into both telescopes;
    // then a session on mallory's telescope is refused while alice's session holds the mount.
    h.ok(
        &admin,
        "device/assign",
        json!({"telescope_id": hers, "role": "telescope", "device_id": mount}),
    )
    .await;
    assert_eq!(telescopes_using(&h, &mount).await.len(), 2);
    let r = h
        .call(Some(&mallory), "session/start", json!({"config_id": hers}))
        .await;
    refused(&r, &["conflict"]);
    let msg = r["error"].as_str().unwrap();
    assert!(msg.contains(&mount) && msg.contains("session"), "{r}");
    assert_eq!(
        active_sessions(&h, &hers).await,
        0,
        "a refused start adds no row"
    );
    for (op, body) in [
        (
            "control/slew",
            json!({"telescope_id": hers, "right_ascension": 5.0, "declination": 60.0}),
        ),
        ("control/park", json!({"telescope_id": hers})),
        ("control/abort", json!({"telescope_id": hers})),
        (
            "control/track",
            json!({"telescope_id": hers, "tracking": true}),
        ),
    ] {
        let r = h.call(Some(&mallory), op, body).await;
        refused(&r, &["forbidden", "conflict"]);
    }
    // The mount did not move.
    let after = h.status(&alice, &scope).await;
    assert_eq!(after["slewing"], false, "{after}");
    assert_eq!(after["at_park"], false, "{after}");
    assert_eq!(after["tracking"], false, "{after}");
    for axis in ["altitude", "azimuth"] {
        let (a, b) = (
            before[axis].as_f64().unwrap(),
            after[axis].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-6, "{axis} moved from {a} to {b}");
    }

    // Once alice ends her session the mount is free: mallory's session takes it, and now
    // alice's telescope is the one refused.
    h.ok(&alice, "session/end", json!({"session_id": held}))
        .await;
    h.ok(&mallory, "session/start", json!({"config_id": hers}))
        .await;
    let r = h
        .call(Some(&alice), "session/start", json!({"config_id": scope}))
        .await;
    refused(&r, &["conflict"]);
    assert_eq!(active_sessions(&h, &scope).await, 0);
}

#[tokio::test]
async fn two_sessions_started_at_once_on_telescopes_sharing_a_mount_one_wins() {
    let mut h = Harness::start("telescope-device-race").await;
    let alice = h.user("alice", false).await;
    let bob = h.user("bob", false).await;
    let admin = h.operator().await;
    let (a_scope, mount) = h.ready_telescope(&alice, "alice's").await;
    let b_scope = h
        .ok(
            &bob,
            "config/create",
            json!({"name": "bob's", "mount_type": "equatorial"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.ok(
        &admin,
        "device/assign",
        json!({"telescope_id": b_scope, "role": "telescope", "device_id": mount}),
    )
    .await;
    for round in 0..5 {
        let a = h
            .send(
                Some(&alice.token),
                "session/start",
                json!({"config_id": a_scope}),
            )
            .await;
        let b = h
            .send(
                Some(&bob.token),
                "session/start",
                json!({"config_id": b_scope}),
            )
            .await;
        let (ra, rb) = (h.reply(&a).await, h.reply(&b).await);
        let wins = [&ra, &rb].iter().filter(|r| r["success"] == true).count();
        assert_eq!(wins, 1, "round {round}: exactly one session: {ra} / {rb}");
        let (winner, won, lost) = if ra["success"] == true {
            (&alice, ra, rb)
        } else {
            (&bob, rb, ra)
        };
        assert_eq!(lost["error_code"], "conflict", "{lost}");
        let active = active_sessions(&h, &a_scope).await + active_sessions(&h, &b_scope).await;
        assert_eq!(active, 1, "round {round}");
        h.ok(
            winner,
            "session/end",
            json!({"session_id": won["session_id"]}),
        )
        .await;
    }
}

#[tokio::test]
async fn connect_and_disconnect_need_the_session_that_holds_the_device() {
    let mut h = Harness::start("telescope-connect-session").await;
    let alice = h.user("alice", false).await;
    let bob = h.user("bob", false).await;
    let admin = h.operator().await;
    let (scope, mount) = h.ready_telescope(&alice, "busy").await;
    h.ok(
        &alice,
        "permission/grant",
        json!({"telescope_id": scope, "principal_id": bob.id, "permission": "control"}),
    )
    .await;
    let sid = h
        .ok(&alice, "session/start", json!({"config_id": scope}))
        .await["session_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Bob may control the telescope but holds no session: he may not pull the plug.
    for op in ["device/disconnect", "device/connect"] {
        let r = h.call(Some(&bob), op, json!({"device_id": mount})).await;
        refused(&r, &["forbidden", "conflict"]);
        assert!(r["error"].as_str().unwrap().contains("session"), "{r}");
    }
    assert_eq!(h.status(&alice, &scope).await["connected"], true);
    // The session holder still commands the mount.
    h.ok(
        &alice,
        "control/track",
        json!({"telescope_id": scope, "tracking": true}),
    )
    .await;

    // Nor does a session on another telescope of his own that uses the device give it to him.
    let b_scope = h
        .ok(
            &bob,
            "config/create",
            json!({"name": "bob's", "mount_type": "equatorial"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.ok(
        &admin,
        "device/assign",
        json!({"telescope_id": b_scope, "role": "telescope", "device_id": mount}),
    )
    .await;
    let r = h
        .call(Some(&bob), "session/start", json!({"config_id": b_scope}))
        .await;
    refused(&r, &["conflict"]);
    let r = h
        .call(Some(&bob), "device/disconnect", json!({"device_id": mount}))
        .await;
    refused(&r, &["forbidden", "conflict"]);
    assert_eq!(h.status(&alice, &scope).await["connected"], true);

    // The holder may disconnect and reconnect; an administrator may too.
    h.ok(&alice, "device/disconnect", json!({"device_id": mount}))
        .await;
    h.ok(&alice, "device/connect", json!({"device_id": mount}))
        .await;
    h.ok(&alice, "session/end", json!({"session_id": sid}))
        .await;
    // Without any session, alice (owner) may not either.
    let r = h
        .call(
            Some(&alice),
            "device/disconnect",
            json!({"device_id": mount}),
        )
        .await;
    refused(&r, &["forbidden"]);
    h.ok(&admin, "device/disconnect", json!({"device_id": mount}))
        .await;
    h.ok(&admin, "device/connect", json!({"device_id": mount}))
        .await;
}

#[tokio::test]
async fn discovery_is_for_administrators() {
    let mut h = Harness::start("telescope-discover-admin").await;
    let alice = h.user("alice", false).await;
    let r = h.call(Some(&alice), "device/discover", json!({})).await;
    refused(&r, &["forbidden"]);
    let r = h
        .call(
            Some(&alice),
            "device/discover",
            json!({"server_url": h.sim().base_url()}),
        )
        .await;
    refused(&r, &["forbidden"]);
    // Nothing was registered by the refused requests.
    let listed = h.ok(&alice, "device/list", json!({})).await;
    assert_eq!(listed["count"], 0, "{listed}");
    let admin = h.operator().await;
    let found = h.ok(&admin, "device/discover", json!({})).await;
    assert_eq!(found["count"], 6, "{found}");
}

/// Tracking as the simulator at `url` reports it for its mount 0.
async fn mount_reading(url: &str, member: &str) -> Value {
    reqwest::get(format!(
        "{url}/api/v1/telescope/0/{member}?ClientID=1&ClientTransactionID=1"
    ))
    .await
    .unwrap()
    .json::<Value>()
    .await
    .unwrap()["Value"]
        .clone()
}

/// Issue #20, item 1: a second Alpaca server with the same UniqueIDs (a simulator with the
/// same seed, or any LAN host answering discovery) never takes the owner's mount over. A plain
/// user may not register it; the administrator's discovery only records a pending move; the
/// owner's `track` and `slew` reach the real mount; and a confirmed `device/move` is refused
/// while the session holds the mount and when the device there describes itself differently.
#[tokio::test]
async fn an_impostor_with_the_same_unique_ids_gets_no_command_and_a_move_is_checked() {
    let mut h = Harness::start("telescope-impostor").await;
    let alice = h.user("alice", false).await;
    let (scope, mount) = h.ready_telescope(&alice, "the real mount").await;
    let sid = h
        .ok(&alice, "session/start", json!({"config_id": scope}))
        .await["session_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut cfg = SimulatorConfig::default();
    cfg.server.bind = "127.0.0.1".parse().unwrap();
    cfg.server.http_port = 0;
    cfg.server.discovery_port = 0;
    cfg.server.seed = Some("telescope-impostor".to_owned());
    cfg.devices.connect_delay = 0.0;
    cfg.devices
        .telescope
        .model
        .insert("description".into(), "somebody else's mount".into());
    let impostor = Simulator::bind(cfg).await.unwrap().spawn();
    let fake = impostor.base_url();
    let real = h.sim().base_url();

    let r = h
        .call(Some(&alice), "device/discover", json!({"server_url": fake}))
        .await;
    refused(&r, &["forbidden"]);
    let admin = h.operator().await;
    h.ok(&admin, "device/discover", json!({"server_url": fake}))
        .await;
    let listed = h.ok(&alice, "device/list", json!({})).await;
    assert_eq!(listed["count"], 6, "{listed}");
    let d = listed["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["uuid"] == mount.as_str())
        .unwrap()
        .clone();
    assert_eq!(d["server_url"], real.as_str(), "{d}");
    assert_eq!(d["connected"], true, "{d}");
    assert!(
        listed["pending_moves"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["unique_id"] == mount.as_str() && m["to"] == fake.as_str()),
        "{listed}"
    );

    // The owner's commands reach the real mount, not the impostor.
    h.ok(
        &alice,
        "control/track",
        json!({"telescope_id": scope, "enabled": true}),
    )
    .await;
    assert_eq!(mount_reading(&real, "tracking").await, json!(true));
    assert_eq!(mount_reading(&fake, "tracking").await, json!(false));
    let accepted = h
        .ok(
            &alice,
            "control/slew",
            json!({"telescope_id": scope, "right_ascension": 3.0, "declination": 60.0}),
        )
        .await;
    assert_eq!(mount_reading(&real, "slewing").await, json!(true));
    assert_eq!(mount_reading(&fake, "slewing").await, json!(false));
    h.ok(&alice, "control/abort", json!({"telescope_id": scope}))
        .await;
    let slew_id = accepted["slew_id"].as_str().unwrap().to_owned();
    h.event("slew/aborted", |e| e["slew_id"] == slew_id.as_str())
        .await;

    // A confirmed move: administrators only, never while a session holds the mount, never
    // while it is connected, and never to a device that describes itself differently.
    let body = json!({"device_id": mount, "server_url": fake});
    refused(
        &h.call(Some(&alice), "device/move", body.clone()).await,
        &["forbidden"],
    );
    refused(
        &h.call(Some(&admin), "device/move", body.clone()).await,
        &["conflict"],
    );
    h.ok(&alice, "session/end", json!({"session_id": sid}))
        .await;
    refused(
        &h.call(Some(&admin), "device/move", body.clone()).await,
        &["conflict"],
    );
    h.ok(&admin, "device/disconnect", json!({"device_id": mount}))
        .await;
    let r = h.call(Some(&admin), "device/move", body).await;
    refused(&r, &["conflict"]);
    assert!(
        r["error"]
            .as_str()
            .unwrap_or_default()
            .contains("describes itself differently"),
        "{r}"
    );
    let listed = h.ok(&alice, "device/list", json!({})).await;
    let d = listed["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["uuid"] == mount.as_str())
        .unwrap()
        .clone();
    assert_eq!(d["server_url"], real.as_str(), "{d}");
    impostor.shutdown().await.unwrap();
}

/// Issue #20, item 8: a motion outcome is kept. A client that subscribes only after the slew
/// ended (as after a broker outage, when the ordinary event went out before it had subscribed
/// again) gets it retained on `event/motion/<telescope_id>`, and `status/get` returns it as
/// `last_motion`.
#[tokio::test]
async fn the_last_motion_outcome_is_retained_for_late_subscribers_and_in_the_status() {
    let mut h = Harness::start("telescope-last-motion").await;
    let alice = h.user("alice", false).await;
    let (scope, _mount) = h.ready_telescope(&alice, "late observer").await;
    h.ok(&alice, "session/start", json!({"config_id": scope}))
        .await;
    let r = h
        .ok(&alice, "status/get", json!({"telescope_id": scope}))
        .await;
    assert_eq!(r["last_motion"], Value::Null, "{r}");
    h.simulator(reqwest::Method::PUT, "clock", Some(json!({"rate": 60.0})))
        .await;
    h.ok(
        &alice,
        "control/track",
        json!({"telescope_id": scope, "enabled": true}),
    )
    .await;
    let accepted = h
        .ok(
            &alice,
            "control/slew",
            json!({"telescope_id": scope, "right_ascension": 5.0, "declination": 40.0}),
        )
        .await;
    let slew_id = accepted["slew_id"].as_str().unwrap().to_owned();
    h.event("slew/completed", |e| e["slew_id"] == slew_id.as_str())
        .await;

    let p = provision::shared().await.unwrap();
    let stop = CancellationToken::new();
    let (late, _task) = Bus::start(
        bus_config(&p.mqtt.host, p.mqtt.port, "late-observer"),
        None,
        stop.clone(),
    );
    late.wait_connected(WAIT).await.unwrap();
    let mut rx = late
        .subscribe(&h.topics.event("telescope", &format!("motion/{scope}")), 8)
        .await
        .unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the retained outcome for a late subscriber")
        .unwrap();
    let env: Envelope = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(env.payload["slew_id"], slew_id.as_str(), "{env:?}");
    assert_eq!(env.payload["outcome"], "completed", "{env:?}");
    assert_eq!(env.payload["telescope_id"], scope.as_str(), "{env:?}");
    stop.cancel();

    let r = h
        .ok(&alice, "status/get", json!({"telescope_id": scope}))
        .await;
    assert_eq!(r["last_motion"]["slew_id"], slew_id.as_str(), "{r}");
    assert_eq!(r["last_motion"]["event"], "slew_completed", "{r}");
}
