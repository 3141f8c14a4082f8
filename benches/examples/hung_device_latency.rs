//! A database-only request while one mount hangs: issue #20's head-of-line figure.
//!
//! The telescope coordinator serves one mount on the Alpaca simulator; the mount's `hang` fault
//! is set (its requests get no answer), then 300 `status/get` requests for it are published at
//! once, and while they are queued (or refused), `config/list` (PostgreSQL only) is timed one
//! request at a time. Also recorded: the longest gap between the coordinator's health reports.
//! Before lanes the loop waited for a handler slot, so `config/list` waited behind the hung
//! mount (19 s) and health stopped for 20 s.
//!
//! `cargo run --release -p bigskies-benches --example hung_device_latency [-- SAMPLES]`
//! (PostgreSQL and Mosquitto through the provisioning ladder of `bigskies-scenarios`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alpaca_simulator::app::Simulator;
use anyhow::Context as _;
use bigskies_alpaca::types::DeviceType;
use bigskies_ascom::store::Store;
use bigskies_ascom::{AscomConfig, AscomEngine, Role};
use bigskies_benches::fleet::sim_config;
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
use serde_json::{Value, json};
use tokio::sync::mpsc::Receiver;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);
const HUNG_REQUESTS: usize = 300;

struct Client {
    bus: Bus,
    topics: Topics,
    token: String,
    reply_topic: String,
    replies: Receiver<Message>,
    next: AtomicU64,
}

impl Client {
    async fn send(&self, op: &str, body: Value) -> anyhow::Result<String> {
        let cid = format!("h{}", self.next.fetch_add(1, Ordering::Relaxed));
        let env = Envelope::new(MessageType::Request, "bench", body)
            .with_correlation_id(cid.clone())
            .with_reply_to(self.reply_topic.clone())
            .with_token(self.token.clone());
        let (action, resource) = op.split_once('/').context("op is action/resource")?;
        self.bus
            .publish(
                &self.topics.request("telescope", action, resource),
                env.to_bytes(),
                false,
            )
            .await?;
        Ok(cid)
    }

