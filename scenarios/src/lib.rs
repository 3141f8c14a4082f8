//! Big Skies scenarios: everything needed to run the framework end to end without hardware.
//!
//! Crate map:
//!
//! - [`provision`] – the provisioning ladder (explicit URLs → Docker via testcontainers → the
//!   machine's services → private `postgres`/`mosquitto` processes → an error saying what to
//!   install), per-test databases and topic roots, a process-wide shared provision, and a
//!   restartable private Mosquitto for broker-restart tests.
//!
//! The binary `bigskies-scenarios` wraps these (`bigskies-scenarios provision` provisions,
//! prints the URLs and waits for Ctrl-C).

pub mod provision;
