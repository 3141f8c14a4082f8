//! Coordinator configuration kept in PostgreSQL (`coordinator_config`, history by trigger).
//!
//! Values are JSON; `duration` values are seconds (integer or fractional), as in the Go
//! framework. Getters enforce the declared type; a missing key yields the caller's default.
//! Secret values never appear in `Debug` output or logs.
//!
//! A row is either *seeded* (a default the migrations wrote) or *operator-set* (written later by
//! anyone: an operator's SQL, [`ConfigStore::set`], the scenario harness); the database marks
//! each write (see the `config_source` migration). A setting resolves as: operator-set row >
//! a value given explicitly at start (the command line) > seeded row > built-in default. The
//! getters implement the outer three with their `default`; a coordinator that was given some
//! keys explicitly reads [`CoordinatorConfig::with_explicit`], which sets the seeded rows of
//! those keys aside, and passes the explicit values as the defaults.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use sqlx::migrate::Migrator;

/// The workspace's one migration set.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// The `config_type` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigType {
    String,
    Int,
    Bool,
    Float,
    Duration,
    Object,
}

impl ConfigType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Int => "int",
            Self::Bool => "bool",
            Self::Float => "float",
            Self::Duration => "duration",
            Self::Object => "object",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => Self::String,
            "int" => Self::Int,
            "bool" => Self::Bool,
            "float" => Self::Float,
            "duration" => Self::Duration,
            "object" => Self::Object,
            _ => return None,
        })
    }

    /// Does `v` fit this type?
    pub fn admits(self, v: &Value) -> bool {
        match self {
            Self::String => v.is_string(),
            Self::Int => v.is_i64() || v.is_u64(),
            Self::Bool => v.is_boolean(),
            Self::Float => v.is_number(),
            Self::Duration => v.as_f64().is_some_and(|s| s.is_finite() && s >= 0.0),
            Self::Object => v.is_object() || v.is_array(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {coordinator}/{key}: expected {expected}, found {found}")]
    WrongType {
        coordinator: String,
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error("config {coordinator}/{key}: value does not fit type {kind}")]
    InvalidValue {
        coordinator: String,
        key: String,
        kind: &'static str,
    },
    #[error("config row {coordinator}/{key} has unknown type {kind:?}")]
    UnknownType {
        coordinator: String,
        key: String,
        kind: String,
    },
    #[error("configuration database: {0}")]
    Database(#[from] sqlx::Error),
}

/// One configuration value.
#[derive(Clone, PartialEq)]
pub struct ConfigEntry {
    pub value: Value,
    pub kind: ConfigType,
    pub secret: bool,
    pub description: Option<String>,
    /// Written by a migration as a default, not by an operator since.
    pub seeded: bool,
}

impl std::fmt::Debug for ConfigEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: &dyn std::fmt::Debug = if self.secret {
            &"<secret>"
        } else {
            &self.value
        };
        f.debug_struct("ConfigEntry")
            .field("value", shown)
            .field("kind", &self.kind)
            .field("seeded", &self.seeded)
            .finish()
    }
}

/// All configuration of one coordinator, loaded at once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CoordinatorConfig {
    pub coordinator: String,
    pub entries: BTreeMap<String, ConfigEntry>,
}

impl CoordinatorConfig {
    /// This configuration for a coordinator given `keys` explicitly at start (on the command
    /// line): their seeded rows are set aside, so the explicit value, passed as the getter's
    /// default, beats a migration's default while an operator-set row still beats it.
    #[must_use]
    pub fn with_explicit(&self, keys: &[&str]) -> Self {
        let mut c = self.clone();
        c.entries
            .retain(|k, e| !(e.seeded && keys.contains(&k.as_str())));
        c
    }

