//! The message coordinator's health ingest under load (`health_ingest` and `health_path` share
//! it): a running message coordinator, publisher connections, pre-serialised health envelopes
//! of simulated coordinators, and one timed batch (published, then counted by the coordinator).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bigskies_coordinators::message::{MessageCoordinator, Settings};
use bigskies_core::bus::{Bus, BusConfig};
use bigskies_core::envelope::{Envelope, MessageType};
use bigskies_core::health::HealthReport;
use bigskies_core::runtime::{Launch, RuntimeConfig, launch_with};
use bigskies_core::topics::Topics;
use tokio_util::sync::CancellationToken;

/// Health messages per publisher connection: (topic, payload).
pub type Batches = Arc<Vec<Vec<(String, Vec<u8>)>>>;

/// How [`IngestRig::send_and_count`] sends a batch. An unpaced burst of more than about a
/// thousand messages overflows Mosquitto's per-client queue (`max_queued_messages`, 1000 by
/// default) in front of the message coordinator, and the broker drops what does not fit.
#[derive(Clone, Copy, Debug)]
pub enum Pacing {
    /// Each publisher sends its share in 100 equal steps over this time (a fixed rate).
    Spread(Duration),
    /// As fast as the coordinator takes them in, with at most this many messages published
    /// and not yet counted (flow control; no artificial floor on the time).
    Window(usize),
}

/// A message coordinator on its own topic root and the connections that load it.
pub struct IngestRig {
    pub mc: Arc<MessageCoordinator>,
    pub topics: Topics,
    publishers: Vec<Bus>,
}

impl IngestRig {
    /// Start a message coordinator and `publishers` publisher connections on the broker at
    /// `host:port`, and wait until the coordinator counts health messages. History is written
    /// when `DATABASE_URL` names a database (migrations are applied to it).
    pub async fn start(
        host: &str,
        port: u16,
        publishers: usize,
        stop: CancellationToken,
    ) -> anyhow::Result<Self> {
        let topics = Topics::new(format!(
            "bench-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        let pool = match std::env::var("DATABASE_URL") {
            Ok(url) => {
                let pool = sqlx::PgPool::connect(&url)
                    .await
                    .context("DATABASE_URL connects")?;
                bigskies_core::config::MIGRATOR
                    .run(&pool)
                    .await
                    .context("migrations")?;
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
        let mut ingest = BusConfig::new(host, port, "message-ingest");
        ingest.channel_capacity = 4096;
        let mc = Arc::new(MessageCoordinator::new(Settings::default(), pool, ingest));
        let w = mc.clone();
        let t = topics.clone();
        let launch = Launch {
            bus: BusConfig::new(host, port, "message"),
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
        let mut buses = Vec::new();
        for i in 0..publishers.max(1) {
            let mut cfg = BusConfig::new(host, port, format!("load-{i}"));
            cfg.channel_capacity = 4096;
            let (bus, _task) = Bus::start(cfg, None, stop.clone());
            bus.wait_connected(Duration::from_secs(10))
                .await
                .context("publisher connects")?;
            buses.push(bus);
        }
        let rig = Self {
            mc,
            topics,
            publishers: buses,
        };
        // Until the coordinator has subscribed and counts what it receives.
        let warmup = rig.health_batches(1, 1, "warmup");
        let (t, p) = &warmup[0][0];
        let deadline = Instant::now() + Duration::from_secs(10);
        while rig.mc.stats().health.load(Ordering::Relaxed) == 0 {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the message coordinator counted no health message within 10 s"
            );
            rig.publishers[0]
                .publish(t, p.clone(), false)
                .await
                .context("warm-up publish")?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(rig)
    }

    /// `total` health envelopes of `coordinators` simulated coordinators named
    /// `<prefix>-<i>`, split evenly over the publisher connections, pre-serialised so the
    /// publishers measure the path, not serde. The names are made known to the message
    /// coordinator (it ignores health under names it does not know).
    pub fn health_batches(&self, total: usize, coordinators: usize, prefix: &str) -> Batches {
        let publishers = self.publishers.len();
        let coordinators = coordinators.max(1);
        let mut settings = self.mc.settings();
        settings
            .also_known
            .extend((0..coordinators).map(|i| format!("{prefix}-{i}")));
        self.mc.set_settings(settings);
        let mut batches = vec![Vec::new(); publishers];
        for i in 0..total {
            let name = format!("{prefix}-{}", i % coordinators);
            let report = HealthReport::healthy(name.clone(), "ok")
                .with_detail("health_interval_seconds", 30.0)
                .with_detail("seq", i as u64);
            let payload = serde_json::to_value(&report).unwrap_or_default();
            let env = Envelope::new(MessageType::Status, format!("coordinator:{name}"), payload);
            batches[i % publishers].push((self.topics.health(&name), env.to_bytes()));
        }
        Arc::new(batches)
    }

    /// Publish every message of `batches` (one task per publisher connection) and wait until
    /// the coordinator has counted them all; returns the time from the first publish to the
    /// last count. How the messages go out is `pacing` (see [`Pacing`]). Panics when messages
    /// are lost (not counted within 60 s).
    pub async fn send_and_count(&self, batches: &Batches, pacing: Pacing) -> Duration {
        let total: usize = batches.iter().map(Vec::len).sum();
        let before = self.mc.stats().health.load(Ordering::Relaxed);
        let target = before + total as u64;
        let published = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut sends = Vec::new();
        for (i, bus) in self.publishers.iter().cloned().enumerate() {
            let (batches, mc, published) = (batches.clone(), self.mc.clone(), published.clone());
            sends.push(tokio::spawn(async move {
                let batch = &batches[i];
                if batch.is_empty() {
                    return;
                }
                let (steps, mut tick) = match pacing {
                    Pacing::Spread(over) => (
                        100,
                        Some(tokio::time::interval(
                            (over / 100).max(Duration::from_micros(1)),
                        )),
                    ),
                    // Chunks small enough that every publisher fits in the window at once.
                    Pacing::Window(w) => (batch.len().div_ceil((w / 8).max(1)), None),
                };
                for chunk in batch.chunks(batch.len().div_ceil(steps)) {
                    if let Some(t) = tick.as_mut() {
                        t.tick().await;
                    }
                    if let Pacing::Window(w) = pacing {
                        let n = chunk.len() as u64;
                        loop {
                            let counted = mc.stats().health.load(Ordering::Relaxed) - before;
                            let out = published.load(Ordering::Relaxed).saturating_sub(counted);
                            if out + n <= w as u64 {
                                break;
                            }
                            tokio::time::sleep(Duration::from_micros(100)).await;
                        }
                        published.fetch_add(n, Ordering::Relaxed);
                    }
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
            let n = self.mc.stats().health.load(Ordering::Relaxed);
            if n >= target {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "lost {} of {total} health messages",
                target - n
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        started.elapsed()
    }
}
