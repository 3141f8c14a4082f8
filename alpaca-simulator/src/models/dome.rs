//! A simulated observatory dome (IDomeV3): azimuth rotation the short way round at a fixed
//! rate, a shutter that takes its time to open and close, an altitude-controlled opening,
//! park/home, sync, abort, and slaving to a telescope's azimuth.
//!
//! Each moving part is a `Ramp`: start time, start value, end value, rate. Values are
//! computed when read; nothing ticks. `Slewing` is true while any part moves, the shutter
//! included (IDomeV3).
//!
//! # Slaving
//!
//! The dome cannot see the mount by itself (models are independent and pure), so slaving
//! is fed from outside: while [`DomeModel::slaved`] is true, the wiring layer calls
//! [`DomeModel::slave_to`] with the mount's azimuth at the same instant **before every dome
//! request** (and whenever else it likes, e.g. on a state dump), for example
//!
//! ```text
//! if dome.with_model(|d, _| d.slaved()) {
//!     let az = telescope.with_model(|t, now| t.snapshot(now).azimuth); // lock released here
//!     dome.with_model(|d, now| d.slave_to(now, az));
//! }
//! ```
//!
//! Take the telescope's lock and release it before taking the dome's, never both at once.
//! Between calls the dome keeps rotating towards the last azimuth it was given, so a
//! client polling the dome sees it chase a moving mount.

use bigskies_alpaca::types::ShutterState;
use bigskies_alpaca::{AlpacaError, AlpacaResult};
use serde::{Deserialize, Serialize};

use super::astro;
use crate::clock::SimTime;

/// User-facing dome parameters (the `[devices.dome.model]` table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DomeConfig {
    pub name: String,
    pub description: String,
    /// Rotation speed, degrees per second.
    pub azimuth_rate: f64,
    /// Speed of the altitude-controlled opening, degrees per second.
    pub altitude_rate: f64,
    /// Seconds for a full shutter open or close.
    pub shutter_secs: f64,
    pub park_azimuth: f64,
    pub home_azimuth: f64,
    /// Lowest and highest opening altitude, degrees.
    pub min_altitude: f64,
    pub max_altitude: f64,
    /// When slaved, the dome only turns once the mount is further than this from its
    /// azimuth (degrees), like a real slit controller's dead band.
    pub slave_tolerance: f64,
}

impl Default for DomeConfig {
    fn default() -> Self {
        Self {
            name: "Big Skies Dome Simulator".into(),
            description: "Simulated rotating dome with shutter and slaving".into(),
            azimuth_rate: 15.0,
            altitude_rate: 30.0,
            shutter_secs: 3.0,
            park_azimuth: 180.0,
            home_azimuth: 0.0,
            min_altitude: 0.0,
            max_altitude: 90.0,
            slave_tolerance: 1.0,
        }
    }
}

impl DomeConfig {
    /// Every problem with this configuration (empty when it is usable).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (what, v) in [
            ("azimuth_rate", self.azimuth_rate),
            ("altitude_rate", self.altitude_rate),
            ("shutter_secs", self.shutter_secs),
        ] {
            if !(v.is_finite() && v > 0.0) {
                p.push(format!("dome {what} must be above 0, got {v}"));
            }
        }
        for (what, v) in [
            ("park_azimuth", self.park_azimuth),
            ("home_azimuth", self.home_azimuth),
        ] {
            if !(0.0..360.0).contains(&v) {
                p.push(format!("dome {what} must be 0..<360 degrees, got {v}"));
            }
        }
        if !(0.0..=90.0).contains(&self.min_altitude)
            || !(0.0..=90.0).contains(&self.max_altitude)
            || self.min_altitude > self.max_altitude
        {
            p.push(format!(
                "dome altitude limits must satisfy 0 <= min_altitude <= max_altitude <= 90, got {}..{}",
                self.min_altitude, self.max_altitude
            ));
        }
        if !(self.slave_tolerance.is_finite() && (0.0..=45.0).contains(&self.slave_tolerance)) {
            p.push(format!(
                "dome slave_tolerance must be 0..=45 degrees, got {}",
                self.slave_tolerance
            ));
        }
        p
    }
}

