//! Per-key admission for the coordinator runtime: one slow resource (a hung mount) must not take
//! the whole coordinator down with it.
//!
//! A coordinator names the resource a request works on ([`Coordinator::lane`]); requests with
//! the same key share a *lane*: at most [`LaneLimits::concurrency`] of them run at once, at most
//! [`LaneLimits::queue`] more wait, and every further one is refused at once with
//! `unavailable`. A lane whose requests have all been running for longer than
//! [`LaneLimits::slow_after`] without any finishing is *stuck*: new requests are refused at once
//! instead of queueing behind it (fail fast), until one of its requests finishes. Requests
//! without a key (database-only work, `abort`) never wait on a lane.
//!
//! Lanes exist only while a request holds them, so keys made up by a client cannot grow the map
//! beyond the requests in flight.
//!
//! [`Coordinator::lane`]: crate::runtime::Coordinator::lane

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::HandlerError;

/// The shape of every lane of one coordinator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaneLimits {
    /// Requests of one lane running at once.
    pub concurrency: usize,
    /// Requests of one lane waiting for a slot; further ones are refused.
    pub queue: usize,
    /// A lane with every slot busy and no request finished for this long is stuck: new
    /// requests are refused instead of queued.
    pub slow_after: Duration,
}

impl Default for LaneLimits {
    fn default() -> Self {
        Self {
            concurrency: 4,
            queue: 16,
            slow_after: Duration::from_secs(2),
        }
    }
}

struct Lane {
    slots: Arc<Semaphore>,
    /// Requests running or waiting in this lane.
    holders: usize,
    /// When the lane last made progress: a request finished, or one started on an idle lane.
    progress: Instant,
}

/// The lanes of one coordinator. Cheap to share.
#[derive(Clone)]
pub struct Lanes {
    limits: LaneLimits,
    lanes: Arc<Mutex<HashMap<String, Lane>>>,
}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lanes")
            .field("limits", &self.limits)
            .field("open", &self.open())
            .finish()
    }
}

/// A place in a lane: waiting, then (after [`Ticket::run`]) running. Leaving the lane (drop)
/// frees the place.
pub struct Ticket {
    lanes: Lanes,
    key: String,
    slots: Arc<Semaphore>,
    ran: bool,
}

/// A running request's slot in its lane.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    _ticket: Ticket,
}

impl Lanes {
    pub fn new(limits: LaneLimits) -> Self {
        let limits = LaneLimits {
            concurrency: limits.concurrency.max(1),
            ..limits
        };
        Self {
            limits,
            lanes: Arc::default(),
        }
    }

    pub fn limits(&self) -> LaneLimits {
        self.limits
    }

    /// Lanes with a request in them.
    pub fn open(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lane>> {
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take a place in the lane of `key`, or the reason there is none (`unavailable`).
    pub fn enter(&self, key: &str) -> Result<Ticket, HandlerError> {
        let mut lanes = self.lock();
        let now = Instant::now();
        let lane = lanes.entry(key.to_owned()).or_insert_with(|| Lane {
            slots: Arc::new(Semaphore::new(self.limits.concurrency)),
            holders: 0,
            progress: now,
        });
        let full = lane.slots.available_permits() == 0;
        if full && now.duration_since(lane.progress) >= self.limits.slow_after {
            return Err(HandlerError::unavailable(format!(
                "{key} is not answering: {} requests have been waiting on it for over {:?}",
                lane.holders, self.limits.slow_after
            )));
        }
        if lane.holders >= self.limits.concurrency + self.limits.queue {
            return Err(HandlerError::unavailable(format!(
                "{key} is busy: {} requests are running or waiting; try again later",
                lane.holders
            )));
        }
        if lane.holders == 0 {
            lane.progress = now;
        }
        lane.holders += 1;
        Ok(Ticket {
            lanes: self.clone(),
            key: key.to_owned(),
            slots: lane.slots.clone(),
            ran: false,
        })
    }

    fn leave(&self, key: &str, ran: bool) {
        let mut lanes = self.lock();
        if let Some(lane) = lanes.get_mut(key) {
            lane.holders = lane.holders.saturating_sub(1);
            if ran {
                lane.progress = Instant::now();
            }
            if lane.holders == 0 {
                lanes.remove(key);
            }
        }
    }
}

impl Ticket {
    /// Wait for a running slot.
    pub async fn run(mut self) -> Slot {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("lane semaphores are never closed");
        self.ran = true;
        Slot {
            _permit: permit,
            _ticket: self,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // A ticket dropped while waiting (timeout, shutdown) is not progress; one dropped by a
        // finished request is. (A slot releases its permit just before its ticket.)
        self.lanes.leave(&self.key, self.ran);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(concurrency: usize, queue: usize, slow_after_ms: u64) -> LaneLimits {
        LaneLimits {
            concurrency,
            queue,
            slow_after: Duration::from_millis(slow_after_ms),
        }
    }

    #[tokio::test]
    async fn a_full_lane_refuses_at_once_and_other_lanes_are_untouched() {
        let lanes = Lanes::new(limits(2, 3, 60_000));
        let mut held = Vec::new();
        for _ in 0..5 {
            held.push(lanes.enter("mount-a").unwrap());
        }
        let refused = lanes.enter("mount-a").err().expect("the sixth is refused");
        assert_eq!(refused.kind, crate::error::ErrorKind::Unavailable);
        assert!(refused.message.contains("busy"), "{}", refused.message);
        // Another device, and so database-only work, goes straight through.
        let other = lanes.enter("mount-b").unwrap().run().await;
        drop(other);
        assert_eq!(lanes.open(), 1, "mount-b's lane is gone once empty");
        drop(held);
        assert_eq!(lanes.open(), 0);
    }

    #[tokio::test]
    async fn at_most_the_lane_concurrency_runs_and_a_waiter_runs_when_a_slot_frees() {
        let lanes = Lanes::new(limits(1, 4, 60_000));
        let first = lanes.enter("m").unwrap().run().await;
        let second = lanes.enter("m").unwrap();
        let waiting = tokio::spawn(async move { second.run().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "the second waits for the first");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiter runs")
            .unwrap();
        drop(second);
        assert_eq!(lanes.open(), 0);
    }

    #[tokio::test]
    async fn a_stuck_lane_fails_fast_until_a_request_finishes() {
        let lanes = Lanes::new(limits(1, 8, 50));
        let hung = lanes.enter("m").unwrap().run().await;
        // Within the grace period a request may still queue...
        let queued = lanes.enter("m").unwrap();
        tokio::time::sleep(Duration::from_millis(80)).await;
        // ...after it, nothing more queues behind a lane that has not moved.
        let refused = lanes.enter("m").err().expect("stuck lane refuses");
        assert!(
            refused.message.contains("not answering"),
            "{}",
            refused.message
        );
        drop(hung);
        // Progress: the lane takes requests again.
        let running = queued.run().await;
        assert!(lanes.enter("m").is_ok());
        drop(running);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_frees_its_place() {
        let lanes = Lanes::new(limits(1, 1, 60_000));
        let running = lanes.enter("m").unwrap().run().await;
        let waiter = lanes.enter("m").unwrap();
        assert!(lanes.enter("m").is_err(), "lane full");
        let gave_up = tokio::time::timeout(Duration::from_millis(10), waiter.run()).await;
        assert!(gave_up.is_err());
        assert!(lanes.enter("m").is_ok(), "the waiter's place is free again");
        drop(running);
    }
}
