//! Health history in PostgreSQL (`health_history`), written in batches by one task so the
//! ingest path never waits for the database, and trimmed to the retention period.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use bigskies_core::error::HandlerError;
use bigskies_core::health::{HealthReport, HealthStatus};

/// Rows waiting for the writer; beyond this they are dropped (and counted) rather than
/// slowing the ingest path.
const QUEUE: usize = 10_000;
const BATCH: usize = 500;

/// One stored row.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryRow {
    pub coordinator: String,
    pub status: HealthStatus,
    pub message: String,
    pub reason: &'static str,
    pub details: Value,
    pub at: DateTime<Utc>,
}

/// `history/get`: `{coordinator, limit?, since?}`.
#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    #[serde(alias = "name", alias = "component")]
    pub coordinator: String,
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    tx: mpsc::Sender<HistoryRow>,
    rx: Mutex<Option<mpsc::Receiver<HistoryRow>>>,
    written: AtomicU64,
    dropped: AtomicU64,
    last_error: Mutex<Option<String>>,
}

#[derive(Clone, Debug)]
pub struct History(Arc<Inner>);

impl History {
    pub fn new(pool: PgPool) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Self(Arc::new(Inner {
            pool,
            tx,
            rx: Mutex::new(Some(rx)),
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }))
    }

    /// Queue a row; never waits.
    pub fn record(&self, row: HistoryRow) {
        if self.0.tx.try_send(row).is_err() {
            self.0.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn set_error(&self, e: Option<String>) {
        *self.0.last_error.lock().unwrap_or_else(|p| p.into_inner()) = e;
    }

    /// The writer task: batches of up to [`BATCH`] rows, flushed at least every second.
    pub async fn writer(self, shutdown: CancellationToken) {
        let rx = self.0.rx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut rx) = rx else { return };
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let stop = tokio::select! {
                _ = shutdown.cancelled() => true,
                n = rx.recv_many(&mut batch, BATCH) => n == 0,
            };
            // Drain whatever is queued so a shutdown still stores the last changes.
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.flush(&mut batch).await;
            }
            if stop {
                return;
            }
        }
    }

    async fn flush(&self, batch: &mut Vec<HistoryRow>) {
        let n = batch.len();
        let mut coordinators = Vec::with_capacity(n);
        let mut statuses = Vec::with_capacity(n);
        let mut messages = Vec::with_capacity(n);
        let mut reasons = Vec::with_capacity(n);
        let mut details = Vec::with_capacity(n);
        let mut ats = Vec::with_capacity(n);
        for r in batch.drain(..) {
            coordinators.push(r.coordinator);
            statuses.push(r.status.as_str().to_owned());
            messages.push(r.message);
            reasons.push(r.reason.to_owned());
            details.push(r.details);
            ats.push(r.at);
        }
        let result = sqlx::query(
            "INSERT INTO health_history (coordinator, status, message, reason, details, recorded_at)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::timestamptz[])",
        )
        .bind(&coordinators)
        .bind(&statuses)
        .bind(&messages)
        .bind(&reasons)
        .bind(&details)
        .bind(&ats)
        .execute(&self.0.pool)
        .await;
        match result {
            Ok(_) => {
                self.0.written.fetch_add(n as u64, Ordering::Relaxed);
                self.set_error(None);
            }
            Err(e) => {
                warn!(error = %e, rows = n, "health history not stored");
                self.0.dropped.fetch_add(n as u64, Ordering::Relaxed);
                self.set_error(Some(e.to_string()));
            }
        }
    }

    /// Delete rows older than the retention period, now and every ten minutes (or a tenth of
    /// the retention when that is shorter).
    pub async fn retention(&self, retention: impl Fn() -> Duration, shutdown: CancellationToken) {
        loop {
            let keep = retention();
            match sqlx::query(
                "DELETE FROM health_history WHERE recorded_at < now() - make_interval(secs => $1)",
            )
            .bind(keep.as_secs_f64())
            .execute(&self.0.pool)
            .await
            {
                Ok(r) if r.rows_affected() > 0 => {
                    debug!(deleted = r.rows_affected(), "health history trimmed");
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "health history retention failed"),
            }
            let every = (keep / 10).clamp(Duration::from_secs(1), Duration::from_secs(600));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    pub fn health(&self) -> HealthReport {
        let err = self
            .0
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let r = match err {
            None => HealthReport::healthy("history", "health history stored"),
            Some(e) => HealthReport::degraded("history", format!("health history not stored: {e}")),
        };
        r.with_detail("history_written", self.0.written.load(Ordering::Relaxed))
            .with_detail("history_dropped", self.0.dropped.load(Ordering::Relaxed))
            .with_detail("history_queued", (QUEUE - self.0.tx.capacity()) as u64)
    }

    pub async fn query(&self, q: &HistoryQuery) -> Result<Value, HandlerError> {
        let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
        let rows: Vec<(String, String, String, Value, DateTime<Utc>)> = sqlx::query_as(
            "SELECT status, message, reason, details, recorded_at FROM health_history
              WHERE coordinator = $1 AND ($2::timestamptz IS NULL OR recorded_at >= $2)
              ORDER BY recorded_at DESC, id DESC LIMIT $3",
        )
        .bind(&q.coordinator)
        .bind(q.since)
        .bind(limit)
        .fetch_all(&self.0.pool)
        .await
        .map_err(|e| {
            warn!(error = %e, "health history query failed");
            HandlerError::from_database(&e, "health history")
        })?;
        let entries: Vec<Value> = rows
            .into_iter()
            .map(|(status, message, reason, details, at)| {
                json!({"status": status, "message": message, "reason": reason, "details": details,
                       "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)})
            })
            .collect();
        Ok(json!({"success": true, "coordinator": q.coordinator, "history": entries}))
    }
}
