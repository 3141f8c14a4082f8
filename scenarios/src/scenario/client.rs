//! The scenario's MQTT client: it records every message under the topic root from the start,
//! so a step can look for a reply or event that arrived while an earlier step was running.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use bigskies_core::bus::{Bus, BusConfig, BusTask};
use bigskies_core::envelope::{Envelope, MessageType, answers, request_digest};
use bigskies_core::topics::{Topics, filter_matches};

/// One message seen on the broker.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Position in the log (0 = first message seen).
    pub index: usize,
    pub topic: String,
    /// The envelope's payload when the message is an envelope, else the JSON, else the text.
    pub body: Value,
    /// The whole message as JSON (the envelope itself when there is one).
    pub json: Option<Value>,
    pub correlation_data: Option<Bytes>,
    pub at: Instant,
}

#[derive(Default)]
struct Log {
    items: Mutex<Vec<Seen>>,
    grew: Notify,
}

/// Recording client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    bus: Bus,
    topics: Topics,
    log: Arc<Log>,
    reply_topic: String,
    stop: CancellationToken,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("root", &self.topics.root())
            .finish_non_exhaustive()
    }
}

fn is_envelope(v: &Value) -> bool {
    v.get("payload").is_some() && v.get("type").is_some() && v.get("source").is_some()
}

fn decode(payload: &[u8]) -> (Value, Option<Value>) {
    match serde_json::from_slice::<Value>(payload) {
        Ok(v) if is_envelope(&v) => (v["payload"].clone(), Some(v)),
        Ok(v) => (v.clone(), Some(v)),
        Err(_) => (
            Value::String(String::from_utf8_lossy(payload).into_owned()),
            None,
        ),
    }
}

