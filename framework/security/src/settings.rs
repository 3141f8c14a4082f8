//! Security settings: tunables from the `security-coordinator` configuration rows, and the two
//! start-up secrets (JWT signing key, first administrator password) from the environment or a
//! file. Secrets never come from source code or migrations, and never appear in `Debug` output.
//!
//! The environment is read through a lookup function (`|name| std::env::var(name).ok()` in a
//! binary, a map in tests) so nothing mutates process-wide state.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use bigskies_core::config::CoordinatorConfig;

use crate::error::{SecurityError, SecurityResult};
use crate::ratelimit::{LoginLimits, Rate};

/// Environment variable holding the JWT signing secret (at least 32 bytes).
pub const ENV_JWT_SECRET: &str = "BIGSKIES_JWT_SECRET";
/// Environment variable naming a file that holds the JWT signing secret.
pub const ENV_JWT_SECRET_FILE: &str = "BIGSKIES_JWT_SECRET_FILE";
/// Environment variable holding the first administrator's password.
pub const ENV_ADMIN_PASSWORD: &str = "BIGSKIES_ADMIN_PASSWORD";
/// Environment variable naming a file that holds the first administrator's password.
pub const ENV_ADMIN_PASSWORD_FILE: &str = "BIGSKIES_ADMIN_PASSWORD_FILE";
/// Secret configuration row that may hold the JWT secret instead of the environment.
pub const CONFIG_JWT_SECRET: &str = "jwt_secret";
/// The coordinator whose configuration rows hold these settings.
pub const COORDINATOR: &str = "security";
/// The JWT issuer, as in the Go framework.
pub const ISSUER: &str = "bigskies-security";
/// Shortest accepted JWT secret.
pub const MIN_SECRET_LEN: usize = 32;

/// argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Settings {
    /// OWASP's minimum recommendation and the argon2 crate's default.
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Every tunable of the security engines.
#[derive(Clone, Debug, PartialEq)]
pub struct SecuritySettings {
    pub issuer: String,
    /// The `aud` every access token carries and every verifier demands.
    pub audience: String,
    pub token_duration: Duration,
    /// Clock-skew allowance for `exp` and `nbf`.
    pub leeway: Duration,
    pub max_failed_logins: u32,
    pub lockout_duration: Duration,
    pub password_min_length: usize,
    pub password_max_length: usize,
    pub argon2: Argon2Settings,
    /// How long a user's roles and grants are trusted without a change event.
    pub permission_cache_ttl: Duration,
    /// How long a resolved API key is trusted without a revocation event.
    pub api_key_cache_ttl: Duration,
    pub api_key_max_lifetime: Duration,
    pub cert_validity: Duration,
    /// Certificates closer than this to expiry make health degraded and are renewed.
    pub cert_renew_before: Duration,
    /// Answer `auth/login` on the Go shared response topic when the request names no private
    /// reply topic. Off by default: the token would be published where every reader of the
    /// topic sees it. Turn on (`go_shared_login_replies`) only where Go clients must be served.
    /// Token refreshes and API keys are never published there.
    pub go_shared_login_replies: bool,
    /// How often `auth/login` may be tried, per client, per username and in all.
    pub login_limits: LoginLimits,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        Self {
            issuer: ISSUER.into(),
            audience: "bigskies".into(),
            token_duration: Duration::from_secs(3600),
            leeway: Duration::from_secs(5),
            max_failed_logins: 5,
            lockout_duration: Duration::from_secs(900),
            password_min_length: 12,
            password_max_length: 1024,
            argon2: Argon2Settings::default(),
            permission_cache_ttl: Duration::from_secs(60),
            api_key_cache_ttl: Duration::from_secs(60),
            api_key_max_lifetime: Duration::from_secs(365 * 86_400),
            cert_validity: Duration::from_secs(365 * 86_400),
            cert_renew_before: Duration::from_secs(30 * 86_400),
            go_shared_login_replies: false,
            login_limits: LoginLimits::default(),
        }
    }
}

fn positive_u32(cfg: &CoordinatorConfig, key: &str, default: u32, min: u32) -> SecurityResult<u32> {
    let v = cfg
        .int(key, i64::from(default))
        .map_err(|e| SecurityError::Config(e.to_string()))?;
    u32::try_from(v).ok().filter(|v| *v >= min).ok_or_else(|| {
        SecurityError::Config(format!(
            "{key} must be an integer of at least {min}, got {v}"
        ))
    })
}

fn duration(
    cfg: &CoordinatorConfig,
    key: &str,
    default: Duration,
    min: Duration,
) -> SecurityResult<Duration> {
    let d = cfg
        .duration(key, default)
        .map_err(|e| SecurityError::Config(e.to_string()))?;
    if d < min {
        return Err(SecurityError::Config(format!(
            "{key} must be at least {min:?}, got {d:?}"
        )));
    }
    Ok(d)
}

