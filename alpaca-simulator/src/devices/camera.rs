//! `Camera` for the simulated camera: each member is one call into [`CameraModel`], plus the
//! conversions to the protocol crate's wire types (CameraState, SensorType, ImageArray).
//!
//! `StartExposure` first asks the model for its [`ContextSource`](crate::models::camera::ContextSource)
//! and calls it outside the camera's lock (it reads the other devices), then starts the
//! exposure with that [`FrameContext`].

use bigskies_alpaca::devices::Camera;
use bigskies_alpaca::image::{ImageArray, ImageElementType};
use bigskies_alpaca::types::{CameraState, FitsDateTime, GuideDirection, SensorType};
use bigskies_alpaca::{AlpacaError, AlpacaResult, async_trait};

use crate::clock::SimTime;
use crate::devices::ModelInfo;
use crate::models::camera::{self as model, CameraImage, CameraModel, FrameContext};
use crate::shell::Shell;

impl ModelInfo for CameraModel {
    fn device_type(&self) -> &'static str {
        "camera"
    }
    fn name(&self) -> String {
        self.config().name.clone()
    }
    fn description(&self) -> String {
        self.config().description.clone()
    }
    fn interface_version(&self) -> i32 {
        4
    }
    /// The ConformU camera list; values that are not available are left out.
    fn device_state(&self, now: SimTime) -> Vec<(&'static str, serde_json::Value)> {
        let mut v = vec![
            ("CameraState", self.camera_state(now).code().into()),
            ("CCDTemperature", self.ccd_temperature(now).into()),
        ];
        if let Ok(p) = self.cooler_power(now) {
            v.push(("CoolerPower", p.into()));
        }
        v.push((
            "HeatSinkTemperature",
            self.heat_sink_temperature(now).into(),
        ));
        v.push(("ImageReady", self.image_ready(now).into()));
        v.push(("IsPulseGuiding", self.is_pulse_guiding(now).into()));
        if let Ok(p) = self.percent_completed(now) {
            v.push(("PercentCompleted", p.into()));
        }
        v
    }
}

/// The model's image as the protocol crate's [`ImageArray`], sent as UInt16 when it fits.
pub fn to_image_array(img: &CameraImage, max_adu: i32) -> AlpacaResult<ImageArray> {
    let dim = |n: usize| u32::try_from(n).map_err(|_| AlpacaError::unspecified("image too large"));
    let array = ImageArray::new_2d(dim(img.width)?, dim(img.height)?, img.pixels.clone())
        .map_err(|e| AlpacaError::unspecified(format!("camera image is inconsistent: {e}")))?;
    Ok(if max_adu <= i32::from(u16::MAX) {
        array.with_transmission_hint(ImageElementType::UInt16)
    } else {
        array
    })
}

fn wire_state(s: model::CameraState) -> CameraState {
    match s {
        model::CameraState::Idle => CameraState::Idle,
        model::CameraState::Waiting => CameraState::Waiting,
        model::CameraState::Exposing => CameraState::Exposing,
        model::CameraState::Reading => CameraState::Reading,
        model::CameraState::Download => CameraState::Download,
        model::CameraState::Error => CameraState::Error,
    }
}

fn wire_sensor(s: model::SensorType) -> SensorType {
    match s {
        model::SensorType::Monochrome => SensorType::Monochrome,
        model::SensorType::Color => SensorType::Color,
        model::SensorType::Rggb => SensorType::Rggb,
        model::SensorType::Cmyg => SensorType::Cmyg,
        model::SensorType::Cmyg2 => SensorType::Cmyg2,
        model::SensorType::Lrgb => SensorType::Lrgb,
    }
}

fn model_direction(d: GuideDirection) -> model::GuideDirection {
    match d {
        GuideDirection::North => model::GuideDirection::North,
        GuideDirection::South => model::GuideDirection::South,
        GuideDirection::East => model::GuideDirection::East,
        GuideDirection::West => model::GuideDirection::West,
    }
}

impl Shell<CameraModel> {
    fn image_array_now(&self) -> AlpacaResult<ImageArray> {
        let (img, max_adu) = self.read(|m, now| Ok((m.image(now)?, m.max_adu())))?;
        to_image_array(&img, max_adu)
    }
}