/// Linear motion of one part from `from` to `to` at `rate` units per second.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Ramp {
    start: SimTime,
    from: f64,
    to: f64,
    rate: f64,
}

impl Ramp {
    fn still(at: f64, rate: f64) -> Self {
        Self {
            start: SimTime(f64::NEG_INFINITY),
            from: at,
            to: at,
            rate,
        }
    }

    fn end(&self) -> SimTime {
        self.start.plus((self.to - self.from).abs() / self.rate)
    }

    fn at(&self, t: SimTime) -> f64 {
        let d = self.to - self.from;
        let covered = t.since(self.start).max(0.0) * self.rate;
        if covered >= d.abs() {
            self.to
        } else {
            self.from + d.signum() * covered
        }
    }

    fn moving(&self, t: SimTime) -> bool {
        self.from != self.to && t < self.end()
    }

    /// The same motion, re-aimed from wherever it is at `t`.
    fn retarget(&self, t: SimTime, to: f64) -> Self {
        Self {
            start: t,
            from: self.at(t),
            to,
            rate: self.rate,
        }
    }

    /// Delayed by `secs` if still under way at `t` (used when a stuck part is released).
    fn delayed(mut self, t: SimTime, secs: f64) -> Self {
        if self.moving(t) {
            self.start = self.start.plus(secs);
        }
        self
    }
}

/// Where an azimuth motion is headed, so AtPark/AtHome can be set on arrival.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DomeGoal {
    Park,
    Home,
}

/// The dome's state at one instant, for the control API.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DomeSnapshot {
    pub azimuth: f64,
    pub target_azimuth: f64,
    pub altitude: f64,
    pub shutter_status: ShutterState,
    /// 0 = closed, 1 = fully open.
    pub shutter_open_fraction: f64,
    pub slewing: bool,
    pub rotating: bool,
    pub slaved: bool,
    pub at_home: bool,
    pub at_park: bool,
    pub stuck: bool,
}

/// The pure dome model.
#[derive(Clone, Debug)]
pub struct DomeModel {
    cfg: DomeConfig,
    /// Unwrapped azimuth (read modulo 360).
    azimuth: Ramp,
    goal: Option<DomeGoal>,
    altitude: Ramp,
    /// Shutter opening, 0 (closed) to 1 (open).
    shutter: Ramp,
    /// The shutter was stopped part-way (AbortSlew): ShutterStatus Error until commanded.
    shutter_error: bool,
    park_azimuth: f64,
    slaved: bool,
    at_park: bool,
    at_home: bool,
    stuck_since: Option<SimTime>,
}

impl DomeModel {
    /// A dome at rest at its park azimuth (AtPark), opening at the lowest altitude, shutter
    /// closed. Out-of-range configuration values are replaced by defaults; call
    /// [`DomeConfig::problems`] first to report them.
    pub fn new(mut cfg: DomeConfig, _now: SimTime) -> Self {
        let d = DomeConfig::default();
        for (v, dv) in [
            (&mut cfg.azimuth_rate, d.azimuth_rate),
            (&mut cfg.altitude_rate, d.altitude_rate),
            (&mut cfg.shutter_secs, d.shutter_secs),
        ] {
            if !(v.is_finite() && *v > 0.0) {
                *v = dv;
            }
        }
        for (v, dv) in [
            (&mut cfg.park_azimuth, d.park_azimuth),
            (&mut cfg.home_azimuth, d.home_azimuth),
        ] {
            if !(0.0..360.0).contains(v) {
                *v = dv;
            }
        }
        if !(0.0..=90.0).contains(&cfg.min_altitude)
            || !(0.0..=90.0).contains(&cfg.max_altitude)
            || cfg.min_altitude > cfg.max_altitude
        {
            cfg.min_altitude = d.min_altitude;
            cfg.max_altitude = d.max_altitude;
        }
        if !(cfg.slave_tolerance.is_finite() && (0.0..=45.0).contains(&cfg.slave_tolerance)) {
            cfg.slave_tolerance = d.slave_tolerance;
        }
        Self {
            azimuth: Ramp::still(cfg.park_azimuth, cfg.azimuth_rate),
            goal: None,
            altitude: Ramp::still(cfg.min_altitude, cfg.altitude_rate),
            shutter: Ramp::still(0.0, 1.0 / cfg.shutter_secs),
            shutter_error: false,
            park_azimuth: cfg.park_azimuth,
            slaved: false,
            at_park: true,
            at_home: false,
            stuck_since: None,
            cfg,
        }
    }

