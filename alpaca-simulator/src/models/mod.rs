//! Pure device models: plain state + arithmetic against a [`SimTime`](crate::clock::SimTime).
//!
//! Models know nothing about HTTP or connections; the [`Shell`](crate::shell::Shell) wraps
//! each one with a clock and a connection state, and `crate::devices` exposes it over ASCOM.
pub mod astro;
pub mod camera;
pub mod dome;
pub mod filterwheel;
pub mod focuser;
pub mod rotator;
pub mod telescope;
