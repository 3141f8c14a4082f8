//! The soak: a whole deployment (all eight coordinators in this process, the simulator, its own
//! database and topic root) under a steady mixed load, reported per window so that drift shows:
//! requests, errors, median and p99 round trip, and this process's resident memory.
//!
//! `cargo run --release -p bigskies-benches --example soak [-- SECONDS [RATE]]`
//! (default 300 s at 300 requests/s; PostgreSQL and Mosquitto through the provisioning ladder
//! of `bigskies-scenarios`; `BIGSKIES_PROVISION=process` for a private Mosquitto with
//! TCP_NODELAY).
//!
//! The mix: reads of every coordinator (telescope configurations and sites, UI elements,
//! services, the message summary, pool statistics, plugins, users, token validation) and one
//! write (a telescope configuration's description). An error is a reply with `success: false`
//! or an `error_code`, or no reply within 10 s. The load generator runs in the same process, so the memory figure
//! includes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bigskies_benches::percentiles;
use bigskies_core::bus::Bus;
use bigskies_core::envelope::{Envelope, MessageType};
use bigskies_scenarios::provision;
use bigskies_scenarios::stack::{Stack, StackOptions};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

const REPLY_WAIT: Duration = Duration::from_secs(10);
const WINDOW: Duration = Duration::from_secs(30);

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

/// A client that matches replies to requests by correlation id.
#[derive(Clone)]
struct Client {
    bus: Bus,
    stack_root: String,
    reply_topic: String,
    pending: Pending,
}

impl Client {
    async fn connect(stack: &Stack, stop: CancellationToken) -> anyhow::Result<Self> {
        let mut cfg = stack.bus_config();
        cfg.client_id_prefix = "soak".into();
        let (bus, _task) = Bus::start(cfg, None, stop);
        bus.wait_connected(REPLY_WAIT).await?;
        let root = stack.topics.root().to_owned();
        let reply_topic = format!("{root}/client/soak/reply");
        let mut replies = bus.subscribe(&reply_topic, 16_384).await?;
        let pending: Pending = Arc::default();
        let demux = pending.clone();
        tokio::spawn(async move {
            while let Some(msg) = replies.recv().await {
                let Ok(v) = serde_json::from_slice::<Value>(&msg.payload) else {
                    continue;
                };
                let Some(cid) = v["correlation_id"].as_str() else {
                    continue;
                };
                let waiter = demux.lock().unwrap_or_else(|p| p.into_inner()).remove(cid);
                if let Some(tx) = waiter {
                    let _ = tx.send(v);
                }
            }
        });
        Ok(Self {
            bus,
            stack_root: root,
            reply_topic,
            pending,
        })
    }

    /// One request; the reply, or an error when none came in time.
    async fn request(&self, op: &str, body: Value, token: Option<&str>) -> anyhow::Result<Value> {
        let cid = uuid::Uuid::new_v4().simple().to_string();
        let mut env = Envelope::new(MessageType::Request, "soak", body)
            .with_correlation_id(cid.clone())
            .with_reply_to(self.reply_topic.clone());
        if let Some(t) = token {
            env = env.with_token(t);
        }
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(cid.clone(), tx);
        let topic = format!("{}/coordinator/{op}", self.stack_root);
        let sent = self.bus.publish(&topic, env.to_bytes(), false).await;
        let outcome = match sent {
            Ok(()) => tokio::time::timeout(REPLY_WAIT, rx)
                .await
                .map_err(|_| anyhow::anyhow!("no reply to {op} within {REPLY_WAIT:?}"))
                .and_then(|r| r.context("reply channel closed")),
            Err(e) => Err(e.into()),
        };
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&cid);
        outcome
    }
}

fn resident_mb() -> f64 {
    bigskies_benches::resident_kib() as f64 / 1024.0
}

#[derive(Default)]
struct Window {
    latencies: Vec<Duration>,
    errors: usize,
    first_error: Option<String>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(300);
    let rate: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(300);
    let stop = CancellationToken::new();
    let p = provision::shared().await?;
    let stack = Stack::prepare(p, "soak", StackOptions::default()).await?;
    let names = stack.coordinators(&[]);
    stack.start_all(&names).await?;
    let client = Client::connect(&stack, stop.clone()).await?;

