//! `summary/get`, `diagnostics/get` and `history/get`.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use bigskies_core::error::HandlerError;

use super::{HistoryQuery, MessageCoordinator, lock};

impl MessageCoordinator {
    pub(super) fn summary_reply(&self) -> Value {
        let mut v = self.summary();
        if let Value::Object(m) = &mut v {
            m.insert("success".into(), Value::Bool(true));
        }
        v
    }

    pub(super) fn diagnostics_reply(&self) -> Value {
        let traffic = lock(&self.state).traffic.report();
        json!({
            "success": true,
            "traffic": traffic,
            "ingest": {
                "received": self.stats.received.load(Ordering::Relaxed),
                "health": self.stats.health.load(Ordering::Relaxed),
                "malformed": self.stats.malformed.load(Ordering::Relaxed),
            },
        })
    }

    pub(super) async fn history_reply(&self, q: HistoryQuery) -> Result<Value, HandlerError> {
        match &self.history {
            Some(h) => h.query(&q).await,
            None => Err(HandlerError::unavailable(
                "this message coordinator keeps no history (no database)",
            )),
        }
    }
}