    fn typed(
        &self,
        key: &str,
        kind: ConfigType,
        also: &[ConfigType],
    ) -> Result<Option<&Value>, ConfigError> {
        let Some(e) = self.entries.get(key) else {
            return Ok(None);
        };
        if e.kind != kind && !also.contains(&e.kind) {
            return Err(ConfigError::WrongType {
                coordinator: self.coordinator.clone(),
                key: key.to_owned(),
                expected: kind.as_str(),
                found: e.kind.as_str().to_owned(),
            });
        }
        if !kind.admits(&e.value) {
            return Err(ConfigError::InvalidValue {
                coordinator: self.coordinator.clone(),
                key: key.to_owned(),
                kind: kind.as_str(),
            });
        }
        Ok(Some(&e.value))
    }

    pub fn string(&self, key: &str, default: &str) -> Result<String, ConfigError> {
        Ok(self
            .typed(key, ConfigType::String, &[])?
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_owned())
    }

    pub fn int(&self, key: &str, default: i64) -> Result<i64, ConfigError> {
        Ok(self
            .typed(key, ConfigType::Int, &[])?
            .and_then(Value::as_i64)
            .unwrap_or(default))
    }

    pub fn bool(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        Ok(self
            .typed(key, ConfigType::Bool, &[])?
            .and_then(Value::as_bool)
            .unwrap_or(default))
    }

    pub fn float(&self, key: &str, default: f64) -> Result<f64, ConfigError> {
        Ok(self
            .typed(key, ConfigType::Float, &[ConfigType::Int])?
            .and_then(Value::as_f64)
            .unwrap_or(default))
    }

    /// A duration in seconds; `int` rows are accepted too, as in Go.
    pub fn duration(&self, key: &str, default: Duration) -> Result<Duration, ConfigError> {
        Ok(self
            .typed(key, ConfigType::Duration, &[ConfigType::Int])?
            .and_then(Value::as_f64)
            .map(Duration::from_secs_f64)
            .unwrap_or(default))
    }

    pub fn object(&self, key: &str) -> Result<Option<Value>, ConfigError> {
        Ok(self.typed(key, ConfigType::Object, &[])?.cloned())
    }
}

/// Reads and writes `coordinator_config`.
#[derive(Clone, Debug)]
pub struct ConfigStore {
    pool: PgPool,
}

/// The row name the Go framework uses for a coordinator: `<name>-coordinator`.
pub fn row_name(coordinator: &str) -> String {
    format!("{coordinator}-coordinator")
}

