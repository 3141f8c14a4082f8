//! The simulator's clock: real time, scaled real time (e.g. ×60), or stepped by hand.
//!
//! Device models never read the wall clock. Every model method takes a [`SimTime`] and
//! computes its state at that instant, so a two-minute slew can be checked in milliseconds
//! by stepping the clock. Nothing ticks in the background.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};

/// Simulated time: seconds since the Unix epoch, UTC, with sub-microsecond resolution.
#[derive(
    Clone, Copy, Debug, PartialEq, PartialOrd, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct SimTime(pub f64);

impl SimTime {
    pub fn from_utc(t: DateTime<Utc>) -> Self {
        Self(t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) * 1e-9)
    }
    pub fn secs(self) -> f64 {
        self.0
    }
    pub fn utc(self) -> DateTime<Utc> {
        let whole = self.0.floor();
        let nanos = ((self.0 - whole) * 1e9).round().clamp(0.0, 999_999_999.0) as u32;
        Utc.timestamp_opt(whole as i64, nanos)
            .single()
            .unwrap_or_default()
    }
    /// Seconds from `earlier` to `self` (negative if `earlier` is later).
    pub fn since(self, earlier: SimTime) -> f64 {
        self.0 - earlier.0
    }
    pub fn plus(self, secs: f64) -> SimTime {
        SimTime(self.0 + secs)
    }
}

/// How the clock advances.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum ClockMode {
    /// Simulated time runs at `rate` × real time (1.0 = real time).
    Running { rate: f64 },
    /// Simulated time only moves when stepped or set.
    Stepped,
}

#[derive(Debug)]
struct ClockState {
    mode: ClockMode,
    /// Real instant at which `anchor_sim` was true.
    anchor_real: Instant,
    anchor_sim: SimTime,
}

impl ClockState {
    fn now(&self) -> SimTime {
        match self.mode {
            ClockMode::Running { rate } => self
                .anchor_sim
                .plus(self.anchor_real.elapsed().as_secs_f64() * rate),
            ClockMode::Stepped => self.anchor_sim,
        }
    }
    fn re_anchor(&mut self) {
        self.anchor_sim = self.now();
        self.anchor_real = Instant::now();
    }
}

/// The fastest clock rate. Far beyond it simulated time stops making sense: at 1e308 the
/// offset overflows to infinity and the clock freezes, and models integrating motion over a
/// request interval would jump by years.
pub const MAX_RATE: f64 = 10_000.0;

/// The largest simulated time (seconds from the epoch either way, about the year 5100) and
/// the largest single step: beyond, `f64` seconds lose the precision the models need and
/// the clock appears frozen.
pub const MAX_SIM_SECS: f64 = 1e11;

/// `Ok` for a usable clock rate: finite, above 0 and at most [`MAX_RATE`].
pub fn check_rate(rate: f64) -> Result<(), ClockError> {
    if rate.is_finite() && rate > 0.0 && rate <= MAX_RATE {
        Ok(())
    } else {
        Err(ClockError::BadRate(rate))
    }
}

/// Error from a clock change that makes no sense (a negative or non-finite rate or step).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ClockError {
    #[error("clock rate must be a number above 0 and at most {MAX_RATE}, got {0}")]
    BadRate(f64),
    #[error(
        "a clock step must be between 0 and {MAX_SIM_SECS} s and stay within that many seconds of the epoch, got {0} s"
    )]
    BadStep(f64),
    #[error("time must be within {MAX_SIM_SECS} s of the epoch, got {0}")]
    BadTime(f64),
}

