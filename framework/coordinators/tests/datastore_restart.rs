#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
//! The datastore coordinator while its database restarts: it degrades and recovers by
//! itself, and no coordinator on that database crashes.

mod message_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bigskies_coordinators::application::{self, ApplicationCoordinator};
use bigskies_coordinators::datastore::{self, DatastoreCoordinator, NAME};
use bigskies_core::config::{ConfigStore, ConfigType, MIGRATOR};
use bigskies_scenarios::provision::PostgresProcess;
use message_support as s;
use serde_json::json;

/// Runs `pg_ctl` on the private cluster as the user that owns it.
fn pg_ctl(dir: &Path, args: &[&str]) -> std::process::ExitStatus {
    let data = dir.join("data");
    let mut cmd = if running_as_root() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--", "pg_ctl"]);
        c
    } else {
        std::process::Command::new("pg_ctl")
    };
    cmd.arg("-D")
        .arg(&data)
        .args(args)
        .current_dir(dir)
        .status()
        .expect("pg_ctl runs")
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Stops a server we restarted ourselves (the provisioner only knows the first one), also
/// when the test fails.
struct Restarted(PathBuf);

impl Drop for Restarted {
    fn drop(&mut self) {
        let _ = pg_ctl(&self.0, &["stop", "-m", "immediate", "-w"]);
    }
}

#[tokio::test]
async fn database_restart_degrades_and_recovers_without_crashes() {
    let env = s::env().await;
    let pg = PostgresProcess::start()
        .await
        .expect("a private PostgreSQL");
    let options: sqlx::postgres::PgConnectOptions = pg.url().parse().unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(std::time::Duration::from_secs(2))
        .connect_with(options.clone())
        .await
        .unwrap();
    MIGRATOR.run(&pool).await.unwrap();

    let client = s::client(&env).await;
    let mut health = client
        .subscribe(&env.topics.health(NAME), 256)
        .await
        .unwrap();
    let mut app_health = client
        .subscribe(&env.topics.health(application::NAME), 256)
        .await
        .unwrap();
    let mut stats = client
        .subscribe(&env.topics.event(NAME, "pool/stats"), 64)
        .await
        .unwrap();

    // The pool's shape comes from the configuration rows (the seeds say 20/5).
    let store = ConfigStore::new(pool.clone());
    for (key, value, kind) in [
        ("max_connections", json!(4), ConfigType::Int),
        ("min_connections", json!(1), ConfigType::Int),
        ("acquire_timeout", json!(1), ConfigType::Duration),
        ("ping_timeout", json!(1), ConfigType::Duration),
        ("stats_interval", json!(0.5), ConfigType::Duration),
    ] {
        store
            .set(NAME, key, value, kind, false, None)
            .await
            .unwrap();
    }
    let ds = Arc::new(DatastoreCoordinator::new(
        options,
        datastore::Settings::default(),
    ));
    let w = ds.clone();
    let running = s::start(
        &env,
        ds.clone(),
        Some(ConfigStore::new(pool.clone())),
        move |b, t, x| w.run(b, t, x),
    );
    let app = Arc::new(ApplicationCoordinator::new(
        pool.clone(),
        application::Settings::default(),
    ));
    let aw = app.clone();
    let app_running = s::start(
        &env,
        app,
        Some(ConfigStore::new(pool.clone())),
        move |b, t, x| aw.run(b, t, x),
    );

    let healthy = s::wait_health(&mut health, "healthy").await;
    assert_eq!(
        healthy["payload"]["components"]["database"]["details"]["max_conns"],
        4
    );
    s::wait_health(&mut app_health, "healthy").await;
    let st = s::next_json(&mut stats).await;
    assert_eq!(st["source"], "coordinator:datastore", "{st}");
    assert_eq!(st["payload"]["max_conns"], 4, "{st}");
    let pong = s::request(
        &client,
        &env.topics,
        NAME,
        "pool/ping",
        json!({}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(pong["success"], true, "{pong}");

    // Stop the database under everyone's feet.
    assert!(pg_ctl(pg.dir(), &["stop", "-m", "fast", "-w"]).success());
    let down = s::wait_health(&mut health, "unhealthy").await;
    let msg = down["payload"]["message"].as_str().unwrap();
    assert!(msg.contains("Database ping failed"), "{msg}");
    s::wait_health(&mut app_health, "unhealthy").await;
    let refused = s::request(
        &client,
        &env.topics,
        NAME,
        "pool/ping",
        json!({}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(refused["error_code"], "unavailable");
    let list = s::request(
        &client,
        &env.topics,
        application::NAME,
        "service/list",
        json!({}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(list["error_code"], "unavailable", "{list}");

    // Bring it back on the same port and directory.
    let port = pg.port().to_string();
    let opts = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
        pg.dir().display()
    );
    let log = pg.dir().join("restarted.log");
    let _guard = Restarted(pg.dir().to_owned());
    assert!(
        pg_ctl(
            pg.dir(),
            &["start", "-w", "-l", log.to_str().unwrap(), "-o", &opts]
        )
        .success()
    );

    s::wait_health(&mut health, "healthy").await;
    s::wait_health(&mut app_health, "healthy").await;
    let pong = s::request(
        &client,
        &env.topics,
        NAME,
        "pool/ping",
        json!({}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(pong["success"], true);
    let list = s::request(
        &client,
        &env.topics,
        application::NAME,
        "service/list",
        json!({}),
        Some(s::ADMIN),
    )
    .await;
    assert_eq!(list["success"], true, "{list}");
    assert!(
        running.is_running() && app_running.is_running(),
        "no coordinator crashed"
    );
    running.stop().await;
    app_running.stop().await;
    pool.close().await;
}