#[async_trait]
impl Camera for Shell<CameraModel> {
    async fn bayer_offset_x(&self) -> AlpacaResult<i32> {
        self.read(|m, _| m.bayer_offset_x())
    }
    async fn bayer_offset_y(&self) -> AlpacaResult<i32> {
        self.read(|m, _| m.bayer_offset_y())
    }
    async fn bin_x(&self) -> AlpacaResult<i32> {
        self.read(|m, _| Ok(m.bin_x()))
    }
    async fn set_bin_x(&self, bin_x: i32) -> AlpacaResult<()> {
        self.write(|m, _| m.set_bin_x(bin_x))
    }
    async fn bin_y(&self) -> AlpacaResult<i32> {
        self.read(|m, _| Ok(m.bin_y()))
    }
    async fn set_bin_y(&self, bin_y: i32) -> AlpacaResult<()> {
        self.write(|m, _| m.set_bin_y(bin_y))
    }
    async fn camera_state(&self) -> AlpacaResult<CameraState> {
        self.read(|m, now| Ok(wire_state(m.camera_state(now))))
    }
    async fn camera_x_size(&self) -> AlpacaResult<i32> {
        self.read(|m, _| Ok(m.camera_x_size()))
    }
    async fn camera_y_size(&self) -> AlpacaResult<i32> {
        self.read(|m, _| Ok(m.camera_y_size()))
    }
    async fn can_abort_exposure(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_abort_exposure()))
    }
    async fn can_asymmetric_bin(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_asymmetric_bin()))
    }
    async fn can_fast_readout(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_fast_readout()))
    }
    async fn can_get_cooler_power(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_get_cooler_power()))
    }
    async fn can_pulse_guide(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_pulse_guide()))
    }
    async fn can_set_ccd_temperature(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_set_ccd_temperature()))
    }
    async fn can_stop_exposure(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_stop_exposure()))
    }
    async fn ccd_temperature(&self) -> AlpacaResult<f64> {
        self.read(|m, now| Ok(m.ccd_temperature(now)))
    }
    async fn cooler_on(&self) -> AlpacaResult<bool> {
        self.read(|m, _| m.cooler_on())
    }
    async fn set_cooler_on(&self, cooler_on: bool) -> AlpacaResult<()> {
        self.write(|m, now| m.set_cooler_on(now, cooler_on))
    }
    async fn cooler_power(&self) -> AlpacaResult<f64> {
        self.read(|m, now| m.cooler_power(now))
    }
    async fn electrons_per_adu(&self) -> AlpacaResult<f64> {
        self.read(|m, _| Ok(m.electrons_per_adu()))
    }
    async fn exposure_max(&self) -> AlpacaResult<f64> {
        self.read(|m, _| Ok(m.exposure_max()))
    }
    async fn exposure_min(&self) -> AlpacaResult<f64> {
        self.read(|m, _| Ok(m.exposure_min()))
    }
    async fn exposure_resolution(&self) -> AlpacaResult<f64> {
        self.read(|m, _| Ok(m.exposure_resolution()))
    }
    async fn fast_readout(&self) -> AlpacaResult<bool> {
        self.read(|m, _| m.fast_readout())
    }
    async fn set_fast_readout(&self, fast_readout: bool) -> AlpacaResult<()> {
        self.write(|m, _| m.set_fast_readout(fast_readout))
    }
    async fn full_well_capacity(&self) -> AlpacaResult<f64> {
        self.read(|m, _| Ok(m.full_well_capacity()))
    }
    async fn gain(&self) -> AlpacaResult<i32> {
        self.read(|m, _| m.gain())
    }
    async fn set_gain(&self, gain: i32) -> AlpacaResult<()> {
        self.write(|m, _| m.set_gain(gain))
    }
    async fn gain_max(&self) -> AlpacaResult<i32> {
        self.read(|m, _| m.gain_max())
    }
    async fn gain_min(&self) -> AlpacaResult<i32> {
        self.read(|m, _| m.gain_min())
    }
    async fn gains(&self) -> AlpacaResult<Vec<String>> {
        self.read(|m, _| m.gains())
    }
    async fn has_shutter(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.has_shutter()))
    }
    async fn heat_sink_temperature(&self) -> AlpacaResult<f64> {
        self.read(|m, now| Ok(m.heat_sink_temperature(now)))
    }
    async fn image_array(&self) -> AlpacaResult<ImageArray> {
        self.image_array_now()
    }
    /// Served like ImageArray (PROTOCOL.md §6: ConformU expects it to work after an exposure).
    async fn image_array_variant(&self) -> AlpacaResult<ImageArray> {
        self.image_array_now()
    }
    async fn image_ready(&self) -> AlpacaResult<bool> {
        self.read(|m, now| Ok(m.image_ready(now)))
    }
    async fn is_pulse_guiding(&self) -> AlpacaResult<bool> {
        self.read(|m, now| Ok(m.is_pulse_guiding(now)))
    }
    async fn last_exposure_duration(&self) -> AlpacaResult<f64> {
        self.read(|m, now| m.last_exposure_duration(now))
    }
    async fn last_exposure_start_time(&self) -> AlpacaResult<FitsDateTime> {
        self.read(|m, now| m.last_exposure_start(now).map(|t| FitsDateTime(t.utc())))
    }
    async fn max_adu(&self) -> AlpacaResult<i32> {
        self.read(|m, _| Ok(m.max_adu()))
    }
    async fn max_bin_x(&self) -> AlpacaResult<i32> {
        self.read(|m, _| Ok(m.max_bin_x()))
    }
    async fn max_bin_y(&self) -> AlpacaResult<i32> {
        self.read(|m, _| Ok(m.max_bin_y()))
    }
    async fn num_x(&self) -> AlpacaResult<i32> {
        self.read(|m, _| Ok(m.num_x()))
    }
    async fn set_num_x(&self, num_x: i32) -> AlpacaResult<()> {
        self.write(|m, _| {
            m.set_num_x(num_x);
            Ok(())
        })
    }
    async fn num_y(&self) -> AlpacaResult<i32> {
        self.read(|m, _| Ok(m.num_y()))
    }
    async fn set_num_y(&self, num_y: i32) -> AlpacaResult<()> {
        self.write(|m, _| {
            m.set_num_y(num_y);
            Ok(())
        })
    }
    async fn offset(&self) -> AlpacaResult<i32> {
        self.read(|m, _| m.offset())
    }
    async fn set_offset(&self, offset: i32) -> AlpacaResult<()> {
        self.write(|m, _| m.set_offset(offset))
    }
    async fn offset_max(&self) -> AlpacaResult<i32> {
        self.read(|m, _| m.offset_max())
    }
    async fn offset_min(&self) -> AlpacaResult<i32> {
        self.read(|m, _| m.offset_min())
    }
    async fn offsets(&self) -> AlpacaResult<Vec<String>> {
        self.read(|m, _| m.offsets())
    }
    async fn percent_completed(&self) -> AlpacaResult<i32> {
        self.read(|m, now| m.percent_completed(now))
    }
    async fn pixel_size_x(&self) -> AlpacaResult<f64> {
        self.read(|m, _| Ok(m.pixel_size_x()))
    }
    async fn pixel_size_y(&self) -> AlpacaResult<f64> {
        self.read(|m, _| Ok(m.pixel_size_y()))
    }
    async fn readout_mode(&self) -> AlpacaResult<i32> {
        self.read(|m, _| Ok(m.readout_mode()))
    }
    async fn set_readout_mode(&self, readout_mode: i32) -> AlpacaResult<()> {
        self.write(|m, _| m.set_readout_mode(readout_mode))
    }
    async fn readout_modes(&self) -> AlpacaResult<Vec<String>> {
        self.read(|m, _| Ok(m.readout_modes()))
    }
    async fn sensor_name(&self) -> AlpacaResult<String> {
        self.read(|m, _| Ok(m.sensor_name()))
    }
    async fn sensor_type(&self) -> AlpacaResult<SensorType> {
        self.read(|m, _| Ok(wire_sensor(m.sensor_type())))
    }
    async fn set_ccd_temperature(&self) -> AlpacaResult<f64> {
        self.read(|m, _| m.set_ccd_temperature())
    }
    async fn set_set_ccd_temperature(&self, set_ccd_temperature: f64) -> AlpacaResult<()> {
        self.write(|m, now| m.set_set_ccd_temperature(now, set_ccd_temperature))
    }
    async fn start_x(&self) -> AlpacaResult<i32> {
        self.read(|m, _| Ok(m.start_x()))
    }
    async fn set_start_x(&self, start_x: i32) -> AlpacaResult<()> {
        self.write(|m, _| {
            m.set_start_x(start_x);
            Ok(())
        })
    }
    async fn start_y(&self) -> AlpacaResult<i32> {
        self.read(|m, _| Ok(m.start_y()))
    }
    async fn set_start_y(&self, start_y: i32) -> AlpacaResult<()> {
        self.write(|m, _| {
            m.set_start_y(start_y);
            Ok(())
        })
    }
    async fn sub_exposure_duration(&self) -> AlpacaResult<f64> {
        self.read(|m, _| m.sub_exposure_duration())
    }
    async fn set_sub_exposure_duration(&self, sub_exposure_duration: f64) -> AlpacaResult<()> {
        self.write(|m, _| m.set_sub_exposure_duration(sub_exposure_duration))
    }
    async fn abort_exposure(&self) -> AlpacaResult<()> {
        self.write(|m, now| m.abort_exposure(now))
    }
    async fn pulse_guide(&self, direction: GuideDirection, duration: i32) -> AlpacaResult<()> {
        self.write(|m, now| m.pulse_guide(now, model_direction(direction), duration))
    }
    async fn start_exposure(&self, duration: f64, light: bool) -> AlpacaResult<()> {
        // The context source reads other devices, so it runs without the camera's lock.
        let source = self.read(|m, _| Ok(m.context_source()))?;
        let ctx = source.map_or_else(FrameContext::default, |s| s.frame_context());
        self.write(|m, now| m.start_exposure(now, duration, light, ctx))
    }
    async fn stop_exposure(&self) -> AlpacaResult<()> {
        self.write(|m, now| m.stop_exposure(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ClockMode};
    use crate::models::camera::{CameraConfig, ContextSource};
    use bigskies_alpaca::ErrorCode;
    use bigskies_alpaca::devices::Device;

    fn shell() -> Shell<CameraModel> {
        let clock = Clock::with_mode(ClockMode::Stepped, SimTime(1_780_000_000.0));
        let cfg = CameraConfig {
            noise: false,
            ..Default::default()
        };
        let s = Shell::new(CameraModel::new(cfg, clock.now()), clock, 0.0);
        s.set_connected(true);
        s
    }

    #[tokio::test]
    async fn exposure_and_image_through_the_trait() {
        let s = shell();
        assert_eq!(s.camera_state().await, Ok(CameraState::Idle));
        assert_eq!(s.sensor_type().await, Ok(SensorType::Monochrome));
        assert_eq!(
            s.image_array().await.unwrap_err().code,
            ErrorCode::INVALID_OPERATION
        );
        s.set_bin_x(2).await.unwrap();
        s.set_bin_y(2).await.unwrap();
        s.set_num_x(300).await.unwrap();
        s.set_num_y(200).await.unwrap();
        s.start_exposure(1.0, true).await.unwrap();
        assert_eq!(s.camera_state().await, Ok(CameraState::Exposing));
        s.clock().step(5.0).unwrap();
        assert_eq!(s.image_ready().await, Ok(true));
        let img = s.image_array().await.unwrap();
        assert_eq!((img.width(), img.height(), img.rank()), (300, 200, 2));
        assert_eq!(img.transmission_type(), ImageElementType::UInt16);
        assert_eq!(s.image_array_variant().await, Ok(img));
        let start = s.last_exposure_start_time().await.unwrap();
        assert_eq!(start.0, SimTime(1_780_000_000.0).utc());
        let state = Device::device_state(&s).await.unwrap();
        let names: Vec<_> = state.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "CameraState",
                "CCDTemperature",
                "CoolerPower",
                "HeatSinkTemperature",
                "ImageReady",
                "IsPulseGuiding",
                "PercentCompleted",
                "TimeStamp"
            ]
        );
    }

    #[tokio::test]
    async fn start_exposure_uses_the_context_source() {
        let s = shell();
        s.with_model(|m, _| {
            m.set_context_source(Some(ContextSource::new(|| FrameContext {
                shutter_open: false,
                ..Default::default()
            })))
        });
        s.start_exposure(2.0, true).await.unwrap();
        let ctx = s.with_model(|m, now| m.snapshot(now).context);
        assert_eq!(ctx.map(|c| c.shutter_open), Some(false));
        s.clock().step(5.0).unwrap();
        let img = s.image_array().await.unwrap();
        let (lo, hi) = img
            .data()
            .iter()
            .fold((i32::MAX, i32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        assert!(
            hi - lo <= 1,
            "a closed dome gives a flat dark frame: {lo}..{hi}"
        );
    }

    #[tokio::test]
    async fn pulse_guide_direction_maps_through() {
        let s = shell();
        s.pulse_guide(GuideDirection::West, 2000).await.unwrap();
        assert_eq!(s.is_pulse_guiding().await, Ok(true));
        s.clock().step(2.0).unwrap();
        assert_eq!(s.is_pulse_guiding().await, Ok(false));
    }
}
