//! Talking to the UI element coordinator over MQTT: a request with a private reply topic and
//! a correlation id, and the reply it gets.

use std::time::Duration;

use serde_json::{Value, json};

use bigskies_core::bus::Bus;
use bigskies_core::envelope::{Envelope, MessageType, answers, request_digest};
use bigskies_core::runtime::Context;
use bigskies_core::topics::Topics;

use super::manifest::Manifest;
use crate::uielement;

/// What a call needs: the bus, the topics, and the credential to act with.
#[derive(Clone, Debug)]
pub(super) struct Link {
    pub bus: Bus,
    pub topics: Topics,
    pub token: Option<String>,
    pub timeout: Duration,
}

impl Link {
    /// Act with the plugin coordinator's own service credential `token`, never the caller's:
    /// a caller's token (an administrator's, valid for hours everywhere) must not travel on in
    /// requests the coordinator makes, and a caller's API key scoped to plugins would not
    /// cover UI elements anyway.
    pub fn for_service(ctx: &Context, token: Option<String>, timeout: Duration) -> Self {
        Self {
            bus: ctx.bus.clone(),
            topics: ctx.topics.clone(),
            token,
            timeout,
        }
    }

    /// One request/reply exchange; `Err` carries a message for the client.
    pub async fn call(
        &self,
        coordinator: &str,
        action: &str,
        resource: &str,
        payload: Value,
    ) -> Result<Value, String> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let reply_topic = self.topics.client_reply(&format!("plugin-{id}"));
        let mut rx = self
            .bus
            .subscribe(&reply_topic, 4)
            .await
            .map_err(|e| format!("bus: {e}"))?;
        let mut env = Envelope::new(MessageType::Request, "coordinator:plugin", payload)
            .with_correlation_id(&id)
            .with_reply_to(&reply_topic);
        if let Some(t) = &self.token {
            env = env.with_token(t);
        }
        let request = env.to_bytes();
        let digest = request_digest(&request);
        self.bus
            .publish(
                &self.topics.request(coordinator, action, resource),
                request,
                false,
            )
            .await
            .map_err(|e| format!("bus: {e}"))?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .map_err(|_| {
                    format!(
                        "the {coordinator} coordinator did not answer within {:?}",
                        self.timeout
                    )
                })?
                .ok_or_else(|| "bus closed".to_owned())?;
            let Ok(v) = serde_json::from_slice::<Value>(&msg.payload) else {
                continue;
            };
            if v["correlation_id"] != id.as_str() {
                continue;
            }
            // Someone who saw the request can provoke a reply on our topic with our id.
            if !answers(&v, &digest) {
                tracing::warn!(
                    coordinator,
                    "a reply on our topic answers another request; ignored"
                );
                continue;
            }
            if v["success"] == true {
                return Ok(v);
            }
            return Err(format!(
                "the {coordinator} coordinator refused: {}",
                v["error"].as_str().unwrap_or("no reason given")
            ));
        }
    }

    /// Register every UI element of `manifest`; on failure the ones already registered are
    /// removed again. The UI element coordinator makes elements registered with a
    /// `plugin_guid` the plugin's (owner `plugin:<id>`), and accepts that only from an
    /// administrator's credential: the plugin coordinator's service credential.
    pub async fn register_elements(&self, m: &Manifest) -> Result<Vec<String>, String> {
        let mut done = Vec::new();
        for (i, e) in m.ui_elements.iter().enumerate() {
            let body = json!({
                "id": e.id,
                "plugin_guid": m.id,
                "type": e.element_type,
                "title": e.title,
                "api_endpoint": e.url.clone().unwrap_or_default(),
                "order": i,
                "metadata": {"description": e.description, "icon": e.icon, "plugin_name": m.name},
                "framework_mappings": e.framework_mappings.clone().unwrap_or_default(),
            });
            if let Err(err) = self
                .call(uielement::NAME, "element", "register", body)
                .await
            {
                if !done.is_empty() {
                    let _ = self.unregister_elements(&m.id).await;
                }
                return Err(err);
            }
            done.push(e.id.clone());
        }
        Ok(done)
    }

    /// Remove every UI element of plugin `guid`; returns the removed ids.
    pub async fn unregister_elements(&self, guid: &str) -> Result<Vec<String>, String> {
        let v = self
            .call(
                uielement::NAME,
                "element",
                "unregister",
                json!({"plugin_guid": guid}),
            )
            .await?;
        Ok(v["removed"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }
}
