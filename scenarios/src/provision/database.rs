//! Per-test isolation: a fresh database per test and a unique MQTT topic root per test.

use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};

use super::error::ProvisionError;
use super::options::{redact_url, with_database};

/// How long creating or dropping a test database may take before we give up.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);

/// How long `Drop` blocks a current-thread runtime waiting for `DROP DATABASE`.
const CURRENT_THREAD_DROP_WAIT: Duration = Duration::from_secs(5);

/// SQLSTATE `object_in_use`.
const OBJECT_IN_USE: &str = "55006";

/// A topic root no other test uses: `bst-<12 hex digits>` (48 random bits).
pub fn unique_topic_root() -> String {
    format!("bst-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A database created for one test, dropped again when this value is dropped.
///
/// Dropping is reliable and synchronous: `Drop` runs `DROP DATABASE .. WITH (FORCE)` (which
/// also ends connections still open in [`pool`](Self::pool)) on a helper thread with its own
/// small runtime and waits for it, so it works at the end of any test, in any runtime flavour,
/// even while unwinding from a failed assertion. It blocks the current thread for the few
/// milliseconds the drop takes. [`cleanup`](Self::cleanup) does the same asynchronously and
/// reports errors instead of logging them. Requires PostgreSQL 13 or newer.
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
    pool: PgPool,
    dropped: bool,
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase")
            .field("name", &self.name)
            .field("url", &redact_url(&self.url))
            .finish()
    }
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn admin_connection(admin_url: &str) -> Result<PgConnection, ProvisionError> {
    match tokio::time::timeout(ADMIN_TIMEOUT, PgConnection::connect(admin_url)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(source)) => Err(ProvisionError::database(
            format!("connecting to {}", redact_url(admin_url)),
            source,
        )),
        Err(_) => Err(ProvisionError::Process {
            what: format!("connecting to {}", redact_url(admin_url)),
            reason: format!("no answer within {ADMIN_TIMEOUT:?}"),
        }),
    }
}

async fn drop_database(admin_url: &str, name: &str) -> Result<(), ProvisionError> {
    let mut admin = admin_connection(admin_url).await?;
    let sql = format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_identifier(name)
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut admin)
        .await
        .map_err(|source| ProvisionError::database(format!("dropping database {name}"), source))?;
    let _ = admin.close().await;
    Ok(())
}

impl TestDatabase {
    /// Creates a uniquely named database (`bst_<32 hex digits>`) through `admin_url`, whose
    /// user must be allowed to create databases, and connects a small pool to it.
    pub async fn create(admin_url: &str) -> Result<Self, ProvisionError> {
        let name = format!("bst_{}", uuid::Uuid::new_v4().simple());
        let url =
            with_database(admin_url, &name).map_err(|reason| ProvisionError::InvalidSetting {
                var: "database_url",
                value: redact_url(admin_url),
                reason,
            })?;
        let mut admin = admin_connection(admin_url).await?;
        let sql = format!("CREATE DATABASE {}", quote_identifier(&name));
        let mut attempt = 0;
        loop {
            attempt += 1;
            match sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut admin)
                .await
            {
                Ok(_) => break,
                // "source database template1 is being accessed by other users": someone is
                // briefly connected to the template (another harness, psql); it passes.
                Err(sqlx::Error::Database(error))
                    if error.code().as_deref() == Some(OBJECT_IN_USE) && attempt < 10 =>
                {
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                Err(source) => {
                    return Err(ProvisionError::database(
                        format!("creating database {name}"),
                        source,
                    ));
                }
            }
        }
        let _ = admin.close().await;

        let pool = PgPoolOptions::new()
            .max_connections(5)
            .acquire_timeout(ADMIN_TIMEOUT)
            .connect(&url)
            .await;
        let pool = match pool {
            Ok(pool) => pool,
            Err(source) => {
                // Do not leave the database behind when we cannot hand it out.
                let _ = drop_database(admin_url, &name).await;
                return Err(ProvisionError::database(
                    format!("connecting to new database {name}"),
                    source,
                ));
            }
        };
        tracing::debug!(database = %name, "created test database");
        Ok(Self {
            name,
            url,
            admin_url: admin_url.to_owned(),
            pool,
            dropped: false,
        })
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL for the database (same server and user as the provisioned one).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A pool connected to the database (at most 5 connections); clones share it.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool and drops the database now, reporting any error.
    pub async fn cleanup(mut self) -> Result<(), ProvisionError> {
        self.dropped = true;
        self.pool.close().await;
        drop_database(&self.admin_url, &self.name).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        self.dropped = true;
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Our own thread and runtime: `Drop` cannot await, the caller's runtime may be a
        // current-thread one that we are blocking right now, or already shutting down.
        let worker = std::thread::Builder::new()
            .name("bst-drop-database".to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|source| ProvisionError::io("building a runtime", source))?;
                runtime.block_on(drop_database(&admin_url, &name))
            });
        // Waiting must not stall the caller's runtime: `DROP DATABASE` waits for every backend
        // of the database, and a backend still in its SCRAM exchange with a pool of that runtime
        // only ends when the pool's task runs (or after the server's 60 s
        // `authentication_timeout`). On a multi-thread runtime, hand this worker's other tasks
        // to another thread while we wait; a current-thread runtime cannot run them while we
        // block, so wait a bounded time there and let the helper finish on its own after.
        let flavor = tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor());
        let join = |handle: std::thread::JoinHandle<Result<(), ProvisionError>>| match flavor {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                tokio::task::block_in_place(|| handle.join()).map(Some)
            }
            Ok(_) => {
                let deadline = std::time::Instant::now() + CURRENT_THREAD_DROP_WAIT;
                while !handle.is_finished() && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                if handle.is_finished() {
                    handle.join().map(Some)
                } else {
                    Ok(None)
                }
            }
            Err(_) => handle.join().map(Some),
        };
        let outcome = match worker {
            Ok(handle) => match join(handle) {
                Ok(None) => {
                    tracing::warn!(
                        database = %self.name,
                        "dropping the test database is taking long; it goes on in the background"
                    );
                    return;
                }
                Ok(Some(result)) => result,
                Err(_) => Err(ProvisionError::Process {
                    what: "dropping a test database".to_owned(),
                    reason: "the helper thread panicked".to_owned(),
                }),
            },
            Err(source) => Err(ProvisionError::io("spawning a helper thread", source)),
        };
        match outcome {
            Ok(()) => tracing::debug!(database = %self.name, "dropped test database"),
            Err(error) => {
                tracing::warn!(database = %self.name, %error, "could not drop test database")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_roots_are_unique_and_short() {
        let a = unique_topic_root();
        let b = unique_topic_root();
        assert_ne!(a, b);
        assert!(a.starts_with("bst-") && a.len() == 16, "{a}");
        assert!(a[4..].chars().all(|c| c.is_ascii_hexdigit()), "{a}");
    }

    #[test]
    fn identifiers_are_quoted_safely() {
        assert_eq!(quote_identifier("bst_1"), "\"bst_1\"");
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }
}
