//! The Big Skies coordinators: one module per coordinator, one file per operation family.
//!
//! * [`security`]: accounts, roles, groups, permissions, tokens, API keys and certificates on
//!   the Go security topics, plus the operations the Go version lacked.
//! * [`bootstrap`]: migrations and the retained credentials message.
//! * [`message`]: the health watcher: liveness, system summary, rates, health history.
//! * [`application`]: the persisted service registry.
//! * [`datastore`]: the shared pool, its settings and the database's health.
//! * [`plugin`]: plugins (manifests, verified installs, runtimes, scans).
//! * [`uielement`]: UI elements and their widget mappings per UI framework.
//! * [`telescope`]: telescope configurations, sites, Alpaca devices, mount control, sessions.

pub mod application;
pub mod bootstrap;
pub mod datastore;
pub mod message;
pub mod operations;
pub mod plugin;
pub mod security;
pub mod telescope;
pub mod uielement;
