//! ASCOM Alpaca, declared once.
//!
//! Each device type is one table in [`devices`]; the `alpaca_interface!` macro ([`macros`]
//! documents the table syntax) turns it into the trait, the server dispatch, the remote client
//! and a member table. Everything else here is the protocol around those tables.
//!
//! * [`error`]: ASCOM error numbers and [`AlpacaError`], the "device said no" half of every reply.
//! * [`devices`]: the traits [`Device`](devices::Device) (common members) and
//!   [`Telescope`](devices::Telescope), [`Camera`](devices::Camera), [`Dome`](devices::Dome),
//!   [`Focuser`](devices::Focuser), [`FilterWheel`](devices::FilterWheel),
//!   [`Rotator`](devices::Rotator) (latest Platform 7 versions), their member tables
//!   (`TELESCOPE_MEMBERS`, …, `COMMON_MEMBERS`, [`members_of`](devices::members_of)), the
//!   remote handles (`RemoteTelescope`, …) and [`AnyDevice`](devices::AnyDevice).
//! * [`types`]: wire value types: the integer enums (`AlignmentMode`, `PierSide`, `DriveRate`,
//!   `CameraState`, `ShutterState`, …), [`AxisRate`](types::AxisRate),
//!   [`DeviceStateItem`](types::DeviceStateItem), [`FitsDateTime`](types::FitsDateTime),
//!   UTCDate formatting/parsing, [`DeviceType`](types::DeviceType), [`Verb`](types::Verb).
//! * [`image`]: [`ImageArray`](image::ImageArray) and both wire forms (JSON `[x][y]`, ImageBytes).
//! * [`wire`]: parameter parsing ([`ParamValue`](wire::ParamValue), invariant culture, casing
//!   rules in [`Params`](wire::Params)), reply values ([`WireValue`](wire::WireValue)) and the
//!   introspection types [`MemberInfo`](wire::MemberInfo) / [`ParamInfo`](wire::ParamInfo).
//! * [`server`]: [`AlpacaServer`](server::AlpacaServer) registry → axum `Router` with the device
//!   API, management API and setup pages.
//! * [`client`]: [`AlpacaClient`](client::AlpacaClient), [`ClientError`](client::ClientError),
//!   [`Checked`](client::Checked) (members with the full transport error).
//! * [`management`]: `ServerDescription`, `ConfiguredDevice`.
//! * [`discovery`]: UDP discovery responder ([`bind_discovery`](discovery::bind_discovery)) and
//!   client ([`discover`](discovery::discover)).
//!
//! Serving a device:
//!
//! ```no_run
//! use std::sync::Arc;
//! use bigskies_alpaca::{async_trait, AlpacaResult, devices::{Device, FilterWheel}};
//! use bigskies_alpaca::server::{AlpacaServer, DeviceMeta, ServerInfo};
//!
//! struct Wheel;
//! #[async_trait]
//! impl Device for Wheel {
//!     async fn connected(&self) -> AlpacaResult<bool> { Ok(true) }
//! }
//! #[async_trait]
//! impl FilterWheel for Wheel {
//!     async fn position(&self) -> AlpacaResult<i32> { Ok(0) }
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let router = AlpacaServer::new(ServerInfo::default())
//!     .with_filter_wheel(0, DeviceMeta::new("Wheel", "6f1c…uuid"), Arc::new(Wheel))
//!     .router();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(listener, router).await
//! # }
//! ```
//!
//! Talking to one:
//!
//! ```no_run
//! use bigskies_alpaca::{client::AlpacaClient, devices::Telescope};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let scope = AlpacaClient::build("http://127.0.0.1:32323")?.telescope(0);
//! scope.slew_to_coordinates_async(5.5, -5.0).await?;
//! let slewing: bool = scope.checked().slewing().await?; // full ClientError here
//! # let _ = slewing; Ok(()) }
//! ```
pub mod error;
#[macro_use]
pub mod macros;
pub mod client;
pub mod devices;
pub mod discovery;
pub mod image;
pub mod management;
pub mod server;
pub mod types;
pub mod wire;

#[cfg(test)]
mod testing;

pub use async_trait::async_trait;
pub use error::{AlpacaError, AlpacaResult, ErrorCode};
