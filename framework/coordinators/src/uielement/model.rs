//! UI elements, widget mappings, data bindings and actions (the Go JSON names), with
//! validation of everything a client or plugin manifest can send.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use bigskies_core::error::HandlerError;

/// The UI frameworks an element can be mapped to.
pub const FRAMEWORKS: [&str; 7] = ["gtk", "flutter", "unity", "qt", "wpf", "mfc", "blazor"];

/// Element types.
pub const ELEMENT_TYPES: [&str; 5] = ["menu", "panel", "widget", "tool", "dialog"];

/// Deepest widget tree accepted (a guard against hostile payloads).
const MAX_DEPTH: usize = 16;

/// A property fed from the bus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataBinding {
    pub property: String,
    pub source: String,
    /// Milliseconds; 0 (or absent) means event driven.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_interval: Option<u64>,
    /// An expression, e.g. `connected ? 'Disconnect' : 'Connect'`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt_topic: Option<String>,
}

/// What an event of a widget publishes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionDefinition {
    pub mqtt_topic: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_template: Option<String>,
}

/// A child widget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WidgetDefinition {
    pub id: String,
    pub widget_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_binding: Option<DataBinding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<BTreeMap<String, ActionDefinition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub children: Option<Vec<WidgetDefinition>>,
}

/// How an element is drawn in one framework.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WidgetMapping {
    pub widget_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub children: Option<Vec<WidgetDefinition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_binding: Option<DataBinding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<BTreeMap<String, ActionDefinition>>,
}

fn text(field: &str, v: &str, max: usize) -> Result<(), HandlerError> {
    if v.trim().is_empty() {
        return Err(HandlerError::invalid(format!("{field} is required")));
    }
    if v.len() > max || v.chars().any(char::is_control) {
        return Err(HandlerError::invalid(format!(
            "{field} must be at most {max} printable characters"
        )));
    }
    Ok(())
}

/// An MQTT topic a UI may publish to (no wildcards) or a filter it may bind to.
fn topic(field: &str, t: &str, filter_ok: bool) -> Result<(), HandlerError> {
    text(field, t, 1024)?;
    let bad_wild = t
        .split('/')
        .any(|s| (s.contains('+') && s != "+") || (s.contains('#') && s != "#"))
        || t.split('/').rev().skip(1).any(|s| s == "#");
    if bad_wild || t.starts_with('$') {
        return Err(HandlerError::invalid(format!(
            "{field} {t:?} is not a valid MQTT topic"
        )));
    }
    if !filter_ok && t.contains(['+', '#']) {
        return Err(HandlerError::invalid(format!(
            "{field} {t:?} must not contain wildcards"
        )));
    }
    Ok(())
}

impl DataBinding {
    fn validate(&self) -> Result<(), HandlerError> {
        text("data_binding.property", &self.property, 255)?;
        text("data_binding.source", &self.source, 1024)?;
        if let Some(t) = &self.mqtt_topic {
            topic("data_binding.mqtt_topic", t, true)?;
        }
        if let Some(t) = &self.transform
            && t.len() > 4096
        {
            return Err(HandlerError::invalid("data_binding.transform is too long"));
        }
        Ok(())
    }
}

fn validate_actions(
    actions: &Option<BTreeMap<String, ActionDefinition>>,
) -> Result<(), HandlerError> {
    for (event, a) in actions.iter().flatten() {
        text("action event", event, 255)?;
        topic("actions.mqtt_topic", &a.mqtt_topic, false)?;
    }
    Ok(())
}

fn validate_children(
    children: &Option<Vec<WidgetDefinition>>,
    depth: usize,
) -> Result<(), HandlerError> {
    let Some(children) = children else {
        return Ok(());
    };
    if depth > MAX_DEPTH {
        return Err(HandlerError::invalid(format!(
            "widget trees may be at most {MAX_DEPTH} levels deep"
        )));
    }
    for c in children {
        text("children.id", &c.id, 255)?;
        text("children.widget_type", &c.widget_type, 255)?;
        if let Some(b) = &c.data_binding {
            b.validate()?;
        }
        validate_actions(&c.actions)?;
        validate_children(&c.children, depth + 1)?;
    }
    Ok(())
}

