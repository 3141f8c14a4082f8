//! `Rotator` for the simulated rotator: each member is one call into [`RotatorModel`].

use bigskies_alpaca::devices::Rotator;
use bigskies_alpaca::{AlpacaResult, async_trait};

use crate::clock::SimTime;
use crate::devices::ModelInfo;
use crate::models::rotator::RotatorModel;
use crate::shell::Shell;

impl ModelInfo for RotatorModel {
    fn device_type(&self) -> &'static str {
        "rotator"
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
        vec![
            ("IsMoving", self.is_moving(now).into()),
            ("MechanicalPosition", self.mechanical_position(now).into()),
            ("Position", self.position(now).into()),
        ]
    }
}

#[async_trait]
impl Rotator for Shell<RotatorModel> {
    async fn can_reverse(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.can_reverse()))
    }
    async fn is_moving(&self) -> AlpacaResult<bool> {
        self.read(|m, now| Ok(m.is_moving(now)))
    }
    async fn mechanical_position(&self) -> AlpacaResult<f64> {
        self.read(|m, now| Ok(m.mechanical_position(now)))
    }
    async fn position(&self) -> AlpacaResult<f64> {
        self.read(|m, now| Ok(m.position(now)))
    }
    async fn reverse(&self) -> AlpacaResult<bool> {
        self.read(|m, _| Ok(m.reverse()))
    }
    async fn set_reverse(&self, reverse: bool) -> AlpacaResult<()> {
        self.write(|m, now| m.set_reverse(now, reverse))
    }
    async fn step_size(&self) -> AlpacaResult<f64> {
        self.read(|m, _| Ok(m.step_size()))
    }
    async fn target_position(&self) -> AlpacaResult<f64> {
        self.read(|m, _| Ok(m.target_position()))
    }
    async fn halt(&self) -> AlpacaResult<()> {
        self.write(|m, now| m.halt(now))
    }
    async fn move_(&self, position: f64) -> AlpacaResult<()> {
        self.write(|m, now| m.move_relative(now, position))
    }
    async fn move_absolute(&self, position: f64) -> AlpacaResult<()> {
        self.write(|m, now| m.move_absolute(now, position))
    }
    async fn move_mechanical(&self, position: f64) -> AlpacaResult<()> {
        self.write(|m, now| m.move_mechanical(now, position))
    }
    async fn sync(&self, position: f64) -> AlpacaResult<()> {
        self.write(|m, now| m.sync(now, position))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ClockMode};
    use crate::models::rotator::RotatorConfig;

    #[tokio::test]
    async fn moves_and_syncs_through_the_trait() {
        let clock = Clock::with_mode(ClockMode::Stepped, SimTime(1_780_000_000.0));
        let s = Shell::new(
            RotatorModel::new(RotatorConfig::default(), clock.now()),
            clock,
            0.0,
        );
        s.set_connected(true);
        assert_eq!(s.can_reverse().await, Ok(true));
        s.move_absolute(45.0).await.unwrap();
        assert_eq!(Rotator::is_moving(&s).await, Ok(true));
        s.clock().step(5.0).unwrap();
        assert_eq!(Rotator::is_moving(&s).await, Ok(false));
        assert!((Rotator::position(&s).await.unwrap() - 45.0).abs() < 1e-9);
        s.sync(90.0).await.unwrap();
        assert!((Rotator::position(&s).await.unwrap() - 90.0).abs() < 0.001);
        assert!((s.mechanical_position().await.unwrap() - 45.0).abs() < 1e-9);
    }
}
