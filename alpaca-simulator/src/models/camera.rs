//! A simulated CCD/CMOS camera (ICameraV4): binning, subframes, timed exposures with the
//! full CameraState sequence, a cooler whose sensor temperature approaches the set point
//! exponentially, gain/offset in any of the three ASCOM modes, ST-4 pulse guiding, and a
//! deterministic synthetic star field as the image.
//!
//! An exposure is stored as its parameters plus a progress anchor; its state (Waiting →
//! Exposing → Reading → Download → Idle + ImageReady) is computed from the clock when read.
//! The image is rendered on first request from the exposure's recorded parameters
//! ([`ImageRecipe`]), so it is the same however late it is fetched. What the rest of the
//! observatory contributes (pointing, focus, filter, dome shutter) arrives as a
//! [`FrameContext`] captured at StartExposure.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use bigskies_alpaca::{AlpacaError, AlpacaResult};

use crate::clock::SimTime;

/// ASCOM `CameraState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraState {
    Idle = 0,
    Waiting = 1,
    Exposing = 2,
    Reading = 3,
    Download = 4,
    Error = 5,
}

impl CameraState {
    /// The ASCOM number of this state.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// ASCOM `SensorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorType {
    Monochrome = 0,
    /// One-shot colour delivering three planes; not simulated (see [`CameraConfig::problems`]).
    Color = 1,
    Rggb = 2,
    Cmyg = 3,
    Cmyg2 = 4,
    Lrgb = 5,
}

impl SensorType {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// ASCOM `GuideDirection`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GuideDirection {
    North = 0,
    South = 1,
    East = 2,
    West = 3,
}

impl GuideDirection {
    /// The direction for an ASCOM number; 0x401 for anything else.
    pub fn from_code(code: i32) -> AlpacaResult<Self> {
        Ok(match code {
            0 => Self::North,
            1 => Self::South,
            2 => Self::East,
            3 => Self::West,
            other => {
                return Err(AlpacaError::invalid_value(format!(
                    "guide direction {other} is not 0..=3"
                )));
            }
        })
    }

    /// Index of the guide axis this direction drives (0 = declination, 1 = right ascension).
    fn axis(self) -> usize {
        match self {
            Self::North | Self::South => 0,
            Self::East | Self::West => 1,
        }
    }
}

/// How a gain- or offset-like control is offered (PROTOCOL.md §6: the three consistent modes).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum ControlMode {
    /// The control and its Min/Max/list members all return 0x400.
    None,
    /// Index mode: the value is an index into `names` (Gains / Offsets).
    List { names: Vec<String>, initial: i32 },
    /// Value mode: any integer in `min..=max` (GainMin/GainMax, OffsetMin/OffsetMax).
    Range { min: i32, max: i32, initial: i32 },
}

impl ControlMode {
    fn initial(&self) -> i32 {
        match self {
            Self::None => 0,
            Self::List { initial, .. } | Self::Range { initial, .. } => *initial,
        }
    }

    fn problems(&self, what: &str) -> Vec<String> {
        match self {
            Self::None => vec![],
            Self::List { names, initial } => {
                let mut p = vec![];
                if names.is_empty() || names.iter().any(|n| n.trim().is_empty()) {
                    p.push(format!("camera {what} list needs non-empty names"));
                }
                if *initial < 0 || *initial as usize >= names.len().max(1) {
                    p.push(format!(
                        "camera {what} initial index {initial} is not in the list"
                    ));
                }
                p
            }
            Self::Range { min, max, initial } => {
                if min > max || !(min..=max).contains(&initial) {
                    vec![format!(
                        "camera {what} range needs min ≤ initial ≤ max, got {min} ≤ {initial} ≤ {max}"
                    )]
                } else {
                    vec![]
                }
            }
        }
    }

    /// Check a value written by a client.
    fn validate(&self, what: &str, value: i32) -> AlpacaResult<()> {
        match self {
            Self::None => Err(AlpacaError::not_implemented(what)),
            Self::List { names, .. } => {
                if value < 0 || value as usize >= names.len() {
                    Err(AlpacaError::invalid_value(format!(
                        "{what} index {value} is not in 0..{}",
                        names.len()
                    )))
                } else {
                    Ok(())
                }
            }
            Self::Range { min, max, .. } => {
                if (min..=max).contains(&&value) {
                    Ok(())
                } else {
                    Err(AlpacaError::invalid_value(format!(
                        "{what} {value} is not in {min}..={max}"
                    )))
                }
            }
        }
    }
}

/// A gain/offset control: its mode and current value.
#[derive(Clone, Debug, PartialEq)]
struct Control {
    mode: ControlMode,
    value: i32,
}

impl Control {
    fn new(mode: ControlMode) -> Self {
        let value = mode.initial();
        Self { mode, value }
    }

    fn get(&self, what: &str) -> AlpacaResult<i32> {
        match self.mode {
            ControlMode::None => Err(AlpacaError::not_implemented(what)),
            _ => Ok(self.value),
        }
    }

    fn set(&mut self, what: &str, value: i32) -> AlpacaResult<()> {
        self.mode.validate(what, value)?;
        self.value = value;
        Ok(())
    }

    fn min(&self, what: &str) -> AlpacaResult<i32> {
        match self.mode {
            ControlMode::Range { min, .. } => Ok(min),
            _ => Err(AlpacaError::not_implemented(what)),
        }
    }

    fn max(&self, what: &str) -> AlpacaResult<i32> {
        match self.mode {
            ControlMode::Range { max, .. } => Ok(max),
            _ => Err(AlpacaError::not_implemented(what)),
        }
    }

    fn names(&self, what: &str) -> AlpacaResult<Vec<String>> {
        match &self.mode {
            ControlMode::List { names, .. } => Ok(names.clone()),
            _ => Err(AlpacaError::not_implemented(what)),
        }
    }

    /// Position of the value in its range as a number of "steps" from the bottom, used to
    /// scale the image: list index, or value − min.
    fn steps(&self) -> f64 {
        match self.mode {
            ControlMode::None => 0.0,
            ControlMode::List { .. } => f64::from(self.value),
            ControlMode::Range { min, .. } => f64::from(self.value) - f64::from(min),
        }
    }
}

/// User-facing camera parameters. Defaults follow OmniSim where that is sensible (800 × 600,
/// 5.6 µm, MaxBin 4, 0.8 e⁻/ADU, 30 000 e⁻ full well) but enable more features.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CameraConfig {
    pub name: String,
    pub description: String,
    pub sensor_name: String,
    pub sensor_type: SensorType,
    pub bayer_offset_x: i32,
    pub bayer_offset_y: i32,
    /// Unbinned sensor size in pixels.
    pub x_size: i32,
    pub y_size: i32,
    pub pixel_size_x: f64,
    pub pixel_size_y: f64,
    pub max_bin_x: i32,
    pub max_bin_y: i32,
    pub can_asymmetric_bin: bool,
    pub electrons_per_adu: f64,
    pub full_well_capacity: f64,
    pub max_adu: i32,
    pub exposure_min: f64,
    pub exposure_max: f64,
    pub exposure_resolution: f64,
    pub has_shutter: bool,
    pub can_abort_exposure: bool,
    pub can_stop_exposure: bool,
    pub can_pulse_guide: bool,
    pub can_fast_readout: bool,
    pub readout_modes: Vec<String>,
    pub gain: ControlMode,
    pub offset: ControlMode,
    /// `SubExposureDuration` initial value; `None` = not implemented.
    pub sub_exposure_duration: Option<f64>,
    /// Delay between StartExposure and the shutter opening (CameraState Waiting).
    pub waiting_secs: f64,
    /// Time to read a full unbinned frame (CameraState Reading); scales with pixels read.
    pub readout_secs: f64,
    /// FastReadout divides the readout time by this.
    pub fast_readout_factor: f64,
    /// Time to transfer the frame to the host (CameraState Download).
    pub download_secs: f64,
    // Cooler.
    pub has_cooler: bool,
    pub can_set_ccd_temperature: bool,
    pub can_get_cooler_power: bool,
    pub cooler_on_at_start: bool,
    pub ambient_temperature: f64,
    pub initial_set_point: f64,
    pub set_point_min: f64,
    pub set_point_max: f64,
    /// The most the cooler can pull the sensor below ambient.
    pub max_cooling_delta: f64,
    /// Exponential time constant of the sensor temperature.
    pub cooling_time_constant_secs: f64,
    // Image synthesis.
    /// Seed of the star field and noise; the same seed gives the same frames.
    pub seed: u64,
    /// Stars over the full unbinned sensor.
    pub star_count: u32,
    /// Brightest and faintest star, electrons per second (before filter transmission).
    pub star_flux_max: f64,
    pub star_flux_min: f64,
    /// In-focus star FWHM in unbinned pixels (seeing).
    pub star_fwhm_px: f64,
    /// Extra FWHM (unbinned pixels) per focuser step away from best focus.
    pub defocus_fwhm_px_per_step: f64,
    /// Sky background, electrons per second per unbinned pixel.
    pub sky_e_per_sec: f64,
    /// Dark current at 0 °C, electrons per second per unbinned pixel; doubles every 6 °C.
    pub dark_e_per_sec_at_0c: f64,
    pub read_noise_e: f64,
    /// Bias level in ADU with the offset control at its lowest.
    pub bias_adu: f64,
    /// ADU of bias added per offset step (list index or value above OffsetMin).
    pub bias_adu_per_offset_step: f64,
    /// Add shot and read noise (off gives the noiseless expectation, handy for analysis).
    pub noise: bool,
    /// Transmission per filter name (matched case-insensitively); 0 blocks all light.
    pub filter_transmission: BTreeMap<String, f64>,
    /// Transmission for filter names not in the table.
    pub unknown_filter_transmission: f64,
}

