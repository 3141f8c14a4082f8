//! Small fake devices for this crate's tests: just enough behaviour to exercise every wire
//! rule (validation errors, ValueNotSet, enums, dates, images, a panic).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};

use crate::devices::{Camera, Device, Telescope};
use crate::error::{AlpacaError, AlpacaResult};
use crate::image::{ImageArray, ImageElementType};
use crate::server::{AlpacaServer, DeviceMeta, ServerInfo};
use crate::types::*;

#[derive(Debug)]
pub struct TelescopeState {
    pub connected: bool,
    pub tracking: bool,
    pub tracking_rate: DriveRate,
    pub site_elevation: f64,
    pub target_ra: Option<f64>,
    pub target_dec: Option<f64>,
    pub utc: DateTime<Utc>,
    pub last_slew: Option<(f64, f64)>,
    pub last_pulse: Option<(GuideDirection, i32)>,
    pub last_action: Option<(String, String)>,
}

/// A mount with a handful of real members.
#[derive(Debug)]
pub struct FakeTelescope {
    pub state: Mutex<TelescopeState>,
}

impl FakeTelescope {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(TelescopeState {
                connected: false,
                tracking: false,
                tracking_rate: DriveRate::Sidereal,
                site_elevation: 100.0,
                target_ra: None,
                target_dec: None,
                utc: Utc
                    .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
                    .single()
                    .expect("valid date"),
                last_slew: None,
                last_pulse: None,
                last_action: None,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TelescopeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[crate::async_trait]
impl Device for FakeTelescope {
    async fn action(&self, action: String, parameters: String) -> AlpacaResult<String> {
        if action.eq_ignore_ascii_case("echo") {
            self.lock().last_action = Some((action, parameters.clone()));
            Ok(parameters)
        } else {
            Err(AlpacaError::action_not_implemented(&action))
        }
    }
    async fn connected(&self) -> AlpacaResult<bool> {
        Ok(self.lock().connected)
    }
    async fn set_connected(&self, connected: bool) -> AlpacaResult<()> {
        self.lock().connected = connected;
        Ok(())
    }
    async fn name(&self) -> AlpacaResult<String> {
        Ok("Fake mount".into())
    }
    async fn interface_version(&self) -> AlpacaResult<i32> {
        Ok(4)
    }
    async fn supported_actions(&self) -> AlpacaResult<Vec<String>> {
        Ok(vec!["Echo".into()])
    }
    async fn device_state(&self) -> AlpacaResult<Vec<DeviceStateItem>> {
        let s = self.lock();
        Ok(vec![
            DeviceStateItem::new("Tracking", s.tracking),
            DeviceStateItem::new("UTCDate", format_utc_date(s.utc)),
        ])
    }
}

#[crate::async_trait]
impl Telescope for FakeTelescope {
    async fn alignment_mode(&self) -> AlpacaResult<AlignmentMode> {
        Ok(AlignmentMode::GermanPolar)
    }
    async fn aperture_area(&self) -> AlpacaResult<f64> {
        panic!("deliberate panic to exercise the 500 path");
    }
    async fn focal_length(&self) -> AlpacaResult<f64> {
        // A misbehaving device: an error that claims number 0.
        Err(AlpacaError::new(
            crate::ErrorCode(0),
            "focal length unknown",
        ))
    }
    async fn right_ascension(&self) -> AlpacaResult<f64> {
        Ok(12.5)
    }
    async fn tracking(&self) -> AlpacaResult<bool> {
        Ok(self.lock().tracking)
    }
    async fn set_tracking(&self, tracking: bool) -> AlpacaResult<()> {
        self.lock().tracking = tracking;
        Ok(())
    }
    async fn tracking_rate(&self) -> AlpacaResult<DriveRate> {
        Ok(self.lock().tracking_rate)
    }
    async fn set_tracking_rate(&self, rate: DriveRate) -> AlpacaResult<()> {
        if rate == DriveRate::King {
            return Err(AlpacaError::invalid_value("King rate is not offered"));
        }
        self.lock().tracking_rate = rate;
        Ok(())
    }
    async fn tracking_rates(&self) -> AlpacaResult<Vec<DriveRate>> {
        Ok(vec![
            DriveRate::Sidereal,
            DriveRate::Lunar,
            DriveRate::Solar,
        ])
    }
    async fn site_elevation(&self) -> AlpacaResult<f64> {
        Ok(self.lock().site_elevation)
    }
    async fn set_site_elevation(&self, v: f64) -> AlpacaResult<()> {
        if !(-300.0..=10_000.0).contains(&v) {
            return Err(AlpacaError::invalid_value(format!(
                "site elevation {v} outside -300..10000"
            )));
        }
        self.lock().site_elevation = v;
        Ok(())
    }
    async fn target_right_ascension(&self) -> AlpacaResult<f64> {
        self.lock()
            .target_ra
            .ok_or_else(|| AlpacaError::value_not_set("TargetRightAscension"))
    }
    async fn set_target_right_ascension(&self, v: f64) -> AlpacaResult<()> {
        if !(0.0..24.0).contains(&v) {
            return Err(AlpacaError::invalid_value("RA outside 0..24"));
        }
        self.lock().target_ra = Some(v);
        Ok(())
    }
    async fn utc_date(&self) -> AlpacaResult<DateTime<Utc>> {
        Ok(self.lock().utc)
    }
    async fn set_utc_date(&self, t: DateTime<Utc>) -> AlpacaResult<()> {
        self.lock().utc = t;
        Ok(())
    }
    async fn side_of_pier(&self) -> AlpacaResult<PierSide> {
        Ok(PierSide::Unknown)
    }
    async fn axis_rates(&self, axis: TelescopeAxis) -> AlpacaResult<Vec<AxisRate>> {
        Ok(match axis {
            TelescopeAxis::Primary => vec![AxisRate::new(0.0, 6.5)],
            TelescopeAxis::Secondary => vec![AxisRate::new(0.0, 3.0), AxisRate::new(10.0, 20.0)],
            TelescopeAxis::Tertiary => Vec::new(),
        })
    }
    async fn can_move_axis(&self, axis: TelescopeAxis) -> AlpacaResult<bool> {
        Ok(axis != TelescopeAxis::Tertiary)
    }
    async fn destination_side_of_pier(&self, ra: f64, _dec: f64) -> AlpacaResult<PierSide> {
        Ok(if ra < 12.0 {
            PierSide::East
        } else {
            PierSide::West
        })
    }
    async fn slew_to_coordinates_async(&self, ra: f64, dec: f64) -> AlpacaResult<()> {
        if !(0.0..24.0).contains(&ra) || !(-90.0..=90.0).contains(&dec) {
            return Err(AlpacaError::invalid_value("coordinates out of range"));
        }
        let mut s = self.lock();
        s.target_ra = Some(ra);
        s.target_dec = Some(dec);
        s.last_slew = Some((ra, dec));
        Ok(())
    }
    async fn pulse_guide(&self, direction: GuideDirection, duration: i32) -> AlpacaResult<()> {
        self.lock().last_pulse = Some((direction, duration));
        Ok(())
    }
}

#[derive(Debug)]
pub struct CameraState {
    pub bin_x: i32,
    pub image_ready: bool,
}

/// A camera that always has a tiny image once "exposed".
#[derive(Debug)]
pub struct FakeCamera {
    pub state: Mutex<CameraState>,
}

impl FakeCamera {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(CameraState {
                bin_x: 1,
                image_ready: false,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CameraState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The image every exposure produces: 4 × 3, value 100·x + y, 16-bit.
    pub fn image() -> ImageArray {
        ImageArray::from_fn_2d(4, 3, |x, y| (100 * x + y) as i32)
            .with_transmission_hint(ImageElementType::UInt16)
    }
}

#[crate::async_trait]
impl Device for FakeCamera {
    async fn connected(&self) -> AlpacaResult<bool> {
        Ok(true)
    }
}

#[crate::async_trait]
impl Camera for FakeCamera {
    async fn bin_x(&self) -> AlpacaResult<i32> {
        Ok(self.lock().bin_x)
    }
    async fn set_bin_x(&self, v: i32) -> AlpacaResult<()> {
        if !(1..=4).contains(&v) {
            return Err(AlpacaError::invalid_value("BinX outside 1..4"));
        }
        self.lock().bin_x = v;
        Ok(())
    }
    async fn camera_state(&self) -> AlpacaResult<crate::types::CameraState> {
        Ok(crate::types::CameraState::Idle)
    }
    async fn start_exposure(&self, duration: f64, _light: bool) -> AlpacaResult<()> {
        if duration < 0.0 {
            return Err(AlpacaError::invalid_value("negative duration"));
        }
        self.lock().image_ready = true;
        Ok(())
    }
    async fn image_ready(&self) -> AlpacaResult<bool> {
        Ok(self.lock().image_ready)
    }
    async fn image_array(&self) -> AlpacaResult<ImageArray> {
        if self.lock().image_ready {
            Ok(Self::image())
        } else {
            Err(AlpacaError::invalid_operation("no image has been taken"))
        }
    }
    async fn image_array_variant(&self) -> AlpacaResult<ImageArray> {
        self.image_array().await
    }
    async fn last_exposure_start_time(&self) -> AlpacaResult<FitsDateTime> {
        Ok(FitsDateTime(
            Utc.with_ymd_and_hms(2026, 5, 6, 7, 8, 9)
                .single()
                .expect("valid date"),
        ))
    }
    async fn readout_modes(&self) -> AlpacaResult<Vec<String>> {
        Ok(vec!["Default".into(), "Fast".into()])
    }
}

pub fn server_info() -> ServerInfo {
    ServerInfo {
        server_name: "Test <Server>".into(),
        manufacturer: "Big Skies".into(),
        manufacturer_version: "0.1".into(),
        location: "Bench".into(),
    }
}

/// Telescope 0, telescope 3, camera 0.
pub fn test_server(scope: Arc<FakeTelescope>, camera: Arc<FakeCamera>) -> AlpacaServer {
    AlpacaServer::new(server_info())
        .with_telescope(
            0,
            DeviceMeta::new("Fake mount", "4c1b7a2e-0000-4000-8000-000000000001"),
            scope,
        )
        .with_telescope(
            3,
            DeviceMeta::new("Second mount", "4c1b7a2e-0000-4000-8000-000000000003"),
            FakeTelescope::new(),
        )
        .with_camera(
            0,
            DeviceMeta::new("Fake camera", "4c1b7a2e-0000-4000-8000-000000000002"),
            camera,
        )
}