    pub fn config(&self) -> &DomeConfig {
        &self.cfg
    }

    fn motion_time(&self, now: SimTime) -> SimTime {
        match self.stuck_since {
            Some(since) if since < now => since,
            _ => now,
        }
    }

    /// The goal the rotation has reached (not yet committed).
    fn reached(&self, now: SimTime) -> Option<DomeGoal> {
        self.goal
            .filter(|_| !self.azimuth.moving(self.motion_time(now)))
    }

    fn commit(&mut self, now: SimTime) {
        match self.reached(now) {
            Some(DomeGoal::Park) => self.at_park = true,
            Some(DomeGoal::Home) => self.at_home = true,
            None => return,
        }
        self.goal = None;
    }

    /// Start turning towards `target` the short way round.
    fn rotate_to(&mut self, now: SimTime, target: f64, goal: Option<DomeGoal>) {
        self.commit(now);
        let t = self.motion_time(now);
        let here = self.azimuth.at(t);
        let mut ramp = self
            .azimuth
            .retarget(t, here + astro::wrap_180(target - here));
        // Anchored at `now`, not at the frozen time, so a stuck dome stays put until released.
        ramp.start = now;
        self.azimuth = ramp;
        self.goal = goal;
        self.at_park = false;
        self.at_home = false;
    }

    fn refuse_if_slaved(&self) -> AlpacaResult<()> {
        if self.slaved {
            Err(AlpacaError::slaved())
        } else {
            Ok(())
        }
    }

    // ---- properties -----------------------------------------------------------------------

    pub fn altitude(&self, now: SimTime) -> f64 {
        self.altitude.at(self.motion_time(now))
    }

    pub fn azimuth(&self, now: SimTime) -> f64 {
        astro::wrap_360(self.azimuth.at(self.motion_time(now)))
    }

    pub fn at_home(&self, now: SimTime) -> bool {
        self.at_home || self.reached(now) == Some(DomeGoal::Home)
    }

    pub fn at_park(&self, now: SimTime) -> bool {
        self.at_park || self.reached(now) == Some(DomeGoal::Park)
    }

    pub fn can_find_home(&self) -> bool {
        true
    }
    pub fn can_park(&self) -> bool {
        true
    }
    pub fn can_set_altitude(&self) -> bool {
        true
    }
    pub fn can_set_azimuth(&self) -> bool {
        true
    }
    pub fn can_set_park(&self) -> bool {
        true
    }
    pub fn can_set_shutter(&self) -> bool {
        true
    }
    pub fn can_slave(&self) -> bool {
        true
    }
    pub fn can_sync_azimuth(&self) -> bool {
        true
    }

    pub fn shutter_status(&self, now: SimTime) -> ShutterState {
        let t = self.motion_time(now);
        if self.shutter_error {
            ShutterState::Error
        } else if self.shutter.moving(t) {
            if self.shutter.to > self.shutter.from {
                ShutterState::Opening
            } else {
                ShutterState::Closing
            }
        } else if self.shutter.at(t) >= 1.0 {
            ShutterState::Open
        } else if self.shutter.at(t) <= 0.0 {
            ShutterState::Closed
        } else {
            ShutterState::Error
        }
    }

