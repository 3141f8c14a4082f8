//! `Focuser` for the simulated focuser: each member is one call into [`FocuserModel`].

use bigskies_alpaca::devices::Focuser;
use bigskies_alpaca::{AlpacaResult, async_trait};

use crate::clock::SimTime;
use crate::devices::ModelInfo;
use crate::models::focuser::FocuserModel;
use crate::shell::Shell;

impl ModelInfo for FocuserModel {
    fn device_type(&self) -> &'static str {
        "focuser"
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
        let mut v = vec![("IsMoving", self.is_moving(now).into())];
        if let Ok(p) = self.position(now) {
            v.push(("Position", p.into()));
        }
        v.push(("Temperature", self.temperature(now).into()));
        v
    }
}

#[async_trait]
impl Focuser for Shell<FocuserModel> {
    async fn absolute(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.absolute()))
    }
    async fn is_moving(&self) -> AlpacaResult<bool> {
        self.read(|m, now| Ok(m.is_moving(now)))
    }
    async fn max_increment(&self) -> AlpacaResult<i32> {
        self.read(|m, _| Ok(m.max_increment()))
    }
    async fn max_step(&self) -> AlpacaResult<i32> {
        self.read(|m, _| Ok(m.max_step()))
    }
    async fn position(&self) -> AlpacaResult<i32> {
        self.read(|m, now| m.position(now))
    }
    async fn step_size(&self) -> AlpacaResult<f64> {
        self.read(|m, _| Ok(m.step_size()))
    }
    async fn temp_comp(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.temp_comp()))
    }
    async fn set_temp_comp(&self, temp_comp: bool) -> AlpacaResult<()> {
        self.write(|m, now| m.set_temp_comp(now, temp_comp))
    }
    async fn temp_comp_available(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.temp_comp_available()))
    }
    async fn temperature(&self) -> AlpacaResult<f64> {
        self.read(|m, now| Ok(m.temperature(now)))
    }
    async fn halt(&self) -> AlpacaResult<()> {
        self.write(|m, now| m.halt(now))
    }
    async fn move_(&self, position: i32) -> AlpacaResult<()> {
        self.write(|m, now| m.move_to(now, position))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ClockMode};
    use crate::models::focuser::FocuserConfig;
    use bigskies_alpaca::ErrorCode;
    use bigskies_alpaca::devices::Device;

    fn shell() -> Shell<FocuserModel> {
        let clock = Clock::with_mode(ClockMode::Stepped, SimTime(1_780_000_000.0));
        Shell::new(
            FocuserModel::new(FocuserConfig::default(), clock.now()),
            clock,
            0.0,
        )
    }

    #[tokio::test]
    async fn moves_through_the_trait_over_simulated_time() {
        let s = shell();
        assert_eq!(
            Focuser::position(&s).await.unwrap_err().code,
            ErrorCode::NOT_CONNECTED
        );
        s.set_connected(true);
        s.move_(26_000).await.unwrap();
        assert_eq!(Focuser::is_moving(&s).await, Ok(true));
        s.clock().step(1.0).unwrap();
        assert_eq!(Focuser::position(&s).await, Ok(26_000));
        s.clock().step(1.0).unwrap();
        assert_eq!(Focuser::is_moving(&s).await, Ok(false));
        let state = Device::device_state(&s).await.unwrap();
        let names: Vec<_> = state.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["IsMoving", "Position", "Temperature", "TimeStamp"]);
    }
}