impl Default for CameraConfig {
    fn default() -> Self {
        let filters = [
            ("luminance", 1.0),
            ("l", 1.0),
            ("clear", 1.0),
            ("red", 0.3),
            ("green", 0.3),
            ("blue", 0.3),
            ("r", 0.3),
            ("g", 0.3),
            ("b", 0.3),
            ("ha", 0.06),
            ("oiii", 0.05),
            ("sii", 0.04),
            ("lpr", 0.7),
            ("dark", 0.0),
        ];
        Self {
            name: "Big Skies Camera Simulator".into(),
            description: "Simulated cooled monochrome camera".into(),
            sensor_name: "BSK-800".into(),
            sensor_type: SensorType::Monochrome,
            bayer_offset_x: 0,
            bayer_offset_y: 0,
            x_size: 800,
            y_size: 600,
            pixel_size_x: 5.6,
            pixel_size_y: 5.6,
            max_bin_x: 4,
            max_bin_y: 4,
            can_asymmetric_bin: true,
            electrons_per_adu: 0.8,
            full_well_capacity: 30_000.0,
            max_adu: 65_535,
            exposure_min: 0.001,
            exposure_max: 3600.0,
            exposure_resolution: 0.001,
            has_shutter: true,
            can_abort_exposure: true,
            can_stop_exposure: true,
            can_pulse_guide: true,
            can_fast_readout: true,
            readout_modes: vec!["Default".into()],
            gain: ControlMode::Range {
                min: 0,
                max: 300,
                initial: 0,
            },
            offset: ControlMode::Range {
                min: 0,
                max: 255,
                initial: 10,
            },
            sub_exposure_duration: None,
            waiting_secs: 0.0,
            readout_secs: 0.8,
            fast_readout_factor: 4.0,
            download_secs: 0.2,
            has_cooler: true,
            can_set_ccd_temperature: true,
            can_get_cooler_power: true,
            cooler_on_at_start: false,
            ambient_temperature: 10.0,
            initial_set_point: -10.0,
            set_point_min: -40.0,
            set_point_max: 45.0,
            max_cooling_delta: 40.0,
            cooling_time_constant_secs: 6.0,
            seed: 0x5eed_b165_c1e5,
            star_count: 60,
            star_flux_max: 60_000.0,
            star_flux_min: 300.0,
            star_fwhm_px: 3.0,
            defocus_fwhm_px_per_step: 0.02,
            sky_e_per_sec: 5.0,
            dark_e_per_sec_at_0c: 0.1,
            read_noise_e: 5.0,
            bias_adu: 100.0,
            bias_adu_per_offset_step: 2.0,
            noise: true,
            filter_transmission: filters
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            unknown_filter_transmission: 0.5,
        }
    }
}

impl CameraConfig {
    /// Every problem with this configuration (empty when it is usable).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let finite_pos = |v: f64| v.is_finite() && v > 0.0;
        if self.x_size < 1 || self.y_size < 1 {
            p.push(format!(
                "camera size must be at least 1×1, got {}×{}",
                self.x_size, self.y_size
            ));
        }
        if !(at_least(self.pixel_size_x, 1.0) && at_least(self.pixel_size_y, 1.0)) {
            p.push("camera pixel sizes must be at least 1 µm".into());
        }
        if self.max_bin_x < 1 || self.max_bin_y < 1 {
            p.push("camera max_bin_x/max_bin_y must be at least 1".into());
        }
        if !self.can_asymmetric_bin && self.max_bin_x != self.max_bin_y {
            p.push("camera max_bin_x must equal max_bin_y unless can_asymmetric_bin".into());
        }
        if self.sensor_type == SensorType::Color {
            p.push("camera sensor_type \"color\" (three-plane images) is not simulated".into());
        }
        if !finite_pos(self.electrons_per_adu) || !finite_pos(self.full_well_capacity) {
            p.push("camera electrons_per_adu and full_well_capacity must be above 0".into());
        }
        if self.max_adu < 1 {
            p.push("camera max_adu must be at least 1".into());
        }
        let exposure_ok = at_least(self.exposure_min, 0.0)
            && at_least(self.exposure_max, 0.0001)
            && self.exposure_min <= self.exposure_max
            && at_least(self.exposure_resolution, 0.0)
            && self.exposure_resolution <= self.exposure_max;
        if !exposure_ok {
            p.push(
                "camera needs 0 ≤ exposure_min ≤ exposure_max, exposure_resolution ≤ exposure_max"
                    .into(),
            );
        }
        if self.readout_modes.is_empty() || self.readout_modes.iter().any(|m| m.trim().is_empty()) {
            p.push("camera needs at least one non-empty readout mode".into());
        }
        p.extend(self.gain.problems("gain"));
        p.extend(self.offset.problems("offset"));
        if let Some(s) = self.sub_exposure_duration
            && !(finite_pos(s) && s <= self.exposure_max)
        {
            p.push(format!(
                "camera sub_exposure_duration {s} must be in (0, exposure_max]"
            ));
        }
        let times = [self.waiting_secs, self.readout_secs, self.download_secs];
        if !(times.iter().all(|t| at_least(*t, 0.0)) && at_least(self.fast_readout_factor, 1.0)) {
            p.push(
                "camera waiting/readout/download times must be ≥ 0 and fast_readout_factor ≥ 1"
                    .into(),
            );
        }
        let set_points_ok = at_least(self.set_point_min, -273.15)
            && self.set_point_max < 100.0
            && (self.set_point_min..=self.set_point_max).contains(&self.initial_set_point);
        if !set_points_ok {
            p.push(
                "camera needs −273.15 ≤ set_point_min ≤ initial_set_point ≤ set_point_max < 100"
                    .into(),
            );
        }
        if !(finite_pos(self.cooling_time_constant_secs) && at_least(self.max_cooling_delta, 0.0)) {
            p.push(
                "camera cooling_time_constant_secs must be above 0 and max_cooling_delta ≥ 0"
                    .into(),
            );
        }
        if !self.ambient_temperature.is_finite() {
            p.push("camera ambient_temperature must be finite".into());
        }
        let fluxes = [self.star_flux_max, self.star_flux_min, self.star_fwhm_px];
        if fluxes.iter().any(|f| !finite_pos(*f)) || self.star_flux_min > self.star_flux_max {
            p.push(
                "camera star fluxes and FWHM must be above 0 with star_flux_min ≤ star_flux_max"
                    .into(),
            );
        }
        let nonneg = [
            self.defocus_fwhm_px_per_step,
            self.sky_e_per_sec,
            self.dark_e_per_sec_at_0c,
            self.read_noise_e,
            self.bias_adu,
            self.bias_adu_per_offset_step,
            self.unknown_filter_transmission,
        ];
        if nonneg.iter().any(|v| !at_least(*v, 0.0))
            || self
                .filter_transmission
                .values()
                .any(|v| !at_least(*v, 0.0))
        {
            p.push(
                "camera image parameters (sky, dark, noise, bias, transmissions) must be ≥ 0"
                    .into(),
            );
        }
        p
    }

    fn transmission(&self, filter: Option<&str>) -> f64 {
        let Some(name) = filter else { return 1.0 };
        let key = name.trim().to_lowercase();
        self.filter_transmission
            .iter()
            .find(|(k, _)| k.to_lowercase() == key)
            .map_or(self.unknown_filter_transmission, |(_, v)| *v)
    }
}

/// What the rest of the simulated observatory contributes to a frame, captured at
/// StartExposure.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct FrameContext {
    /// Where the mount points: (right ascension in hours, declination in degrees). Each
    /// pointing (to 0.05°) shows its own star field; `None` shows the camera's default field.
    pub pointing: Option<(f64, f64)>,
    /// Focuser distance from best focus in steps; widens the stars.
    pub focus_error_steps: f64,
    /// Name of the filter in the light path (`None` = no filter wheel / clear path).
    pub filter: Option<String>,
    /// Whether light reaches the telescope (dome shutter, cover). Closed gives a dark frame.
    pub shutter_open: bool,
}

impl Default for FrameContext {
    /// An open sky, in focus, no filter, default field.
    fn default() -> Self {
        Self {
            pointing: None,
            focus_error_steps: 0.0,
            filter: None,
            shutter_open: true,
        }
    }
}

/// Supplies a [`FrameContext`] at StartExposure; installed by the simulator's wiring, which
/// couples the camera to the mount, focuser, filter wheel and dome.
#[derive(Clone)]
pub struct ContextSource(Arc<dyn Fn() -> FrameContext + Send + Sync>);

impl ContextSource {
    pub fn new(f: impl Fn() -> FrameContext + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    pub fn frame_context(&self) -> FrameContext {
        (self.0)()
    }
}

impl fmt::Debug for ContextSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContextSource(..)")
    }
}

/// A finished frame: `width` × `height` pixels, stored `[x][y]` (index `x * height + y`), as
/// ImageArray and ImageBytes send them.
#[derive(Clone, Debug, PartialEq)]
pub struct CameraImage {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<i32>,
}

impl CameraImage {
    pub fn get(&self, x: usize, y: usize) -> Option<i32> {
        (x < self.width && y < self.height).then(|| self.pixels[x * self.height + y])
    }
}

/// Binning and subframe of one exposure, in binned pixels.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Frame {
    pub bin_x: i32,
    pub bin_y: i32,
    pub start_x: i32,
    pub start_y: i32,
    pub num_x: i32,
    pub num_y: i32,
}

/// Everything needed to render one exposure's image, independent of the camera's later state.
/// Cheap to clone, so a caller can render outside the device lock.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageRecipe {
    cfg: Arc<CameraConfig>,
    frame: Frame,
    ctx: FrameContext,
    light: bool,
    exposure_secs: f64,
    ccd_temperature: f64,
    gain_steps: f64,
    offset_steps: f64,
    fast_readout: bool,
    number: u64,
}

/// How an exposure ended, if it did not simply complete.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ending {
    Completed,
    Aborted,
}

#[derive(Clone, Debug)]
struct Exposure {
    recipe: ImageRecipe,
    /// When StartExposure was called.
    started: SimTime,
    requested: f64,
    wait: f64,
    /// Shutter-open time; shortened by StopExposure.
    expose: f64,
    read: f64,
    download: f64,
    /// Progress clock: `done_before` seconds of progress as of `anchor`.
    anchor: SimTime,
    done_before: f64,
    aborted: bool,
    image: OnceLock<Arc<CameraImage>>,
}

impl Exposure {
    fn progress(&self, now: SimTime, stuck: bool) -> f64 {
        self.done_before
            + if stuck {
                0.0
            } else {
                now.since(self.anchor).max(0.0)
            }
    }

    fn total(&self) -> f64 {
        self.wait + self.expose + self.read + self.download
    }

    /// State from progress; `Idle` once the whole sequence has run.
    fn state_at(&self, p: f64) -> CameraState {
        if self.aborted {
            CameraState::Idle
        } else if p < self.wait {
            CameraState::Waiting
        } else if p < self.wait + self.expose {
            CameraState::Exposing
        } else if p < self.wait + self.expose + self.read {
            CameraState::Reading
        } else if p < self.total() {
            CameraState::Download
        } else {
            CameraState::Idle
        }
    }

