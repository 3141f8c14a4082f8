//! Big Skies security engines.
//!
//! * [`settings`]: tunables from the `security-coordinator` rows; the JWT secret and the first
//!   administrator's password from the environment or a file (never from source).
//! * [`tokens`]: HS256 JWTs (algorithm pinned, every claim checked), persisted revocations
//!   mirrored in memory, refresh, cleanup.
//! * [`apikeys`]: random keys stored as SHA-256, with expiry, scopes and revocation.
//! * [`accounts`]: users, roles, groups, permissions, argon2id login with lockout, the first
//!   administrator, cached per-user grants.
//! * [`ratelimit`]: token buckets in front of `auth/login` (per client, per username, global).
//! * [`rbac`]: pure deny-first permission evaluation.
//! * [`password`]: argon2id off the async threads, the policy, the dummy hash.
//! * [`hashpool`]: the bounded process-wide argon2 pool (few workers, reused memory, a short
//!   queue, refusal beyond it).
//! * [`tls`] and [`acme`]: self-signed and ACME certificates, storage, renewal, expiry health.
//! * [`audit`]: the audit trail of every security decision.
//! * [`events`]: signed revocation and change events on the bus.
//! * [`authenticator`]: the [`bigskies_core::auth::Authenticator`] every coordinator uses.
//! * [`input`]: validation of network input before any query.

pub mod accounts;
pub mod acme;
pub mod apikeys;
pub mod audit;
pub mod authenticator;
pub mod error;
pub mod events;
pub mod hashpool;
pub mod input;
pub mod password;
pub mod ratelimit;
pub mod rbac;
pub mod settings;
pub mod tls;
pub mod tokens;

use sqlx::PgPool;

use bigskies_core::bus::Bus;
use bigskies_core::config::ConfigStore;
use bigskies_core::topics::Topics;

pub use accounts::AccountEngine;
pub use apikeys::ApiKeyEngine;
pub use audit::AuditLog;
pub use authenticator::SecurityAuthenticator;
pub use error::{SecurityError, SecurityResult};
pub use events::SecurityEvent;
pub use settings::{Secret, SecuritySettings, SettingsHandle};
pub use tls::TlsEngine;
pub use tokens::TokenEngine;

/// All engines over one pool and one settings handle. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SecurityEngines {
    pub settings: SettingsHandle,
    pub tokens: TokenEngine,
    pub accounts: AccountEngine,
    pub api_keys: ApiKeyEngine,
    pub audit: AuditLog,
    pub tls: TlsEngine,
}

impl SecurityEngines {
    /// Engines with explicit settings and secret.
    pub fn new(pool: PgPool, settings: SecuritySettings, secret: &Secret) -> Self {
        let settings = SettingsHandle::new(settings);
        let audit = AuditLog::new(pool.clone());
        let tokens = TokenEngine::new(secret, settings.clone(), pool.clone());
        let accounts = AccountEngine::new(pool.clone(), settings.clone(), audit.clone());
        let api_keys = ApiKeyEngine::new(
            pool.clone(),
            settings.clone(),
            tokens.clone(),
            audit.clone(),
        );
        let tls = TlsEngine::new(pool, settings.clone(), audit.clone());
        Self {
            settings,
            tokens,
            accounts,
            api_keys,
            audit,
            tls,
        }
    }

    /// Engines configured from the `security-coordinator` rows, with the JWT secret from
    /// `lookup` (the environment) or the secret `jwt_secret` row; revocations loaded.
    pub async fn from_database(
        pool: PgPool,
        lookup: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> SecurityResult<Self> {
        let cfg = ConfigStore::new(pool.clone())
            .load(settings::COORDINATOR)
            .await
            .map_err(|e| SecurityError::Config(e.to_string()))?;
        let s = SecuritySettings::from_config(&cfg)?;
        let secret = settings::jwt_secret(lookup, Some(&cfg))?;
        let engines = Self::new(pool, s, &secret);
        engines.tokens.load_revocations().await?;
        Ok(engines)
    }

    /// The authenticator over these engines.
    pub fn authenticator(&self) -> SecurityAuthenticator {
        SecurityAuthenticator::new(self.clone())
    }

    /// Sign and publish `event`; applies nothing locally (the caller's engines already changed).
    pub async fn broadcast(
        &self,
        bus: &Bus,
        topics: &Topics,
        event: &SecurityEvent,
    ) -> SecurityResult<()> {
        events::publish(
            bus,
            topics,
            &self.tokens,
            &self.settings.get().issuer,
            event,
        )
        .await
    }
}
