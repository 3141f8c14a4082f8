//! A simulated filter wheel (IFilterWheelV3): named slots with focus offsets, moves that
//! take a fixed time per slot the shortest way round, and `Position == -1` while moving.

use bigskies_alpaca::{AlpacaError, AlpacaResult};

use crate::clock::SimTime;

/// User-facing filter-wheel parameters.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterWheelConfig {
    pub name: String,
    pub description: String,
    /// One name per slot, in slot order.
    pub names: Vec<String>,
    /// Focuser offset per slot (steps); same length as `names`.
    pub focus_offsets: Vec<i32>,
    pub start_position: i32,
    /// Time to turn the wheel by one slot.
    pub secs_per_slot: f64,
    /// A new Position while moving re-targets the wheel instead of failing with 0x40B.
    pub preempt_moves: bool,
}

impl Default for FilterWheelConfig {
    fn default() -> Self {
        Self {
            name: "Big Skies Filter Wheel Simulator".into(),
            description: "Simulated 6-position filter wheel".into(),
            names: ["Luminance", "Red", "Green", "Blue", "Ha", "OIII"]
                .map(String::from)
                .to_vec(),
            focus_offsets: vec![0, 35, 20, -15, 60, 45],
            start_position: 0,
            secs_per_slot: 1.0,
            preempt_moves: false,
        }
    }
}

impl FilterWheelConfig {
    /// Every problem with this configuration (empty when it is usable).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.names.is_empty() {
            p.push("filter wheel needs at least one slot name".into());
        }
        if self.names.iter().any(|n| n.trim().is_empty()) {
            p.push("filter wheel slot names must not be empty".into());
        }
        if self.focus_offsets.len() != self.names.len() {
            p.push(format!(
                "filter wheel has {} names but {} focus offsets; they must match",
                self.names.len(),
                self.focus_offsets.len()
            ));
        }
        if self.start_position < 0 || self.start_position as usize >= self.names.len().max(1) {
            p.push(format!(
                "filter wheel start_position {} is not a slot",
                self.start_position
            ));
        }
        if !(self.secs_per_slot.is_finite() && self.secs_per_slot > 0.0) {
            p.push(format!(
                "filter wheel secs_per_slot must be above 0, got {}",
                self.secs_per_slot
            ));
        }
        p
    }
}

/// A turn of the wheel: from one slot to another, `steps` slots in direction `dir` (±1).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Turn {
    start: SimTime,
    from: usize,
    to: usize,
    steps: usize,
    dir: i64,
    /// Seconds of progress made before `start` (kept across a stuck period).
    done_before: f64,
}

/// The wheel's state at one instant, for the simulator's control API.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FilterWheelSnapshot {
    /// `Position` as ASCOM reports it (−1 while moving).
    pub position: i32,
    pub target: i32,
    pub moving: bool,
    pub filter: Option<String>,
    pub focus_offset: Option<i32>,
    pub names: Vec<String>,
    pub stuck: bool,
}

/// The pure filter-wheel model.
#[derive(Clone, Debug)]
pub struct FilterWheelModel {
    cfg: FilterWheelConfig,
    turn: Turn,
    stuck: bool,
}

impl FilterWheelModel {
    /// A wheel resting at its start slot. A bad configuration is repaired (missing names and
    /// offsets filled in); call [`FilterWheelConfig::problems`] first to report it instead.
    pub fn new(mut cfg: FilterWheelConfig, now: SimTime) -> Self {
        if cfg.names.is_empty() {
            cfg.names.push("Clear".into());
        }
        for (i, n) in cfg.names.iter_mut().enumerate() {
            if n.trim().is_empty() {
                *n = format!("Filter {}", i + 1);
            }
        }
        cfg.focus_offsets.resize(cfg.names.len(), 0);
        if !(cfg.secs_per_slot.is_finite() && cfg.secs_per_slot > 0.0) {
            cfg.secs_per_slot = 1.0;
        }
        let slot = usize::try_from(cfg.start_position)
            .unwrap_or(0)
            .min(cfg.names.len() - 1);
        Self {
            cfg,
            turn: Turn {
                start: now,
                from: slot,
                to: slot,
                steps: 0,
                dir: 1,
                done_before: 0.0,
            },
            stuck: false,
        }
    }