    fn ending(&self, p: f64) -> Option<Ending> {
        if self.aborted {
            Some(Ending::Aborted)
        } else if p >= self.total() {
            Some(Ending::Completed)
        } else {
            None
        }
    }

    fn shutter_opened(&self) -> SimTime {
        self.started.plus(self.wait)
    }
}

/// A guide pulse on one axis: `remaining` seconds still to run as of `start` (re-anchored
/// when the camera gets stuck or unstuck, so a stuck pulse never ends).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Pulse {
    start: SimTime,
    remaining: f64,
}

impl Pulse {
    fn left(&self, now: SimTime, stuck: bool) -> f64 {
        let ran = if stuck {
            0.0
        } else {
            now.since(self.start).max(0.0)
        };
        (self.remaining - ran).max(0.0)
    }
}

/// Start time and actual duration of a completed exposure.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Completed {
    start: SimTime,
    duration: f64,
}

/// The cooler: sensor temperature relaxes exponentially towards its current goal.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Cooler {
    on: bool,
    set_point: f64,
    anchor: SimTime,
    temp_at_anchor: f64,
}

/// The camera's state at one instant, for the simulator's control API.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CameraSnapshot {
    pub state: CameraState,
    pub percent_completed: Option<i32>,
    pub image_ready: bool,
    pub exposure_number: u64,
    pub exposure_requested: Option<f64>,
    pub exposure_light: Option<bool>,
    pub frame: Frame,
    pub context: Option<FrameContext>,
    pub ccd_temperature: f64,
    pub set_point: f64,
    pub cooler_on: bool,
    pub cooler_power: f64,
    pub heat_sink_temperature: f64,
    pub is_pulse_guiding: bool,
    pub stuck: bool,
    pub error: bool,
}

/// The pure camera model.
#[derive(Clone, Debug)]
pub struct CameraModel {
    cfg: Arc<CameraConfig>,
    bin_x: i32,
    bin_y: i32,
    start_x: i32,
    start_y: i32,
    num_x: i32,
    num_y: i32,
    readout_mode: i32,
    fast_readout: bool,
    gain: Control,
    offset: Control,
    sub_exposure: Option<f64>,
    cooler: Cooler,
    exposure: Option<Exposure>,
    last_completed: Option<Completed>,
    exposures_started: u64,
    /// End of the current pulse on each guide axis (declination, right ascension).
    pulses: [Pulse; 2],
    stuck: bool,
    /// Fault injection: CameraState Error until the next StartExposure or AbortExposure.
    error: bool,
    context_source: Option<ContextSource>,
}

impl CameraModel {
    /// An idle camera at bin 1 × 1, full frame, sensor at ambient temperature. Unusable config
    /// values are replaced by defaults; call [`CameraConfig::problems`] first to report them.
    pub fn new(mut cfg: CameraConfig, now: SimTime) -> Self {
        let d = CameraConfig::default();
        cfg.x_size = cfg.x_size.max(1);
        cfg.y_size = cfg.y_size.max(1);
        cfg.max_bin_x = cfg.max_bin_x.max(1);
        cfg.max_bin_y = cfg.max_bin_y.max(1);
        cfg.max_adu = cfg.max_adu.max(1);
        if cfg.readout_modes.is_empty() {
            cfg.readout_modes = d.readout_modes.clone();
        }
        if !(cfg.cooling_time_constant_secs.is_finite() && cfg.cooling_time_constant_secs > 0.0) {
            cfg.cooling_time_constant_secs = d.cooling_time_constant_secs;
        }
        if !(cfg.electrons_per_adu.is_finite() && cfg.electrons_per_adu > 0.0) {
            cfg.electrons_per_adu = d.electrons_per_adu;
        }
        cfg.fast_readout_factor = if cfg.fast_readout_factor >= 1.0 {
            cfg.fast_readout_factor
        } else {
            1.0
        };
        for t in [
            &mut cfg.waiting_secs,
            &mut cfg.readout_secs,
            &mut cfg.download_secs,
        ] {
            if !(t.is_finite() && *t >= 0.0) {
                *t = 0.0;
            }
        }
        let gain = Control::new(cfg.gain.clone());
        let offset = Control::new(cfg.offset.clone());
        let cooler = Cooler {
            on: cfg.has_cooler && cfg.cooler_on_at_start,
            set_point: cfg.initial_set_point,
            anchor: now,
            temp_at_anchor: cfg.ambient_temperature,
        };
        Self {
            bin_x: 1,
            bin_y: 1,
            start_x: 0,
            start_y: 0,
            num_x: cfg.x_size,
            num_y: cfg.y_size,
            readout_mode: 0,
            fast_readout: false,
            gain,
            offset,
            sub_exposure: cfg.sub_exposure_duration,
            cooler,
            exposure: None,
            last_completed: None,
            exposures_started: 0,
            pulses: [Pulse {
                start: now,
                remaining: 0.0,
            }; 2],
            stuck: false,
            error: false,
            context_source: None,
            cfg: Arc::new(cfg),
        }
    }

    pub fn config(&self) -> &CameraConfig {
        &self.cfg
    }

    /// Install the hook that supplies pointing/focus/filter/shutter at StartExposure.
    pub fn set_context_source(&mut self, source: Option<ContextSource>) {
        self.context_source = source;
    }

    /// The installed context hook (call it outside the camera's lock).
    pub fn context_source(&self) -> Option<ContextSource> {
        self.context_source.clone()
    }

    fn frame(&self) -> Frame {
        Frame {
            bin_x: self.bin_x,
            bin_y: self.bin_y,
            start_x: self.start_x,
            start_y: self.start_y,
            num_x: self.num_x,
            num_y: self.num_y,
        }
    }

    fn progress(&self, now: SimTime) -> Option<(&Exposure, f64)> {
        self.exposure
            .as_ref()
            .map(|e| (e, e.progress(now, self.stuck)))
    }

    /// The last exposure that ran to completion, as of `now`.
    fn completed(&self, now: SimTime) -> Option<Completed> {
        match self.progress(now) {
            Some((e, p)) if e.ending(p) == Some(Ending::Completed) => Some(Completed {
                start: e.shutter_opened(),
                duration: e.expose,
            }),
            _ => self.last_completed,
        }
    }

    // ---- cooler physics ----

    /// Where the sensor temperature is heading: the set point (as far as the cooler can pull
    /// below ambient) when on, ambient when off.
    fn cooler_goal(&self) -> f64 {
        let ambient = self.cfg.ambient_temperature;
        if self.cooler.on {
            self.cooler
                .set_point
                .max(ambient - self.cfg.max_cooling_delta)
        } else {
            ambient
        }
    }

    fn ccd_temp(&self, now: SimTime) -> f64 {
        let goal = self.cooler_goal();
        let dt = now.since(self.cooler.anchor).max(0.0);
        goal + (self.cooler.temp_at_anchor - goal)
            * (-dt / self.cfg.cooling_time_constant_secs).exp()
    }

    fn cooler_power_at(&self, now: SimTime) -> f64 {
        if !self.cooler.on {
            return 0.0;
        }
        let goal = self.cooler_goal();
        let delta = self.cfg.max_cooling_delta.max(1e-9);
        // Holding power to stay below ambient, plus full drive while still warmer than the goal.
        let holding = 100.0 * (self.cfg.ambient_temperature - goal) / delta;
        let pulling = 100.0 * (self.ccd_temp(now) - goal) / 2.0;
        (holding + pulling).clamp(0.0, 100.0)
    }

    fn re_anchor_cooler(&mut self, now: SimTime) {
        self.cooler.temp_at_anchor = self.ccd_temp(now);
        self.cooler.anchor = now;
    }

    // ---- ICameraV4: geometry and capabilities ----

    pub fn bayer_offset_x(&self) -> AlpacaResult<i32> {
        self.bayer(self.cfg.bayer_offset_x, "BayerOffsetX")
    }

    pub fn bayer_offset_y(&self) -> AlpacaResult<i32> {
        self.bayer(self.cfg.bayer_offset_y, "BayerOffsetY")
    }

    fn bayer(&self, v: i32, what: &str) -> AlpacaResult<i32> {
        match self.cfg.sensor_type {
            SensorType::Monochrome => Err(AlpacaError::not_implemented(format!(
                "{what} on a monochrome sensor"
            ))),
            _ => Ok(v),
        }
    }

    pub fn camera_x_size(&self) -> i32 {
        self.cfg.x_size
    }

    pub fn camera_y_size(&self) -> i32 {
        self.cfg.y_size
    }

    pub fn can_abort_exposure(&self) -> bool {
        self.cfg.can_abort_exposure
    }

    pub fn can_asymmetric_bin(&self) -> bool {
        self.cfg.can_asymmetric_bin
    }

    pub fn can_fast_readout(&self) -> bool {
        self.cfg.can_fast_readout
    }

    pub fn can_get_cooler_power(&self) -> bool {
        self.cfg.can_get_cooler_power
    }

    pub fn can_pulse_guide(&self) -> bool {
        self.cfg.can_pulse_guide
    }

    pub fn can_set_ccd_temperature(&self) -> bool {
        self.cfg.can_set_ccd_temperature
    }

    pub fn can_stop_exposure(&self) -> bool {
        self.cfg.can_stop_exposure
    }

    pub fn has_shutter(&self) -> bool {
        self.cfg.has_shutter
    }

    pub fn max_adu(&self) -> i32 {
        self.cfg.max_adu
    }

    pub fn max_bin_x(&self) -> i32 {
        self.cfg.max_bin_x
    }

    pub fn max_bin_y(&self) -> i32 {
        self.cfg.max_bin_y
    }

    pub fn pixel_size_x(&self) -> f64 {
        self.cfg.pixel_size_x
    }

    pub fn pixel_size_y(&self) -> f64 {
        self.cfg.pixel_size_y
    }

    pub fn sensor_name(&self) -> String {
        self.cfg.sensor_name.clone()
    }

    pub fn sensor_type(&self) -> SensorType {
        self.cfg.sensor_type
    }

    pub fn full_well_capacity(&self) -> f64 {
        self.cfg.full_well_capacity
    }

    /// `ElectronsPerADU` at the current gain (higher gain, fewer electrons per ADU).
    pub fn electrons_per_adu(&self) -> f64 {
        self.cfg.electrons_per_adu / gain_factor(&self.gain.mode, self.gain.steps())
    }

