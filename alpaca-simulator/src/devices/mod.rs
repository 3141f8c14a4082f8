//! ASCOM device-trait implementations for the simulated devices.
//!
//! Each device type's file implements its protocol trait (`Telescope`, `Dome`, ...) for
//! `Shell<ItsModel>`. The members every device has in common (`Connected`, `Name`,
//! `DeviceState`, `Action`, ...) are implemented once, generically, for any
//! `Shell<M: ModelInfo>`; a model only has to describe itself through [`ModelInfo`].

pub mod camera;
pub mod dome;
pub mod filterwheel;
pub mod focuser;
pub mod rotator;
pub mod telescope;

use crate::clock::SimTime;

pub use crate::clock::{Clock, ClockMode};
pub use crate::shell::Shell;

/// What the common `Device` members need to know about a model.
///
/// Implemented by every device model (`TelescopeModel`, `DomeModel`, ...). None of these
/// need a connection except [`ModelInfo::device_state`], whose caller checks it.
pub trait ModelInfo: Send + 'static {
    /// The lower-case ASCOM device type as it appears in URLs: `"telescope"`, `"dome"`, ...
    fn device_type(&self) -> &'static str;
    /// `Name`: a short display name, e.g. `"Big Skies Telescope Simulator"`.
    fn name(&self) -> String;
    /// `Description`: a longer description of the (simulated) device.
    fn description(&self) -> String;
    /// `InterfaceVersion` of the device type (e.g. 4 for ITelescopeV4).
    fn interface_version(&self) -> i32;
    /// The operational state items for `DeviceState` at `now`, without `TimeStamp`
    /// (the common implementation appends it). Names are the ASCOM property names.
    fn device_state(&self, now: SimTime) -> Vec<(&'static str, serde_json::Value)>;
}

use bigskies_alpaca::types::DeviceStateItem;
use bigskies_alpaca::{AlpacaError, AlpacaResult, async_trait, devices::Device};

/// Actions every simulated device supports (matched case-insensitively).
pub const SUPPORTED_ACTIONS: [&str; 3] = ["SimulatorTime", "SimulatorClock", "SimulatorInfo"];

/// `DriverVersion` in the "n.n" form ASCOM asks for.
fn driver_version() -> String {
    let mut parts = env!("CARGO_PKG_VERSION").split('.');
    let major = parts.next().unwrap_or("0");
    let minor = parts.next().unwrap_or("0");
    format!("{major}.{minor}")
}

