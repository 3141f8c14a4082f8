//! A simulated telescope mount (ITelescopeV4): German equatorial, fork or alt-azimuth,
//! with sidereal time, tracking at four rates, offset tracking, asynchronous slews with a
//! per-axis speed profile, park/home, pulse guiding, MoveAxis and meridian flips.
//!
//! # How the motion is modelled
//!
//! The mount has two **mechanical axes** (degrees). For a German mount the primary is the
//! RA axis angle θ = HA − 90° on the east side of the pier and HA + 90° on the west side,
//! and the secondary runs past the pole: δm = Dec on the east side, 180° − Dec on the west
//! side. So a meridian flip is an honest motion of both axes (θ by ~180°, δm through the
//! pole) rather than a label change, and slews that cross the meridian take the time a real
//! German mount takes. Fork mounts use (HA, Dec) and alt-az mounts (Az, Alt) directly.
//!
//! At any time the mount is in one `Drive` state, stored with the instant it began:
//!
//! * **stopped**: the axes hold still, so the sky (and RA) drifts past at the sidereal rate;
//! * **tracking**: an RA/Dec held fixed, plus offset rates (`RightAscensionRate`,
//!   `DeclinationRate`), non-sidereal drift (lunar/solar/King) and pulse-guide corrections,
//!   each a linear function of time since the state began;
//! * **slewing** (goto, park, home, flip): each axis runs the [`SlewProfile`] from its start
//!   to its end angle; the slew ends when both have arrived, plus `SlewSettleTime`. A slew to
//!   a moving (tracked) target aims at where the target will be on arrival;
//! * **moving** (`MoveAxis`): constant axis rates; tracking is suspended and resumes when
//!   both axes are stopped again.
//!
//! Everything is computed at read time from these anchors; nothing ticks. Changing a rate
//! re-anchors the state at that instant ("rebase") so the past is never rewritten.
//!
//! # Conventions chosen where ASCOM leaves a choice
//!
//! * Synchronous slews are 0x400 and `CanSlew`/`CanSlewAltAz` false (Alpaca rule).
//! * Equatorial slews and syncs need tracking on, alt/az ones need it off (0x40B otherwise),
//!   as the ASCOM simulator does.
//! * `Park` and `FindHome` switch tracking off; `Unpark` completes at once (nothing moves).
//!   Turning tracking on while a park is under way is refused like when parked (0x408).
//! * `PulseGuide` needs tracking and no slew in progress (0x40B); RA and Dec pulses may run
//!   together; a new pulse on a busy axis replaces the rest of the old one.
//! * `MoveAxis` is refused during a goto (0x40B); a goto during `MoveAxis` replaces it.
//! * `DoesRefraction` reads false and cannot be written (0x400): refraction is not modelled.
//! * Offset rates persist across slews and are cleared when the tracking rate leaves Sidereal.

use bigskies_alpaca::types::{
    AlignmentMode, AxisRate, DriveRate, EquatorialSystem, GuideDirection, PierSide, TelescopeAxis,
};
use bigskies_alpaca::{AlpacaError, AlpacaResult};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::astro::{self, AltAz, SIDEREAL_PER_SI, SIDEREAL_RATE_ARCSEC};
use crate::clock::SimTime;

/// Longest `SlewSettleTime` accepted, seconds.
pub const MAX_SETTLE_SECS: i32 = 3600;
/// Longest pulse accepted, milliseconds (the ASCOM simulator's limit).
pub const MAX_PULSE_MS: i32 = 30_000;
/// Fastest guide rate accepted: ten times sidereal, in degrees per second. Anything faster
/// is a slew, not guiding.
pub const MAX_GUIDE_RATE: f64 = 10.0 * SIDEREAL_RATE_ARCSEC / 3600.0;
/// Largest |RightAscensionRate| accepted: one degree per second, in RA seconds per sidereal second.
pub const MAX_RA_RATE: f64 = 240.0;
/// Largest |DeclinationRate| accepted: one degree per second, in arc-seconds per SI second.
pub const MAX_DEC_RATE: f64 = 3600.0;
/// Every slew reports `Slewing` for at least this long, so a client polling right after an
/// async initiator always sees the operation under way.
pub const MIN_SLEW_SECS: f64 = 0.1;
/// Site limits (PROTOCOL.md §5).
const ELEVATION_RANGE: std::ops::RangeInclusive<f64> = -300.0..=10_000.0;

/// Mount geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountType {
    /// German equatorial: pier sides and meridian flips.
    GermanEquatorial,
    /// Fork (non-German) equatorial.
    Fork,
    /// Alt-azimuth.
    AltAz,
}

impl MountType {
    pub fn alignment_mode(self) -> AlignmentMode {
        match self {
            MountType::GermanEquatorial => AlignmentMode::GermanPolar,
            MountType::Fork => AlignmentMode::Polar,
            MountType::AltAz => AlignmentMode::AltAz,
        }
    }

    fn equatorial(self) -> bool {
        self != MountType::AltAz
    }

    /// Added to the mechanical primary angle to get the sky angle (HA or Az), for the normal
    /// and the flipped secondary-axis half.
    fn primary_offsets(self) -> (f64, f64) {
        match self {
            MountType::GermanEquatorial => (90.0, -90.0),
            MountType::Fork | MountType::AltAz => (0.0, 180.0),
        }
    }

    /// Mechanical axes → (HA° or Az°, Dec or Alt, which half of the secondary axis).
    fn sky_of(self, m: Mech) -> (f64, f64, Side) {
        let s = astro::wrap_360(m.s + 90.0) - 90.0;
        let (normal, flipped) = self.primary_offsets();
        let (a, b, side) = if s <= 90.0 {
            (m.p + normal, s, Side::Normal)
        } else {
            (m.p + flipped, 180.0 - s, Side::Flipped)
        };
        let a = if self.equatorial() {
            astro::wrap_180(a)
        } else {
            astro::wrap_360(a)
        };
        (a, b, side)
    }

    /// (HA° or Az°, Dec or Alt) on the given half → mechanical axes.
    fn mech_of(self, a: f64, b: f64, side: Side) -> Mech {
        let (normal, flipped) = self.primary_offsets();
        match side {
            Side::Normal => Mech {
                p: a - normal,
                s: b,
            },
            Side::Flipped => Mech {
                p: a - flipped,
                s: 180.0 - b,
            },
        }
    }

    fn pier_side(self, side: Side) -> PierSide {
        match (self, side) {
            (MountType::GermanEquatorial, Side::Normal) => PierSide::East,
            (MountType::GermanEquatorial, Side::Flipped) => PierSide::West,
            _ => PierSide::Unknown,
        }
    }
}

/// User-facing telescope parameters (the `[devices.telescope.model]` table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelescopeConfig {
    pub name: String,
    pub description: String,
    pub mount: MountType,
    /// Degrees, north positive.
    pub latitude: f64,
    /// Degrees, east positive.
    pub longitude: f64,
    /// Metres above sea level.
    pub elevation: f64,
    /// Top speed of each axis in degrees per second; the approach slows to a tenth of it
    /// within 4° of the target and to a fiftieth within 0.4° (the ASCOM simulator's profile).
    pub max_slew_rate: f64,
    /// Initial `SlewSettleTime`, seconds.
    pub slew_settle_time: i32,
    /// Initial guide rate of both axes, degrees per second.
    pub guide_rate: f64,
    /// Metres.
    pub aperture_diameter: f64,
    /// Square metres (the clear aperture, after the central obstruction).
    pub aperture_area: f64,
    /// Metres.
    pub focal_length: f64,
    /// Park position; defaults to the meridian on the celestial equator (altitude
    /// 90° − |latitude|, azimuth 180° in the north, 0° in the south).
    pub park_altitude: Option<f64>,
    pub park_azimuth: Option<f64>,
    /// Start parked (at the park position) instead of merely standing there.
    pub start_parked: bool,
    /// Start with tracking on (ignored when starting parked).
    pub start_tracking: bool,
}

impl Default for TelescopeConfig {
    fn default() -> Self {
        Self {
            name: "Big Skies Telescope Simulator".into(),
            description: "Simulated telescope mount: slews, tracking, guiding".into(),
            mount: MountType::GermanEquatorial,
            latitude: 51.07861,
            longitude: -0.29444,
            elevation: 100.0,
            max_slew_rate: 20.0,
            slew_settle_time: 0,
            guide_rate: SIDEREAL_RATE_ARCSEC / 3600.0,
            aperture_diameter: 0.2,
            aperture_area: 0.0269,
            focal_length: 1.26,
            park_altitude: None,
            park_azimuth: None,
            start_parked: false,
            start_tracking: false,
        }
    }
}

impl TelescopeConfig {
    /// Every problem with this configuration (empty when it is usable).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(-90.0..=90.0).contains(&self.latitude) {
            p.push(format!(
                "telescope latitude must be -90..=90 degrees, got {}",
                self.latitude
            ));
        }
        if !(-180.0..=180.0).contains(&self.longitude) {
            p.push(format!(
                "telescope longitude must be -180..=180 degrees, got {}",
                self.longitude
            ));
        }
        if !ELEVATION_RANGE.contains(&self.elevation) {
            p.push(format!(
                "telescope elevation must be -300..=10000 m, got {}",
                self.elevation
            ));
        }
        if !(self.max_slew_rate.is_finite() && self.max_slew_rate > 0.0) {
            p.push(format!(
                "telescope max_slew_rate must be above 0 degrees/s, got {}",
                self.max_slew_rate
            ));
        }
        if !(0..=MAX_SETTLE_SECS).contains(&self.slew_settle_time) {
            p.push(format!(
                "telescope slew_settle_time must be 0..={MAX_SETTLE_SECS} s, got {}",
                self.slew_settle_time
            ));
        }
        if !(0.0..=MAX_GUIDE_RATE).contains(&self.guide_rate) {
            p.push(format!(
                "telescope guide_rate must be 0..={MAX_GUIDE_RATE:.5} degrees/s, got {}",
                self.guide_rate
            ));
        }
        for (what, v) in [
            ("aperture_diameter", self.aperture_diameter),
            ("aperture_area", self.aperture_area),
            ("focal_length", self.focal_length),
        ] {
            if !(v.is_finite() && v > 0.0) {
                p.push(format!("telescope {what} must be above 0, got {v}"));
            }
        }
        if let Some(alt) = self.park_altitude
            && !(-90.0..=90.0).contains(&alt)
        {
            p.push(format!(
                "telescope park_altitude must be -90..=90 degrees, got {alt}"
            ));
        }
        if let Some(az) = self.park_azimuth
            && !(0.0..360.0).contains(&az)
        {
            p.push(format!(
                "telescope park_azimuth must be 0..<360 degrees, got {az}"
            ));
        }
        p
    }
}

/// How fast an axis approaches its target: a list of (distance threshold, rate) stages.
/// While the axis is further than a stage's threshold from its target (and nearer than the
/// previous stage's), it moves at that stage's rate in degrees per second.
#[derive(Clone, Debug, PartialEq)]
pub struct SlewProfile {
    /// Thresholds strictly decreasing, the last one 0; rates above 0.
    stages: Vec<(f64, f64)>,
}

impl SlewProfile {
    /// The ASCOM simulator's profile: full speed beyond 4°, a tenth within 4°, a fiftieth
    /// within 0.4°. (That simulator snaps the last 0.04°; here the slowest stage runs to 0.)
    pub fn omnisim(max_rate: f64) -> Self {
        Self {
            stages: vec![
                (4.0, max_rate),
                (0.4, max_rate * 0.1),
                (0.0, max_rate * 0.02),
            ],
        }
    }

    /// Seconds to cover `dist` degrees from rest to arrival.
    pub fn duration(&self, dist: f64) -> f64 {
        let mut rem = dist.abs();
        let mut secs = 0.0;
        for &(threshold, rate) in &self.stages {
            if rem > threshold {
                secs += (rem - threshold) / rate;
                rem = threshold;
            }
        }
        secs
    }

