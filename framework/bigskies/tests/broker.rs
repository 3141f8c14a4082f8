#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
//! The start-up broker check (issue 20, item 4) and the stable client ids (item 9).

use std::time::Duration;

use bigskies::broker::{BrokerFinding, check_anonymous};
use bigskies::cli::Cli;
use bigskies::settings::Settings;
use bigskies_core::bus::BusConfig;
use bigskies_core::topics::Topics;
use bigskies_scenarios::provision;
use clap::Parser as _;

#[tokio::test]
async fn an_anonymous_broker_that_hands_out_requests_is_reported() {
    let p = provision::shared().await.unwrap();
    let topics = Topics::new(provision::unique_topic_root());
    let deployment = BusConfig::new(p.mqtt.host.clone(), p.mqtt.port, "test");
    let finding = check_anonymous(&deployment, &topics, Duration::from_secs(2)).await;
    let Some(f @ BrokerFinding::AnonymousReadsRequests { .. }) = finding else {
        panic!("the local test broker is anonymous and has no ACL: {finding:?}");
    };
    let warning = f.warning();
    assert!(warning.contains("password"), "{warning}");
    assert!(warning.contains("docs/broker.md"), "{warning}");
}

#[tokio::test]
async fn a_broker_that_cannot_be_reached_is_no_finding() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let deployment = BusConfig::new("127.0.0.1", port, "test");
    let topics = Topics::new(provision::unique_topic_root());
    assert_eq!(
        check_anonymous(&deployment, &topics, Duration::from_millis(500)).await,
        None
    );
}

fn settings(args: &[&str]) -> Settings {
    let mut argv = vec!["bigskies", "--topic-root", "obs-1"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["coordinator", "security"]);
    Settings::from_cli(&Cli::try_parse_from(argv).unwrap()).unwrap()
}

#[test]
fn coordinators_have_stable_client_ids_per_deployment() {
    let s = settings(&[]);
    let bus = s.component_bus("security");
    assert_eq!(bus.client_id.as_deref(), Some("obs-1-security"));
    assert!(bus.session_expiry > 0);
    // The same after a restart: the restarted coordinator takes over its own session.
    assert_eq!(
        settings(&[]).component_bus("security").client_id,
        bus.client_id
    );
    assert_ne!(s.component_bus("message-ingest").client_id, bus.client_id);
    let replica = settings(&["--instance", "b"]).component_bus("security");
    assert_eq!(replica.client_id.as_deref(), Some("obs-1-security-b"));
    assert!(
        Settings::from_cli(
            &Cli::try_parse_from(["bigskies", "--instance", "a/b", "coordinator", "security"])
                .unwrap()
        )
        .is_err()
    );
}

/// `bigskies coordinator ...` (and `bigskies up`) warns at start when anonymous clients can read
/// requests: here against the anonymous local broker, before it gives up waiting for database
/// credentials that nobody publishes.
#[tokio::test]
async fn the_binary_warns_at_start_about_an_anonymous_broker() {
    let p = provision::shared().await.unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_bigskies"))
        .env("BIGSKIES_MQTT_URL", p.mqtt.url())
        .env("BIGSKIES_TOPIC_ROOT", provision::unique_topic_root())
        .env_remove("DATABASE_URL")
        .env("BIGSKIES_LOG", "warn")
        .args(["--credentials-timeout", "3", "coordinator", "message"])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("WARN")
            && err.contains("read coordinator requests")
            && err.contains("docs/broker.md"),
        "{err}"
    );
}
