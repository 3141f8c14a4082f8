//! The security engines against a real PostgreSQL (a fresh database per test), and ACME against
//! a local Pebble (Debian package `pebble`).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bigskies_core::config::MIGRATOR;
use bigskies_scenarios::provision::{self, TestDatabase};
use bigskies_security::acme::{InstantAcme, MemoryResponder};
use bigskies_security::audit::{Outcome, events as audit_events};
use bigskies_security::events::{self, SecurityEvent};
use bigskies_security::tls::{CertKind, self_signed};
use bigskies_security::{Secret, SecurityEngines, SecurityError, SecuritySettings};

const SECRET: &str = "engine-test-secret-0123456789abcdef-xyz";

async fn database() -> TestDatabase {
    let p = provision::shared().await.expect("provisioning PostgreSQL");
    let db = p.fresh_database().await.expect("a fresh database");
    MIGRATOR.run(db.pool()).await.unwrap();
    db
}

fn engines(db: &TestDatabase, settings: SecuritySettings) -> SecurityEngines {
    SecurityEngines::new(db.pool().clone(), settings, &Secret::new(SECRET))
}

#[tokio::test]
async fn the_first_administrator_comes_only_from_the_startup_secret() {
    let db = database().await;
    let e = engines(&db, SecuritySettings::default());
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(users, 0, "the migrations seed no user and no password");
    assert!(
        !e.accounts.ensure_admin(None).await.unwrap(),
        "no secret, no admin"
    );
    assert!(matches!(
        e.accounts.ensure_admin(Some(&Secret::new("short"))).await,
        Err(SecurityError::Invalid(_))
    ));
    assert!(
        e.accounts
            .ensure_admin(Some(&Secret::new("a long root passphrase")))
            .await
            .unwrap()
    );
    assert!(
        !e.accounts
            .ensure_admin(Some(&Secret::new("another long passphrase")))
            .await
            .unwrap(),
        "only once"
    );
    let admin = e
        .accounts
        .login("admin", "a long root passphrase")
        .await
        .unwrap();
    assert_eq!(admin.id.to_string(), "00000000-0000-0000-0000-000000000001");
    let g = e.accounts.grants(admin.id).await.unwrap();
    assert!(g.roles.contains(&"admin".to_owned()));
    assert!(g.decide("anything-added-later", "any").is_allowed());
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert_eq!(
        e.audit
            .count(audit_events::ADMIN_BOOTSTRAP, Outcome::Success)
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn revocations_survive_a_restart_and_expired_ones_are_cleaned_up() {
    let db = database().await;
    let e = engines(&db, SecuritySettings::default());
    let now = chrono::Utc::now();
    e.tokens
        .revoke("live-jti", None, now + chrono::Duration::hours(1), "test")
        .await
        .unwrap();
    e.tokens
        .revoke("old-jti", None, now - chrono::Duration::hours(1), "test")
        .await
        .unwrap();
    e.tokens
        .revoke("live-jti", None, now + chrono::Duration::hours(1), "again")
        .await
        .unwrap();

    let restarted = engines(&db, SecuritySettings::default());
    assert_eq!(
        restarted.tokens.load_revocations().await.unwrap(),
        1,
        "expired revocations are not loaded"
    );
    assert!(restarted.tokens.is_revoked("live-jti"));
    assert!(!restarted.tokens.is_revoked("old-jti"));

    assert_eq!(e.tokens.purge_expired(true).await.unwrap(), 1);
    assert!(!e.tokens.is_revoked("old-jti"));
    assert!(e.tokens.is_revoked("live-jti"));
    let left: Vec<String> = sqlx::query_scalar("SELECT jti FROM revoked_tokens")
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert_eq!(left, vec!["live-jti".to_owned()]);
}

#[tokio::test]
async fn security_events_are_signed_and_are_not_access_tokens() {
    let db = database().await;
    let e = engines(&db, SecuritySettings::default());
    let ev = SecurityEvent::Revoked {
        credential_id: "abc".into(),
        expires_at: 4_000_000_000,
    };
    let payload = events::encode(&e.tokens, "bigskies-security", &ev).unwrap();
    assert_eq!(events::decode(&e.tokens, &payload).unwrap(), ev);
    let jwt = serde_json::from_slice::<serde_json::Value>(&payload).unwrap()["event"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        e.tokens.verify(&jwt).is_err(),
        "an event never passes as an access token"
    );
    let stranger = SecurityEngines::new(
        db.pool().clone(),
        SecuritySettings::default(),
        &Secret::new("x".repeat(40)),
    );
    let forged = events::encode(&stranger.tokens, "bigskies-security", &ev).unwrap();
    assert!(
        events::decode(&e.tokens, &forged).is_err(),
        "events signed with another key are ignored"
    );
    assert!(events::decode(&e.tokens, b"{\"event\": 1}").is_err());
}

#[tokio::test]
async fn api_keys_expire() {
    let db = database().await;
    let e = engines(&db, SecuritySettings::default());
    e.accounts
        .ensure_admin(Some(&Secret::new("a long root passphrase")))
        .await
        .unwrap();
    let admin = e
        .accounts
        .login("admin", "a long root passphrase")
        .await
        .unwrap();
    let k = e
        .api_keys
        .create(
            admin.id,
            "short-lived",
            &["*".into()],
            Some(Duration::from_secs(1)),
        )
        .await
        .unwrap();
    assert_eq!(e.api_keys.resolve(&k.key).await.unwrap().user_id, admin.id);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        e.api_keys.resolve(&k.key).await,
        Err(bigskies_core::auth::AuthError::Expired)
    );
    assert!(
        e.api_keys
            .create(admin.id, "bad", &["telescope".into()], None)
            .await
            .is_err(),
        "malformed scope"
    );
    assert!(
        e.api_keys
            .create(
                admin.id,
                "forever",
                &["*".into()],
                Some(Duration::from_secs(10 * 365 * 86_400))
            )
            .await
            .is_err()
    );
}

#[tokio::test]
async fn certificates_near_expiry_degrade_health_and_are_renewed() {
    let db = database().await;
    let short = SecuritySettings {
        cert_validity: Duration::from_secs(10 * 86_400),
        ..SecuritySettings::default()
    };
    let e = engines(&db, short);
    assert_eq!(e.tls.health().await.status.as_str(), "healthy");
    let c = e
        .tls
        .request(
            "obs.example.org",
            &["dome.example.org".into()],
            None,
            CertKind::SelfSigned,
        )
        .await
        .unwrap();
    assert!((c.expires_at - chrono::Utc::now()).num_days() <= 10);
    assert_eq!(
        e.tls.health().await.status.as_str(),
        "degraded",
        "10 days left is inside the 30-day window"
    );

    // An expired certificate makes health unhealthy.
    let old = self_signed("old.example.org", &[], Duration::from_secs(86_400)).unwrap();
    sqlx::query(
        "INSERT INTO tls_certificates (domain, certificate_pem, private_key_pem, expires_at, issuer)
         VALUES ('old.example.org', $1, $2, now() - interval '1 day', 'self-signed')",
    )
    .bind(&old.certificate_pem)
    .bind(&old.private_key_pem)
    .execute(db.pool())
    .await
    .unwrap();
    assert_eq!(e.tls.health().await.status.as_str(), "unhealthy");

    // With a longer validity configured, the renewal sweep brings everything back.
    e.settings.replace(SecuritySettings::default());
    let renewed = e.tls.renew_due().await;
    assert_eq!(renewed.len(), 2);
    assert!(renewed.iter().all(|(_, r)| r.is_ok()), "{renewed:?}");
    assert_eq!(e.tls.health().await.status.as_str(), "healthy");
    let again = e.tls.get("obs.example.org").await.unwrap();
    assert_eq!(
        again.sans,
        vec!["dome.example.org".to_owned()],
        "renewal keeps the names"
    );
    assert!(matches!(
        e.tls.renew("nowhere.example.org").await,
        Err(SecurityError::NotFound(_))
    ));
    assert!(
        matches!(
            e.tls
                .request("obs.example.org", &[], None, CertKind::Acme)
                .await,
            Err(SecurityError::Acme(_))
        ),
        "no ACME configured"
    );
}

/// A Pebble ACME server on free ports, killed on drop.
struct Pebble {
    child: std::process::Child,
    dir: std::path::PathBuf,
    port: u16,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_pebble() -> Option<Pebble> {
    if !std::path::Path::new("/usr/bin/pebble").exists() {
        return None;
    }
    let dir = std::env::temp_dir().join(format!("bsk-pebble-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let tls = self_signed("localhost", &[], Duration::from_secs(86_400)).unwrap();
    std::fs::write(dir.join("cert.pem"), &tls.certificate_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &tls.private_key_pem).unwrap();
    let (port, mgmt) = (free_port(), free_port());
    let config = serde_json::json!({"pebble": {
        "listenAddress": format!("127.0.0.1:{port}"),
        "managementListenAddress": format!("127.0.0.1:{mgmt}"),
        "certificate": dir.join("cert.pem"),
        "privateKey": dir.join("key.pem"),
        "httpPort": free_port(), "tlsPort": free_port(),
        "ocspResponderURL": "", "externalAccountBindingRequired": false
    }});
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let child = std::process::Command::new("/usr/bin/pebble")
        .arg("-config")
        .arg(dir.join("config.json"))
        .env("PEBBLE_VA_ALWAYS_VALID", "1")
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pebble = Pebble { child, dir, port };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some(pebble);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("pebble did not start listening on {port}");
}

#[tokio::test]
async fn acme_certificates_come_from_a_local_pebble() {
    let Some(pebble) = start_pebble().await else {
        eprintln!("SKIPPED: /usr/bin/pebble is not installed (apt-get install -y pebble)");
        return;
    };
    let db = database().await;
    let responder = MemoryResponder::default();
    let acme = InstantAcme {
        directory_url: format!("https://localhost:{}/dir", pebble.port),
        root_pem: Some(pebble.dir.join("cert.pem")),
        contact: "ops@example.org".into(),
        responder: Arc::new(responder.clone()),
    };
    let e = engines(&db, SecuritySettings::default());
    let tls = e.tls.clone().with_acme(Arc::new(acme));
    let c = tls
        .request(
            "acme.example.org",
            &[],
            Some("ops@example.org"),
            CertKind::Acme,
        )
        .await
        .unwrap();
    assert_eq!(c.issuer, "letsencrypt");
    assert!(c.expires_at > chrono::Utc::now() + chrono::Duration::days(1));
    assert!(
        c.certificate_pem.matches("BEGIN CERTIFICATE").count() >= 2,
        "leaf and chain"
    );
    let renewed = tls.renew("acme.example.org").await.unwrap();
    assert_eq!(renewed.issuer, "letsencrypt");
    assert_ne!(renewed.certificate_pem, c.certificate_pem);
}

/// Issue 20, item 2: a flood of failed logins (which needs no credential) never runs more
/// argon2 verifications at once than the process has cores, and what does not fit in the short
/// queue is refused as `unavailable` instead of waiting (and allocating) without bound.
#[tokio::test]
async fn a_login_flood_runs_at_most_one_verification_per_core_and_refuses_the_rest() {
    use bigskies_security::hashpool::{DEFAULT_QUEUE, HashPool};
    let db = database().await;
    let mut e = engines(&db, SecuritySettings::default());
    // A pool like the process-wide one, but this test's own: the flood must not make the
    // other tests running in this process wait or be refused.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = HashPool::new(cores, DEFAULT_QUEUE);
    e.accounts = e.accounts.with_hash_pool(pool.clone());
    e.accounts
        .create_user(
            "victim",
            "victim@example.org",
            "a long fine passphrase",
            None,
        )
        .await
        .unwrap();
    let before = pool.stats().refused;
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..64 {
        let accounts = e.accounts.clone();
        // Half for a real user, half for nobody: both cost one verification.
        let user = if i % 2 == 0 { "victim" } else { "nobody" };
        flood.spawn(async move { accounts.login(user, &format!("wrong guess {i}")).await });
    }
    let (mut failed, mut busy) = (0, 0);
    while let Some(r) = flood.join_next().await {
        match r.unwrap() {
            Err(SecurityError::AuthenticationFailed) => failed += 1,
            Err(SecurityError::Busy(m)) => {
                assert_eq!(m, "too many logins in progress, try again");
                busy += 1;
            }
            other => panic!("unexpected login result {other:?}"),
        }
    }
    let s = pool.stats();
    assert_eq!(s.workers, cores, "{s:?}");
    assert!(s.peak_running <= cores, "{s:?}");
    assert!(
        busy > 0,
        "some of the flood must be refused ({failed} failed)"
    );
    assert!(s.refused - before >= busy as u64, "{s:?}");
    assert!(failed >= 1, "the pool still works under a flood");
    // And once the flood has passed, a login goes through again.
    e.accounts
        .login("victim", "a long fine passphrase")
        .await
        .map(drop)
        .or_else(|e| match e {
            // Five of the flood's guesses locked the account: that is the lockout, not the pool.
            SecurityError::AuthenticationFailed => Ok(()),
            other => Err(other),
        })
        .unwrap();
}
