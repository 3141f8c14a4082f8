//! `FilterWheel` for the simulated filter wheel: each member is one call into
//! [`FilterWheelModel`].

use bigskies_alpaca::devices::FilterWheel;
use bigskies_alpaca::{AlpacaResult, async_trait};

use crate::clock::SimTime;
use crate::devices::ModelInfo;
use crate::models::filterwheel::FilterWheelModel;
use crate::shell::Shell;

impl ModelInfo for FilterWheelModel {
    fn device_type(&self) -> &'static str {
        "filterwheel"
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
        vec![("Position", self.position(now).into())]
    }
}

#[async_trait]
impl FilterWheel for Shell<FilterWheelModel> {
    async fn focus_offsets(&self) -> AlpacaResult<Vec<i32>> {
        self.read(|m, _| Ok(m.focus_offsets()))
    }
    async fn names(&self) -> AlpacaResult<Vec<String>> {
        self.read(|m, _| Ok(m.names()))
    }
    async fn position(&self) -> AlpacaResult<i32> {
        self.read(|m, now| Ok(m.position(now)))
    }
    async fn set_position(&self, position: i32) -> AlpacaResult<()> {
        self.write(|m, now| m.set_position(now, position))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ClockMode};
    use crate::models::filterwheel::FilterWheelConfig;
    use bigskies_alpaca::ErrorCode;

    #[tokio::test]
    async fn position_is_minus_one_until_the_wheel_arrives() {
        let clock = Clock::with_mode(ClockMode::Stepped, SimTime(1_780_000_000.0));
        let s = Shell::new(
            FilterWheelModel::new(FilterWheelConfig::default(), clock.now()),
            clock,
            0.0,
        );
        s.set_connected(true);
        assert_eq!(
            s.names().await.map(|n| n.len()),
            s.focus_offsets().await.map(|o| o.len())
        );
        s.set_position(1).await.unwrap();
        assert_eq!(s.position().await, Ok(-1));
        assert_eq!(
            s.set_position(6).await.unwrap_err().code,
            ErrorCode::INVALID_VALUE
        );
        s.clock().step(1.0).unwrap();
        assert_eq!(s.position().await, Ok(1));
    }
}