    /// Degrees still to go `elapsed` seconds into a move of `dist` degrees.
    pub fn remaining(&self, dist: f64, elapsed: f64) -> f64 {
        let mut rem = dist.abs();
        let mut t = elapsed.max(0.0);
        for &(threshold, rate) in &self.stages {
            if rem > threshold {
                let need = (rem - threshold) / rate;
                if t < need {
                    return rem - rate * t;
                }
                t -= need;
                rem = threshold;
            }
        }
        0.0
    }
}

/// Mechanical axis angles, degrees (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Mech {
    p: f64,
    s: f64,
}

/// Which half of its circle the secondary axis is on: for a German mount, East (normal)
/// or West (through the pole) pointing state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Normal,
    Flipped,
}

/// Tracking: the sky position at `t0`; it then evolves by the model's rates and pulses.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Track {
    t0: SimTime,
    ra: f64,
    dec: f64,
    side: Side,
}

/// What a slew is for; decides what happens on arrival.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlewKind {
    Coordinates,
    AltAz,
    Park,
    Home,
    /// A `SideOfPier` write: the same sky position from the other side.
    Flip,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Slew {
    kind: SlewKind,
    start: SimTime,
    from: Mech,
    to: Mech,
    /// Seconds each axis needs (primary, secondary).
    secs: [f64; 2],
    settle: f64,
    /// The tracked target, when the slew goes to a sky position.
    sky: Option<(f64, f64)>,
    side: Side,
}

impl Slew {
    fn arrive(&self) -> SimTime {
        self.start
            .plus(self.secs[0].max(self.secs[1]).max(MIN_SLEW_SECS))
    }

    fn done(&self) -> SimTime {
        self.arrive().plus(self.settle)
    }

    fn position(&self, profile: &SlewProfile, t: SimTime) -> Mech {
        let tau = t.since(self.start).max(0.0);
        let axis = |from: f64, to: f64| {
            let d = to - from;
            to - d.signum() * profile.remaining(d, tau)
        };
        Mech {
            p: axis(self.from.p, self.to.p),
            s: axis(self.from.s, self.to.s),
        }
    }
}

/// `MoveAxis` motion: constant rates (degrees per second) from `from` at `start`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct AxisMove {
    start: SimTime,
    from: Mech,
    rates: [f64; 2],
}

impl AxisMove {
    fn position(&self, t: SimTime) -> Mech {
        let tau = t.since(self.start).max(0.0);
        Mech {
            p: self.from.p + self.rates[0] * tau,
            s: self.from.s + self.rates[1] * tau,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Drive {
    Stopped(Mech),
    Tracking(Track),
    Slewing(Slew),
    Moving(AxisMove),
}

/// A pulse-guide correction on one axis: `rate` (RA hours or Dec degrees per second)
/// applied from `start` to `end`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Pulse {
    start: SimTime,
    end: SimTime,
    rate: f64,
}

impl Pulse {
    /// The part of this pulse's motion that falls between `from` and `to`.
    fn between(&self, from: SimTime, to: SimTime) -> f64 {
        let clip = |t: SimTime| t.secs().clamp(self.start.secs(), self.end.secs());
        self.rate * (clip(to) - clip(from))
    }
}

/// What the mount is doing, for the snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MountActivity {
    Idle,
    Tracking,
    Slewing(SlewKind),
    Settling(SlewKind),
    MovingAxes,
}

/// The telescope's state at one instant, for the control API and for coupling other devices
/// (a slaved dome reads `azimuth`, a camera reads the pointing).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TelescopeSnapshot {
    pub utc: DateTime<Utc>,
    /// Hours, 0 ≤ RA < 24.
    pub right_ascension: f64,
    pub declination: f64,
    pub altitude: f64,
    pub azimuth: f64,
    /// Hours, −12 ≤ HA < 12.
    pub hour_angle: f64,
    /// Local apparent sidereal time, hours.
    pub sidereal_time: f64,
    pub side_of_pier: PierSide,
    pub activity: MountActivity,
    pub slewing: bool,
    pub tracking: bool,
    pub tracking_rate: DriveRate,
    pub right_ascension_rate: f64,
    pub declination_rate: f64,
    pub at_park: bool,
    pub at_home: bool,
    pub is_pulse_guiding: bool,
    pub stuck: bool,
    pub target_right_ascension: Option<f64>,
    pub target_declination: Option<f64>,
    pub latitude: f64,
    pub longitude: f64,
    pub elevation: f64,
    /// Mechanical axis angles, degrees.
    pub primary_axis: f64,
    pub secondary_axis: f64,
}

/// The pure telescope model.
#[derive(Clone, Debug)]
pub struct TelescopeModel {
    cfg: TelescopeConfig,
    profile: SlewProfile,
    latitude: f64,
    longitude: f64,
    elevation: f64,
    /// `UTCDate` minus simulated time, seconds.
    utc_offset: f64,
    drive: Drive,
    tracking: bool,
    tracking_rate: DriveRate,
    /// RA seconds per sidereal second.
    ra_rate: f64,
    /// Arc-seconds per SI second.
    dec_rate: f64,
    guide_rate_ra: f64,
    guide_rate_dec: f64,
    /// Active or recent pulses: [RA, Dec].
    pulses: [Option<Pulse>; 2],
    settle_secs: i32,
    target_ra: Option<f64>,
    target_dec: Option<f64>,
    park: Mech,
    parked: bool,
    at_home: bool,
    /// Since when motion has been frozen by fault injection.
    stuck_since: Option<SimTime>,
}

fn check_ra(ra: f64) -> AlpacaResult<()> {
    if (0.0..24.0).contains(&ra) {
        Ok(())
    } else {
        Err(AlpacaError::invalid_value(format!(
            "right ascension {ra} is outside 0 to <24 hours"
        )))
    }
}

fn check_dec(dec: f64) -> AlpacaResult<()> {
    if (-90.0..=90.0).contains(&dec) {
        Ok(())
    } else {
        Err(AlpacaError::invalid_value(format!(
            "declination {dec} is outside -90 to 90 degrees"
        )))
    }
}

fn check_alt_az(az: f64, alt: f64) -> AlpacaResult<()> {
    if !(0.0..360.0).contains(&az) {
        return Err(AlpacaError::invalid_value(format!(
            "azimuth {az} is outside 0 to <360 degrees"
        )));
    }
    if !(-90.0..=90.0).contains(&alt) {
        return Err(AlpacaError::invalid_value(format!(
            "altitude {alt} is outside -90 to 90 degrees"
        )));
    }
    Ok(())
}

/// Arc-seconds per SI second the mount turns at for a drive rate.
pub fn drive_rate_arcsec(rate: DriveRate) -> f64 {
    match rate {
        DriveRate::Sidereal => SIDEREAL_RATE_ARCSEC,
        DriveRate::Lunar => astro::LUNAR_RATE_ARCSEC,
        DriveRate::Solar => astro::SOLAR_RATE_ARCSEC,
        DriveRate::King => astro::KING_RATE_ARCSEC,
    }
}

impl TelescopeModel {
    /// A mount standing at its park position (parked if so configured). Out-of-range
    /// configuration values are clamped; call [`TelescopeConfig::problems`] first to report them.
    pub fn new(mut cfg: TelescopeConfig, now: SimTime) -> Self {
        let defaults = TelescopeConfig::default();
        cfg.latitude = if cfg.latitude.is_finite() {
            cfg.latitude.clamp(-90.0, 90.0)
        } else {
            defaults.latitude
        };
        cfg.longitude = if cfg.longitude.is_finite() {
            cfg.longitude.clamp(-180.0, 180.0)
        } else {
            defaults.longitude
        };
        if !ELEVATION_RANGE.contains(&cfg.elevation) {
            cfg.elevation = defaults.elevation;
        }
        if !(cfg.max_slew_rate.is_finite() && cfg.max_slew_rate > 0.0) {
            cfg.max_slew_rate = defaults.max_slew_rate;
        }
        cfg.slew_settle_time = cfg.slew_settle_time.clamp(0, MAX_SETTLE_SECS);
        if !(0.0..=MAX_GUIDE_RATE).contains(&cfg.guide_rate) {
            cfg.guide_rate = defaults.guide_rate;
        }
        let north = cfg.latitude >= 0.0;
        let park_alt = cfg
            .park_altitude
            .filter(|a| (-90.0..=90.0).contains(a))
            .unwrap_or(90.0 - cfg.latitude.abs());
        let park_az = cfg
            .park_azimuth
            .filter(|a| (0.0..360.0).contains(a))
            .unwrap_or(if north { 180.0 } else { 0.0 });
        let mut m = Self {
            profile: SlewProfile::omnisim(cfg.max_slew_rate),
            latitude: cfg.latitude,
            longitude: cfg.longitude,
            elevation: cfg.elevation,
            utc_offset: 0.0,
            drive: Drive::Stopped(Mech { p: 0.0, s: 0.0 }),
            tracking: false,
            tracking_rate: DriveRate::Sidereal,
            ra_rate: 0.0,
            dec_rate: 0.0,
            guide_rate_ra: cfg.guide_rate,
            guide_rate_dec: cfg.guide_rate,
            pulses: [None, None],
            settle_secs: cfg.slew_settle_time,
            target_ra: None,
            target_dec: None,
            park: Mech { p: 0.0, s: 0.0 },
            parked: cfg.start_parked,
            at_home: false,
            stuck_since: None,
            cfg,
        };
        m.park = m.mech_of_altaz(park_alt, park_az, None);
        m.drive = Drive::Stopped(m.park);
        if m.cfg.start_tracking && !m.parked {
            m.tracking = true;
            m.drive = Drive::Tracking(m.track_from(m.park, now));
        }
        m
    }

    pub fn config(&self) -> &TelescopeConfig {
        &self.cfg
    }

    pub fn profile(&self) -> &SlewProfile {
        &self.profile
    }

    // ---- geometry and time ----------------------------------------------------------------

    fn mount(&self) -> MountType {
        self.cfg.mount
    }

    /// The time the astronomy runs on: simulated time shifted by any `UTCDate` write.
    fn astro_time(&self, now: SimTime) -> SimTime {
        now.plus(self.utc_offset)
    }

    fn lst(&self, now: SimTime) -> f64 {
        astro::local_sidereal_time(self.astro_time(now), self.longitude)
    }

    /// When motion is evaluated: frozen at the moment the mount got stuck.
    fn motion_time(&self, now: SimTime) -> SimTime {
        match self.stuck_since {
            Some(since) if since < now => since,
            _ => now,
        }
    }

    fn destination_side(&self, ha: f64) -> Side {
        match (self.mount(), astro::destination_side_of_pier(ha)) {
            (MountType::GermanEquatorial, PierSide::West) => Side::Flipped,
            _ => Side::Normal,
        }
    }

    fn radec_of_mech(&self, m: Mech, now: SimTime) -> (f64, f64) {
        let (a, b, _) = self.mount().sky_of(m);
        let lst = self.lst(now);
        if self.mount().equatorial() {
            (astro::wrap_24(lst - a / 15.0), b)
        } else {
            astro::altaz_to_radec(b, a, lst, self.latitude)
        }
    }

    fn mech_of_radec(&self, ra: f64, dec: f64, side: Side, now: SimTime) -> Mech {
        let lst = self.lst(now);
        if self.mount().equatorial() {
            self.mount()
                .mech_of(astro::hour_angle(lst, ra) * 15.0, dec, side)
        } else {
            let hz = astro::radec_to_altaz(ra, dec, lst, self.latitude);
            Mech {
                p: hz.azimuth,
                s: hz.altitude,
            }
        }
    }

