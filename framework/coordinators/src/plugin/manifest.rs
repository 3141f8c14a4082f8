//! `plugin.json`, the Go example format (§7.1), plus an optional `process` section for the
//! local-process runtime. Unknown keys are kept (in `extra`) for forward compatibility.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::uielement::model;

/// The manifest file name inside a plugin.
pub const MANIFEST_FILE: &str = "plugin.json";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MqttSection {
    #[serde(default)]
    pub topics_subscribe: Vec<String>,
    #[serde(default)]
    pub topics_publish: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DockerSection {
    pub image: String,
    #[serde(default)]
    pub ports: Vec<String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub networks: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
}

/// How the local-process runtime starts the plugin.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessSection {
    /// A path relative to the plugin directory, or a program on `PATH`.
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ManifestUiElement {
    pub id: String,
    #[serde(rename = "type")]
    pub element_type: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework_mappings: Option<Map<String, Value>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub id: String,
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<MqttSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessSection>,
    #[serde(default)]
    pub ui_elements: Vec<ManifestUiElement>,
    /// Everything else of the Go format (`capabilities`, `devices`, `health_check`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ManifestError {
    #[error("{MANIFEST_FILE} is missing")]
    Missing,
    #[error("{MANIFEST_FILE} is unreadable: {0}")]
    Unreadable(String),
    #[error("{MANIFEST_FILE} is invalid: {0}")]
    Invalid(String),
}

impl Manifest {
    /// The plugin's GUID.
    pub fn guid(&self) -> Result<Uuid, ManifestError> {
        Uuid::parse_str(&self.id)
            .map_err(|_| ManifestError::Invalid(format!("id {:?} is not a GUID", self.id)))
    }

    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let m: Manifest =
            serde_json::from_str(text).map_err(|e| ManifestError::Invalid(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    /// Read and validate `<dir>/plugin.json`.
    pub fn load(dir: &Path) -> Result<Self, ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ManifestError::Missing);
            }
            Err(e) => return Err(ManifestError::Unreadable(e.to_string())),
        };
        Self::parse(&text)
    }

    pub fn validate(&self) -> Result<(), ManifestError> {
        let bad = |s: String| Err(ManifestError::Invalid(s));
        self.guid()?;
        for (field, v) in [("name", &self.name), ("version", &self.version)] {
            if v.trim().is_empty() || v.len() > 255 {
                return bad(format!("{field} must be 1 to 255 characters"));
            }
        }
        if let Some(d) = &self.docker
            && d.image.trim().is_empty()
        {
            return bad("docker.image is required".into());
        }
        if let Some(p) = &self.process
            && p.command.trim().is_empty()
        {
            return bad("process.command is required".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for e in &self.ui_elements {
            if !seen.insert(e.id.as_str()) {
                return bad(format!("ui element id {:?} appears twice", e.id));
            }
            model::check_text("ui_elements.id", &e.id, 255)
                .and_then(|_| model::check_text("ui_elements.title", &e.title, 255))
                .and_then(|_| model::element_type(&e.element_type).map(|_| ()))
                .and_then(|_| model::mappings(e.framework_mappings.clone()).map(|_| ()))
                .or_else(|e| bad(e.message))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The Go example plugin's manifest, abridged.
    const GO_EXAMPLE: &str = r#"{
      "id": "f7e8d9c6-b5a4-3210-9876-543210fedcba",
      "name": "ASCOM Alpaca Simulator", "version": "1.0.0",
      "description": "d", "author": "a", "license": "MIT", "homepage": "h",
      "capabilities": {"provides_devices": true, "provides_ui": true},
      "mqtt": {"topics_subscribe": ["bigskies/plugin/ascom-simulators/control/#"], "topics_publish": []},
      "docker": {"image": "ascom/simulator:latest", "ports": ["32323:32323"], "environment": {"A": "1"},
                 "volumes": [], "networks": ["bigskies"], "restart_policy": "unless-stopped"},
      "devices": [{"type": "telescope", "name": "T", "device_number": 0, "alpaca_port": 32323}],
      "ui_elements": [{"id": "sim-panel", "type": "panel", "title": "Simulators", "icon": "i", "url": "/ui"}],
      "health_check": {"topic": "t", "interval_seconds": 30},
      "dependencies": {"coordinators": ["telescope"], "min_framework_version": "0.1.0"},
      "tags": ["ascom"]
    }"#;

    #[test]
    fn the_go_example_manifest_parses() {
        let m = Manifest::parse(GO_EXAMPLE).unwrap();
        assert_eq!(
            m.guid().unwrap().to_string(),
            "f7e8d9c6-b5a4-3210-9876-543210fedcba"
        );
        assert_eq!(m.docker.as_ref().unwrap().image, "ascom/simulator:latest");
        assert_eq!(m.ui_elements[0].element_type, "panel");
        assert!(m.extra.contains_key("capabilities"));
        // Round trip keeps the unknown sections.
        let back = serde_json::to_value(&m).unwrap();
        assert_eq!(back["tags"][0], "ascom");
    }

    #[test]
    fn invalid_manifests_are_refused() {
        let with = |patch: &dyn Fn(&mut Value)| {
            let mut v: Value = serde_json::from_str(GO_EXAMPLE).unwrap();
            patch(&mut v);
            Manifest::parse(&v.to_string())
        };
        assert!(with(&|v| v["id"] = "not-a-guid".into()).is_err());
        assert!(with(&|v| v["name"] = "".into()).is_err());
        assert!(with(&|v| v["ui_elements"][0]["type"] = "dashboard".into()).is_err());
        assert!(
            with(&|v| {
                let e = v["ui_elements"][0].clone();
                v["ui_elements"].as_array_mut().unwrap().push(e);
            })
            .is_err()
        );
        assert!(Manifest::parse("{").is_err());
    }
}
