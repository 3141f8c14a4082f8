//! Persistence of the device registry and the telescope pools.

use std::collections::BTreeMap;

use bigskies_alpaca::types::DeviceType;
use sqlx::PgPool;
use uuid::Uuid;

use crate::registry::{DeviceRecord, DeviceStats, LinkState, Role};

/// Reads and writes `ascom_registry` and `telescope_pools`.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Insert or update a device record (the engine decides what changes: a known UniqueID
    /// moves to a new address only through a confirmed move).
    pub async fn upsert_device(&self, d: &DeviceRecord) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO ascom_registry (unique_id, device_type, device_number, name, server_url, last_seen)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (unique_id) DO UPDATE SET device_type = EXCLUDED.device_type,
                 device_number = EXCLUDED.device_number, name = EXCLUDED.name,
                 server_url = EXCLUDED.server_url, last_seen = EXCLUDED.last_seen",
        )
        .bind(&d.unique_id)
        .bind(d.device_type.name())
        .bind(i32::try_from(d.device_number).unwrap_or(i32::MAX))
        .bind(&d.name)
        .bind(&d.server_url)
        .bind(d.last_seen)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Connected on the user's request: kept connected, across restarts too.
    pub async fn mark_connected(&self, unique_id: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE ascom_registry SET last_connected = now(), keep_connected = true
             WHERE unique_id = $1",
        )
        .bind(unique_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Disconnected on the user's request: no longer kept connected.
    pub async fn mark_disconnected(&self, unique_id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE ascom_registry SET keep_connected = false WHERE unique_id = $1")
            .bind(unique_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every known device, as disconnected records, each with whether the user wants it
    /// connected.
    pub async fn load_devices(&self) -> Result<Vec<(DeviceRecord, bool)>, sqlx::Error> {
        type Row = (
            String,
            String,
            i32,
            String,
            String,
            chrono::DateTime<chrono::Utc>,
            bool,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT unique_id, device_type, device_number, name, server_url, last_seen, keep_connected
             FROM ascom_registry ORDER BY unique_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(unique_id, t, n, name, server_url, last_seen, keep)| {
                let record = DeviceRecord {
                    unique_id,
                    device_type: DeviceType::from_name(&t)?,
                    device_number: u32::try_from(n).ok()?,
                    name,
                    server_url,
                    state: LinkState::Disconnected,
                    stats: DeviceStats::default(),
                    last_seen,
                };
                Some((record, keep))
            })
            .collect())
    }

    pub async fn assign(
        &self,
        telescope: Uuid,
        role: Role,
        unique_id: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO telescope_pools (telescope_id, role, unique_id) VALUES ($1, $2, $3)
             ON CONFLICT (telescope_id, role) DO UPDATE SET unique_id = EXCLUDED.unique_id, assigned_at = now()",
        )
        .bind(telescope)
        .bind(role.as_str())
        .bind(unique_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn unassign(&self, telescope: Uuid, role: Role) -> Result<bool, sqlx::Error> {
        let r = sqlx::query("DELETE FROM telescope_pools WHERE telescope_id = $1 AND role = $2")
            .bind(telescope)
            .bind(role.as_str())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Every pool: telescope → role → device UniqueID.
    pub async fn load_pools(&self) -> Result<BTreeMap<Uuid, BTreeMap<Role, String>>, sqlx::Error> {
        let rows: Vec<(Uuid, String, String)> =
            sqlx::query_as("SELECT telescope_id, role, unique_id FROM telescope_pools")
                .fetch_all(&self.pool)
                .await?;
        let mut pools: BTreeMap<Uuid, BTreeMap<Role, String>> = BTreeMap::new();
        for (t, role, id) in rows {
            if let Some(role) = Role::parse(&role) {
                pools.entry(t).or_default().insert(role, id);
            }
        }
        Ok(pools)
    }
}
