//! The slew path, end to end: an authenticated `control/slew` over real Mosquitto to the
//! telescope coordinator (PostgreSQL for the permission and session check, the Alpaca simulator
//! over HTTP for the mount), measured
//!
//! * `slew_path/mqtt_slew_accepted`: command published → accepted reply received;
//! * `slew_path/mqtt_slew_completed_stepped`: command → `event/slew/completed`, with the
//!   simulator clock stepped (stepped mode, 60 s per command) so the motion itself costs no
//!   wall time and what is measured is the framework: reply, watcher poll, event;
//! * `ascom_health/cycle_100_devices`: one engine health cycle over 100 connected devices
//!   (engine only, no MQTT; [`bigskies_benches::fleet`], also used by `health_path` for 10,
//!   100 and 1000 devices).
//!
//! Median and p99 of every measured sample are printed at the end of each bench.
//! `cargo bench -p bigskies-benches --bench slew_path` (needs PostgreSQL and Mosquitto, found by
//! the provisioning ladder of `bigskies-scenarios`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alpaca_simulator::app::{RunningSimulator, Simulator};
use bigskies_alpaca::types::DeviceType;
use bigskies_ascom::store::Store;
use bigskies_ascom::{AscomConfig, AscomEngine, Role};
use bigskies_benches::fleet::{bench_health_cycle, sim_config};
use bigskies_benches::percentiles;
use bigskies_coordinators::telescope::{TelescopeCoordinator, TelescopeSettings};
use bigskies_core::bus::{Bus, BusConfig, Message};
use bigskies_core::config::MIGRATOR;
use bigskies_core::envelope::{Envelope, MessageType};
use bigskies_core::runtime::{Launch, RuntimeConfig, launch_with};
use bigskies_core::topics::Topics;
use bigskies_scenarios::provision;
use bigskies_security::tokens::Subject;
use bigskies_security::{Secret, SecurityEngines, SecuritySettings};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::sync::mpsc::Receiver;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

/// A client that sends enveloped requests with a private reply topic and reads events.
struct Client {
    bus: Bus,
    topics: Topics,
    token: String,
    reply_topic: String,
    replies: Receiver<Message>,
    events: tokio::sync::mpsc::UnboundedReceiver<Message>,
    next: AtomicU64,
}

impl Client {
    async fn request(&mut self, op: &str, body: Value) -> Value {
        let cid = format!("b{}", self.next.fetch_add(1, Ordering::Relaxed));
        let env = Envelope::new(MessageType::Request, "bench", body)
            .with_correlation_id(cid.clone())
            .with_reply_to(self.reply_topic.clone())
            .with_token(self.token.clone());
        let (action, resource) = op.split_once('/').expect("op is action/resource");
        self.bus
            .publish(
                &self.topics.request("telescope", action, resource),
                env.to_bytes(),
                false,
            )
            .await
            .expect("publish");
        loop {
            let msg = tokio::time::timeout(WAIT, self.replies.recv())
                .await
                .expect("a reply in time")
                .expect("reply channel open");
            let v: Value = serde_json::from_slice(&msg.payload).expect("JSON reply");
            if v["correlation_id"] == cid.as_str() {
                assert_eq!(v["success"], true, "{op}: {v}");
                return v;
            }
        }
    }

    async fn completed(&mut self, slew_id: &str) {
        let topic = self.topics.event("telescope", "slew/completed");
        loop {
            let msg = tokio::time::timeout(WAIT, self.events.recv())
                .await
                .expect("a completed event in time")
                .expect("event channel open");
            if msg.topic == topic {
                let v: Value = serde_json::from_slice(&msg.payload).expect("JSON event");
                // Events travel in the framework envelope.
                if v["payload"]["slew_id"] == slew_id {
                    return;
                }
            }
        }
    }
}

struct Setup {
    _db: provision::TestDatabase,
    sim: RunningSimulator,
    client: Client,
    scope: String,
}

