//! Alpaca server throughput: `GET /api/v1/telescope/0/rightascension` over 4 keep-alive
//! connections against the in-process simulator (real sockets, loopback).
//!
//! `cargo bench -p bigskies-benches --bench alpaca_server` reports requests per second as
//! "elements/s". For p50/p99 at 4 connections use the load generator:
//! `cargo run --release -p bigskies-benches --example alpaca_load -- --seconds 10`.

#[path = "support/raw_http.rs"]
#[allow(dead_code, reason = "percentiles is for the load example")]
mod raw_http;

use std::sync::Arc;
use std::time::{Duration, Instant};

use alpaca_simulator::app::Simulator;
use alpaca_simulator::config::SimulatorConfig;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use raw_http::RawConn;
use tokio::sync::Mutex;

const CONNECTIONS: u64 = 4;
const PATH: &str = "/api/v1/telescope/0/rightascension?ClientID=1&ClientTransactionID=1";

fn throughput(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (sim, conns) = rt.block_on(async {
        let mut cfg = SimulatorConfig::default();
        cfg.server.bind = "127.0.0.1".parse().expect("address");
        cfg.server.http_port = 0;
        cfg.server.discovery = false;
        cfg.devices.connect_delay = 0.0;
        let sim = Simulator::bind(cfg).await.expect("simulator binds").spawn();
        let mut conns = Vec::new();
        for _ in 0..CONNECTIONS {
            conns.push(Arc::new(Mutex::new(
                RawConn::connect(sim.http_addr, PATH)
                    .await
                    .expect("connect"),
            )));
        }
        // Connected, so the member answers with a value rather than NotConnected.
        let client = bigskies_alpaca::client::AlpacaClient::build(sim.base_url()).expect("client");
        bigskies_alpaca::devices::Device::set_connected(&client.telescope(0), true)
            .await
            .expect("connects");
        (sim, conns)
    });

    let mut group = c.benchmark_group("alpaca_server");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("get_rightascension_4_keepalive_connections", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let conns = conns.clone();
            async move {
                let start = Instant::now();
                let mut tasks = Vec::new();
                for (i, conn) in conns.into_iter().enumerate() {
                    let share = iters / CONNECTIONS + u64::from((i as u64) < iters % CONNECTIONS);
                    tasks.push(tokio::spawn(async move {
                        let mut conn = conn.lock().await;
                        for _ in 0..share {
                            let status = conn.get().await.expect("reply");
                            assert_eq!(status, 200);
                        }
                    }));
                }
                for t in tasks {
                    t.await.expect("load task");
                }
                start.elapsed()
            }
        });
    });
    group.finish();
    drop(sim);
}

criterion_group!(benches, throughput);
criterion_main!(benches);
