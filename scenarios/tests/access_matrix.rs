#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! The access matrix: every operation of every coordinator (`operations::all()`) sent with
//! every kind of credential against one full deployment, each outcome compared with the table
//! checked in as `docs/access-matrix.md`. An operation without a row, a row for no operation
//! and every differing cell fail the test (all listed at once). After every request that did
//! not succeed, the database (every table but the audit log and the health history, minus
//! volatile columns) and the simulator's mounts must be exactly as before.
//!
//! The fixture and the way state-changing successes are kept from disturbing the next case are
//! described in the table's introduction.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use bigskies_coordinators::operations;
use bigskies_core::auth::Access;
use bigskies_scenarios::provision;
use bigskies_scenarios::scenario::step::parse_step;
use bigskies_scenarios::scenario::{Context, Target};
use bigskies_scenarios::stack::{ConfigSeed, Stack, StackOptions};

const KINDS: [&str; 14] = [
    "none",
    "garbage",
    "expired",
    "revoked",
    "deleted",
    "locked",
    "plain",
    "owner",
    "grantee",
    "member",
    "operator",
    "admin",
    "key-narrow",
    "key-right",
];

const PASSWORD: &str = "matrix-password-1234";
const GARBAGE: &str = "garbage.not-a.token";

/// Operations that run with the caller holding the active session on its telescope (when it
/// may start one).
const NEEDS_SESSION: [&str; 7] = [
    "telescope/control/slew",
    "telescope/control/park",
    "telescope/control/unpark",
    "telescope/control/abort",
    "telescope/control/track",
    "telescope/device/connect",
    "telescope/device/disconnect",
];

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/access-matrix.md")
}

/// The table: `coordinator/op` → (permission, cells by kind).
fn read_table() -> BTreeMap<String, (String, BTreeMap<String, String>)> {
    let text = std::fs::read_to_string(doc_path()).expect("docs/access-matrix.md");
    let mut header: Option<Vec<String>> = None;
    let mut rows = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if !line.starts_with('|') {
            header = None;
            continue;
        }
        let cells: Vec<String> = line
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().trim_matches('`').to_owned())
            .collect();
        if cells
            .iter()
            .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
        {
            continue;
        }
        match &header {
            None => {
                if cells.first().map(String::as_str) == Some("coordinator") {
                    header = Some(cells);
                }
            }
            Some(h) => {
                let key = format!("{}/{}", cells[0], cells[1]);
                let mut by_kind = BTreeMap::new();
                for (name, value) in h.iter().zip(&cells).skip(3) {
                    by_kind.insert(name.clone(), value.clone());
                }
                assert!(
                    rows.insert(key.clone(), (cells[2].clone(), by_kind))
                        .is_none(),
                    "two rows for {key}"
                );
            }
        }
    }
    rows
}

/// The outcome class of a reply.
fn class(reply: &Value) -> String {
    if let Some(v) = reply.get("valid").and_then(Value::as_bool) {
        return if v { "valid" } else { "invalid" }.into();
    }
    let failed = reply.get("success") == Some(&Value::Bool(false));
    match reply.get("error_code").and_then(Value::as_str) {
        Some("unauthenticated") => "unauth".into(),
        Some("invalid_request") => "invalid".into(),
        Some(code) => code.into(),
        None if failed => "failed".into(),
        None => "ok".into(),
    }
}

fn permission(access: &Access) -> String {
    access.permission().unwrap_or_else(|| "public".into())
}

struct Fixture {
    run: String,
    sim: String,
    /// Main credential of each kind (`None` for `none`).
    main: BTreeMap<&'static str, Option<String>>,
    /// Second and third tokens of the token kinds (for `auth/refresh` and `auth/logout`).
    spare_refresh: BTreeMap<&'static str, String>,
    spare_logout: BTreeMap<&'static str, String>,
    /// The user behind each kind (keys: the owner).
    user_ids: BTreeMap<&'static str, String>,
    /// API keys of the owner by scope.
    keys: BTreeMap<String, String>,
    subject: String,
    telescope: String,
    group_telescope: String,
    mounts: Vec<String>,
    camera: String,
    site: String,
    group: String,
    other_group: String,
    role: String,
    cert_domain: String,
    plugin: String,
    element: String,
    service: String,
    counter: u64,
}

impl Fixture {
    fn user_kind(kind: &str) -> &str {
        match kind {
            "key-narrow" | "key-right" => "owner",
            k => k,
        }
    }

    fn telescope_for(&self, kind: &str) -> String {
        if kind == "member" {
            self.group_telescope.clone()
        } else {
            self.telescope.clone()
        }
    }

    fn mount_for(&self, kind: &str) -> String {
        if kind == "member" {
            self.mounts[1].clone()
        } else {
            self.mounts[0].clone()
        }
    }

    fn token(&self, kind: &str) -> String {
        self.main[kind].clone().expect("a token")
    }

    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }
}

