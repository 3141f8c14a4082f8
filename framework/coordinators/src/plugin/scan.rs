//! The periodic scan: exited plugins and missing directories become `failed`, plugins that
//! should run but have no live handle (a coordinator restart) are started again, and plugin
//! directories dropped into `plugin_dir` by hand are adopted.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use bigskies_core::bus::Bus;
use bigskies_core::error::HandlerError;
use bigskies_core::topics::Topics;

use super::archive;
use super::manifest::Manifest;
use super::runtime::RuntimeStatus;
use super::{NAME, PluginCoordinator, PluginRecord, db_error, plugin_columns, ui};

impl PluginCoordinator {
    /// One scan. UI elements of adopted plugins are registered when `link` is given.
    pub(super) async fn scan(&self, link: Option<&ui::Link>) -> Result<Value, HandlerError> {
        let _one = self.ops.lock().await;
        let rows: Vec<PluginRecord> =
            sqlx::query_as(concat!("SELECT ", plugin_columns!(), " FROM plugins"))
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
        let (mut failed, mut resumed, mut adopted) = (Vec::new(), Vec::new(), Vec::new());
        for rec in &rows {
            if !PathBuf::from(&rec.install_dir).is_dir() {
                if rec.status != "failed" {
                    self.set_status(
                        rec.guid,
                        "failed",
                        None,
                        Some("plugin directory is missing"),
                    )
                    .await?;
                    failed.push(rec.guid);
                }
                continue;
            }
            let live = match &rec.container_id {
                Some(h) => self
                    .runtime
                    .status(h)
                    .await
                    .unwrap_or(RuntimeStatus::Unknown),
                None => RuntimeStatus::Unknown,
            };
            match (rec.status.as_str(), live) {
                ("running", RuntimeStatus::Exited(code)) => {
                    let why = format!(
                        "plugin exited (code {})",
                        code.map_or("unknown".into(), |c| c.to_string())
                    );
                    self.set_status(rec.guid, "failed", None, Some(&why))
                        .await?;
                    failed.push(rec.guid);
                }
                ("running" | "installed" | "stopped", RuntimeStatus::Unknown)
                    if rec.desired == "running" =>
                {
                    match self.start_plugin(rec).await {
                        Ok(_) => resumed.push(rec.guid),
                        Err(_) => failed.push(rec.guid),
                    }
                }
                _ => {}
            }
            sqlx::query("UPDATE plugins SET last_verified = now() WHERE guid = $1")
                .bind(rec.guid)
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
        }
        let known: Vec<Uuid> = rows.iter().map(|r| r.guid).collect();
        for (id, dir) in self.strays(&known).await {
            match self.adopt(id, &dir, link).await {
                Ok(()) => adopted.push(id),
                Err(e) => warn!(plugin = %id, error = %e, "plugin directory not adopted"),
            }
        }
        Ok(json!({"checked": rows.len(), "failed": failed, "resumed": resumed, "adopted": adopted}))
    }

    /// Directories named by a GUID in `plugin_dir` that no record knows.
    async fn strays(&self, known: &[Uuid]) -> Vec<(Uuid, PathBuf)> {
        let dir = self.settings().plugin_dir;
        let known = known.to_vec();
        tokio::task::spawn_blocking(move || {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                return Vec::new();
            };
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| {
                    let id = Uuid::parse_str(e.file_name().to_str()?).ok()?;
                    (!known.contains(&id)).then(|| (id, e.path()))
                })
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    async fn adopt(
        &self,
        id: Uuid,
        dir: &std::path::Path,
        link: Option<&ui::Link>,
    ) -> Result<(), String> {
        let d = dir.to_owned();
        let (manifest, digest) = tokio::task::spawn_blocking(move || {
            let m = Manifest::load(&d).map_err(|e| e.to_string())?;
            let digest = archive::digest(&d).map_err(|e| e.to_string())?;
            Ok::<_, String>((m, digest))
        })
        .await
        .map_err(|e| e.to_string())??;
        if manifest.guid().ok() != Some(id) {
            return Err("the directory name is not the manifest's id".into());
        }
        if let Some(link) = link {
            link.register_elements(&manifest).await?;
        }
        let manifest_json = serde_json::to_value(&manifest).map_err(|e| e.to_string())?;
        sqlx::query(
            "INSERT INTO plugins (guid, name, version, status, desired, source, sha256, install_dir, manifest, runtime)
             VALUES ($1, $2, $3, 'installed', 'stopped', $4, $5, $4, $6, $7) ON CONFLICT (guid) DO NOTHING",
        )
        .bind(id)
        .bind(&manifest.name)
        .bind(&manifest.version)
        .bind(dir.to_string_lossy().as_ref())
        .bind(&digest)
        .bind(&manifest_json)
        .bind(self.runtime.name())
        .execute(&self.pool)
        .await
        .map_err(|e| e.to_string())?;
        info!(plugin = %id, name = %manifest.name, "plugin directory adopted");
        Ok(())
    }

    /// The coordinator's background work until `shutdown`: the scans (see
    /// [`PluginCoordinator::scan_periodically`]) and the plugin health ingest.
    pub async fn run(self: Arc<Self>, bus: Bus, topics: Topics, shutdown: CancellationToken) {
        tokio::join!(
            self.clone()
                .ingest_health(bus.clone(), topics.clone(), shutdown.clone()),
            self.scan_periodically(bus, topics, shutdown),
        );
    }

    /// Scan at start (which brings back plugins that should run) and every `scan_interval`.
    pub async fn scan_periodically(
        self: Arc<Self>,
        bus: Bus,
        topics: Topics,
        shutdown: CancellationToken,
    ) {
        loop {
            let settings = self.settings();
            let link = ui::Link {
                bus: bus.clone(),
                topics: topics.clone(),
                token: self.service_credential(),
                timeout: settings.rpc_timeout,
            };
            let link = link.token.is_some().then_some(&link);
            match self.scan(link).await {
                Ok(report) => tracing::debug!(coordinator = NAME, %report, "plugin scan"),
                Err(e) => warn!(coordinator = NAME, error = %e, "plugin scan failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.reconfigured.notified() => {}
                _ = tokio::time::sleep(settings.scan_interval) => {}
            }
        }
    }
}