    pub fn exposure_min(&self) -> f64 {
        self.cfg.exposure_min
    }

    pub fn exposure_max(&self) -> f64 {
        self.cfg.exposure_max
    }

    pub fn exposure_resolution(&self) -> f64 {
        self.cfg.exposure_resolution
    }

    // ---- binning and subframe ----

    pub fn bin_x(&self) -> i32 {
        self.bin_x
    }

    pub fn bin_y(&self) -> i32 {
        self.bin_y
    }

    /// `BinX` setter: validated at once (1..=MaxBinX, else 0x401).
    pub fn set_bin_x(&mut self, bin: i32) -> AlpacaResult<()> {
        self.bin_x = check_bin(bin, self.cfg.max_bin_x, "BinX")?;
        Ok(())
    }

    /// `BinY` setter: validated at once (1..=MaxBinY, else 0x401).
    pub fn set_bin_y(&mut self, bin: i32) -> AlpacaResult<()> {
        self.bin_y = check_bin(bin, self.cfg.max_bin_y, "BinY")?;
        Ok(())
    }

    pub fn num_x(&self) -> i32 {
        self.num_x
    }

    pub fn num_y(&self) -> i32 {
        self.num_y
    }

    pub fn start_x(&self) -> i32 {
        self.start_x
    }

    pub fn start_y(&self) -> i32 {
        self.start_y
    }

    // Subframe setters accept anything: ConformU writes bad values and expects StartExposure
    // to reject them (PROTOCOL.md §6).
    pub fn set_num_x(&mut self, v: i32) {
        self.num_x = v;
    }

    pub fn set_num_y(&mut self, v: i32) {
        self.num_y = v;
    }

    pub fn set_start_x(&mut self, v: i32) {
        self.start_x = v;
    }

    pub fn set_start_y(&mut self, v: i32) {
        self.start_y = v;
    }

    // ---- readout, gain, offset ----

    pub fn readout_modes(&self) -> Vec<String> {
        self.cfg.readout_modes.clone()
    }

    pub fn readout_mode(&self) -> i32 {
        self.readout_mode
    }

    pub fn set_readout_mode(&mut self, mode: i32) -> AlpacaResult<()> {
        let n = self.cfg.readout_modes.len();
        if mode < 0 || mode as usize >= n {
            return Err(AlpacaError::invalid_value(format!(
                "readout mode {mode} is not in 0..{n}"
            )));
        }
        self.readout_mode = mode;
        Ok(())
    }

    pub fn fast_readout(&self) -> AlpacaResult<bool> {
        if !self.cfg.can_fast_readout {
            return Err(AlpacaError::not_implemented("FastReadout"));
        }
        Ok(self.fast_readout)
    }

    pub fn set_fast_readout(&mut self, on: bool) -> AlpacaResult<()> {
        if !self.cfg.can_fast_readout {
            return Err(AlpacaError::not_implemented("FastReadout"));
        }
        self.fast_readout = on;
        Ok(())
    }

    pub fn gain(&self) -> AlpacaResult<i32> {
        self.gain.get("Gain")
    }

    pub fn set_gain(&mut self, v: i32) -> AlpacaResult<()> {
        self.gain.set("Gain", v)
    }

    pub fn gain_min(&self) -> AlpacaResult<i32> {
        self.gain.min("GainMin")
    }

    pub fn gain_max(&self) -> AlpacaResult<i32> {
        self.gain.max("GainMax")
    }

    pub fn gains(&self) -> AlpacaResult<Vec<String>> {
        self.gain.names("Gains")
    }

    pub fn offset(&self) -> AlpacaResult<i32> {
        self.offset.get("Offset")
    }

    pub fn set_offset(&mut self, v: i32) -> AlpacaResult<()> {
        self.offset.set("Offset", v)
    }

    pub fn offset_min(&self) -> AlpacaResult<i32> {
        self.offset.min("OffsetMin")
    }

    pub fn offset_max(&self) -> AlpacaResult<i32> {
        self.offset.max("OffsetMax")
    }

    pub fn offsets(&self) -> AlpacaResult<Vec<String>> {
        self.offset.names("Offsets")
    }

    pub fn sub_exposure_duration(&self) -> AlpacaResult<f64> {
        self.sub_exposure
            .ok_or_else(|| AlpacaError::not_implemented("SubExposureDuration"))
    }

    pub fn set_sub_exposure_duration(&mut self, secs: f64) -> AlpacaResult<()> {
        if self.sub_exposure.is_none() {
            return Err(AlpacaError::not_implemented("SubExposureDuration"));
        }
        if !(secs.is_finite() && secs > 0.0 && secs <= self.cfg.exposure_max) {
            return Err(AlpacaError::invalid_value(format!(
                "SubExposureDuration {secs} must be in (0, {}]",
                self.cfg.exposure_max
            )));
        }
        self.sub_exposure = Some(secs);
        Ok(())
    }

    // ---- cooler ----

    pub fn ccd_temperature(&self, now: SimTime) -> f64 {
        self.ccd_temp(now)
    }

    pub fn heat_sink_temperature(&self, now: SimTime) -> f64 {
        // The heat sink warms a little with the heat the cooler pumps into it.
        self.cfg.ambient_temperature + 0.05 * self.cooler_power_at(now)
    }

    pub fn cooler_on(&self) -> AlpacaResult<bool> {
        if !self.cfg.has_cooler {
            return Err(AlpacaError::not_implemented("CoolerOn"));
        }
        Ok(self.cooler.on)
    }

    pub fn set_cooler_on(&mut self, now: SimTime, on: bool) -> AlpacaResult<()> {
        if !self.cfg.has_cooler {
            return Err(AlpacaError::not_implemented("CoolerOn"));
        }
        self.re_anchor_cooler(now);
        self.cooler.on = on;
        Ok(())
    }

    pub fn cooler_power(&self, now: SimTime) -> AlpacaResult<f64> {
        if !self.cfg.can_get_cooler_power {
            return Err(AlpacaError::not_implemented("CoolerPower"));
        }
        Ok(self.cooler_power_at(now))
    }

    /// `SetCCDTemperature` getter.
    pub fn set_ccd_temperature(&self) -> AlpacaResult<f64> {
        if !self.cfg.can_set_ccd_temperature {
            return Err(AlpacaError::not_implemented("SetCCDTemperature"));
        }
        Ok(self.cooler.set_point)
    }

    /// `SetCCDTemperature` setter: within set_point_min..=set_point_max (always above
    /// −273.15 and below 100 °C), else 0x401.
    pub fn set_set_ccd_temperature(&mut self, now: SimTime, celsius: f64) -> AlpacaResult<()> {
        if !self.cfg.can_set_ccd_temperature {
            return Err(AlpacaError::not_implemented("SetCCDTemperature"));
        }
        let (lo, hi) = (
            self.cfg.set_point_min.max(-273.15),
            self.cfg.set_point_max.min(99.99),
        );
        if !(lo..=hi).contains(&celsius) {
            return Err(AlpacaError::invalid_value(format!(
                "set point {celsius} °C is not in {lo}..={hi}"
            )));
        }
        self.re_anchor_cooler(now);
        self.cooler.set_point = celsius;
        Ok(())
    }

    // ---- exposures ----

    pub fn camera_state(&self, now: SimTime) -> CameraState {
        if self.error {
            return CameraState::Error;
        }
        self.progress(now)
            .map_or(CameraState::Idle, |(e, p)| e.state_at(p))
    }

    pub fn image_ready(&self, now: SimTime) -> bool {
        !self.error
            && self
                .progress(now)
                .is_some_and(|(e, p)| e.ending(p) == Some(Ending::Completed))
    }

    /// `PercentCompleted`: progress through the shutter-open time while exposing, through
    /// readout and download after that; 100 once an image is ready, 0 when idle without one.
    pub fn percent_completed(&self, now: SimTime) -> AlpacaResult<i32> {
        if self.error {
            return Err(AlpacaError::invalid_operation(
                "the camera is in its error state",
            ));
        }
        let Some((e, p)) = self.progress(now) else {
            return Ok(0);
        };
        let frac = |done: f64, of: f64| {
            if of > 0.0 {
                (done / of).clamp(0.0, 1.0)
            } else {
                1.0
            }
        };
        let f = match e.state_at(p) {
            CameraState::Waiting => 0.0,
            CameraState::Exposing => frac(p - e.wait, e.expose),
            CameraState::Reading | CameraState::Download => {
                frac(p - e.wait - e.expose, e.read + e.download)
            }
            CameraState::Idle | CameraState::Error => {
                if e.ending(p) == Some(Ending::Completed) {
                    1.0
                } else {
                    0.0
                }
            }
        };
        Ok((f * 100.0).floor() as i32)
    }

    /// `LastExposureDuration`: the actual shutter-open time of the last completed exposure;
    /// 0x40B before there is one.
    pub fn last_exposure_duration(&self, now: SimTime) -> AlpacaResult<f64> {
        self.completed(now)
            .map(|c| c.duration)
            .ok_or_else(|| AlpacaError::invalid_operation("no exposure has completed yet"))
    }

    /// When the shutter opened for the last completed exposure; 0x40B before there is one.
    pub fn last_exposure_start(&self, now: SimTime) -> AlpacaResult<SimTime> {
        self.completed(now)
            .map(|c| c.start)
            .ok_or_else(|| AlpacaError::invalid_operation("no exposure has completed yet"))
    }

    /// `LastExposureStartTime` in FITS form (`yyyy-mm-ddThh:mm:ss.fff`, UTC, no zone);
    /// 0x40B before there is one.
    pub fn last_exposure_start_time(&self, now: SimTime) -> AlpacaResult<String> {
        self.last_exposure_start(now)
            .map(|t| t.utc().format("%Y-%m-%dT%H:%M:%S%.3f").to_string())
    }

