//! argon2id hashing off the async threads (in the bounded [`HashPool`]), the password policy,
//! and the dummy hash that makes an unknown user cost the same as a wrong password.

use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{SecurityError, SecurityResult};
use crate::hashpool::HashPool;
use crate::settings::{Argon2Settings, SecuritySettings};

/// Passwords nobody may choose (well-known defaults, including the Go framework's admin one).
const BLOCKLIST: [&str; 8] = [
    "bigskies_admin_2024",
    "password1234",
    "123456789012",
    "qwertyuiopas",
    "changeme1234",
    "administrator",
    "letmein12345",
    "passwordpassword",
];

fn argon2(p: Argon2Settings) -> SecurityResult<Argon2<'static>> {
    let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None)
        .map_err(|e| SecurityError::Config(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hash with `params` (blocking, and allocating its own memory; [`Passwords`] uses the pool).
pub fn hash_blocking(password: &[u8], params: Argon2Settings) -> SecurityResult<String> {
    let hash = argon2(params)?
        .hash_password(password)
        .map_err(|e| SecurityError::Crypto(e.to_string()))?;
    Ok(hash.to_string())
}

/// Verify against a PHC string (its own parameters are used). Malformed hashes verify false.
pub fn verify_blocking(password: &[u8], phc: &str) -> bool {
    Argon2::default().verify_password(password, phc).is_ok()
}

/// Does the PHC string use other parameters than `params` (so it should be re-hashed)?
pub fn needs_rehash(phc: &str, params: Argon2Settings) -> bool {
    let expected = format!(
        "$argon2id$v=19$m={},t={},p={}$",
        params.memory_kib, params.iterations, params.parallelism
    );
    !phc.starts_with(&expected)
}

/// Check a new password against the policy.
pub fn check_policy(password: &str, username: &str, s: &SecuritySettings) -> SecurityResult<()> {
    let chars = password.chars().count();
    if chars < s.password_min_length {
        return Err(SecurityError::invalid(format!(
            "password must be at least {} characters",
            s.password_min_length
        )));
    }
    if password.len() > s.password_max_length {
        return Err(SecurityError::invalid(format!(
            "password must be at most {} bytes",
            s.password_max_length
        )));
    }
    if password.chars().any(char::is_control) {
        return Err(SecurityError::invalid(
            "password must not contain control characters",
        ));
    }
    let lower = password.to_lowercase();
    if !username.is_empty() && lower.contains(&username.to_lowercase()) {
        return Err(SecurityError::invalid(
            "password must not contain the username",
        ));
    }
    let mut distinct: Vec<char> = password.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 5 || BLOCKLIST.contains(&lower.as_str()) {
        return Err(SecurityError::invalid("password is too easy to guess"));
    }
    Ok(())
}

/// A dummy hash and the parameters it was made with.
type DummyHash = (Argon2Settings, Arc<str>);

/// Password hashing with the current parameters, run in a [`HashPool`] (the process-wide one
/// unless given another).
#[derive(Clone, Debug)]
pub struct Passwords {
    pool: HashPool,
    /// A hash of a random password at the current parameters; verified against for unknown users.
    dummy: Arc<Mutex<Option<DummyHash>>>,
}

impl Default for Passwords {
    fn default() -> Self {
        Self::with_pool(HashPool::global())
    }
}

impl Passwords {
    pub fn with_pool(pool: HashPool) -> Self {
        Self {
            pool,
            dummy: Arc::default(),
        }
    }

    pub fn pool(&self) -> &HashPool {
        &self.pool
    }

    /// Refused with [`SecurityError::Busy`] when the pool is full.
    pub async fn hash(&self, password: &str, params: Argon2Settings) -> SecurityResult<String> {
        self.pool.hash(password.as_bytes().to_vec(), params).await
    }

    /// `Ok(false)` for a wrong password or a malformed hash; [`SecurityError::Busy`] when the
    /// pool is full.
    pub async fn verify(&self, password: &str, phc: &str) -> SecurityResult<bool> {
        self.pool
            .verify(password.as_bytes().to_vec(), phc.to_owned())
            .await
    }

    /// Spend the same work as a real verification, and fail. Only a full pool is an error.
    pub async fn verify_dummy(&self, password: &str, params: Argon2Settings) -> SecurityResult<()> {
        let phc = match self.dummy_hash(params).await {
            Ok(h) => h,
            Err(e @ SecurityError::Busy(_)) => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "no dummy hash; timing of failed logins may differ");
                return Ok(());
            }
        };
        self.verify(password, &phc).await.map(drop)
    }

    async fn dummy_hash(&self, params: Argon2Settings) -> SecurityResult<Arc<str>> {
        if let Some((p, h)) = self
            .dummy
            .lock()
            .map_err(|_| SecurityError::Crypto("dummy hash lock poisoned".into()))?
            .as_ref()
            && *p == params
        {
            return Ok(h.clone());
        }
        let random: [u8; 24] = rand::random();
        let h: Arc<str> = self.hash(&hex::encode(random), params).await?.into();
        if let Ok(mut g) = self.dummy.lock() {
            *g = Some((params, h.clone()));
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: Argon2Settings = Argon2Settings {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn hashes_verify_and_carry_their_parameters() {
        let h = hash_blocking(b"a long passphrase", CHEAP).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{h}");
        assert!(verify_blocking(b"a long passphrase", &h));
        assert!(!verify_blocking(b"a long passphrasf", &h));
        assert!(!verify_blocking(b"x", "not a hash"));
        assert!(!needs_rehash(&h, CHEAP));
        assert!(needs_rehash(&h, Argon2Settings::default()));
    }

    #[test]
    fn policy() {
        let s = SecuritySettings::default();
        assert!(check_policy("correct horse battery", "alice", &s).is_ok());
        assert!(check_policy("short", "alice", &s).is_err());
        assert!(check_policy("my-alice-password", "alice", &s).is_err());
        assert!(check_policy("aaaaaaaaaaaaaaaa", "bob", &s).is_err());
        assert!(check_policy("bigskies_admin_2024", "bob", &s).is_err());
        assert!(check_policy(&"ab1cd2ef3".repeat(200), "bob", &s).is_err());
        assert!(check_policy("tab\there is bad", "bob", &s).is_err());
    }

    #[tokio::test]
    async fn dummy_verification_fails_and_is_cached() {
        let p = Passwords::with_pool(HashPool::new(1, 4));
        p.verify_dummy("anything", CHEAP).await.unwrap();
        let first = p.dummy.lock().unwrap().clone().unwrap().1;
        p.verify_dummy("anything", CHEAP).await.unwrap();
        assert_eq!(p.dummy.lock().unwrap().clone().unwrap().1, first);
    }
}
