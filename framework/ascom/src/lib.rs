//! The ASCOM engine: everything the framework knows about Alpaca devices, without MQTT.
//!
//! * [`registry`]: device records keyed by the stable Alpaca `UniqueID`, with per-device call
//!   statistics and the connection state machine.
//! * [`store`]: persistence of the registry and of telescope pools (role → device) in PostgreSQL.
//! * [`engine`]: [`AscomEngine`], the cheap-`Clone` handle: discovery (UDP broadcast and
//!   configured addresses), connect/disconnect, instrumented calls with per-call timeouts, and
//!   the health cycle (three consecutive failures mark a device disconnected; a device that
//!   answers again is reconnected by itself).
//!
//! Physical devices and the simulator are handled the same way: anything that speaks Alpaca
//! and answers `/management/v1/configureddevices`.

pub mod engine;
pub mod registry;
pub mod store;

pub use engine::{AscomConfig, AscomEngine, DeviceEvent, EngineError, Identity, PendingMove};
pub use registry::{DeviceRecord, DeviceStats, LinkState, Role};