/// `<prefix>_burst` and `<prefix>_per_minute`.
fn rate(cfg: &CoordinatorConfig, prefix: &str, default: Rate) -> SecurityResult<Rate> {
    Ok(Rate {
        burst: positive_u32(cfg, &format!("{prefix}_burst"), default.burst, 1)?,
        per_minute: positive_u32(cfg, &format!("{prefix}_per_minute"), default.per_minute, 1)?,
    })
}

impl SecuritySettings {
    /// Read the settings from the `security-coordinator` rows; missing keys keep their defaults,
    /// and every problem is reported, not silently replaced.
    pub fn from_config(cfg: &CoordinatorConfig) -> SecurityResult<Self> {
        let d = Self::default();
        let cfg_err = |e: bigskies_core::config::ConfigError| SecurityError::Config(e.to_string());
        let s = Self {
            issuer: d.issuer.clone(),
            audience: cfg.string("token_audience", &d.audience).map_err(cfg_err)?,
            token_duration: duration(
                cfg,
                "token_duration",
                d.token_duration,
                Duration::from_secs(1),
            )?,
            leeway: duration(cfg, "token_leeway", d.leeway, Duration::ZERO)?,
            max_failed_logins: positive_u32(cfg, "max_failed_logins", d.max_failed_logins, 1)?,
            lockout_duration: duration(
                cfg,
                "lockout_duration",
                d.lockout_duration,
                Duration::ZERO,
            )?,
            password_min_length: positive_u32(cfg, "password_min_length", 12, 8)? as usize,
            password_max_length: d.password_max_length,
            argon2: Argon2Settings {
                memory_kib: positive_u32(cfg, "argon2_memory_kib", d.argon2.memory_kib, 8)?,
                iterations: positive_u32(cfg, "argon2_iterations", d.argon2.iterations, 1)?,
                parallelism: positive_u32(cfg, "argon2_parallelism", d.argon2.parallelism, 1)?,
            },
            permission_cache_ttl: duration(
                cfg,
                "permission_cache_ttl",
                d.permission_cache_ttl,
                Duration::ZERO,
            )?,
            api_key_cache_ttl: duration(
                cfg,
                "api_key_cache_ttl",
                d.api_key_cache_ttl,
                Duration::ZERO,
            )?,
            api_key_max_lifetime: duration(
                cfg,
                "api_key_max_lifetime",
                d.api_key_max_lifetime,
                Duration::from_secs(60),
            )?,
            cert_validity: duration(
                cfg,
                "cert_validity",
                d.cert_validity,
                Duration::from_secs(86_400),
            )?,
            cert_renew_before: duration(
                cfg,
                "cert_renew_before",
                d.cert_renew_before,
                Duration::ZERO,
            )?,
            go_shared_login_replies: cfg
                .bool("go_shared_login_replies", d.go_shared_login_replies)
                .map_err(cfg_err)?,
            login_limits: LoginLimits {
                per_source: rate(cfg, "login_source", d.login_limits.per_source)?,
                per_user: rate(cfg, "login_user", d.login_limits.per_user)?,
                global: rate(cfg, "login_global", d.login_limits.global)?,
            },
        };
        if s.audience.is_empty() {
            return Err(SecurityError::Config(
                "token_audience must not be empty".into(),
            ));
        }
        if s.argon2.memory_kib < 8 * s.argon2.parallelism {
            return Err(SecurityError::Config(
                "argon2_memory_kib must be at least 8 x argon2_parallelism".into(),
            ));
        }
        Ok(s)
    }
}

/// Settings shared by all engines and swapped on a configuration reload.
#[derive(Clone, Debug)]
pub struct SettingsHandle(Arc<RwLock<Arc<SecuritySettings>>>);

impl SettingsHandle {
    pub fn new(settings: SecuritySettings) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(settings))))
    }

    /// The current settings (a cheap snapshot).
    pub fn get(&self) -> Arc<SecuritySettings> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn replace(&self, settings: SecuritySettings) {
        let mut g = match self.0.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *g = Arc::new(settings);
    }
}

/// A secret byte string that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.0.len())
    }
}

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A value from `var`, or from the file named by `file_var` (trailing newline removed).
fn from_env_or_file(
    lookup: &dyn Fn(&str) -> Option<String>,
    var: &str,
    file_var: &str,
) -> SecurityResult<Option<Secret>> {
    if let Some(v) = lookup(var).filter(|v| !v.is_empty()) {
        return Ok(Some(Secret::new(v)));
    }
    let Some(path) = lookup(file_var).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let text = std::fs::read(&path)
        .map_err(|e| SecurityError::Config(format!("reading {file_var} ({path}): {e}")))?;
    let trimmed = text
        .strip_suffix(b"\r\n")
        .or_else(|| text.strip_suffix(b"\n"))
        .unwrap_or(&text);
    Ok(Some(Secret::new(trimmed.to_vec())))
}

