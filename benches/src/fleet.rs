//! A fleet of simulated Alpaca devices and an ASCOM engine connected to all of them, and the
//! bench of one engine health cycle over the fleet (`slew_path` and `health_path` share it).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alpaca_simulator::app::{RunningSimulator, Simulator};
use alpaca_simulator::config::SimulatorConfig;
use anyhow::{Context as _, ensure};
use bigskies_ascom::{AscomConfig, AscomEngine};
use criterion::BenchmarkGroup;
use criterion::measurement::WallTime;
use tokio::runtime::Runtime;

use crate::percentiles;

/// A simulator on an ephemeral loopback port, without UDP discovery, whose devices connect at
/// once (no simulated connect delay). Every device type keeps its default count of one.
pub fn sim_config(seed: &str) -> SimulatorConfig {
    let mut c = SimulatorConfig::default();
    c.server.bind = std::net::Ipv4Addr::LOCALHOST.into();
    c.server.http_port = 0;
    c.server.discovery_port = 0;
    c.server.discovery = false;
    c.server.seed = Some(seed.to_owned());
    c.devices.connect_delay = 0.0;
    c
}

/// [`sim_config`] with `devices` devices spread over the six device types, as in
/// `alpaca-simulator/examples/hundred-devices.toml` (the first types get the remainder).
pub fn fleet_config(devices: usize, seed: &str) -> anyhow::Result<SimulatorConfig> {
    let mut c = sim_config(seed);
    let d = &mut c.devices;
    let mut types = [
        &mut d.telescope,
        &mut d.dome,
        &mut d.camera,
        &mut d.focuser,
        &mut d.filterwheel,
        &mut d.rotator,
    ];
    let n = types.len();
    for (i, t) in types.iter_mut().enumerate() {
        let count = devices / n + usize::from(i < devices % n);
        t.count = u32::try_from(count).context("device count")?;
    }
    Ok(c)
}

/// A running simulator and an engine that has discovered and connected every device on it.
pub struct Fleet {
    pub sim: RunningSimulator,
    pub engine: AscomEngine,
    pub devices: usize,
}

impl Fleet {
    /// Start a simulator with `devices` devices and connect the engine to each of them.
    pub async fn start(devices: usize, seed: &str) -> anyhow::Result<Self> {
        let sim = Simulator::bind(fleet_config(devices, seed)?)
            .await
            .context("simulator")?
            .spawn();
        let engine = AscomEngine::build(
            AscomConfig {
                discovery: None,
                servers: vec![sim.base_url()],
                ..AscomConfig::default()
            },
            None,
        )
        .await
        .context("engine")?;
        let found = engine.discover().await.context("discovery")?;
        ensure!(
            found.len() == devices,
            "simulator lists {} devices, expected {devices}",
            found.len()
        );
        for d in &found {
            engine
                .connect(&d.unique_id)
                .await
                .with_context(|| format!("connect {}", d.unique_id))?;
        }
        Ok(Self {
            sim,
            engine,
            devices,
        })
    }

    /// One health cycle; panics unless every device was checked and answered.
    pub async fn timed_cycle(&self) -> Duration {
        let started = Instant::now();
        let cycle = self.engine.health_cycle().await;
        let took = started.elapsed();
        assert_eq!(
            (cycle.checked, cycle.failed),
            (self.devices, 0),
            "every device answers"
        );
        took
    }

    pub async fn shutdown(self) {
        let _ = self.sim.shutdown().await;
    }
}

/// Samples of every measured iteration, for the median and p99 printed after a bench.
#[derive(Clone, Debug, Default)]
pub struct Samples(Arc<Mutex<Vec<Duration>>>);

impl Samples {
    pub fn push(&self, d: Duration) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(d);
    }

    /// Median and p99 in milliseconds, and the sample count.
    pub fn summary(&self) -> (f64, f64, usize) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (p50, p99) = percentiles(&mut s);
        (p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3, s.len())
    }

    /// Print `name: median .. ms, p99 .. ms over n samples` to stderr.
    pub fn report(&self, name: &str) {
        let (p50, p99, n) = self.summary();
        eprintln!("{name}: median {p50:.3} ms, p99 {p99:.3} ms over {n} samples");
    }
}

/// Bench `cycle_<n>_devices` in `group`: one engine health cycle over a fleet of `devices`
/// connected simulated devices (engine and simulator only, no MQTT). Prints median and p99.
pub fn bench_health_cycle(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, devices: usize) {
    let fleet = Arc::new(
        rt.block_on(Fleet::start(devices, &format!("health-{devices}")))
            .expect("a fleet of simulated devices"),
    );
    let samples = Samples::default();
    group.bench_function(format!("cycle_{devices}_devices"), |b| {
        b.to_async(rt).iter_custom(|iters| {
            let (fleet, samples) = (fleet.clone(), samples.clone());
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let took = fleet.timed_cycle().await;
                    samples.push(took);
                    total += took;
                }
                total
            }
        })
    });
    samples.report(&format!("health cycle, {devices} devices"));
    if let Ok(fleet) = Arc::try_unwrap(fleet) {
        rt.block_on(fleet.shutdown());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleets_spread_their_devices_over_the_six_types() {
        let c = fleet_config(100, "t").unwrap_or_default();
        let d = &c.devices;
        let counts = [
            d.telescope.count,
            d.dome.count,
            d.camera.count,
            d.focuser.count,
            d.filterwheel.count,
            d.rotator.count,
        ];
        assert_eq!(counts, [17, 17, 17, 17, 16, 16]);
        let c = fleet_config(10, "t").unwrap_or_default();
        assert_eq!(c.devices.telescope.count + c.devices.rotator.count, 3);
    }
}
