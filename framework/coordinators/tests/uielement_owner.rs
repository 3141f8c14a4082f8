#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
//! Ownership of UI elements and their framework mappings, against the real broker and
//! PostgreSQL: only the owner (the principal that registered it, or the plugin it was
//! registered for) or an administrator changes an element or a mapping, and a refused change
//! leaves the database exactly as it was.

mod message_support;

use std::sync::Arc;

use bigskies_coordinators::uielement::{NAME, UiElementCoordinator};
use bigskies_core::auth::{AuthError, Authenticator, CredentialKind, Principal, Rights};
use bigskies_core::bus::Bus;
use bigskies_core::config::ConfigStore;
use bigskies_core::runtime::{Launch, launch_with};
use futures::future::BoxFuture;
use message_support as s;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Plain users: authenticated, no role.
const ALICE: &str = "alice-token";
const BOB: &str = "bob-token";

const ADMIN_OWNER: &str = "user:00000000-0000-0000-0000-000000000001";
const ALICE_OWNER: &str = "user:00000000-0000-0000-0000-000000000003";

/// [`s::ADMIN`] holds the `admin` role; [`ALICE`] and [`BOB`] hold no role, so they pass
/// object-checked operations (the handler decides) and nothing granted through roles.
struct OwnerAuth;

impl Authenticator for OwnerAuth {
    fn authenticate<'a>(
        &'a self,
        credential: &'a str,
    ) -> BoxFuture<'a, Result<Principal, AuthError>> {
        Box::pin(async move {
            let (id, name, roles) = match credential {
                s::ADMIN => (1, "admin", vec!["admin".to_owned()]),
                ALICE => (3, "alice", vec![]),
                BOB => (4, "bob", vec![]),
                _ => return Err(AuthError::Invalid("unknown test credential".into())),
            };
            Ok(Principal {
                user_id: uuid::Uuid::from_u128(id),
                username: name.into(),
                roles,
                credential_id: credential.into(),
                kind: CredentialKind::Token,
                scopes: vec![],
            })
        })
    }

    fn authorize<'a>(
        &'a self,
        principal: &'a Principal,
        resource: &'a str,
        action: &'a str,
        rights: Rights,
    ) -> BoxFuture<'a, Result<(), AuthError>> {
        Box::pin(async move {
            if principal.is_admin() || rights == Rights::Object {
                Ok(())
            } else {
                Err(AuthError::Forbidden {
                    resource: resource.into(),
                    action: action.into(),
                })
            }
        })
    }
}

struct Fixture {
    env: s::Env,
    db: bigskies_scenarios::provision::TestDatabase,
    client: Bus,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), bigskies_core::runtime::RuntimeError>>,
}

impl Fixture {
    async fn start() -> Self {
        let env = s::env().await;
        let db = s::database().await;
        let client = s::client(&env).await;
        let mut health = client
            .subscribe(&env.topics.health(NAME), 64)
            .await
            .unwrap();
        let stop = CancellationToken::new();
        let launch = Launch {
            bus: s::bus_config(&env, NAME),
            runtime: s::runtime(&env),
            store: Some(ConfigStore::new(db.pool().clone())),
            connect_timeout: s::WAIT,
            authenticator: Some(Arc::new(OwnerAuth)),
        };
        let task = tokio::spawn(launch_with(
            Arc::new(UiElementCoordinator::new(db.pool().clone())),
            launch,
            stop.clone(),
            |_, _| async {},
        ));
        s::wait_health(&mut health, "healthy").await;
        Self {
            env,
            db,
            client,
            stop,
            task,
        }
    }

    async fn ask(&self, op: &str, body: Value, token: &str) -> Value {
        s::request(&self.client, &self.env.topics, NAME, op, body, Some(token)).await
    }