/// The JWT signing secret: `BIGSKIES_JWT_SECRET`, else the file in `BIGSKIES_JWT_SECRET_FILE`,
/// else the secret configuration row `jwt_secret`. It must be at least 32 bytes.
pub fn jwt_secret(
    lookup: &dyn Fn(&str) -> Option<String>,
    cfg: Option<&CoordinatorConfig>,
) -> SecurityResult<Secret> {
    let secret = match from_env_or_file(lookup, ENV_JWT_SECRET, ENV_JWT_SECRET_FILE)? {
        Some(s) => s,
        None => {
            let row = cfg.and_then(|c| c.entries.get(CONFIG_JWT_SECRET));
            match row {
                Some(e) if e.secret => match e.value.as_str() {
                    Some(s) => Secret::new(s),
                    None => {
                        return Err(SecurityError::Config(
                            "jwt_secret row must be a string".into(),
                        ));
                    }
                },
                Some(_) => {
                    return Err(SecurityError::Config(
                        "jwt_secret row must be marked is_secret".into(),
                    ));
                }
                None => {
                    return Err(SecurityError::Config(format!(
                        "no JWT secret: set {ENV_JWT_SECRET} or {ENV_JWT_SECRET_FILE}"
                    )));
                }
            }
        }
    };
    check_secret(secret)
}

/// Refuse secrets shorter than [`MIN_SECRET_LEN`] bytes.
pub fn check_secret(secret: Secret) -> SecurityResult<Secret> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(SecurityError::Config(format!(
            "the JWT secret must be at least {MIN_SECRET_LEN} bytes, got {}",
            secret.len()
        )));
    }
    Ok(secret)
}

/// The first administrator's password, if one was given at start-up.
pub fn admin_password(lookup: &dyn Fn(&str) -> Option<String>) -> SecurityResult<Option<Secret>> {
    from_env_or_file(lookup, ENV_ADMIN_PASSWORD, ENV_ADMIN_PASSWORD_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bigskies_core::config::{ConfigEntry, ConfigType};
    use serde_json::json;
    use std::collections::HashMap;

    fn cfg(rows: &[(&str, serde_json::Value, ConfigType, bool)]) -> CoordinatorConfig {
        CoordinatorConfig {
            coordinator: "security".into(),
            entries: rows
                .iter()
                .map(|(k, v, t, s)| {
                    (
                        (*k).into(),
                        ConfigEntry {
                            value: v.clone(),
                            kind: *t,
                            secret: *s,
                            description: None,
                            seeded: false,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn settings_come_from_rows_and_bad_rows_are_reported() {
        let s = SecuritySettings::from_config(&cfg(&[
            ("token_duration", json!(120), ConfigType::Duration, false),
            ("max_failed_logins", json!(3), ConfigType::Int, false),
        ]))
        .unwrap();
        assert_eq!(s.token_duration, Duration::from_secs(120));
        assert_eq!(s.max_failed_logins, 3);
        assert_eq!(s.lockout_duration, Duration::from_secs(900));
        assert!(
            SecuritySettings::from_config(&cfg(&[(
                "max_failed_logins",
                json!(0),
                ConfigType::Int,
                false
            )]))
            .is_err()
        );
        assert!(
            SecuritySettings::from_config(&cfg(&[(
                "password_min_length",
                json!(4),
                ConfigType::Int,
                false
            )]))
            .is_err()
        );
    }

    #[test]
    fn jwt_secret_sources_and_length() {
        let env: HashMap<&str, String> = HashMap::from([(ENV_JWT_SECRET, "x".repeat(40))]);
        let lookup = |k: &str| env.get(k).cloned();
        assert_eq!(jwt_secret(&lookup, None).unwrap().len(), 40);
        let short: HashMap<&str, String> = HashMap::from([(ENV_JWT_SECRET, "short".to_owned())]);
        assert!(jwt_secret(&|k: &str| short.get(k).cloned(), None).is_err());
        assert!(
            jwt_secret(&|_: &str| None, None).is_err(),
            "no secret, no start"
        );
        let row = cfg(&[(
            CONFIG_JWT_SECRET,
            json!("y".repeat(32)),
            ConfigType::String,
            true,
        )]);
        assert_eq!(jwt_secret(&|_: &str| None, Some(&row)).unwrap().len(), 32);
        let public_row = cfg(&[(
            CONFIG_JWT_SECRET,
            json!("y".repeat(32)),
            ConfigType::String,
            false,
        )]);
        assert!(
            jwt_secret(&|_: &str| None, Some(&public_row)).is_err(),
            "a non-secret row is refused"
        );
    }

    #[test]
    fn secrets_come_from_files_and_never_print() {
        let dir = std::env::temp_dir().join(format!("bsk-secret-{}", uuid::Uuid::new_v4()));
        std::fs::write(&dir, "correct horse battery staple\n").unwrap();
        let path = dir.to_string_lossy().into_owned();
        let lookup = |k: &str| (k == ENV_ADMIN_PASSWORD_FILE).then(|| path.clone());
        let s = admin_password(&lookup).unwrap().unwrap();
        assert_eq!(s.expose(), b"correct horse battery staple");
        assert!(!format!("{s:?}").contains("horse"));
        std::fs::remove_file(&dir).unwrap();
    }
}
