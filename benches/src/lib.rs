//! Shared pieces of the Big Skies benches.
//!
//! * [`echo`]: a minimal coordinator served by the real runtime.
//! * [`Requester`]: a plain rumqttc v5 client that publishes a request and waits for the reply;
//!   both round-trip paths are measured with it, so the difference is what the runtime adds.
//! * [`bare_echo`]: the baseline, a plain rumqttc client that republishes every request.
//! * [`percentiles`]: median and p99 of a set of samples.
//! * [`fleet`]: a simulator with N devices, an engine connected to all, and the health-cycle
//!   bench (`slew_path`, `health_path`).
//! * [`ingest`]: a message coordinator loaded with health messages of simulated coordinators
//!   (`health_ingest`, `health_path`).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use bigskies_core::error::HandlerError;
use bigskies_core::runtime::{Context, Coordinator};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub mod fleet;
pub mod ingest;

pub mod echo {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(tag = "op", content = "body")]
    pub enum EchoRequest {
        #[serde(rename = "echo/say")]
        Say { text: String },
    }

    /// Replies `{"success": true, "text": <text>}`.
    #[derive(Debug, Default)]
    pub struct Echo;

    impl Coordinator for Echo {
        type Request = EchoRequest;
        fn name(&self) -> &'static str {
            "echo"
        }
        fn operations(&self) -> &'static [bigskies_core::auth::Operation] {
            use bigskies_core::auth::{Access, Operation};
            const OPS: &[Operation] = &[Operation::new("echo/say", Access::Public, "echo")];
            OPS
        }
        async fn handle(&self, _ctx: Context, request: EchoRequest) -> Result<Value, HandlerError> {
            let EchoRequest::Say { text } = request;
            Ok(json!({"success": true, "text": text}))
        }
    }
}

fn options(prefix: &str, host: &str, port: u16) -> MqttOptions {
    let id = format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut o = MqttOptions::new(id, host, port);
    o.set_max_packet_size(Some(1 << 20));
    o.set_keep_alive(Duration::from_secs(30));
    let mut net = o.network_options();
    net.set_tcp_nodelay(true);
    o.set_network_options(net);
    o
}

/// Spawn a task polling `eventloop`, forwarding incoming publishes (topic, payload) to a channel,
/// and wait until its subscriptions are acknowledged.
async fn drive(
    mut eventloop: rumqttc::v5::EventLoop,
    subacks_needed: usize,
    stop: CancellationToken,
) -> anyhow::Result<mpsc::UnboundedReceiver<(bytes::Bytes, bytes::Bytes)>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let mut acks = 0;
        loop {
            let ev = tokio::select! { _ = stop.cancelled() => break, ev = eventloop.poll() => ev };
            match ev {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    acks += 1;
                    if acks >= subacks_needed
                        && let Some(r) = ready.take()
                    {
                        let _ = r.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send((p.topic, p.payload));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready_rx)
        .await
        .context("broker did not acknowledge the subscription")?
        .ok();
    Ok(rx)
}

/// The baseline: republish every message on `request` to `reply`, with nothing in between.
pub async fn bare_echo(
    host: &str,
    port: u16,
    request: &str,
    reply: &str,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let (client, eventloop) = AsyncClient::new(options("bare-echo", host, port), 1024);
    client.subscribe(request, QoS::AtLeastOnce).await?;
    let mut rx = drive(eventloop, 1, stop.clone()).await?;
    let reply = reply.to_owned();
    tokio::spawn(async move {
        while let Some((_, payload)) = rx.recv().await {
            if client
                .publish(reply.as_str(), QoS::AtLeastOnce, false, payload)
                .await
                .is_err()
            {
                break;
            }
        }
    });
    Ok(())
}

/// Publishes requests and waits for replies, one at a time.
pub struct Requester {
    client: AsyncClient,
    replies: mpsc::UnboundedReceiver<(bytes::Bytes, bytes::Bytes)>,
    request_topic: String,
}

impl Requester {
    pub async fn connect(
        host: &str,
        port: u16,
        request_topic: &str,
        reply_topic: &str,
        stop: CancellationToken,
    ) -> anyhow::Result<Self> {
        let (client, eventloop) = AsyncClient::new(options("requester", host, port), 1024);
        client.subscribe(reply_topic, QoS::AtLeastOnce).await?;
        let replies = drive(eventloop, 1, stop).await?;
        Ok(Self {
            client,
            replies,
            request_topic: request_topic.to_owned(),
        })
    }

    /// One request → reply round trip.
    pub async fn round_trip(&mut self, payload: &[u8]) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.client
            .publish(
                self.request_topic.as_str(),
                QoS::AtLeastOnce,
                false,
                payload.to_vec(),
            )
            .await?;
        tokio::time::timeout(Duration::from_secs(5), self.replies.recv())
            .await
            .context("no reply within 5 s")?
            .context("reply channel closed")?;
        Ok(started.elapsed())
    }
}

/// Resident memory of this process in KiB (`VmRSS` of `/proc/self/status`; 0 where unknown).
pub fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Median and 99th percentile of `samples` (sorted in place).
pub fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    if samples.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

/// Broker address from `BIGSKIES_MQTT_URL` or the local default.
pub fn broker() -> (String, u16) {
    let url = std::env::var("BIGSKIES_MQTT_URL").unwrap_or_else(|_| "mqtt://127.0.0.1:1883".into());
    match bigskies_core::bus::BusConfig::from_url(&url, "bench") {
        Ok(c) => (c.host, c.port),
        Err(_) => ("127.0.0.1".into(), 1883),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_right_samples() {
        let mut s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let (p50, p99) = percentiles(&mut s);
        assert_eq!(p50, Duration::from_millis(51));
        assert_eq!(p99, Duration::from_millis(99));
    }
}
