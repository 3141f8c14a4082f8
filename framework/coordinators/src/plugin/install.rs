//! `plugin/install` (Go `cmd/install`): verify, stage, place, record, register UI elements,
//! start. Any failure undoes every earlier step.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{info, warn};

use bigskies_core::error::HandlerError;
use bigskies_core::runtime::Context;

use super::archive::{self, SourceError};
use super::manifest::Manifest;
use super::{PluginCoordinator, PluginRecord, Settings, db_error, guid, plugin_columns, ui};

/// Go payload `{guid, name, version, source, metadata}` (SDK: `plugin_id`), plus the SHA-256
/// the source must have and whether to start it (default yes).
#[derive(Debug, Deserialize)]
pub struct InstallPlugin {
    #[serde(default, alias = "plugin_id")]
    pub guid: Option<String>,
    /// An absolute path to a plugin directory or a `.tar.gz`/`.tgz`/`.tar` archive.
    pub source: String,
    #[serde(default, alias = "checksum")]
    pub sha256: Option<String>,
    #[serde(default)]
    pub start: Option<bool>,
}

/// A verified source, unpacked in a staging directory under `plugin_dir`.
#[derive(Debug)]
pub(super) struct Staged {
    /// The staging directory (removed by [`Staged::discard`] or after placement).
    pub staging: PathBuf,
    /// The plugin root inside it (the staging directory or its only subdirectory).
    pub root: PathBuf,
    pub manifest: Manifest,
    pub digest: String,
}

impl Staged {
    pub async fn discard(self) {
        let dir = self.staging;
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
    }
}

fn source_error(e: SourceError) -> HandlerError {
    match e {
        SourceError::Missing(p) => {
            HandlerError::invalid(format!("source {} does not exist", p.display()))
        }
        SourceError::Refused { path, why } => {
            HandlerError::invalid(format!("source {} refused: {why}", path.display()))
        }
        SourceError::Io { path, source } => {
            warn!(path = %path.display(), error = %source, "plugin source unreadable");
            HandlerError::invalid(format!("source {} is unreadable", path.display()))
        }
    }
}

fn normalise_digest(d: &str) -> Result<String, HandlerError> {
    let d = d.trim().trim_start_matches("sha256:").to_ascii_lowercase();
    if d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(d)
    } else {
        Err(HandlerError::invalid(
            "sha256 must be 64 hexadecimal digits",
        ))
    }
}

fn blocking_error(e: tokio::task::JoinError) -> HandlerError {
    warn!(error = %e, "plugin file work panicked");
    HandlerError::internal()
}

/// Verify `source` against `expected` (nothing is written when they differ), then unpack or
/// copy it into a fresh staging directory and read its manifest.
pub(super) async fn stage(
    settings: &Settings,
    source: &str,
    expected: Option<&str>,
) -> Result<Staged, HandlerError> {
    let src = PathBuf::from(source.trim());
    if !src.is_absolute() {
        return Err(HandlerError::invalid("source must be an absolute path"));
    }
    let expected = match expected {
        Some(d) => Some(normalise_digest(d)?),
        None if settings.require_checksum => {
            return Err(HandlerError::invalid(
                "sha256 (the SHA-256 of the source) is required",
            ));
        }
        None => None,
    };
    let plugin_dir = settings.plugin_dir.clone();
    tokio::task::spawn_blocking(move || -> Result<Staged, HandlerError> {
        let digest = archive::digest(&src).map_err(source_error)?;
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(HandlerError::invalid(format!(
                "checksum mismatch: the source's SHA-256 is {digest}, the request says {expected}"
            )));
        }
        std::fs::create_dir_all(&plugin_dir).map_err(|e| {
            warn!(dir = %plugin_dir.display(), error = %e, "plugin directory cannot be created");
            HandlerError::unavailable("the plugin directory is not writable")
        })?;
        let staging = plugin_dir.join(format!(".staging-{}", uuid::Uuid::new_v4().simple()));
        let result = (|| {
            std::fs::create_dir(&staging).map_err(|e| {
                warn!(dir = %staging.display(), error = %e, "staging directory cannot be created");
                HandlerError::unavailable("the plugin directory is not writable")
            })?;
            archive::materialise(&src, &staging).map_err(source_error)?;
            let root = archive::plugin_root(&staging).map_err(source_error)?;
            let manifest =
                Manifest::load(&root).map_err(|e| HandlerError::invalid(e.to_string()))?;
            Ok((root, manifest))
        })();
        match result {
            Ok((root, manifest)) => Ok(Staged {
                staging,
                root,
                manifest,
                digest,
            }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                Err(e)
            }
        }
    })
    .await
    .map_err(blocking_error)?
}

