//! Message coordinator health ingest: how many health messages per second it takes in, and
//! that none is lost. Goal: 10,000 per second.
//!
//! Four publisher connections send health envelopes of 50 simulated coordinators, 10,000 in
//! one second (the goal rate); an iteration ends when the message coordinator has counted
//! every one (an iteration that loses messages panics with the count), so a result near one
//! second per iteration means the goal rate is met without loss. History is written when
//! `DATABASE_URL` names a database (migrations are applied to it).
//!
//! `cargo bench -p bigskies-benches --bench health_ingest` (broker from BIGSKIES_MQTT_URL or
//! 127.0.0.1:1883).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bigskies_benches::broker;
use bigskies_coordinators::message::{MessageCoordinator, Settings};
use bigskies_core::bus::{Bus, BusConfig};
use bigskies_core::envelope::{Envelope, MessageType};
use bigskies_core::health::HealthReport;
use bigskies_core::runtime::{Launch, RuntimeConfig, launch_with};
use bigskies_core::topics::Topics;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio_util::sync::CancellationToken;

const BATCH: u64 = 10_000;
const PUBLISHERS: usize = 4;
const SIMULATED: usize = 50;

fn ingest(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (host, port) = broker();
    let stop = CancellationToken::new();
    let topics = Topics::new(format!(
        "bench-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ));

    let (mc, publishers, batches) = rt.block_on(async {
        let pool = match std::env::var("DATABASE_URL") {
            Ok(url) => {
                let pool = sqlx::PgPool::connect(&url)
                    .await
                    .expect("DATABASE_URL connects");
                bigskies_core::config::MIGRATOR
                    .run(&pool)
                    .await
                    .expect("migrations");
                Some(pool)
            }
            Err(_) => None,
        };
        eprintln!(
            "health history: {}",
            if pool.is_some() {
                "stored"
            } else {
                "off (no DATABASE_URL)"
            }
        );
        let mut ingest = BusConfig::new(host.clone(), port, "message-ingest");
        ingest.channel_capacity = 4096;
        let mc = Arc::new(MessageCoordinator::new(Settings::default(), pool, ingest));
        let w = mc.clone();
        let t = topics.clone();
        let launch = Launch {
            bus: BusConfig::new(host.clone(), port, "message"),
            runtime: RuntimeConfig {
                topics: topics.clone(),
                ..RuntimeConfig::default()
            },
            store: None,
            connect_timeout: Duration::from_secs(10),
            authenticator: None,
        };
        tokio::spawn(launch_with(
            mc.clone(),
            launch,
            stop.clone(),
            move |bus, s| w.run(bus, t, s),
        ));
        let mut publishers = Vec::new();
        for i in 0..PUBLISHERS {
            let mut cfg = BusConfig::new(host.clone(), port, format!("load-{i}"));
            cfg.channel_capacity = 4096;
            let (bus, _task) = Bus::start(cfg, None, stop.clone());
            bus.wait_connected(Duration::from_secs(10))
                .await
                .expect("publisher connects");
            publishers.push(bus);
        }
        // Pre-serialised messages, so the publishers measure the path, not serde.
        let per = (BATCH as usize) / PUBLISHERS;
        let batches: Vec<Vec<(String, Vec<u8>)>> = (0..PUBLISHERS)
            .map(|p| {
                (0..per)
                    .map(|i| {
                        let name = format!("sim-{}", (p * per + i) % SIMULATED);
                        let report = HealthReport::healthy(name.clone(), "ok")
                            .with_detail("health_interval_seconds", 30.0)
                            .with_detail("seq", i as u64);
                        let env = Envelope::new(
                            MessageType::Status,
                            format!("coordinator:{name}"),
                            serde_json::to_value(&report).expect("report serialises"),
                        );
                        (topics.health(&name), env.to_bytes())
                    })
                    .collect()
            })
            .collect();
        // Until the coordinator subscribes.
        let deadline = Instant::now() + Duration::from_secs(10);
        while mc.coordinators().iter().all(|c| c.reports == 0) && Instant::now() < deadline {
            let b = &publishers[0];
            let (t, p) = &batches[0][0];
            b.publish(t, p.clone(), false)
                .await
                .expect("warm-up publish");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (mc, publishers, Arc::new(batches))
    });

    let mut group = c.benchmark_group("message_health_ingest");
    group.throughput(Throughput::Elements(BATCH));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("10k_health_messages", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (mc, publishers, batches) = (mc.clone(), publishers.clone(), batches.clone());
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let before = mc.stats().health.load(Ordering::Relaxed);
                    let target = before + BATCH;
                    let started = Instant::now();
                    let mut sends = Vec::new();
                    for (bus, batch) in publishers.iter().cloned().zip(batches.iter().cloned()) {
                        sends.push(tokio::spawn(async move {
                            // Paced at the goal rate (BATCH per second over all publishers):
                            // an unpaced burst overflows the broker's per-client queue
                            // (Mosquitto's max_queued_messages, 1000 by default) and loses
                            // messages before they reach any consumer.
                            let mut tick = tokio::time::interval(Duration::from_millis(10));
                            for chunk in batch.chunks(batch.len().div_ceil(100)) {
                                tick.tick().await;
                                for (t, p) in chunk {
                                    bus.publish(t, p.clone(), false).await.expect("publish");
                                }
                            }
                        }));
                    }
                    for s in sends {
                        s.await.expect("publisher task");
                    }
                    let deadline = Instant::now() + Duration::from_secs(60);
                    loop {
                        let n = mc.stats().health.load(Ordering::Relaxed);
                        if n >= target {
                            break;
                        }
                        assert!(
                            Instant::now() < deadline,
                            "lost {} of {BATCH} health messages",
                            target - n
                        );
                        tokio::time::sleep(Duration::from_micros(200)).await;
                    }
                    total += started.elapsed();
                }
                total
            }
        });
    });
    group.finish();
    stop.cancel();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