    pub fn slaved(&self) -> bool {
        self.slaved
    }

    /// Whether the dome is rotating (azimuth only).
    pub fn rotating(&self, now: SimTime) -> bool {
        self.azimuth.moving(self.motion_time(now))
    }

    /// True while the dome rotates, the opening moves or the shutter travels.
    pub fn slewing(&self, now: SimTime) -> bool {
        let t = self.motion_time(now);
        self.azimuth.moving(t) || self.altitude.moving(t) || self.shutter.moving(t)
    }

    // ---- writes and methods ---------------------------------------------------------------

    /// Slaving on or off. Turning it on makes the dome follow whatever
    /// [`slave_to`](Self::slave_to) feeds it; turning it off lets a rotation in progress
    /// finish.
    pub fn set_slaved(&mut self, now: SimTime, on: bool) -> AlpacaResult<()> {
        self.commit(now);
        self.slaved = on;
        Ok(())
    }

    /// Feed the mount's azimuth (degrees) at `now`; a no-op unless slaved. The dome turns
    /// towards it whenever it is more than `slave_tolerance` away from where the dome is
    /// (or is going).
    pub fn slave_to(&mut self, now: SimTime, mount_azimuth: f64) {
        if !self.slaved || !mount_azimuth.is_finite() {
            return;
        }
        self.commit(now);
        let target = astro::wrap_360(mount_azimuth);
        let t = self.motion_time(now);
        let heading = if self.azimuth.moving(t) {
            self.azimuth.to
        } else {
            self.azimuth.at(t)
        };
        if astro::wrap_180(target - heading).abs() > self.cfg.slave_tolerance {
            self.rotate_to(now, target, None);
        }
    }

    /// Stops rotation, the opening and the shutter where they are (a shutter stopped part
    /// way reports Error) and turns slaving off.
    pub fn abort_slew(&mut self, now: SimTime) -> AlpacaResult<()> {
        self.commit(now);
        let t = self.motion_time(now);
        self.slaved = false;
        if self.azimuth.moving(t) {
            self.azimuth = Ramp::still(self.azimuth.at(t), self.cfg.azimuth_rate);
            self.goal = None;
        }
        if self.altitude.moving(t) {
            self.altitude = Ramp::still(self.altitude.at(t), self.cfg.altitude_rate);
        }
        if self.shutter.moving(t) {
            self.shutter = Ramp::still(self.shutter.at(t), 1.0 / self.cfg.shutter_secs);
            self.shutter_error = true;
        }
        Ok(())
    }

    fn move_shutter(&mut self, now: SimTime, to: f64) {
        let t = self.motion_time(now);
        let done = !self.shutter.moving(t) && self.shutter.at(t) == to;
        if done && !self.shutter_error {
            return;
        }
        let mut ramp = self.shutter.retarget(t, to);
        ramp.start = now;
        self.shutter = ramp;
        self.shutter_error = false;
    }

    /// Asynchronous: ShutterStatus is Closing (and Slewing true) until the shutter is shut.
    pub fn close_shutter(&mut self, now: SimTime) -> AlpacaResult<()> {
        self.move_shutter(now, 0.0);
        Ok(())
    }

    /// Asynchronous: ShutterStatus is Opening (and Slewing true) until the shutter is open.
    pub fn open_shutter(&mut self, now: SimTime) -> AlpacaResult<()> {
        self.move_shutter(now, 1.0);
        Ok(())
    }

    /// Asynchronous rotation to the home azimuth; AtHome on arrival (0x409 while slaved).
    pub fn find_home(&mut self, now: SimTime) -> AlpacaResult<()> {
        self.refuse_if_slaved()?;
        self.rotate_to(now, self.cfg.home_azimuth, Some(DomeGoal::Home));
        Ok(())
    }

