//! A simulated camera rotator (IRotatorV4): a mechanical angle that turns at a fixed rate,
//! a sync offset that maps it to the sky position angle, and a Reverse switch that flips the
//! sense of rotation.
//!
//! Sky `Position = norm(sense × mechanical + offset)`, where `sense` is −1 when reversed.
//! The mechanical angle is kept unwrapped internally so a move is a plain linear ramp; every
//! reported angle is normalised to 0 ≤ x < 360.

use bigskies_alpaca::{AlpacaError, AlpacaResult};

use crate::clock::SimTime;

/// User-facing rotator parameters.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RotatorConfig {
    pub name: String,
    pub description: String,
    /// Rotation speed; the default turns 180° in 18 s, well inside ConformU's 60 s.
    pub degrees_per_sec: f64,
    /// StepSize reported to clients, in degrees.
    pub step_size: f64,
    pub start_mechanical: f64,
    /// Sync offset (Position − MechanicalPosition) restored at start-up.
    pub sync_offset: f64,
    pub reverse: bool,
    pub halt_available: bool,
}

impl Default for RotatorConfig {
    fn default() -> Self {
        Self {
            name: "Big Skies Rotator Simulator".into(),
            description: "Simulated camera rotator".into(),
            degrees_per_sec: 10.0,
            step_size: 0.01,
            start_mechanical: 0.0,
            sync_offset: 0.0,
            reverse: false,
            halt_available: true,
        }
    }
}

impl RotatorConfig {
    /// Every problem with this configuration (empty when it is usable).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(self.degrees_per_sec.is_finite() && self.degrees_per_sec > 0.0) {
            p.push(format!(
                "rotator degrees_per_sec must be above 0, got {}",
                self.degrees_per_sec
            ));
        }
        if !(self.step_size.is_finite() && self.step_size > 0.0 && self.step_size < 360.0) {
            p.push(format!(
                "rotator step_size must be in (0, 360), got {}",
                self.step_size
            ));
        }
        if !self.start_mechanical.is_finite() || !self.sync_offset.is_finite() {
            p.push("rotator start_mechanical and sync_offset must be finite".into());
        }
        p
    }
}

/// Normalise an angle to 0 ≤ x < 360 (also for results that round up to exactly 360).
pub fn normalize_degrees(a: f64) -> f64 {
    let r = a.rem_euclid(360.0);
    if r >= 360.0 { 0.0 } else { r }
}

/// The signed shortest turn from `from` to `to`, in (−180, 180].
fn shortest(from: f64, to: f64) -> f64 {
    let d = normalize_degrees(to - from);
    if d > 180.0 { d - 360.0 } else { d }
}

/// A turn of the mechanical angle (unwrapped degrees).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Turn {
    start: SimTime,
    from: f64,
    to: f64,
}

/// The rotator's state at one instant, for the simulator's control API.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RotatorSnapshot {
    pub position: f64,
    pub mechanical_position: f64,
    pub target_position: f64,
    pub is_moving: bool,
    pub reverse: bool,
    pub sync_offset: f64,
    pub stuck: bool,
}

/// The pure rotator model.
#[derive(Clone, Debug)]
pub struct RotatorModel {
    cfg: RotatorConfig,
    turn: Turn,
    /// Position − sense × mechanical, degrees.
    offset: f64,
    reverse: bool,
    stuck: bool,
}

impl RotatorModel {
    /// A rotator at rest at its configured mechanical angle and sync offset. Bad values are
    /// replaced by defaults; call [`RotatorConfig::problems`] first to report them instead.
    pub fn new(mut cfg: RotatorConfig, now: SimTime) -> Self {
        let d = RotatorConfig::default();
        if !(cfg.degrees_per_sec.is_finite() && cfg.degrees_per_sec > 0.0) {
            cfg.degrees_per_sec = d.degrees_per_sec;
        }
        if !(cfg.step_size.is_finite() && cfg.step_size > 0.0 && cfg.step_size < 360.0) {
            cfg.step_size = d.step_size;
        }
        let mech = if cfg.start_mechanical.is_finite() {
            normalize_degrees(cfg.start_mechanical)
        } else {
            0.0
        };
        let offset = if cfg.sync_offset.is_finite() {
            cfg.sync_offset
        } else {
            0.0
        };
        Self {
            reverse: cfg.reverse,
            cfg,
            turn: Turn {
                start: now,
                from: mech,
                to: mech,
            },
            offset,
            stuck: false,
        }
    }

    pub fn config(&self) -> &RotatorConfig {
        &self.cfg
    }

    fn sense(&self) -> f64 {
        if self.reverse { -1.0 } else { 1.0 }
    }

