//! The security coordinator and the authenticator against the real PostgreSQL and Mosquitto.
//!
//! Each test has its own database and topic root. A tiny "guard" coordinator, launched with its
//! own engines and its own bus connection (as another coordinator process would be), shows that
//! every kind of bad credential is refused outside the security coordinator too.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bigskies_coordinators::security::SecurityCoordinator;
use bigskies_core::auth::{Access, Operation};
use bigskies_core::bus::{Bus, BusConfig, Message};
use bigskies_core::config::MIGRATOR;
use bigskies_core::error::HandlerError;
use bigskies_core::runtime::{Context, Coordinator, Launch, RuntimeConfig, launch};
use bigskies_core::topics::Topics;
use bigskies_scenarios::provision::{self, TestDatabase};
use bigskies_security::audit::{Outcome, events};
use bigskies_security::ratelimit::{LoginLimits, Rate};
use bigskies_security::tokens::Claims;
use bigskies_security::{Secret, SecurityEngines, SecuritySettings};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc::Receiver;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(15);
const SECRET: &str = "test-only-signing-secret-0123456789abcdef";
const ADMIN_PASSWORD: &str = "Adm1n-test-passphrase!";
const USER_PASSWORD: &str = "a perfectly fine passphrase";

// ---- a coordinator other than security --------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(tag = "op", content = "body")]
enum GuardRequest {
    #[serde(rename = "guard/whoami")]
    WhoAmI {},
    #[serde(rename = "guard/read")]
    Read {},
    #[serde(rename = "guard/control")]
    Control {},
}

struct Guard;

impl Coordinator for Guard {
    type Request = GuardRequest;

    fn name(&self) -> &'static str {
        "guard"
    }

    fn operations(&self) -> &'static [Operation] {
        const OPS: &[Operation] = &[
            Operation::new(
                "guard/whoami",
                Access::object("guard", "whoami"),
                "any credential",
            ),
            Operation::new(
                "guard/read",
                Access::role("telescope", "read"),
                "RBAC telescope:read",
            ),
            Operation::new(
                "guard/control",
                Access::role("telescope", "control"),
                "RBAC telescope:control",
            ),
        ];
        OPS
    }

    async fn handle(&self, ctx: Context, _r: GuardRequest) -> Result<Value, HandlerError> {
        let p = ctx
            .principal
            .ok_or_else(|| HandlerError::unauthenticated("no principal"))?;
        Ok(json!({"success": true, "user": p.username, "user_id": p.user_id}))
    }
}

// ---- harness ---------------------------------------------------------------------------------

struct Harness {
    db: TestDatabase,
    topics: Topics,
    client: Bus,
    replies: Receiver<Message>,
    reply_topic: String,
    stop: CancellationToken,
    engines: SecurityEngines,
    next: u64,
}

fn bus_config(host: &str, port: u16, prefix: &str) -> BusConfig {
    let mut c = BusConfig::new(host, port, prefix);
    c.backoff_max = Duration::from_secs(1);
    c.op_timeout = Duration::from_secs(5);
    c
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BIGSKIES_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

fn test_settings() -> SecuritySettings {
    SecuritySettings {
        leeway: Duration::ZERO,
        ..SecuritySettings::default()
    }
}

async fn wait_healthy(health: &mut Receiver<Message>) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let msg = tokio::time::timeout_at(deadline, health.recv())
            .await
            .expect("coordinator reports health")
            .unwrap();
        let v: Value = serde_json::from_slice(&msg.payload).unwrap();
        if v["payload"]["status"] == "healthy" {
            return;
        }
        eprintln!("not healthy yet: {v}");
    }
}

impl Harness {
    /// The security coordinator and the guard coordinator, each on its own bus connection.
    async fn start(settings: SecuritySettings) -> Self {
        init_logs();
        let p = provision::shared()
            .await
            .expect("provisioning PostgreSQL and Mosquitto");
        let db = p.fresh_database().await.expect("a fresh database");
        MIGRATOR.run(db.pool()).await.unwrap();
        let topics = Topics::new(provision::unique_topic_root());
        let (host, port) = (p.mqtt.host.clone(), p.mqtt.port);
        let stop = CancellationToken::new();
        // Subscribe before anything starts, so the first health publication is not missed.
        let (client, _task) =
            Bus::start(bus_config(&host, port, "test-client"), None, stop.clone());
        client.wait_connected(WAIT).await.unwrap();
        let mut security_health = client
            .subscribe(&topics.health("security"), 64)
            .await
            .unwrap();
        let mut guard_health = client.subscribe(&topics.health("guard"), 64).await.unwrap();
        let runtime = RuntimeConfig {
            topics: topics.clone(),
            health_poll: Duration::from_millis(200),
            ..RuntimeConfig::default()
        };

        let engines =
            SecurityEngines::new(db.pool().clone(), settings.clone(), &Secret::new(SECRET));
        let security = Arc::new(
            SecurityCoordinator::build(engines.clone(), Some(&Secret::new(ADMIN_PASSWORD)))
                .await
                .unwrap(),
        );
        let auth = security.authenticator();
        let cfg = Launch {
            bus: bus_config(&host, port, "security"),
            runtime: runtime.clone(),
            store: None,
            connect_timeout: WAIT,
            authenticator: Some(auth),
        };
        tokio::spawn(launch(security, cfg, stop.clone()));

        // The guard: engines of its own (as in another process), listening for security events.
        let guard_engines = SecurityEngines::new(db.pool().clone(), settings, &Secret::new(SECRET));
        let guard_auth = guard_engines.authenticator();
        let (events_bus, _task) =
            Bus::start(bus_config(&host, port, "guard-events"), None, stop.clone());
        events_bus.wait_connected(WAIT).await.unwrap();
        guard_auth
            .listen(&events_bus, &topics, stop.clone())
            .await
            .unwrap();
        let cfg = Launch {
            bus: bus_config(&host, port, "guard"),
            runtime,
            store: None,
            connect_timeout: WAIT,
            authenticator: Some(guard_auth.into_dyn()),
        };
        tokio::spawn(launch(Arc::new(Guard), cfg, stop.clone()));

        wait_healthy(&mut security_health).await;
        wait_healthy(&mut guard_health).await;
        let reply_topic = format!(
            "{}/client/{}/reply",
            topics.root(),
            uuid::Uuid::new_v4().simple()
        );
        let replies = client.subscribe(&reply_topic, 64).await.unwrap();
        Self {
            db,
            topics,
            client,
            replies,
            reply_topic,
            stop,
            engines,
            next: 0,
        }
    }