impl WidgetMapping {
    pub fn validate(&self) -> Result<(), HandlerError> {
        text("widget_type", &self.widget_type, 255)?;
        if let Some(b) = &self.data_binding {
            b.validate()?;
        }
        validate_actions(&self.actions)?;
        validate_children(&self.children, 1)
    }
}

/// A framework name, lower-cased and checked.
pub fn framework(name: &str) -> Result<String, HandlerError> {
    let f = name.trim().to_ascii_lowercase();
    if FRAMEWORKS.contains(&f.as_str()) {
        Ok(f)
    } else {
        Err(HandlerError::invalid(format!(
            "unknown framework {name:?}; supported: {}",
            FRAMEWORKS.join(", ")
        )))
    }
}

/// An element type, lower-cased and checked.
pub fn element_type(name: &str) -> Result<String, HandlerError> {
    let t = name.trim().to_ascii_lowercase();
    if ELEMENT_TYPES.contains(&t.as_str()) {
        Ok(t)
    } else {
        Err(HandlerError::invalid(format!(
            "unknown element type {name:?}; supported: {}",
            ELEMENT_TYPES.join(", ")
        )))
    }
}

/// Parse and validate a `framework_mappings` object; keys become canonical framework names.
pub fn mappings(
    v: Option<Map<String, Value>>,
) -> Result<BTreeMap<String, WidgetMapping>, HandlerError> {
    let mut out = BTreeMap::new();
    for (k, m) in v.unwrap_or_default() {
        let f = framework(&k)?;
        let mapping: WidgetMapping = serde_json::from_value(m)
            .map_err(|e| HandlerError::invalid(format!("framework_mappings.{k}: {e}")))?;
        mapping.validate()?;
        out.insert(f, mapping);
    }
    Ok(out)
}

pub(crate) fn check_text(field: &str, v: &str, max: usize) -> Result<(), HandlerError> {
    text(field, v, max)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn mappings_validate_frameworks_topics_and_depth() {
        let ok = json!({"GTK": {"widget_type": "Gtk.Frame",
            "data_binding": {"property": "label", "source": "connected",
                             "mqtt_topic": "bigskies/telescope/0/state/+"},
            "actions": {"clicked": {"mqtt_topic": "bigskies/telescope/0/command/connect",
                                    "payload": {"connect": true}}},
            "children": [{"id": "b", "widget_type": "Gtk.Button"}]}});
        let m = mappings(ok.as_object().cloned()).unwrap();
        assert!(m.contains_key("gtk"));
        for bad in [
            json!({"swing": {"widget_type": "JPanel"}}),
            json!({"qt": {"widget_type": ""}}),
            json!({"qt": {"widget_type": "QWidget", "actions": {"x": {"mqtt_topic": "a/+/b"}}}}),
            json!({"qt": {"widget_type": "QWidget", "data_binding": {"property": "p", "source": "s", "mqtt_topic": "a/#/b"}}}),
            json!({"qt": {"widget_type": "QWidget", "surprise": 1}}),
        ] {
            assert!(mappings(bad.as_object().cloned()).is_err(), "{bad}");
        }
        let mut deep = json!({"id": "leaf", "widget_type": "w"});
        for i in 0..20 {
            deep = json!({"id": format!("n{i}"), "widget_type": "w", "children": [deep]});
        }
        let m = json!({"wpf": {"widget_type": "Grid", "children": [deep]}});
        assert!(mappings(m.as_object().cloned()).is_err());
    }

    #[test]
    fn types_and_frameworks_are_canonical() {
        assert_eq!(element_type("Panel").unwrap(), "panel");
        assert!(element_type("dashboard").is_err());
        assert_eq!(framework(" Blazor ").unwrap(), "blazor");
    }
}
