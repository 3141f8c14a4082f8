//! The health path at 10, 100 and 1000 devices or coordinators:
//!
//! * `health_path_ascom/cycle_<n>_devices`: one ASCOM engine health cycle (a `Connected` read
//!   of every device, `health_concurrency` at once) over `n` connected devices of one Alpaca
//!   simulator, spread over the six device types (engine and simulator only, no MQTT);
//! * `health_path_ingest/<n>_coordinators`: one health round of `n` coordinators — one
//!   health envelope from each, published over four connections through real Mosquitto with
//!   at most 500 published and not yet counted (a burst of 1000 overflows Mosquitto's
//!   per-client queue) — until the message coordinator has counted all `n` (a lost message
//!   fails the bench). The steady state is measured: the `n` coordinators are made known to
//!   the monitor by one round before the measurement.
//!
//! Median and p99 of every measured iteration are printed after each bench. The pieces are
//! [`bigskies_benches::fleet`] and [`bigskies_benches::ingest`] (shared with `slew_path` and
//! `health_ingest`). Each bench warms up for 1 s and measures for 5 s, so the whole run stays
//! well under three minutes, setup included.
//!
//! `BIGSKIES_PROVISION=process cargo bench -p bigskies-benches --bench health_path` (the broker from
//! the provisioning ladder; `process` starts a private one with TCP_NODELAY and a per-client
//! queue of 20,000, the machine's Mosquitto drops a burst beyond its default 1000).

use std::sync::Arc;
use std::time::Duration;

use bigskies_benches::fleet::{Samples, bench_health_cycle};
use bigskies_benches::ingest::{IngestRig, Pacing};
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

const SIZES: [usize; 3] = [10, 100, 1000];
const PUBLISHERS: usize = 4;
/// Messages published and not yet counted, at most: under Mosquitto's per-client queue
/// (`max_queued_messages`, 1000 by default), which a burst of 1000 overflows.
const WINDOW: usize = 500;
/// The window of the first round, while the coordinators are new to the monitor.
const REGISTER_WINDOW: usize = 100;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn quick<M: criterion::measurement::Measurement>(group: &mut BenchmarkGroup<'_, M>) {
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.sample_size(20);
}

fn ascom_cycles(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("health_path_ascom");
    quick(&mut group);
    for n in SIZES {
        group.throughput(Throughput::Elements(n as u64));
        bench_health_cycle(&mut group, &rt, n);
    }
    group.finish();
}

fn ingest_rounds(c: &mut Criterion) {
    let rt = runtime();
    let provisioned = rt
        .block_on(bigskies_scenarios::provision::shared())
        .expect("provisioning a broker");
    let (host, port) = (provisioned.mqtt.host.clone(), provisioned.mqtt.port);
    let stop = CancellationToken::new();
    let rig = Arc::new(
        rt.block_on(IngestRig::start(&host, port, PUBLISHERS, stop.clone()))
            .expect("message coordinator and publishers"),
    );
    let mut group = c.benchmark_group("health_path_ingest");
    quick(&mut group);
    for n in SIZES {
        // One envelope per coordinator, as fast as the coordinator takes them in.
        let round = rig.health_batches(n, n, &format!("coord{n}"));
        // First contact outside the measurement: every first report is a transition, and each
        // transition republishes the system summary (which the ingest connection receives
        // too), so the first round is slower and needs a narrower window.
        rt.block_on(rig.send_and_count(&round, Pacing::Window(REGISTER_WINDOW)));
        let samples = Samples::default();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("{n}_coordinators"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (rig, round, samples) = (rig.clone(), round.clone(), samples.clone());
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let took = rig.send_and_count(&round, Pacing::Window(WINDOW)).await;
                        samples.push(took);
                        total += took;
                    }
                    total
                }
            })
        });
        samples.report(&format!("health ingest, {n} coordinators"));
    }
    group.finish();
    stop.cancel();
}

criterion_group!(benches, ascom_cycles, ingest_rounds);
criterion_main!(benches);
