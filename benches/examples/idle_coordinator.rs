//! An idle coordinator process, for measuring resident memory:
//!
//! ```text
//! cargo build --release -p bigskies-benches --example idle_coordinator
//! target/release/examples/idle_coordinator & sleep 5; grep VmRSS /proc/$!/status; kill $!
//! ```

use std::sync::Arc;
use std::time::Duration;

use bigskies_benches::{broker, echo::Echo};
use bigskies_core::runtime::{Launch, RuntimeConfig, launch};
use tokio_util::sync::CancellationToken;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let (host, port) = broker();
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        s.cancel();
    });
    let cfg = Launch {
        bus: bigskies_core::bus::BusConfig::new(host, port, "idle"),
        runtime: RuntimeConfig::default(),
        store: None,
        connect_timeout: Duration::from_secs(10),
        authenticator: None,
    };
    launch(Arc::new(Echo), cfg, stop).await?;
    Ok(())
}