    fn pool(&self) -> &PgPool {
        self.db.pool()
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// Every row of `ui_elements`, every column, in id order.
async fn snapshot(pool: &PgPool) -> Value {
    sqlx::query_scalar(
        "SELECT coalesce(jsonb_agg(to_jsonb(u) ORDER BY u.id), '[]'::jsonb) FROM ui_elements u",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// `op` with `body` as `token` is refused as forbidden and the database is unchanged.
async fn refused(f: &Fixture, op: &str, body: Value, token: &str) {
    let before = snapshot(f.pool()).await;
    let r = f.ask(op, body.clone(), token).await;
    assert_eq!(r["error_code"], "forbidden", "{op} {body}: {r}");
    assert_eq!(
        snapshot(f.pool()).await,
        before,
        "{op} {body} changed the database"
    );
}

/// A hostile registration of `id`: the mapping's button parks the telescope.
fn takeover(id: &str, plugin_guid: Option<&str>) -> Value {
    json!({"id": id, "plugin_guid": plugin_guid, "type": "panel", "title": "Pwned",
           "framework_mappings": {"gtk": {"widget_type": "Gtk.Button", "actions": {"clicked":
               {"mqtt_topic": "bigskies/coordinator/telescope/control/park",
                "payload": {"telescope_id": "main"}}}}}})
}

#[tokio::test]
async fn plain_users_cannot_change_an_administrators_or_a_plugins_element() {
    let f = Fixture::start().await;
    let r = f
        .ask(
            "element/register",
            json!({"id": "admin-panel", "type": "panel", "title": "Mount",
                   "framework_mappings": {"gtk": {"widget_type": "Gtk.Frame"}}}),
            s::ADMIN,
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["element"]["owner"], ADMIN_OWNER, "{r}");
    assert_eq!(r["element"]["owner_name"], "admin", "{r}");
    assert_eq!(
        r["element"]["mapping_owners"]["gtk"]["owner"], ADMIN_OWNER,
        "{r}"
    );
    // What the plugin coordinator sends (with the installing administrator's credential).
    let r = f
        .ask(
            "element/register",
            json!({"id": "plugin-menu", "plugin_guid": "p-guid", "type": "menu", "title": "Sim",
                   "framework_mappings": {"gtk": {"widget_type": "Gtk.Menu"}}}),
            s::ADMIN,
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["element"]["owner"], "plugin:p-guid", "{r}");
    assert_eq!(
        r["element"]["mapping_owners"]["gtk"]["owner"], "plugin:p-guid",
        "{r}"
    );

    for (id, plugin) in [("admin-panel", None), ("plugin-menu", Some("p-guid"))] {
        refused(&f, "element/register", takeover(id, None), ALICE).await;
        refused(&f, "event/register", takeover(id, plugin), ALICE).await;
        refused(
            &f,
            "mapping/add",
            json!({"element_id": id, "framework": "gtk", "mapping": {"widget_type": "Gtk.Button",
                   "actions": {"clicked": {"mqtt_topic": "bigskies/coordinator/telescope/control/park"}}}}),
            ALICE,
        )
        .await;
        refused(
            &f,
            "mapping/add",
            json!({"element_id": id, "framework": "qt", "mapping": {"widget_type": "QPushButton"}}),
            ALICE,
        )
        .await;
        refused(
            &f,
            "mapping/remove",
            json!({"element_id": id, "framework": "gtk"}),
            ALICE,
        )
        .await;
        refused(&f, "element/unregister", json!({"id": id}), ALICE).await;
        refused(&f, "event/unregister", json!({"element_id": id}), ALICE).await;
    }
    refused(
        &f,
        "element/unregister",
        json!({"plugin_guid": "p-guid"}),
        ALICE,
    )
    .await;
    // A plain user cannot claim an element for a plugin either.
    refused(
        &f,
        "element/register",
        json!({"id": "fake-plugin", "plugin_guid": "p-guid", "type": "tool", "title": "Fake"}),
        ALICE,
    )
    .await;

    let r = f
        .ask("element/get", json!({"id": "admin-panel"}), ALICE)
        .await;
    assert_eq!(r["element"]["title"], "Mount", "{r}");
    assert_eq!(r["element"]["owner"], ADMIN_OWNER, "{r}");
    let r = f.ask("element/query", json!({}), ALICE).await;
    assert_eq!(r["count"], 2, "{r}");
    assert_eq!(r["elements"][0]["id"], "admin-panel", "{r}");
    assert_eq!(r["elements"][0]["owner"], ADMIN_OWNER, "{r}");
    assert_eq!(r["elements"][1]["owner"], "plugin:p-guid", "{r}");
    let r = f
        .ask("element/query", json!({"framework": "gtk"}), BOB)
        .await;
    assert_eq!(r["elements"][0]["owner_name"], "admin", "{r}");

    // The administrator changes and removes both.
    let r = f
        .ask(
            "mapping/add",
            json!({"element_id": "plugin-menu", "framework": "qt", "mapping": {"widget_type": "QMenu"}}),
            s::ADMIN,
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["element"]["owner"], "plugin:p-guid", "{r}");
    assert_eq!(r["element"]["mapping_owners"]["qt"]["owner"], ADMIN_OWNER);
    let r = f
        .ask(
            "element/unregister",
            json!({"plugin_guid": "p-guid"}),
            s::ADMIN,
        )
        .await;
    assert_eq!(r["removed"], json!(["plugin-menu"]), "{r}");
    let r = f
        .ask("element/unregister", json!({"id": "admin-panel"}), s::ADMIN)
        .await;
    assert_eq!(r["removed"], json!(["admin-panel"]), "{r}");
    f.stop().await;
}

#[tokio::test]
async fn owners_and_administrators_change_elements_and_mappings() {
    let f = Fixture::start().await;
    let r = f
        .ask(
            "element/register",
            json!({"id": "alice-tool", "type": "tool", "title": "Focus",
                   "framework_mappings": {"qt": {"widget_type": "QSlider"}}}),
            ALICE,
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["element"]["owner"], ALICE_OWNER, "{r}");
    assert_eq!(r["element"]["owner_name"], "alice", "{r}");
    assert_eq!(r["element"]["mapping_owners"]["qt"]["owner_name"], "alice");

    // The owner updates and re-maps her element.
    let r = f
        .ask(
            "element/register",
            json!({"id": "alice-tool", "type": "tool", "title": "Focus v2",
                   "framework_mappings": {"qt": {"widget_type": "QDial"}}}),
            ALICE,
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["element"]["title"], "Focus v2");
    assert_eq!(r["element"]["owner"], ALICE_OWNER);
    let r = f
        .ask(
            "mapping/add",
            json!({"element_id": "alice-tool", "framework": "gtk", "mapping": {"widget_type": "Gtk.Scale"}}),
            ALICE,
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    let r = f
        .ask(
            "mapping/remove",
            json!({"element_id": "alice-tool", "framework": "qt"}),
            ALICE,
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["element"]["framework_mappings"]["qt"], Value::Null);
    assert_eq!(r["element"]["mapping_owners"]["qt"], Value::Null, "{r}");

    // Another plain user changes nothing of hers.
    refused(&f, "element/register", takeover("alice-tool", None), BOB).await;
    refused(
        &f,
        "mapping/add",
        json!({"element_id": "alice-tool", "framework": "wpf", "mapping": {"widget_type": "Slider"}}),
        BOB,
    )
    .await;
    refused(
        &f,
        "mapping/remove",
        json!({"element_id": "alice-tool", "framework": "gtk"}),
        BOB,
    )
    .await;
    refused(&f, "element/unregister", json!({"id": "alice-tool"}), BOB).await;

    // An administrator adds a mapping: it is the administrator's, the element stays hers.
    let r = f
        .ask(
            "mapping/add",
            json!({"element_id": "alice-tool", "framework": "flutter", "mapping": {"widget_type": "Slider"}}),
            s::ADMIN,
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["element"]["owner"], ALICE_OWNER);
    assert_eq!(
        r["element"]["mapping_owners"]["flutter"]["owner"],
        ADMIN_OWNER
    );
    assert_eq!(r["element"]["mapping_owners"]["gtk"]["owner"], ALICE_OWNER);
    // She may not remove or replace the administrator's mapping, nor replace it by
    // re-registering her element.
    refused(
        &f,
        "mapping/remove",
        json!({"element_id": "alice-tool", "framework": "flutter"}),
        ALICE,
    )
    .await;
    refused(
        &f,
        "mapping/add",
        json!({"element_id": "alice-tool", "framework": "flutter", "mapping": {"widget_type": "Knob"}}),
        ALICE,
    )
    .await;
    refused(&f, "element/register", takeover("alice-tool", None), ALICE).await;
    refused(&f, "element/unregister", json!({"id": "alice-tool"}), ALICE).await;

    // An administrator re-registers her element: the owner stays.
    let r = f
        .ask(
            "element/register",
            json!({"id": "alice-tool", "type": "tool", "title": "Focus (fixed)"}),
            s::ADMIN,
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["element"]["owner"], ALICE_OWNER, "{r}");
    assert_eq!(r["element"]["mapping_owners"], json!({}), "{r}");
    // Her own again, all of it: she removes it.
    let r = f
        .ask("element/unregister", json!({"id": "alice-tool"}), ALICE)
        .await;
    assert_eq!(r["removed"], json!(["alice-tool"]), "{r}");

    // A row from before ownership was recorded: administrators only.
    sqlx::query(
        "INSERT INTO ui_elements (id, element_type, title, framework_mappings)
         VALUES ('legacy', 'panel', 'Old', '{\"gtk\": {\"widget_type\": \"Gtk.Box\"}}')",
    )
    .execute(f.pool())
    .await
    .unwrap();
    let r = f.ask("element/get", json!({"id": "legacy"}), ALICE).await;
    assert_eq!(r["element"]["owner"], Value::Null, "{r}");
    refused(&f, "element/register", takeover("legacy", None), ALICE).await;
    refused(
        &f,
        "mapping/add",
        json!({"element_id": "legacy", "framework": "qt", "mapping": {"widget_type": "QFrame"}}),
        ALICE,
    )
    .await;
    refused(&f, "element/unregister", json!({"id": "legacy"}), ALICE).await;
    let r = f
        .ask("element/unregister", json!({"id": "legacy"}), s::ADMIN)
        .await;
    assert_eq!(r["removed"], json!(["legacy"]), "{r}");
    f.stop().await;
}