    fn altaz_of_mech(&self, m: Mech) -> AltAz {
        let (a, b, _) = self.mount().sky_of(m);
        if self.mount().equatorial() {
            astro::equatorial_to_horizontal(a / 15.0, b, self.latitude)
        } else {
            AltAz {
                altitude: b,
                azimuth: a,
            }
        }
    }

    /// Where the axes go for an alt/az position; `side` None picks the German pointing state
    /// by the hour-angle rule.
    fn mech_of_altaz(&self, alt: f64, az: f64, side: Option<Side>) -> Mech {
        if self.mount().equatorial() {
            let (mut ha, dec) = astro::horizontal_to_equatorial(alt, az, self.latitude);
            // A target on the meridian comes back as ±1e-16 h; its pointing state must not
            // depend on the sign of rounding noise.
            if ha.abs() < 1e-9 {
                ha = 0.0;
            }
            let side = side.unwrap_or_else(|| self.destination_side(ha));
            self.mount().mech_of(ha * 15.0, dec, side)
        } else {
            Mech { p: az, s: alt }
        }
    }

    /// The path an axis move takes: an alt-az mount turns the short way round in azimuth;
    /// equatorial axes never wrap (no cable-twisting full turns of the RA axis).
    fn route(&self, from: Mech, to: Mech) -> Mech {
        if self.mount().equatorial() {
            to
        } else {
            Mech {
                p: from.p + astro::wrap_180(to.p - from.p),
                s: to.s,
            }
        }
    }

    fn home_mech(&self) -> Mech {
        if self.mount().equatorial() {
            // Counterweight down, pointing at the visible pole.
            Mech {
                p: 0.0,
                s: if self.latitude >= 0.0 { 90.0 } else { -90.0 },
            }
        } else {
            Mech { p: 0.0, s: 0.0 }
        }
    }

    fn track_from(&self, m: Mech, now: SimTime) -> Track {
        let (ra, dec) = self.radec_of_mech(m, now);
        Track {
            t0: now,
            ra,
            dec,
            side: self.mount().sky_of(m).2,
        }
    }

    /// RA/Dec of a tracking state at `now`: the anchor plus offset/non-sidereal drift and pulses.
    fn sky_at(&self, tr: &Track, now: SimTime) -> (f64, f64) {
        let dt = now.since(tr.t0);
        let mut ra = tr.ra;
        let mut dec = tr.dec;
        if self.tracking_rate == DriveRate::Sidereal {
            ra += self.ra_rate * SIDEREAL_PER_SI / 3600.0 * dt;
            dec += self.dec_rate / 3600.0 * dt;
        } else {
            // The mount turns slower (lunar) or faster than the sky, so RA creeps.
            ra +=
                (SIDEREAL_RATE_ARCSEC - drive_rate_arcsec(self.tracking_rate)) / 15.0 / 3600.0 * dt;
        }
        if let Some(p) = self.pulses[0] {
            ra += p.between(tr.t0, now);
        }
        if let Some(p) = self.pulses[1] {
            dec += p.between(tr.t0, now);
        }
        (astro::wrap_24(ra), dec.clamp(-90.0, 90.0))
    }

    /// What happens once a slew has arrived.
    fn after_slew(&self, s: &Slew) -> Drive {
        let arrive = s.arrive();
        if self.tracking && s.kind != SlewKind::Park {
            match s.sky {
                Some((ra, dec)) => Drive::Tracking(Track {
                    t0: arrive,
                    ra,
                    dec,
                    side: s.side,
                }),
                None => Drive::Tracking(self.track_from(s.to, arrive)),
            }
        } else {
            Drive::Stopped(s.to)
        }
    }

    /// The drive state in effect at `now`, with a slew that has arrived resolved.
    fn effective(&self, now: SimTime) -> Drive {
        match self.drive {
            Drive::Slewing(s) if self.motion_time(now) >= s.arrive() => self.after_slew(&s),
            d => d,
        }
    }

    /// The slew that has completed (settling included) but not yet been committed.
    fn finished(&self, now: SimTime) -> Option<SlewKind> {
        match self.drive {
            Drive::Slewing(s) if self.motion_time(now) >= s.done() => Some(s.kind),
            _ => None,
        }
    }

    /// Make a completed slew's consequences permanent (called first by every write).
    fn commit(&mut self, now: SimTime) {
        if let Drive::Slewing(s) = self.drive
            && self.motion_time(now) >= s.done()
        {
            self.drive = self.after_slew(&s);
            match s.kind {
                SlewKind::Park => self.parked = true,
                SlewKind::Home => self.at_home = true,
                _ => {}
            }
        }
    }

    /// Commit, then re-anchor tracking at `now` so a rate change only affects the future.
    fn rebase(&mut self, now: SimTime) {
        self.commit(now);
        if let Drive::Tracking(tr) = self.drive {
            let (ra, dec) = self.sky_at(&tr, now);
            self.drive = Drive::Tracking(Track {
                t0: now,
                ra,
                dec,
                side: tr.side,
            });
        }
        for p in &mut self.pulses {
            if p.is_some_and(|p| p.end <= now) {
                *p = None;
            }
        }
    }

    fn mech_at(&self, now: SimTime) -> Mech {
        match self.effective(now) {
            Drive::Stopped(m) => m,
            Drive::Tracking(tr) => {
                let (ra, dec) = self.sky_at(&tr, now);
                self.mech_of_radec(ra, dec, tr.side, now)
            }
            Drive::Slewing(s) => s.position(&self.profile, self.motion_time(now)),
            Drive::Moving(mv) => mv.position(self.motion_time(now)),
        }
    }

    fn radec_at(&self, now: SimTime) -> (f64, f64) {
        match self.effective(now) {
            Drive::Tracking(tr) => self.sky_at(&tr, now),
            _ => self.radec_of_mech(self.mech_at(now), now),
        }
    }

    fn altaz_at(&self, now: SimTime) -> AltAz {
        self.altaz_of_mech(self.mech_at(now))
    }

    /// What to do when motion stops at `m`: track from there, or stand still.
    fn resume(&self, m: Mech, now: SimTime) -> Drive {
        if self.tracking {
            Drive::Tracking(self.track_from(m, now))
        } else {
            Drive::Stopped(m)
        }
    }

    fn travel_secs(&self, from: Mech, to: Mech) -> [f64; 2] {
        [
            self.profile.duration(to.p - from.p),
            self.profile.duration(to.s - from.s),
        ]
    }

    /// A slew from `from` to fixed axis angles.
    fn plan_fixed(&self, kind: SlewKind, now: SimTime, from: Mech, to: Mech) -> Slew {
        let to = self.route(from, to);
        Slew {
            kind,
            start: now,
            from,
            to,
            secs: self.travel_secs(from, to),
            settle: f64::from(self.settle_secs),
            sky: None,
            side: self.mount().sky_of(to).2,
        }
    }

    /// A slew to a tracked sky position, aimed at where it will be on arrival. The arrival
    /// time depends on the distance, which depends on the arrival time; the sky moves at
    /// 0.004°/s against axis rates of degrees per second, so a few rounds converge.
    fn plan_sky(
        &self,
        kind: SlewKind,
        now: SimTime,
        from: Mech,
        ra: f64,
        dec: f64,
        side: Side,
    ) -> Slew {
        let mut arrive = now;
        let mut to = from;
        let mut secs = [0.0; 2];
        for _ in 0..8 {
            to = self.route(from, self.mech_of_radec(ra, dec, side, arrive));
            secs = self.travel_secs(from, to);
            let next = now.plus(secs[0].max(secs[1]).max(MIN_SLEW_SECS));
            let converged = next.since(arrive).abs() < 1e-6;
            arrive = next;
            if converged {
                break;
            }
        }
        Slew {
            kind,
            start: now,
            from,
            to,
            secs,
            settle: f64::from(self.settle_secs),
            sky: Some((ra, dec)),
            side,
        }
    }

    fn begin(&mut self, slew: Slew) {
        self.pulses = [None, None];
        self.at_home = false;
        self.drive = Drive::Slewing(slew);
    }

    fn refuse_if_parked(&self, now: SimTime) -> AlpacaResult<()> {
        if self.at_park(now) {
            Err(AlpacaError::parked())
        } else {
            Ok(())
        }
    }

    fn goto_in_progress(&self, now: SimTime) -> bool {
        matches!(self.drive, Drive::Slewing(s) if self.motion_time(now) < s.done())
    }

    // ---- read-only properties -------------------------------------------------------------

    pub fn alignment_mode(&self) -> AlignmentMode {
        self.mount().alignment_mode()
    }

    pub fn altitude(&self, now: SimTime) -> f64 {
        self.altaz_at(now).altitude
    }

    pub fn azimuth(&self, now: SimTime) -> f64 {
        self.altaz_at(now).azimuth
    }

    pub fn aperture_area(&self) -> f64 {
        self.cfg.aperture_area
    }

    pub fn aperture_diameter(&self) -> f64 {
        self.cfg.aperture_diameter
    }

    pub fn focal_length(&self) -> f64 {
        self.cfg.focal_length
    }

    pub fn at_home(&self, now: SimTime) -> bool {
        self.at_home || self.finished(now) == Some(SlewKind::Home)
    }

    pub fn at_park(&self, now: SimTime) -> bool {
        self.parked || self.finished(now) == Some(SlewKind::Park)
    }

    pub fn can_find_home(&self) -> bool {
        true
    }
    pub fn can_park(&self) -> bool {
        true
    }
    pub fn can_pulse_guide(&self) -> bool {
        true
    }
    pub fn can_set_declination_rate(&self) -> bool {
        true
    }
    pub fn can_set_guide_rates(&self) -> bool {
        true
    }
    pub fn can_set_park(&self) -> bool {
        true
    }
    /// Only a German mount has a pier side to change.
    pub fn can_set_pier_side(&self) -> bool {
        self.mount() == MountType::GermanEquatorial
    }
    pub fn can_set_right_ascension_rate(&self) -> bool {
        true
    }
    pub fn can_set_tracking(&self) -> bool {
        true
    }
    /// Synchronous slews are not offered over Alpaca.
    pub fn can_slew(&self) -> bool {
        false
    }
    pub fn can_slew_alt_az(&self) -> bool {
        false
    }
    pub fn can_slew_alt_az_async(&self) -> bool {
        true
    }
    pub fn can_slew_async(&self) -> bool {
        true
    }
    pub fn can_sync(&self) -> bool {
        true
    }
    pub fn can_sync_alt_az(&self) -> bool {
        true
    }
    pub fn can_unpark(&self) -> bool {
        true
    }

    pub fn declination(&self, now: SimTime) -> f64 {
        self.radec_at(now).1
    }

    pub fn right_ascension(&self, now: SimTime) -> f64 {
        self.radec_at(now).0
    }

    /// Arc-seconds per SI second; 0 away from the sidereal drive rate.
    pub fn declination_rate(&self) -> f64 {
        if self.tracking_rate == DriveRate::Sidereal {
            self.dec_rate
        } else {
            0.0
        }
    }

    /// RA seconds per sidereal second; 0 away from the sidereal drive rate.
    pub fn right_ascension_rate(&self) -> f64 {
        if self.tracking_rate == DriveRate::Sidereal {
            self.ra_rate
        } else {
            0.0
        }
    }

    pub fn does_refraction(&self) -> bool {
        false
    }

    pub fn equatorial_system(&self) -> EquatorialSystem {
        EquatorialSystem::Topocentric
    }

    pub fn guide_rate_declination(&self) -> f64 {
        self.guide_rate_dec
    }

    pub fn guide_rate_right_ascension(&self) -> f64 {
        self.guide_rate_ra
    }

    pub fn is_pulse_guiding(&self, now: SimTime) -> bool {
        self.pulses
            .iter()
            .flatten()
            .any(|p| p.start <= now && now < p.end)
    }