    /// `StartExposure`: validates everything (state 0x40B; duration, subframe 0x401; unequal
    /// bins without asymmetric binning 0x40B) and then starts the sequence, returning at once.
    pub fn start_exposure(
        &mut self,
        now: SimTime,
        duration: f64,
        light: bool,
        ctx: FrameContext,
    ) -> AlpacaResult<()> {
        let state = self.camera_state(now);
        if !matches!(state, CameraState::Idle | CameraState::Error) {
            return Err(AlpacaError::invalid_operation(format!(
                "cannot start an exposure while {state:?}"
            )));
        }
        let cfg = &self.cfg;
        if !(duration.is_finite() && duration >= 0.0) {
            return Err(AlpacaError::invalid_value(format!(
                "exposure duration {duration} must be ≥ 0"
            )));
        }
        if light && (duration < cfg.exposure_min || duration > cfg.exposure_max) {
            return Err(AlpacaError::invalid_value(format!(
                "a light exposure must be {}..={} s, got {duration}",
                cfg.exposure_min, cfg.exposure_max
            )));
        }
        if duration > cfg.exposure_max {
            return Err(AlpacaError::invalid_value(format!(
                "exposure {duration} s exceeds {} s",
                cfg.exposure_max
            )));
        }
        if !cfg.can_asymmetric_bin && self.bin_x != self.bin_y {
            return Err(AlpacaError::invalid_operation(format!(
                "this camera cannot bin {}×{} (asymmetric)",
                self.bin_x, self.bin_y
            )));
        }
        let f = self.frame();
        let (wx, wy) = (cfg.x_size / f.bin_x, cfg.y_size / f.bin_y);
        let check = |start: i32, num: i32, width: i32, axis: &str| -> AlpacaResult<()> {
            if num < 1 || start < 0 || i64::from(start) + i64::from(num) > i64::from(width) {
                Err(AlpacaError::invalid_value(format!(
                    "subframe Start{axis}={start} Num{axis}={num} does not fit the binned width {width}"
                )))
            } else {
                Ok(())
            }
        };
        check(f.start_x, f.num_x, wx, "X")?;
        check(f.start_y, f.num_y, wy, "Y")?;

        // Readout time scales with the pixels actually read (binned pixels).
        let pixels = f64::from(f.num_x) * f64::from(f.num_y);
        let full = f64::from(cfg.x_size) * f64::from(cfg.y_size);
        let speed = if self.fast_readout {
            cfg.fast_readout_factor
        } else {
            1.0
        };
        let read = cfg.readout_secs * pixels / full / speed;
        let download = cfg.download_secs * pixels / full;

        if let Some(done) = self.completed(now) {
            self.last_completed = Some(done);
        }
        self.exposures_started += 1;
        let recipe = ImageRecipe {
            cfg: Arc::clone(&self.cfg),
            frame: f,
            ctx,
            light,
            exposure_secs: duration,
            ccd_temperature: self.ccd_temp(now),
            gain_steps: self.gain.steps(),
            offset_steps: self.offset.steps(),
            fast_readout: self.fast_readout,
            number: self.exposures_started,
        };
        self.exposure = Some(Exposure {
            recipe,
            started: now,
            requested: duration,
            wait: self.cfg.waiting_secs,
            expose: duration,
            read,
            download,
            anchor: now,
            done_before: 0.0,
            aborted: false,
            image: OnceLock::new(),
        });
        self.error = false;
        Ok(())
    }

    /// `AbortExposure`: discards the exposure. Succeeds when idle; 0x40B during download
    /// (the data is already on its way); 0x400 without CanAbortExposure.
    pub fn abort_exposure(&mut self, now: SimTime) -> AlpacaResult<()> {
        if !self.cfg.can_abort_exposure {
            return Err(AlpacaError::not_implemented("AbortExposure"));
        }
        self.error = false;
        match self.camera_state(now) {
            CameraState::Download => Err(AlpacaError::invalid_operation(
                "cannot abort during download",
            )),
            CameraState::Waiting | CameraState::Exposing | CameraState::Reading => {
                if let Some(e) = self.exposure.as_mut() {
                    e.aborted = true;
                }
                Ok(())
            }
            CameraState::Idle | CameraState::Error => Ok(()),
        }
    }

    /// `StopExposure`: ends the shutter-open time now and keeps the image (read out as
    /// usual). Succeeds when idle; 0x40B once readout has begun; 0x400 without CanStopExposure.
    pub fn stop_exposure(&mut self, now: SimTime) -> AlpacaResult<()> {
        if !self.cfg.can_stop_exposure {
            return Err(AlpacaError::not_implemented("StopExposure"));
        }
        let stuck = self.stuck;
        match self.camera_state(now) {
            CameraState::Waiting | CameraState::Exposing => {
                if let Some(e) = self.exposure.as_mut() {
                    let p = e.progress(now, stuck);
                    let opened = (p - e.wait).max(0.0);
                    // The shutter closes now (a stop while Waiting never opens it) and the
                    // rest of the sequence runs from here.
                    e.wait = e.wait.min(p);
                    e.expose = opened;
                    e.recipe.exposure_secs = opened;
                    e.done_before = e.wait + e.expose;
                    e.anchor = now;
                }
                Ok(())
            }
            CameraState::Reading | CameraState::Download => Err(AlpacaError::invalid_operation(
                "the exposure is already being read out",
            )),
            CameraState::Idle | CameraState::Error => Ok(()),
        }
    }

    /// What is needed to render the current image; 0x40B unless ImageReady.
    pub fn image_recipe(&self, now: SimTime) -> AlpacaResult<ImageRecipe> {
        match self.progress(now) {
            Some((e, _)) if self.image_ready(now) => Ok(e.recipe.clone()),
            _ => Err(AlpacaError::invalid_operation("no image is ready")),
        }
    }

    /// `ImageArray` data, rendered on first request and cached; 0x40B unless ImageReady.
    pub fn image(&self, now: SimTime) -> AlpacaResult<Arc<CameraImage>> {
        match self.progress(now) {
            Some((e, _)) if self.image_ready(now) => Ok(Arc::clone(
                e.image.get_or_init(|| Arc::new(e.recipe.render())),
            )),
            _ => Err(AlpacaError::invalid_operation("no image is ready")),
        }
    }

    // ---- guiding ----

    pub fn is_pulse_guiding(&self, now: SimTime) -> bool {
        self.pulses.iter().any(|p| p.left(now, self.stuck) > 0.0)
    }

    /// `PulseGuide`: starts a pulse of `duration_ms` on the direction's axis and returns at
    /// once; IsPulseGuiding stays true until it ends.
    pub fn pulse_guide(
        &mut self,
        now: SimTime,
        direction: GuideDirection,
        duration_ms: i32,
    ) -> AlpacaResult<()> {
        if !self.cfg.can_pulse_guide {
            return Err(AlpacaError::not_implemented("PulseGuide"));
        }
        if duration_ms < 0 {
            return Err(AlpacaError::invalid_value(format!(
                "pulse duration {duration_ms} ms must be ≥ 0"
            )));
        }
        self.pulses[direction.axis()] = Pulse {
            start: now,
            remaining: f64::from(duration_ms) / 1000.0,
        };
        Ok(())
    }

    // ---- simulator control ----

    /// Fault injection: while stuck an exposure (and a guide pulse) makes no progress but
    /// keeps reporting its state (e.g. Exposing forever).
    pub fn set_stuck(&mut self, now: SimTime, stuck: bool) {
        if stuck == self.stuck {
            return;
        }
        if let Some(e) = self.exposure.as_mut() {
            e.done_before = e.progress(now, self.stuck);
            e.anchor = now;
        }
        for p in &mut self.pulses {
            *p = Pulse {
                start: now,
                remaining: p.left(now, self.stuck),
            };
        }
        self.stuck = stuck;
    }

    pub fn stuck(&self) -> bool {
        self.stuck
    }

    /// Fault injection: put the camera into CameraState Error (the current exposure is lost);
    /// cleared by StartExposure or AbortExposure.
    pub fn set_error(&mut self, on: bool) {
        self.error = on;
        if on && let Some(e) = self.exposure.as_mut() {
            e.aborted = true;
        }
    }

    pub fn snapshot(&self, now: SimTime) -> CameraSnapshot {
        let e = self.exposure.as_ref();
        CameraSnapshot {
            state: self.camera_state(now),
            percent_completed: self.percent_completed(now).ok(),
            image_ready: self.image_ready(now),
            exposure_number: self.exposures_started,
            exposure_requested: e.map(|e| e.requested),
            exposure_light: e.map(|e| e.recipe.light),
            frame: self.frame(),
            context: e.map(|e| e.recipe.ctx.clone()),
            ccd_temperature: self.ccd_temp(now),
            set_point: self.cooler.set_point,
            cooler_on: self.cooler.on,
            cooler_power: self.cooler_power_at(now),
            heat_sink_temperature: self.heat_sink_temperature(now),
            is_pulse_guiding: self.is_pulse_guiding(now),
            stuck: self.stuck,
            error: self.error,
        }
    }
}

/// `v` is a finite number ≥ `min`.
fn at_least(v: f64, min: f64) -> bool {
    v.is_finite() && v >= min
}

fn check_bin(bin: i32, max: i32, what: &str) -> AlpacaResult<i32> {
    if (1..=max).contains(&bin) {
        Ok(bin)
    } else {
        Err(AlpacaError::invalid_value(format!(
            "{what} {bin} is not in 1..={max}"
        )))
    }
}

/// Signal multiplier for a gain setting: ×2 per list entry (ISO-style), or 0.1 dB per unit
/// above GainMin in value mode (so +200 = ×10).
fn gain_factor(mode: &ControlMode, steps: f64) -> f64 {
    match mode {
        ControlMode::None => 1.0,
        ControlMode::List { .. } => 2f64.powf(steps),
        ControlMode::Range { .. } => 10f64.powf(steps / 200.0),
    }
}

/// splitmix64: tiny, fast and stable across crate versions, so a seed means the same frame
/// forever.
#[derive(Clone, Debug)]
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

fn mix(a: u64, b: u64) -> u64 {
    SplitMix(a ^ b.rotate_left(17).wrapping_mul(0xD6E8_FEB8_6659_FD93)).next_u64()
}

/// One star of the synthetic field, in unbinned sensor pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Star {
    pub x: f64,
    pub y: f64,
    /// Electrons per second before filter transmission.
    pub flux: f64,
}

impl ImageRecipe {
    /// The seed of the star field: the camera's seed, varied by pointing (to 0.05°).
    fn field_seed(&self) -> u64 {
        match self.ctx.pointing {
            None => self.cfg.seed,
            Some((ra_h, dec)) => {
                let q = |deg: f64| (deg / 0.05).round() as i64 as u64;
                mix(
                    mix(self.cfg.seed, q((ra_h * 15.0).rem_euclid(360.0))),
                    q(dec),
                )
            }
        }
    }

