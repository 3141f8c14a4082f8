//! A simulated focuser (IFocuserV4): absolute (or relative) moves at a fixed step rate,
//! silent clamping of out-of-range targets, halt, a slowly varying temperature and
//! temperature compensation that really moves the reported position.
//!
//! The model is pure state: a move is stored as (start time, start position, target) and the
//! position is computed from the step rate whenever it is read. Temperature is a smooth
//! deterministic function of the simulated clock, so two runs of a scenario agree exactly.

use bigskies_alpaca::{AlpacaError, AlpacaResult};

use crate::clock::SimTime;

/// User-facing focuser parameters.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FocuserConfig {
    pub name: String,
    pub description: String,
    /// Absolute focuser (moves to a position) or relative (moves by a step count).
    pub absolute: bool,
    pub max_step: i32,
    /// Largest single move; a move further than this is cut short to this many steps.
    pub max_increment: i32,
    pub start_position: i32,
    /// Motor speed. The default traverses the whole range in 25 s, inside ConformU's 60 s.
    pub steps_per_sec: f64,
    /// Time the focuser keeps reporting IsMoving after arriving (mechanical settling).
    pub settle_secs: f64,
    /// StepSize in microns.
    pub step_size_microns: f64,
    pub halt_available: bool,
    pub temp_comp_available: bool,
    /// Steps the best-focus position shifts per °C (and that TempComp applies).
    pub temp_comp_steps_per_degree: f64,
    /// Mean ambient temperature around which the probe reading varies.
    pub temperature_mean: f64,
    /// Half the peak-to-peak daily-ish swing of the temperature probe.
    pub temperature_amplitude: f64,
    /// Period of the temperature swing in seconds.
    pub temperature_period_secs: f64,
    /// The position at which the optics are in focus at `temperature_mean` with no filter offset.
    pub best_focus: i32,
}

impl Default for FocuserConfig {
    fn default() -> Self {
        Self {
            name: "Big Skies Focuser Simulator".into(),
            description: "Simulated absolute focuser with temperature compensation".into(),
            absolute: true,
            max_step: 50_000,
            max_increment: 50_000,
            start_position: 25_000,
            steps_per_sec: 2_000.0,
            settle_secs: 0.2,
            step_size_microns: 20.0,
            halt_available: true,
            temp_comp_available: true,
            temp_comp_steps_per_degree: 10.0,
            temperature_mean: 5.0,
            temperature_amplitude: 2.0,
            temperature_period_secs: 4.0 * 3600.0,
            best_focus: 25_000,
        }
    }
}

impl FocuserConfig {
    /// Every problem with this configuration (empty when it is usable).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.max_step < 1 {
            p.push(format!(
                "focuser max_step must be at least 1, got {}",
                self.max_step
            ));
        }
        if self.max_increment < 1 || self.max_increment > self.max_step {
            p.push(format!(
                "focuser max_increment must be 1..=max_step ({}), got {}",
                self.max_step, self.max_increment
            ));
        }
        if !(0..=self.max_step).contains(&self.start_position) {
            p.push(format!(
                "focuser start_position {} is outside 0..=max_step",
                self.start_position
            ));
        }
        if !(self.steps_per_sec.is_finite() && self.steps_per_sec > 0.0) {
            p.push(format!(
                "focuser steps_per_sec must be above 0, got {}",
                self.steps_per_sec
            ));
        }
        if !(self.settle_secs.is_finite() && self.settle_secs >= 0.0) {
            p.push(format!(
                "focuser settle_secs must be 0 or more, got {}",
                self.settle_secs
            ));
        }
        if !(self.step_size_microns.is_finite() && self.step_size_microns > 0.0) {
            p.push(format!(
                "focuser step_size_microns must be above 0, got {}",
                self.step_size_microns
            ));
        }
        if !(self.temperature_period_secs.is_finite() && self.temperature_period_secs > 0.0) {
            p.push("focuser temperature_period_secs must be above 0".into());
        }
        if !self.temperature_mean.is_finite() || !self.temperature_amplitude.is_finite() {
            p.push("focuser temperature parameters must be finite".into());
        }
        if !self.temp_comp_steps_per_degree.is_finite() {
            p.push("focuser temp_comp_steps_per_degree must be finite".into());
        }
        p
    }
}