    /// Asynchronous rotation to the park azimuth; AtPark on arrival (0x409 while slaved).
    pub fn park(&mut self, now: SimTime) -> AlpacaResult<()> {
        self.refuse_if_slaved()?;
        self.rotate_to(now, self.park_azimuth, Some(DomeGoal::Park));
        Ok(())
    }

    /// The current azimuth becomes the park azimuth.
    pub fn set_park(&mut self, now: SimTime) -> AlpacaResult<()> {
        self.commit(now);
        self.park_azimuth = self.azimuth(now);
        Ok(())
    }

    pub fn slew_to_altitude(&mut self, now: SimTime, altitude: f64) -> AlpacaResult<()> {
        let (lo, hi) = (self.cfg.min_altitude, self.cfg.max_altitude);
        if !(lo..=hi).contains(&altitude) {
            return Err(AlpacaError::invalid_value(format!(
                "altitude {altitude} is outside {lo} to {hi} degrees"
            )));
        }
        self.refuse_if_slaved()?;
        self.commit(now);
        let t = self.motion_time(now);
        let mut ramp = self.altitude.retarget(t, altitude);
        ramp.start = now;
        self.altitude = ramp;
        Ok(())
    }

    pub fn slew_to_azimuth(&mut self, now: SimTime, azimuth: f64) -> AlpacaResult<()> {
        if !(0.0..360.0).contains(&azimuth) {
            return Err(AlpacaError::invalid_value(format!(
                "azimuth {azimuth} is outside 0 to <360 degrees"
            )));
        }
        self.refuse_if_slaved()?;
        self.rotate_to(now, azimuth, None);
        Ok(())
    }

    /// Declares the dome to be at `azimuth` without moving it; a rotation in progress stops.
    pub fn sync_to_azimuth(&mut self, now: SimTime, azimuth: f64) -> AlpacaResult<()> {
        if !(0.0..360.0).contains(&azimuth) {
            return Err(AlpacaError::invalid_value(format!(
                "azimuth {azimuth} is outside 0 to <360 degrees"
            )));
        }
        self.commit(now);
        self.azimuth = Ramp::still(azimuth, self.cfg.azimuth_rate);
        self.goal = None;
        self.at_park = false;
        self.at_home = false;
        Ok(())
    }

    // ---- simulator hooks ------------------------------------------------------------------

    /// Fault injection: while stuck nothing moves but every motion under way keeps
    /// `Slewing` (and Opening/Closing) true; released, each resumes where it froze.
    pub fn set_stuck(&mut self, now: SimTime, stuck: bool) {
        match (self.stuck_since, stuck) {
            (None, true) => {
                self.commit(now);
                self.stuck_since = Some(now);
            }
            (Some(since), false) => {
                let lost = now.since(since).max(0.0);
                // A ramp started while stuck (start > since) has not moved; it starts over now.
                let resume = |r: Ramp| {
                    if r.start > since {
                        Ramp { start: now, ..r }
                    } else {
                        r.delayed(since, lost)
                    }
                };
                self.azimuth = resume(self.azimuth);
                self.altitude = resume(self.altitude);
                self.shutter = resume(self.shutter);
                self.stuck_since = None;
            }
            _ => {}
        }
    }

    pub fn stuck(&self) -> bool {
        self.stuck_since.is_some()
    }

    pub fn snapshot(&self, now: SimTime) -> DomeSnapshot {
        let t = self.motion_time(now);
        DomeSnapshot {
            azimuth: self.azimuth(now),
            target_azimuth: astro::wrap_360(self.azimuth.to),
            altitude: self.altitude(now),
            shutter_status: self.shutter_status(now),
            shutter_open_fraction: self.shutter.at(t),
            slewing: self.slewing(now),
            rotating: self.rotating(now),
            slaved: self.slaved,
            at_home: self.at_home(now),
            at_park: self.at_park(now),
            stuck: self.stuck(),
        }
    }