    /// Unwrapped mechanical angle at `now`.
    fn mech(&self, now: SimTime) -> f64 {
        let t = self.turn;
        if self.stuck {
            return t.from;
        }
        let travelled = now.since(t.start).max(0.0) * self.cfg.degrees_per_sec;
        let dist = t.to - t.from;
        if travelled >= dist.abs() {
            t.to
        } else {
            t.from + travelled * dist.signum()
        }
    }

    fn sky(&self, mech: f64) -> f64 {
        normalize_degrees(self.sense() * mech + self.offset)
    }

    /// Turn the mechanical angle by `delta` degrees (sign = direction) from where it is now.
    fn turn_by(&mut self, now: SimTime, delta: f64) {
        let here = self.mech(now);
        self.turn = Turn {
            start: now,
            from: here,
            to: here + delta,
        };
    }

    /// The sync offset (Position − MechanicalPosition when not reversed), degrees.
    pub fn sync_offset(&self) -> f64 {
        self.offset
    }

    // ---- IRotatorV4 ----

    pub fn can_reverse(&self) -> bool {
        true
    }

    pub fn is_moving(&self, now: SimTime) -> bool {
        let t = self.turn;
        t.from != t.to && (self.stuck || self.mech(now) != t.to)
    }

    pub fn mechanical_position(&self, now: SimTime) -> f64 {
        normalize_degrees(self.mech(now))
    }

    pub fn position(&self, now: SimTime) -> f64 {
        self.sky(self.mech(now))
    }

    pub fn reverse(&self) -> bool {
        self.reverse
    }

    /// `Reverse` setter. The rotator does not move, so the sky position is kept and only the
    /// sense of later rotations changes: the offset is re-derived for the new sense.
    pub fn set_reverse(&mut self, now: SimTime, reverse: bool) -> AlpacaResult<()> {
        if reverse == self.reverse {
            return Ok(());
        }
        let mech = self.mech(now);
        let pos = self.sky(mech);
        // Keep a move in progress going to the same sky angle.
        let target_sky = self.sky(self.turn.to);
        let moving = self.is_moving(now);
        self.reverse = reverse;
        self.offset = pos - self.sense() * mech;
        if moving {
            let mech_target = self.sense() * (target_sky - self.offset);
            let delta = shortest(normalize_degrees(mech), normalize_degrees(mech_target));
            self.turn_by(now, delta);
        }
        Ok(())
    }

    pub fn step_size(&self) -> f64 {
        self.cfg.step_size
    }

    /// `TargetPosition`: the sky angle the current (or last) move ends at.
    pub fn target_position(&self) -> f64 {
        self.sky(self.turn.to)
    }

    /// `Halt`: stop where the rotator is now.
    pub fn halt(&mut self, now: SimTime) -> AlpacaResult<()> {
        if !self.cfg.halt_available {
            return Err(AlpacaError::not_implemented("Halt"));
        }
        let here = self.mech(now);
        self.turn = Turn {
            start: now,
            from: here,
            to: here,
        };
        Ok(())
    }

    /// `Move`: turn by `delta` degrees relative to the current Position, in the direction of
    /// its sign. |delta| ≥ 360 is taken modulo 360 (keeping the sign).
    pub fn move_relative(&mut self, now: SimTime, delta: f64) -> AlpacaResult<()> {
        if !delta.is_finite() {
            return Err(AlpacaError::invalid_value(format!(
                "rotator move {delta} is not a number"
            )));
        }
        let delta = delta % 360.0;
        self.turn_by(now, self.sense() * delta);
        Ok(())
    }

    /// `MoveAbsolute`: turn the shortest way to sky angle `position` (normalised modulo 360).
    pub fn move_absolute(&mut self, now: SimTime, position: f64) -> AlpacaResult<()> {
        if !position.is_finite() {
            return Err(AlpacaError::invalid_value(format!(
                "rotator position {position} is not a number"
            )));
        }
        let sky_delta = shortest(self.position(now), normalize_degrees(position));
        self.turn_by(now, self.sense() * sky_delta);
        Ok(())
    }

    /// `MoveMechanical`: turn the shortest way to mechanical angle `position` (normalised
    /// modulo 360), ignoring the sync offset.
    pub fn move_mechanical(&mut self, now: SimTime, position: f64) -> AlpacaResult<()> {
        if !position.is_finite() {
            return Err(AlpacaError::invalid_value(format!(
                "rotator position {position} is not a number"
            )));
        }
        let delta = shortest(self.mechanical_position(now), normalize_degrees(position));
        self.turn_by(now, delta);
        Ok(())
    }

