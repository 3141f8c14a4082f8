//! Security engines (in progress).