    /// The stars of this frame's field (whole sensor), brightest-to-faintest distribution
    /// log-uniform.
    pub fn stars(&self) -> Vec<Star> {
        let mut rng = SplitMix(self.field_seed());
        let (w, h) = (f64::from(self.cfg.x_size), f64::from(self.cfg.y_size));
        let (lo, hi) = (self.cfg.star_flux_min.ln(), self.cfg.star_flux_max.ln());
        (0..self.cfg.star_count)
            .map(|_| Star {
                x: rng.uniform() * w,
                y: rng.uniform() * h,
                flux: (lo + rng.uniform() * (hi - lo)).exp(),
            })
            .collect()
    }

    /// Star FWHM in unbinned pixels for this frame's focus error.
    pub fn star_fwhm_px(&self) -> f64 {
        let defocus = self.cfg.defocus_fwhm_px_per_step * self.ctx.focus_error_steps.abs();
        self.cfg.star_fwhm_px.hypot(defocus)
    }

    /// Render the frame: sky + dark current + Gaussian stars in electrons, shot and read
    /// noise, gain and bias, clipped to full well and MaxADU.
    pub fn render(&self) -> CameraImage {
        let cfg = &self.cfg;
        let f = self.frame;
        // Validated at StartExposure: all of these are ≥ 1 / ≥ 0.
        let (nx, ny) = (f.num_x.max(0) as usize, f.num_y.max(0) as usize);
        let (bx, by) = (f64::from(f.bin_x), f64::from(f.bin_y));
        let area = bx * by;
        let t = self.exposure_secs;
        let sees_sky = (self.light || !cfg.has_shutter) && self.ctx.shutter_open;
        let trans = if sees_sky {
            cfg.transmission(self.ctx.filter.as_deref())
        } else {
            0.0
        };
        let dark = cfg.dark_e_per_sec_at_0c * 2f64.powf(self.ccd_temperature / 6.0);
        let background = (cfg.sky_e_per_sec * trans + dark) * t * area;

        let mut e = vec![background; nx * ny];
        if trans > 0.0 {
            let sigma = self.star_fwhm_px() / (8.0 * std::f64::consts::LN_2).sqrt();
            for star in self.stars() {
                let total = star.flux * trans * t;
                // Star centre in binned-pixel index coordinates (pixel i is centred on i).
                let cx = star.x / bx - 0.5 - f64::from(f.start_x);
                let cy = star.y / by - 0.5 - f64::from(f.start_y);
                let wx = gaussian_weights(cx, sigma / bx, nx);
                let wy = gaussian_weights(cy, sigma / by, ny);
                for &(i, a) in &wx {
                    for &(j, b) in &wy {
                        e[i * ny + j] += total * a * b;
                    }
                }
            }
        }

        let mut rng = SplitMix(mix(self.cfg.seed ^ 0xA5A5_5A5A, self.number));
        let read_noise = cfg.read_noise_e * if self.fast_readout { 1.5 } else { 1.0 };
        let e_per_adu = cfg.electrons_per_adu / gain_factor(&cfg.gain, self.gain_steps);
        let bias = cfg.bias_adu + cfg.bias_adu_per_offset_step * self.offset_steps;
        let full_well = cfg.full_well_capacity * area;
        let max_adu = f64::from(cfg.max_adu);
        let pixels = e
            .into_iter()
            .map(|signal| {
                let electrons = if cfg.noise {
                    signal + signal.sqrt() * rng.normal() + read_noise * rng.normal()
                } else {
                    signal
                };
                let adu = bias + electrons.clamp(0.0, full_well) / e_per_adu;
                // Clamped to 0..=MaxADU, which fits i32.
                adu.round().clamp(0.0, max_adu) as i32
            })
            .collect();
        CameraImage {
            width: nx,
            height: ny,
            pixels,
        }
    }
}

