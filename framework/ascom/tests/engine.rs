#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
//! The ASCOM engine against the real simulator over real sockets (and PostgreSQL for persistence).

use std::time::Duration;

use alpaca_simulator::app::{RunningSimulator, Simulator};
use alpaca_simulator::config::SimulatorConfig;
use bigskies_alpaca::discovery::DiscoveryOptions;
use bigskies_alpaca::types::DeviceType;
use bigskies_ascom::store::Store;
use bigskies_ascom::{AscomConfig, AscomEngine, DeviceEvent, EngineError, LinkState, Role};
use bigskies_core::health::HealthStatus;
use serde_json::json;

fn sim_config(seed: &str) -> SimulatorConfig {
    let mut c = SimulatorConfig::default();
    c.server.bind = "127.0.0.1".parse().unwrap();
    c.server.http_port = 0;
    c.server.discovery_port = 0;
    c.server.seed = Some(seed.to_owned());
    c.devices.connect_delay = 0.0;
    c
}

async fn simulator(seed: &str) -> RunningSimulator {
    Simulator::bind(sim_config(seed)).await.unwrap().spawn()
}

fn engine_config(servers: Vec<String>) -> AscomConfig {
    AscomConfig {
        call_timeout: Duration::from_secs(2),
        discovery: None,
        servers,
        ..AscomConfig::default()
    }
}

async fn fault(sim: &RunningSimulator, path: &str, body: Option<serde_json::Value>) {
    let url = format!("{}/simulator/v1/faults/{path}", sim.base_url());
    let http = reqwest::Client::new();
    let resp = match body {
        Some(b) => http.put(url).json(&b).send().await.unwrap(),
        None => http.delete(url).send().await.unwrap(),
    };
    assert!(
        resp.status().is_success(),
        "fault API said {}",
        resp.status()
    );
}

