//! The Big Skies Alpaca simulator.
//!
//! * [`clock`]: simulated time (real, scaled or stepped); every model is evaluated against it.
//! * [`shell`]: model + clock + connection state; device trait impls go through it.
//! * [`models`]: the pure device models.
//! * [`devices`]: ASCOM device traits implemented for `Shell<Model>`; [`devices::ModelInfo`].
//! * [`config`]: TOML + CLI configuration, validation, stable UniqueIDs.
//! * [`faults`]: per-device fault injection (an axum middleware plus model hooks).
//! * [`control`]: the `/simulator/v1/...` control API (clock, faults, state, health).
//! * [`app`]: builds the device registry from config, wires the couplings, binds and runs.
pub mod app;
pub mod clock;
pub mod config;
pub mod control;
pub mod devices;
pub mod faults;
pub mod models;
pub mod shell;