struct Harness {
    cx: Context,
    pool: sqlx::PgPool,
    http: reqwest::Client,
    seq: u64,
    admin_password: String,
}

impl Harness {
    async fn send(&mut self, op: &str, body: Value, token: Option<&str>) -> Value {
        self.seq += 1;
        let cid = format!("matrix-{}", self.seq);
        let client = self.cx.client();
        let bytes = client.envelope(body, &cid, token);
        client
            .request(op, bytes, &cid, Duration::from_secs(10))
            .await
            .unwrap_or_else(
                |e| json!({"success": false, "error_code": "no_reply", "error": e.to_string()}),
            )
    }

    /// A request that must succeed (fixture building).
    async fn must(&mut self, op: &str, body: Value, token: &str) -> Value {
        let r = self.send(op, body.clone(), Some(token)).await;
        assert!(class(&r) == "ok", "fixture step {op} {body} failed: {r}");
        r
    }

    async fn login(&mut self, user: &str, password: &str) -> Value {
        self.send(
            "security/auth/login",
            json!({"username": user, "password": password}),
            None,
        )
        .await
    }

    async fn token(&mut self, user: &str) -> String {
        let pw = if user == "admin" {
            self.admin_password.clone()
        } else {
            PASSWORD.to_owned()
        };
        let r = self.login(user, &pw).await;
        r["token"]
            .as_str()
            .unwrap_or_else(|| panic!("login of {user}: {r}"))
            .to_owned()
    }

