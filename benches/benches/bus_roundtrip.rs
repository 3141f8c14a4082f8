//! Request → reply round trip through the coordinator runtime and the broker, next to a bare
//! rumqttc publish-and-echo round trip on the same broker in the same run.
//!
//! `cargo bench -p bigskies-benches --bench bus_roundtrip` (broker from BIGSKIES_MQTT_URL or
//! 127.0.0.1:1883). Percentiles: `cargo run --release -p bigskies-benches --example roundtrip_percentiles`.

use std::sync::Arc;
use std::time::Duration;

use bigskies_benches::{Requester, bare_echo, broker, echo::Echo};
use bigskies_core::runtime::{Launch, RuntimeConfig, launch};
use bigskies_core::topics::Topics;
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

fn round_trips(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (host, port) = broker();
    let stop = CancellationToken::new();
    let root = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let topics = Topics::new(root.clone());

    let (bare, runtime) = rt.block_on(async {
        let bare_req = format!("{root}/bare/request");
        let bare_rep = format!("{root}/bare/reply");
        bare_echo(&host, port, &bare_req, &bare_rep, stop.clone())
            .await
            .expect("bare echo");
        let bare = Requester::connect(&host, port, &bare_req, &bare_rep, stop.clone())
            .await
            .expect("requester");

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
        let runtime = Requester::connect(
            &host,
            port,
            &topics.request("echo", "echo", "say"),
            &topics.response("echo", "echo", "say"),
            stop.clone(),
        )
        .await
        .expect("requester");
        // Let the coordinator subscribe before measuring.
        tokio::time::sleep(Duration::from_millis(500)).await;
        (Arc::new(Mutex::new(bare)), Arc::new(Mutex::new(runtime)))
    });
    let payload = br#"{"text":"ping","correlation_id":"bench"}"#;

    let mut group = c.benchmark_group("mqtt_round_trip");
    group.bench_function("bare_rumqttc_echo", |b| {
        b.to_async(&rt).iter(|| {
            let bare = bare.clone();
            async move {
                bare.lock()
                    .await
                    .round_trip(payload)
                    .await
                    .expect("round trip")
            }
        })
    });
    group.bench_function("coordinator_runtime", |b| {
        b.to_async(&rt).iter(|| {
            let runtime = runtime.clone();
            async move {
                runtime
                    .lock()
                    .await
                    .round_trip(payload)
                    .await
                    .expect("round trip")
            }
        })
    });
    group.finish();
    stop.cancel();
}

criterion_group!(benches, round_trips);
criterion_main!(benches);
