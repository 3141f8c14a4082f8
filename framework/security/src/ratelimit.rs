//! Token buckets in front of `auth/login`: one per source (the client's private reply topic),
//! one per username tried, and one for the whole process.
//!
//! A login costs an argon2 verification whether it succeeds or not, and needs no credential, so
//! it is the cheapest way to make the server work. The hashing pool bounds the memory; these
//! buckets bound how often one client, or everyone together, may ask, and they refuse before
//! the database or the hasher is touched. An attempt takes a token from all three buckets or
//! from none, so a refused attempt does not drain the other two.
//!
//! Time is [`tokio::time::Instant`], so tests run with paused time.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::time::Instant;

use crate::error::{SecurityError, SecurityResult};

/// Keys kept per map before idle (full) buckets are dropped. Growth is bounded anyway: a new
/// key needs a token from the global bucket.
const MAX_KEYS: usize = 10_000;

/// One bucket's size and refill.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Attempts allowed at once after a quiet spell.
    pub burst: u32,
    /// Attempts regained per minute.
    pub per_minute: u32,
}

impl Rate {
    fn per_second(self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }
}

/// The three login limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoginLimits {
    pub per_source: Rate,
    pub per_user: Rate,
    pub global: Rate,
}

impl Default for LoginLimits {
    /// Generous for people and scripts logging in, tight for a flood: one client or one
    /// username gets 20 attempts at once and one a second after that; everyone together 100 at
    /// once and 20 a second (about what two cores verify at the default argon2 cost).
    fn default() -> Self {
        Self {
            per_source: Rate {
                burst: 20,
                per_minute: 60,
            },
            per_user: Rate {
                burst: 20,
                per_minute: 60,
            },
            global: Rate {
                burst: 100,
                per_minute: 1200,
            },
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: f64::from(rate.burst),
            at: now,
        }
    }

    /// The level now, without taking anything.
    fn level(&self, rate: Rate, now: Instant) -> f64 {
        let gained = now.saturating_duration_since(self.at).as_secs_f64() * rate.per_second();
        (self.tokens + gained).min(f64::from(rate.burst))
    }

    fn take(&mut self, rate: Rate, now: Instant) {
        self.tokens = self.level(rate, now) - 1.0;
        self.at = now;
    }

    /// Seconds until one token is back.
    fn wait(&self, rate: Rate, now: Instant) -> u64 {
        let missing = 1.0 - self.level(rate, now);
        if rate.per_minute == 0 {
            return 60;
        }
        (missing / rate.per_second()).ceil().max(1.0) as u64
    }
}

#[derive(Debug)]
struct State {
    global: Bucket,
    sources: HashMap<String, Bucket>,
    users: HashMap<String, Bucket>,
}

/// The login buckets of one process.
#[derive(Debug)]
pub struct LoginLimiter {
    state: Mutex<State>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl LoginLimiter {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                global: Bucket {
                    tokens: f64::INFINITY,
                    at: Instant::now(),
                },
                sources: HashMap::new(),
                users: HashMap::new(),
            }),
        }
    }

    /// Take one attempt for `source` and `username` under `limits`, or say why not (as
    /// [`SecurityError::Busy`], which clients see as `unavailable`).
    pub fn check(&self, limits: LoginLimits, source: &str, username: &str) -> SecurityResult<()> {
        let now = Instant::now();
        let mut st = self
            .state
            .lock()
            .map_err(|_| SecurityError::Crypto("login limiter lock poisoned".into()))?;
        let st = &mut *st;
        if st.global.level(limits.global, now) < 1.0 {
            let wait = st.global.wait(limits.global, now);
            return Err(SecurityError::Busy(format!(
                "too many logins on this server, try again in {wait} s"
            )));
        }
        let source_bucket = *st
            .sources
            .get(source)
            .unwrap_or(&Bucket::full(limits.per_source, now));
        if source_bucket.level(limits.per_source, now) < 1.0 {
            let wait = source_bucket.wait(limits.per_source, now);
            return Err(SecurityError::Busy(format!(
                "too many logins from this client, try again in {wait} s"
            )));
        }
        // Usernames are compared as the database does (exactly), but bounded in length so a
        // key cannot be made huge.
        let user_key: String = username.chars().take(64).collect();
        let user_bucket = *st
            .users
            .get(&user_key)
            .unwrap_or(&Bucket::full(limits.per_user, now));
        if user_bucket.level(limits.per_user, now) < 1.0 {
            let wait = user_bucket.wait(limits.per_user, now);
            return Err(SecurityError::Busy(format!(
                "too many logins for this user, try again in {wait} s"
            )));
        }
        st.global.take(limits.global, now);
        take(
            &mut st.sources,
            source.to_owned(),
            source_bucket,
            limits.per_source,
            now,
        );
        take(&mut st.users, user_key, user_bucket, limits.per_user, now);
        Ok(())
    }
}

fn take(map: &mut HashMap<String, Bucket>, key: String, mut b: Bucket, rate: Rate, now: Instant) {
    if map.len() >= MAX_KEYS && !map.contains_key(&key) {
        // A full bucket is the same as no bucket: forget those.
        map.retain(|_, b| b.level(rate, now) < f64::from(rate.burst));
    }
    b.take(rate, now);
    map.insert(key, b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const LIMITS: LoginLimits = LoginLimits {
        per_source: Rate {
            burst: 3,
            per_minute: 60,
        },
        per_user: Rate {
            burst: 5,
            per_minute: 30,
        },
        global: Rate {
            burst: 8,
            per_minute: 600,
        },
    };

    fn busy(r: SecurityResult<()>) -> String {
        match r {
            Err(SecurityError::Busy(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_bucket_refuses_on_its_own_and_refills_with_time() {
        let l = LoginLimiter::new();
        for _ in 0..3 {
            l.check(LIMITS, "client-a", "alice").unwrap();
        }
        let m = busy(l.check(LIMITS, "client-a", "bob"));
        assert!(m.contains("from this client"), "{m}");
        // Another client may still try alice, until alice's own bucket (5) is empty.
        l.check(LIMITS, "client-b", "alice").unwrap();
        l.check(LIMITS, "client-c", "alice").unwrap();
        let m = busy(l.check(LIMITS, "client-d", "alice"));
        assert!(m.contains("for this user"), "{m}");
        // A refused attempt took nothing: client-d still has its whole burst.
        for u in ["u1", "u2", "u3"] {
            l.check(LIMITS, "client-d", u).unwrap();
        }
        // 8 taken in all: the global bucket is empty for everybody.
        let m = busy(l.check(LIMITS, "client-e", "carol"));
        assert!(m.contains("on this server"), "{m}");
        // 10 a second globally, 1 a second per client, one every 2 s per user.
        tokio::time::advance(Duration::from_secs(1)).await;
        l.check(LIMITS, "client-a", "dave").unwrap();
        busy(l.check(LIMITS, "client-a", "erin"));
        busy(l.check(LIMITS, "client-f", "alice"));
        tokio::time::advance(Duration::from_secs(1)).await;
        l.check(LIMITS, "client-f", "alice").unwrap();
    }
}
