#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
//! Where the plugin coordinator's settings come from on a freshly migrated database: the
//! command line's `--plugin-dir` beats the migration's seeded `plugin_dir` row, and a row an
//! operator wrote beats the command line.

mod message_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bigskies_coordinators::plugin::{self, LocalProcessRuntime, PluginCoordinator};
use bigskies_core::config::{ConfigStore, ConfigType};
use bigskies_core::envelope::{Envelope, MessageType};
use message_support as s;
use serde_json::json;
use sqlx::PgPool;

/// The plugin coordinator as `bigskies` builds it for `--plugin-dir DIR`.
fn started_with_flag(pool: &PgPool, dir: &Path) -> Arc<PluginCoordinator> {
    Arc::new(PluginCoordinator::new(
        pool.clone(),
        Arc::new(LocalProcessRuntime::new(BTreeMap::new())),
        plugin::Settings::default().with_plugin_dir(dir.to_owned()),
        None,
    ))
}

async fn seeded(pool: &PgPool) -> bool {
    sqlx::query_scalar(
        "SELECT seeded FROM coordinator_config
          WHERE coordinator_name = 'plugin-coordinator' AND config_key = 'plugin_dir'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_plugin_dir_flag_beats_the_seeded_row_and_an_operator_row_beats_the_flag() {
    let env = s::env().await;
    let db = s::database().await;
    let pool = db.pool();
    let store = ConfigStore::new(pool.clone());
    let seeded_dir = store.load(plugin::NAME).await.unwrap();
    assert_eq!(
        seeded_dir.string(plugin::PLUGIN_DIR_KEY, "").unwrap(),
        "/var/lib/bigskies/plugins"
    );
    assert!(seeded(pool).await, "the migration marks its own rows");

    let work = tempfile::tempdir().unwrap();
    let flag_dir = work.path().join("flag-plugins");
    let operator_dir = work.path().join("operator-plugins");
    let client = s::client(&env).await;
    let mut health = client
        .subscribe(&env.topics.health(plugin::NAME), 64)
        .await
        .unwrap();

    let pc = started_with_flag(pool, &flag_dir);
    let running = s::start(&env, pc.clone(), Some(store.clone()), s::no_work);
    s::wait_health(&mut health, "healthy").await;
    assert_eq!(
        pc.settings().plugin_dir,
        flag_dir,
        "the flag beats the seed"
    );
    let list = s::request(
        &client,
        &env.topics,
        plugin::NAME,
        "plugin/list",
        json!({}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(list["plugin_dir"], json!(flag_dir), "{list}");

    // An operator writes the row (as config/update and the harness do) and says so.
    store
        .set(
            plugin::NAME,
            plugin::PLUGIN_DIR_KEY,
            json!(operator_dir),
            ConfigType::String,
            false,
            None,
        )
        .await
        .unwrap();
    assert!(!seeded(pool).await, "a later write is the operator's");
    let note = Envelope::new(
        MessageType::Event,
        "test",
        json!({"config_key": plugin::PLUGIN_DIR_KEY}),
    );
    client
        .publish(
            &env.topics.config_update(plugin::NAME),
            note.to_bytes(),
            false,
        )
        .await
        .unwrap();
    let pc2 = pc.clone();
    let op = operator_dir.clone();
    s::eventually(Duration::from_secs(10), move || {
        let (pc, op) = (pc2.clone(), op.clone());
        async move { (pc.settings().plugin_dir == op).then_some(()) }
    })
    .await;
    running.stop().await;
    s::wait_health(&mut health, "stopping").await;

    // And it still wins when the coordinator starts again with the flag.
    let pc = started_with_flag(pool, &flag_dir);
    let running = s::start(&env, pc.clone(), Some(store.clone()), s::no_work);
    s::wait_health(&mut health, "healthy").await;
    assert_eq!(pc.settings().plugin_dir, PathBuf::from(&operator_dir));
    running.stop().await;

    let history: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM coordinator_config_history
          WHERE coordinator_name = 'plugin-coordinator' AND config_key = 'plugin_dir'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        history, 2,
        "the seed and the operator's change are in the history"
    );
}
