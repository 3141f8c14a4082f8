//! Load generator for the Alpaca simulator: N keep-alive connections each repeating one GET
//! for a fixed time; prints requests/s and latency p50/p99/max.
//!
//! In-process (simulator and load share this process and its runtime):
//!   `cargo run --release -p bigskies-benches --example alpaca_load -- --seconds 10`
//! Against a separate simulator process (e.g. `alpaca-simulator --port 11111`):
//!   `cargo run --release -p bigskies-benches --example alpaca_load -- --addr 127.0.0.1:11111`
//!
//! Flags: `--connections N` (4), `--seconds S` (5), `--addr HOST:PORT`, `--path PATH`
//! (`/api/v1/telescope/0/rightascension`), `--threads T` (2, runtime workers).

#[path = "../benches/support/raw_http.rs"]
mod raw_http;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use raw_http::{RawConn, percentiles};

struct Args {
    connections: usize,
    seconds: f64,
    addr: Option<SocketAddr>,
    path: String,
    threads: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        connections: 4,
        seconds: 5.0,
        addr: None,
        path: "/api/v1/telescope/0/rightascension".into(),
        threads: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--connections" => a.connections = value()?.parse()?,
            "--seconds" => a.seconds = value()?.parse()?,
            "--addr" => a.addr = Some(value()?.parse()?),
            "--path" => a.path = value()?,
            "--threads" => a.threads = value()?.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    if a.connections == 0 || !(a.seconds > 0.0 && a.seconds <= 600.0) {
        bail!("need at least one connection and 0 < seconds ≤ 600");
    }
    Ok(a)
}

fn main() -> anyhow::Result<()> {
    let a = args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (addr, _sim) = match a.addr {
            Some(addr) => (addr, None),
            None => {
                let mut cfg = alpaca_simulator::config::SimulatorConfig::default();
                cfg.server.bind = "127.0.0.1".parse()?;
                cfg.server.http_port = 0;
                cfg.server.discovery = false;
                let sim = alpaca_simulator::app::Simulator::bind(cfg).await?.spawn();
                (sim.http_addr, Some(sim))
            }
        };
        // Connect the target device so the member answers with a value.
        if let Some(device) = a.path.strip_prefix("/api/v1/").and_then(|p| p.rsplit_once('/')).map(|(d, _)| d.to_owned()) {
            let client = reqwest::Client::new();
            client
                .put(format!("http://{addr}/api/v1/{device}/connected"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("Connected=true")
                .send()
                .await
                .context("connecting the device")?;
        }
        let deadline = Instant::now() + Duration::from_secs_f64(a.seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..a.connections {
            let path = a.path.clone();
            tasks.push(tokio::spawn(async move {
                let mut conn = RawConn::connect(addr, &path).await?;
                let mut samples = Vec::with_capacity(200_000);
                let mut errors = 0u64;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    if conn.get().await? != 200 {
                        errors += 1;
                    }
                    samples.push(t.elapsed().as_nanos() as u64);
                }
                anyhow::Ok((samples, errors))
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (s, e) = t.await??;
            all.extend(s);
            errors += e;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let n = all.len();
        let (p50, p99, max) = percentiles(&mut all);
        println!(
            "{n} requests over {} connections in {elapsed:.2} s: {:.0} req/s; latency p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; non-200: {errors}",
            a.connections,
            n as f64 / elapsed,
            p50 as f64 / 1e6,
            p99 as f64 / 1e6,
            max as f64 / 1e6
        );
        anyhow::Ok(())
    })
}