impl Client {
    /// Connect and start recording `<root>/#`. Returns once the broker acknowledged the
    /// subscription.
    pub async fn connect(mut config: BusConfig, topics: Topics) -> anyhow::Result<(Self, BusTask)> {
        config.client_id_prefix = "scenario".into();
        config.backoff_max = Duration::from_millis(500);
        config.op_timeout = Duration::from_secs(5);
        let stop = CancellationToken::new();
        let (bus, task) = Bus::start(config, None, stop.clone());
        bus.wait_connected(Duration::from_secs(15)).await?;
        let mut rx = bus
            .subscribe(&format!("{}/#", topics.root()), 16_384)
            .await?;
        let log = Arc::new(Log::default());
        let sink = log.clone();
        let recorder_stop = stop.clone();
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    _ = recorder_stop.cancelled() => break,
                    m = rx.recv() => match m { Some(m) => m, None => break },
                };
                let (body, json) = decode(&msg.payload);
                let mut items = sink.items.lock().unwrap_or_else(|p| p.into_inner());
                let seen = Seen {
                    index: items.len(),
                    topic: msg.topic,
                    body,
                    json,
                    correlation_data: msg.correlation_data,
                    at: Instant::now(),
                };
                items.push(seen);
                drop(items);
                sink.grew.notify_waiters();
            }
        });
        let reply_topic = topics.client_reply(&uuid::Uuid::new_v4().simple().to_string());
        Ok((
            Self {
                bus,
                topics,
                log,
                reply_topic,
                stop,
            },
            task,
        ))
    }

    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// This client's private reply topic.
    pub fn reply_topic(&self) -> &str {
        &self.reply_topic
    }

    /// How many messages have been seen so far (a cursor for [`Client::wait_for`]).
    pub fn mark(&self) -> usize {
        self.log
            .items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// The most recent message on `topic`, if any.
    pub fn latest(&self, topic: &str) -> Option<Seen> {
        self.log
            .items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .rev()
            .find(|s| s.topic == topic)
            .cloned()
    }

    /// Wait until a message from index `from` on satisfies `pred`; `None` at the deadline.
    pub async fn wait_for(
        &self,
        from: usize,
        within: Duration,
        mut pred: impl FnMut(&Seen) -> bool,
    ) -> Option<Seen> {
        let deadline = tokio::time::Instant::now() + within;
        let mut next = from;
        loop {
            let grew = self.log.grew.notified();
            tokio::pin!(grew);
            grew.as_mut().enable();
            {
                let items = self.log.items.lock().unwrap_or_else(|p| p.into_inner());
                while next < items.len() {
                    if pred(&items[next]) {
                        return Some(items[next].clone());
                    }
                    next += 1;
                }
            }
            if tokio::time::timeout_at(deadline, grew).await.is_err() {
                return None;
            }
        }
    }

    /// Messages from index `from` on whose topic matches `filter` (for reports).
    pub fn since(&self, from: usize, filter: &str) -> Vec<Seen> {
        let items = self.log.items.lock().unwrap_or_else(|p| p.into_inner());
        items[from.min(items.len())..]
            .iter()
            .filter(|s| filter_matches(filter, &s.topic))
            .cloned()
            .collect()
    }

    /// The request payload for `body` or raw bytes, with the correlation id and reply topic.
    pub fn envelope(&self, body: Value, cid: &str, token: Option<&str>) -> Vec<u8> {
        let mut env = Envelope::new(MessageType::Request, "scenario", body)
            .with_correlation_id(cid)
            .with_reply_to(self.reply_topic.clone());
        if let Some(t) = token {
            env = env.with_token(t);
        }
        env.to_bytes()
    }

    /// Send `payload` to `coordinator/action/resource` and wait for the reply (matched by the
    /// MQTT 5 correlation data, or the correlation id for replies that lost it). A reply is
    /// ours only when its `request_digest` is the digest of `payload`: anyone who saw the
    /// request can provoke a reply with our topic and correlation data; such a reply is
    /// logged and skipped, and the wait goes on.
    pub async fn request(
        &self,
        op: &str,
        payload: Vec<u8>,
        cid: &str,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let mut parts = op.splitn(3, '/');
        let (c, a, r) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let topic = self.topics.request(c, a, r);
        let from = self.mark();
        let digest = request_digest(&payload);
        self.bus
            .publish_request(
                &topic,
                payload,
                &self.reply_topic,
                Some(Bytes::copy_from_slice(cid.as_bytes())),
            )
            .await?;
        let reply_topic = self.reply_topic.clone();
        let found = self
            .wait_for(from, timeout, |s| {
                let correlated = s.topic == reply_topic
                    && (s.correlation_data.as_deref() == Some(cid.as_bytes())
                        || s.body.get("correlation_id").and_then(Value::as_str) == Some(cid));
                let ours = correlated && s.json.as_ref().is_some_and(|j| answers(j, &digest));
                if correlated && !ours {
                    tracing::warn!(
                        op,
                        cid,
                        reply = %s.body,
                        "a reply with our topic and correlation answers another request; ignored"
                    );
                }
                ours
            })
            .await;
        found
            .map(|s| s.body)
            .ok_or_else(|| anyhow::anyhow!("no reply to {op} within {timeout:?}"))
    }

    /// Publish on a topic relative to the root.
    pub async fn publish(&self, rel: &str, payload: Vec<u8>, retain: bool) -> anyhow::Result<()> {
        let topic = format!("{}/{rel}", self.topics.root());
        self.bus.publish(&topic, payload, retain).await?;
        Ok(())
    }

    /// Clear every retained message under the root (health, summaries, credentials): an
    /// empty retained publication on each topic seen. Only for roots the harness owns.
    pub async fn clear_retained(&self) {
        let topics: std::collections::BTreeSet<String> = self
            .log
            .items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|s| s.topic.clone())
            .collect();
        for t in topics {
            let _ = self.bus.publish(&t, Vec::new(), true).await;
        }
    }

    /// Disconnect cleanly.
    pub async fn close(&self) {
        self.bus.disconnect().await;
        self.stop.cancel();
    }
}