async fn setup(stop: CancellationToken) -> Setup {
    let p = provision::shared()
        .await
        .expect("PostgreSQL and Mosquitto for the slew bench");
    let db = p.fresh_database().await.expect("a fresh database");
    MIGRATOR.run(db.pool()).await.expect("migrations");
    let pool = db.pool().clone();
    let (host, port) = (p.mqtt.host.clone(), p.mqtt.port);
    let topics = Topics::new(provision::unique_topic_root());
    let sim = Simulator::bind(sim_config("slew-bench"))
        .await
        .expect("simulator")
        .spawn();

    let engines = SecurityEngines::new(
        pool.clone(),
        SecuritySettings::default(),
        &Secret::new("bench-secret-".repeat(4)),
    );
    let user = engines
        .accounts
        .create_user(
            "observer",
            "observer@example.org",
            "a perfectly fine passphrase",
            None,
        )
        .await
        .expect("user");
    let token = engines
        .tokens
        .issue(Subject {
            user_id: user.id,
            username: "observer",
            email: "observer@example.org",
            roles: vec![],
        })
        .expect("token")
        .token;

    let engine = AscomEngine::build(
        AscomConfig {
            discovery: None,
            servers: vec![sim.base_url()],
            ..AscomConfig::default()
        },
        Some(Store::new(pool.clone())),
    )
    .await
    .expect("engine");
    let mount = engine
        .discover()
        .await
        .expect("discovery")
        .into_iter()
        .find(|d| d.device_type == DeviceType::Telescope)
        .expect("a mount")
        .unique_id;
    let scope: Uuid = sqlx::query_scalar(
        "INSERT INTO telescope_configurations (name, owner_id, owner_type, mount_type) VALUES ('bench', $1, 'user', 'equatorial') RETURNING id",
    )
    .bind(user.id)
    .fetch_one(&pool)
    .await
    .expect("telescope");
    engine
        .assign(scope, Role::Telescope, &mount)
        .await
        .expect("assign");
    engine.connect(&mount).await.expect("connect");
    sqlx::query("INSERT INTO telescope_sessions (telescope_id, user_id) VALUES ($1, $2)")
        .bind(scope)
        .bind(user.id)
        .execute(&pool)
        .await
        .expect("session");

    let settings = TelescopeSettings {
        slew_poll: Duration::from_millis(2),
        ..TelescopeSettings::default()
    };
    let coordinator = Arc::new(TelescopeCoordinator::new(pool, engine, settings));
    let (bus, _task) = Bus::start(
        BusConfig::new(host.clone(), port, "slew-bench"),
        None,
        stop.clone(),
    );
    bus.wait_connected(WAIT).await.expect("broker");
    let mut health = bus
        .subscribe(&topics.health("telescope"), 16)
        .await
        .expect("subscribe");
    let reply_topic = topics.client_reply("slew-bench");
    let replies = bus.subscribe(&reply_topic, 256).await.expect("subscribe");
    // Only completions, drained into an unbounded queue: the bus applies backpressure, and
    // the thousands of superseded slews of the first bench must not stall it.
    let mut completions = bus
        .subscribe(&topics.event("telescope", "slew/completed"), 256)
        .await
        .expect("subscribe");
    let (events_tx, events) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(m) = completions.recv().await {
            if events_tx.send(m).is_err() {
                break;
            }
        }
    });
    let launch = Launch {
        bus: BusConfig::new(host, port, "telescope"),
        runtime: RuntimeConfig {
            topics: topics.clone(),
            ..RuntimeConfig::default()
        },
        store: None,
        connect_timeout: WAIT,
        authenticator: Some(engines.authenticator().into_dyn()),
    };
    let bg = coordinator.clone();
    let bg_topics = topics.clone();
    tokio::spawn(launch_with(coordinator, launch, stop, move |bus, s| {
        bg.run_background(bus, bg_topics, s)
    }));
    tokio::time::timeout(WAIT, health.recv())
        .await
        .expect("coordinator up")
        .expect("health");
    let mut client = Client {
        bus,
        topics,
        token,
        reply_topic,
        replies,
        events,
        next: AtomicU64::new(0),
    };
    client
        .request(
            "control/track",
            json!({"telescope_id": scope, "tracking": true}),
        )
        .await;
    Setup {
        _db: db,
        sim,
        client,
        scope: scope.to_string(),
    }
}

fn slew_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let stop = CancellationToken::new();
    let setup = rt.block_on(setup(stop.clone()));
    let scope = setup.scope.clone();
    let clock = setup.sim.clock.clone();
    let client = Arc::new(Mutex::new(setup.client));
    let flip = Arc::new(AtomicU64::new(0));
    let target = move |flip: &AtomicU64| {
        // Alternate between two nearby targets so every slew really moves the mount.
        if flip.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
            (5.0, 20.0)
        } else {
            (5.5, 25.0)
        }
    };

    let mut group = c.benchmark_group("slew_path");
    let accepted = Arc::new(std::sync::Mutex::new(Vec::new()));
    group.bench_function("mqtt_slew_accepted", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (client, flip, accepted, scope) = (client.clone(), flip.clone(), accepted.clone(), scope.clone());
            async move {
                let mut client = client.lock().await;
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (ra, dec) = target(&flip);
                    let started = Instant::now();
                    client
                        .request("control/slew", json!({"telescope_id": scope, "right_ascension": ra, "declination": dec}))
                        .await;
                    let took = started.elapsed();
                    total += took;
                    accepted.lock().unwrap_or_else(|p| p.into_inner()).push(took);
                }
                total
            }
        })
    });

    // Stepped clock: nothing moves until the bench steps it.
    clock.pause();
    let completed = Arc::new(std::sync::Mutex::new(Vec::new()));
    group.sample_size(30);
    group.bench_function("mqtt_slew_completed_stepped", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (client, flip, completed, scope, clock) =
                (client.clone(), flip.clone(), completed.clone(), scope.clone(), clock.clone());
            async move {
                let mut client = client.lock().await;
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (ra, dec) = target(&flip);
                    let started = Instant::now();
                    let reply = client
                        .request("control/slew", json!({"telescope_id": scope, "right_ascension": ra, "declination": dec}))
                        .await;
                    clock.step(60.0).expect("clock step");
                    client.completed(reply["slew_id"].as_str().expect("slew id")).await;
                    let took = started.elapsed();
                    total += took;
                    completed.lock().unwrap_or_else(|p| p.into_inner()).push(took);
                }
                total
            }
        })
    });
    group.finish();

    for (name, samples) in [
        ("slew accepted", &accepted),
        ("slew completed (stepped clock)", &completed),
    ] {
        let mut s = samples.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let n = s.len();
        let (p50, p99) = percentiles(&mut s);
        eprintln!(
            "{name}: median {:.3} ms, p99 {:.3} ms over {n} samples",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    stop.cancel();
    rt.block_on(async {
        let _ = setup.sim.shutdown().await;
    });
}

fn health_cycle(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("ascom_health");
    bench_health_cycle(&mut group, &rt, 100);
    group.finish();
}

criterion_group!(benches, slew_path, health_cycle);
criterion_main!(benches);