    /// Send `body` to `<coordinator>/<action>/<resource>` with a private reply topic and a
    /// correlation id, optionally with a token; return the reply.
    async fn ask(
        &mut self,
        coordinator: &str,
        op: &str,
        mut body: Value,
        token: Option<&str>,
    ) -> Value {
        self.next += 1;
        let cid = format!("c-{}", self.next);
        body["correlation_id"] = json!(cid);
        body["reply_to"] = json!(self.reply_topic);
        if let Some(t) = token {
            body["token"] = json!(t);
        }
        let (action, resource) = op.split_once('/').unwrap();
        self.client
            .publish(
                &self.topics.request(coordinator, action, resource),
                body.to_string(),
                false,
            )
            .await
            .unwrap();
        self.reply_for(&cid).await
    }

    async fn reply_for(&mut self, cid: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.replies.recv())
                .await
                .unwrap_or_else(|_| panic!("no reply for {cid}"))
                .unwrap();
            let mut v: Value = serde_json::from_slice(&msg.payload).unwrap();
            if v["correlation_id"] == cid {
                let map = v.as_object_mut().unwrap();
                map.remove("correlation_id");
                // Every reply names its request (issue 20, item 5); the shapes compared
                // below are the Go ones.
                assert!(map.remove("request_digest").is_some(), "{msg:?}");
                return v;
            }
        }
    }

    async fn security(&mut self, op: &str, body: Value, token: Option<&str>) -> Value {
        self.ask("security", op, body, token).await
    }

    async fn guard(&mut self, op: &str, token: Option<&str>) -> Value {
        self.ask("guard", op, json!({}), token).await
    }

    async fn login(&mut self, username: &str, password: &str) -> Value {
        self.security(
            "auth/login",
            json!({"username": username, "password": password}),
            None,
        )
        .await
    }

    async fn admin_token(&mut self) -> String {
        let r = self.login("admin", ADMIN_PASSWORD).await;
        r["token"]
            .as_str()
            .unwrap_or_else(|| panic!("admin login failed: {r}"))
            .to_owned()
    }

    /// Create a user as admin; returns its id.
    async fn create_user(&mut self, admin: &str, username: &str) -> String {
        let r = self
            .security("user/create", json!({"username": username, "email": format!("{username}@example.org"), "password": USER_PASSWORD}), Some(admin))
            .await;
        assert_eq!(r["success"], true, "{r}");
        r["user"]["id"].as_str().unwrap().to_owned()
    }

    async fn user_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(self.db.pool())
            .await
            .unwrap()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn claims_of(token: &str) -> Claims {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()
}

fn sign(claims: &Value, key: &str, alg: jsonwebtoken::Algorithm) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

// ---- tests -----------------------------------------------------------------------------------

#[tokio::test]
async fn go_login_validate_logout_flow_keeps_its_shapes() {
    let mut h = Harness::start(test_settings()).await;
    let login = h.login("admin", ADMIN_PASSWORD).await;
    let token = login["token"].as_str().expect("token").to_owned();
    assert_eq!(login["user"]["username"], "admin");
    assert_eq!(login["user"]["enabled"], true);
    assert_eq!(login["user"]["id"], "00000000-0000-0000-0000-000000000001");
    let expires =
        chrono::DateTime::parse_from_rfc3339(login["expires_at"].as_str().unwrap()).unwrap();
    assert!(expires > chrono::Utc::now());
    let c = claims_of(&token);
    assert_eq!(
        (c.iss.as_str(), c.username.as_str()),
        ("bigskies-security", "admin")
    );
    assert!(c.exp - c.iat == 3600, "lifetime from settings");

    let second = h.login("admin", ADMIN_PASSWORD).await;
    assert_ne!(second["token"], login["token"], "distinct tokens per login");

    let v = h
        .security("auth/validate", json!({"token": token}), None)
        .await;
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["user_id"], "00000000-0000-0000-0000-000000000001");

    let out = h
        .security("auth/logout", json!({"token": token}), None)
        .await;
    assert_eq!(
        out,
        json!({"success": true, "message": "Logout successful"})
    );
    let v = h
        .security("auth/validate", json!({"token": token}), None)
        .await;
    assert_eq!(v["valid"], false);
    assert!(v["error"].as_str().unwrap().contains("revoked"), "{v}");
    let v = h
        .security("auth/validate", json!({"token": second["token"]}), None)
        .await;
    assert_eq!(v["valid"], true, "the other session lives on");

    for junk in ["not.a.valid.jwt.token", ""] {
        let v = h
            .security("auth/validate", json!({"token": junk}), None)
            .await;
        assert_eq!(v["valid"], false);
        assert!(!v["error"].as_str().unwrap().is_empty());
    }
    let out = h
        .security("auth/logout", json!({"token": "invalid.token.value"}), None)
        .await;
    assert_eq!(out["success"], false);
    assert_eq!(out["error"], "Failed to logout");

    // The revocation is persisted: fresh engines (a restart) still refuse the token.
    let restarted =
        SecurityEngines::new(h.db.pool().clone(), test_settings(), &Secret::new(SECRET));
    restarted.tokens.load_revocations().await.unwrap();
    assert!(restarted.tokens.verify(&token).is_err());

    // Refresh swaps the token and revokes the old one.
    let t2 = second["token"].as_str().unwrap().to_owned();
    let r = h.security("auth/refresh", json!({}), Some(&t2)).await;
    let t3 = r["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    assert_eq!(h.guard("guard/whoami", Some(&t3)).await["user"], "admin");
    assert_eq!(
        h.guard("guard/whoami", Some(&t2)).await["error_code"],
        "unauthenticated"
    );
}

#[tokio::test]
async fn unknown_user_and_wrong_password_get_the_same_reply() {
    let mut h = Harness::start(test_settings()).await;
    let admin = h.admin_token().await;
    h.create_user(&admin, "carol").await;
    let wrong = h.login("carol", "not her password at all").await;
    let unknown = h.login("nobody-here", "not her password at all").await;
    let empty = h.login("", "").await;
    let expected = json!({"success": false, "error": "Authentication failed", "error_code": "unauthenticated"});
    assert_eq!(wrong, expected);
    assert_eq!(unknown, expected);
    assert_eq!(empty, expected);
    let no_fields = h.security("auth/login", json!({}), None).await;
    assert_eq!(no_fields, expected);
    let n = h
        .engines
        .audit
        .count(events::LOGIN, Outcome::Failure)
        .await
        .unwrap();
    assert_eq!(n, 4, "every failure is audited");
}