/// A cheap-to-clone handle on the shared simulated clock.
#[derive(Clone, Debug)]
pub struct Clock {
    state: Arc<Mutex<ClockState>>,
    changed: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Clock {
    /// A clock running at real time from the current wall-clock time.
    pub fn real_time() -> Self {
        Self::with_mode(
            ClockMode::Running { rate: 1.0 },
            SimTime::from_utc(Utc::now()),
        )
    }

    pub fn with_mode(mode: ClockMode, start: SimTime) -> Self {
        let (tx, _rx) = tokio::sync::watch::channel(0);
        Self {
            state: Arc::new(Mutex::new(ClockState {
                mode,
                anchor_real: Instant::now(),
                anchor_sim: start,
            })),
            changed: Arc::new(tx),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ClockState> {
        // A poisoned clock still holds a valid state: every write leaves it consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn now(&self) -> SimTime {
        self.lock().now()
    }

    pub fn mode(&self) -> ClockMode {
        self.lock().mode
    }

    /// Run at `rate` × real time from now on, keeping the current simulated time.
    pub fn set_rate(&self, rate: f64) -> Result<(), ClockError> {
        check_rate(rate)?;
        let mut s = self.lock();
        s.re_anchor();
        s.mode = ClockMode::Running { rate };
        drop(s);
        self.notify();
        Ok(())
    }

    /// Freeze the clock; from now on it only moves by [`Clock::step`] or [`Clock::set_time`].
    pub fn pause(&self) {
        let mut s = self.lock();
        s.re_anchor();
        s.mode = ClockMode::Stepped;
        drop(s);
        self.notify();
    }

    /// Advance simulated time by `secs` (works in either mode).
    pub fn step(&self, secs: f64) -> Result<SimTime, ClockError> {
        if !secs.is_finite() || !(0.0..=MAX_SIM_SECS).contains(&secs) {
            return Err(ClockError::BadStep(secs));
        }
        let mut s = self.lock();
        if s.now().secs() + secs > MAX_SIM_SECS {
            return Err(ClockError::BadStep(secs));
        }
        s.re_anchor();
        s.anchor_sim = s.anchor_sim.plus(secs);
        let now = s.anchor_sim;
        drop(s);
        self.notify();
        Ok(now)
    }

    /// Jump to an absolute simulated time (forwards or backwards).
    pub fn set_time(&self, t: SimTime) -> Result<(), ClockError> {
        if !t.0.is_finite() || t.0.abs() > MAX_SIM_SECS {
            return Err(ClockError::BadTime(t.0));
        }
        let mut s = self.lock();
        s.anchor_real = Instant::now();
        s.anchor_sim = t;
        drop(s);
        self.notify();
        Ok(())
    }

    /// Wait until simulated time reaches `t`. In running mode this sleeps for the real time
    /// that corresponds; in stepped mode it wakes on every step. `None` if `max_real` passes first.
    pub async fn wait_until(&self, t: SimTime, max_real: Duration) -> Option<SimTime> {
        let deadline = tokio::time::Instant::now() + max_real;
        let mut rx = self.changed.subscribe();
        loop {
            let (now, mode) = {
                let s = self.lock();
                (s.now(), s.mode)
            };
            if now >= t {
                return Some(now);
            }
            let nap = match mode {
                ClockMode::Running { rate } => {
                    Duration::from_secs_f64((t.since(now) / rate).clamp(0.0, 3600.0))
                }
                ClockMode::Stepped => Duration::from_secs(3600),
            };
            let wake = (tokio::time::Instant::now() + nap).min(deadline);
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = rx.changed() => {}
            }
            if tokio::time::Instant::now() >= deadline && self.now() < t {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stepped_clock_moves_only_when_stepped() {
        let c = Clock::with_mode(ClockMode::Stepped, SimTime(1000.0));
        assert_eq!(c.now(), SimTime(1000.0));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(c.now(), SimTime(1000.0));
        assert_eq!(c.step(120.0), Ok(SimTime(1120.0)));
        assert_eq!(c.now(), SimTime(1120.0));
    }

    #[test]
    fn scaled_clock_runs_faster_than_real_time() {
        let c = Clock::with_mode(ClockMode::Running { rate: 1000.0 }, SimTime(0.0));
        std::thread::sleep(Duration::from_millis(20));
        assert!(c.now().secs() >= 19.0, "{:?}", c.now());
    }

    #[test]
    fn bad_rates_and_steps_are_refused() {
        let c = Clock::real_time();
        assert_eq!(c.set_rate(0.0), Err(ClockError::BadRate(0.0)));
        assert!(c.set_rate(f64::NAN).is_err());
        assert_eq!(c.set_rate(1e308), Err(ClockError::BadRate(1e308)));
        assert!(c.set_rate(f64::INFINITY).is_err());
        assert_eq!(c.set_rate(MAX_RATE), Ok(()));
        assert_eq!(c.step(-1.0), Err(ClockError::BadStep(-1.0)));
    }

    #[test]
    fn sim_time_round_trips_through_utc() {
        let t = SimTime(1_780_000_000.25);
        assert!((SimTime::from_utc(t.utc()).secs() - t.secs()).abs() < 1e-6);
    }

    #[tokio::test]
    async fn waiting_on_a_stepped_clock_wakes_on_step() {
        let c = Clock::with_mode(ClockMode::Stepped, SimTime(0.0));
        let c2 = c.clone();
        let waiter =
            tokio::spawn(async move { c2.wait_until(SimTime(10.0), Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        c.step(10.0).unwrap();
        assert_eq!(waiter.await.unwrap(), Some(SimTime(10.0)));
    }
}
