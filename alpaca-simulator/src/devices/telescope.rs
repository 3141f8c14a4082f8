//! `Telescope` for the simulated mount: each member is one call into [`TelescopeModel`]
//! through [`Shell::read`] / [`Shell::write`] (which check the connection first).
//!
//! The synchronous slews answer 0x400 whatever their arguments (CanSlew/CanSlewAltAz are
//! false for Alpaca), so their arguments are ignored.

use bigskies_alpaca::devices::Telescope;
use bigskies_alpaca::types::{
    AlignmentMode, AxisRate, DriveRate, EquatorialSystem, GuideDirection, PierSide, TelescopeAxis,
};
use bigskies_alpaca::{AlpacaResult, async_trait};
use chrono::{DateTime, Utc};

use crate::clock::SimTime;
use crate::devices::ModelInfo;
use crate::models::telescope::TelescopeModel;
use crate::shell::Shell;

impl ModelInfo for TelescopeModel {
    fn device_type(&self) -> &'static str {
        "telescope"
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
    fn device_state(&self, now: SimTime) -> Vec<(&'static str, serde_json::Value)> {
        TelescopeModel::device_state(self, now)
    }
}

#[async_trait]
impl Telescope for Shell<TelescopeModel> {
    async fn alignment_mode(&self) -> AlpacaResult<AlignmentMode> {
        self.read(|m, _| Ok(m.alignment_mode()))
    }
    async fn altitude(&self) -> AlpacaResult<f64> {
        self.read(|m, now| Ok(m.altitude(now)))
    }
    async fn aperture_area(&self) -> AlpacaResult<f64> {
        self.read(|m, _| Ok(m.aperture_area()))
    }
    async fn aperture_diameter(&self) -> AlpacaResult<f64> {
        self.read(|m, _| Ok(m.aperture_diameter()))
    }
    async fn at_home(&self) -> AlpacaResult<bool> {
        self.read(|m, now| Ok(m.at_home(now)))
    }
    async fn at_park(&self) -> AlpacaResult<bool> {
        self.read(|m, now| Ok(m.at_park(now)))
    }
    async fn azimuth(&self) -> AlpacaResult<f64> {
        self.read(|m, now| Ok(m.azimuth(now)))
    }
    async fn can_find_home(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_find_home()))
    }
    async fn can_park(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_park()))
    }
    async fn can_pulse_guide(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_pulse_guide()))
    }
    async fn can_set_declination_rate(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_set_declination_rate()))
    }
    async fn can_set_guide_rates(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_set_guide_rates()))
    }
    async fn can_set_park(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_set_park()))
    }
    async fn can_set_pier_side(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_set_pier_side()))
    }
    async fn can_set_right_ascension_rate(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_set_right_ascension_rate()))
    }
    async fn can_set_tracking(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_set_tracking()))
    }
    async fn can_slew(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_slew()))
    }
    async fn can_slew_alt_az(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_slew_alt_az()))
    }
    async fn can_slew_alt_az_async(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_slew_alt_az_async()))
    }
    async fn can_slew_async(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_slew_async()))
    }
    async fn can_sync(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_sync()))
    }
    async fn can_sync_alt_az(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_sync_alt_az()))
    }
    async fn can_unpark(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_unpark()))
    }
    async fn declination(&self) -> AlpacaResult<f64> {
        self.read(|m, now| Ok(m.declination(now)))
    }
    async fn declination_rate(&self) -> AlpacaResult<f64> {
        self.read(|m, _| Ok(m.declination_rate()))
    }
    async fn set_declination_rate(&self, declination_rate: f64) -> AlpacaResult<()> {
        self.write(|m, now| m.set_declination_rate(now, declination_rate))
    }
    async fn does_refraction(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.does_refraction()))
    }
    async fn set_does_refraction(&self, does_refraction: bool) -> AlpacaResult<()> {
        self.write(|m, _| m.set_does_refraction(does_refraction))
    }
    async fn equatorial_system(&self) -> AlpacaResult<EquatorialSystem> {
        self.read(|m, _| Ok(m.equatorial_system()))
    }
    async fn focal_length(&self) -> AlpacaResult<f64> {
        self.read(|m, _| Ok(m.focal_length()))
    }
    async fn guide_rate_declination(&self) -> AlpacaResult<f64> {
        self.read(|m, _| Ok(m.guide_rate_declination()))
    }
    async fn set_guide_rate_declination(&self, guide_rate_declination: f64) -> AlpacaResult<()> {
        self.write(|m, _| m.set_guide_rate_declination(guide_rate_declination))
    }
    async fn guide_rate_right_ascension(&self) -> AlpacaResult<f64> {
        self.read(|m, _| Ok(m.guide_rate_right_ascension()))
    }
    async fn set_guide_rate_right_ascension(
        &self,
        guide_rate_right_ascension: f64,
    ) -> AlpacaResult<()> {
        self.write(|m, _| m.set_guide_rate_right_ascension(guide_rate_right_ascension))
    }
    async fn is_pulse_guiding(&self) -> AlpacaResult<bool> {
        self.read(|m, now| Ok(m.is_pulse_guiding(now)))
    }
    async fn right_ascension(&self) -> AlpacaResult<f64> {
        self.read(|m, now| Ok(m.right_ascension(now)))
    }
    async fn right_ascension_rate(&self) -> AlpacaResult<f64> {
        self.read(|m, _| Ok(m.right_ascension_rate()))
    }
    async fn set_right_ascension_rate(&self, right_ascension_rate: f64) -> AlpacaResult<()> {
        self.write(|m, now| m.set_right_ascension_rate(now, right_ascension_rate))
    }
    async fn side_of_pier(&self) -> AlpacaResult<PierSide> {
        self.read(|m, now| m.side_of_pier(now))
    }
    async fn set_side_of_pier(&self, side_of_pier: PierSide) -> AlpacaResult<()> {
        self.write(|m, now| m.set_side_of_pier(now, side_of_pier))
    }
    async fn sidereal_time(&self) -> AlpacaResult<f64> {
        self.read(|m, now| Ok(m.sidereal_time(now)))
    }
    async fn site_elevation(&self) -> AlpacaResult<f64> {
        self.read(|m, _| Ok(m.site_elevation()))
    }
    async fn set_site_elevation(&self, site_elevation: f64) -> AlpacaResult<()> {
        self.write(|m, _| m.set_site_elevation(site_elevation))
    }
    async fn site_latitude(&self) -> AlpacaResult<f64> {
        self.read(|m, _| Ok(m.site_latitude()))
    }
    async fn set_site_latitude(&self, site_latitude: f64) -> AlpacaResult<()> {
        self.write(|m, now| m.set_site_latitude(now, site_latitude))
    }
    async fn site_longitude(&self) -> AlpacaResult<f64> {
        self.read(|m, _| Ok(m.site_longitude()))
    }
    async fn set_site_longitude(&self, site_longitude: f64) -> AlpacaResult<()> {
        self.write(|m, now| m.set_site_longitude(now, site_longitude))
    }
    async fn slewing(&self) -> AlpacaResult<bool> {
        self.read(|m, now| Ok(m.slewing(now)))
    }
    async fn slew_settle_time(&self) -> AlpacaResult<i32> {
        self.read(|m, _| Ok(m.slew_settle_time()))
    }
    async fn set_slew_settle_time(&self, slew_settle_time: i32) -> AlpacaResult<()> {
        self.write(|m, _| m.set_slew_settle_time(slew_settle_time))
    }
    async fn target_declination(&self) -> AlpacaResult<f64> {
        self.read(|m, _| m.target_declination())
    }
    async fn set_target_declination(&self, target_declination: f64) -> AlpacaResult<()> {
        self.write(|m, _| m.set_target_declination(target_declination))
    }
    async fn target_right_ascension(&self) -> AlpacaResult<f64> {
        self.read(|m, _| m.target_right_ascension())
    }
    async fn set_target_right_ascension(&self, target_right_ascension: f64) -> AlpacaResult<()> {
        self.write(|m, _| m.set_target_right_ascension(target_right_ascension))
    }
    async fn tracking(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.tracking()))
    }
    async fn set_tracking(&self, tracking: bool) -> AlpacaResult<()> {
        self.write(|m, now| m.set_tracking(now, tracking))
    }
    async fn tracking_rate(&self) -> AlpacaResult<DriveRate> {
        self.read(|m, _| Ok(m.tracking_rate()))
    }
    async fn set_tracking_rate(&self, tracking_rate: DriveRate) -> AlpacaResult<()> {
        self.write(|m, now| m.set_tracking_rate(now, tracking_rate))
    }
    async fn tracking_rates(&self) -> AlpacaResult<Vec<DriveRate>> {
        self.read(|m, _| Ok(m.tracking_rates()))
    }
    async fn utc_date(&self) -> AlpacaResult<DateTime<Utc>> {
        self.read(|m, now| Ok(m.utc_date(now)))
    }
    async fn set_utc_date(&self, utc_date: DateTime<Utc>) -> AlpacaResult<()> {
        self.write(|m, now| m.set_utc_date(now, utc_date))
    }
    async fn abort_slew(&self) -> AlpacaResult<()> {
        self.write(|m, now| m.abort_slew(now))
    }
    async fn axis_rates(&self, axis: TelescopeAxis) -> AlpacaResult<Vec<AxisRate>> {
        self.read(|m, _| Ok(m.axis_rates(axis)))
    }
    async fn can_move_axis(&self, axis: TelescopeAxis) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_move_axis(axis)))
    }
    async fn destination_side_of_pier(
        &self,
        right_ascension: f64,
        declination: f64,
    ) -> AlpacaResult<PierSide> {
        self.read(|m, now| m.destination_side_of_pier(now, right_ascension, declination))
    }
    async fn find_home(&self) -> AlpacaResult<()> {
        self.write(|m, now| m.find_home(now))
    }
    async fn move_axis(&self, axis: TelescopeAxis, rate: f64) -> AlpacaResult<()> {
        self.write(|m, now| m.move_axis(now, axis, rate))
    }
    async fn park(&self) -> AlpacaResult<()> {
        self.write(|m, now| m.park(now))
    }
    async fn pulse_guide(&self, direction: GuideDirection, duration: i32) -> AlpacaResult<()> {
        self.write(|m, now| m.pulse_guide(now, direction, duration))
    }
    async fn set_park(&self) -> AlpacaResult<()> {
        self.write(|m, now| m.set_park(now))
    }
    async fn slew_to_alt_az(&self, azimuth: f64, altitude: f64) -> AlpacaResult<()> {
        self.write(|m, _| {
            let _ = (azimuth, altitude);
            m.slew_to_alt_az()
        })
    }
    async fn slew_to_alt_az_async(&self, azimuth: f64, altitude: f64) -> AlpacaResult<()> {
        self.write(|m, now| m.slew_to_alt_az_async(now, azimuth, altitude))
    }
    async fn slew_to_coordinates(
        &self,
        right_ascension: f64,
        declination: f64,
    ) -> AlpacaResult<()> {
        self.write(|m, _| {
            let _ = (right_ascension, declination);
            m.slew_to_coordinates()
        })
    }
    async fn slew_to_coordinates_async(
        &self,
        right_ascension: f64,
        declination: f64,
    ) -> AlpacaResult<()> {
        self.write(|m, now| m.slew_to_coordinates_async(now, right_ascension, declination))
    }
    async fn slew_to_target(&self) -> AlpacaResult<()> {
        self.write(|m, _| m.slew_to_target())
    }
    async fn slew_to_target_async(&self) -> AlpacaResult<()> {
        self.write(|m, now| m.slew_to_target_async(now))
    }
    async fn sync_to_alt_az(&self, azimuth: f64, altitude: f64) -> AlpacaResult<()> {
        self.write(|m, now| m.sync_to_alt_az(now, azimuth, altitude))
    }
    async fn sync_to_coordinates(
        &self,
        right_ascension: f64,
        declination: f64,
    ) -> AlpacaResult<()> {
        self.write(|m, now| m.sync_to_coordinates(now, right_ascension, declination))
    }
    async fn sync_to_target(&self) -> AlpacaResult<()> {
        self.write(|m, now| m.sync_to_target(now))
    }
    async fn unpark(&self) -> AlpacaResult<()> {
        self.write(|m, now| m.unpark(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ClockMode};
    use crate::models::telescope::TelescopeConfig;
    use bigskies_alpaca::ErrorCode;
    use bigskies_alpaca::devices::Device;

    fn scope() -> Shell<TelescopeModel> {
        let start = SimTime(1_774_044_000.0);
        let model = TelescopeModel::new(TelescopeConfig::default(), start);
        Shell::new(model, Clock::with_mode(ClockMode::Stepped, start), 0.0)
    }

    #[tokio::test]
    async fn members_need_a_connection_and_reach_the_model() {
        let s = scope();
        let err = s.right_ascension().await.expect_err("not connected");
        assert_eq!(err.code, ErrorCode::NOT_CONNECTED);
        s.set_connected(true);
        assert_eq!(s.alignment_mode().await, Ok(AlignmentMode::GermanPolar));
        assert_eq!(s.interface_version().await, Ok(4));
        assert_eq!(s.can_slew().await, Ok(false));

        s.set_tracking(true).await.expect("tracking");
        let lst = s.sidereal_time().await.expect("lst");
        let ra = (lst - 2.0).rem_euclid(24.0);
        s.slew_to_coordinates_async(ra, 40.0).await.expect("slew");
        assert_eq!(s.slewing().await, Ok(true));
        assert_eq!(
            s.slew_to_coordinates(ra, 40.0).await.map_err(|e| e.code),
            Err(ErrorCode::NOT_IMPLEMENTED)
        );
        s.clock().step(120.0).expect("step");
        assert_eq!(s.slewing().await, Ok(false));
        let now_ra = s.right_ascension().await.expect("ra");
        assert!((now_ra - ra).abs() * 54_000.0 < 1.0, "{now_ra} vs {ra}");
        assert_eq!(
            s.side_of_pier().await,
            Ok(PierSide::East),
            "2 h west of the meridian"
        );
        assert_eq!(s.target_declination().await, Ok(40.0));
        let rates = s.axis_rates(TelescopeAxis::Primary).await.expect("rates");
        assert_eq!(rates.len(), 2);
    }
}
