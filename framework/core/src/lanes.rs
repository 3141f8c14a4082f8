//! Per-key admission for the coordinator runtime: one slow resource (a hung mount) must not take
//! the whole coordinator down with it.
//!
//! A coordinator names the resource a request works on ([`Coordinator::lane`]); requests with
//! the same key share a *lane*: at most [`LaneLimits::concurrency`] of them run at once, at most
//! [`LaneLimits::queue`] more wait, and every further one is refused at once with
//! `unavailable`. A lane whose slots are all taken and where no request has started or
//! finished for [`LaneLimits::slow_after`] is *stuck*: new requests are refused at once instead
//! of queueing behind it (fail fast), until one of its requests gets an answer. Requests
//! without a key (database-only work) never wait on a lane.
//!
//! A safety command (`abort`) is *urgent* ([`LaneUse::Urgent`]): it waits for nothing, and it
//! cancels every request still waiting in its lane ([`Lanes::flush`]), so a slew queued behind
//! a status poll cannot start after the abort that was meant to stop it.
//!
//! Lanes exist only while a request holds them, and at most [`LaneLimits::open`] at once with
//! keys of at most [`MAX_KEY_LEN`] bytes, so keys made up by a client cannot grow the map.
//!
//! [`Coordinator::lane`]: crate::runtime::Coordinator::lane

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{ErrorKind, HandlerError};

/// Longer lane keys are refused (a key names a device or a telescope, not a payload).
pub const MAX_KEY_LEN: usize = 128;

/// How a request uses the lane of the resource it works on ([`Coordinator::lane`]).
///
/// [`Coordinator::lane`]: crate::runtime::Coordinator::lane
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LaneUse {
    /// Wait for a place in the lane of this key.
    Queue(String),
    /// Run at once, ahead of everything (no lane, no coordinator-wide slot, never refused for
    /// load, never answered from the replay memory), and cancel what waits in this key's lane.
    Urgent(String),
}

/// The shape of every lane of one coordinator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaneLimits {
    /// Requests of one lane running at once.
    pub concurrency: usize,
    /// Requests of one lane waiting for a slot; further ones are refused.
    pub queue: usize,
    /// A lane with every slot busy and no request started or finished for this long is stuck:
    /// new requests are refused instead of queued.
    pub slow_after: Duration,
    /// Lanes open at once; a request for a further key is refused.
    pub open: usize,
}

impl Default for LaneLimits {
    fn default() -> Self {
        Self {
            concurrency: 4,
            queue: 16,
            // Above the ASCOM engine's 5 s call timeout: a slow but answering device is not
            // taken for a stuck one.
            slow_after: Duration::from_secs(8),
            open: 256,
        }
    }
}

struct Lane {
    slots: Arc<Semaphore>,
    /// Requests running or waiting in this lane.
    holders: usize,
    /// When the lane last made progress: a request started or got an answer.
    progress: Instant,
    /// Bumped by [`Lanes::flush`]: waiting tickets of an older generation are cancelled.
    generation: u64,
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
    generation: u64,
    /// Already accounted for by its slot.
    left: bool,
}

/// A running request's slot in its lane. Before dropping it, say whether the request got an
/// [answer](Slot::answered) (from the device or about it; not a timeout): only that counts as
/// the lane's progress, so a hung device is not taken for a slow one.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    ticket: Ticket,
    answered: bool,
}

impl Slot {
    /// The request got an answer, not a timeout.
    pub fn answered(&mut self) {
        self.answered = true;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.ticket.lanes.leave(&self.ticket.key, self.answered);
        self.ticket.left = true;
    }
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
        if key.len() > MAX_KEY_LEN {
            return Err(HandlerError::invalid(format!(
                "a resource name of {} bytes is longer than {MAX_KEY_LEN}",
                key.len()
            )));
        }
        let mut lanes = self.lock();
        let now = Instant::now();
        if !lanes.contains_key(key) && lanes.len() >= self.limits.open {
            return Err(HandlerError::unavailable(format!(
                "{} resources are busy at once; try again later",
                lanes.len()
            )));
        }
        let lane = lanes.entry(key.to_owned()).or_insert_with(|| Lane {
            slots: Arc::new(Semaphore::new(self.limits.concurrency)),
            holders: 0,
            progress: now,
            generation: 0,
        });
        let full = lane.slots.available_permits() == 0;
        if full && now.duration_since(lane.progress) >= self.limits.slow_after {
            return Err(HandlerError::unavailable(format!(
                "{key} is not answering: none of its {} requests has moved for {:?}",
                lane.holders, self.limits.slow_after
            )));
        }
        if lane.holders >= self.limits.concurrency + self.limits.queue {
            return Err(HandlerError::unavailable(format!(
                "{key} is busy: {} requests are running or waiting; try again later",
                lane.holders
            )));
        }
        lane.holders += 1;
        Ok(Ticket {
            lanes: self.clone(),
            key: key.to_owned(),
            slots: lane.slots.clone(),
            generation: lane.generation,
            left: false,
        })
    }

    /// Cancel every request waiting in the lane of `key` (running ones go on): they are
    /// refused when their turn comes.
    pub fn flush(&self, key: &str) {
        if let Some(lane) = self.lock().get_mut(key) {
            lane.generation += 1;
        }
    }

    /// A ticket's turn came: still wanted (not flushed since it entered)? Marks progress.
    fn start(&self, key: &str, generation: u64) -> bool {
        let mut lanes = self.lock();
        match lanes.get_mut(key) {
            Some(lane) if lane.generation == generation => {
                lane.progress = Instant::now();
                true
            }
            _ => false,
        }
    }

    fn leave(&self, key: &str, answered: bool) {
        let mut lanes = self.lock();
        if let Some(lane) = lanes.get_mut(key) {
            lane.holders = lane.holders.saturating_sub(1);
            if answered {
                lane.progress = Instant::now();
            }
            if lane.holders == 0 {
                lanes.remove(key);
            }
        }
    }
}

