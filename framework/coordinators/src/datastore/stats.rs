//! `pool/stats`: the pool's size and use.

use serde_json::{Value, json};

use super::DatastoreCoordinator;

/// A snapshot of the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStats {
    pub total: u32,
    pub idle: u32,
    pub acquired: u32,
    pub max: u32,
    pub min: u32,
}

impl PoolStats {
    /// The Go rule: near capacity when acquired ≥ max − 1 (and the pool is larger than one).
    pub fn near_capacity(&self) -> bool {
        self.max > 1 && self.acquired >= self.max - 1
    }

    pub fn to_json(&self) -> Value {
        json!({
            "total_conns": self.total,
            "idle_conns": self.idle,
            "acquired_conns": self.acquired,
            "max_conns": self.max,
            "min_conns": self.min,
            "near_capacity": self.near_capacity(),
        })
    }
}

impl DatastoreCoordinator {
    pub fn stats(&self) -> PoolStats {
        let pool = self.pool();
        let s = self.settings();
        let total = pool.size();
        let idle = u32::try_from(pool.num_idle())
            .unwrap_or(u32::MAX)
            .min(total);
        PoolStats {
            total,
            idle,
            acquired: total - idle,
            max: s.pool.max_connections,
            min: s.pool.min_connections,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_capacity_follows_the_go_rule() {
        let s = |acquired, max| PoolStats {
            total: acquired,
            idle: 0,
            acquired,
            max,
            min: 0,
        };
        assert!(!s(3, 5).near_capacity());
        assert!(s(4, 5).near_capacity());
        assert!(!s(1, 1).near_capacity());
    }
}
