//! A login flood against an in-process security coordinator, printing resident memory before,
//! at peak and after (issue 20, item 2):
//!
//! ```text
//! cargo run --release -p bigskies-benches --example login_flood_rss
//! ```
//!
//! Uses the local PostgreSQL and Mosquitto through the scenario provisioning (its own database
//! and topic root). 500 failed logins (a real user with wrong passwords, and unknown users) go
//! out over MQTT with 64 in flight, twice: first with the login rate limits lifted, so every
//! attempt reaches the argon2 pool and the pool alone bounds memory; then with the default
//! limits. Every reply is counted by kind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bigskies_coordinators::security::SecurityCoordinator;
use bigskies_core::bus::{Bus, BusConfig};
use bigskies_core::config::MIGRATOR;
use bigskies_core::runtime::{Launch, RuntimeConfig, launch};
use bigskies_core::topics::Topics;
use bigskies_scenarios::provision;
use bigskies_security::hashpool::HashPool;
use bigskies_security::ratelimit::{LoginLimits, Rate};
use bigskies_security::{Secret, SecurityEngines, SecuritySettings};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, oneshot};
use tokio_util::sync::CancellationToken;

const LOGINS: usize = 500;
const IN_FLIGHT: usize = 64;
const SECRET: &str = "login-flood-signing-secret-0123456789abcdef";
const ADMIN_PASSWORD: &str = "Flood-operator-passphrase!";

type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let p = provision::shared()
        .await
        .context("provisioning PostgreSQL and Mosquitto")?;
    let db = p.fresh_database().await.context("a fresh database")?;
    MIGRATOR.run(db.pool()).await?;
    let topics = Topics::new(provision::unique_topic_root());
    let (host, port) = (p.mqtt.host.clone(), p.mqtt.port);
    let stop = CancellationToken::new();

    let engines = SecurityEngines::new(
        db.pool().clone(),
        SecuritySettings::default(),
        &Secret::new(SECRET),
    );
    let security = Arc::new(
        SecurityCoordinator::build(engines.clone(), Some(&Secret::new(ADMIN_PASSWORD))).await?,
    );
    let auth = security.authenticator();
    let runtime = RuntimeConfig {
        topics: topics.clone(),
        // Requests at once in the coordinator: at least the flood's, so the pool is what bounds.
        concurrency: IN_FLIGHT,
        ..RuntimeConfig::default()
    };
    tokio::spawn(launch(
        security,
        Launch {
            bus: BusConfig::new(&host, port, "flood-security"),
            runtime,
            store: None,
            connect_timeout: Duration::from_secs(10),
            authenticator: Some(auth),
        },
        stop.clone(),
    ));

    let (client, _task) = Bus::start(
        BusConfig::new(&host, port, "flood-client"),
        None,
        stop.clone(),
    );
    client.wait_connected(Duration::from_secs(10)).await?;
    let waiting: Waiting = Arc::default();
    let mut replies = client
        .subscribe(&format!("{}/client/+/reply", topics.root()), 1024)
        .await?;
    let w = waiting.clone();
    tokio::spawn(async move {
        while let Some(msg) = replies.recv().await {
            let Ok(v) = serde_json::from_slice::<Value>(&msg.payload) else {
                continue;
            };
            let cid = v["correlation_id"].as_str().unwrap_or_default().to_owned();
            if let Some(tx) = w.lock().ok().and_then(|mut m| m.remove(&cid)) {
                let _ = tx.send(v);
            }
        }
    });
    // Let the coordinator come up (its first login creates the dummy hash).
    tokio::time::sleep(Duration::from_secs(2)).await;

    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let p2 = peak.clone();
    let sampling = stop.child_token();
    let s2 = sampling.clone();
    tokio::spawn(async move {
        while !s2.is_cancelled() {
            p2.fetch_max(
                bigskies_benches::resident_kib(),
                std::sync::atomic::Ordering::Relaxed,
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });

    let idle = bigskies_benches::resident_kib();
    println!(
        "cores: {}, hashing pool: {:?}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        HashPool::global().stats()
    );
    println!("idle RSS: {:.1} MiB", mib(idle));

    let unlimited = Rate {
        burst: u32::MAX / 2,
        per_minute: u32::MAX / 2,
    };
    let phases = [
        (
            "rate limits lifted (the hashing pool alone)",
            LoginLimits {
                per_source: unlimited,
                per_user: unlimited,
                global: unlimited,
            },
        ),
        ("default rate limits", LoginLimits::default()),
    ];
    for (round, (name, limits)) in phases.into_iter().enumerate() {
        engines.settings.replace(SecuritySettings {
            login_limits: limits,
            ..SecuritySettings::default()
        });
        let started = Instant::now();
        let gate = Arc::new(Semaphore::new(IN_FLIGHT));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..LOGINS {
            let permit = gate.clone().acquire_owned().await?;
            let (client, topics, waiting) = (client.clone(), topics.clone(), waiting.clone());
            tasks.spawn(async move {
                let _permit = permit;
                let cid = format!("r{round}-{i}");
                let (tx, rx) = oneshot::channel();
                if let Ok(mut m) = waiting.lock() {
                    m.insert(cid.clone(), tx);
                }
                let user = if i % 2 == 0 { "admin" } else { "nobody" };
                let body = json!({
                    "username": user,
                    "password": format!("wrong guess {i}"),
                    "correlation_id": cid,
                    "reply_to": format!("{}/client/flooder-{}/reply", topics.root(), i % IN_FLIGHT),
                });
                client
                    .publish(
                        &topics.request("security", "auth", "login"),
                        body.to_string(),
                        false,
                    )
                    .await
                    .ok()?;
                tokio::time::timeout(Duration::from_secs(60), rx)
                    .await
                    .ok()?
                    .ok()
            });
        }
        let mut kinds: HashMap<String, usize> = HashMap::new();
        while let Some(r) = tasks.join_next().await {
            let kind = match r.ok().flatten() {
                Some(v) => match v["error"].as_str() {
                    Some(e) if e.starts_with("too many logins from this client") => {
                        "refused: per client".into()
                    }
                    Some(e) if e.starts_with("too many logins for this user") => {
                        "refused: per user".into()
                    }
                    Some(e) if e.starts_with("too many logins on this server") => {
                        "refused: global".into()
                    }
                    Some(e) => e.to_owned(),
                    None => "other".into(),
                },
                None => "no reply".into(),
            };
            *kinds.entry(kind).or_default() += 1;
        }
        let peak_now = peak.load(std::sync::atomic::Ordering::Relaxed);
        println!(
            "{name}: {LOGINS} logins, {IN_FLIGHT} in flight, {:.1} s; replies: {kinds:?}",
            started.elapsed().as_secs_f64()
        );
        println!(
            "  peak RSS so far: {:.1} MiB ({:+.1} MiB above idle); pool: {:?}",
            mib(peak_now),
            mib(peak_now) - mib(idle),
            HashPool::global().stats()
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    sampling.cancel();
    let after = bigskies_benches::resident_kib();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "RSS: idle {:.1} MiB, peak {:.1} MiB ({:+.1} above idle), after {:.1} MiB ({:+.1} above idle)",
        mib(idle),
        mib(peak),
        mib(peak) - mib(idle),
        mib(after),
        mib(after) - mib(idle)
    );
    stop.cancel();
    drop(db);
    Ok(())
}
