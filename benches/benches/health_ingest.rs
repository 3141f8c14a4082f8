//! Message coordinator health ingest: how many health messages per second it takes in, and
//! that none is lost. Goal: 10,000 per second.
//!
//! Four publisher connections send health envelopes of 50 simulated coordinators, 10,000 in
//! one second (the goal rate); an iteration ends when the message coordinator has counted
//! every one (an iteration that loses messages panics with the count), so a result near one
//! second per iteration means the goal rate is met without loss. History is written when
//! `DATABASE_URL` names a database (migrations are applied to it). The rig is
//! [`bigskies_benches::ingest`], shared with `health_path`.
//!
//! `BIGSKIES_PROVISION=process cargo bench -p bigskies-benches --bench health_ingest` (the broker from
//! the provisioning ladder; `process` starts a private one with TCP_NODELAY and a per-client
//! queue of 20,000, the machine's Mosquitto drops a burst beyond its default 1000).

use std::sync::Arc;
use std::time::Duration;

use bigskies_benches::ingest::{IngestRig, Pacing};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio_util::sync::CancellationToken;

const BATCH: usize = 10_000;
const PUBLISHERS: usize = 4;
const SIMULATED: usize = 50;

fn ingest(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let provisioned = rt
        .block_on(bigskies_scenarios::provision::shared())
        .expect("provisioning a broker");
    let (host, port) = (provisioned.mqtt.host.clone(), provisioned.mqtt.port);
    let stop = CancellationToken::new();
    let rig = Arc::new(
        rt.block_on(IngestRig::start(&host, port, PUBLISHERS, stop.clone()))
            .expect("message coordinator and publishers"),
    );
    let batches = rig.health_batches(BATCH, SIMULATED, "sim");

    let mut group = c.benchmark_group("message_health_ingest");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("10k_health_messages", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (rig, batches) = (rig.clone(), batches.clone());
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Paced at the goal rate: BATCH in one second over all publishers.
                    total += rig
                        .send_and_count(&batches, Pacing::Spread(Duration::from_secs(1)))
                        .await;
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