/// A move in progress (or the last one), in motor steps.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Move {
    /// When the motor started (or was last re-anchored by a stuck/unstuck change).
    start: SimTime,
    from: f64,
    to: f64,
}

/// The focuser's state at one instant, for the simulator's control API.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FocuserSnapshot {
    pub position: i32,
    pub target: i32,
    pub is_moving: bool,
    pub temperature: f64,
    pub temp_comp: bool,
    /// Steps currently added by temperature compensation.
    pub temp_comp_offset: i32,
    pub stuck: bool,
    pub max_step: i32,
}

/// The pure focuser model.
#[derive(Clone, Debug)]
pub struct FocuserModel {
    cfg: FocuserConfig,
    /// Motor position ignoring temperature compensation.
    motion: Move,
    temp_comp: bool,
    /// Temperature at which the current compensation offset was zero.
    temp_comp_ref: f64,
    stuck: bool,
}

impl FocuserModel {
    /// A focuser at its start position. Configuration values out of range are clamped; call
    /// [`FocuserConfig::problems`] first to report them instead.
    pub fn new(mut cfg: FocuserConfig, now: SimTime) -> Self {
        cfg.max_step = cfg.max_step.max(1);
        cfg.max_increment = cfg.max_increment.clamp(1, cfg.max_step);
        cfg.start_position = cfg.start_position.clamp(0, cfg.max_step);
        if !(cfg.steps_per_sec.is_finite() && cfg.steps_per_sec > 0.0) {
            cfg.steps_per_sec = FocuserConfig::default().steps_per_sec;
        }
        if !(cfg.settle_secs.is_finite() && cfg.settle_secs >= 0.0) {
            cfg.settle_secs = 0.0;
        }
        if !(cfg.temperature_period_secs.is_finite() && cfg.temperature_period_secs > 0.0) {
            cfg.temperature_period_secs = FocuserConfig::default().temperature_period_secs;
        }
        let p = f64::from(cfg.start_position);
        // Anchored far enough back that the focuser starts at rest, settling included.
        let start = now.plus(-cfg.settle_secs - 1.0);
        Self {
            cfg,
            motion: Move {
                start,
                from: p,
                to: p,
            },
            temp_comp: false,
            temp_comp_ref: 0.0,
            stuck: false,
        }
    }

    pub fn config(&self) -> &FocuserConfig {
        &self.cfg
    }

    /// Motor position (steps, unrounded) at `now`, without temperature compensation.
    fn motor(&self, now: SimTime) -> f64 {
        let m = self.motion;
        if self.stuck {
            return m.from;
        }
        let travelled = now.since(m.start).max(0.0) * self.cfg.steps_per_sec;
        let dist = m.to - m.from;
        if travelled >= dist.abs() {
            m.to
        } else {
            m.from + travelled * dist.signum()
        }
    }

    /// When the current move stops reporting IsMoving (arrival plus settling).
    fn done_at(&self) -> SimTime {
        let m = self.motion;
        m.start
            .plus((m.to - m.from).abs() / self.cfg.steps_per_sec + self.cfg.settle_secs)
    }

    fn temp_comp_offset(&self, now: SimTime) -> f64 {
        if self.temp_comp {
            self.cfg.temp_comp_steps_per_degree * (self.temperature_at(now) - self.temp_comp_ref)
        } else {
            0.0
        }
    }

    /// Reported position in steps (motor + compensation, within 0..=MaxStep), unrounded.
    fn position_f(&self, now: SimTime) -> f64 {
        (self.motor(now) + self.temp_comp_offset(now)).clamp(0.0, f64::from(self.cfg.max_step))
    }

    fn position_steps(&self, now: SimTime) -> i32 {
        // In range by construction: position_f is clamped to 0..=max_step.
        self.position_f(now).round() as i32
    }

    /// Restart the current move's anchor at `now` (so its start value can be shifted).
    fn re_anchor(&mut self, now: SimTime) {
        let here = self.motor(now);
        // An arrived move keeps its anchor so the settle time still counts.
        if !self.stuck && here != self.motion.to {
            self.motion = Move {
                start: now,
                from: here,
                to: self.motion.to,
            };
        }
    }