/// Move a staged plugin root to `target` (replacing an orphaned directory there) and remove
/// what is left of the staging directory.
pub(super) async fn place(staged: &Staged, target: &Path) -> Result<(), HandlerError> {
    let (root, staging, target) = (
        staged.root.clone(),
        staged.staging.clone(),
        target.to_owned(),
    );
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        if target.exists() {
            std::fs::remove_dir_all(&target)?;
        }
        std::fs::rename(&root, &target)?;
        if staging.exists() {
            std::fs::remove_dir_all(&staging)?;
        }
        Ok(())
    })
    .await
    .map_err(blocking_error)?
    .map_err(|e| {
        warn!(error = %e, "plugin files cannot be placed");
        HandlerError::unavailable("the plugin directory is not writable")
    })
}

pub(super) async fn remove_dir(dir: PathBuf) {
    let shown = dir.display().to_string();
    match tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
        Ok(Err(e)) => warn!(dir = %shown, error = %e, "plugin directory not removed"),
        Err(e) => warn!(dir = %shown, error = %e, "plugin directory removal panicked"),
    }
}

impl PluginCoordinator {
    pub(super) async fn install(
        &self,
        ctx: &Context,
        r: InstallPlugin,
    ) -> Result<Value, HandlerError> {
        let requested = r.guid.as_deref().map(guid).transpose()?;
        let _one = self.ops.lock().await;
        let settings = self.settings();
        let staged = stage(&settings, &r.source, r.sha256.as_deref()).await?;
        let id = match staged.manifest.guid() {
            Ok(id) if requested.is_none_or(|g| g == id) => id,
            Ok(id) => {
                staged.discard().await;
                return Err(HandlerError::invalid(format!(
                    "the manifest describes plugin {id}, not the requested one"
                )));
            }
            Err(e) => {
                staged.discard().await;
                return Err(HandlerError::invalid(e.to_string()));
            }
        };
        match self.fetch(id).await {
            Ok(None) => {}
            Ok(Some(_)) => {
                staged.discard().await;
                return Err(HandlerError::conflict(format!(
                    "plugin {id} is already installed (use plugin/update)"
                )));
            }
            Err(e) => {
                staged.discard().await;
                return Err(e);
            }
        }
        let target = settings.plugin_dir.join(id.to_string());
        if let Err(e) = place(&staged, &target).await {
            staged.discard().await;
            return Err(e);
        }
        let manifest_json =
            serde_json::to_value(&staged.manifest).map_err(|_| HandlerError::internal())?;
        let inserted = sqlx::query_as::<_, PluginRecord>(concat!(
            "INSERT INTO plugins (guid, name, version, status, desired, source, sha256, install_dir,
                                  manifest, runtime, installed_by)
             VALUES ($1, $2, $3, 'installed', 'stopped', $4, $5, $6, $7, $8, $9) RETURNING ",
            plugin_columns!()
        ))
        .bind(id)
        .bind(&staged.manifest.name)
        .bind(&staged.manifest.version)
        .bind(&r.source)
        .bind(&staged.digest)
        .bind(target.to_string_lossy().as_ref())
        .bind(&manifest_json)
        .bind(self.runtime.name())
        .bind(ctx.principal.as_ref().map(|p| p.user_id))
        .fetch_one(&self.pool)
        .await;
        let record = match inserted {
            Ok(rec) => rec,
            Err(e) => {
                remove_dir(target).await;
                return Err(db_error(e));
            }
        };
        let link = ui::Link::for_service(ctx, self.service_credential(), settings.rpc_timeout);
        let elements = match link.register_elements(&staged.manifest).await {
            Ok(ids) => ids,
            Err(why) => {
                warn!(plugin = %id, error = %why, "UI elements not registered; install undone");
                let _ = sqlx::query("DELETE FROM plugins WHERE guid = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await;
                remove_dir(target).await;
                return Err(HandlerError::unavailable(format!(
                    "UI elements could not be registered: {why}"
                )));
            }
        };
        info!(plugin = %id, name = %record.name, version = %record.version, "plugin installed");
        let mut reply = json!({"success": true, "ui_elements": elements});
        let record = if r.start.unwrap_or(true) {
            match self.start_plugin(&record).await {
                Ok(rec) => rec,
                Err(e) => {
                    reply["start_error"] = Value::String(e.message.clone());
                    self.fetch(id).await?.unwrap_or(record)
                }
            }
        } else {
            record
        };
        reply["plugin"] = record.to_json();
        Ok(reply)
    }
}
