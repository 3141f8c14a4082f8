//! Migrations and credential validation for `bigskies coordinator bootstrap` and
//! `bigskies migrate`.

use std::path::Path;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use bigskies_core::config::MIGRATOR;
use bigskies_core::credentials::{CredentialsError, DbTarget, options_from_pgpass};

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("credentials: {0}")]
    Credentials(#[from] CredentialsError),
}

/// Apply every pending migration; returns the versions now applied. Idempotent.
pub async fn migrate(options: PgConnectOptions) -> Result<Vec<i64>, MigrateError> {
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(MigrateError::Connect)?;
    MIGRATOR.run(&pool).await?;
    let applied: Vec<(i64,)> =
        sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&pool)
            .await
            .map_err(MigrateError::Connect)?;
    pool.close().await;
    Ok(applied.into_iter().map(|(v,)| v).collect())
}

/// Load the credentials for `target` from the `.pgpass` at `path` and check they work.
pub async fn validate_pgpass(
    path: &Path,
    target: &DbTarget,
) -> Result<PgConnectOptions, MigrateError> {
    let options = options_from_pgpass(path, target)?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await
        .map_err(MigrateError::Connect)?;
    pool.close().await;
    Ok(options)
}