    /// `DeviceState` items (PROTOCOL.md §4), without `TimeStamp`.
    pub fn device_state(&self, now: SimTime) -> Vec<(&'static str, serde_json::Value)> {
        use serde_json::json;
        let s = self.snapshot(now);
        vec![
            ("Altitude", json!(s.altitude)),
            ("AtHome", json!(s.at_home)),
            ("AtPark", json!(s.at_park)),
            ("Azimuth", json!(s.azimuth)),
            ("ShutterStatus", json!(s.shutter_status.to_i32())),
            ("Slewing", json!(s.slewing)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::telescope::{TelescopeConfig, TelescopeModel};
    use bigskies_alpaca::ErrorCode;

    const T0: SimTime = SimTime(1_774_044_000.0);

    fn dome() -> DomeModel {
        DomeModel::new(DomeConfig::default(), T0)
    }

    fn code<T: std::fmt::Debug>(r: AlpacaResult<T>) -> ErrorCode {
        r.expect_err("expected an ASCOM error").code
    }

    #[test]
    fn starts_parked_with_the_shutter_closed() {
        let d = dome();
        assert!(d.at_park(T0) && !d.at_home(T0) && !d.slewing(T0) && !d.slaved());
        assert_eq!((d.azimuth(T0), d.altitude(T0)), (180.0, 0.0));
        assert_eq!(d.shutter_status(T0), ShutterState::Closed);
        assert!(d.can_slave() && d.can_set_shutter() && d.can_sync_azimuth());
    }

    #[test]
    fn the_shutter_takes_its_time_and_counts_as_slewing() {
        let mut d = dome();
        d.open_shutter(T0).expect("open");
        assert_eq!(d.shutter_status(T0), ShutterState::Opening);
        assert!(d.slewing(T0), "IDomeV3: shutter motion is slewing");
        assert_eq!(d.shutter_status(T0.plus(2.9)), ShutterState::Opening);
        assert!(d.slewing(T0.plus(2.9)));
        let open = T0.plus(3.0);
        assert_eq!(d.shutter_status(open), ShutterState::Open);
        assert!(!d.slewing(open));
        d.open_shutter(open)
            .expect("opening an open shutter is a no-op");
        assert!(!d.slewing(open));

        d.close_shutter(open).expect("close");
        assert_eq!(d.shutter_status(open.plus(1.0)), ShutterState::Closing);
        // Reversing half-way only has to undo the part already travelled.
        d.open_shutter(open.plus(1.0)).expect("reopen");
        assert_eq!(d.shutter_status(open.plus(1.5)), ShutterState::Opening);
        assert_eq!(d.shutter_status(open.plus(2.0)), ShutterState::Open);
    }

    #[test]
    fn rotation_takes_azimuth_over_rate_the_short_way() {
        let mut d = dome();
        d.slew_to_azimuth(T0, 0.0).expect("slew");
        assert!(d.slewing(T0) && !d.at_park(T0));
        // 180° at 15°/s.
        assert!(
            (d.azimuth(T0.plus(6.0)) - 90.0).abs() < 1e-9
                || (d.azimuth(T0.plus(6.0)) - 270.0).abs() < 1e-9
        );
        assert!(d.slewing(T0.plus(11.9)) && !d.slewing(T0.plus(12.0)));
        assert_eq!(d.azimuth(T0.plus(12.0)), 0.0);

        let t = T0.plus(12.0);
        d.slew_to_azimuth(t, 350.0).expect("slew");
        assert!(
            (d.azimuth(t.plus(0.5)) - 352.5).abs() < 1e-9,
            "through north, not the long way"
        );
        assert!(
            d.slewing(t.plus(0.6)) && !d.slewing(t.plus(0.7)),
            "10° take 2/3 s"
        );
        assert_eq!(d.azimuth(t.plus(1.0)), 350.0);
        assert_eq!(code(d.slew_to_azimuth(t, -10.0)), ErrorCode::INVALID_VALUE);
        assert_eq!(code(d.slew_to_azimuth(t, 370.0)), ErrorCode::INVALID_VALUE);
        assert_eq!(code(d.slew_to_azimuth(t, 360.0)), ErrorCode::INVALID_VALUE);
    }

    #[test]
    fn altitude_moves_at_its_rate_within_limits() {
        let mut d = dome();
        d.slew_to_altitude(T0, 60.0).expect("slew");
        assert!(d.slewing(T0.plus(1.9)));
        assert!((d.altitude(T0.plus(1.0)) - 30.0).abs() < 1e-9);
        assert!(!d.slewing(T0.plus(2.0)) && d.altitude(T0.plus(2.0)) == 60.0);
        assert_eq!(
            code(d.slew_to_altitude(T0, -10.0)),
            ErrorCode::INVALID_VALUE
        );
        assert_eq!(
            code(d.slew_to_altitude(T0, 100.0)),
            ErrorCode::INVALID_VALUE
        );
    }

    #[test]
    fn abort_stops_everything_clears_slaved_and_breaks_a_moving_shutter() {
        let mut d = dome();
        d.set_slaved(T0, true).expect("slave");
        d.set_slaved(T0, false).expect("unslave");
        d.slew_to_azimuth(T0, 0.0).expect("rotate");
        d.slew_to_altitude(T0, 80.0).expect("open up");
        d.open_shutter(T0).expect("open");
        d.set_slaved(T0, true).expect("slave again");
        let t = T0.plus(1.0);
        d.abort_slew(t).expect("abort");
        assert!(!d.slaved(), "AbortSlew clears Slaved");
        assert!(!d.slewing(t));
        assert_eq!(d.shutter_status(t), ShutterState::Error);
        let (az, alt) = (d.azimuth(t), d.altitude(t));
        assert!(
            (alt - 30.0).abs() < 1e-9 && (az - 165.0).abs().min((az - 195.0).abs()) < 1e-9,
            "{az} {alt}"
        );
        assert_eq!(
            (d.azimuth(t.plus(60.0)), d.altitude(t.plus(60.0))),
            (az, alt)
        );
        // The shutter recovers when commanded again.
        d.close_shutter(t).expect("close");
        assert_eq!(d.shutter_status(t.plus(0.5)), ShutterState::Closing);
        assert_eq!(d.shutter_status(t.plus(1.0)), ShutterState::Closed);
        d.abort_slew(t.plus(5.0))
            .expect("abort when idle is harmless");
        assert_eq!(d.shutter_status(t.plus(5.0)), ShutterState::Closed);
    }

    #[test]
    fn park_home_and_set_park_are_asynchronous() {
        let mut d = dome();
        d.find_home(T0).expect("home");
        assert!(d.slewing(T0) && !d.at_home(T0) && !d.at_park(T0));
        let t = T0.plus(12.0);
        assert!(d.at_home(t) && !d.slewing(t));
        d.slew_to_azimuth(t, 90.0).expect("move");
        assert!(!d.at_home(t), "moving away clears AtHome");
        let t = t.plus(6.0);
        d.set_park(t).expect("set park");
        d.slew_to_azimuth(t, 200.0).expect("move");
        let t = t.plus(20.0);
        d.park(t).expect("park");
        assert!(!d.at_park(t));
        assert!(
            d.slewing(t.plus(7.3)) && !d.at_park(t.plus(7.3)),
            "110° take 7.33 s"
        );
        let t = t.plus(7.34);
        assert!(d.at_park(t) && (d.azimuth(t) - 90.0).abs() < 1e-9);

        d.set_slaved(t, true).expect("slave");
        assert_eq!(code(d.park(t)), ErrorCode::INVALID_WHILE_SLAVED);
        assert_eq!(code(d.find_home(t)), ErrorCode::INVALID_WHILE_SLAVED);
        assert_eq!(
            code(d.slew_to_azimuth(t, 10.0)),
            ErrorCode::INVALID_WHILE_SLAVED
        );
        assert_eq!(
            code(d.slew_to_altitude(t, 10.0)),
            ErrorCode::INVALID_WHILE_SLAVED
        );
    }

    #[test]
    fn sync_changes_the_reported_azimuth_without_moving() {
        let mut d = dome();
        d.sync_to_azimuth(T0, 135.0).expect("sync");
        assert_eq!(d.azimuth(T0), 135.0);
        assert!(!d.slewing(T0) && !d.at_park(T0));
        assert_eq!(code(d.sync_to_azimuth(T0, 370.0)), ErrorCode::INVALID_VALUE);
    }

    #[test]
    fn a_slaved_dome_follows_a_moving_mount() {
        let mut tel = TelescopeModel::new(TelescopeConfig::default(), T0);
        let mut d = dome();
        d.set_slaved(T0, true).expect("slave");
        tel.slew_to_alt_az_async(T0, 60.0, 45.0)
            .expect("mount slews");
        let mut now = T0;
        let mut saw_dome_moving = false;
        // The wiring's job, done by hand: feed the mount azimuth before each dome read.
        for _ in 0..200 {
            now = now.plus(0.25);
            d.slave_to(now, tel.azimuth(now));
            saw_dome_moving |= d.slewing(now);
        }
        assert!(saw_dome_moving);
        assert!(!tel.slewing(now) && !d.slewing(now));
        let gap = astro::wrap_180(d.azimuth(now) - tel.azimuth(now)).abs();
        assert!(
            gap <= d.config().slave_tolerance,
            "dome {} mount {}",
            d.azimuth(now),
            tel.azimuth(now)
        );
        assert!(
            (d.azimuth(now) - 60.0).abs() <= d.config().slave_tolerance,
            "{}",
            d.azimuth(now)
        );

        // Not slaved: the mount is ignored.
        d.set_slaved(now, false).expect("unslave");
        d.slave_to(now, 300.0);
        assert!(!d.slewing(now));
    }

    #[test]
    fn a_stuck_dome_reports_motion_but_makes_none() {
        let mut d = dome();
        d.open_shutter(T0).expect("open");
        d.slew_to_azimuth(T0, 90.0).expect("rotate");
        d.set_stuck(T0.plus(1.0), true);
        let az = d.azimuth(T0.plus(1.0));
        assert!(d.slewing(T0.plus(100.0)));
        assert_eq!(d.shutter_status(T0.plus(100.0)), ShutterState::Opening);
        assert_eq!(d.azimuth(T0.plus(100.0)), az);
        d.set_stuck(T0.plus(100.0), false);
        // 1 s of the 6 s rotation and of the 3 s shutter travel happened before the fault.
        assert_eq!(d.shutter_status(T0.plus(101.9)), ShutterState::Opening);
        assert_eq!(d.shutter_status(T0.plus(102.0)), ShutterState::Open);
        assert!(d.slewing(T0.plus(104.9)) && !d.slewing(T0.plus(105.0)));
        assert_eq!(d.azimuth(T0.plus(105.0)), 90.0);
    }

    #[test]
    fn device_state_and_config() {
        let d = dome();
        let names: Vec<_> = d.device_state(T0).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "Altitude",
                "AtHome",
                "AtPark",
                "Azimuth",
                "ShutterStatus",
                "Slewing"
            ]
        );
        assert_eq!(d.device_state(T0)[4].1, serde_json::json!(1));
        assert!(DomeConfig::default().problems().is_empty());
        let bad = DomeConfig {
            azimuth_rate: 0.0,
            min_altitude: 50.0,
            max_altitude: 10.0,
            ..Default::default()
        };
        assert_eq!(bad.problems().len(), 2);
        let snap = serde_json::to_value(d.snapshot(T0)).expect("serialisable");
        assert_eq!(snap["shutter_status"], serde_json::json!(1));
    }
}
