//! Coordinators (in progress).