    /// Send and wait for the reply to this request; replies to others are counted in `other`.
    async fn request(
        &mut self,
        op: &str,
        body: Value,
        other: &mut Vec<Value>,
    ) -> anyhow::Result<Value> {
        let cid = self.send(op, body).await?;
        loop {
            let msg = tokio::time::timeout(WAIT, self.replies.recv())
                .await
                .with_context(|| format!("no reply to {op} within {WAIT:?}"))?
                .context("reply channel closed")?;
            let v: Value = serde_json::from_slice(&msg.payload)?;
            if v["correlation_id"] == cid.as_str() {
                anyhow::ensure!(v["success"] == true, "{op}: {v}");
                return Ok(v);
            }
            other.push(v);
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let samples: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let stop = CancellationToken::new();
    let p = provision::shared().await?;
    let db = p.fresh_database().await?;
    MIGRATOR.run(db.pool()).await?;
    let pool = db.pool().clone();
    let (host, port) = (p.mqtt.host.clone(), p.mqtt.port);
    let topics = Topics::new(provision::unique_topic_root());
    let sim = Simulator::bind(sim_config("hung-bench")).await?.spawn();

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
        .await?;
    let token = engines
        .tokens
        .issue(Subject {
            user_id: user.id,
            username: "observer",
            email: "observer@example.org",
            roles: vec![],
        })?
        .token;
    let engine = AscomEngine::build(
        AscomConfig {
            discovery: None,
            servers: vec![sim.base_url()],
            ..AscomConfig::default()
        },
        Some(Store::new(pool.clone())),
    )
    .await?;
    let mount = engine
        .discover()
        .await?
        .into_iter()
        .find(|d| d.device_type == DeviceType::Telescope)
        .context("the simulator has a mount")?;
    let scope: Uuid = sqlx::query_scalar(
        "INSERT INTO telescope_configurations (name, owner_id, owner_type, mount_type) \
         VALUES ('hung', $1, 'user', 'equatorial') RETURNING id",
    )
    .bind(user.id)
    .fetch_one(&pool)
    .await?;
    engine
        .assign(scope, Role::Telescope, &mount.unique_id)
        .await?;
    engine.connect(&mount.unique_id).await?;

    let coordinator = Arc::new(TelescopeCoordinator::new(
        pool,
        engine,
        TelescopeSettings::default(),
    ));
    let (bus, _task) = Bus::start(
        BusConfig::new(host.clone(), port, "hung-bench"),
        None,
        stop.clone(),
    );
    bus.wait_connected(WAIT).await?;
    let mut health = bus.subscribe(&topics.health("telescope"), 64).await?;
    let reply_topic = topics.client_reply("hung-bench");
    let replies = bus.subscribe(&reply_topic, 4096).await?;
    let launch = Launch {
        bus: BusConfig::new(host, port, "telescope"),
        runtime: RuntimeConfig {
            topics: topics.clone(),
            health_interval: Duration::from_secs(1),
            ..RuntimeConfig::default()
        },
        store: None,
        connect_timeout: WAIT,
        authenticator: Some(engines.authenticator().into_dyn()),
    };
    let bg = coordinator.clone();
    let bg_topics = topics.clone();
    tokio::spawn(launch_with(
        coordinator,
        launch,
        stop.clone(),
        move |b, s| bg.run_background(b, bg_topics, s),
    ));
    tokio::time::timeout(WAIT, health.recv())
        .await
        .context("the coordinator did not come up")?;
    let mut client = Client {
        bus,
        topics,
        token,
        reply_topic,
        replies,
        next: AtomicU64::new(0),
    };
    let mut other = Vec::new();
    let list = json!({});
    for _ in 0..20 {
        client
            .request("config/list", list.clone(), &mut other)
            .await?;
    }
    // The anchor: the same request with every device answering.
    let mut calm = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        client
            .request("config/list", list.clone(), &mut other)
            .await?;
        calm.push(started.elapsed());
    }

    // Hang the mount, then flood it.
    let fault_url = format!(
        "{}/simulator/v1/faults/telescope/{}",
        sim.base_url(),
        mount.device_number
    );
    let http = reqwest::Client::new();
    http.put(&fault_url)
        .json(&json!({"hang": true}))
        .send()
        .await?
        .error_for_status()?;
    // Health reports from now on: the longest gap between two (ms).
    let longest_gap = Arc::new(AtomicU64::new(0));
    let gap = longest_gap.clone();
    tokio::spawn(async move {
        let mut last = Instant::now();
        while let Some(_report) = health.recv().await {
            let ms = u64::try_from(last.elapsed().as_millis()).unwrap_or(u64::MAX);
            gap.fetch_max(ms, Ordering::Relaxed);
            last = Instant::now();
        }
    });
    for _ in 0..HUNG_REQUESTS {
        client
            .send("status/get", json!({"telescope_id": scope}))
            .await?;
    }
    let flooded = Instant::now();
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        client
            .request("config/list", list.clone(), &mut other)
            .await?;
        times.push(started.elapsed());
    }
    let measured_for = flooded.elapsed();
    // Stay hung for a few health intervals, so the health gap covers them.
    let hold = Duration::from_secs(5);
    if let Some(rest) = hold.checked_sub(flooded.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let refused_at_once = other
        .iter()
        .filter(|v| v["success"] == false && v["error_code"] == "unavailable")
        .count();

    http.delete(&fault_url).send().await?.error_for_status()?;
    let (p50, p99) = percentiles(&mut times);
    println!(
        "one hung mount, {HUNG_REQUESTS} status/get requests queued on it; \
         {samples} config/list requests one at a time over {measured_for:.1?}"
    );
    let (c50, c99) = percentiles(&mut calm);
    println!("config/list, mount hung:    median {p50:.2?}, p99 {p99:.2?}");
    println!("config/list, all answering: median {c50:.2?}, p99 {c99:.2?} (anchor, same run)");
    println!(
        "status/get answered `unavailable` while measuring: {refused_at_once} of {HUNG_REQUESTS} \
         (other replies seen: {})",
        other.len()
    );
    println!(
        "longest gap between health reports (interval 1 s) over {:.1?} hung: {} ms",
        flooded.elapsed(),
        longest_gap.load(Ordering::Relaxed)
    );
    stop.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = sim.shutdown().await;
    let _ = db.cleanup().await;
    Ok(())
}