impl Ticket {
    /// Wait for a running slot; `conflict` when an urgent request flushed the lane meanwhile.
    pub async fn run(self) -> Result<Slot, HandlerError> {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("lane semaphores are never closed");
        if !self.lanes.start(&self.key, self.generation) {
            return Err(HandlerError::new(
                ErrorKind::Conflict,
                format!(
                    "cancelled: a safety command for {} came while this request waited",
                    self.key
                ),
            ));
        }
        Ok(Slot {
            _permit: permit,
            ticket: self,
            answered: false,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // A ticket dropped while waiting (timeout, shutdown, flushed) leaves without progress;
        // a running one has left through its slot.
        if !self.left {
            self.lanes.leave(&self.key, false);
        }
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
            open: 8,
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
        let other = lanes.enter("mount-b").unwrap().run().await.unwrap();
        drop(other);
        assert_eq!(lanes.open(), 1, "mount-b's lane is gone once empty");
        drop(held);
        assert_eq!(lanes.open(), 0);
    }

    #[tokio::test]
    async fn at_most_the_lane_concurrency_runs_and_a_waiter_runs_when_a_slot_frees() {
        let lanes = Lanes::new(limits(1, 4, 60_000));
        let first = lanes.enter("m").unwrap().run().await.unwrap();
        let second = lanes.enter("m").unwrap();
        let waiting = tokio::spawn(async move { second.run().await.unwrap() });
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
        let hung = lanes.enter("m").unwrap().run().await.unwrap();
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
        // Progress (a request starts): the lane takes requests again.
        let running = queued.run().await.unwrap();
        assert!(lanes.enter("m").is_ok());
        drop(running);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_frees_its_place() {
        let lanes = Lanes::new(limits(1, 1, 60_000));
        let running = lanes.enter("m").unwrap().run().await.unwrap();
        let waiter = lanes.enter("m").unwrap();
        assert!(lanes.enter("m").is_err(), "lane full");
        let gave_up = tokio::time::timeout(Duration::from_millis(10), waiter.run()).await;
        assert!(gave_up.is_err());
        assert!(lanes.enter("m").is_ok(), "the waiter's place is free again");
        drop(running);
    }

    #[tokio::test]
    async fn a_flush_cancels_the_waiting_requests_not_the_running_one() {
        let lanes = Lanes::new(limits(1, 8, 60_000));
        let running = lanes.enter("m").unwrap().run().await.unwrap();
        let waiting = lanes.enter("m").unwrap();
        lanes.flush("m");
        let later = lanes.enter("m").unwrap();
        drop(running);
        let cancelled = waiting.run().await.err().expect("flushed while waiting");
        assert_eq!(cancelled.kind, ErrorKind::Conflict);
        // A request that came after the flush runs.
        assert!(later.run().await.is_ok());
    }

    #[test]
    fn made_up_keys_cannot_grow_the_lanes() {
        let lanes = Lanes::new(limits(1, 1, 60_000));
        let held: Vec<_> = (0..8)
            .map(|i| lanes.enter(&format!("k{i}")).unwrap())
            .collect();
        assert!(lanes.enter("one more").is_err(), "at most `open` lanes");
        assert!(
            lanes.enter("k1").is_ok(),
            "an open lane still takes requests"
        );
        assert!(lanes.enter(&"x".repeat(MAX_KEY_LEN + 1)).is_err());
        drop(held);
        assert_eq!(lanes.open(), 0);
    }
}