impl ConfigStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Load every row of `coordinator` (short name, e.g. `telescope`).
    pub async fn load(&self, coordinator: &str) -> Result<CoordinatorConfig, ConfigError> {
        let rows: Vec<(String, Value, String, bool, Option<String>, bool)> = sqlx::query_as(
            "SELECT config_key, config_value, config_type, is_secret, description, seeded
               FROM coordinator_config WHERE coordinator_name = $1",
        )
        .bind(row_name(coordinator))
        .fetch_all(&self.pool)
        .await?;
        let mut entries = BTreeMap::new();
        for (key, value, kind, secret, description, seeded) in rows {
            let kind = ConfigType::parse(&kind).ok_or_else(|| ConfigError::UnknownType {
                coordinator: coordinator.to_owned(),
                key: key.clone(),
                kind,
            })?;
            entries.insert(
                key,
                ConfigEntry {
                    value,
                    kind,
                    secret,
                    description,
                    seeded,
                },
            );
        }
        Ok(CoordinatorConfig {
            coordinator: coordinator.to_owned(),
            entries,
        })
    }

    /// Insert or change one value (operator-set from then on). The value must fit `kind`;
    /// history is kept by the trigger.
    pub async fn set(
        &self,
        coordinator: &str,
        key: &str,
        value: Value,
        kind: ConfigType,
        secret: bool,
        updated_by: Option<uuid::Uuid>,
    ) -> Result<(), ConfigError> {
        if !kind.admits(&value) {
            return Err(ConfigError::InvalidValue {
                coordinator: coordinator.to_owned(),
                key: key.to_owned(),
                kind: kind.as_str(),
            });
        }
        sqlx::query(
            "INSERT INTO coordinator_config (coordinator_name, config_key, config_value, config_type, is_secret, updated_by)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (coordinator_name, config_key) DO UPDATE
               SET config_value = EXCLUDED.config_value, config_type = EXCLUDED.config_type,
                   is_secret = EXCLUDED.is_secret, updated_by = EXCLUDED.updated_by",
        )
        .bind(row_name(coordinator))
        .bind(key)
        .bind(&value)
        .bind(kind.as_str())
        .bind(secret)
        .bind(updated_by)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(entries: &[(&str, Value, ConfigType, bool)]) -> CoordinatorConfig {
        seeded_cfg(
            &entries
                .iter()
                .map(|(k, v, t, s)| (*k, v.clone(), *t, *s, false))
                .collect::<Vec<_>>(),
        )
    }

    fn seeded_cfg(entries: &[(&str, Value, ConfigType, bool, bool)]) -> CoordinatorConfig {
        CoordinatorConfig {
            coordinator: "t".into(),
            entries: entries
                .iter()
                .map(|(k, v, t, s, seeded)| {
                    (
                        (*k).to_owned(),
                        ConfigEntry {
                            value: v.clone(),
                            kind: *t,
                            secret: *s,
                            description: None,
                            seeded: *seeded,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn typed_getters_and_defaults() {
        let c = cfg(&[
            ("interval", json!(5), ConfigType::Duration, false),
            ("half", json!(0.5), ConfigType::Duration, false),
            ("port", json!(1883), ConfigType::Int, false),
            ("name", json!("x"), ConfigType::String, false),
        ]);
        assert_eq!(
            c.duration("interval", Duration::ZERO).unwrap(),
            Duration::from_secs(5)
        );
        assert_eq!(
            c.duration("half", Duration::ZERO).unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(
            c.duration("missing", Duration::from_secs(9)).unwrap(),
            Duration::from_secs(9)
        );
        assert_eq!(
            c.duration("port", Duration::ZERO).unwrap(),
            Duration::from_secs(1883)
        );
        assert_eq!(c.int("port", 0).unwrap(), 1883);
        assert_eq!(c.string("name", "").unwrap(), "x");
        assert!(matches!(
            c.int("name", 0),
            Err(ConfigError::WrongType { .. })
        ));
    }

    #[test]
    fn mistyped_values_are_refused() {
        let c = cfg(&[("d", json!("soon"), ConfigType::Duration, false)]);
        assert!(matches!(
            c.duration("d", Duration::ZERO),
            Err(ConfigError::InvalidValue { .. })
        ));
        assert!(ConfigType::Duration.admits(&json!(1.5)));
        assert!(!ConfigType::Duration.admits(&json!(-1)));
    }

    #[test]
    fn operator_rows_beat_explicit_values_which_beat_seeded_rows() {
        let c = seeded_cfg(&[
            ("dir", json!("/seeded"), ConfigType::String, false, true),
            ("port", json!(2), ConfigType::Int, false, false),
            ("interval", json!(300), ConfigType::Duration, false, true),
        ]);
        let given = c.with_explicit(&["dir", "port"]);
        // Explicit beats seeded.
        assert_eq!(given.string("dir", "/flag").unwrap(), "/flag");
        // Operator-set beats explicit.
        assert_eq!(given.int("port", 1).unwrap(), 2);
        // Seeded beats the built-in default of a key not given explicitly.
        assert_eq!(
            given.duration("interval", Duration::ZERO).unwrap(),
            Duration::from_secs(300)
        );
        // Built-in default when nothing else is there.
        assert!(given.bool("missing", true).unwrap());
        // Without explicit keys, seeded rows apply as before.
        assert_eq!(c.string("dir", "/flag").unwrap(), "/seeded");
    }

    #[test]
    fn secrets_are_not_printed() {
        let c = cfg(&[("jwt_secret", json!("hunter2"), ConfigType::String, true)]);
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
