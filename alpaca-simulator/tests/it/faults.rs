//! Every fault kind, switched on through the control API (or the config file) and seen from
//! a client over real sockets.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Sim, test_config};

async fn set_fault(sim: &Sim, device: &str, spec: serde_json::Value) {
    let (st, v) = sim
        .control(Method::PUT, &format!("/faults/{device}"), Some(spec))
        .await;
    assert_eq!(st, 200, "{v}");
}

async fn clear_fault(sim: &Sim, device: &str) {
    let (st, v) = sim
        .control(Method::DELETE, &format!("/faults/{device}"), None)
        .await;
    assert_eq!(st, 204, "{v}");
}

/// Raw HTTP/1.1 GET; returns every byte the server sent before closing.
async fn raw_get(sim: &Sim, path: &str) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(sim.running.http_addr)
        .await
        .expect("connect");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the server closes the connection")
        .ok();
    out
}

#[tokio::test]
async fn latency_delays_only_the_faulty_device() {
    let sim = Sim::start().await;
    set_fault(
        &sim,
        "focuser/0",
        json!({ "latency_ms": 500, "jitter_ms": 50 }),
    )
    .await;
    let t = Instant::now();
    assert!(sim.value("/api/v1/focuser/0/name").await.is_string());
    let slow = t.elapsed();
    assert!(slow >= Duration::from_millis(500), "{slow:?}");
    let t = Instant::now();
    sim.value("/api/v1/rotator/0/name").await;
    assert!(t.elapsed() < slow, "another device is not delayed");
}

#[tokio::test]
async fn an_error_rate_answers_200_with_the_chosen_error() {
    let sim = Sim::start().await;
    sim.connect("focuser", 0).await;
    set_fault(
        &sim,
        "focuser/0",
        json!({ "error_rate": 1.0, "error_number": 0x555, "error_message": "gremlins" }),
    )
    .await;
    let (st, v) = sim
        .get("/api/v1/focuser/0/position?ClientTransactionID=12")
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["ErrorNumber"], 0x555);
    assert_eq!(v["ErrorMessage"], "gremlins");
    assert_eq!(v["ClientTransactionID"], 12);
    assert_eq!(v["Value"], 0, "GET errors still carry the type default");
    let (st, v) = sim
        .put(
            "/api/v1/focuser/0/move",
            "Position=10&ClientTransactionID=13",
        )
        .await;
    assert_eq!(
        (
            st,
            v["ErrorNumber"].as_i64(),
            v["ClientTransactionID"].as_i64()
        ),
        (200, Some(0x555), Some(13))
    );
    assert!(v.get("Value").is_none(), "{v}");
    // Half the time: over 200 calls both outcomes show up.
    set_fault(&sim, "focuser/0", json!({ "error_rate": 0.5 })).await;
    let mut errors = 0;
    for _ in 0..200 {
        if sim.get_error("/api/v1/focuser/0/position").await != 0 {
            errors += 1;
        }
    }
    assert!(
        (40..=160).contains(&errors),
        "{errors} errors in 200 at rate 0.5"
    );
    clear_fault(&sim, "focuser/0").await;
    assert_eq!(sim.get_error("/api/v1/focuser/0/position").await, 0);
}

#[tokio::test]
async fn a_disconnected_device_says_so_until_cleared() {
    let sim = Sim::start().await;
    sim.connect("rotator", 0).await;
    set_fault(&sim, "rotator/0", json!({ "disconnected": true })).await;
    assert_eq!(sim.value("/api/v1/rotator/0/connected").await, false);
    assert_eq!(sim.get_error("/api/v1/rotator/0/position").await, 0x407);
    assert_eq!(
        sim.put_error("/api/v1/rotator/0/connected", "Connected=true")
            .await,
        0x407,
        "cannot reconnect"
    );
    assert!(
        sim.value("/api/v1/rotator/0/name").await.is_string(),
        "information members still answer"
    );
    clear_fault(&sim, "rotator/0").await;
    // The fault dropped the real connection too, as a pulled cable would.
    assert_eq!(sim.value("/api/v1/rotator/0/connected").await, false);
    sim.connect("rotator", 0).await;
    assert_eq!(sim.get_error("/api/v1/rotator/0/position").await, 0);
}

