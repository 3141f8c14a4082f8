//! Publishing the retained credentials message: at start, periodically, on request.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use bigskies_core::bus::Bus;
use bigskies_core::topics::Topics;

use super::{BootstrapCoordinator, lock};

impl BootstrapCoordinator {
    async fn publish_once(&self, bus: &Bus, topics: &Topics) {
        let body = match serde_json::to_vec(&self.message()) {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "credentials message not serialisable");
                return;
            }
        };
        match bus
            .publish(&topics.bootstrap_credentials(), body, true)
            .await
        {
            Ok(()) => {
                self.published.fetch_add(1, Ordering::Relaxed);
                *lock(&self.last_error) = None;
                debug!("credentials published");
            }
            Err(e) => {
                warn!(error = %e, "credentials not published");
                *lock(&self.last_error) = Some(e.to_string());
            }
        }
    }

    /// Serve the credentials until `shutdown`.
    pub async fn run(self: Arc<Self>, bus: Bus, topics: Topics, shutdown: CancellationToken) {
        let mut requests = match bus.subscribe(&topics.bootstrap_request(), 64).await {
            Ok(rx) => Some(rx),
            Err(e) => {
                warn!(error = %e, "bootstrap requests cannot be received; publishing periodically only");
                None
            }
        };
        info!(pgpass = %self.pgpass.display(), "serving database credentials");
        loop {
            self.publish_once(&bus, &topics).await;
            let every = self.publish_interval();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(every) => {}
                req = async {
                    match requests.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    match req {
                        Some(m) => debug!(requester = %String::from_utf8_lossy(&m.payload), "credentials requested"),
                        None => requests = None,
                    }
                }
            }
        }
    }
}
