//! End-to-end tests of the simulator over real sockets (port 0), one test binary so the
//! suite links once.
//!
//! * [`members`]: every member of every device type, driven from the protocol crate's
//!   member tables through its client.
//! * [`conformance`]: the ConformU protocol checklist (PROTOCOL.md §11) and per-device rules.
//! * [`motion`]: motion against the stepped clock, driven through the control API.
//! * [`faults`]: every fault kind, seen from a client.
//! * [`independent_client`]: the `ascom-alpaca` crate reads and drives every device type.
//! * [`binary`]: the `alpaca-simulator` executable (exit codes, discovery, signals).
//! * [`slow_clients`]: header read timeout and connection cap against slow clients.
mod binary;
mod common;
mod conformance;
mod faults;
mod independent_client;
mod members;
mod motion;
mod slow_clients;