    /// The temperature probe at `now`: a slow smooth swing around the mean (no RNG, so
    /// scenarios are repeatable), quantised to 0.01 °C like a real probe.
    pub fn temperature_at(&self, now: SimTime) -> f64 {
        let w = std::f64::consts::TAU / self.cfg.temperature_period_secs;
        let t = now.secs();
        let raw = self.cfg.temperature_mean
            + self.cfg.temperature_amplitude
                * (0.8 * (w * t).sin() + 0.2 * (3.0 * w * t + 1.0).sin());
        (raw * 100.0).round() / 100.0
    }

    // ---- IFocuserV4 ----

    pub fn absolute(&self) -> bool {
        self.cfg.absolute
    }

    pub fn is_moving(&self, now: SimTime) -> bool {
        self.stuck && self.motion.from != self.motion.to || now < self.done_at()
    }

    pub fn max_increment(&self) -> i32 {
        self.cfg.max_increment
    }

    pub fn max_step(&self) -> i32 {
        self.cfg.max_step
    }

    /// `Position`: 0x400 on a relative focuser.
    pub fn position(&self, now: SimTime) -> AlpacaResult<i32> {
        if !self.cfg.absolute {
            return Err(AlpacaError::not_implemented(
                "Position on a relative focuser",
            ));
        }
        Ok(self.position_steps(now))
    }

    pub fn step_size(&self) -> f64 {
        self.cfg.step_size_microns
    }

    pub fn temp_comp(&self) -> bool {
        self.temp_comp
    }

    pub fn temp_comp_available(&self) -> bool {
        self.cfg.temp_comp_available
    }

    pub fn temperature(&self, now: SimTime) -> f64 {
        self.temperature_at(now)
    }

    /// `TempComp` setter: 0x400 without compensation hardware. Turning it off keeps the
    /// compensated position (the motor really moved there).
    pub fn set_temp_comp(&mut self, now: SimTime, on: bool) -> AlpacaResult<()> {
        if !self.cfg.temp_comp_available {
            return Err(AlpacaError::not_implemented("TempComp"));
        }
        if on == self.temp_comp {
            return Ok(());
        }
        let offset = self.temp_comp_offset(now);
        self.re_anchor(now);
        // Fold the compensation into the motor so the reported position does not jump.
        self.motion.from += offset;
        self.motion.to += offset;
        self.temp_comp = on;
        self.temp_comp_ref = self.temperature_at(now);
        Ok(())
    }

    /// `Halt`: stop where the motor is now.
    pub fn halt(&mut self, now: SimTime) -> AlpacaResult<()> {
        if !self.cfg.halt_available {
            return Err(AlpacaError::not_implemented("Halt"));
        }
        let here = self.motor(now);
        // Stopped at once: anchored in the past so nothing is left to settle.
        self.motion = Move {
            start: now.plus(-self.cfg.settle_secs),
            from: here,
            to: here,
        };
        Ok(())
    }

    /// `Move`: on an absolute focuser a target position, clamped silently to 0..=MaxStep and
    /// to MaxIncrement steps from here; on a relative focuser a step count within
    /// ±MaxIncrement (0x401 otherwise). Accepted with TempComp on (IFocuserV3+ rule).
    pub fn move_to(&mut self, now: SimTime, position: i32) -> AlpacaResult<()> {
        let max = f64::from(self.cfg.max_step);
        let inc = f64::from(self.cfg.max_increment);
        let here = self.position_f(now);
        let target = if self.cfg.absolute {
            f64::from(position)
                .clamp(0.0, max)
                .clamp(here - inc, here + inc)
        } else {
            if position.unsigned_abs() > self.cfg.max_increment.unsigned_abs() {
                return Err(AlpacaError::invalid_value(format!(
                    "a relative move must be within ±{} steps, got {position}",
                    self.cfg.max_increment
                )));
            }
            (here + f64::from(position)).clamp(0.0, max)
        };
        // Start from the reported position; compensation restarts from zero at this temperature.
        self.temp_comp_ref = self.temperature_at(now);
        self.motion = Move {
            start: now,
            from: here,
            to: target.round(),
        };
        Ok(())
    }

    // ---- simulator control ----

    /// Fault injection: while stuck the motor makes no progress but a move still reports
    /// IsMoving.
    pub fn set_stuck(&mut self, now: SimTime, stuck: bool) {
        if stuck == self.stuck {
            return;
        }
        let here = self.motor(now);
        let moving = self.is_moving(now);
        self.stuck = stuck;
        if moving && here != self.motion.to {
            self.motion = Move {
                start: now,
                from: here,
                to: self.motion.to,
            };
        }
    }

