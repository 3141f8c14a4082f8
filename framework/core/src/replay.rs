//! At most once per request: a state-changing request that arrives again (an MQTT QoS 1
//! redelivery, or a client retrying after a lost reply) is answered with the first outcome
//! instead of running twice. A slew sent twice must not slew twice; a `create` sent twice must
//! not answer "already exists" to the request that created it.
//!
//! A request is "the same" when its operation, its correlation id, its exact bytes (through the
//! [request digest](crate::envelope::request_digest), which covers the credential) and its reply
//! topic all match, within [`REPLAY_WINDOW`]. Requests without a correlation id (or with one
//! longer than [`MAX_CORRELATION_ID`]) are never taken for repeats. A repeat that arrives while
//! the first is still running waits for its outcome. Only definite outcomes are kept: the
//! runtime forgets a request that timed out or met an outage, so its retry runs. The memory is
//! bounded: [`REPLAY_CAPACITY`] requests of a fixed size each (the key is a SHA-256 of its
//! parts); the oldest are forgotten first. Each process keeps its own.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;

/// How long an outcome is kept for repeats.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(600);

/// Outcomes kept at most.
pub const REPLAY_CAPACITY: usize = 10_000;

/// Longer correlation ids are not remembered.
pub const MAX_CORRELATION_ID: usize = 256;

/// SHA-256 of a request's operation, correlation id, digest and reply topic.
type Key = [u8; 32];

fn key(op: &str, correlation_id: &str, digest: &str, reply_topic: Option<&str>) -> Key {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for part in [op, correlation_id, digest, reply_topic.unwrap_or("")] {
        // Length-prefixed, so that no two different tuples hash the same bytes.
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.update([u8::from(reply_topic.is_some())]);
    h.finalize().into()
}

struct Entry {
    outcome: watch::Receiver<Option<Value>>,
    /// When it was made: tells this entry from a later one under the same key.
    at: Instant,
}

/// The recent state-changing requests of one coordinator. Cheap to share.
#[derive(Clone, Default)]
pub struct Replays {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    /// Insertion order, for expiry and the capacity bound.
    order: VecDeque<(Instant, Key)>,
}

impl std::fmt::Debug for Replays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replays")
            .field("kept", &self.len())
            .finish()
    }
}

/// What to do with a request.
pub enum Admission {
    /// The first of its kind: run it, then [`First::finish`] with the reply body.
    First(First),
    /// A repeat: answer with this body (after waiting for the first, if it still runs).
    Repeat(watch::Receiver<Option<Value>>),
}

/// The right and duty to record the outcome of a first request. Dropped without
/// [`finish`](First::finish) (the handler was cancelled), the entry is forgotten, so a retry
/// runs again.
pub struct First {
    replays: Replays,
    key: Key,
    at: Instant,
    outcome: Option<watch::Sender<Option<Value>>>,
}

impl Replays {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Outcomes kept right now.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Look the request up; `None` when it cannot be recognised again (no correlation id).
    pub fn admit(
        &self,
        op: &str,
        correlation_id: Option<&str>,
        digest: &str,
        reply_topic: Option<&str>,
    ) -> Option<Admission> {
        let correlation_id =
            correlation_id.filter(|c| !c.is_empty() && c.len() <= MAX_CORRELATION_ID)?;
        let key = key(op, correlation_id, digest, reply_topic);
        let now = Instant::now();
        let mut inner = self.lock();
        inner.expire(now);
        if let Some(entry) = inner.entries.get(&key) {
            return Some(Admission::Repeat(entry.outcome.clone()));
        }
        // Bounded by the order queue, which also holds the slots of forgotten entries.
        while inner.order.len() >= REPLAY_CAPACITY {
            let Some((at, oldest)) = inner.order.pop_front() else {
                break;
            };
            if inner.entries.get(&oldest).is_some_and(|e| e.at == at) {
                inner.entries.remove(&oldest);
            }
        }
        let (tx, rx) = watch::channel(None);
        inner.entries.insert(
            key,
            Entry {
                outcome: rx,
                at: now,
            },
        );
        inner.order.push_back((now, key));
        Some(Admission::First(First {
            replays: self.clone(),
            key,
            at: now,
            outcome: Some(tx),
        }))
    }
}