    /// `Sync`: from now on the current mechanical angle reads as sky angle `position`.
    /// Refused (0x40B) while the rotator is turning.
    pub fn sync(&mut self, now: SimTime, position: f64) -> AlpacaResult<()> {
        if !position.is_finite() {
            return Err(AlpacaError::invalid_value(format!(
                "rotator sync {position} is not a number"
            )));
        }
        if self.is_moving(now) {
            return Err(AlpacaError::invalid_operation(
                "cannot sync while the rotator is moving",
            ));
        }
        let mech = self.mech(now);
        // Rebase the unwrapped angle so it stays small over long runs.
        let base = normalize_degrees(mech);
        self.turn = Turn {
            start: now,
            from: base,
            to: base,
        };
        self.offset = normalize_degrees(position) - self.sense() * base;
        Ok(())
    }

    // ---- simulator control ----

    /// Fault injection: while stuck the rotator makes no progress but still reports IsMoving.
    pub fn set_stuck(&mut self, now: SimTime, stuck: bool) {
        if stuck == self.stuck {
            return;
        }
        let here = self.mech(now);
        self.stuck = stuck;
        self.turn = Turn {
            start: now,
            from: here,
            to: self.turn.to,
        };
    }

    pub fn stuck(&self) -> bool {
        self.stuck
    }