    /// Every table's rows digested (audit log, health history and volatile columns left out).
    async fn db_digest(&self) -> BTreeMap<String, String> {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables
              WHERE table_schema = 'public' AND table_type = 'BASE TABLE'
                AND table_name NOT IN ('audit_log', 'health_history', '_sqlx_migrations')
              ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap();
        let parts: Vec<String> = tables
            .iter()
            .map(|t| {
                format!(
                    "SELECT '{t}' AS t, count(*)::text || ':' || coalesce(md5(string_agg(
                        (to_jsonb(x) - ARRAY['last_seen','updated_at','last_heartbeat','last_used_at',
                                             'last_checked_at','last_health_check','checked_at',
                                             'last_login_at','last_error'])::text, ',' ORDER BY
                        (to_jsonb(x) - ARRAY['last_seen','updated_at','last_heartbeat','last_used_at',
                                             'last_checked_at','last_health_check','checked_at',
                                             'last_login_at','last_error'])::text)), '') AS d
                       FROM \"{t}\" x"
                )
            })
            .collect();
        let rows: Vec<(String, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(parts.join(" UNION ALL ")))
                .fetch_all(&self.pool)
                .await
                .unwrap();
        rows.into_iter().collect()
    }

    /// The mounts' state as the simulator reports it.
    async fn devices(&self, sim: &str) -> Vec<String> {
        let mut reads = Vec::new();
        for n in 0..2 {
            for p in [
                "connected",
                "rightascension",
                "declination",
                "slewing",
                "tracking",
                "atpark",
            ] {
                let url =
                    format!("{sim}/api/v1/telescope/{n}/{p}?ClientID=9&ClientTransactionID=1");
                let http = self.http.clone();
                reads.push(async move {
                    let v = match http.get(&url).send().await {
                        Ok(r) => r
                            .json::<Value>()
                            .await
                            .map(|v| {
                                if v["ErrorNumber"] == 0 {
                                    v["Value"].to_string()
                                } else {
                                    format!("error {}", v["ErrorNumber"])
                                }
                            })
                            .unwrap_or_else(|e| e.to_string()),
                        Err(e) => e.to_string(),
                    };
                    format!("telescope/{n} {p}={v}")
                });
            }
        }
        futures::future::join_all(reads).await
    }

    /// The database digest and the mounts' state, read together.
    async fn state(&self, sim: &str) -> (BTreeMap<String, String>, Vec<String>) {
        tokio::join!(self.db_digest(), self.devices(sim))
    }

    async fn alpaca(&self, sim: &str, n: usize, method: &str, params: &[(&str, &str)]) {
        let mut form = vec![("ClientID", "9"), ("ClientTransactionID", "2")];
        form.extend_from_slice(params);
        let _ = self
            .http
            .put(format!("{sim}/api/v1/telescope/{n}/{method}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(&form).unwrap_or_default())
            .send()
            .await;
    }

    /// Mounts connected, unparked, tracking, not slewing; no active session.
    async fn reset_devices(&mut self, fx: &Fixture) {
        let admin = fx.token("admin");
        for m in &fx.mounts {
            self.send(
                "telescope/device/connect",
                json!({"device_id": m}),
                Some(&admin),
            )
            .await;
        }
        for n in 0..2 {
            self.alpaca(&fx.sim, n, "abortslew", &[]).await;
            self.alpaca(&fx.sim, n, "unpark", &[]).await;
            self.alpaca(&fx.sim, n, "tracking", &[("Tracking", "True")])
                .await;
        }
    }

    async fn end_sessions(&self) {
        sqlx::query(
            "UPDATE telescope_sessions SET status = 'completed', ended_at = now() WHERE status = 'active'",
        )
        .execute(&self.pool)
        .await
        .unwrap();
    }

    async fn plugin_fixture(&mut self, name: &str, guid: &str) -> (String, String) {
        let step: serde_json::Map<String, Value> = serde_json::from_value(json!({
            "plugin_fixture": name,
            "manifest": {"id": guid, "name": name, "version": "1.0.0", "author": "matrix",
                         "process": {"command": "sleep", "args": ["60"]}},
        }))
        .unwrap();
        self.cx.run(&parse_step(&step).unwrap()).await.unwrap();
        let path = self
            .cx
            .var(&format!("{name}_path"))
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        let sha = self
            .cx
            .var(&format!("{name}_sha256"))
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        (path, sha)
    }
}

/// What one case needs after it ran.
enum Cleanup {
    None,
    Sessions,
    Devices,
    Admin(&'static str, Value),
    Relock,
}

async fn build_fixture(h: &mut Harness, admin_password: &str) -> Fixture {
    let run = h.cx.var("run").unwrap().as_str().unwrap().to_owned();
    let sim = h.cx.var("sim_url").unwrap().as_str().unwrap().to_owned();
    // The matrix logs in hundreds of times from one client within seconds; it tests access
    // decisions, not the login rate limits (framework/coordinators/tests/security.rs does), so
    // those are lifted.
    for scope in ["source", "user", "global"] {
        for (what, v) in [("burst", 1_000_000), ("per_minute", 1_000_000)] {
            h.cx.set_config(
                "security",
                &format!("login_{scope}_{what}"),
                json!(v),
                "int",
            )
            .await
            .unwrap();
        }
    }
    let admin = h.token("admin").await;
    let _ = admin_password;
    let mut user_ids = BTreeMap::new();
    let names = [
        "plain", "owner", "grantee", "member", "operator", "locked", "deleted", "subject",
    ];
    for n in names {
        let r = h
            .must(
                "security/user/create",
                json!({"username": format!("{n}-{run}"), "email": format!("{n}-{run}@example.org"), "password": PASSWORD}),
                &admin,
            )
            .await;
        user_ids.insert(n, r["user"]["id"].as_str().unwrap().to_owned());
    }
    user_ids.insert(
        "admin",
        h.send("security/user/get", json!({}), Some(&admin)).await["user"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    h.must(
        "security/role/assign",
        json!({"user_id": user_ids["operator"], "role": "operator"}),
        &admin,
    )
    .await;
    let group = format!("matrix-group-{run}");
    let other_group = format!("matrix-other-{run}");
    for g in [&group, &other_group] {
        h.must("security/group/create", json!({"name": g}), &admin)
            .await;
    }
    h.must(
        "security/group/add",
        json!({"user_id": user_ids["member"], "group": group}),
        &admin,
    )
    .await;
    let group_id = h.send("security/group/list", json!({}), Some(&admin)).await["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == group.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let role = format!("matrix-role-{run}");
    h.must("security/role/create", json!({"name": role}), &admin)
        .await;

    let mut main: BTreeMap<&'static str, Option<String>> = BTreeMap::new();
    let mut spare_refresh = BTreeMap::new();
    let mut spare_logout = BTreeMap::new();
    for n in [
        "plain", "owner", "grantee", "member", "operator", "locked", "deleted", "admin",
    ] {
        let user = if n == "admin" {
            "admin".to_owned()
        } else {
            format!("{n}-{run}")
        };
        let t = h.token(&user).await;
        main.insert(n, Some(t));
        spare_refresh.insert(n, h.token(&user).await);
        spare_logout.insert(n, h.token(&user).await);
    }
    main.insert("none", None);
    main.insert("garbage", Some(GARBAGE.to_owned()));

    // Revoked: a token of `plain` revoked by logout.
    let revoked = h.token(&format!("plain-{run}")).await;
    h.must("security/auth/logout", json!({"token": revoked}), &revoked)
        .await;
    main.insert("revoked", Some(revoked.clone()));
    spare_refresh.insert("revoked", revoked.clone());
    spare_logout.insert("revoked", revoked);

    // Locked: failed password logins after its tokens were issued.
    for _ in 0..6 {
        h.login(&format!("locked-{run}"), "wrong-password-wrong")
            .await;
    }
    let r = h.login(&format!("locked-{run}"), PASSWORD).await;
    assert_eq!(class(&r), "unauth", "the locked user can still log in: {r}");

    // Deleted: the user deleted after its tokens were issued.
    h.must(
        "security/user/delete",
        json!({"user_id": user_ids["deleted"]}),
        &admin,
    )
    .await;

    // Expired: a token issued with a one-second lifetime (leeway 0 from the start).
    h.cx.set_config("security", "token_duration", json!(1), "duration")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let expired = loop {
        let r = h.login(&format!("plain-{run}"), PASSWORD).await;
        let exp = chrono::DateTime::parse_from_rfc3339(r["expires_at"].as_str().unwrap()).unwrap();
        if exp < chrono::Utc::now() + chrono::Duration::seconds(30) {
            break r["token"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "token_duration not applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    h.cx.set_config("security", "token_duration", json!(3600), "duration")
        .await
        .unwrap();
    // Wait out the lifetime and the verification leeway.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = h
            .send("security/auth/validate", json!({"token": expired}), None)
            .await;
        if r["error"].as_str().is_some_and(|e| e.contains("expired")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the short token never expired: {r}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    main.insert("expired", Some(expired.clone()));
    spare_refresh.insert("expired", expired.clone());
    spare_logout.insert("expired", expired);

    // Objects.
    let owner = main["owner"].clone().unwrap();
    let member = main["member"].clone().unwrap();
    let telescope = h
        .must(
            "telescope/config/create",
            json!({"name": format!("matrix-{run}"), "mount_type": "equatorial"}),
            &owner,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let group_telescope = h
        .must(
            "telescope/config/create",
            json!({"name": format!("matrix-group-{run}"), "mount_type": "equatorial",
                   "owner_type": "group", "owner_id": group_id}),
            &member,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.must(
        "telescope/permission/grant",
        json!({"telescope_id": telescope, "principal_id": user_ids["grantee"], "permission": "control"}),
        &owner,
    )
    .await;
    let devices = h.must("telescope/device/list", json!({}), &admin).await;
    let list = devices["devices"].as_array().unwrap().clone();
    let of_type = |t: &str| -> Vec<String> {
        let mut v: Vec<(i64, String)> = list
            .iter()
            .filter(|d| {
                d["device_type"]
                    .as_str()
                    .unwrap_or("")
                    .eq_ignore_ascii_case(t)
            })
            .map(|d| {
                (
                    d["device_number"].as_i64().unwrap_or(0),
                    d["unique_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        v.sort();
        v.into_iter().map(|(_, u)| u).collect()
    };
    let mounts = of_type("telescope");
    assert_eq!(mounts.len(), 2, "two simulated mounts: {devices}");
    let camera = of_type("camera")[0].clone();
    h.must(
        "telescope/device/assign",
        json!({"telescope_id": telescope, "role": "telescope", "device_id": mounts[0]}),
        &owner,
    )
    .await;
    h.must(
        "telescope/device/assign",
        json!({"telescope_id": group_telescope, "role": "telescope", "device_id": mounts[1]}),
        &member,
    )
    .await;
    let site = h
        .must(
            "telescope/site/create",
            json!({"name": format!("site-{run}"), "latitude": 52.0, "longitude": 4.0}),
            &admin,
        )
        .await;
    let site = site["site"]["id"]
        .as_str()
        .or(site["id"].as_str())
        .unwrap()
        .to_owned();

    let cert_domain = format!("matrix-{run}.example.org");
    h.must(
        "security/cert/request",
        json!({"domain": cert_domain, "type": "self-signed"}),
        &admin,
    )
    .await;

    let plugin = "5b0c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d".to_owned();
    let (path, sha) = h.plugin_fixture("matrix_plugin", &plugin).await;
    h.must(
        "plugin/plugin/install",
        json!({"source": path, "sha256": sha, "start": false}),
        &admin,
    )
    .await;

    let element = format!("matrix-element-{run}");
    h.must(
        "uielement/event/register",
        json!({"id": element, "type": "panel", "title": "Matrix"}),
        &owner,
    )
    .await;
    let service = format!("matrix-service-{run}");
    h.must(
        "application/service/register",
        json!({"id": service, "name": "Matrix"}),
        &owner,
    )
    .await;

    // The owner's API keys: the narrow one, and one per permission an operation needs.
    let mut keys = BTreeMap::new();
    let mut scopes: BTreeSet<String> = BTreeSet::from(["telescope:read".to_owned()]);
    for (_, ops) in operations::all() {
        for o in ops {
            if let Some(p) = o.access.permission() {
                scopes.insert(p);
            }
        }
    }
    for s in scopes {
        let r = h
            .must(
                "security/apikey/create",
                json!({"name": format!("matrix {s}"), "scopes": [s]}),
                &owner,
            )
            .await;
        keys.insert(s, r["api_key"].as_str().unwrap().to_owned());
    }
    main.insert("key-narrow", Some(keys["telescope:read"].clone()));
    // Replaced by the key of the operation's own permission when a case is sent.
    main.insert("key-right", Some(keys["telescope:read"].clone()));

    let mut fx = Fixture {
        run,
        sim,
        main,
        spare_refresh,
        spare_logout,
        user_ids,
        keys,
        subject: String::new(),
        telescope,
        group_telescope,
        mounts,
        camera,
        site,
        group,
        other_group,
        role,
        cert_domain,
        plugin,
        element,
        service,
        counter: 0,
    };
    fx.subject = fx.user_ids["subject"].clone();
    h.reset_devices(&fx).await;
    fx
}

/// The credential a case is sent with.
fn credential(fx: &Fixture, op: &str, kind: &str, perm: &Option<String>) -> Option<String> {
    if op == "security/auth/refresh" {
        return match kind {
            "none" | "garbage" | "key-narrow" | "key-right" => credential(fx, "", kind, perm),
            k => Some(fx.spare_refresh[k].clone()),
        };
    }
    match kind {
        "key-right" => Some(match perm {
            Some(p) => fx.keys[p].clone(),
            None => fx.keys["telescope:read"].clone(),
        }),
        k => fx.main[k].clone(),
    }
}

/// Build the body of `op` for `kind`, creating per-case objects where the operation consumes
/// one; returns the body and what to undo when the case succeeds.
async fn prepare(h: &mut Harness, fx: &mut Fixture, op: &str, kind: &str) -> (Value, Cleanup) {
    let n = fx.next();
    let run = fx.run.clone();
    let admin = fx.token("admin");
    let owner = fx.token("owner");
    let tel = fx.telescope_for(kind);
    // The user whose objects a per-case object belongs to (the group for `member`).
    let creator = if kind == "member" {
        fx.token("member")
    } else {
        owner.clone()
    };
    let session_user = Fixture::user_kind(kind).to_owned();
    if NEEDS_SESSION.contains(&op)
        && let Some(Some(t)) = fx.main.get(session_user.as_str())
        && !matches!(kind, "none" | "garbage" | "expired" | "revoked" | "deleted")
    {
        let t = t.clone();
        h.send(
            "telescope/session/start",
            json!({"config_id": tel}),
            Some(&t),
        )
        .await;
    }
    use Cleanup as C;
    match op {
        "security/auth/login" => (
            json!({"username": format!("plain-{run}"), "password": PASSWORD}),
            C::None,
        ),
        "security/auth/logout" => {
            let token = match kind {
                "none" => String::new(),
                "garbage" => GARBAGE.into(),
                "key-narrow" | "key-right" => fx.keys["telescope:read"].clone(),
                k => fx.spare_logout[k].clone(),
            };
            (json!({"token": token}), C::None)
        }
        "security/auth/validate" => (
            json!({"token": fx.main[kind].clone().unwrap_or_default()}),
            C::None,
        ),
        "security/auth/refresh" => (json!({}), C::None),
        "security/user/create" => (
            json!({"username": format!("new{n}-{run}"), "email": format!("new{n}-{run}@example.org"), "password": PASSWORD}),
            C::None,
        ),
        "security/user/update" => (
            json!({"id": fx.user_ids["owner"], "email": format!("owner{n}-{run}@example.org")}),
            C::None,
        ),
        "security/user/delete" => {
            let r = h
                .must(
                    "security/user/create",
                    json!({"username": format!("victim{n}-{run}"), "email": format!("victim{n}-{run}@example.org"), "password": PASSWORD}),
                    &admin,
                )
                .await;
            (json!({"user_id": r["user"]["id"]}), C::None)
        }
        "security/user/get" => (json!({"user_id": fx.user_ids["owner"]}), C::None),
        "security/user/unlock" => (json!({"user_id": fx.user_ids["locked"]}), C::Relock),
        "security/role/assign" => {
            let b = json!({"user_id": fx.subject, "role": "observer"});
            (b.clone(), C::Admin("security/role/unassign", b))
        }
        "security/role/unassign" => {
            let b = json!({"user_id": fx.subject, "role": "observer"});
            h.must("security/role/assign", b.clone(), &admin).await;
            (b.clone(), C::Admin("security/role/unassign", b))
        }
        "security/role/create" => (json!({"name": format!("role{n}-{run}")}), C::None),
        "security/role/grant" => (
            json!({"role": fx.role, "resource": "matrix", "action": format!("a{n}")}),
            C::None,
        ),
        "security/role/ungrant" => {
            let b = json!({"role": fx.role, "resource": "matrix", "action": format!("a{n}")});
            h.must("security/role/grant", b.clone(), &admin).await;
            (b, C::None)
        }
        "security/group/create" => (json!({"name": format!("group{n}-{run}")}), C::None),
        "security/group/add" => {
            let b = json!({"user_id": fx.subject, "group": fx.other_group});
            (b.clone(), C::Admin("security/group/remove", b))
        }
        "security/group/remove" => {
            let b = json!({"user_id": fx.subject, "group": fx.other_group});
            h.must("security/group/add", b.clone(), &admin).await;
            (b.clone(), C::Admin("security/group/remove", b))
        }
        "security/group/grant" => (
            json!({"group": fx.other_group, "resource": "matrix", "action": format!("a{n}")}),
            C::None,
        ),
        "security/group/ungrant" => {
            let b =
                json!({"group": fx.other_group, "resource": "matrix", "action": format!("a{n}")});
            h.must("security/group/grant", b.clone(), &admin).await;
            (b, C::None)
        }
        "security/permission/check" => {
            (json!({"resource": "telescope", "action": "read"}), C::None)
        }
        "security/apikey/create" => (
            json!({"name": format!("key{n}"), "scopes": ["telescope:read"]}),
            C::None,
        ),
        "security/apikey/revoke" => {
            let r = h
                .must(
                    "security/apikey/create",
                    json!({"name": format!("revoke{n}"), "scopes": ["telescope:read"]}),
                    &owner,
                )
                .await;
            (json!({"id": r["key"]["id"]}), C::None)
        }
        "security/cert/request" => (
            json!({"domain": format!("c{n}-{run}.example.org"), "type": "self-signed"}),
            C::None,
        ),
        "security/cert/renew" => (json!({"domain": fx.cert_domain}), C::None),

        "telescope/config/create" => (
            json!({"name": format!("scope{n}-{run}"), "mount_type": "equatorial"}),
            C::None,
        ),
        "telescope/config/update" => (
            json!({"id": tel, "description": format!("changed {n}")}),
            C::None,
        ),
        "telescope/config/delete" => {
            let mut b = json!({"name": format!("doomed{n}-{run}"), "mount_type": "equatorial"});
            if kind == "member" {
                let gid = h.send("security/group/list", json!({}), Some(&admin)).await["groups"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|g| g["name"] == fx.group.as_str())
                    .unwrap()["id"]
                    .clone();
                b["owner_type"] = json!("group");
                b["owner_id"] = gid;
            }
            let r = h.must("telescope/config/create", b, &creator).await;
            (json!({"id": r["id"]}), C::None)
        }
        "telescope/config/get" => (json!({"id": tel}), C::None),
        "telescope/site/create" => (
            json!({"name": format!("site{n}-{run}"), "latitude": 10.0, "longitude": 20.0}),
            C::None,
        ),
        "telescope/site/update" | "telescope/site/get" => (
            json!({"id": fx.site, "description": format!("changed {n}")}),
            C::None,
        ),
        "telescope/site/delete" => {
            let r = h
                .must(
                    "telescope/site/create",
                    json!({"name": format!("gone{n}-{run}"), "latitude": 1.0, "longitude": 2.0}),
                    &admin,
                )
                .await;
            let id = r["site"]["id"]
                .as_str()
                .or(r["id"].as_str())
                .unwrap()
                .to_owned();
            (json!({"id": id}), C::None)
        }
        "telescope/device/discover" => (json!({"servers": [fx.sim]}), C::None),
        // The camera (disconnected, in no pool) confirmed at the address it already has.
        "telescope/device/move" => (
            json!({"device_id": fx.camera, "server_url": fx.sim}),
            C::None,
        ),
        "telescope/device/connect" | "telescope/device/disconnect" => {
            (json!({"device_id": fx.mount_for(kind)}), C::Devices)
        }
        "telescope/device/assign" => (
            json!({"telescope_id": tel, "role": "camera", "device_id": fx.camera}),
            C::Admin(
                "telescope/device/unassign",
                json!({"telescope_id": tel, "role": "camera"}),
            ),
        ),
        "telescope/device/unassign" => {
            h.must(
                "telescope/device/assign",
                json!({"telescope_id": tel, "role": "camera", "device_id": fx.camera}),
                &admin,
            )
            .await;
            let b = json!({"telescope_id": tel, "role": "camera"});
            (b.clone(), C::Admin("telescope/device/unassign", b))
        }
        "telescope/control/slew" => (
            json!({"telescope_id": tel, "right_ascension": 5.5, "declination": 20.0}),
            C::Devices,
        ),
        "telescope/control/park" | "telescope/control/unpark" | "telescope/control/abort" => {
            (json!({"telescope_id": tel}), C::Devices)
        }
        "telescope/control/track" => (json!({"telescope_id": tel, "tracking": false}), C::Devices),
        "telescope/status/get" => (json!({"telescope_id": tel}), C::None),
        "telescope/session/start" => (json!({"config_id": tel}), C::Sessions),
        "telescope/session/end" => {
            let mut started = None;
            if let Some(Some(t)) = fx.main.get(session_user.as_str())
                && !matches!(kind, "none" | "garbage" | "expired" | "revoked" | "deleted")
            {
                let t = t.clone();
                let r = h
                    .send(
                        "telescope/session/start",
                        json!({"config_id": tel}),
                        Some(&t),
                    )
                    .await;
                started = r["session_id"].as_str().map(str::to_owned);
            }
            let id = match started {
                Some(id) => id,
                None => h
                    .must(
                        "telescope/session/start",
                        json!({"config_id": fx.telescope}),
                        &owner,
                    )
                    .await["session_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            };
            (json!({"session_id": id}), C::Sessions)
        }
        "telescope/permission/grant" => {
            let b = json!({"telescope_id": tel, "principal_id": fx.subject, "permission": "read"});
            (b.clone(), C::Admin("telescope/permission/revoke", b))
        }
        "telescope/permission/revoke" => {
            let b = json!({"telescope_id": tel, "principal_id": fx.subject, "permission": "read"});
            h.must("telescope/permission/grant", b.clone(), &admin)
                .await;
            (b.clone(), C::Admin("telescope/permission/revoke", b))
        }
        "telescope/permission/list" => (json!({"telescope_id": tel}), C::None),

        "plugin/plugin/install" | "plugin/cmd/install" => {
            let guid = uuid::Uuid::new_v4().to_string();
            let (path, sha) = h.plugin_fixture(&format!("p{n}"), &guid).await;
            (
                json!({"source": path, "sha256": sha, "start": false}),
                C::Admin("plugin/plugin/remove", json!({"guid": guid})),
            )
        }
        "plugin/plugin/remove" | "plugin/cmd/remove" | "plugin/plugin/uninstall" => {
            let guid = uuid::Uuid::new_v4().to_string();
            let (path, sha) = h.plugin_fixture(&format!("p{n}"), &guid).await;
            h.must(
                "plugin/plugin/install",
                json!({"source": path, "sha256": sha, "start": false}),
                &admin,
            )
            .await;
            let b = json!({"guid": guid});
            (b.clone(), C::Admin("plugin/plugin/remove", b))
        }
        "plugin/plugin/update" => {
            let guid = uuid::Uuid::new_v4().to_string();
            let (path, sha) = h.plugin_fixture(&format!("p{n}"), &guid).await;
            h.must(
                "plugin/plugin/install",
                json!({"source": path, "sha256": sha, "start": false}),
                &admin,
            )
            .await;
            let (path2, sha2) = h.plugin_fixture(&format!("p{n}"), &guid).await;
            (
                json!({"guid": guid, "source": path2, "sha256": sha2}),
                C::Admin("plugin/plugin/remove", json!({"guid": guid})),
            )
        }
        "plugin/plugin/start" => (
            json!({"guid": fx.plugin}),
            C::Admin("plugin/plugin/stop", json!({"guid": fx.plugin})),
        ),
        "plugin/plugin/stop" => {
            h.send(
                "plugin/plugin/start",
                json!({"guid": fx.plugin}),
                Some(&admin),
            )
            .await;
            (
                json!({"guid": fx.plugin}),
                C::Admin("plugin/plugin/stop", json!({"guid": fx.plugin})),
            )
        }
        "plugin/plugin/get" | "plugin/plugin/status" => (json!({"guid": fx.plugin}), C::None),

        "uielement/event/register" | "uielement/element/register" => (
            json!({"id": fx.element, "type": "panel", "title": format!("Matrix {n}")}),
            C::None,
        ),
        "uielement/event/unregister" | "uielement/element/unregister" => {
            let id = format!("doomed{n}-{run}");
            h.must(
                "uielement/event/register",
                json!({"id": id, "type": "panel", "title": "Doomed"}),
                &owner,
            )
            .await;
            (json!({"id": id}), C::None)
        }
        "uielement/element/get" => (json!({"id": fx.element}), C::None),
        "uielement/mapping/add" => (
            json!({"element_id": fx.element, "framework": "gtk", "mapping": {"widget_type": "Gtk.Frame"}}),
            C::Admin(
                "uielement/mapping/remove",
                json!({"element_id": fx.element, "framework": "gtk"}),
            ),
        ),
        "uielement/mapping/remove" => {
            h.must(
                "uielement/mapping/add",
                json!({"element_id": fx.element, "framework": "qt", "mapping": {"widget_type": "QFrame"}}),
                &owner,
            )
            .await;
            (
                json!({"element_id": fx.element, "framework": "qt"}),
                C::None,
            )
        }

        "application/service/register" => (
            json!({"id": format!("svc{n}-{run}"), "name": "Matrix"}),
            C::None,
        ),
        "application/service/heartbeat" => (json!({"id": fx.service}), C::None),
        "application/service/unregister" => {
            let id = format!("gone{n}-{run}");
            h.must(
                "application/service/register",
                json!({"id": id, "name": "Gone"}),
                &owner,
            )
            .await;
            (json!({"id": id}), C::None)
        }
        "application/service/get" | "application/service/status" => {
            (json!({"id": fx.service}), C::None)
        }
        "message/history/get" => (json!({"coordinator": "telescope"}), C::None),
        _ => (json!({}), C::None),
    }
}

async fn cleanup(h: &mut Harness, fx: &mut Fixture, c: Cleanup, op: &str) {
    let admin = fx.token("admin");
    match c {
        Cleanup::None => {}
        Cleanup::Sessions => h.end_sessions().await,
        Cleanup::Devices => {}
        Cleanup::Admin(o, b) => {
            h.send(o, b, Some(&admin)).await;
        }
        Cleanup::Relock => {
            for _ in 0..6 {
                h.login(&format!("locked-{}", fx.run), "wrong-password-wrong")
                    .await;
            }
        }
    }
    if NEEDS_SESSION.contains(&op) || op.starts_with("telescope/session/") {
        h.end_sessions().await;
        h.reset_devices(fx).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_operation_answers_every_credential_as_the_access_matrix_says() {
    let started = Instant::now();
    let table = read_table();
    let p = provision::shared().await.unwrap();
    let mut sim = toml::Table::new();
    sim.insert(
        "devices".into(),
        toml::Value::Table(toml::from_str("telescope = { count = 2 }").unwrap()),
    );
    let stack = Stack::prepare(
        p,
        "access-matrix",
        StackOptions {
            simulator: sim,
            config: vec![ConfigSeed {
                coordinator: "security".into(),
                key: "token_leeway".into(),
                value: json!(0),
                kind: bigskies_core::config::ConfigType::Duration,
            }],
            ..StackOptions::default()
        },
    )
    .await
    .unwrap();
    let target = Target {
        topics: stack.topics.clone(),
        bus: stack.bus_config(),
        simulator_url: Some(stack.simulator_url()),
        admin_password: Some(stack.admin_password.clone()),
    };
    let admin_password = stack.admin_password.clone();
    let names = stack.coordinators(&[]);
    let pool = stack.pool().unwrap().clone();
    let mut cx = Context::connect(target, Some(stack)).await.unwrap();
    cx.stack().unwrap().start_all(&names).await.unwrap();
    cx.wait_started(&names, Duration::from_secs(30))
        .await
        .unwrap();
    let mut h = Harness {
        cx,
        pool,
        http: reqwest::Client::new(),
        seq: 0,
        admin_password: admin_password.clone(),
    };
    let mut fx = build_fixture(&mut h, &admin_password).await;
    let built = started.elapsed();

    let mut problems: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut actual_rows: Vec<String> = Vec::new();
    let mut requests = 0usize;
    for (coordinator, ops) in operations::all() {
        for o in ops {
            let key = format!("{coordinator}/{}", o.op);
            seen.insert(key.clone());
            let perm = o.access.permission();
            let row = table.get(&key);
            match row {
                None => problems.push(format!("{key}: no row in docs/access-matrix.md")),
                Some((p, _)) if *p != permission(&o.access) => problems.push(format!(
                    "{key}: the table says permission {p}, the operation requires {}",
                    permission(&o.access)
                )),
                Some(_) => {}
            }
            let mut cells = Vec::new();
            for kind in KINDS {
                let (body, undo) = prepare(&mut h, &mut fx, &key, kind).await;
                let cred = credential(&fx, &key, kind, &perm);
                let (db_before, dev_before) = h.state(&fx.sim).await;
                let reply = h.send(&key, body.clone(), cred.as_deref()).await;
                requests += 1;
                let got = class(&reply);
                if got != "ok" && got != "valid" {
                    let (db_after, dev_after) = h.state(&fx.sim).await;
                    for (t, d) in &db_before {
                        if db_after.get(t) != Some(d) {
                            problems.push(format!(
                                "{key} as {kind}: refused ({got}) but table {t} changed"
                            ));
                        }
                    }
                    for (a, b) in dev_before.iter().zip(&dev_after) {
                        if a != b {
                            problems.push(format!(
                                "{key} as {kind}: refused ({got}) but {a} became {b}"
                            ));
                        }
                    }
                }
                if let Some((_, want)) = row {
                    match want.get(kind) {
                        Some(w) if *w == got => {}
                        Some(w) => problems.push(format!(
                            "{key} as {kind}: expected {w}, got {got}: {}",
                            short(&reply)
                        )),
                        None => problems.push(format!("{key}: no column {kind}")),
                    }
                }
                cells.push(got);
                cleanup(&mut h, &mut fx, undo, &key).await;
            }
            let (c, op) = key.split_once('/').unwrap();
            actual_rows.push(format!(
                "| {c} | {op} | {} | {} |",
                permission(&o.access),
                cells.join(" | ")
            ));
        }
    }
    for key in table.keys() {
        if !seen.contains(key) {
            problems.push(format!(
                "{key}: a row in docs/access-matrix.md for an operation that does not exist"
            ));
        }
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let actual = dir.join("access-matrix.actual.md");
    std::fs::write(
        &actual,
        format!(
            "| coordinator | operation | permission | {} |\n|{}\n{}\n",
            KINDS.join(" | "),
            "---|".repeat(KINDS.len() + 3),
            actual_rows.join("\n")
        ),
    )
    .unwrap();
    println!(
        "access matrix: {requests} cases, fixture {:.1?}, total {:.1?}; observed table in {}",
        built,
        started.elapsed(),
        actual.display()
    );
    let leftover = h.cx.finish().await;
    assert!(leftover.is_empty(), "{leftover:?}");
    assert!(
        problems.is_empty(),
        "{} difference(s) from docs/access-matrix.md:\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 200 {
        format!("{}…", &s[..s.floor_char_boundary(200)])
    } else {
        s
    }
}