#[tokio::test]
async fn configured_addresses_are_discovered_and_devices_connect() {
    let sim = simulator("engine-a").await;
    let engine = AscomEngine::build(engine_config(vec![sim.base_url()]), None)
        .await
        .unwrap();
    let found = engine.discover().await.unwrap();
    let types: Vec<DeviceType> = found.iter().map(|d| d.device_type).collect();
    for t in DeviceType::ALL {
        assert!(types.contains(t), "{t} listed");
    }
    let scope = found
        .iter()
        .find(|d| d.device_type == DeviceType::Telescope)
        .unwrap()
        .unique_id
        .clone();
    assert!(!scope.is_empty());
    assert_eq!(
        engine.resolve(&format!("{}-Telescope-0", sim.base_url())),
        Some(scope.clone())
    );

    // Calls on a disconnected device are refused by the engine before they reach the wire.
    assert!(matches!(
        engine
            .call_connected(&scope, |t| async move {
                t.telescope().checked().tracking().await
            })
            .await,
        Err(EngineError::NotConnected(_))
    ));
    engine.connect(&scope).await.unwrap();
    assert_eq!(engine.device(&scope).unwrap().state, LinkState::Connected);
    let name: String = engine
        .call_connected(
            &scope,
            |t| async move { t.telescope().checked().name().await },
        )
        .await
        .unwrap();
    assert!(!name.is_empty());
    // An ASCOM error comes back as a device error, and is counted.
    let err = engine
        .call_connected(&scope, |t| async move {
            t.telescope().checked().target_right_ascension().await
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Device(ref e) if e.code.0 == 0x402),
        "{err}"
    );
    let stats = engine.device(&scope).unwrap().stats;
    assert!(stats.calls >= 4 && stats.errors >= 1, "{stats:?}");
    assert!(stats.mean_latency_ms > 0.0);
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn udp_discovery_finds_the_simulator() {
    let sim = simulator("engine-udp").await;
    let port = sim.discovery_addr.unwrap().port();
    let mut cfg = engine_config(vec![]);
    cfg.discovery = Some(DiscoveryOptions {
        port,
        ipv4_broadcast: false,
        ipv6_multicast: false,
        targets: vec!["127.0.0.1".parse().unwrap()],
        window: Duration::from_millis(500),
    });
    let engine = AscomEngine::build(cfg, None).await.unwrap();
    let found = engine.discover().await.unwrap();
    assert_eq!(found.len(), 6, "{found:?}");
    assert!(found.iter().all(|d| d.server_url == sim.base_url()));
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_dropped_device_is_lost_after_three_failed_checks_and_comes_back_by_itself() {
    let sim = simulator("engine-fault").await;
    let engine = AscomEngine::build(engine_config(vec![sim.base_url()]), None)
        .await
        .unwrap();
    engine.discover().await.unwrap();
    let focuser = engine
        .devices()
        .into_iter()
        .find(|d| d.device_type == DeviceType::Focuser)
        .unwrap()
        .unique_id;
    engine.connect(&focuser).await.unwrap();
    let mut events = engine.subscribe();
    assert_eq!(engine.health().status, HealthStatus::Healthy);

    fault(&sim, "focuser/0", Some(json!({"disconnected": true}))).await;
    for cycle in 1..=3 {
        let c = engine.health_cycle().await;
        assert_eq!(c.failed, 1, "cycle {cycle}");
        let state = engine.device(&focuser).unwrap().state;
        if cycle < 3 {
            assert_eq!(
                state,
                LinkState::Connected,
                "still connected after {cycle} failure(s)"
            );
        } else {
            assert_eq!(state, LinkState::Lost);
            assert_eq!(c.lost, vec![focuser.clone()]);
        }
    }
    assert_eq!(engine.health().status, HealthStatus::Degraded);
    assert!(matches!(
        events.recv().await.unwrap(),
        DeviceEvent::Lost { .. }
    ));

    // Clear the fault: the next cycle reconnects without any command.
    fault(&sim, "focuser/0", None).await;
    let c = engine.health_cycle().await;
    assert_eq!(c.recovered, vec![focuser.clone()]);
    assert_eq!(engine.device(&focuser).unwrap().state, LinkState::Connected);
    assert_eq!(engine.health().status, HealthStatus::Healthy);
    let pos: i32 = engine
        .call_connected(&focuser, |t| async move {
            t.focuser().checked().position().await
        })
        .await
        .unwrap();
    assert!(pos >= 0);
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_device_that_moves_keeps_its_identity_and_pools_persist() {
    let db = bigskies_scenarios::provision::shared()
        .await
        .unwrap()
        .fresh_database()
        .await
        .unwrap();
    bigskies_core::config::MIGRATOR
        .run(db.pool())
        .await
        .unwrap();
    let first = simulator("same-hardware").await;
    let engine = AscomEngine::build(engine_config(vec![]), Some(Store::new(db.pool().clone())))
        .await
        .unwrap();
    let listed = engine.add_server(&first.base_url()).await.unwrap();
    let scope = listed
        .iter()
        .find(|d| d.device_type == DeviceType::Telescope)
        .unwrap()
        .unique_id
        .clone();
    let camera = listed
        .iter()
        .find(|d| d.device_type == DeviceType::Camera)
        .unwrap()
        .unique_id
        .clone();
    let telescope_id = uuid::Uuid::new_v4();
    engine
        .assign(telescope_id, Role::Telescope, &scope)
        .await
        .unwrap();
    engine
        .assign(telescope_id, Role::Camera, &camera)
        .await
        .unwrap();
    assert!(matches!(
        engine.assign(telescope_id, Role::Dome, &camera).await,
        Err(EngineError::WrongType { .. })
    ));

    // The same devices (same UniqueIDs) come back at another address: recorded as a pending
    // move, not moved, until an administrator confirms (issue #20, item 1).
    let first_url = first.base_url();
    first.shutdown().await.unwrap();
    let second = simulator("same-hardware").await;
    let mut events = engine.subscribe();
    engine.add_server(&second.base_url()).await.unwrap();
    assert_eq!(engine.devices().len(), 6, "no duplicates");
    assert_eq!(engine.device(&scope).unwrap().server_url, first_url);
    assert!(matches!(
        events.recv().await.unwrap(),
        DeviceEvent::MoveProposed { .. }
    ));
    assert!(
        engine
            .pending_moves()
            .iter()
            .any(|m| m.unique_id == scope && m.to == second.base_url())
    );
    engine
        .move_device(&scope, &second.base_url())
        .await
        .unwrap();
    engine
        .move_device(&camera, &second.base_url())
        .await
        .unwrap();
    assert_eq!(engine.device(&scope).unwrap().server_url, second.base_url());
    assert!(
        engine.pending_moves().iter().all(|m| m.unique_id != scope),
        "a confirmed move is no longer pending"
    );
    engine.connect(&scope).await.unwrap();

    // A new engine (a restart) loads registry and pools from PostgreSQL.
    let restarted = AscomEngine::build(engine_config(vec![]), Some(Store::new(db.pool().clone())))
        .await
        .unwrap();
    assert_eq!(restarted.devices().len(), 6);
    let pool = restarted.pool(telescope_id);
    assert_eq!(pool[&Role::Telescope].unique_id, scope);
    assert_eq!(pool[&Role::Camera].server_url, second.base_url());
    assert_eq!(
        restarted.in_role(telescope_id, Role::Telescope).unwrap(),
        scope
    );
    assert!(matches!(
        restarted.in_role(telescope_id, Role::Dome),
        Err(EngineError::NoRole { .. })
    ));
    second.shutdown().await.unwrap();
}

/// A restart keeps what the user asked for (issue #20, item 9: devices came back disconnected
/// after a restart though they had been connected): a device connected before is connected
/// again by the new engine, also when the device itself forgot the connection meanwhile; a
/// device disconnected on request stays disconnected.
#[tokio::test]
async fn connection_intent_survives_a_restart() {
    let db = bigskies_scenarios::provision::shared()
        .await
        .unwrap()
        .fresh_database()
        .await
        .unwrap();
    bigskies_core::config::MIGRATOR
        .run(db.pool())
        .await
        .unwrap();
    let sim = simulator("intent").await;
    let engine = AscomEngine::build(
        engine_config(vec![sim.base_url()]),
        Some(Store::new(db.pool().clone())),
    )
    .await
    .unwrap();
    let listed = engine.discover().await.unwrap();
    let of = |t: DeviceType| {
        listed
            .iter()
            .find(|d| d.device_type == t)
            .unwrap()
            .unique_id
            .clone()
    };
    let (mount, camera) = (of(DeviceType::Telescope), of(DeviceType::Camera));
    engine.connect(&mount).await.unwrap();
    engine.connect(&camera).await.unwrap();
    engine.disconnect(&camera).await.unwrap();
    drop(engine);
    // While the framework is down, the mount forgets its connection (power cycle).
    fault(&sim, "telescope/0", Some(json!({"disconnected": true}))).await;
    fault(&sim, "telescope/0", None).await;

    let restarted = AscomEngine::build(engine_config(vec![]), Some(Store::new(db.pool().clone())))
        .await
        .unwrap();
    restarted.health_cycle().await;
    let state = |id: &str| {
        restarted
            .devices()
            .into_iter()
            .find(|d| d.unique_id == id)
            .unwrap()
            .state
    };
    assert_eq!(
        state(&mount),
        LinkState::Connected,
        "the mount is connected again"
    );
    assert_eq!(
        state(&camera),
        LinkState::Disconnected,
        "the camera stays off"
    );
    sim.shutdown().await.unwrap();
}

/// Issue #20, item 1: a second server with the same UniqueIDs (a simulator with the default
/// seed, or any LAN host answering discovery) never takes a known device over. The device
/// stays at its address while connected, calls keep reaching the real one, and a confirmed move
/// is refused while the device is connected and when the device at the new address describes
/// itself differently.
#[tokio::test]
async fn an_impostor_with_the_same_unique_ids_does_not_take_the_device_over() {
    let real = simulator("same-seed").await;
    let mut impostor_cfg = sim_config("same-seed");
    impostor_cfg
        .devices
        .telescope
        .model
        .insert("description".into(), "not the observatory's mount".into());
    let impostor = Simulator::bind(impostor_cfg).await.unwrap().spawn();
    let engine = AscomEngine::build(engine_config(vec![]), None)
        .await
        .unwrap();
    let listed = engine.add_server(&real.base_url()).await.unwrap();
    let scope = listed
        .iter()
        .find(|d| d.device_type == DeviceType::Telescope)
        .unwrap()
        .unique_id
        .clone();
    engine.connect(&scope).await.unwrap();

    let seen = engine.add_server(&impostor.base_url()).await.unwrap();
    assert!(
        seen.iter().all(|d| d.server_url == real.base_url()),
        "{seen:?}"
    );
    assert_eq!(engine.device(&scope).unwrap().server_url, real.base_url());
    assert_eq!(engine.device(&scope).unwrap().state, LinkState::Connected);
    assert_eq!(engine.devices().len(), 6);
    // Calls still go to the real mount.
    engine
        .call_connected(&scope, |t| async move {
            t.telescope().checked().set_tracking(true).await
        })
        .await
        .unwrap();
    let on = |url: String| async move {
        reqwest::get(format!(
            "{url}/api/v1/telescope/0/tracking?ClientID=1&ClientTransactionID=1"
        ))
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["Value"]
            .clone()
    };
    assert_eq!(on(real.base_url()).await, json!(true));
    assert_ne!(on(impostor.base_url()).await, json!(true));

    // Confirmed moves: refused while connected, refused when the description differs.
    let err = engine
        .move_device(&scope, &impostor.base_url())
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::MoveRefused { .. }), "{err}");
    engine.disconnect(&scope).await.unwrap();
    let err = engine
        .move_device(&scope, &impostor.base_url())
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::MoveRefused { ref reason, .. } if reason.contains("describes itself differently")),
        "{err}"
    );
    assert_eq!(engine.device(&scope).unwrap().server_url, real.base_url());
    real.shutdown().await.unwrap();
    impostor.shutdown().await.unwrap();
}