#[tokio::test]
async fn brute_force_locks_the_account_until_the_cool_down_ends() {
    let settings = SecuritySettings {
        max_failed_logins: 3,
        lockout_duration: Duration::from_secs(2),
        ..test_settings()
    };
    let mut h = Harness::start(settings).await;
    let admin = h.admin_token().await;
    h.create_user(&admin, "dave").await;
    assert!(h.login("dave", USER_PASSWORD).await["token"].is_string());
    for _ in 0..3 {
        assert_eq!(h.login("dave", "guess guess guess").await["success"], false);
    }
    let locked = h.login("dave", USER_PASSWORD).await;
    assert_eq!(
        locked["success"], false,
        "the right password does not open a locked account: {locked}"
    );
    assert_eq!(
        locked["error"], "Authentication failed",
        "a lock looks like any failure"
    );
    assert_eq!(
        h.engines
            .audit
            .count(events::LOCKOUT, Outcome::Denied)
            .await
            .unwrap(),
        1
    );
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let after = h.login("dave", USER_PASSWORD).await;
    assert!(
        after["token"].is_string(),
        "unlocked after the cool-down: {after}"
    );
    // Other accounts were never affected.
    assert!(h.login("admin", ADMIN_PASSWORD).await["token"].is_string());
}

#[tokio::test]
async fn every_bad_token_is_refused_by_another_coordinator() {
    let mut h = Harness::start(test_settings()).await;
    let admin = h.admin_token().await;
    let erin_id = h.create_user(&admin, "erin").await;
    let r = h
        .security(
            "role/assign",
            json!({"user_id": erin_id, "role_id": "observer"}),
            Some(&admin),
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    let good = h.login("erin", USER_PASSWORD).await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let me = h.guard("guard/whoami", Some(&good)).await;
    assert_eq!(me["user"], "erin");
    assert_eq!(me["user_id"], erin_id);
    assert_eq!(
        h.guard("guard/read", Some(&good)).await["success"],
        true,
        "observers read telescopes"
    );
    assert_eq!(
        h.guard("guard/control", Some(&good)).await["error_code"],
        "forbidden"
    );
    assert_eq!(
        h.guard("guard/whoami", None).await["error_code"],
        "unauthenticated"
    );

    let c = serde_json::to_value(claims_of(&good)).unwrap();
    let now = chrono::Utc::now().timestamp();
    let mut expired = c.clone();
    expired["iat"] = json!(now - 7200);
    expired["nbf"] = json!(now - 7200);
    expired["exp"] = json!(now - 3600);
    let mut audience = c.clone();
    audience["aud"] = json!("some-other-service");
    let mut issuer = c.clone();
    issuer["iss"] = json!("mallory");
    let mut identity = c.clone();
    identity["user_id"] = json!("00000000-0000-0000-0000-000000000001");
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(c.to_string())
    );
    let cases = [
        (
            "expired",
            sign(&expired, SECRET, jsonwebtoken::Algorithm::HS256),
        ),
        (
            "forged signature",
            sign(
                &c,
                "another-secret-another-secret-0123456789",
                jsonwebtoken::Algorithm::HS256,
            ),
        ),
        ("alg none", none),
        (
            "wrong audience",
            sign(&audience, SECRET, jsonwebtoken::Algorithm::HS256),
        ),
        (
            "wrong issuer",
            sign(&issuer, SECRET, jsonwebtoken::Algorithm::HS256),
        ),
        (
            "other algorithm",
            sign(&c, SECRET, jsonwebtoken::Algorithm::HS512),
        ),
        (
            "tampered identity",
            format!(
                "{}.{}.{}",
                good.split('.').next().unwrap(),
                URL_SAFE_NO_PAD.encode(identity.to_string()),
                good.split('.').nth(2).unwrap()
            ),
        ),
        ("garbage", "not.a.valid.jwt.token".to_owned()),
    ];
    for (what, token) in &cases {
        let r = h.guard("guard/whoami", Some(token)).await;
        assert_eq!(r["error_code"], "unauthenticated", "{what}: {r}");
    }

    // Revoked: logout at the security coordinator, then at once at the guard.
    assert_eq!(
        h.security("auth/logout", json!({"token": good}), None)
            .await["success"],
        true
    );
    let r = h.guard("guard/whoami", Some(&good)).await;
    assert_eq!(r["error_code"], "unauthenticated", "revoked: {r}");
    assert!(r["error"].as_str().unwrap().contains("revoked"), "{r}");
    let refusals = h
        .engines
        .audit
        .count(events::AUTHENTICATE, Outcome::Denied)
        .await
        .unwrap();
    assert!(
        refusals > cases.len() as i64,
        "refusals are audited ({refusals})"
    );

    // A deleted user's still-unexpired token stops working at once.
    let fresh = h.login("erin", USER_PASSWORD).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(h.guard("guard/whoami", Some(&fresh)).await["success"], true);
    assert_eq!(
        h.security("user/delete", json!({"user_id": erin_id}), Some(&admin))
            .await["success"],
        true
    );
    assert_eq!(
        h.guard("guard/whoami", Some(&fresh)).await["error_code"],
        "unauthenticated"
    );
    assert_eq!(h.login("erin", USER_PASSWORD).await["success"], false);
}