/// ISO 8601 UTC with milliseconds and a trailing `Z` (DeviceState `TimeStamp`, actions).
pub fn iso_utc(t: SimTime) -> String {
    t.utc().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The common members, for every simulated device type at once.
#[async_trait]
impl<M: ModelInfo> Device for Shell<M> {
    async fn action(&self, action: String, parameters: String) -> AlpacaResult<String> {
        let _ = parameters;
        let name = SUPPORTED_ACTIONS
            .iter()
            .find(|a| a.eq_ignore_ascii_case(action.trim()))
            .ok_or_else(|| AlpacaError::action_not_implemented(&action))?;
        let clock = self.clock().clone();
        self.read(|m, now| {
            Ok(match *name {
                "SimulatorTime" => iso_utc(now),
                "SimulatorClock" => {
                    let (mode, rate) = match clock.mode() {
                        ClockMode::Running { rate } => ("running", Some(rate)),
                        ClockMode::Stepped => ("stepped", None),
                    };
                    serde_json::json!({ "mode": mode, "rate": rate, "now": now.secs() }).to_string()
                }
                _ => serde_json::json!({
                    "device_type": m.device_type(),
                    "name": m.name(),
                    "interface_version": m.interface_version(),
                    "simulated_utc": iso_utc(now),
                })
                .to_string(),
            })
        })
    }

    async fn connected(&self) -> AlpacaResult<bool> {
        Ok(Shell::connected(self))
    }

    async fn set_connected(&self, connected: bool) -> AlpacaResult<()> {
        Shell::set_connected(self, connected);
        Ok(())
    }

    async fn connect(&self) -> AlpacaResult<()> {
        Shell::connect(self);
        Ok(())
    }

    async fn disconnect(&self) -> AlpacaResult<()> {
        Shell::disconnect(self);
        Ok(())
    }

    async fn connecting(&self) -> AlpacaResult<bool> {
        Ok(Shell::connecting(self))
    }

    async fn description(&self) -> AlpacaResult<String> {
        Ok(self.with_model(|m, _| m.description()))
    }

    async fn device_state(&self) -> AlpacaResult<Vec<DeviceStateItem>> {
        self.read(|m, now| {
            let mut items: Vec<DeviceStateItem> = m
                .device_state(now)
                .into_iter()
                .map(|(name, value)| DeviceStateItem::new(name, value))
                .collect();
            // An empty state carries no TimeStamp (PROTOCOL.md §4).
            if !items.is_empty() {
                items.push(DeviceStateItem::new("TimeStamp", iso_utc(now)));
            }
            Ok(items)
        })
    }

    async fn driver_info(&self) -> AlpacaResult<String> {
        let kind = self.with_model(|m, _| m.device_type());
        Ok(format!(
            "Big Skies Alpaca Simulator, {kind} driver {}",
            env!("CARGO_PKG_VERSION")
        ))
    }

    async fn driver_version(&self) -> AlpacaResult<String> {
        Ok(driver_version())
    }

    async fn interface_version(&self) -> AlpacaResult<i32> {
        Ok(self.with_model(|m, _| m.interface_version()))
    }

    async fn name(&self) -> AlpacaResult<String> {
        Ok(self.with_model(|m, _| m.name()))
    }

    async fn supported_actions(&self) -> AlpacaResult<Vec<String>> {
        Ok(SUPPORTED_ACTIONS.iter().map(|s| (*s).to_owned()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bigskies_alpaca::ErrorCode;

    struct Fake;
    impl ModelInfo for Fake {
        fn device_type(&self) -> &'static str {
            "focuser"
        }
        fn name(&self) -> String {
            "Fake".into()
        }
        fn description(&self) -> String {
            "A fake device".into()
        }
        fn interface_version(&self) -> i32 {
            4
        }
        fn device_state(&self, now: SimTime) -> Vec<(&'static str, serde_json::Value)> {
            vec![("Position", serde_json::json!(now.secs() as i64))]
        }
    }

    fn shell() -> Shell<Fake> {
        Shell::new(
            Fake,
            Clock::with_mode(ClockMode::Stepped, SimTime(1_780_000_000.0)),
            2.0,
        )
    }

    #[tokio::test]
    async fn information_members_work_while_disconnected() {
        let s = shell();
        assert_eq!(Device::name(&s).await, Ok("Fake".to_owned()));
        assert_eq!(s.description().await, Ok("A fake device".to_owned()));
        assert_eq!(s.interface_version().await, Ok(4));
        assert_eq!(s.driver_version().await, Ok(driver_version()));
        assert!(
            s.driver_version()
                .await
                .is_ok_and(|v| v.split('.').count() == 2)
        );
        assert_eq!(
            s.supported_actions().await.map(|v| v.len()),
            Ok(SUPPORTED_ACTIONS.len())
        );
        assert_eq!(Device::connected(&s).await, Ok(false));
        assert_eq!(Device::connecting(&s).await, Ok(false));
        assert_eq!(
            s.device_state().await.map_err(|e| e.code),
            Err(ErrorCode::NOT_CONNECTED)
        );
        assert_eq!(
            s.action("SimulatorTime".into(), String::new())
                .await
                .map_err(|e| e.code),
            Err(ErrorCode::NOT_CONNECTED)
        );
    }

    #[tokio::test]
    async fn connect_completes_after_the_delay() {
        let s = shell();
        Device::connect(&s).await.expect("connect");
        assert_eq!(Device::connecting(&s).await, Ok(true));
        s.clock().step(2.0).expect("step");
        assert_eq!(Device::connecting(&s).await, Ok(false));
        assert_eq!(Device::connected(&s).await, Ok(true));
        Device::set_connected(&s, false).await.expect("set");
        assert_eq!(Device::connected(&s).await, Ok(false));
    }

    #[tokio::test]
    async fn device_state_carries_a_timestamp() {
        let s = shell();
        Device::set_connected(&s, true).await.expect("set");
        let items = s.device_state().await.expect("connected");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].name, "Position");
        assert_eq!(items[1].name, "TimeStamp");
        assert!(
            items[1]
                .value
                .as_str()
                .is_some_and(|t| t.starts_with("2026-") && t.ends_with('Z')),
            "{items:?}"
        );
    }

    #[tokio::test]
    async fn actions_match_case_insensitively_and_unknown_ones_are_0x40c() {
        let s = shell();
        Device::set_connected(&s, true).await.expect("set");
        let t = s
            .action("simulatortime".into(), String::new())
            .await
            .expect("known action");
        assert!(t.ends_with('Z'));
        let info = s
            .action("SIMULATORINFO".into(), String::new())
            .await
            .expect("known action");
        assert!(info.contains("\"interface_version\":4"), "{info}");
        let clock = s
            .action("SimulatorClock".into(), String::new())
            .await
            .expect("known action");
        assert!(clock.contains("stepped"), "{clock}");
        let err = s
            .action("MakeCoffee".into(), String::new())
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ACTION_NOT_IMPLEMENTED);
        let err = s.command_blind("X".into(), true).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::NOT_IMPLEMENTED);
    }
}