    // Wait for the security coordinator, then log in as the administrator.
    let login = json!({"username": "admin", "password": stack.admin_password});
    let started = Instant::now();
    let token = loop {
        match client
            .request("security/auth/login", login.clone(), None)
            .await
        {
            Ok(v) if v["success"] == true => {
                break v["token"].as_str().context("a token")?.to_owned();
            }
            _ if started.elapsed() < Duration::from_secs(60) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => bail!("cannot log in: {other:?}"),
        }
    };
    let created = client
        .request(
            "telescope/config/create",
            json!({"name": "soak", "mount_type": "equatorial"}),
            Some(&token),
        )
        .await?;
    let scope = created["id"]
        .as_str()
        .or_else(|| created["config"]["id"].as_str())
        .with_context(|| format!("telescope id in {created}"))?
        .to_owned();

    // (operation, body) with weights: reads everywhere, one write.
    let mix: Vec<(&str, Value, u32)> = vec![
        ("telescope/config/list", json!({}), 20),
        ("telescope/config/get", json!({"id": scope}), 10),
        ("telescope/site/list", json!({}), 5),
        ("uielement/element/list", json!({}), 10),
        ("application/service/list", json!({}), 10),
        ("message/summary/get", json!({}), 10),
        ("datastore/pool/stats", json!({}), 5),
        ("plugin/plugin/list", json!({}), 5),
        ("security/user/list", json!({}), 5),
        ("security/auth/validate", json!({"token": token}), 10),
        (
            "telescope/config/update",
            json!({"id": scope, "description": "soaked"}),
            10,
        ),
    ];
    let wheel: Vec<usize> = mix
        .iter()
        .enumerate()
        .flat_map(|(i, (_, _, w))| std::iter::repeat_n(i, *w as usize))
        .collect();
    let mix = Arc::new(mix);

    println!(
        "soak: {seconds} s at {rate} requests/s against {} coordinators (root {}); \
         resident memory at start {:.0} MB",
        names.len(),
        stack.topics.root(),
        resident_mb()
    );
    println!(
        "{:>6} {:>8} {:>7} {:>10} {:>10} {:>9}",
        "t (s)", "requests", "errors", "median", "p99", "RSS (MB)"
    );
    let window = Arc::new(Mutex::new(Window::default()));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let begin = Instant::now();
    let mut next_report = begin + WINDOW;
    let (mut total, mut total_errors) = (0usize, 0usize);
    let mut all = Vec::new();
    let mut n = 0usize;
    let tasks = tokio_util::task::TaskTracker::new();
    while begin.elapsed() < Duration::from_secs(seconds) {
        ticker.tick().await;
        let (op, body, _) = mix[wheel[n % wheel.len()]].clone();
        n += 1;
        let (client, token, shared) = (client.clone(), token.clone(), window.clone());
        tasks.spawn(async move {
            let t0 = Instant::now();
            let outcome = client.request(op, body, Some(&token)).await;
            let took = t0.elapsed();
            let mut w = shared.lock().unwrap_or_else(|p| p.into_inner());
            w.latencies.push(took);
            let error = match outcome {
                // auth/validate answers `valid` (the Go shape) instead of `success`.
                Ok(v) if v["success"] != false && v.get("error_code").is_none() => None,
                Ok(v) => Some(format!("{op}: {v}")),
                Err(e) => Some(format!("{e:#}")),
            };
            if let Some(e) = error {
                w.errors += 1;
                w.first_error.get_or_insert(e);
            }
        });
        if Instant::now() >= next_report {
            next_report += WINDOW;
            let w = std::mem::take(&mut *window.lock().unwrap_or_else(|p| p.into_inner()));
            report(begin, w, &mut total, &mut total_errors, &mut all);
        }
    }
    tasks.close();
    tasks.wait().await;
    let w = std::mem::take(&mut *window.lock().unwrap_or_else(|p| p.into_inner()));
    report(begin, w, &mut total, &mut total_errors, &mut all);
    let (p50, p99) = percentiles(&mut all);
    println!(
        "total: {total} requests, {total_errors} errors, median {p50:.2?}, p99 {p99:.2?}, \
         resident memory at the end {:.0} MB",
        resident_mb()
    );
    stop.cancel();
    let problems = stack.shutdown().await;
    for problem in problems {
        eprintln!("shutdown: {problem}");
    }
    Ok(())
}

fn report(
    begin: Instant,
    mut w: Window,
    total: &mut usize,
    total_errors: &mut usize,
    all: &mut Vec<Duration>,
) {
    let count = w.latencies.len();
    let (p50, p99) = percentiles(&mut w.latencies);
    *total += count;
    *total_errors += w.errors;
    all.extend_from_slice(&w.latencies);
    println!(
        "{:>6.0} {:>8} {:>7} {:>10.2?} {:>10.2?} {:>9.0}",
        begin.elapsed().as_secs_f64(),
        count,
        w.errors,
        p50,
        p99,
        resident_mb()
    );
    if let Some(e) = w.first_error {
        println!("       first error of the window: {e}");
    }
}
