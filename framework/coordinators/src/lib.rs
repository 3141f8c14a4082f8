//! The Big Skies coordinators: one module per coordinator, one file per operation family.
//!
//! * [`security`]: accounts, roles, groups, permissions, tokens, API keys and certificates on
//!   the Go security topics, plus the operations the Go version lacked.

pub mod security;