impl Inner {
    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < REPLAY_WINDOW {
                break;
            }
            let Some((at, key)) = self.order.pop_front() else {
                break;
            };
            // Only if the entry is the one this slot was made for (it may have been forgotten
            // and made again since).
            if self.entries.get(&key).is_some_and(|e| e.at == at) {
                self.entries.remove(&key);
            }
        }
    }
}

impl First {
    /// Record the reply body for repeats (and wake repeats waiting for it).
    pub fn finish(mut self, body: &Value) {
        if let Some(tx) = self.outcome.take() {
            let _ = tx.send(Some(body.clone()));
        }
    }
}

impl Drop for First {
    fn drop(&mut self) {
        if self.outcome.is_some() {
            // Not finished: forget it, so that a retry runs (repeats waiting now see the
            // channel close and are told to try again).
            let mut inner = self.replays.lock();
            if inner
                .entries
                .get(&self.key)
                .is_some_and(|e| e.at == self.at)
            {
                inner.entries.remove(&self.key);
            }
        }
    }
}

/// The outcome a repeat waits for: the first's reply body, or `None` when the first never
/// finished (cancelled), after at most `timeout`.
pub async fn outcome(mut rx: watch::Receiver<Option<Value>>, timeout: Duration) -> Option<Value> {
    let waited = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
    match waited {
        Ok(Ok(value)) => value.clone(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn a_repeat_gets_the_first_outcome_and_a_changed_request_runs() {
        let r = Replays::default();
        let Some(Admission::First(first)) = r.admit("control/slew", Some("c1"), "d1", None) else {
            panic!("the first runs");
        };
        // A repeat while the first runs waits for it.
        let Some(Admission::Repeat(rx)) = r.admit("control/slew", Some("c1"), "d1", None) else {
            panic!("a repeat");
        };
        let waiting = tokio::spawn(outcome(rx, Duration::from_secs(5)));
        first.finish(&json!({"success": true, "slew_id": "s-1"}));
        assert_eq!(
            waiting.await.unwrap(),
            Some(json!({"success": true, "slew_id": "s-1"}))
        );
        // Other bytes, another reply topic, another id, or no id: not a repeat.
        for (cid, digest, topic) in [
            (Some("c1"), "d2", None),
            (Some("c1"), "d1", Some("elsewhere")),
            (Some("c2"), "d1", None),
        ] {
            assert!(matches!(
                r.admit("control/slew", cid, digest, topic),
                Some(Admission::First(_))
            ));
        }
        assert!(r.admit("control/slew", None, "d1", None).is_none());
    }

    #[tokio::test]
    async fn an_unfinished_first_is_forgotten_so_a_retry_runs() {
        let r = Replays::default();
        let Some(Admission::First(first)) = r.admit("a/b", Some("c"), "d", None) else {
            panic!("first");
        };
        let Some(Admission::Repeat(rx)) = r.admit("a/b", Some("c"), "d", None) else {
            panic!("repeat");
        };
        drop(first);
        assert_eq!(outcome(rx, Duration::from_secs(5)).await, None);
        assert!(matches!(
            r.admit("a/b", Some("c"), "d", None),
            Some(Admission::First(_))
        ));
    }

    #[test]
    fn memory_is_bounded() {
        let r = Replays::default();
        for i in 0..REPLAY_CAPACITY + 50 {
            if let Some(Admission::First(f)) = r.admit("a/b", Some(&i.to_string()), "d", None) {
                f.finish(&json!({"success": true}));
            }
        }
        assert_eq!(r.len(), REPLAY_CAPACITY);
    }
}
