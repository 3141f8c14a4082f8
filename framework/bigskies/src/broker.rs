//! The start-up check of the broker: can a client without credentials read requests?
//!
//! Requests carry passwords and tokens (`auth/login`, every protected operation), so a broker
//! that lets anonymous clients subscribe to request topics hands them to anyone on the network.
//! [`check_anonymous`] connects without credentials, subscribes to a request-shaped filter,
//! publishes a probe on a request-shaped topic no coordinator serves (with the deployment's own
//! credentials) and reports what the anonymous client could do. `bigskies up` and `bigskies
//! coordinator` log the finding as a warning at start (docs/broker.md says how to close it).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use bigskies_core::bus::{Bus, BusConfig};
use bigskies_core::topics::Topics;

/// Where the warning points.
pub const DOCS: &str = "docs/broker.md";

/// The name of the coordinator-shaped topic segment the probe is published under; no
/// coordinator serves it.
const PROBE_NAME: &str = "broker-probe";

/// What an anonymous client could do on the deployment's broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrokerFinding {
    /// It connected and received a probe published on a request topic: it reads every
    /// password and token sent to the coordinators.
    AnonymousReadsRequests { probe_topic: String },
    /// It connected, but did not receive the probe (an ACL keeps requests from it).
    AnonymousConnects,
}

impl BrokerFinding {
    /// The warning for the operator.
    pub fn warning(&self) -> String {
        match self {
            Self::AnonymousReadsRequests { probe_topic } => format!(
                "the MQTT broker lets clients without credentials connect and read coordinator \
                 requests (a probe on {probe_topic} reached an anonymous client): anyone who \
                 reaches the broker reads every password and token sent to the coordinators; \
                 turn anonymous access off and use per-user credentials and the ACL ({DOCS})"
            ),
            Self::AnonymousConnects => format!(
                "the MQTT broker accepts clients without credentials (they could not read \
                 coordinator requests); turn anonymous access off on the deployment listener \
                 ({DOCS})"
            ),
        }
    }
}

/// A short-lived connection that leaves no session behind.
fn probe_config(mut config: BusConfig, prefix: &str, within: Duration) -> BusConfig {
    config.client_id = None;
    config.client_id_prefix = prefix.to_owned();
    config.session_expiry = 0;
    config.op_timeout = within;
    config.backoff_max = within;
    config
}

async fn stop(bus: Bus, task: bigskies_core::bus::BusTask, token: CancellationToken) {
    bus.disconnect().await;
    token.cancel();
    let _ = task.await;
}

/// Probe the broker of `deployment` (its address and credentials) as an anonymous client, each
/// step waiting at most `within`. `None`: the broker refused the anonymous client (or could
/// not be reached).
pub async fn check_anonymous(
    deployment: &BusConfig,
    topics: &Topics,
    within: Duration,
) -> Option<BrokerFinding> {
    let mut anonymous = probe_config(deployment.clone(), "bigskies-anonymous-probe", within);
    anonymous.credentials = None;
    let token = CancellationToken::new();
    let (anon, anon_task) = Bus::start(anonymous, None, token.clone());
    if anon.wait_connected(within).await.is_err() {
        stop(anon, anon_task, token).await;
        return None;
    }
    let filter = format!("{}/coordinator/+/auth/login", topics.root());
    let probe_topic = topics.request(PROBE_NAME, "auth", "login");
    let received = async {
        // A broker may refuse the subscription outright (MQTT 5 reason "not authorized").
        let mut rx = anon.subscribe(&filter, 4).await.ok()?;
        let owner_token = CancellationToken::new();
        let (owner, owner_task) = Bus::start(
            probe_config(deployment.clone(), "bigskies-broker-probe", within),
            None,
            owner_token.clone(),
        );
        let nonce = bigskies_core::envelope::new_message_id();
        let mut seen = false;
        if owner.wait_connected(within).await.is_ok()
            && owner
                .publish(&probe_topic, format!("{{\"probe\":\"{nonce}\"}}"), false)
                .await
                .is_ok()
        {
            let deadline = tokio::time::Instant::now() + within;
            while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                if msg.topic == probe_topic
                    && msg
                        .payload
                        .windows(nonce.len())
                        .any(|w| w == nonce.as_bytes())
                {
                    seen = true;
                    break;
                }
            }
        }
        stop(owner, owner_task, owner_token).await;
        Some(seen)
    }
    .await;
    stop(anon, anon_task, token).await;
    Some(match received {
        Some(true) => BrokerFinding::AnonymousReadsRequests { probe_topic },
        _ => BrokerFinding::AnonymousConnects,
    })
}

/// Run the check and log what it found (a warning), without holding up the start for long.
pub async fn warn_if_anonymous(deployment: &BusConfig, topics: &Topics) {
    if let Some(finding) = check_anonymous(deployment, topics, Duration::from_secs(1)).await {
        tracing::warn!(broker = %deployment.host, port = deployment.port, "{}", finding.warning());
    }
}
