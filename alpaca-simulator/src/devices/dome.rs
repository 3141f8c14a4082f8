//! `Dome` for the simulated dome: each member is one call into [`DomeModel`] through
//! [`Shell::read`] / [`Shell::write`] (which check the connection first).
//!
//! Slaving to a telescope is not done here: the wiring layer feeds the mount's azimuth
//! into [`DomeModel::slave_to`] before each dome request (see `crate::models::dome`).

use bigskies_alpaca::devices::Dome;
use bigskies_alpaca::types::ShutterState;
use bigskies_alpaca::{AlpacaResult, async_trait};

use crate::clock::SimTime;
use crate::devices::ModelInfo;
use crate::models::dome::DomeModel;
use crate::shell::Shell;

impl ModelInfo for DomeModel {
    fn device_type(&self) -> &'static str {
        "dome"
    }
    fn name(&self) -> String {
        self.config().name.clone()
    }
    fn description(&self) -> String {
        self.config().description.clone()
    }
    fn interface_version(&self) -> i32 {
        3
    }
    fn device_state(&self, now: SimTime) -> Vec<(&'static str, serde_json::Value)> {
        DomeModel::device_state(self, now)
    }
}

#[async_trait]
impl Dome for Shell<DomeModel> {
    async fn altitude(&self) -> AlpacaResult<f64> {
        self.read(|m, now| Ok(m.altitude(now)))
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
    async fn can_set_altitude(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_set_altitude()))
    }
    async fn can_set_azimuth(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_set_azimuth()))
    }
    async fn can_set_park(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_set_park()))
    }
    async fn can_set_shutter(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_set_shutter()))
    }
    async fn can_slave(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_slave()))
    }
    async fn can_sync_azimuth(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_sync_azimuth()))
    }
    async fn shutter_status(&self) -> AlpacaResult<ShutterState> {
        self.read(|m, now| Ok(m.shutter_status(now)))
    }
    async fn slaved(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.slaved()))
    }
    async fn set_slaved(&self, slaved: bool) -> AlpacaResult<()> {
        self.write(|m, now| m.set_slaved(now, slaved))
    }
    async fn slewing(&self) -> AlpacaResult<bool> {
        self.read(|m, now| Ok(m.slewing(now)))
    }
    async fn abort_slew(&self) -> AlpacaResult<()> {
        self.write(|m, now| m.abort_slew(now))
    }
    async fn close_shutter(&self) -> AlpacaResult<()> {
        self.write(|m, now| m.close_shutter(now))
    }
    async fn find_home(&self) -> AlpacaResult<()> {
        self.write(|m, now| m.find_home(now))
    }
    async fn open_shutter(&self) -> AlpacaResult<()> {
        self.write(|m, now| m.open_shutter(now))
    }
    async fn park(&self) -> AlpacaResult<()> {
        self.write(|m, now| m.park(now))
    }
    async fn set_park(&self) -> AlpacaResult<()> {
        self.write(|m, now| m.set_park(now))
    }
    async fn slew_to_altitude(&self, altitude: f64) -> AlpacaResult<()> {
        self.write(|m, now| m.slew_to_altitude(now, altitude))
    }
    async fn slew_to_azimuth(&self, azimuth: f64) -> AlpacaResult<()> {
        self.write(|m, now| m.slew_to_azimuth(now, azimuth))
    }
    async fn sync_to_azimuth(&self, azimuth: f64) -> AlpacaResult<()> {
        self.write(|m, now| m.sync_to_azimuth(now, azimuth))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ClockMode};
    use crate::models::dome::DomeConfig;
    use bigskies_alpaca::ErrorCode;
    use bigskies_alpaca::devices::Device;

    #[tokio::test]
    async fn members_need_a_connection_and_reach_the_model() {
        let start = SimTime(1_774_044_000.0);
        let s = Shell::new(
            DomeModel::new(DomeConfig::default(), start),
            Clock::with_mode(ClockMode::Stepped, start),
            0.0,
        );
        let err = s.shutter_status().await.expect_err("not connected");
        assert_eq!(err.code, ErrorCode::NOT_CONNECTED);
        s.set_connected(true);
        assert_eq!(s.interface_version().await, Ok(3));
        s.open_shutter().await.expect("open");
        assert_eq!(s.shutter_status().await, Ok(ShutterState::Opening));
        assert_eq!(s.slewing().await, Ok(true));
        s.clock().step(3.0).expect("step");
        assert_eq!(s.shutter_status().await, Ok(ShutterState::Open));
        assert_eq!(s.slewing().await, Ok(false));
        s.set_slaved(true).await.expect("slave");
        assert_eq!(
            s.slew_to_azimuth(10.0).await.map_err(|e| e.code),
            Err(ErrorCode::INVALID_WHILE_SLAVED)
        );
        s.abort_slew().await.expect("abort");
        assert_eq!(s.slaved().await, Ok(false));
    }
}