#[tokio::test]
async fn api_keys_are_scoped_hashed_and_revocable_everywhere() {
    let mut h = Harness::start(test_settings()).await;
    let admin = h.admin_token().await;
    let r = h
        .security(
            "apikey/create",
            json!({"name": "ci", "scopes": ["telescope:read"], "expires_in": 600}),
            Some(&admin),
        )
        .await;
    let key = r["api_key"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    assert!(key.starts_with("bsk_"));
    let id = r["key"]["id"].as_str().unwrap().to_owned();
    let stored: String = sqlx::query_scalar("SELECT key_hash FROM api_keys")
        .fetch_one(h.db.pool())
        .await
        .unwrap();
    assert_ne!(stored, key, "only the hash is stored");
    assert_eq!(stored, bigskies_security::apikeys::hash_key(&key));

    assert_eq!(h.guard("guard/read", Some(&key)).await["success"], true);
    assert_eq!(
        h.guard("guard/control", Some(&key)).await["error_code"],
        "forbidden",
        "the scope narrows even an admin"
    );
    let mint = h
        .security(
            "apikey/create",
            json!({"name": "more", "scopes": ["*"]}),
            Some(&key),
        )
        .await;
    assert_eq!(mint["error_code"], "forbidden", "keys cannot mint keys");

    let r = h
        .security("apikey/revoke", json!({"id": id}), Some(&admin))
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(
        h.guard("guard/read", Some(&key)).await["error_code"],
        "unauthenticated"
    );
    assert_eq!(
        h.guard("guard/read", Some("bsk_made_up_key")).await["error_code"],
        "unauthenticated"
    );
}

#[tokio::test]
async fn deny_through_a_group_overrides_allow_through_a_role() {
    let mut h = Harness::start(test_settings()).await;
    let admin = h.admin_token().await;
    let uid = h.create_user(&admin, "frank").await;
    for (op, body) in [
        ("role/create", json!({"name": "driver"})),
        (
            "role/grant",
            json!({"role": "driver", "resource": "telescope", "action": "control"}),
        ),
        ("role/assign", json!({"user_id": uid, "role": "driver"})),
        ("group/create", json!({"name": "grounded"})),
        (
            "group/grant",
            json!({"group": "grounded", "resource": "telescope", "action": "control", "effect": "deny"}),
        ),
    ] {
        let r = h.security(op, body, Some(&admin)).await;
        assert_eq!(r["success"], true, "{op}: {r}");
    }
    let token = h.login("frank", USER_PASSWORD).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        h.guard("guard/control", Some(&token)).await["success"],
        true,
        "allowed through the role"
    );
    let check = h
        .security(
            "permission/check",
            json!({"resource": "telescope", "action": "control"}),
            Some(&token),
        )
        .await;
    assert_eq!(check, json!({"allowed": true}));

    // Joining the group: the guard's cached grants are dropped by the broadcast at once.
    assert_eq!(
        h.security(
            "group/add",
            json!({"user_id": uid, "group": "grounded"}),
            Some(&admin)
        )
        .await["success"],
        true
    );
    let r = h.guard("guard/control", Some(&token)).await;
    assert_eq!(r["error_code"], "forbidden", "deny wins: {r}");
    let check = h
        .security(
            "permission/check",
            json!({"user_id": uid, "resource": "telescope", "action": "control"}),
            Some(&admin),
        )
        .await;
    assert_eq!(
        check,
        json!({"allowed": false, "reason": "Permission denied"})
    );

    // Leaving it restores the role's allow.
    assert_eq!(
        h.security(
            "group/remove",
            json!({"user_id": uid, "group": "grounded"}),
            Some(&admin)
        )
        .await["success"],
        true
    );
    assert_eq!(
        h.guard("guard/control", Some(&token)).await["success"],
        true
    );

    // A plain user cannot grant themselves anything, nor look at others.
    let r = h
        .security(
            "role/assign",
            json!({"user_id": uid, "role_id": "10000000-0000-0000-0000-000000000001"}),
            Some(&token),
        )
        .await;
    assert_eq!(r["error_code"], "forbidden");
    let r = h.security("permission/check", json!({"user_id": "00000000-0000-0000-0000-000000000001", "resource": "user", "action": "read"}), Some(&token)).await;
    assert_eq!(r["error_code"], "forbidden");
    let r = h
        .security(
            "user/update",
            json!({"id": uid, "enabled": true}),
            Some(&token),
        )
        .await;
    assert_eq!(r["error_code"], "forbidden");
    // Refusals are audited by the runtime right after the reply goes out.
    let deadline = std::time::Instant::now() + WAIT;
    let mut denied = 0;
    while denied < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        denied = h
            .engines
            .audit
            .count(events::OPERATION, Outcome::Denied)
            .await
            .unwrap();
    }
    assert!(denied >= 3, "{denied} refusals audited");
    assert!(
        h.engines
            .audit
            .count(events::GRANT, Outcome::Success)
            .await
            .unwrap()
            >= 3
    );
}