    pub fn config(&self) -> &FilterWheelConfig {
        &self.cfg
    }

    fn slots(&self) -> usize {
        self.cfg.names.len()
    }

    /// Seconds of turning done so far.
    fn progress(&self, now: SimTime) -> f64 {
        let running = if self.stuck {
            0.0
        } else {
            now.since(self.turn.start).max(0.0)
        };
        self.turn.done_before + running
    }

    fn turn_secs(&self) -> f64 {
        self.turn.steps as f64 * self.cfg.secs_per_slot
    }

    pub fn is_moving(&self, now: SimTime) -> bool {
        self.turn.steps > 0 && self.progress(now) < self.turn_secs()
    }

    /// The slot physically under the light path now, or the last one passed while moving.
    fn slot_passed(&self, now: SimTime) -> usize {
        let n = self.slots() as i64;
        let passed = ((self.progress(now) / self.cfg.secs_per_slot).floor() as i64)
            .min(self.turn.steps as i64);
        (self.turn.from as i64 + self.turn.dir * passed).rem_euclid(n) as usize
    }

    /// The slot the wheel rests at, `None` while it is moving.
    pub fn current_slot(&self, now: SimTime) -> Option<usize> {
        (!self.is_moving(now)).then_some(self.turn.to)
    }

    /// The name of the filter in the light path, `None` while moving.
    pub fn current_filter(&self, now: SimTime) -> Option<String> {
        self.current_slot(now).map(|s| self.cfg.names[s].clone())
    }

    /// The focus offset of the filter in the light path, `None` while moving.
    pub fn current_focus_offset(&self, now: SimTime) -> Option<i32> {
        self.current_slot(now).map(|s| self.cfg.focus_offsets[s])
    }

    // ---- IFilterWheelV3 ----

    pub fn names(&self) -> Vec<String> {
        self.cfg.names.clone()
    }

    pub fn focus_offsets(&self) -> Vec<i32> {
        self.cfg.focus_offsets.clone()
    }

    /// `Position`: the slot, or −1 while the wheel is turning.
    pub fn position(&self, now: SimTime) -> i32 {
        match self.current_slot(now) {
            // Slot counts come from a config list, far below i32::MAX.
            Some(s) => s as i32,
            None => -1,
        }
    }

    /// `Position` setter: starts a turn the shortest way round and returns at once.
    pub fn set_position(&mut self, now: SimTime, position: i32) -> AlpacaResult<()> {
        let n = self.slots();
        let target = usize::try_from(position)
            .ok()
            .filter(|&p| p < n)
            .ok_or_else(|| {
                AlpacaError::invalid_value(format!("filter position {position} is not in 0..{n}"))
            })?;
        let from = if self.is_moving(now) {
            if !self.cfg.preempt_moves {
                return Err(AlpacaError::invalid_operation(
                    "the filter wheel is already moving",
                ));
            }
            self.slot_passed(now)
        } else {
            self.turn.to
        };
        if !self.is_moving(now) && target == from {
            return Ok(());
        }
        let up = (target + n - from) % n;
        let down = (from + n - target) % n;
        let (steps, dir) = if up <= down { (up, 1) } else { (down, -1) };
        self.turn = Turn {
            start: now,
            from,
            to: target,
            steps,
            dir,
            done_before: 0.0,
        };
        Ok(())
    }

    // ---- simulator control ----

    /// Fault injection: while stuck the wheel makes no progress but still reports −1.
    pub fn set_stuck(&mut self, now: SimTime, stuck: bool) {
        if stuck == self.stuck {
            return;
        }
        self.turn.done_before = self.progress(now);
        self.turn.start = now;
        self.stuck = stuck;
    }

    pub fn stuck(&self) -> bool {
        self.stuck
    }

