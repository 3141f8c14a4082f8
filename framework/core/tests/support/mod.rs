//! Test plumbing: the provisioning ladder from `bigskies-scenarios`, one topic root per test,
//! a fresh database per test, a private broker that can be killed and restarted.
#![allow(dead_code, clippy::unwrap_used)]

pub mod echo;

use std::time::Duration;

use bigskies_core::bus::{Bus, BusConfig};
use bigskies_core::topics::Topics;
use bigskies_scenarios::provision::{self, MosquittoProcess, TestDatabase};
use tokio_util::sync::CancellationToken;

pub struct Env {
    pub host: String,
    pub port: u16,
    pub topics: Topics,
}

/// The shared broker and a topic root of this test's own.
pub async fn env() -> Env {
    init_logs();
    let p = provision::shared()
        .await
        .expect("provisioning PostgreSQL and Mosquitto");
    Env {
        host: p.mqtt.host.clone(),
        port: p.mqtt.port,
        topics: Topics::new(provision::unique_topic_root()),
    }
}

/// A database of this test's own, dropped afterwards.
pub async fn fresh_database() -> TestDatabase {
    let p = provision::shared()
        .await
        .expect("provisioning PostgreSQL and Mosquitto");
    p.fresh_database().await.expect("a fresh database")
}

/// A Mosquitto of this test's own, on a free port.
pub async fn private_broker() -> MosquittoProcess {
    init_logs();
    MosquittoProcess::start()
        .await
        .expect("a private mosquitto (apt-get install mosquitto)")
}

pub fn bus_config(host: &str, port: u16, prefix: &str) -> BusConfig {
    let mut c = BusConfig::new(host, port, prefix);
    c.backoff_max = Duration::from_secs(1);
    c.op_timeout = Duration::from_secs(5);
    c
}

/// A test client on the bus (it lives until the test process ends).
pub async fn client(host: &str, port: u16) -> Bus {
    let (bus, _task) = Bus::start(
        bus_config(host, port, "test-client"),
        None,
        CancellationToken::new(),
    );
    bus.wait_connected(Duration::from_secs(10))
        .await
        .expect("test client connects");
    bus
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
