//! `summary/get`, `diagnostics/get` and `history/get`.

use std::sync::atomic::Ordering;

use serde::Deserialize;
use serde_json::{Value, json};

use bigskies_core::error::HandlerError;

use super::{HistoryQuery, MessageCoordinator, lock};

/// Names per `diagnostics/get` page when the request gives no `limit`.
pub const DIAGNOSTICS_DEFAULT_LIMIT: u64 = 50;
/// The largest `limit` a `diagnostics/get` request may ask for.
pub const DIAGNOSTICS_MAX_LIMIT: u64 = 100;

/// `diagnostics/get`: `{limit?, offset?}` over the coordinator names in name order. The reply
/// states `total`, and `next_offset` while there are more.
#[derive(Debug, Default, Deserialize)]
pub struct DiagnosticsQuery {
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub offset: Option<i64>,
}

impl DiagnosticsQuery {
    /// `(offset, limit)`, checked.
    fn window(&self) -> Result<(usize, usize), HandlerError> {
        let limit = match self.limit {
            None => DIAGNOSTICS_DEFAULT_LIMIT,
            Some(l) => u64::try_from(l)
                .ok()
                .filter(|l| (1..=DIAGNOSTICS_MAX_LIMIT).contains(l))
                .ok_or_else(|| {
                    HandlerError::invalid(format!(
                        "limit must be between 1 and {DIAGNOSTICS_MAX_LIMIT}, got {l}"
                    ))
                })?,
        };
        let offset = match self.offset {
            None => 0,
            Some(o) => usize::try_from(o)
                .map_err(|_| HandlerError::invalid(format!("offset must be 0 or more, got {o}")))?,
        };
        // Both fit: limit is at most DIAGNOSTICS_MAX_LIMIT.
        Ok((offset, usize::try_from(limit).unwrap_or(usize::MAX)))
    }
}

impl MessageCoordinator {
    pub(super) fn summary_reply(&self) -> Value {
        let mut v = self.summary();
        if let Value::Object(m) = &mut v {
            m.insert("success".into(), Value::Bool(true));
        }
        v
    }

    pub(super) fn diagnostics_reply(&self, q: &DiagnosticsQuery) -> Result<Value, HandlerError> {
        let (offset, limit) = q.window()?;
        let (traffic, total) = {
            let st = lock(&self.state);
            (st.traffic.page(offset, limit), st.traffic.len())
        };
        let end = offset.saturating_add(limit);
        Ok(json!({
            "success": true,
            "traffic": traffic,
            "ingest": {
                "received": self.stats.received.load(Ordering::Relaxed),
                "health": self.stats.health.load(Ordering::Relaxed),
                "malformed": self.stats.malformed.load(Ordering::Relaxed),
                "ignored_health": self.stats.ignored_health.load(Ordering::Relaxed),
            },
            "total": total,
            "offset": offset,
            "limit": limit,
            "next_offset": (end < total).then_some(end),
        }))
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