    pub fn snapshot(&self, now: SimTime) -> FilterWheelSnapshot {
        FilterWheelSnapshot {
            position: self.position(now),
            target: self.turn.to as i32,
            moving: self.is_moving(now),
            filter: self.current_filter(now),
            focus_offset: self.current_focus_offset(now),
            names: self.cfg.names.clone(),
            stuck: self.stuck,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bigskies_alpaca::ErrorCode;

    const T0: SimTime = SimTime(1_780_000_000.0);

    fn wheel() -> FilterWheelModel {
        FilterWheelModel::new(FilterWheelConfig::default(), T0)
    }

    #[test]
    fn names_and_offsets_match() {
        let w = wheel();
        assert_eq!(w.names().len(), w.focus_offsets().len());
        assert_eq!(w.position(T0), 0);
        assert_eq!(w.current_filter(T0).as_deref(), Some("Luminance"));
    }

    #[test]
    fn reports_minus_one_while_moving_for_one_second_per_slot() {
        let mut w = wheel();
        w.set_position(T0, 2).unwrap();
        assert_eq!(w.position(T0), -1, "nothing completes instantly");
        assert_eq!(w.position(T0.plus(1.99)), -1);
        assert_eq!(w.current_filter(T0.plus(1.0)), None);
        assert_eq!(w.position(T0.plus(2.0)), 2);
        assert_eq!(w.current_focus_offset(T0.plus(2.0)), Some(20));
    }

    #[test]
    fn turns_the_shortest_way_round() {
        let mut w = wheel();
        // 0 → 5 on a six-slot wheel is one slot backwards.
        w.set_position(T0, 5).unwrap();
        assert_eq!(w.position(T0.plus(0.9)), -1);
        assert_eq!(w.position(T0.plus(1.0)), 5);
        // 5 → 2 is three slots either way.
        let t = T0.plus(1.0);
        w.set_position(t, 2).unwrap();
        assert_eq!(w.position(t.plus(2.9)), -1);
        assert_eq!(w.position(t.plus(3.0)), 2);
    }

    #[test]
    fn out_of_range_slots_are_invalid_values() {
        let mut w = wheel();
        assert_eq!(
            w.set_position(T0, -1).unwrap_err().code,
            ErrorCode::INVALID_VALUE
        );
        assert_eq!(
            w.set_position(T0, 6).unwrap_err().code,
            ErrorCode::INVALID_VALUE
        );
        assert_eq!(w.position(T0), 0);
    }

    #[test]
    fn writing_the_current_slot_is_a_no_op() {
        let mut w = wheel();
        w.set_position(T0, 0).unwrap();
        assert_eq!(w.position(T0), 0);
    }

    #[test]
    fn a_new_position_while_moving_is_refused_unless_preempting() {
        let mut w = wheel();
        w.set_position(T0, 3).unwrap();
        assert_eq!(
            w.set_position(T0.plus(0.5), 1).unwrap_err().code,
            ErrorCode::INVALID_OPERATION
        );
        assert_eq!(w.position(T0.plus(3.0)), 3);

        let mut p = FilterWheelModel::new(
            FilterWheelConfig {
                preempt_moves: true,
                ..Default::default()
            },
            T0,
        );
        p.set_position(T0, 3).unwrap();
        // After 1.5 s the wheel has passed slot 1; going to 2 takes one more slot.
        p.set_position(T0.plus(1.5), 2).unwrap();
        assert_eq!(p.position(T0.plus(2.4)), -1);
        assert_eq!(p.position(T0.plus(2.5)), 2);
    }

    #[test]
    fn stuck_wheel_never_arrives() {
        let mut w = wheel();
        w.set_position(T0, 1).unwrap();
        w.set_stuck(T0.plus(0.5), true);
        assert_eq!(w.position(T0.plus(100.0)), -1);
        w.set_stuck(T0.plus(100.0), false);
        assert_eq!(w.position(T0.plus(100.4)), -1);
        assert_eq!(w.position(T0.plus(100.5)), 1);
    }

    #[test]
    fn config_problems_are_reported_and_repaired() {
        assert!(FilterWheelConfig::default().problems().is_empty());
        let bad = FilterWheelConfig {
            names: vec!["R".into(), " ".into()],
            focus_offsets: vec![1],
            ..Default::default()
        };
        assert_eq!(bad.problems().len(), 2, "{:?}", bad.problems());
        let w = FilterWheelModel::new(bad, T0);
        assert_eq!(w.focus_offsets(), vec![1, 0]);
        assert_eq!(w.names()[1], "Filter 2");
    }
}