    /// The pointing state; German mounts only (0x400 otherwise).
    pub fn side_of_pier(&self, now: SimTime) -> AlpacaResult<PierSide> {
        if self.mount() != MountType::GermanEquatorial {
            return Err(AlpacaError::not_implemented(
                "SideOfPier on a non-German mount",
            ));
        }
        let side = self.mount().sky_of(self.mech_at(now)).2;
        Ok(self.mount().pier_side(side))
    }

    /// Local apparent sidereal time, hours.
    pub fn sidereal_time(&self, now: SimTime) -> f64 {
        self.lst(now)
    }

    pub fn site_elevation(&self) -> f64 {
        self.elevation
    }

    pub fn site_latitude(&self) -> f64 {
        self.latitude
    }

    pub fn site_longitude(&self) -> f64 {
        self.longitude
    }

    /// True during gotos, park, home, flips (settling included) and while an axis moves.
    pub fn slewing(&self, now: SimTime) -> bool {
        match self.drive {
            Drive::Slewing(s) => self.motion_time(now) < s.done(),
            Drive::Moving(_) => true,
            _ => false,
        }
    }

    pub fn slew_settle_time(&self) -> i32 {
        self.settle_secs
    }

    pub fn target_declination(&self) -> AlpacaResult<f64> {
        self.target_dec
            .ok_or_else(|| AlpacaError::value_not_set("TargetDeclination"))
    }

    pub fn target_right_ascension(&self) -> AlpacaResult<f64> {
        self.target_ra
            .ok_or_else(|| AlpacaError::value_not_set("TargetRightAscension"))
    }

    pub fn tracking(&self) -> bool {
        self.tracking
    }

    pub fn tracking_rate(&self) -> DriveRate {
        self.tracking_rate
    }

    pub fn tracking_rates(&self) -> Vec<DriveRate> {
        DriveRate::ALL.to_vec()
    }

    pub fn utc_date(&self, now: SimTime) -> DateTime<Utc> {
        self.astro_time(now).utc()
    }

    pub fn axis_rates(&self, axis: TelescopeAxis) -> Vec<AxisRate> {
        match axis {
            TelescopeAxis::Primary | TelescopeAxis::Secondary => {
                let max = self.cfg.max_slew_rate;
                vec![AxisRate::new(0.0, max / 3.0), AxisRate::new(max / 2.0, max)]
            }
            TelescopeAxis::Tertiary => Vec::new(),
        }
    }

    pub fn can_move_axis(&self, axis: TelescopeAxis) -> bool {
        axis != TelescopeAxis::Tertiary
    }

    /// The pointing state a slew to (ra, dec) would end in; German mounts only.
    pub fn destination_side_of_pier(
        &self,
        now: SimTime,
        ra: f64,
        dec: f64,
    ) -> AlpacaResult<PierSide> {
        check_ra(ra)?;
        check_dec(dec)?;
        if self.mount() != MountType::GermanEquatorial {
            return Err(AlpacaError::not_implemented(
                "DestinationSideOfPier on a non-German mount",
            ));
        }
        let side = self.destination_side(astro::hour_angle(self.lst(now), ra));
        Ok(self.mount().pier_side(side))
    }

    // ---- writable properties --------------------------------------------------------------

    pub fn set_declination_rate(&mut self, now: SimTime, rate: f64) -> AlpacaResult<()> {
        if !(rate.is_finite() && rate.abs() <= MAX_DEC_RATE) {
            return Err(AlpacaError::invalid_value(format!(
                "DeclinationRate {rate} is outside ±{MAX_DEC_RATE} arc-seconds per second"
            )));
        }
        if self.tracking_rate != DriveRate::Sidereal {
            return Err(AlpacaError::invalid_operation(
                "rate offsets apply only at the sidereal tracking rate",
            ));
        }
        self.rebase(now);
        self.dec_rate = rate;
        Ok(())
    }

    pub fn set_right_ascension_rate(&mut self, now: SimTime, rate: f64) -> AlpacaResult<()> {
        if !(rate.is_finite() && rate.abs() <= MAX_RA_RATE) {
            return Err(AlpacaError::invalid_value(format!(
                "RightAscensionRate {rate} is outside ±{MAX_RA_RATE} seconds per sidereal second"
            )));
        }
        if self.tracking_rate != DriveRate::Sidereal {
            return Err(AlpacaError::invalid_operation(
                "rate offsets apply only at the sidereal tracking rate",
            ));
        }
        self.rebase(now);
        self.ra_rate = rate;
        Ok(())
    }

    pub fn set_does_refraction(&mut self, _on: bool) -> AlpacaResult<()> {
        Err(AlpacaError::not_implemented(
            "DoesRefraction (refraction is not modelled)",
        ))
    }

    fn check_guide_rate(rate: f64) -> AlpacaResult<()> {
        if (0.0..=MAX_GUIDE_RATE).contains(&rate) {
            Ok(())
        } else {
            Err(AlpacaError::invalid_value(format!(
                "guide rate {rate} is outside 0 to {MAX_GUIDE_RATE:.5} degrees/s"
            )))
        }
    }

    /// Takes effect for the next pulse; a pulse in progress keeps its rate.
    pub fn set_guide_rate_declination(&mut self, rate: f64) -> AlpacaResult<()> {
        Self::check_guide_rate(rate)?;
        self.guide_rate_dec = rate;
        Ok(())
    }

    pub fn set_guide_rate_right_ascension(&mut self, rate: f64) -> AlpacaResult<()> {
        Self::check_guide_rate(rate)?;
        self.guide_rate_ra = rate;
        Ok(())
    }

    /// German mounts only: flip to the other side while keeping the same sky position (an
    /// asynchronous slew through the pole).
    pub fn set_side_of_pier(&mut self, now: SimTime, side: PierSide) -> AlpacaResult<()> {
        if self.mount() != MountType::GermanEquatorial {
            return Err(AlpacaError::not_implemented(
                "SideOfPier on a non-German mount",
            ));
        }
        let want = match side {
            PierSide::East => Side::Normal,
            PierSide::West => Side::Flipped,
            PierSide::Unknown => {
                return Err(AlpacaError::invalid_value(
                    "SideOfPier must be East (0) or West (1)",
                ));
            }
        };
        self.refuse_if_parked(now)?;
        self.commit(now);
        if self.slewing(now) {
            return Err(AlpacaError::invalid_operation(
                "cannot change pier side while slewing",
            ));
        }
        let from = self.mech_at(now);
        let (ha, dec, current) = self.mount().sky_of(from);
        if current == want {
            return Ok(());
        }
        let slew = match self.drive {
            Drive::Tracking(tr) => {
                let (ra, dec) = self.sky_at(&tr, now);
                self.plan_sky(SlewKind::Flip, now, from, ra, dec, want)
            }
            _ => self.plan_fixed(
                SlewKind::Flip,
                now,
                from,
                self.mount().mech_of(ha, dec, want),
            ),
        };
        self.begin(slew);
        Ok(())
    }

    pub fn set_site_elevation(&mut self, elevation: f64) -> AlpacaResult<()> {
        if !ELEVATION_RANGE.contains(&elevation) {
            return Err(AlpacaError::invalid_value(format!(
                "SiteElevation {elevation} is outside -300 to 10000 m"
            )));
        }
        self.elevation = elevation;
        Ok(())
    }

    /// A tracked target keeps its RA/Dec; a stopped equatorial mount keeps its hour angle.
    pub fn set_site_latitude(&mut self, now: SimTime, latitude: f64) -> AlpacaResult<()> {
        if !(-90.0..=90.0).contains(&latitude) {
            return Err(AlpacaError::invalid_value(format!(
                "SiteLatitude {latitude} is outside -90 to 90 degrees"
            )));
        }
        self.rebase(now);
        self.latitude = latitude;
        Ok(())
    }

    pub fn set_site_longitude(&mut self, now: SimTime, longitude: f64) -> AlpacaResult<()> {
        if !(-180.0..=180.0).contains(&longitude) {
            return Err(AlpacaError::invalid_value(format!(
                "SiteLongitude {longitude} is outside -180 to 180 degrees"
            )));
        }
        self.rebase(now);
        self.longitude = longitude;
        Ok(())
    }

    pub fn set_slew_settle_time(&mut self, secs: i32) -> AlpacaResult<()> {
        if !(0..=MAX_SETTLE_SECS).contains(&secs) {
            return Err(AlpacaError::invalid_value(format!(
                "SlewSettleTime {secs} is outside 0 to {MAX_SETTLE_SECS} s"
            )));
        }
        self.settle_secs = secs;
        Ok(())
    }

    pub fn set_target_declination(&mut self, dec: f64) -> AlpacaResult<()> {
        check_dec(dec)?;
        self.target_dec = Some(dec);
        Ok(())
    }

    pub fn set_target_right_ascension(&mut self, ra: f64) -> AlpacaResult<()> {
        check_ra(ra)?;
        self.target_ra = Some(ra);
        Ok(())
    }

    /// Turning tracking on while parked is 0x408; off always works. During a slew or
    /// `MoveAxis` the change takes effect when the motion ends.
    pub fn set_tracking(&mut self, now: SimTime, on: bool) -> AlpacaResult<()> {
        let parking = matches!(self.drive, Drive::Slewing(s) if s.kind == SlewKind::Park);
        if on && (parking || self.at_park(now)) {
            return Err(AlpacaError::parked());
        }
        self.rebase(now);
        if on == self.tracking {
            return Ok(());
        }
        self.tracking = on;
        match self.drive {
            Drive::Stopped(m) if on => {
                self.at_home = false;
                self.drive = Drive::Tracking(self.track_from(m, now));
            }
            Drive::Tracking(_) if !on => {
                self.drive = Drive::Stopped(self.mech_at(now));
                self.pulses = [None, None];
            }
            _ => {}
        }
        Ok(())
    }

    pub fn set_tracking_rate(&mut self, now: SimTime, rate: DriveRate) -> AlpacaResult<()> {
        self.rebase(now);
        self.tracking_rate = rate;
        if rate != DriveRate::Sidereal {
            self.ra_rate = 0.0;
            self.dec_rate = 0.0;
        }
        Ok(())
    }

    /// Moves the mount's idea of UTC (and so of sidereal time); motion keeps simulated time.
    pub fn set_utc_date(&mut self, now: SimTime, utc: DateTime<Utc>) -> AlpacaResult<()> {
        self.rebase(now);
        self.utc_offset = SimTime::from_utc(utc).since(now);
        Ok(())
    }

    // ---- methods --------------------------------------------------------------------------

    /// Stops gotos, park, home, flips and `MoveAxis` where they are (0x408 while parked).
    pub fn abort_slew(&mut self, now: SimTime) -> AlpacaResult<()> {
        self.refuse_if_parked(now)?;
        self.commit(now);
        if matches!(self.drive, Drive::Slewing(_) | Drive::Moving(_)) {
            let here = self.mech_at(now);
            self.drive = self.resume(here, now);
        }
        Ok(())
    }

    /// Asynchronous: slews to the home position (counterweight down, pointing at the pole
    /// for equatorial mounts; north on the horizon for alt-az) with tracking off.
    pub fn find_home(&mut self, now: SimTime) -> AlpacaResult<()> {
        self.refuse_if_parked(now)?;
        self.commit(now);
        let from = self.mech_at(now);
        self.tracking = false;
        let slew = self.plan_fixed(SlewKind::Home, now, from, self.home_mech());
        self.begin(slew);
        Ok(())
    }