    pub fn snapshot(&self, now: SimTime) -> RotatorSnapshot {
        RotatorSnapshot {
            position: self.position(now),
            mechanical_position: self.mechanical_position(now),
            target_position: self.target_position(),
            is_moving: self.is_moving(now),
            reverse: self.reverse,
            sync_offset: self.offset,
            stuck: self.stuck,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bigskies_alpaca::ErrorCode;

    const T0: SimTime = SimTime(1_780_000_000.0);

    fn rotator() -> RotatorModel {
        RotatorModel::new(RotatorConfig::default(), T0)
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        shortest(a, b).abs() <= tol
    }

    #[test]
    fn normalisation_keeps_angles_in_range() {
        assert_eq!(normalize_degrees(-45.0), 315.0);
        assert_eq!(normalize_degrees(405.0), 45.0);
        assert_eq!(normalize_degrees(360.0), 0.0);
        assert_eq!(
            normalize_degrees(-1e-17),
            0.0,
            "rounding must not yield 360"
        );
        assert_eq!(shortest(350.0, 10.0), 20.0);
        assert_eq!(shortest(10.0, 350.0), -20.0);
    }

    #[test]
    fn move_absolute_takes_angle_over_rate() {
        let mut r = rotator();
        assert!(!r.is_moving(T0));
        r.move_absolute(T0, 45.0).unwrap();
        assert!(r.is_moving(T0), "nothing completes instantly");
        assert!(close(r.target_position(), 45.0, 1e-9));
        assert!(close(r.position(T0.plus(2.0)), 20.0, 1e-9));
        assert!(r.is_moving(T0.plus(4.4)));
        assert!(!r.is_moving(T0.plus(4.5)));
        assert!(close(r.position(T0.plus(4.5)), 45.0, 1e-9));
    }

    #[test]
    fn move_absolute_goes_the_short_way_and_normalises() {
        let mut r = rotator();
        r.move_absolute(T0, -405.0).unwrap();
        // −405 ≡ 315, which is 45° backwards from 0.
        assert!(close(r.position(T0.plus(2.0)), 340.0, 1e-9));
        assert!(close(r.position(T0.plus(5.0)), 315.0, 1e-9));
        assert!((0.0..360.0).contains(&r.target_position()));
    }

    #[test]
    fn relative_moves_follow_their_sign_and_wrap() {
        let mut r = rotator();
        r.move_relative(T0, -10.0).unwrap();
        assert!(close(r.position(T0.plus(2.0)), 350.0, 1e-9));
        let t = T0.plus(2.0);
        r.move_relative(t, 375.0).unwrap();
        assert!(close(r.target_position(), 5.0, 1e-9));
        assert!(close(r.position(t.plus(10.0)), 5.0, 1e-9));
        let t = t.plus(10.0);
        r.move_relative(t, 270.0).unwrap();
        // The long way, as asked: after 9 s it is 90° along.
        assert!(close(r.position(t.plus(9.0)), 95.0, 1e-9));
        assert!(close(r.position(t.plus(27.0)), 275.0, 1e-9));
    }

    #[test]
    fn sync_offsets_position_to_within_a_thousandth() {
        let mut r = rotator();
        r.move_mechanical(T0, 90.0).unwrap();
        let t = T0.plus(20.0);
        for p in [90.0, 120.0, 60.0, 0.0, 30.0, 330.0, 359.9999] {
            r.sync(t, p).unwrap();
            assert!(close(r.position(t), p, 0.001), "{p} → {}", r.position(t));
            assert!(close(r.mechanical_position(t), 90.0, 1e-9));
        }
        r.sync(t, 120.0).unwrap();
        r.move_absolute(t, 200.0).unwrap();
        let t = t.plus(30.0);
        assert!(close(r.position(t), 200.0, 0.001));
        assert!(close(r.mechanical_position(t), 170.0, 0.001));
        // MoveMechanical ignores the offset.
        r.move_mechanical(t, 10.0).unwrap();
        let t = t.plus(30.0);
        assert!(close(r.mechanical_position(t), 10.0, 1e-9));
        assert!(close(r.position(t), 40.0, 0.001));
        assert!((0.0..360.0).contains(&r.position(t)));
    }

    #[test]
    fn sync_while_moving_is_refused() {
        let mut r = rotator();
        r.move_absolute(T0, 90.0).unwrap();
        assert_eq!(
            r.sync(T0.plus(1.0), 10.0).unwrap_err().code,
            ErrorCode::INVALID_OPERATION
        );
    }

    #[test]
    fn reverse_flips_the_sense_without_moving() {
        let mut r = rotator();
        assert!(r.can_reverse());
        r.sync(T0, 100.0).unwrap();
        r.set_reverse(T0, true).unwrap();
        assert!(r.reverse());
        assert!(
            close(r.position(T0), 100.0, 1e-9),
            "toggling Reverse does not move the sky angle"
        );
        r.move_relative(T0, 10.0).unwrap();
        let t = T0.plus(5.0);
        assert!(close(r.position(t), 110.0, 1e-9));
        assert!(
            close(r.mechanical_position(t), 350.0, 1e-9),
            "the motor turned the other way"
        );
        r.move_absolute(t, 100.0).unwrap();
        let t = t.plus(5.0);
        assert!(close(r.mechanical_position(t), 0.0, 1e-9));
        r.set_reverse(t, false).unwrap();
        assert!(close(r.position(t), 100.0, 1e-9));
    }

    #[test]
    fn halt_stops_and_the_target_follows() {
        let mut r = rotator();
        r.move_absolute(T0, 90.0).unwrap();
        r.halt(T0.plus(3.0)).unwrap();
        assert!(!r.is_moving(T0.plus(3.0)));
        assert!(close(r.position(T0.plus(60.0)), 30.0, 1e-9));
        assert!(close(r.target_position(), 30.0, 1e-9));
    }

    #[test]
    fn stuck_rotator_reports_moving_without_progress() {
        let mut r = rotator();
        r.move_absolute(T0, 90.0).unwrap();
        r.set_stuck(T0.plus(1.0), true);
        assert!(r.is_moving(T0.plus(100.0)));
        assert!(close(r.position(T0.plus(100.0)), 10.0, 1e-9));
        r.set_stuck(T0.plus(100.0), false);
        assert!(close(r.position(T0.plus(108.0)), 90.0, 1e-9));
        assert!(!r.is_moving(T0.plus(108.0)));
    }

    #[test]
    fn every_reported_angle_stays_in_range() {
        let mut r = rotator();
        let mut t = T0;
        let args = [
            -1e9,
            -725.5,
            -405.0,
            -360.0,
            -180.0,
            -1e-12,
            0.0,
            1e-12,
            179.999,
            359.9999999,
            360.0,
            405.0,
            1e7,
        ];
        for (i, &a) in args.iter().enumerate() {
            match i % 4 {
                0 => r.move_relative(t, a).unwrap(),
                1 => r.move_absolute(t, a).unwrap(),
                2 => r.move_mechanical(t, a).unwrap(),
                _ => r.sync(t.plus(100.0), a).unwrap(),
            }
            if i % 2 == 0 {
                r.set_reverse(t, !r.reverse()).unwrap();
            }
            for dt in [0.0, 0.5, 7.0, 100.0] {
                let now = t.plus(dt);
                for v in [
                    r.position(now),
                    r.mechanical_position(now),
                    r.target_position(),
                ] {
                    assert!((0.0..360.0).contains(&v), "{v} after {a}");
                }
            }
            t = t.plus(200.0);
        }
        assert_eq!(
            r.move_absolute(t, f64::NAN).unwrap_err().code,
            ErrorCode::INVALID_VALUE
        );
    }

    #[test]
    fn offsets_persist_through_config() {
        let r = RotatorModel::new(
            RotatorConfig {
                start_mechanical: 90.0,
                sync_offset: 30.0,
                ..Default::default()
            },
            T0,
        );
        assert!(close(r.position(T0), 120.0, 1e-9));
        assert!(RotatorConfig::default().problems().is_empty());
        assert_eq!(
            RotatorConfig {
                degrees_per_sec: -1.0,
                ..Default::default()
            }
            .problems()
            .len(),
            1
        );
    }
}
