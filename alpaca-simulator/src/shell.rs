//! The part every simulated device shares: the pure model behind a lock, the clock it is
//! evaluated against, and the connection state machine (Platform 7 `connect`/`connecting`).
//!
//! Device trait implementations are thin: `impl Telescope for Shell<TelescopeModel>` turns
//! each member into [`Shell::read`] or [`Shell::write`] on the model. Those check the
//! connection first, so every model can assume it is connected.

use std::sync::{Mutex, MutexGuard};

use bigskies_alpaca::{AlpacaError, AlpacaResult};

use crate::clock::{Clock, SimTime};

/// Where the device's connection stands. Transitions complete lazily against the clock.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Link {
    Disconnected,
    Connecting { until: SimTime },
    Connected,
    Disconnecting { until: SimTime },
}

impl Link {
    /// Resolve a finished transition.
    fn settle(self, now: SimTime) -> Link {
        match self {
            Link::Connecting { until } if now >= until => Link::Connected,
            Link::Disconnecting { until } if now >= until => Link::Disconnected,
            other => other,
        }
    }
}

#[derive(Debug)]
struct Inner<M> {
    model: M,
    link: Link,
}

/// A simulated device: model + clock + connection.
#[derive(Debug)]
pub struct Shell<M> {
    clock: Clock,
    /// Simulated seconds that `connect`/`disconnect` take (0 = immediate).
    connect_delay: f64,
    inner: Mutex<Inner<M>>,
}

impl<M> Shell<M> {
    pub fn new(model: M, clock: Clock, connect_delay: f64) -> Self {
        Self {
            clock,
            connect_delay: connect_delay.max(0.0),
            inner: Mutex::new(Inner {
                model,
                link: Link::Disconnected,
            }),
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    fn lock(&self) -> (MutexGuard<'_, Inner<M>>, SimTime) {
        // Models keep themselves consistent across every method, so a panic elsewhere
        // leaves a usable state behind the poisoned lock.
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.clock.now();
        g.link = g.link.settle(now);
        (g, now)
    }

    /// Read from the model; NotConnected unless connected.
    pub fn read<T>(&self, f: impl FnOnce(&M, SimTime) -> AlpacaResult<T>) -> AlpacaResult<T> {
        let (g, now) = self.lock();
        if g.link != Link::Connected {
            return Err(AlpacaError::not_connected());
        }
        f(&g.model, now)
    }

    /// Change the model; NotConnected unless connected.
    pub fn write<T>(&self, f: impl FnOnce(&mut M, SimTime) -> AlpacaResult<T>) -> AlpacaResult<T> {
        let (mut g, now) = self.lock();
        if g.link != Link::Connected {
            return Err(AlpacaError::not_connected());
        }
        f(&mut g.model, now)
    }

    /// Touch the model regardless of connection (control API, state dumps, coupling).
    pub fn with_model<T>(&self, f: impl FnOnce(&mut M, SimTime) -> T) -> T {
        let (mut g, now) = self.lock();
        f(&mut g.model, now)
    }

    /// `Connected` as ASCOM reports it: true only once a connect has completed.
    pub fn connected(&self) -> bool {
        self.lock().0.link == Link::Connected
    }

    /// `Connecting`: true while a connect or disconnect is under way.
    pub fn connecting(&self) -> bool {
        matches!(
            self.lock().0.link,
            Link::Connecting { .. } | Link::Disconnecting { .. }
        )
    }

    /// Platform 7 `connect`: returns at once, completes after the connect delay.
    pub fn connect(&self) {
        let (mut g, now) = self.lock();
        g.link = match g.link {
            Link::Connected | Link::Connecting { .. } => g.link,
            _ if self.connect_delay == 0.0 => Link::Connected,
            _ => Link::Connecting {
                until: now.plus(self.connect_delay),
            },
        };
    }

    /// Platform 7 `disconnect`: returns at once, completes after the connect delay.
    pub fn disconnect(&self) {
        let (mut g, now) = self.lock();
        g.link = match g.link {
            Link::Disconnected | Link::Disconnecting { .. } => g.link,
            _ if self.connect_delay == 0.0 => Link::Disconnected,
            _ => Link::Disconnecting {
                until: now.plus(self.connect_delay),
            },
        };
    }

    /// The legacy `Connected` setter is synchronous: after PUT false, GET must read false.
    pub fn set_connected(&self, on: bool) {
        let (mut g, _) = self.lock();
        g.link = if on {
            Link::Connected
        } else {
            Link::Disconnected
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ClockMode;

    fn shell(delay: f64) -> Shell<u32> {
        Shell::new(7, Clock::with_mode(ClockMode::Stepped, SimTime(0.0)), delay)
    }

    #[test]
    fn members_need_a_connection() {
        let s = shell(0.0);
        let err = s.read(|m, _| Ok(*m)).unwrap_err();
        assert_eq!(err.code, bigskies_alpaca::ErrorCode::NOT_CONNECTED);
        s.set_connected(true);
        assert_eq!(s.read(|m, _| Ok(*m)), Ok(7));
    }

    #[test]
    fn connect_takes_its_delay_in_simulated_time() {
        let s = shell(1.5);
        s.connect();
        assert!(s.connecting());
        assert!(!s.connected());
        s.clock().step(1.0).unwrap();
        assert!(s.connecting());
        s.clock().step(0.5).unwrap();
        assert!(!s.connecting());
        assert!(s.connected());
        s.disconnect();
        assert!(s.connecting() && !s.connected());
        s.clock().step(2.0).unwrap();
        assert!(!s.connecting() && !s.connected());
    }

    #[test]
    fn legacy_connected_setter_is_immediate() {
        let s = shell(3.0);
        s.set_connected(true);
        assert!(s.connected());
        s.set_connected(false);
        assert!(!s.connected());
    }
}