#[tokio::test]
async fn hostile_inputs_change_nothing_and_get_error_replies() {
    let mut h = Harness::start(test_settings()).await;
    let admin = h.admin_token().await;
    let users_before = h.user_count().await;
    let long = "x".repeat(100_000);
    let injections = [
        "admin' OR '1'='1",
        "admin'--",
        "'; DROP TABLE users; --",
        "admin\u{0}",
        "\u{202e}nimda",
    ];
    for s in injections.iter().copied().chain([long.as_str()]) {
        let r = h.login(s, s).await;
        assert_eq!(r["success"], false, "{r}");
        let r = h
            .security(
                "user/create",
                json!({"username": s, "email": format!("{s}@x.org"), "password": USER_PASSWORD}),
                Some(&admin),
            )
            .await;
        assert_eq!(r["success"], false);
        assert_eq!(r["error_code"], "invalid_request", "{r}");
        let r = h
            .security("role/create", json!({"name": s}), Some(&admin))
            .await;
        assert_eq!(r["error_code"], "invalid_request", "{r}");
        let r = h
            .security(
                "permission/check",
                json!({"resource": s, "action": "read"}),
                Some(&admin),
            )
            .await;
        assert_eq!(r["error_code"], "invalid_request", "{r}");
        let r = h
            .security(
                "role/assign",
                json!({"user_id": s, "role_id": "admin"}),
                Some(&admin),
            )
            .await;
        assert_eq!(r["error_code"], "invalid_request", "{r}");
        let r = h
            .security(
                "cert/request",
                json!({"domain": s, "type": "self-signed"}),
                Some(&admin),
            )
            .await;
        assert_eq!(r["success"], false, "{r}");
        let r = h.security("auth/validate", json!({"token": s}), None).await;
        assert_eq!(r["valid"], false);
    }
    // Non-UTF-8 bytes and broken JSON: error replies on the shared topic, nothing else.
    let mut shared = h
        .client
        .subscribe(&h.topics.response("security", "auth", "login"), 8)
        .await
        .unwrap();
    let mut raw = br#"{"username": "adm"#.to_vec();
    raw.extend_from_slice(&[0xff, 0xfe, 0x80]);
    raw.extend_from_slice(br#"in", "password": "x"}"#);
    for payload in [raw, b"{not json".to_vec(), b"[1,2,3]".to_vec()] {
        h.client
            .publish(
                &h.topics.request("security", "auth", "login"),
                payload,
                false,
            )
            .await
            .unwrap();
        let msg = tokio::time::timeout(WAIT, shared.recv())
            .await
            .expect("an error reply")
            .unwrap();
        let v: Value = serde_json::from_slice(&msg.payload).unwrap();
        assert_eq!(v["success"], false);
        assert_eq!(v["error_code"], "invalid_request", "{v}");
    }
    // Wrong types get error replies too.
    let r = h
        .security(
            "user/create",
            json!({"username": 5, "email": [], "password": {}}),
            Some(&admin),
        )
        .await;
    assert_eq!(r["error_code"], "invalid_request");

    assert_eq!(h.user_count().await, users_before, "no user was created");
    let roles: i64 = sqlx::query_scalar("SELECT count(*) FROM roles")
        .fetch_one(h.db.pool())
        .await
        .unwrap();
    assert_eq!(roles, 4, "no role was created");
    let certs: i64 = sqlx::query_scalar("SELECT count(*) FROM tls_certificates")
        .fetch_one(h.db.pool())
        .await
        .unwrap();
    assert_eq!(certs, 0);
    assert!(
        h.login("admin", ADMIN_PASSWORD).await["token"].is_string(),
        "the admin account is untouched"
    );
}

#[tokio::test]
async fn users_roles_and_certificates_are_managed_over_the_go_topics() {
    let mut h = Harness::start(test_settings()).await;
    let admin = h.admin_token().await;
    let uid = h.create_user(&admin, "grace").await;
    let dup = h
        .security(
            "user/create",
            json!({"username": "grace", "email": "g2@example.org", "password": USER_PASSWORD}),
            Some(&admin),
        )
        .await;
    assert_eq!(dup["error_code"], "conflict");
    assert!(
        !dup["error"].as_str().unwrap().contains("constraint"),
        "no DB text leaks: {dup}"
    );
    let weak = h
        .security(
            "user/create",
            json!({"username": "henry", "email": "h@example.org", "password": "short"}),
            Some(&admin),
        )
        .await;
    assert_eq!(weak["error_code"], "invalid_request");

    // Go's user/update blanked omitted fields; ours leaves them.
    let r = h
        .security(
            "user/update",
            json!({"id": uid, "email": "grace@new.example.org"}),
            Some(&admin),
        )
        .await;
    assert_eq!(r["user"]["email"], "grace@new.example.org");
    assert_eq!(r["user"]["enabled"], true);
    let r = h
        .security(
            "user/delete",
            json!({"user_id": uuid::Uuid::new_v4().to_string()}),
            Some(&admin),
        )
        .await;
    assert_eq!(
        r["error_code"], "not_found",
        "Go said success for unknown ids"
    );

    let list = h.security("user/list", json!({}), Some(&admin)).await;
    assert_eq!(list["count"], 2);
    let roles = h.security("role/list", json!({}), Some(&admin)).await;
    assert_eq!(roles["roles"].as_array().unwrap().len(), 4);
    let grace = h.login("grace", USER_PASSWORD).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        h.security("user/list", json!({}), Some(&grace)).await["error_code"],
        "forbidden"
    );
    assert_eq!(
        h.security(
            "user/create",
            json!({"username": "x1", "email": "x1@e.org", "password": USER_PASSWORD}),
            None
        )
        .await["error_code"],
        "unauthenticated"
    );

    // Changing one's own password needs the current one.
    let r = h
        .security(
            "user/update",
            json!({"id": uid, "password": "a brand new passphrase"}),
            Some(&grace),
        )
        .await;
    assert_eq!(r["error_code"], "forbidden");
    let r = h.security("user/update", json!({"id": uid, "password": "a brand new passphrase", "current_password": USER_PASSWORD}), Some(&grace)).await;
    assert_eq!(r["success"], true, "{r}");
    // Her own change ended her earlier sessions (issue 20, item 6): she logs in again.
    let grace = h.login("grace", "a brand new passphrase").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        h.security("user/get", json!({}), Some(&grace)).await["success"],
        true
    );

    // Certificates, with the Go shapes.
    let r = h
        .security(
            "cert/request",
            json!({"domain": "obs.example.org", "email": "ops@example.org", "type": "self-signed"}),
            Some(&admin),
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    let first = chrono::DateTime::parse_from_rfc3339(r["expires_at"].as_str().unwrap()).unwrap();
    assert!((first.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_days() >= 364);
    let r = h
        .security(
            "cert/renew",
            json!({"domain": "obs.example.org"}),
            Some(&admin),
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    let r = h
        .security(
            "cert/renew",
            json!({"domain": "unknown.example.org"}),
            Some(&admin),
        )
        .await;
    assert_eq!(r["success"], false);
    assert_eq!(r["domain"], "unknown.example.org");
    assert_eq!(r["error"], "Certificate not found");
    assert_eq!(r["expires_at"], "0001-01-01T00:00:00Z");
    let r = h
        .security(
            "cert/request",
            json!({"domain": "x.org", "type": "mystery"}),
            Some(&admin),
        )
        .await;
    assert_eq!(
        (r["error"].as_str(), r["domain"].as_str()),
        (Some("Invalid certificate type"), Some(""))
    );
    assert_eq!(
        h.security(
            "cert/request",
            json!({"domain": "y.org", "type": "self-signed"}),
            Some(&grace)
        )
        .await["error_code"],
        "forbidden"
    );
    let list = h.security("cert/list", json!({}), Some(&admin)).await;
    assert_eq!(list["certificates"].as_array().unwrap().len(), 1);
    assert!(
        list["certificates"][0].get("private_key_pem").is_none(),
        "keys never leave"
    );
}

#[tokio::test]
async fn a_login_reply_goes_only_to_the_reply_topic() {
    let mut h = Harness::start(test_settings()).await;
    let mut shared = h
        .client
        .subscribe(&h.topics.response("security", "auth", "login"), 8)
        .await
        .unwrap();
    let r = h.login("admin", ADMIN_PASSWORD).await;
    assert!(r["token"].is_string());
    assert!(
        tokio::time::timeout(Duration::from_millis(500), shared.recv())
            .await
            .is_err(),
        "nothing on the shared topic"
    );
}

/// Publish `body` to a security operation with no reply topic at all (as a Go client does) and
/// return what arrives on that operation's shared response topic.
async fn ask_without_reply_topic(
    h: &mut Harness,
    action: &str,
    resource: &str,
    body: Value,
) -> Value {
    let mut shared = h
        .client
        .subscribe(&h.topics.response("security", action, resource), 8)
        .await
        .unwrap();
    h.client
        .publish(
            &h.topics.request("security", action, resource),
            serde_json::to_vec(&body).unwrap(),
            false,
        )
        .await
        .unwrap();
    let msg = tokio::time::timeout(WAIT, shared.recv())
        .await
        .expect("a reply on the shared topic")
        .unwrap();
    serde_json::from_slice(&msg.payload).unwrap()
}

#[tokio::test]
async fn secrets_are_never_published_on_the_shared_response_topics() {
    let mut h = Harness::start(test_settings()).await;
    let admin = h.login("admin", ADMIN_PASSWORD).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let keys_before = h.security("apikey/list", json!({}), Some(&admin)).await["keys"]
        .as_array()
        .unwrap()
        .len();

    let login = ask_without_reply_topic(
        &mut h,
        "auth",
        "login",
        json!({"username": "admin", "password": ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!(login["success"], false, "{login}");
    assert_eq!(login["error_code"], "invalid_request", "{login}");
    assert!(login.get("token").is_none(), "{login}");

    let key = ask_without_reply_topic(
        &mut h,
        "apikey",
        "create",
        json!({"token": admin, "name": "leaky", "scopes": ["telescope:read"]}),
    )
    .await;
    assert_eq!(key["error_code"], "invalid_request", "{key}");
    assert!(key.get("api_key").is_none(), "{key}");
    let keys_after = h.security("apikey/list", json!({}), Some(&admin)).await["keys"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(keys_after, keys_before, "no key was made");

    let refreshed =
        ask_without_reply_topic(&mut h, "auth", "refresh", json!({"token": admin})).await;
    assert_eq!(refreshed["error_code"], "invalid_request", "{refreshed}");
    assert!(refreshed.get("token").is_none(), "{refreshed}");
    // The token that asked is still the one in force (nothing was revoked or issued).
    let me = h.security("user/get", json!({}), Some(&admin)).await;
    assert_eq!(me["success"], true, "{me}");

    // With a private reply topic the same requests are answered.
    assert!(h.login("admin", ADMIN_PASSWORD).await["token"].is_string());
    let made = h
        .security(
            "apikey/create",
            json!({"name": "private", "scopes": ["telescope:read"]}),
            Some(&admin),
        )
        .await;
    assert!(made["api_key"].is_string(), "{made}");
}

#[tokio::test]
async fn go_clients_get_login_replies_on_the_shared_topic_only_when_configured() {
    let mut h = Harness::start(SecuritySettings {
        go_shared_login_replies: true,
        ..test_settings()
    })
    .await;
    let login = ask_without_reply_topic(
        &mut h,
        "auth",
        "login",
        json!({"username": "admin", "password": ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!(login["success"], true, "{login}");
    assert!(login["token"].is_string());
    // API keys never go there, whatever the setting.
    let admin = login["token"].as_str().unwrap().to_owned();
    let key = ask_without_reply_topic(
        &mut h,
        "apikey",
        "create",
        json!({"token": admin, "name": "leaky", "scopes": ["*"]}),
    )
    .await;
    assert_eq!(key["error_code"], "invalid_request", "{key}");
}

// ---- logins and lockout (docs/authorization.md, "Logins and lockout") ------------------------

/// The admin's `locked_until` and `failed_attempts` as stored.
async fn lock_state(h: &Harness, username: &str) -> (Option<chrono::DateTime<chrono::Utc>>, i32) {
    sqlx::query_as("SELECT locked_until, failed_attempts FROM users WHERE username = $1")
        .bind(username)
        .fetch_one(h.db.pool())
        .await
        .unwrap()
}

/// Five wrong passwords, as any stranger on the bus may send.
async fn guess_five_times(h: &mut Harness, username: &str) {
    for i in 0..5 {
        let r = h
            .login(username, &format!("a wrong guess number {i}"))
            .await;
        assert_eq!(r["error"], "Authentication failed", "{r}");
    }
}

#[tokio::test]
async fn a_stranger_locks_only_the_admins_password_login_and_an_api_key_unlocks_it() {
    let mut h = Harness::start(test_settings()).await;
    let token = h.admin_token().await;
    let r = h
        .security(
            "apikey/create",
            json!({"name": "console", "scopes": ["*"], "expires_in": 3600}),
            Some(&token),
        )
        .await;
    let key = r["api_key"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    let plain_id = h.create_user(&token, "mallory").await;
    let plain = h.login("mallory", USER_PASSWORD).await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    guess_five_times(&mut h, "admin").await;
    let locked = h.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(
        locked["success"], false,
        "the password login is locked: {locked}"
    );
    let (until, _) = lock_state(&h, "admin").await;
    let until = until.expect("admin is locked");

    // Credentials issued before the lock keep working, in the security coordinator and elsewhere.
    let me = h.security("user/get", json!({}), Some(&token)).await;
    assert_eq!(me["success"], true, "{me}");
    let shown =
        chrono::DateTime::parse_from_rfc3339(me["user"]["locked_until"].as_str().unwrap()).unwrap();
    assert_eq!(shown, until, "user/get shows the lock: {me}");
    let list = h.security("user/list", json!({}), Some(&key)).await;
    assert_eq!(list["success"], true, "the API key administers: {list}");
    let shown = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "admin")
        .unwrap();
    assert!(
        shown["locked_until"].is_string(),
        "user/list shows the lock: {list}"
    );
    let r = h.security("auth/refresh", json!({}), Some(&token)).await;
    let token = r["token"]
        .as_str()
        .unwrap_or_else(|| panic!("a token is refreshed during the lock: {r}"))
        .to_owned();
    assert_eq!(h.guard("guard/whoami", Some(&token)).await["user"], "admin");
    assert_eq!(
        h.guard("guard/control", Some(&token)).await["success"],
        true
    );
    assert_eq!(h.guard("guard/read", Some(&key)).await["success"], true);
    assert_eq!(
        h.security("role/list", json!({}), Some(&key)).await["success"],
        true
    );

    // A plain user may not lift it, and the refusal changes nothing.
    let r = h
        .security("user/unlock", json!({"username": "admin"}), Some(&plain))
        .await;
    assert_eq!(r["error_code"], "forbidden", "{r}");
    assert_eq!(lock_state(&h, "admin").await.0, Some(until));
    assert_eq!(h.login("admin", ADMIN_PASSWORD).await["success"], false);
    let r = h
        .security(
            "user/unlock",
            json!({"username": "nobody-here"}),
            Some(&key),
        )
        .await;
    assert_eq!(r["error_code"], "not_found", "{r}");

    // The administrator's own API key lifts it; no password needed.
    let r = h
        .security("user/unlock", json!({"username": "admin"}), Some(&key))
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["was_locked"], true, "{r}");
    assert_eq!(r["user_id"], "00000000-0000-0000-0000-000000000001");
    assert_eq!(lock_state(&h, "admin").await, (None, 0));
    assert!(h.login("admin", ADMIN_PASSWORD).await["token"].is_string());
    let me = h.security("user/get", json!({}), Some(&token)).await;
    assert!(me["user"]["locked_until"].is_null(), "{me}");

    // By id too, for any user.
    guess_five_times(&mut h, "mallory").await;
    assert_eq!(h.login("mallory", USER_PASSWORD).await["success"], false);
    let r = h
        .security("user/unlock", json!({"user_id": plain_id}), Some(&token))
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert!(h.login("mallory", USER_PASSWORD).await["token"].is_string());
    assert_eq!(
        h.engines
            .audit
            .count(events::USER_UNLOCK, Outcome::Success)
            .await
            .unwrap(),
        2,
        "every unlock is audited"
    );
}

#[tokio::test]
async fn attempts_against_a_locked_account_neither_count_nor_extend_the_lock() {
    let settings = SecuritySettings {
        max_failed_logins: 3,
        lockout_duration: Duration::from_secs(6),
        ..test_settings()
    };
    let mut h = Harness::start(settings).await;
    for i in 0..3 {
        h.login("admin", &format!("a wrong guess number {i}")).await;
    }
    let (until, failures) = lock_state(&h, "admin").await;
    let until = until.expect("locked");
    assert_eq!(failures, 0);
    // The stranger keeps guessing (and once even guesses right) during the lock.
    for i in 0..4 {
        let r = h.login("admin", &format!("still guessing {i}")).await;
        assert_eq!(r["success"], false);
    }
    assert_eq!(h.login("admin", ADMIN_PASSWORD).await["success"], false);
    assert_eq!(
        lock_state(&h, "admin").await,
        (Some(until), 0),
        "neither counted nor extended"
    );
    let wait = (until - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(200)).await;
    assert!(
        h.login("admin", ADMIN_PASSWORD).await["token"].is_string(),
        "open one lockout_duration after the guess that locked it"
    );
}

#[tokio::test]
async fn a_restart_with_the_startup_secret_lifts_the_bootstrap_administrators_lock() {
    let mut h = Harness::start(test_settings()).await;
    guess_five_times(&mut h, "admin").await;
    assert!(lock_state(&h, "admin").await.0.is_some());

    // A restart without the secret leaves the lock alone.
    let engines = SecurityEngines::new(h.db.pool().clone(), test_settings(), &Secret::new(SECRET));
    SecurityCoordinator::build(engines.clone(), None)
        .await
        .unwrap();
    assert!(lock_state(&h, "admin").await.0.is_some());
    assert_eq!(h.login("admin", ADMIN_PASSWORD).await["success"], false);

    // With BIGSKIES_ADMIN_PASSWORD configured, the start lifts it (and says so in the audit).
    SecurityCoordinator::build(engines, Some(&Secret::new(ADMIN_PASSWORD)))
        .await
        .unwrap();
    assert_eq!(lock_state(&h, "admin").await, (None, 0));
    assert!(h.login("admin", ADMIN_PASSWORD).await["token"].is_string());
    let via: Vec<Value> =
        sqlx::query_scalar("SELECT detail FROM audit_log WHERE event = $1 AND outcome = 'success'")
            .bind(events::USER_UNLOCK)
            .fetch_all(h.db.pool())
            .await
            .unwrap();
    assert_eq!(via.len(), 1, "{via:?}");
    assert_eq!(via[0]["via"], "startup_secret", "{via:?}");
}

#[tokio::test]
async fn every_refused_and_every_allowed_change_is_audited_with_its_credential() {
    let mut h = Harness::start(test_settings()).await;
    let admin = h.login("admin", ADMIN_PASSWORD).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    h.create_user(&admin, "auditee").await;
    let user = h.login("auditee", USER_PASSWORD).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = h
        .security(
            "apikey/create",
            json!({"name": "narrow", "scopes": ["telescope:read"]}),
            Some(&user),
        )
        .await;
    let key_id = key["key"]["id"].as_str().unwrap().to_owned();
    let key = key["api_key"].as_str().unwrap().to_owned();

    // Refused by RBAC, refused by the key's scope, refused for no credential, allowed.
    assert_eq!(
        h.guard("guard/control", Some(&user)).await["error_code"],
        "forbidden"
    );
    assert_eq!(
        h.guard("guard/whoami", Some(&key)).await["error_code"],
        "forbidden"
    );
    assert_eq!(
        h.guard("guard/control", None).await["error_code"],
        "unauthenticated"
    );
    assert_eq!(
        h.guard("guard/control", Some(&admin)).await["success"],
        true
    );

    // The runtime writes the record after the reply: wait for all four.
    let rows = eventually_rows(&h, 4).await;
    let find = |op: &str, kind: Option<&str>, outcome: &str| {
        rows.iter().any(|(o, d)| {
            o == outcome
                && d["operation"] == op
                && d["coordinator"] == "guard"
                && kind.is_none_or(|k| d["credential_kind"] == k)
        })
    };
    assert!(find("guard/control", Some("token"), "denied"), "{rows:?}");
    assert!(find("guard/whoami", Some("api_key"), "denied"), "{rows:?}");
    assert!(
        rows.iter()
            .any(|(_, d)| d["credential_id"] == format!("apikey:{key_id}")
                && d["error_code"] == "forbidden"),
        "the key is named: {rows:?}"
    );
    assert!(find("guard/control", None, "denied"), "{rows:?}");
    assert!(find("guard/control", Some("token"), "success"), "{rows:?}");
}

/// The `operation` audit records of the guard coordinator, once there are at least `n`.
async fn eventually_rows(h: &Harness, n: usize) -> Vec<(String, Value)> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let rows: Vec<(String, Value)> = sqlx::query_as(
            "SELECT outcome, detail FROM audit_log
              WHERE event = 'operation' AND detail->>'coordinator' = 'guard' ORDER BY id",
        )
        .fetch_all(h.db.pool())
        .await
        .unwrap();
        if rows.len() >= n || std::time::Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- password changes end earlier sessions (issue 20, item 6) ---------------------------------

#[tokio::test]
async fn a_password_change_revokes_earlier_tokens_and_on_request_api_keys() {
    let mut h = Harness::start(test_settings()).await;
    let admin = h.admin_token().await;
    let me = h.security("user/get", json!({}), Some(&admin)).await;
    let admin_id = me["user"]["id"].as_str().unwrap().to_owned();
    let r = h
        .security(
            "apikey/create",
            json!({"name": "old", "scopes": ["*"]}),
            Some(&admin),
        )
        .await;
    let key = r["api_key"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    assert_eq!(h.guard("guard/whoami", Some(&key)).await["success"], true);

    let new_password = "a brand new operator passphrase";
    let r = h
        .security(
            "user/update",
            json!({"id": admin_id, "password": new_password, "revoke_api_keys": true}),
            Some(&admin),
        )
        .await;
    assert_eq!(r["success"], true, "{r}");

    // The token and the key made before the change are refused here and elsewhere.
    let v = h
        .security("auth/validate", json!({"token": admin}), None)
        .await;
    assert_eq!(v["valid"], false, "{v}");
    assert_eq!(
        h.guard("guard/whoami", Some(&admin)).await["error_code"],
        "unauthenticated"
    );
    assert_eq!(
        h.guard("guard/whoami", Some(&key)).await["error_code"],
        "unauthenticated"
    );
    assert_eq!(
        h.security("user/get", json!({}), Some(&admin)).await["error_code"],
        "unauthenticated"
    );
    // A login right after the change, with the new password, works everywhere.
    let r = h.login("admin", new_password).await;
    let fresh = r["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    assert_eq!(h.guard("guard/whoami", Some(&fresh)).await["success"], true);
    let v = h
        .security("auth/validate", json!({"token": fresh}), None)
        .await;
    assert_eq!(v["valid"], true, "{v}");
}

#[tokio::test]
async fn an_administrators_reset_revokes_the_users_tokens_and_keys_only_when_asked() {
    let mut h = Harness::start(test_settings()).await;
    let admin = h.admin_token().await;
    let id = h.create_user(&admin, "frank").await;
    let r = h.login("frank", USER_PASSWORD).await;
    let old = r["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    let r = h
        .security(
            "apikey/create",
            json!({"name": "frank's", "scopes": ["*"]}),
            Some(&old),
        )
        .await;
    let key = r["api_key"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    assert_eq!(h.guard("guard/whoami", Some(&old)).await["success"], true);

    let reset = "a reset passphrase for him";
    let r = h
        .security(
            "user/update",
            json!({"id": id, "password": reset}),
            Some(&admin),
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(
        h.guard("guard/whoami", Some(&old)).await["error_code"],
        "unauthenticated",
        "a token from before the reset"
    );
    assert_eq!(
        h.security("auth/validate", json!({"token": old}), None)
            .await["valid"],
        false
    );
    assert_eq!(
        h.guard("guard/whoami", Some(&key)).await["success"],
        true,
        "keys stay unless revoke_api_keys is asked for"
    );
    let r = h.login("frank", reset).await;
    let fresh = r["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    assert_eq!(h.guard("guard/whoami", Some(&fresh)).await["success"], true);

    let again = "another reset passphrase";
    let r = h
        .security(
            "user/update",
            json!({"id": id, "password": again, "revoke_api_keys": true}),
            Some(&admin),
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(
        h.guard("guard/whoami", Some(&key)).await["error_code"],
        "unauthenticated"
    );
    assert_eq!(
        h.guard("guard/whoami", Some(&fresh)).await["error_code"],
        "unauthenticated"
    );
    assert_eq!(h.login("frank", again).await["success"], true);
}

// ---- login rate limits (issue 20, item 2) -----------------------------------------------------

#[tokio::test]
async fn logins_are_rate_limited_per_client_per_username_and_in_all() {
    let slow = Rate {
        burst: 3,
        per_minute: 1,
    };
    let mut h = Harness::start(SecuritySettings {
        login_limits: LoginLimits {
            per_source: slow,
            per_user: Rate {
                burst: 5,
                per_minute: 1,
            },
            global: Rate {
                burst: 8,
                per_minute: 1,
            },
        },
        ..test_settings()
    })
    .await;
    for i in 0..3 {
        let r = h.login("someone", &format!("guess {i}")).await;
        assert_eq!(r["error"], "Authentication failed", "{r}");
    }
    let r = h.login("someone-else", "guess").await;
    assert_eq!(r["error_code"], "unavailable", "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .starts_with("too many logins from this client, try again in "),
        "{r}"
    );
    // Another client is not held back by the first one's bucket, until the username's is empty.
    h.reply_topic = format!("{}/client/second/reply", h.topics.root());
    h.replies = h.client.subscribe(&h.reply_topic, 64).await.unwrap();
    for _ in 0..2 {
        assert_eq!(
            h.login("someone", "x").await["error"],
            "Authentication failed"
        );
    }
    let r = h.login("someone", "x").await;
    assert!(
        r["error"].as_str().unwrap().contains("for this user"),
        "{r}"
    );
    // The right password of another user still gets in; then the server-wide bucket is empty.
    assert!(h.login("admin", ADMIN_PASSWORD).await["token"].is_string());
    h.reply_topic = format!("{}/client/third/reply", h.topics.root());
    h.replies = h.client.subscribe(&h.reply_topic, 64).await.unwrap();
    assert_eq!(h.login("a", "b").await["error"], "Authentication failed");
    assert_eq!(h.login("c", "d").await["error"], "Authentication failed");
    let r = h.login("e", "f").await;
    assert!(
        r["error"].as_str().unwrap().contains("on this server"),
        "{r}"
    );
}
