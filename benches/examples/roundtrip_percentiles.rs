//! Median and p99 of the runtime round trip next to the bare rumqttc echo, interleaved in one run.
//!
//! `cargo run --release -p bigskies-benches --example roundtrip_percentiles [-- SAMPLES]`

use std::sync::Arc;
use std::time::Duration;

use bigskies_benches::{Requester, bare_echo, broker, echo::Echo, percentiles};
use bigskies_core::runtime::{Launch, RuntimeConfig, launch};
use bigskies_core::topics::Topics;
use tokio_util::sync::CancellationToken;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let samples: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5000);
    let (host, port) = broker();
    let stop = CancellationToken::new();
    let root = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let topics = Topics::new(root.clone());

    let (bare_req, bare_rep) = (format!("{root}/bare/request"), format!("{root}/bare/reply"));
    bare_echo(&host, port, &bare_req, &bare_rep, stop.clone()).await?;
    let mut bare = Requester::connect(&host, port, &bare_req, &bare_rep, stop.clone()).await?;
    let launch_cfg = Launch {
        bus: bigskies_core::bus::BusConfig::new(host.clone(), port, "echo"),
        runtime: RuntimeConfig {
            topics: topics.clone(),
            ..RuntimeConfig::default()
        },
        store: None,
        connect_timeout: Duration::from_secs(10),
        authenticator: None,
    };
    tokio::spawn(launch(Arc::new(Echo), launch_cfg, stop.clone()));
    let mut runtime = Requester::connect(
        &host,
        port,
        &topics.request("echo", "echo", "say"),
        &topics.response("echo", "echo", "say"),
        stop.clone(),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let payload = br#"{"text":"ping","correlation_id":"bench"}"#;
    for _ in 0..200 {
        bare.round_trip(payload).await?;
        runtime.round_trip(payload).await?;
    }
    let (mut b, mut r) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    for _ in 0..samples {
        b.push(bare.round_trip(payload).await?);
        r.push(runtime.round_trip(payload).await?);
    }
    let (b50, b99) = percentiles(&mut b);
    let (r50, r99) = percentiles(&mut r);
    println!("broker {host}:{port}, {samples} samples each, interleaved");
    println!("{:<22} {:>12} {:>12}", "path", "median", "p99");
    println!("{:<22} {:>12.1?} {:>12.1?}", "bare rumqttc echo", b50, b99);
    println!(
        "{:<22} {:>12.1?} {:>12.1?}",
        "coordinator runtime", r50, r99
    );
    println!(
        "runtime overhead: median {:+.1}%, p99 {:+.1}%",
        (r50.as_secs_f64() / b50.as_secs_f64() - 1.0) * 100.0,
        (r99.as_secs_f64() / b99.as_secs_f64() - 1.0) * 100.0
    );
    stop.cancel();
    Ok(())
}