/// Normalised 1-D Gaussian weights around `centre` (pixel-index units), cut at 5 σ, keeping
/// only indices inside 0..len. The weights are normalised over the whole window, so a star
/// half off the frame keeps only its visible half.
fn gaussian_weights(centre: f64, sigma: f64, len: usize) -> Vec<(usize, f64)> {
    let sigma = sigma.max(0.05);
    let reach = (5.0 * sigma).ceil() + 1.0;
    let lo = (centre - reach).floor();
    let hi = (centre + reach).ceil();
    if hi < 0.0 || lo >= len as f64 {
        return Vec::new();
    }
    let mut all = Vec::new();
    let mut sum = 0.0;
    let mut i = lo;
    while i <= hi {
        let d = (i - centre) / sigma;
        let w = (-0.5 * d * d).exp();
        sum += w;
        all.push((i, w));
        i += 1.0;
    }
    all.into_iter()
        .filter(|&(i, _)| i >= 0.0 && i < len as f64)
        .map(|(i, w)| (i as usize, w / sum))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bigskies_alpaca::ErrorCode;

    const T0: SimTime = SimTime(1_780_000_000.0);

    fn quiet() -> CameraConfig {
        CameraConfig {
            noise: false,
            ..Default::default()
        }
    }

    fn camera(cfg: CameraConfig) -> CameraModel {
        CameraModel::new(cfg, T0)
    }

    fn code<T: fmt::Debug>(r: AlpacaResult<T>) -> ErrorCode {
        r.expect_err("should fail").code
    }

    /// Expose and return the finished image (clock stepped well past the sequence).
    fn shoot(
        cam: &mut CameraModel,
        t: SimTime,
        secs: f64,
        light: bool,
        ctx: FrameContext,
    ) -> (SimTime, Arc<CameraImage>) {
        cam.start_exposure(t, secs, light, ctx).unwrap();
        let done = t.plus(secs + 10.0);
        (done, cam.image(done).unwrap())
    }

    fn mean(img: &CameraImage) -> f64 {
        img.pixels.iter().map(|&p| f64::from(p)).sum::<f64>() / img.pixels.len() as f64
    }

    fn median(img: &CameraImage) -> f64 {
        let mut v = img.pixels.clone();
        v.sort_unstable();
        f64::from(v[v.len() / 2])
    }

    #[test]
    fn starts_idle_with_first_use_errors() {
        let cam = camera(CameraConfig::default());
        assert_eq!(cam.camera_state(T0), CameraState::Idle);
        assert!(!cam.image_ready(T0));
        assert_eq!((cam.bin_x(), cam.bin_y()), (1, 1));
        assert_eq!((cam.num_x(), cam.num_y()), (800, 600));
        assert_eq!(
            code(cam.last_exposure_duration(T0)),
            ErrorCode::INVALID_OPERATION
        );
        assert_eq!(
            code(cam.last_exposure_start_time(T0)),
            ErrorCode::INVALID_OPERATION
        );
        assert_eq!(code(cam.image(T0)), ErrorCode::INVALID_OPERATION);
        assert!(!cam.is_pulse_guiding(T0));
        assert_eq!(cam.percent_completed(T0), Ok(0));
        assert_eq!(code(cam.bayer_offset_x()), ErrorCode::NOT_IMPLEMENTED);
    }

    #[test]
    fn exposure_runs_through_every_state_on_time() {
        let cfg = CameraConfig {
            waiting_secs: 0.5,
            readout_secs: 0.8,
            download_secs: 0.2,
            ..quiet()
        };
        let mut cam = camera(cfg);
        cam.start_exposure(T0, 2.0, true, FrameContext::default())
            .unwrap();
        let at = |s: f64| T0.plus(s);
        assert_eq!(cam.camera_state(at(0.0)), CameraState::Waiting);
        assert_eq!(cam.camera_state(at(0.6)), CameraState::Exposing);
        assert_eq!(cam.percent_completed(at(1.5)), Ok(50));
        assert!(
            !cam.image_ready(at(2.4)),
            "no image before the exposure time has elapsed"
        );
        assert_eq!(cam.camera_state(at(2.6)), CameraState::Reading);
        assert_eq!(cam.camera_state(at(3.35)), CameraState::Download);
        assert!(!cam.image_ready(at(3.45)));
        assert_eq!(cam.camera_state(at(3.5)), CameraState::Idle);
        assert!(cam.image_ready(at(3.5)));
        assert_eq!(cam.percent_completed(at(3.5)), Ok(100));
        assert_eq!(cam.last_exposure_duration(at(3.5)), Ok(2.0));
        let start = cam.last_exposure_start_time(at(3.5)).unwrap();
        assert_eq!(
            start,
            at(0.5).utc().format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
        );
        assert!(start.len() >= 19 && !start.ends_with('Z'), "{start}");
    }

    #[test]
    fn start_exposure_validates_duration_and_state() {
        let mut cam = camera(quiet());
        let ctx = FrameContext::default;
        assert_eq!(
            code(cam.start_exposure(T0, -1.0, true, ctx())),
            ErrorCode::INVALID_VALUE
        );
        assert_eq!(
            code(cam.start_exposure(T0, 0.0, true, ctx())),
            ErrorCode::INVALID_VALUE
        );
        assert_eq!(
            code(cam.start_exposure(T0, 4000.0, false, ctx())),
            ErrorCode::INVALID_VALUE
        );
        cam.start_exposure(T0, 0.0, false, ctx()).unwrap();
        assert_eq!(
            code(cam.start_exposure(T0, 1.0, true, ctx())),
            ErrorCode::INVALID_OPERATION
        );
        let t = T0.plus(5.0);
        assert!(cam.image_ready(t), "a bias frame completes after readout");
        cam.start_exposure(t, 1.0, true, ctx()).unwrap();
        assert!(!cam.image_ready(t), "a new exposure clears ImageReady");
        assert_eq!(
            cam.last_exposure_duration(t),
            Ok(0.0),
            "the previous frame stays the last one"
        );
    }

    #[test]
    fn subframe_setters_accept_anything_and_start_exposure_rejects() {
        let mut cam = camera(quiet());
        let ctx = FrameContext::default;
        cam.set_num_x(801);
        assert_eq!(cam.num_x(), 801);
        assert_eq!(
            code(cam.start_exposure(T0, 1.0, true, ctx())),
            ErrorCode::INVALID_VALUE
        );
        cam.set_num_x(800);
        cam.set_start_y(-1);
        assert_eq!(
            code(cam.start_exposure(T0, 1.0, true, ctx())),
            ErrorCode::INVALID_VALUE
        );
        cam.set_start_y(0);
        cam.set_num_y(0);
        assert_eq!(
            code(cam.start_exposure(T0, 1.0, true, ctx())),
            ErrorCode::INVALID_VALUE
        );
        // At bin 3 the binned width is 800 / 3 = 266.
        cam.set_bin_x(3).unwrap();
        cam.set_bin_y(3).unwrap();
        cam.set_num_x(266);
        cam.set_num_y(200);
        cam.set_start_x(1);
        assert_eq!(
            code(cam.start_exposure(T0, 1.0, true, ctx())),
            ErrorCode::INVALID_VALUE
        );
        cam.set_start_x(0);
        cam.start_exposure(T0, 1.0, true, ctx()).unwrap();
        assert_eq!(cam.camera_state(T0.plus(0.5)), CameraState::Exposing);
    }

    #[test]
    fn binning_is_validated_at_write_time() {
        let mut cam = camera(quiet());
        assert_eq!(code(cam.set_bin_x(0)), ErrorCode::INVALID_VALUE);
        assert_eq!(code(cam.set_bin_y(5)), ErrorCode::INVALID_VALUE);
        assert_eq!(cam.bin_x(), 1);
        cam.set_bin_x(4).unwrap();
        assert_eq!(cam.bin_x(), 4);

        let mut sym = camera(CameraConfig {
            can_asymmetric_bin: false,
            ..quiet()
        });
        sym.set_bin_x(2).unwrap();
        sym.set_num_x(400);
        assert_eq!(
            code(sym.start_exposure(T0, 1.0, true, FrameContext::default())),
            ErrorCode::INVALID_OPERATION
        );
        sym.set_bin_y(2).unwrap();
        sym.set_num_y(300);
        sym.start_exposure(T0, 1.0, true, FrameContext::default())
            .unwrap();
    }

    #[test]
    fn abort_discards_and_stop_keeps_the_image() {
        let mut cam = camera(quiet());
        cam.abort_exposure(T0).unwrap();
        cam.stop_exposure(T0).unwrap();
        cam.start_exposure(T0, 10.0, true, FrameContext::default())
            .unwrap();
        cam.abort_exposure(T0.plus(3.0)).unwrap();
        assert_eq!(cam.camera_state(T0.plus(3.0)), CameraState::Idle);
        assert!(!cam.image_ready(T0.plus(30.0)));
        assert_eq!(code(cam.image(T0.plus(30.0))), ErrorCode::INVALID_OPERATION);
        assert_eq!(
            code(cam.last_exposure_duration(T0.plus(30.0))),
            ErrorCode::INVALID_OPERATION
        );

        let t = T0.plus(30.0);
        cam.start_exposure(t, 10.0, true, FrameContext::default())
            .unwrap();
        cam.stop_exposure(t.plus(4.0)).unwrap();
        assert_eq!(cam.camera_state(t.plus(4.0)), CameraState::Reading);
        assert_eq!(
            code(cam.stop_exposure(t.plus(4.1))),
            ErrorCode::INVALID_OPERATION
        );
        assert!(
            cam.image_ready(t.plus(5.1)),
            "readout 0.8 s + download 0.2 s after the stop"
        );
        assert!((cam.last_exposure_duration(t.plus(6.0)).unwrap() - 4.0).abs() < 1e-9);
        assert!(cam.image(t.plus(6.0)).is_ok());

        let t = t.plus(10.0);
        cam.start_exposure(t, 1.0, true, FrameContext::default())
            .unwrap();
        assert_eq!(cam.camera_state(t.plus(1.9)), CameraState::Download);
        assert_eq!(
            code(cam.abort_exposure(t.plus(1.9))),
            ErrorCode::INVALID_OPERATION
        );

        let mut no = camera(CameraConfig {
            can_abort_exposure: false,
            can_stop_exposure: false,
            ..quiet()
        });
        assert_eq!(code(no.abort_exposure(T0)), ErrorCode::NOT_IMPLEMENTED);
        assert_eq!(code(no.stop_exposure(T0)), ErrorCode::NOT_IMPLEMENTED);
    }

    #[test]
    fn cooler_approaches_the_set_point_exponentially() {
        let mut cam = camera(quiet());
        assert_eq!(cam.ccd_temperature(T0), 10.0);
        assert_eq!(cam.cooler_power(T0), Ok(0.0));
        cam.set_set_ccd_temperature(T0, -10.0).unwrap();
        cam.set_cooler_on(T0, true).unwrap();
        let temps: Vec<f64> = (0..=10)
            .map(|i| cam.ccd_temperature(T0.plus(f64::from(i) * 3.0)))
            .collect();
        assert!(temps.windows(2).all(|w| w[1] < w[0]), "{temps:?}");
        // One time constant (6 s) covers 1 − 1/e of the 20 °C gap.
        let expected = -10.0 + 20.0 * (-1.0f64).exp();
        assert!((cam.ccd_temperature(T0.plus(6.0)) - expected).abs() < 1e-9);
        assert!((cam.ccd_temperature(T0.plus(30.0)) + 10.0).abs() < 0.2);
        assert_eq!(cam.cooler_power(T0.plus(0.1)), Ok(100.0));
        let holding = cam.cooler_power(T0.plus(120.0)).unwrap();
        assert!((holding - 50.0).abs() < 0.5, "{holding}");
        assert!(cam.heat_sink_temperature(T0.plus(120.0)) > 10.0);
        // Off: drifts back up to ambient.
        cam.set_cooler_on(T0.plus(120.0), false).unwrap();
        assert!((cam.ccd_temperature(T0.plus(240.0)) - 10.0).abs() < 0.01);
        // A set point beyond the cooler's reach settles at ambient − max delta.
        cam.set_cooler_on(T0.plus(240.0), true).unwrap();
        cam.set_set_ccd_temperature(T0.plus(240.0), -40.0).unwrap();
        assert!((cam.ccd_temperature(T0.plus(400.0)) + 30.0).abs() < 0.01);
        assert_eq!(cam.cooler_power(T0.plus(400.0)), Ok(100.0));
    }

    #[test]
    fn set_point_range_is_enforced() {
        let mut cam = camera(quiet());
        for bad in [-280.0, -273.2, -45.0, 100.0, 105.0, f64::NAN] {
            assert_eq!(
                code(cam.set_set_ccd_temperature(T0, bad)),
                ErrorCode::INVALID_VALUE,
                "{bad}"
            );
        }
        cam.set_set_ccd_temperature(T0, -40.0).unwrap();
        assert_eq!(cam.set_ccd_temperature(), Ok(-40.0));
        let mut fixed = camera(CameraConfig {
            can_set_ccd_temperature: false,
            has_cooler: false,
            ..quiet()
        });
        assert_eq!(
            code(fixed.set_ccd_temperature()),
            ErrorCode::NOT_IMPLEMENTED
        );
        assert_eq!(
            code(fixed.set_set_ccd_temperature(T0, 0.0)),
            ErrorCode::NOT_IMPLEMENTED
        );
        assert_eq!(code(fixed.cooler_on()), ErrorCode::NOT_IMPLEMENTED);
    }

    #[test]
    fn gain_and_offset_modes_are_consistent() {
        let none = camera(CameraConfig {
            gain: ControlMode::None,
            ..quiet()
        });
        assert_eq!(code(none.gain()), ErrorCode::NOT_IMPLEMENTED);
        assert_eq!(code(none.gain_min()), ErrorCode::NOT_IMPLEMENTED);
        assert_eq!(code(none.gain_max()), ErrorCode::NOT_IMPLEMENTED);
        assert_eq!(code(none.gains()), ErrorCode::NOT_IMPLEMENTED);

        let names = vec!["ISO 100".to_string(), "ISO 200".into(), "ISO 400".into()];
        let mut list = camera(CameraConfig {
            gain: ControlMode::List {
                names: names.clone(),
                initial: 1,
            },
            offset: ControlMode::None,
            ..quiet()
        });
        assert_eq!(list.gain(), Ok(1));
        assert_eq!(list.gains(), Ok(names));
        assert_eq!(code(list.gain_min()), ErrorCode::NOT_IMPLEMENTED);
        assert_eq!(code(list.set_gain(3)), ErrorCode::INVALID_VALUE);
        list.set_gain(2).unwrap();
        assert!((list.electrons_per_adu() - 0.2).abs() < 1e-12, "×4 gain");
        assert_eq!(code(list.set_offset(1)), ErrorCode::NOT_IMPLEMENTED);

        let mut range = camera(quiet());
        assert_eq!((range.gain_min(), range.gain_max()), (Ok(0), Ok(300)));
        assert_eq!(code(range.gains()), ErrorCode::NOT_IMPLEMENTED);
        assert_eq!(code(range.set_gain(301)), ErrorCode::INVALID_VALUE);
        range.set_offset(255).unwrap();
        assert_eq!(code(range.set_offset(-1)), ErrorCode::INVALID_VALUE);
        assert_eq!(code(range.offsets()), ErrorCode::NOT_IMPLEMENTED);
    }

    #[test]
    fn readout_modes_and_fast_readout() {
        let mut cam = camera(quiet());
        assert_eq!(cam.readout_modes().len(), 1);
        assert_eq!(code(cam.set_readout_mode(1)), ErrorCode::INVALID_VALUE);
        cam.set_fast_readout(true).unwrap();
        cam.start_exposure(T0, 1.0, true, FrameContext::default())
            .unwrap();
        // Readout 0.8 s / 4 + download 0.2 s.
        assert!(cam.image_ready(T0.plus(1.4)));
        let mut slow = camera(CameraConfig {
            can_fast_readout: false,
            ..quiet()
        });
        assert_eq!(code(slow.fast_readout()), ErrorCode::NOT_IMPLEMENTED);
        assert_eq!(
            code(slow.set_fast_readout(true)),
            ErrorCode::NOT_IMPLEMENTED
        );
    }

    #[test]
    fn image_size_follows_binning_and_subframe() {
        let mut cam = camera(quiet());
        cam.set_bin_x(2).unwrap();
        cam.set_bin_y(4).unwrap();
        cam.set_start_x(10);
        cam.set_start_y(5);
        cam.set_num_x(100);
        cam.set_num_y(50);
        let (_, img) = shoot(&mut cam, T0, 1.0, true, FrameContext::default());
        assert_eq!((img.width, img.height, img.pixels.len()), (100, 50, 5000));
        assert!(img.get(99, 49).is_some() && img.get(100, 0).is_none());
    }

    #[test]
    fn signal_scales_with_exposure_time_and_bin_area() {
        let cfg = CameraConfig {
            star_count: 0,
            ..quiet()
        };
        let bias = cfg.bias_adu + cfg.bias_adu_per_offset_step * 10.0;
        let mut cam = camera(cfg);
        let (t, one) = shoot(&mut cam, T0, 10.0, true, FrameContext::default());
        let (t, two) = shoot(&mut cam, t, 20.0, true, FrameContext::default());
        let s1 = mean(&one) - bias;
        assert!(s1 > 10.0, "{s1}");
        assert!(((mean(&two) - bias) / s1 - 2.0).abs() < 0.02);
        cam.set_bin_x(2).unwrap();
        cam.set_bin_y(2).unwrap();
        cam.set_num_x(400);
        cam.set_num_y(300);
        let (_, binned) = shoot(&mut cam, t, 10.0, true, FrameContext::default());
        assert_eq!((binned.width, binned.height), (400, 300));
        assert!(((mean(&binned) - bias) / s1 - 4.0).abs() < 0.05);
    }

    /// The brightest pixel above the median sky.
    fn peak(img: &CameraImage) -> f64 {
        let top = img.pixels.iter().copied().max().map_or(0.0, f64::from);
        top - median(img)
    }

    #[test]
    fn darks_and_closed_shutters_show_no_stars() {
        let mut cam = camera(quiet());
        let (t, light) = shoot(&mut cam, T0, 5.0, true, FrameContext::default());
        assert!(peak(&light) > 1000.0, "{}", peak(&light));
        let (t, dark) = shoot(&mut cam, t, 5.0, false, FrameContext::default());
        assert!(peak(&dark) < 1.0, "{}", peak(&dark));
        let closed = FrameContext {
            shutter_open: false,
            ..Default::default()
        };
        let (_, shut) = shoot(&mut cam, t, 5.0, true, closed);
        assert!(peak(&shut) < 1.0);
        assert!(mean(&shut) < mean(&light));
    }

    #[test]
    fn filters_scale_brightness() {
        let mut cam = camera(CameraConfig {
            star_count: 0,
            ..quiet()
        });
        let bias = 120.0;
        let with = |f: &str| FrameContext {
            filter: Some(f.into()),
            ..Default::default()
        };
        let (t, clear) = shoot(&mut cam, T0, 60.0, true, with("Luminance"));
        let (t, red) = shoot(&mut cam, t, 60.0, true, with("RED"));
        let (_, blocked) = shoot(&mut cam, t, 60.0, true, with("Dark"));
        let sky = |img: &CameraImage| mean(img) - bias;
        let dark_part = sky(&blocked);
        let ratio = (sky(&red) - dark_part) / (sky(&clear) - dark_part);
        assert!((ratio - 0.3).abs() < 0.01, "{ratio}");
    }

    /// FWHM (unbinned pixels) of the single star in a noiseless frame, from the second moment
    /// of its column-summed profile.
    fn fwhm(img: &CameraImage, star: Star) -> f64 {
        let background = median(img);
        let (cx, reach) = (star.x - 0.5, 40.0);
        let (mut sw, mut sxx) = (0.0, 0.0);
        for x in 0..img.width {
            let dx = x as f64 - cx;
            if dx.abs() > reach {
                continue;
            }
            let col: f64 = (0..img.height)
                .map(|y| f64::from(img.pixels[x * img.height + y]) - background)
                .sum();
            sw += col;
            sxx += col * dx * dx;
        }
        (sxx / sw).sqrt() * (8.0 * std::f64::consts::LN_2).sqrt()
    }

    #[test]
    fn defocus_widens_stars() {
        // One bright star well inside the frame.
        let cfg = (1..)
            .map(|seed| CameraConfig {
                seed,
                star_count: 1,
                star_flux_min: 50_000.0,
                star_flux_max: 50_000.0,
                ..quiet()
            })
            .find(|c| {
                let cam = camera(c.clone());
                let r = ImageRecipe { ..cam_recipe(&cam) };
                r.stars()
                    .iter()
                    .all(|s| (100.0..700.0).contains(&s.x) && (100.0..500.0).contains(&s.y))
            })
            .expect("some seed puts the star inside");
        let mut cam = camera(cfg);
        let (t, sharp) = shoot(&mut cam, T0, 1.0, true, FrameContext::default());
        let star = cam.image_recipe(t).unwrap().stars()[0];
        let blurred_ctx = FrameContext {
            focus_error_steps: 500.0,
            ..Default::default()
        };
        let (t, blurred) = shoot(&mut cam, t, 1.0, true, blurred_ctx);
        assert_eq!(cam.image_recipe(t).unwrap().stars()[0], star, "same field");
        let (a, b) = (fwhm(&sharp, star), fwhm(&blurred, star));
        assert!((a - 3.0).abs() < 0.3, "in focus FWHM {a}");
        assert!((b - 3f64.hypot(10.0)).abs() < 0.5, "defocused FWHM {b}");
        assert!(
            peak(&blurred) < peak(&sharp) / 5.0,
            "the same light spread wider"
        );
    }

    fn cam_recipe(cam: &CameraModel) -> ImageRecipe {
        ImageRecipe {
            cfg: Arc::clone(&cam.cfg),
            frame: cam.frame(),
            ctx: FrameContext::default(),
            light: true,
            exposure_secs: 1.0,
            ccd_temperature: 0.0,
            gain_steps: 0.0,
            offset_steps: 0.0,
            fast_readout: false,
            number: 1,
        }
    }

    #[test]
    fn images_are_deterministic_but_noise_differs_per_frame() {
        let mut a = camera(CameraConfig::default());
        let mut b = camera(CameraConfig::default());
        let (t, a1) = shoot(&mut a, T0, 2.0, true, FrameContext::default());
        let (_, b1) = shoot(&mut b, T0, 2.0, true, FrameContext::default());
        assert_eq!(a1, b1, "same seed, same frame");
        let (_, a2) = shoot(&mut a, t, 2.0, true, FrameContext::default());
        assert_ne!(a1, a2, "fresh noise per frame");
        let pointed = FrameContext {
            pointing: Some((5.5, -5.4)),
            ..Default::default()
        };
        let stars_default = cam_recipe(&a).stars();
        let stars_pointed = ImageRecipe {
            ctx: pointed,
            ..cam_recipe(&a)
        }
        .stars();
        assert_ne!(
            stars_default, stars_pointed,
            "another pointing, another field"
        );
    }

    #[test]
    fn pixels_are_clipped_to_max_adu() {
        let mut cam = camera(CameraConfig::default());
        cam.set_gain(300).unwrap();
        let (_, img) = shoot(&mut cam, T0, 60.0, true, FrameContext::default());
        assert!(img.pixels.iter().all(|&p| (0..=65_535).contains(&p)));
        assert!(
            img.pixels.contains(&65_535),
            "bright stars saturate at high gain"
        );
    }

    #[test]
    fn pulse_guiding_is_asynchronous() {
        let mut cam = camera(quiet());
        cam.pulse_guide(T0, GuideDirection::North, 2000).unwrap();
        cam.pulse_guide(T0, GuideDirection::East, 500).unwrap();
        assert!(cam.is_pulse_guiding(T0.plus(1.0)));
        assert!(!cam.is_pulse_guiding(T0.plus(2.0)));
        assert_eq!(
            code(cam.pulse_guide(T0, GuideDirection::West, -1)),
            ErrorCode::INVALID_VALUE
        );
        assert_eq!(code(GuideDirection::from_code(4)), ErrorCode::INVALID_VALUE);
        let mut none = camera(CameraConfig {
            can_pulse_guide: false,
            ..quiet()
        });
        assert_eq!(
            code(none.pulse_guide(T0, GuideDirection::South, 10)),
            ErrorCode::NOT_IMPLEMENTED
        );
    }

    #[test]
    fn stuck_exposure_keeps_exposing() {
        let mut cam = camera(quiet());
        cam.start_exposure(T0, 2.0, true, FrameContext::default())
            .unwrap();
        cam.set_stuck(T0.plus(1.0), true);
        assert_eq!(cam.camera_state(T0.plus(100.0)), CameraState::Exposing);
        assert_eq!(cam.percent_completed(T0.plus(100.0)), Ok(50));
        cam.set_stuck(T0.plus(100.0), false);
        assert_eq!(cam.camera_state(T0.plus(100.9)), CameraState::Exposing);
        assert!(cam.image_ready(T0.plus(102.0)));
    }

    #[test]
    fn stuck_pulse_never_ends() {
        let mut cam = camera(quiet());
        cam.pulse_guide(T0, GuideDirection::South, 1000).unwrap();
        cam.set_stuck(T0.plus(0.5), true);
        assert!(cam.is_pulse_guiding(T0.plus(50.0)));
        cam.set_stuck(T0.plus(50.0), false);
        assert!(cam.is_pulse_guiding(T0.plus(50.4)));
        assert!(!cam.is_pulse_guiding(T0.plus(50.5)));
    }

    #[test]
    fn error_state_is_injected_and_cleared() {
        let mut cam = camera(quiet());
        cam.start_exposure(T0, 2.0, true, FrameContext::default())
            .unwrap();
        cam.set_error(true);
        assert_eq!(cam.camera_state(T0.plus(1.0)), CameraState::Error);
        assert!(!cam.image_ready(T0.plus(10.0)));
        cam.start_exposure(T0.plus(10.0), 1.0, true, FrameContext::default())
            .unwrap();
        assert_eq!(cam.camera_state(T0.plus(10.5)), CameraState::Exposing);
    }

    #[test]
    fn config_parses_with_defaults_and_refuses_unknown_keys() {
        assert!(
            CameraConfig::default().problems().is_empty(),
            "{:?}",
            CameraConfig::default().problems()
        );
        let cfg: CameraConfig = toml::from_str(
            "x_size = 1024\nsensor_type = \"rggb\"\n[gain]\nmode = \"list\"\nnames = [\"Low\", \"High\"]\ninitial = 0\n",
        )
        .unwrap();
        assert_eq!(cfg.x_size, 1024);
        assert_eq!(cfg.y_size, 600);
        assert_eq!(cfg.sensor_type, SensorType::Rggb);
        assert!(cfg.problems().is_empty());
        assert!(toml::from_str::<CameraConfig>("x_sise = 3").is_err());
        assert!(
            toml::from_str::<CameraConfig>(
                "[gain]\nmode = \"range\"\nmin = 0\nmax = 1\ninitial = 0\nstep = 1"
            )
            .is_err()
        );
        let bad = CameraConfig {
            gain: ControlMode::Range {
                min: 5,
                max: 1,
                initial: 0,
            },
            sensor_type: SensorType::Color,
            ..Default::default()
        };
        assert_eq!(bad.problems().len(), 2, "{:?}", bad.problems());
    }
}