    /// `rate` degrees per second on one axis (sign = direction, 0 stops it). |rate| must lie
    /// in one of the [`axis_rates`](Self::axis_rates) ranges.
    pub fn move_axis(&mut self, now: SimTime, axis: TelescopeAxis, rate: f64) -> AlpacaResult<()> {
        let index = match axis {
            TelescopeAxis::Primary => 0,
            TelescopeAxis::Secondary => 1,
            TelescopeAxis::Tertiary => {
                return Err(AlpacaError::not_implemented(
                    "MoveAxis on the tertiary axis",
                ));
            }
        };
        // A hair of tolerance so a client echoing an AxisRates bound through text still fits.
        let ok = rate.is_finite()
            && (rate == 0.0
                || self
                    .axis_rates(axis)
                    .iter()
                    .any(|r| rate.abs() >= r.minimum - 1e-9 && rate.abs() <= r.maximum + 1e-9));
        if !ok {
            return Err(AlpacaError::invalid_value(format!(
                "MoveAxis rate {rate} is not within AxisRates"
            )));
        }
        self.refuse_if_parked(now)?;
        self.commit(now);
        if matches!(self.drive, Drive::Slewing(s) if self.motion_time(now) < s.done()) {
            return Err(AlpacaError::invalid_operation(
                "cannot MoveAxis while a slew is in progress",
            ));
        }
        let here = self.mech_at(now);
        let mut rates = match self.drive {
            Drive::Moving(mv) => mv.rates,
            _ => [0.0, 0.0],
        };
        rates[index] = rate;
        if rates == [0.0, 0.0] {
            if matches!(self.drive, Drive::Moving(_)) {
                self.drive = self.resume(here, now);
            }
        } else {
            self.pulses = [None, None];
            self.at_home = false;
            self.drive = Drive::Moving(AxisMove {
                start: now,
                from: here,
                rates,
            });
        }
        Ok(())
    }

    /// Asynchronous: tracking off, slew to the park position, then AtPark. Harmless when
    /// parked or already parking.
    pub fn park(&mut self, now: SimTime) -> AlpacaResult<()> {
        self.commit(now);
        if self.parked || matches!(self.drive, Drive::Slewing(s) if s.kind == SlewKind::Park) {
            return Ok(());
        }
        let from = self.mech_at(now);
        self.tracking = false;
        let slew = self.plan_fixed(SlewKind::Park, now, from, self.park);
        self.begin(slew);
        Ok(())
    }

    /// Asynchronous guide pulse at the guide rate: North = +Dec, East = +RA.
    pub fn pulse_guide(
        &mut self,
        now: SimTime,
        direction: GuideDirection,
        duration_ms: i32,
    ) -> AlpacaResult<()> {
        if !(0..=MAX_PULSE_MS).contains(&duration_ms) {
            return Err(AlpacaError::invalid_value(format!(
                "PulseGuide duration {duration_ms} ms is outside 0 to {MAX_PULSE_MS} ms"
            )));
        }
        self.refuse_if_parked(now)?;
        self.commit(now);
        if self.slewing(now) {
            return Err(AlpacaError::invalid_operation(
                "cannot pulse guide while slewing",
            ));
        }
        if !self.tracking {
            return Err(AlpacaError::invalid_operation(
                "pulse guiding needs tracking on",
            ));
        }
        self.rebase(now);
        // RA: ConformU's expectation, Δα[h] = rate[°/s] × t / (15 × 0.99727).
        let ra_rate = self.guide_rate_ra / 15.0 * SIDEREAL_PER_SI;
        let (index, rate) = match direction {
            GuideDirection::North => (1, self.guide_rate_dec),
            GuideDirection::South => (1, -self.guide_rate_dec),
            GuideDirection::East => (0, ra_rate),
            GuideDirection::West => (0, -ra_rate),
        };
        let end = now.plus(f64::from(duration_ms) / 1000.0);
        self.pulses[index] = Some(Pulse {
            start: now,
            end,
            rate,
        });
        self.at_home = false;
        Ok(())
    }

    /// Remembers the current axis position as the park position.
    pub fn set_park(&mut self, now: SimTime) -> AlpacaResult<()> {
        self.commit(now);
        if self.slewing(now) {
            return Err(AlpacaError::invalid_operation(
                "cannot set the park position while slewing",
            ));
        }
        self.park = self.mech_at(now);
        Ok(())
    }

    pub fn slew_to_alt_az(&mut self) -> AlpacaResult<()> {
        Err(AlpacaError::not_implemented(
            "SlewToAltAz (use SlewToAltAzAsync)",
        ))
    }

    pub fn slew_to_coordinates(&mut self) -> AlpacaResult<()> {
        Err(AlpacaError::not_implemented(
            "SlewToCoordinates (use SlewToCoordinatesAsync)",
        ))
    }

    pub fn slew_to_target(&mut self) -> AlpacaResult<()> {
        Err(AlpacaError::not_implemented(
            "SlewToTarget (use SlewToTargetAsync)",
        ))
    }

    /// Asynchronous slew to fixed alt/az axes; tracking must be off.
    pub fn slew_to_alt_az_async(
        &mut self,
        now: SimTime,
        azimuth: f64,
        altitude: f64,
    ) -> AlpacaResult<()> {
        check_alt_az(azimuth, altitude)?;
        self.refuse_if_parked(now)?;
        if self.tracking {
            return Err(AlpacaError::invalid_operation(
                "alt/az slews need tracking off",
            ));
        }
        self.commit(now);
        let from = self.mech_at(now);
        let slew = self.plan_fixed(
            SlewKind::AltAz,
            now,
            from,
            self.mech_of_altaz(altitude, azimuth, None),
        );
        self.begin(slew);
        Ok(())
    }

    /// Asynchronous slew to RA/Dec (which also become the target); tracking must be on.
    pub fn slew_to_coordinates_async(
        &mut self,
        now: SimTime,
        ra: f64,
        dec: f64,
    ) -> AlpacaResult<()> {
        check_ra(ra)?;
        check_dec(dec)?;
        self.refuse_if_parked(now)?;
        if !self.tracking {
            return Err(AlpacaError::invalid_operation(
                "equatorial slews need tracking on",
            ));
        }
        self.target_ra = Some(ra);
        self.target_dec = Some(dec);
        self.goto_sky(now, ra, dec);
        Ok(())
    }

    pub fn slew_to_target_async(&mut self, now: SimTime) -> AlpacaResult<()> {
        self.refuse_if_parked(now)?;
        let (ra, dec) = (self.target_right_ascension()?, self.target_declination()?);
        if !self.tracking {
            return Err(AlpacaError::invalid_operation(
                "equatorial slews need tracking on",
            ));
        }
        self.goto_sky(now, ra, dec);
        Ok(())
    }

    fn goto_sky(&mut self, now: SimTime, ra: f64, dec: f64) {
        self.commit(now);
        let from = self.mech_at(now);
        let side = self.destination_side(astro::hour_angle(self.lst(now), ra));
        let slew = self.plan_sky(SlewKind::Coordinates, now, from, ra, dec, side);
        self.begin(slew);
    }

    fn refuse_sync(&self, now: SimTime) -> AlpacaResult<()> {
        self.refuse_if_parked(now)?;
        if self.goto_in_progress(now) || matches!(self.drive, Drive::Moving(_)) {
            return Err(AlpacaError::invalid_operation("cannot sync while slewing"));
        }
        Ok(())
    }

    /// Declares the mount to be pointing at alt/az (tracking must be off). The axes do not
    /// move; the pointing model does.
    pub fn sync_to_alt_az(
        &mut self,
        now: SimTime,
        azimuth: f64,
        altitude: f64,
    ) -> AlpacaResult<()> {
        check_alt_az(azimuth, altitude)?;
        self.refuse_sync(now)?;
        if self.tracking {
            return Err(AlpacaError::invalid_operation(
                "alt/az syncs need tracking off",
            ));
        }
        self.commit(now);
        self.drive = Drive::Stopped(self.mech_of_altaz(altitude, azimuth, None));
        Ok(())
    }

    /// Declares the mount to be pointing at RA/Dec (which also become the target; tracking
    /// must be on).
    pub fn sync_to_coordinates(&mut self, now: SimTime, ra: f64, dec: f64) -> AlpacaResult<()> {
        check_ra(ra)?;
        check_dec(dec)?;
        self.refuse_sync(now)?;
        if !self.tracking {
            return Err(AlpacaError::invalid_operation(
                "equatorial syncs need tracking on",
            ));
        }
        self.target_ra = Some(ra);
        self.target_dec = Some(dec);
        self.sync_sky(now, ra, dec);
        Ok(())
    }

    pub fn sync_to_target(&mut self, now: SimTime) -> AlpacaResult<()> {
        self.refuse_sync(now)?;
        let (ra, dec) = (self.target_right_ascension()?, self.target_declination()?);
        if !self.tracking {
            return Err(AlpacaError::invalid_operation(
                "equatorial syncs need tracking on",
            ));
        }
        self.sync_sky(now, ra, dec);
        Ok(())
    }

    fn sync_sky(&mut self, now: SimTime, ra: f64, dec: f64) {
        self.rebase(now);
        // The synced position takes the pointing state a slew there would end in, so a
        // German mount never reports a counterweight-up state it did not slew into.
        let side = self.destination_side(astro::hour_angle(self.lst(now), ra));
        self.drive = Drive::Tracking(Track {
            t0: now,
            ra,
            dec,
            side,
        });
    }

    /// Releases the park lock at once (nothing has to move); a park in progress is stopped
    /// where it is. Harmless when not parked.
    pub fn unpark(&mut self, now: SimTime) -> AlpacaResult<()> {
        self.commit(now);
        if let Drive::Slewing(s) = self.drive
            && s.kind == SlewKind::Park
        {
            self.drive = Drive::Stopped(self.mech_at(now));
        }
        self.parked = false;
        Ok(())
    }

    // ---- simulator hooks ------------------------------------------------------------------