    pub fn stuck(&self) -> bool {
        self.stuck
    }

    /// How far (in steps) the focuser is from best focus at `now`. The best-focus position
    /// drifts with temperature (which is what TempComp corrects) and shifts by the current
    /// filter's focus offset. Positive = focuser beyond focus.
    pub fn focus_error_steps(&self, now: SimTime, filter_offset: i32) -> f64 {
        let best = f64::from(self.cfg.best_focus)
            + f64::from(filter_offset)
            + self.cfg.temp_comp_steps_per_degree
                * (self.temperature_at(now) - self.cfg.temperature_mean);
        self.motor(now) + self.temp_comp_offset(now) - best
    }

    pub fn snapshot(&self, now: SimTime) -> FocuserSnapshot {
        FocuserSnapshot {
            position: self.position_steps(now),
            target: self.motion.to.round() as i32,
            is_moving: self.is_moving(now),
            temperature: self.temperature_at(now),
            temp_comp: self.temp_comp,
            temp_comp_offset: self.temp_comp_offset(now).round() as i32,
            stuck: self.stuck,
            max_step: self.cfg.max_step,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bigskies_alpaca::ErrorCode;

    const T0: SimTime = SimTime(1_780_000_000.0);

    fn focuser() -> FocuserModel {
        FocuserModel::new(FocuserConfig::default(), T0)
    }

    #[test]
    fn starts_at_rest_at_the_start_position() {
        let f = focuser();
        assert!(!f.is_moving(T0));
        assert_eq!(f.position(T0), Ok(25_000));
        assert!(f.absolute());
        assert!(f.max_increment() >= 1 && f.max_increment() <= f.max_step());
    }

    #[test]
    fn a_move_takes_distance_over_rate_plus_settling() {
        let mut f = focuser();
        f.move_to(T0, 35_000).unwrap();
        assert!(f.is_moving(T0), "nothing completes instantly");
        // 10 000 steps at 2 000 steps/s = 5 s.
        assert_eq!(f.position(T0.plus(2.5)), Ok(30_000));
        assert!(f.is_moving(T0.plus(4.9)));
        assert_eq!(f.position(T0.plus(5.0)), Ok(35_000));
        assert!(f.is_moving(T0.plus(5.1)), "still settling");
        assert!(!f.is_moving(T0.plus(5.25)));
    }

    #[test]
    fn a_full_traverse_fits_conformu_timeout() {
        let mut f = focuser();
        f.move_to(T0, 0).unwrap();
        let t = T0.plus(20.0);
        assert!(!f.is_moving(t));
        f.move_to(t, f.max_step()).unwrap();
        assert!(f.is_moving(t.plus(24.0)));
        assert!(!f.is_moving(t.plus(60.0)));
        assert_eq!(f.position(t.plus(60.0)), Ok(50_000));
    }

    #[test]
    fn out_of_range_targets_are_clamped_silently() {
        let mut f = focuser();
        f.move_to(T0, -10).unwrap();
        assert_eq!(f.position(T0.plus(60.0)), Ok(0));
        let t = T0.plus(60.0);
        f.move_to(t, 50_010).unwrap();
        assert_eq!(f.position(t.plus(60.0)), Ok(50_000));
    }

    #[test]
    fn halt_stops_where_the_motor_is() {
        let mut f = focuser();
        f.move_to(T0, 45_000).unwrap();
        let t = T0.plus(1.0);
        f.halt(t).unwrap();
        assert!(!f.is_moving(t));
        assert_eq!(f.position(t.plus(30.0)), Ok(27_000));
    }

    #[test]
    fn max_increment_limits_one_move() {
        let mut f = FocuserModel::new(
            FocuserConfig {
                max_increment: 1_000,
                ..Default::default()
            },
            T0,
        );
        f.move_to(T0, 40_000).unwrap();
        assert_eq!(f.position(T0.plus(60.0)), Ok(26_000));
    }

    #[test]
    fn relative_focuser_moves_by_steps_and_hides_position() {
        let cfg = FocuserConfig {
            absolute: false,
            max_increment: 5_000,
            ..Default::default()
        };
        let mut f = FocuserModel::new(cfg, T0);
        assert_eq!(f.position(T0).unwrap_err().code, ErrorCode::NOT_IMPLEMENTED);
        assert_eq!(
            f.move_to(T0, 6_000).unwrap_err().code,
            ErrorCode::INVALID_VALUE
        );
        f.move_to(T0, -4_000).unwrap();
        assert_eq!(f.snapshot(T0.plus(10.0)).position, 21_000);
    }

    #[test]
    fn temperature_varies_slowly_and_deterministically() {
        let f = focuser();
        let a = f.temperature(T0);
        let b = f.temperature(T0.plus(1.0));
        assert!((a - b).abs() <= 0.02, "{a} vs {b}");
        assert!((-50.0..=50.0).contains(&a));
        let spread = (0..48)
            .map(|i| f.temperature(T0.plus(f64::from(i) * 600.0)))
            .fold((f64::MAX, f64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
        assert!(
            spread.1 - spread.0 > 1.0,
            "the probe should swing over hours: {spread:?}"
        );
        assert_eq!(focuser().temperature(T0), a);
    }

    #[test]
    fn temp_comp_shifts_position_with_temperature_and_keeps_focus() {
        let mut f = focuser();
        f.set_temp_comp(T0, true).unwrap();
        assert!(f.temp_comp());
        let err0 = f.focus_error_steps(T0, 0);
        // Find an instant an hour or so later where the temperature has moved noticeably.
        let t = T0.plus(3600.0);
        let dt = f.temperature(t) - f.temperature(T0);
        assert!(dt.abs() > 0.3, "{dt}");
        let expected = 25_000.0 + 10.0 * dt;
        assert!((f64::from(f.position(t).unwrap()) - expected).abs() <= 1.0);
        assert!(!f.is_moving(t), "compensation is not a commanded move");
        assert!(
            (f.focus_error_steps(t, 0) - err0).abs() < 1.0,
            "compensation holds focus"
        );

        // Without compensation the focus error drifts instead.
        let g = focuser();
        assert!((g.focus_error_steps(t, 0) - g.focus_error_steps(T0, 0)).abs() > 3.0);

        // Turning it off keeps the compensated position.
        let before = f.position(t).unwrap();
        f.set_temp_comp(t, false).unwrap();
        assert_eq!(f.position(t), Ok(before));
        assert_eq!(f.position(t.plus(3600.0)), Ok(before));
    }

    #[test]
    fn moves_are_accepted_with_temp_comp_on() {
        let mut f = focuser();
        f.set_temp_comp(T0, true).unwrap();
        f.move_to(T0, 30_000).unwrap();
        assert!(f.is_moving(T0.plus(1.0)));
        let p = f.position(T0.plus(10.0)).unwrap();
        assert!((p - 30_000).abs() <= 2, "{p}");
    }

    #[test]
    fn temp_comp_write_without_hardware_is_not_implemented() {
        let mut f = FocuserModel::new(
            FocuserConfig {
                temp_comp_available: false,
                ..Default::default()
            },
            T0,
        );
        assert!(!f.temp_comp());
        assert_eq!(
            f.set_temp_comp(T0, true).unwrap_err().code,
            ErrorCode::NOT_IMPLEMENTED
        );
    }

    #[test]
    fn stuck_motor_reports_moving_without_progress() {
        let mut f = focuser();
        f.move_to(T0, 27_000).unwrap();
        f.set_stuck(T0.plus(0.5), true);
        assert_eq!(f.position(T0.plus(100.0)), Ok(26_000));
        assert!(f.is_moving(T0.plus(100.0)));
        f.set_stuck(T0.plus(100.0), false);
        assert!(f.is_moving(T0.plus(100.4)));
        assert_eq!(f.position(T0.plus(100.5)), Ok(27_000));
        assert!(!f.is_moving(T0.plus(101.0)));
    }

    #[test]
    fn config_problems_are_reported() {
        assert!(FocuserConfig::default().problems().is_empty());
        let bad = FocuserConfig {
            max_step: 10,
            max_increment: 20,
            steps_per_sec: 0.0,
            ..Default::default()
        };
        assert_eq!(bad.problems().len(), 3, "{:?}", bad.problems());
        let parsed: Result<FocuserConfig, _> = serde_json::from_str(r#"{"max_stp": 3}"#);
        assert!(parsed.is_err(), "unknown fields are refused");
        let parsed: FocuserConfig = serde_json::from_str(r#"{"max_step": 3000}"#).unwrap();
        assert_eq!(parsed.max_step, 3000);
        assert_eq!(parsed.steps_per_sec, 2_000.0);
    }
}