#[tokio::test]
async fn a_hang_holds_requests_until_the_fault_is_cleared() {
    let sim = Sim::start().await;
    set_fault(&sim, "dome/0", json!({ "hang": true })).await;
    let url = format!("{}/api/v1/dome/0/name", sim.base);
    let http = sim.http.clone();
    let pending =
        tokio::spawn(async move { http.get(url).send().await.map(|r| r.status().as_u16()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished(), "no answer while hung");
    clear_fault(&sim, "dome/0").await;
    let status = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("answered")
        .expect("task");
    assert_eq!(status.ok(), Some(200));
}

#[tokio::test]
async fn a_hang_past_its_cap_drops_the_connection() {
    let mut cfg = test_config();
    cfg.server.hang_cap_secs = 0.3;
    let sim = Sim::start_with(cfg).await;
    set_fault(&sim, "dome/0", json!({ "hang": true })).await;
    let t = Instant::now();
    assert_eq!(
        raw_get(&sim, "/api/v1/dome/0/name").await,
        b"",
        "closed without an answer"
    );
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn stuck_motion_never_arrives_until_released() {
    let sim = Sim::start().await;
    sim.connect("focuser", 0).await;
    set_fault(&sim, "focuser/0", json!({ "stuck": true })).await;
    sim.ok_put("/api/v1/focuser/0/move", "Position=26000").await;
    sim.step(60.0).await;
    assert_eq!(
        sim.value("/api/v1/focuser/0/ismoving").await,
        true,
        "stuck: still moving"
    );
    assert_eq!(
        sim.value("/api/v1/focuser/0/position").await,
        25_000,
        "and going nowhere"
    );
    assert_eq!(sim.state("focuser", 0).await["stuck"], true);
    clear_fault(&sim, "focuser/0").await;
    sim.step(5.0).await;
    assert_eq!(sim.value("/api/v1/focuser/0/ismoving").await, false);
    assert_eq!(sim.value("/api/v1/focuser/0/position").await, 26_000);
}

#[tokio::test]
async fn transport_faults_give_500s_and_dropped_connections() {
    let sim = Sim::start().await;
    set_fault(&sim, "camera/0", json!({ "http500_rate": 1.0 })).await;
    let (st, _) = sim.get("/api/v1/camera/0/name").await;
    assert_eq!(st, 500);
    set_fault(&sim, "camera/0", json!({ "drop_rate": 1.0 })).await;
    assert_eq!(
        raw_get(&sim, "/api/v1/camera/0/name").await,
        b"",
        "not a single byte of response"
    );
    let err = sim
        .http
        .get(format!("{}/api/v1/camera/0/name", sim.base))
        .send()
        .await;
    assert!(err.is_err(), "a client sees a transport error: {err:?}");
    // The protocol client folds it into its I/O error.
    let e = sim.client.camera(0).checked().name().await;
    assert!(
        matches!(e, Err(bigskies_alpaca::client::ClientError::Io(_))),
        "{e:?}"
    );
    clear_fault(&sim, "camera/0").await;
    assert!(
        raw_get(&sim, "/api/v1/camera/0/name")
            .await
            .starts_with(b"HTTP/1.1 200")
    );
}

#[tokio::test]
async fn faults_from_the_config_file_are_active_at_start() {
    let mut cfg = test_config();
    cfg.faults.insert(
        "telescope/0".into(),
        toml::from_str("http500_rate = 1.0").expect("valid spec"),
    );
    let sim = Sim::start_with(cfg).await;
    assert_eq!(sim.get("/api/v1/telescope/0/name").await.0, 500);
    let (st, v) = sim.control(Method::GET, "/faults", None).await;
    assert_eq!(st, 200);
    assert_eq!(v["telescope/0"]["http500_rate"], 1.0);
    let (st, _) = sim.control(Method::DELETE, "/faults", None).await;
    assert_eq!(st, 204);
    assert_eq!(sim.get("/api/v1/telescope/0/name").await.0, 200);
}

#[tokio::test]
async fn bad_fault_requests_are_400_and_change_nothing() {
    let sim = Sim::start().await;
    for body in [
        json!({ "error_rate": 2 }),
        json!({ "error_number": 5 }),
        json!({ "nonsense": true }),
        json!("x"),
    ] {
        let (st, v) = sim
            .control(Method::PUT, "/faults/focuser/0", Some(body.clone()))
            .await;
        assert_eq!(st, 400, "{body}: {v}");
        assert!(v["error"].is_string());
    }
    let (st, _) = sim
        .control(Method::PUT, "/faults/focuser/7", Some(json!({})))
        .await;
    assert_eq!(st, 404);
    let (_, v) = sim.control(Method::GET, "/faults", None).await;
    assert_eq!(v, json!({}));
}