    /// Fault injection: while stuck, slews, park, home and `MoveAxis` make no progress but
    /// keep `Slewing` true. When released, a slew carries on from where it froze (re-aimed
    /// at its tracked target, which kept moving) and an axis move resumes its rates.
    pub fn set_stuck(&mut self, now: SimTime, stuck: bool) {
        match (self.stuck_since, stuck) {
            (None, true) => {
                self.commit(now);
                self.stuck_since = Some(now);
            }
            (Some(since), false) => {
                let frozen = self.mech_at(now);
                let frozen_at = self.motion_time(now);
                self.stuck_since = None;
                match self.drive {
                    Drive::Slewing(s) if frozen_at < s.arrive() => {
                        let slew = match s.sky {
                            Some((ra, dec)) => self.plan_sky(s.kind, now, frozen, ra, dec, s.side),
                            None => self.plan_fixed(s.kind, now, frozen, s.to),
                        };
                        self.drive = Drive::Slewing(slew);
                    }
                    Drive::Slewing(mut s) => {
                        // Frozen while settling: the remaining settle time still has to pass.
                        s.start = s.start.plus(now.since(since).max(0.0));
                        self.drive = Drive::Slewing(s);
                    }
                    Drive::Moving(mv) => {
                        self.drive = Drive::Moving(AxisMove {
                            start: now,
                            from: frozen,
                            rates: mv.rates,
                        });
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    pub fn stuck(&self) -> bool {
        self.stuck_since.is_some()
    }

    fn activity(&self, now: SimTime) -> MountActivity {
        match self.drive {
            Drive::Slewing(s) if self.motion_time(now) < s.arrive() => {
                MountActivity::Slewing(s.kind)
            }
            Drive::Slewing(s) if self.motion_time(now) < s.done() => {
                MountActivity::Settling(s.kind)
            }
            Drive::Moving(_) => MountActivity::MovingAxes,
            _ => match self.effective(now) {
                Drive::Tracking(_) => MountActivity::Tracking,
                _ => MountActivity::Idle,
            },
        }
    }

    pub fn snapshot(&self, now: SimTime) -> TelescopeSnapshot {
        let (ra, dec) = self.radec_at(now);
        let m = self.mech_at(now);
        let hz = self.altaz_of_mech(m);
        let lst = self.lst(now);
        TelescopeSnapshot {
            utc: self.utc_date(now),
            right_ascension: ra,
            declination: dec,
            altitude: hz.altitude,
            azimuth: hz.azimuth,
            hour_angle: astro::hour_angle(lst, ra),
            sidereal_time: lst,
            side_of_pier: self.mount().pier_side(self.mount().sky_of(m).2),
            activity: self.activity(now),
            slewing: self.slewing(now),
            tracking: self.tracking,
            tracking_rate: self.tracking_rate,
            right_ascension_rate: self.right_ascension_rate(),
            declination_rate: self.declination_rate(),
            at_park: self.at_park(now),
            at_home: self.at_home(now),
            is_pulse_guiding: self.is_pulse_guiding(now),
            stuck: self.stuck(),
            target_right_ascension: self.target_ra,
            target_declination: self.target_dec,
            latitude: self.latitude,
            longitude: self.longitude,
            elevation: self.elevation,
            primary_axis: m.p,
            secondary_axis: m.s,
        }
    }

    /// `DeviceState` items (PROTOCOL.md §4), without `TimeStamp`. SideOfPier is left out on
    /// mounts that have none.
    pub fn device_state(&self, now: SimTime) -> Vec<(&'static str, serde_json::Value)> {
        use serde_json::json;
        let snap = self.snapshot(now);
        let mut items = vec![
            ("Altitude", json!(snap.altitude)),
            ("AtHome", json!(snap.at_home)),
            ("AtPark", json!(snap.at_park)),
            ("Azimuth", json!(snap.azimuth)),
            ("Declination", json!(snap.declination)),
            ("IsPulseGuiding", json!(snap.is_pulse_guiding)),
            ("RightAscension", json!(snap.right_ascension)),
        ];
        if self.mount() == MountType::GermanEquatorial {
            items.push(("SideOfPier", json!(snap.side_of_pier.to_i32())));
        }
        items.extend([
            ("SiderealTime", json!(snap.sidereal_time)),
            ("Slewing", json!(snap.slewing)),
            ("Tracking", json!(snap.tracking)),
            (
                "UTCDate",
                json!(bigskies_alpaca::types::format_utc_date(snap.utc)),
            ),
        ]);
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bigskies_alpaca::ErrorCode;
    use chrono::TimeZone;

    fn t0() -> SimTime {
        SimTime::from_utc(
            Utc.with_ymd_and_hms(2026, 3, 20, 22, 0, 0)
                .single()
                .expect("valid date"),
        )
    }

    fn mount(kind: MountType) -> TelescopeModel {
        TelescopeModel::new(
            TelescopeConfig {
                mount: kind,
                ..TelescopeConfig::default()
            },
            t0(),
        )
    }

    fn code<T: std::fmt::Debug>(r: AlpacaResult<T>) -> ErrorCode {
        r.expect_err("expected an ASCOM error").code
    }

    /// Steps a tenth of a second at a time until the mount stops slewing; returns when.
    fn wait_idle(m: &mut TelescopeModel, mut now: SimTime) -> SimTime {
        for _ in 0..100_000 {
            if !m.slewing(now) {
                return now;
            }
            now = now.plus(0.1);
        }
        panic!("still slewing at {now:?}");
    }

    /// Arc-seconds between two RA values (hours), signed, on the sky's RA scale.
    fn ra_arcsec(a: f64, b: f64) -> f64 {
        astro::wrap_12(a - b) * 15.0 * 3600.0
    }

    /// RA/Dec `ha` hours east (negative) or west of the meridian at `now`.
    fn radec_at_ha(m: &TelescopeModel, now: SimTime, ha: f64, dec: f64) -> (f64, f64) {
        (astro::wrap_24(m.sidereal_time(now) - ha), dec)
    }

    #[test]
    fn profile_durations_follow_the_three_speed_stages() {
        let p = SlewProfile::omnisim(20.0);
        assert!((p.duration(180.0) - (176.0 / 20.0 + 3.6 / 2.0 + 0.4 / 0.4)).abs() < 1e-12);
        assert!((p.duration(2.0) - (1.6 / 2.0 + 0.4 / 0.4)).abs() < 1e-12);
        assert!((p.duration(-0.2) - 0.5).abs() < 1e-12);
        assert_eq!(p.duration(0.0), 0.0);
        assert!(
            (p.remaining(100.0, 2.0) - 60.0).abs() < 1e-12,
            "fast stage covers 20°/s"
        );
        assert!(
            (p.remaining(100.0, 4.8 + 0.9) - 2.2).abs() < 1e-12,
            "then 2°/s"
        );
        assert!(p.remaining(100.0, 7.6) < 1e-9);
    }

    #[test]
    fn alt_az_slew_takes_the_time_its_rate_profile_implies() {
        let mut m = mount(MountType::AltAz);
        let t = t0();
        let start = m.altaz_at(t);
        assert!((start.azimuth - 180.0).abs() < 1e-9);
        let alt = start.altitude;
        m.slew_to_alt_az_async(t, 280.0, alt).expect("slew starts");
        assert!(m.slewing(t), "slewing right after the initiator");
        // 100° of azimuth: 96° at 20°/s, 3.6° at 2°/s, 0.4° at 0.4°/s = 7.6 s.
        assert!(
            (m.azimuth(t.plus(2.0)) - 220.0).abs() < 1e-9,
            "full speed for the first 2 s"
        );
        assert!(m.slewing(t.plus(7.55)));
        assert!(!m.slewing(t.plus(7.65)));
        let end = t.plus(7.65);
        assert!((m.azimuth(end) - 280.0).abs() < 1e-9 && (m.altitude(end) - alt).abs() < 1e-9);
        // Stopped (tracking off): the axes hold still however long we wait.
        assert!((m.azimuth(end.plus(600.0)) - 280.0).abs() < 1e-9);
    }

    #[test]
    fn settle_time_extends_slewing_past_arrival() {
        let mut m = mount(MountType::AltAz);
        let t = t0();
        m.set_slew_settle_time(5).expect("valid");
        let alt = m.altitude(t);
        m.slew_to_alt_az_async(t, 280.0, alt).expect("slew starts");
        assert!(
            (m.azimuth(t.plus(8.0)) - 280.0).abs() < 1e-9,
            "arrived at 7.6 s"
        );
        assert!(m.slewing(t.plus(12.5)));
        assert!(!m.slewing(t.plus(12.7)));
        assert_eq!(code(m.set_slew_settle_time(-1)), ErrorCode::INVALID_VALUE);
    }

    #[test]
    fn azimuth_slews_take_the_short_way_round() {
        let mut m = mount(MountType::AltAz);
        let t = t0();
        m.slew_to_alt_az_async(t, 10.0, 30.0).expect("slew");
        let t = wait_idle(&mut m, t);
        m.slew_to_alt_az_async(t, 350.0, 30.0).expect("slew");
        // 20° the short way: 16° fast, 3.6° medium, 0.4° slow = 0.8 + 1.8 + 1 s.
        assert!(m.slewing(t.plus(3.55)) && !m.slewing(t.plus(3.65)));
        assert!((m.azimuth(t.plus(4.0)) - 350.0).abs() < 1e-9);
    }

    #[test]
    fn equatorial_slew_arrives_on_a_moving_target_and_tracks_it() {
        for kind in [
            MountType::GermanEquatorial,
            MountType::Fork,
            MountType::AltAz,
        ] {
            let mut m = mount(kind);
            let t = t0();
            m.set_tracking(t, true).expect("tracking");
            let (ra, dec) = radec_at_ha(&m, t, 2.5, 35.0);
            m.slew_to_coordinates_async(t, ra, dec).expect("slew");
            assert!(m.slewing(t));
            let done = wait_idle(&mut m, t);
            assert!(
                done.since(t) > 2.0 && done.since(t) < 60.0,
                "{kind:?}: {}",
                done.since(t)
            );
            for later in [0.0, 30.0, 3600.0] {
                let now = done.plus(later);
                assert!(
                    ra_arcsec(m.right_ascension(now), ra).abs() < 1.0,
                    "{kind:?} +{later}s"
                );
                assert!(
                    (m.declination(now) - dec).abs() * 3600.0 < 1.0,
                    "{kind:?} +{later}s"
                );
            }
            assert_eq!(m.target_right_ascension(), Ok(ra));
            assert_eq!(m.target_declination(), Ok(dec));
        }
    }

    #[test]
    fn slews_land_on_target_all_over_the_sky_in_both_hemispheres() {
        for kind in [
            MountType::GermanEquatorial,
            MountType::Fork,
            MountType::AltAz,
        ] {
            for latitude in [-33.9, 51.07861] {
                let cfg = TelescopeConfig {
                    mount: kind,
                    latitude,
                    ..TelescopeConfig::default()
                };
                let mut m = TelescopeModel::new(cfg, t0());
                let mut now = t0();
                let mut slews = 0;
                m.set_tracking(now, true).expect("tracking");
                for ha in [-11.0, -7.0, -3.0, -0.5, 0.5, 3.0, 7.0, 11.0] {
                    for dec in [-80.0, -40.0, 0.0, 40.0, 80.0] {
                        let hz = astro::equatorial_to_horizontal(ha, dec, latitude);
                        if hz.altitude < 5.0 {
                            continue;
                        }
                        let (ra, dec) = radec_at_ha(&m, now, ha, dec);
                        m.slew_to_coordinates_async(now, ra, dec).expect("slew");
                        let start = now;
                        now = wait_idle(&mut m, now);
                        slews += 1;
                        let what = format!("{kind:?} lat {latitude} ha {ha} dec {dec}");
                        assert!(now.since(start) < 40.0, "{what}: {} s", now.since(start));
                        assert!(ra_arcsec(m.right_ascension(now), ra).abs() < 1.0, "{what}");
                        assert!((m.declination(now) - dec).abs() * 3600.0 < 1.0, "{what}");
                        if kind == MountType::GermanEquatorial {
                            let expected = astro::destination_side_of_pier(ha);
                            assert_eq!(m.side_of_pier(now), Ok(expected), "{what}");
                        }
                    }
                }
                assert!(
                    slews >= 15,
                    "{kind:?} {latitude}: only {slews} visible targets"
                );
            }
        }
    }

    #[test]
    fn tracking_holds_ra_dec_and_a_stopped_mount_drifts_at_the_sidereal_rate() {
        for kind in [MountType::GermanEquatorial, MountType::AltAz] {
            let mut m = mount(kind);
            let t = t0();
            m.set_tracking(t, true).expect("tracking on");
            let (ra, dec) = (m.right_ascension(t), m.declination(t));
            let later = t.plus(1800.0);
            assert!(
                ra_arcsec(m.right_ascension(later), ra).abs() < 1e-3,
                "{kind:?}"
            );
            assert!((m.declination(later) - dec).abs() < 1e-6, "{kind:?}");

            m.set_tracking(later, false).expect("tracking off");
            let (alt, az) = (m.altitude(later), m.azimuth(later));
            let (ra, dec) = (m.right_ascension(later), m.declination(later));
            let after = later.plus(600.0);
            let expected = 600.0 * SIDEREAL_RATE_ARCSEC;
            let drift = ra_arcsec(m.right_ascension(after), ra);
            assert!(
                (drift - expected).abs() < 0.5,
                "{kind:?}: {drift} vs {expected}"
            );
            assert!(
                (m.declination(after) - dec).abs() * 3600.0 < 0.5,
                "{kind:?}"
            );
            assert!((m.altitude(after) - alt).abs() < 1e-9 && (m.azimuth(after) - az).abs() < 1e-9);
        }
    }

    #[test]
    fn non_sidereal_rates_let_ra_creep_and_refuse_offsets() {
        let mut m = mount(MountType::GermanEquatorial);
        let t = t0();
        m.set_tracking(t, true).expect("tracking");
        m.set_tracking_rate(t, DriveRate::Lunar).expect("lunar");
        let ra = m.right_ascension(t);
        let drift = ra_arcsec(m.right_ascension(t.plus(100.0)), ra);
        let expected = 100.0 * (SIDEREAL_RATE_ARCSEC - astro::LUNAR_RATE_ARCSEC);
        assert!((drift - expected).abs() < 1e-3, "{drift} vs {expected}");
        assert_eq!(
            code(m.set_right_ascension_rate(t, 0.1)),
            ErrorCode::INVALID_OPERATION
        );
        assert_eq!(
            code(m.set_declination_rate(t, 1.0)),
            ErrorCode::INVALID_OPERATION
        );
        assert_eq!((m.right_ascension_rate(), m.declination_rate()), (0.0, 0.0));
        assert_eq!(
            m.tracking_rates(),
            vec![
                DriveRate::Sidereal,
                DriveRate::Lunar,
                DriveRate::Solar,
                DriveRate::King
            ]
        );
    }

    #[test]
    fn rate_offsets_move_the_mount_by_rate_times_time() {
        for (ra_rate, dec_rate) in [(0.05, 0.05), (-0.05, -0.05), (2.5, 40.0), (-2.5, -40.0)] {
            let mut m = mount(MountType::GermanEquatorial);
            let t = t0();
            m.set_tracking(t, true).expect("tracking");
            let (ra, dec) = (m.right_ascension(t), m.declination(t));
            m.set_right_ascension_rate(t, ra_rate).expect("ra rate");
            m.set_declination_rate(t, dec_rate).expect("dec rate");
            assert!(!m.slewing(t), "offset rates are not a slew");
            let later = t.plus(10.0);
            // RA seconds per sidereal second → per SI second: ÷ 0.99727.
            let ra_secs = astro::wrap_12(m.right_ascension(later) - ra) * 3600.0;
            let expected_ra = ra_rate * 10.0 * SIDEREAL_PER_SI;
            assert!(
                (ra_secs - expected_ra).abs() < 1e-6,
                "{ra_secs} vs {expected_ra}"
            );
            let dec_arcsec = (m.declination(later) - dec) * 3600.0;
            assert!((dec_arcsec - dec_rate * 10.0).abs() < 1e-6, "{dec_arcsec}");
            assert_eq!(
                (m.right_ascension_rate(), m.declination_rate()),
                (ra_rate, dec_rate)
            );
        }
    }

    #[test]
    fn pulse_guides_move_by_guide_rate_times_duration() {
        let mut m = mount(MountType::GermanEquatorial);
        let t = t0();
        m.set_tracking(t, true).expect("tracking");
        let (ra, dec) = radec_at_ha(&m, t, 3.0, 20.0);
        m.slew_to_coordinates_async(t, ra, dec).expect("slew");
        let t = wait_idle(&mut m, t);
        let g = m.guide_rate_right_ascension();

        m.pulse_guide(t, GuideDirection::East, 2000).expect("east");
        assert!(m.is_pulse_guiding(t.plus(1.0)));
        assert!(!m.slewing(t.plus(1.0)));
        assert!(!m.is_pulse_guiding(t.plus(2.0)));
        let moved = ra_arcsec(m.right_ascension(t.plus(3.0)), ra);
        let expected = g * 2.0 / (15.0 * 0.99727) * 15.0 * 3600.0;
        assert!((moved - expected).abs() < 1.0, "{moved} vs {expected}");
        assert!(
            (m.declination(t.plus(3.0)) - dec).abs() * 3600.0 < 1e-6,
            "no motion in Dec"
        );

        let t = t.plus(3.0);
        m.pulse_guide(t, GuideDirection::South, 1500)
            .expect("south");
        m.pulse_guide(t, GuideDirection::West, 1000)
            .expect("dual-axis west");
        let after = t.plus(2.0);
        let dec_moved = (m.declination(after) - dec) * 3600.0;
        assert!(
            (dec_moved + m.guide_rate_declination() * 1.5 * 3600.0).abs() < 1.0,
            "{dec_moved}"
        );
        let back = ra_arcsec(m.right_ascension(after), ra);
        assert!((back - expected / 2.0).abs() < 1.0, "{back}");

        assert_eq!(
            code(m.pulse_guide(after, GuideDirection::North, -1)),
            ErrorCode::INVALID_VALUE
        );
        assert_eq!(
            code(m.pulse_guide(after, GuideDirection::North, MAX_PULSE_MS + 1)),
            ErrorCode::INVALID_VALUE
        );
        m.set_tracking(after, false).expect("off");
        assert_eq!(
            code(m.pulse_guide(after, GuideDirection::North, 100)),
            ErrorCode::INVALID_OPERATION
        );
    }

    #[test]
    fn guide_rates_are_settable_within_limits() {
        let mut m = mount(MountType::GermanEquatorial);
        m.set_guide_rate_declination(0.002).expect("valid");
        m.set_guide_rate_right_ascension(0.003).expect("valid");
        assert_eq!(
            (m.guide_rate_declination(), m.guide_rate_right_ascension()),
            (0.002, 0.003)
        );
        assert_eq!(
            code(m.set_guide_rate_declination(-0.001)),
            ErrorCode::INVALID_VALUE
        );
        assert_eq!(
            code(m.set_guide_rate_right_ascension(1.0)),
            ErrorCode::INVALID_VALUE
        );
    }

    #[test]
    fn park_and_unpark_are_asynchronous() {
        let mut m = mount(MountType::GermanEquatorial);
        let t = t0();
        m.set_tracking(t, true).expect("tracking");
        let (ra, dec) = radec_at_ha(&m, t, -2.0, 50.0);
        m.slew_to_coordinates_async(t, ra, dec).expect("slew");
        let t = wait_idle(&mut m, t);

        m.park(t).expect("park");
        assert!(
            m.slewing(t) && !m.at_park(t) && !m.tracking(),
            "parking under way"
        );
        m.park(t.plus(0.5)).expect("parking twice is harmless");
        let t = wait_idle(&mut m, t);
        assert!(m.at_park(t) && !m.tracking());
        // Park position: the meridian on the equator.
        assert!((m.azimuth(t) - 180.0).abs() < 1e-6, "{}", m.azimuth(t));
        assert!((m.altitude(t) - (90.0 - m.site_latitude())).abs() < 1e-6);
        m.park(t).expect("park again");
        assert!(m.at_park(t) && !m.slewing(t));

        m.unpark(t).expect("unpark");
        assert!(!m.at_park(t) && !m.slewing(t));
        m.unpark(t).expect("unpark twice is harmless");
    }

    #[test]
    fn find_home_slews_to_the_pole_and_sets_at_home() {
        let mut m = mount(MountType::GermanEquatorial);
        let t = t0();
        assert!(!m.at_home(t));
        m.find_home(t).expect("home");
        assert!(m.slewing(t) && !m.at_home(t));
        let t = wait_idle(&mut m, t);
        assert!(m.at_home(t) && !m.at_park(t));
        assert!((m.altitude(t) - m.site_latitude()).abs() < 1e-6 && m.declination(t) > 89.9999);
        m.slew_to_alt_az_async(t, 90.0, 45.0).expect("slew away");
        assert!(!m.at_home(t), "any slew resets AtHome");
    }

    #[test]
    fn every_parked_rule_returns_0x408() {
        let mut m = mount(MountType::GermanEquatorial);
        let t = t0();
        m.park(t).expect("park");
        let t = wait_idle(&mut m, t);
        assert!(m.at_park(t));
        m.set_target_right_ascension(5.0)
            .expect("targets are just values");
        m.set_target_declination(10.0)
            .expect("targets are just values");
        let parked = ErrorCode::INVALID_WHILE_PARKED;
        assert_eq!(code(m.abort_slew(t)), parked);
        assert_eq!(code(m.find_home(t)), parked);
        assert_eq!(code(m.move_axis(t, TelescopeAxis::Primary, 1.0)), parked);
        assert_eq!(code(m.pulse_guide(t, GuideDirection::East, 100)), parked);
        assert_eq!(code(m.slew_to_alt_az_async(t, 100.0, 30.0)), parked);
        assert_eq!(code(m.slew_to_coordinates_async(t, 5.0, 10.0)), parked);
        assert_eq!(code(m.slew_to_target_async(t)), parked);
        assert_eq!(code(m.sync_to_alt_az(t, 100.0, 30.0)), parked);
        assert_eq!(code(m.sync_to_coordinates(t, 5.0, 10.0)), parked);
        assert_eq!(code(m.sync_to_target(t)), parked);
        assert_eq!(code(m.set_tracking(t, true)), parked);
        assert_eq!(code(m.set_side_of_pier(t, PierSide::West)), parked);
        m.set_tracking(t, false)
            .expect("tracking off is allowed while parked");
        assert!(
            m.at_park(t) && !m.slewing(t) && !m.tracking(),
            "still parked, nothing moved"
        );
        // Synchronous slews are simply not implemented, parked or not.
        assert_eq!(code(m.slew_to_coordinates()), ErrorCode::NOT_IMPLEMENTED);
        assert_eq!(code(m.slew_to_alt_az()), ErrorCode::NOT_IMPLEMENTED);
        assert_eq!(code(m.slew_to_target()), ErrorCode::NOT_IMPLEMENTED);
        assert!(
            !m.can_slew()
                && !m.can_slew_alt_az()
                && m.can_slew_async()
                && m.can_slew_alt_az_async()
        );
    }

    #[test]
    fn targets_are_value_not_set_until_written() {
        let mut m = mount(MountType::GermanEquatorial);
        let t = t0();
        assert_eq!(code(m.target_right_ascension()), ErrorCode::VALUE_NOT_SET);
        assert_eq!(code(m.target_declination()), ErrorCode::VALUE_NOT_SET);
        m.set_tracking(t, true).expect("tracking");
        assert_eq!(code(m.slew_to_target_async(t)), ErrorCode::VALUE_NOT_SET);
        assert_eq!(code(m.sync_to_target(t)), ErrorCode::VALUE_NOT_SET);
        for bad in [-1.0, 24.0, 25.0, f64::NAN] {
            assert_eq!(
                code(m.set_target_right_ascension(bad)),
                ErrorCode::INVALID_VALUE
            );
        }
        for bad in [-91.0, 90.5, f64::INFINITY] {
            assert_eq!(
                code(m.set_target_declination(bad)),
                ErrorCode::INVALID_VALUE
            );
        }
        m.set_target_right_ascension(23.5).expect("valid");
        assert_eq!(
            code(m.slew_to_target_async(t)),
            ErrorCode::VALUE_NOT_SET,
            "Dec still unset"
        );
        m.set_target_declination(-12.0).expect("valid");
        m.slew_to_target_async(t).expect("both set");
        assert!(m.slewing(t));
    }

    #[test]
    fn slews_and_syncs_validate_their_coordinates() {
        let mut m = mount(MountType::GermanEquatorial);
        let t = t0();
        m.set_tracking(t, true).expect("tracking");
        for (ra, dec) in [(-1.0, 0.0), (25.0, 0.0), (1.0, -100.0), (1.0, 100.0)] {
            assert_eq!(
                code(m.slew_to_coordinates_async(t, ra, dec)),
                ErrorCode::INVALID_VALUE
            );
            assert_eq!(
                code(m.sync_to_coordinates(t, ra, dec)),
                ErrorCode::INVALID_VALUE
            );
            assert_eq!(
                code(m.destination_side_of_pier(t, ra, dec)),
                ErrorCode::INVALID_VALUE
            );
        }
        for (az, alt) in [
            (-10.0, 30.0),
            (370.0, 30.0),
            (100.0, -100.0),
            (100.0, 100.0),
        ] {
            assert_eq!(
                code(m.slew_to_alt_az_async(t, az, alt)),
                ErrorCode::INVALID_VALUE
            );
            assert_eq!(code(m.sync_to_alt_az(t, az, alt)), ErrorCode::INVALID_VALUE);
        }
        assert_eq!(
            code(m.slew_to_alt_az_async(t, 100.0, 30.0)),
            ErrorCode::INVALID_OPERATION,
            "tracking on"
        );
        m.set_tracking(t, false).expect("off");
        assert_eq!(
            code(m.slew_to_coordinates_async(t, 1.0, 10.0)),
            ErrorCode::INVALID_OPERATION,
            "tracking off"
        );
        assert!(!m.slewing(t), "refused slews leave the mount alone");
    }

    #[test]
    fn syncs_move_the_pointing_not_the_axes() {
        let mut m = mount(MountType::GermanEquatorial);
        let t = t0();
        m.set_tracking(t, true).expect("tracking");
        let (ra, dec) = radec_at_ha(&m, t, 1.0, 15.0);
        m.sync_to_coordinates(t, ra, dec).expect("sync");
        assert!(!m.slewing(t));
        assert!(ra_arcsec(m.right_ascension(t.plus(60.0)), ra).abs() < 1e-3);
        assert!((m.declination(t.plus(60.0)) - dec).abs() < 1e-9);
        assert_eq!(
            (m.target_right_ascension(), m.target_declination()),
            (Ok(ra), Ok(dec))
        );

        m.set_tracking(t, false).expect("off");
        m.sync_to_alt_az(t, 120.0, 40.0).expect("sync alt/az");
        assert!((m.azimuth(t) - 120.0).abs() < 1e-9 && (m.altitude(t) - 40.0).abs() < 1e-9);
    }

    #[test]
    fn abort_stops_a_slew_where_it_is() {
        let mut m = mount(MountType::AltAz);
        let t = t0();
        m.slew_to_alt_az_async(t, 280.0, 30.0).expect("slew");
        let mid = t.plus(2.0);
        m.abort_slew(mid).expect("abort");
        assert!(!m.slewing(mid));
        let az = m.azimuth(mid);
        assert!((az - 220.0).abs() < 1e-9, "{az}");
        assert!((m.azimuth(mid.plus(60.0)) - az).abs() < 1e-9);
        m.abort_slew(mid).expect("abort when idle is harmless");
    }

    #[test]
    fn move_axis_checks_rates_moves_and_restores_tracking() {
        let mut m = mount(MountType::GermanEquatorial);
        let t = t0();
        let ranges = m.axis_rates(TelescopeAxis::Primary);
        assert_eq!(
            ranges,
            vec![AxisRate::new(0.0, 20.0 / 3.0), AxisRate::new(10.0, 20.0)]
        );
        assert!(m.axis_rates(TelescopeAxis::Tertiary).is_empty());
        assert!(
            m.can_move_axis(TelescopeAxis::Secondary) && !m.can_move_axis(TelescopeAxis::Tertiary)
        );
        for bad in [8.0, -8.0, 20.5, -25.0, f64::NAN] {
            assert_eq!(
                code(m.move_axis(t, TelescopeAxis::Primary, bad)),
                ErrorCode::INVALID_VALUE,
                "{bad}"
            );
        }
        assert_eq!(
            code(m.move_axis(t, TelescopeAxis::Tertiary, 1.0)),
            ErrorCode::NOT_IMPLEMENTED
        );

        m.set_tracking(t, true).expect("tracking");
        let before = m.mech_at(t);
        m.move_axis(t, TelescopeAxis::Secondary, -2.0)
            .expect("valid");
        m.move_axis(t, TelescopeAxis::Primary, 15.0).expect("valid");
        assert!(m.slewing(t.plus(1.0)));
        let moved = m.mech_at(t.plus(3.0));
        assert!(
            (moved.p - before.p - 45.0).abs() < 1e-9 && (moved.s - before.s + 6.0).abs() < 1e-9
        );
        assert_eq!(
            code(m.slew_to_alt_az_async(t, 1.0, 1.0)),
            ErrorCode::INVALID_OPERATION,
            "tracking kept on"
        );
        m.move_axis(t.plus(3.0), TelescopeAxis::Primary, 0.0)
            .expect("stop primary");
        assert!(m.slewing(t.plus(3.5)), "secondary still moving");
        m.move_axis(t.plus(4.0), TelescopeAxis::Secondary, 0.0)
            .expect("stop secondary");
        let stop = t.plus(4.0);
        assert!(!m.slewing(stop) && m.tracking());
        let (ra, dec) = (m.right_ascension(stop), m.declination(stop));
        assert!(
            ra_arcsec(m.right_ascension(stop.plus(100.0)), ra).abs() < 1e-3,
            "tracking resumed"
        );
        assert!((m.declination(stop.plus(100.0)) - dec).abs() < 1e-9);
    }

    #[test]
    fn pier_side_follows_the_hour_angle_and_a_flip_really_moves() {
        let mut m = mount(MountType::GermanEquatorial);
        let t = t0();
        m.set_tracking(t, true).expect("tracking");
        let mut now = t;
        for (ha, dec, side) in [
            (-3.0, 30.0, PierSide::West),
            (3.0, 30.0, PierSide::East),
            (-9.0, 70.0, PierSide::West),
            (9.0, 70.0, PierSide::East),
        ] {
            let (ra, dec) = radec_at_ha(&m, now, ha, dec);
            assert_eq!(
                m.destination_side_of_pier(now, ra, dec),
                Ok(side),
                "HA {ha}"
            );
            m.slew_to_coordinates_async(now, ra, dec).expect("slew");
            now = wait_idle(&mut m, now);
            assert_eq!(m.side_of_pier(now), Ok(side), "HA {ha}");
        }
        // Flip to the other side: same sky position, both axes move, and it takes time.
        let (ra, dec) = (m.right_ascension(now), m.declination(now));
        let before = m.mech_at(now);
        m.set_side_of_pier(now, PierSide::West).expect("flip");
        assert!(m.slewing(now));
        let done = wait_idle(&mut m, now);
        assert!(
            done.since(now) > 5.0,
            "a flip is a big slew: {}",
            done.since(now)
        );
        assert_eq!(m.side_of_pier(done), Ok(PierSide::West));
        let after = m.mech_at(done);
        assert!((after.s - before.s).abs() > 30.0 && (after.p - before.p).abs() > 150.0);
        assert!(
            ra_arcsec(m.right_ascension(done), ra).abs() < 1.0
                && (m.declination(done) - dec).abs() * 3600.0 < 1.0
        );
        assert_eq!(
            code(m.set_side_of_pier(done, PierSide::Unknown)),
            ErrorCode::INVALID_VALUE
        );

        let alt_az = mount(MountType::AltAz);
        assert_eq!(code(alt_az.side_of_pier(t)), ErrorCode::NOT_IMPLEMENTED);
        assert!(!alt_az.can_set_pier_side());
    }

    #[test]
    fn site_writes_are_validated_and_read_back() {
        let mut m = mount(MountType::GermanEquatorial);
        let t = t0();
        m.set_site_latitude(t, -33.5).expect("valid");
        m.set_site_longitude(t, 151.25).expect("valid");
        m.set_site_elevation(-12.0).expect("valid");
        assert_eq!(
            (m.site_latitude(), m.site_longitude(), m.site_elevation()),
            (-33.5, 151.25, -12.0)
        );
        assert_eq!(code(m.set_site_latitude(t, 90.1)), ErrorCode::INVALID_VALUE);
        assert_eq!(
            code(m.set_site_longitude(t, -181.0)),
            ErrorCode::INVALID_VALUE
        );
        assert_eq!(code(m.set_site_elevation(-301.0)), ErrorCode::INVALID_VALUE);
        assert_eq!(
            code(m.set_site_elevation(10_001.0)),
            ErrorCode::INVALID_VALUE
        );
        let lst = astro::local_sidereal_time(t, 151.25);
        assert!((m.sidereal_time(t) - lst).abs() < 1e-12);
    }

    #[test]
    fn utc_date_writes_shift_the_mount_clock_only() {
        let mut m = mount(MountType::GermanEquatorial);
        let t = t0();
        let lst = m.sidereal_time(t);
        let plus_hour = m.utc_date(t) + chrono::Duration::hours(1);
        m.set_utc_date(t, plus_hour).expect("write");
        assert_eq!(m.utc_date(t), plus_hour);
        assert_eq!(
            m.utc_date(t.plus(10.0)),
            plus_hour + chrono::Duration::seconds(10)
        );
        let shifted = astro::wrap_12(m.sidereal_time(t) - lst);
        assert!((shifted - SIDEREAL_PER_SI).abs() < 1e-6, "{shifted}");
    }

    #[test]
    fn a_stuck_mount_keeps_slewing_without_progress() {
        let mut m = mount(MountType::AltAz);
        let t = t0();
        m.slew_to_alt_az_async(t, 280.0, 30.0).expect("slew");
        m.set_stuck(t.plus(1.0), true);
        let frozen = m.azimuth(t.plus(1.0));
        for later in [2.0, 10.0, 500.0] {
            assert!(m.slewing(t.plus(later)));
            assert_eq!(m.azimuth(t.plus(later)), frozen);
        }
        m.set_stuck(t.plus(500.0), false);
        assert!(m.slewing(t.plus(500.0)));
        let done = wait_idle(&mut m, t.plus(500.0));
        assert!((m.azimuth(done) - 280.0).abs() < 1e-9);
        assert!(
            done.since(t.plus(500.0)) > 5.0,
            "the rest of the slew still takes its time"
        );

        // Park while stuck never completes until released.
        m.set_stuck(done, true);
        m.park(done).expect("park");
        assert!(m.slewing(done.plus(300.0)) && !m.at_park(done.plus(300.0)));
        m.set_stuck(done.plus(300.0), false);
        let parked = wait_idle(&mut m, done.plus(300.0));
        assert!(m.at_park(parked));
    }

    #[test]
    fn device_state_lists_exactly_the_operational_properties() {
        let m = mount(MountType::GermanEquatorial);
        let names: Vec<_> = m.device_state(t0()).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "Altitude",
                "AtHome",
                "AtPark",
                "Azimuth",
                "Declination",
                "IsPulseGuiding",
                "RightAscension",
                "SideOfPier",
                "SiderealTime",
                "Slewing",
                "Tracking",
                "UTCDate"
            ]
        );
        let state = m.device_state(t0());
        let utc = state
            .iter()
            .find(|(n, _)| *n == "UTCDate")
            .map(|(_, v)| v.clone());
        assert_eq!(utc, Some(serde_json::json!("2026-03-20T22:00:00.0000000Z")));
        let alt_az: Vec<_> = mount(MountType::AltAz)
            .device_state(t0())
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(!alt_az.contains(&"SideOfPier"));
    }

    #[test]
    fn snapshot_serialises_and_config_problems_are_reported() {
        let m = mount(MountType::GermanEquatorial);
        let json = serde_json::to_value(m.snapshot(t0())).expect("serialisable");
        assert_eq!(json["activity"], serde_json::json!("idle"));
        assert_eq!(json["at_park"], serde_json::json!(false));
        assert!(TelescopeConfig::default().problems().is_empty());
        let bad = TelescopeConfig {
            latitude: 95.0,
            max_slew_rate: 0.0,
            park_azimuth: Some(360.0),
            ..Default::default()
        };
        assert_eq!(bad.problems().len(), 3, "{:?}", bad.problems());
        let parsed: TelescopeConfig =
            toml::from_str("mount = \"alt_az\"\nlatitude = -30.0").expect("valid toml");
        assert_eq!((parsed.mount, parsed.latitude), (MountType::AltAz, -30.0));
        assert!(
            toml::from_str::<TelescopeConfig>("latitud = 1.0").is_err(),
            "unknown keys are refused"
        );
    }
}
