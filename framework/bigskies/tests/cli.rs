#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
//! The `bigskies` binary against the real broker and PostgreSQL.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bigskies_core::bus::{Bus, BusConfig};
use bigskies_core::credentials::CredentialsMessage;
use bigskies_core::topics::Topics;
use bigskies_scenarios::provision;
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_bigskies");

/// Kills the child when the test ends, whatever happens.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bigskies(mqtt: &str, root: &str) -> Command {
    let mut c = Command::new(BIN);
    c.env("BIGSKIES_MQTT_URL", mqtt)
        .env("BIGSKIES_TOPIC_ROOT", root)
        .env_remove("DATABASE_URL")
        .env_remove("BIGSKIES_JWT_SECRET")
        .env("BIGSKIES_LOG", "warn")
        .stdin(Stdio::null());
    c
}

async fn client(host: &str, port: u16) -> Bus {
    let (bus, _t) = Bus::start(
        BusConfig::new(host, port, "cli-test"),
        None,
        CancellationToken::new(),
    );
    bus.wait_connected(Duration::from_secs(10)).await.unwrap();
    bus
}

#[test]
fn version_and_bad_configuration() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("bigskies "));
    let out = Command::new(BIN)
        .args(["--topic-root", "a/#", "coordinator", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown coordinator") && err.contains("topic root"),
        "{err}"
    );
}

#[tokio::test]
async fn migrate_applies_the_schema() {
    let p = provision::shared().await.unwrap();
    let db = p.fresh_database().await.unwrap();
    let out = bigskies(&p.mqtt.url(), "unused")
        .env("DATABASE_URL", db.url())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('service_registry','health_history','plugins','ui_elements')",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(n, 4);
}

#[tokio::test]
async fn bootstrap_publishes_retained_credentials_at_start_and_on_request() {
    let p = provision::shared().await.unwrap();
    let root = provision::unique_topic_root();
    let topics = Topics::new(root.clone());
    let bus = client(&p.mqtt.host, p.mqtt.port).await;
    let mut health = bus
        .subscribe(&topics.health("bootstrap"), 16)
        .await
        .unwrap();
    let _child = Running(
        bigskies(&p.mqtt.url(), &root)
            .args([
                "coordinator",
                "bootstrap",
                "--publish-only",
                "--pgpass",
                "/shared/secrets/.pgpass",
            ])
            .spawn()
            .unwrap(),
    );
    tokio::time::timeout(Duration::from_secs(20), health.recv())
        .await
        .unwrap()
        .unwrap();
    // A late subscriber gets the retained message (the first publication follows the first
    // health report closely; give it a moment).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut creds = bus
        .subscribe(&topics.bootstrap_credentials(), 16)
        .await
        .unwrap();
    let mut m = tokio::time::timeout(Duration::from_secs(10), creds.recv())
        .await
        .unwrap()
        .unwrap();
    if !m.retain {
        // On a slow machine the first publication can come after that subscription (it is
        // then delivered live). It is retained all the same: a later subscriber gets it so.
        let late = client(&p.mqtt.host, p.mqtt.port).await;
        let mut again = late
            .subscribe(&topics.bootstrap_credentials(), 16)
            .await
            .unwrap();
        m = tokio::time::timeout(Duration::from_secs(10), again.recv())
            .await
            .unwrap()
            .unwrap();
    }
    assert!(m.retain);
    let msg: CredentialsMessage = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(msg.pgpass_path, "L3NoYXJlZC9zZWNyZXRzLy5wZ3Bhc3M=");
    assert_eq!(msg.version, "1.0");
    // The Go request is the requester's bare name.
    bus.publish(&topics.bootstrap_request(), b"message".to_vec(), false)
        .await
        .unwrap();
    let again = tokio::time::timeout(Duration::from_secs(10), creds.recv())
        .await
        .unwrap()
        .unwrap();
    let again: CredentialsMessage = serde_json::from_slice(&again.payload).unwrap();
    assert_eq!(
        again, msg,
        "published again on request, well before the 30 s period"
    );
}

#[tokio::test]
async fn up_runs_every_coordinator_on_its_own_connection() {
    let p = provision::shared().await.unwrap();
    let db = p.fresh_database().await.unwrap();
    let root = provision::unique_topic_root();
    let topics = Topics::new(root.clone());
    let bus = client(&p.mqtt.host, p.mqtt.port).await;
    let mut health = bus.subscribe(&topics.health_filter(), 256).await.unwrap();
    let _child = Running(
        bigskies(&p.mqtt.url(), &root)
            .env("DATABASE_URL", db.url())
            .args(["up", "--pgpass", "/shared/secrets/.pgpass"])
            .spawn()
            .unwrap(),
    );
    let want = [
        "bootstrap",
        "message",
        "datastore",
        "application",
        "plugin",
        "uielement",
    ];
    let mut seen = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // Until every wanted one has reported (others, the telescope coordinator say, may report
    // too and must not end the wait early).
    while !want.iter().all(|w| seen.contains(*w)) {
        let m = tokio::time::timeout_at(deadline, health.recv())
            .await
            .unwrap_or_else(|_| panic!("only {seen:?} reported"))
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        let name = topics.parse_health(&m.topic).unwrap().to_owned();
        if v["payload"]["status"] == "healthy" || name == "bootstrap" {
            seen.insert(name);
        }
    }
    assert!(want.iter().all(|w| seen.contains(*w)), "{seen:?}");
}

#[tokio::test]
async fn admin_unlock_lifts_a_login_lock_straight_in_the_database() {
    use bigskies_security::{Secret, SecurityEngines, SecuritySettings};
    const PASSWORD: &str = "Adm1n-cli-test-passphrase!";
    let p = provision::shared().await.unwrap();
    let db = p.fresh_database().await.unwrap();
    bigskies_core::config::MIGRATOR
        .run(db.pool())
        .await
        .unwrap();
    let engines = SecurityEngines::new(
        db.pool().clone(),
        SecuritySettings::default(),
        &Secret::new("cli-test-signing-secret-0123456789abcdef"),
    );
    engines
        .accounts
        .ensure_admin(Some(&Secret::new(PASSWORD)))
        .await
        .unwrap();
    for _ in 0..5 {
        assert!(
            engines
                .accounts
                .login("admin", "a wrong guess")
                .await
                .is_err()
        );
    }
    assert!(
        engines.accounts.login("admin", PASSWORD).await.is_err(),
        "locked"
    );

    let out = bigskies(&p.mqtt.url(), "unused")
        .env("DATABASE_URL", db.url())
        .args(["admin", "unlock", "admin"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("unlocked admin"), "{stdout}");
    assert!(engines.accounts.login("admin", PASSWORD).await.is_ok());
    let via: String = sqlx::query_scalar(
        "SELECT detail->>'via' FROM audit_log WHERE event = 'user_unlock' AND outcome = 'success'",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(via, "cli");

    let out = bigskies(&p.mqtt.url(), "unused")
        .env("DATABASE_URL", db.url())
        .args(["admin", "unlock", "nobody-here"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nobody-here"), "{err}");
}
