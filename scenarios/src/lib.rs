//! Big Skies scenarios: everything needed to run the framework end to end without hardware.
//!
//! Crate map:
//!
//! - [`provision`] – the provisioning ladder (explicit URLs → Docker via testcontainers → the
//!   machine's services → private `postgres`/`mosquitto` processes → an error saying what to
//!   install), per-test databases and topic roots, a process-wide shared provision, and a
//!   restartable private Mosquitto for broker-restart tests.
//! - [`stack`] – one isolated deployment per scenario: database, topic root, simulator, an
//!   optional private broker, and every coordinator (in-process or as killable processes).
//! - [`scenario`] – the scenario file format (TOML steps), field matchers, the recording MQTT
//!   client and the step executor ([`scenario::Context`]), also used by Rust scenarios.
//! - [`runner`] – runs a suite in parallel with progress, a summary and JUnit XML.
//! - [`conform`] – the Alpaca conformance checker (`bigskies-scenarios conform URL`).
//! - [`suite`] – the shipped suite: the files under `scenarios/scenarios/` and the scenarios
//!   written in Rust.
//! - [`conform`] – the Alpaca conformance checker (`bigskies-scenarios conform URL`): the
//!   PROTOCOL.md checklists run over raw HTTP against any Alpaca server, with a per-device
//!   report of passes, issues and information.
//!
//! The binary `bigskies-scenarios` wraps these: `run` (the main job), `provision`, `conform`,
//! and `host` (runs a coordinator of the `bigskies` binary; the stack uses it for killable
//! processes).

pub mod conform;
pub mod provision;
pub mod runner;
pub mod scenario;
pub mod stack;
pub mod suite;
