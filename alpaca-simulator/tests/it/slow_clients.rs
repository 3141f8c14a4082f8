//! Slow and idle clients cannot exhaust the server (issue 20, item 9): a connection that does
//! not complete its request header within the header read timeout is closed, and the
//! connection cap keeps the number of open connections (file handles) bounded.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{Sim, test_config};

/// A connection that starts a request header and never finishes it.
async fn slow_client(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connects");
    s.write_all(b"GET /management/apiversions HTTP/1.1\r\nHost: sim\r\n")
        .await
        .expect("writes");
    s
}

/// Whether the server closes `s` (end of stream or reset) within `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // An error response before closing is fine.
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn connections_that_never_finish_their_header_are_closed_and_others_are_served() {
    let mut cfg = test_config();
    cfg.server.header_read_timeout_secs = 1.0;
    let sim = Sim::start_with(cfg).await;
    let addr = sim.running.http_addr;
    let mut slow = Vec::new();
    for _ in 0..100 {
        slow.push(slow_client(addr).await);
    }
    let (status, body) = sim.get("/management/apiversions").await;
    assert_eq!(status, 200, "{body}");
    for (i, s) in slow.iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(10)).await,
            "slow connection {i} is still open"
        );
    }
    let (status, _) = sim.get("/management/apiversions").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_connection_cap_holds_further_clients_until_a_slot_frees() {
    let mut cfg = test_config();
    cfg.server.header_read_timeout_secs = 2.0;
    cfg.server.max_connections = 4;
    let sim = Sim::start_with(cfg).await;
    let addr = sim.running.http_addr;
    let mut slow = Vec::new();
    for _ in 0..4 {
        slow.push(slow_client(addr).await);
    }
    // Every slot is taken: a fifth client is not served while the slow ones hold them.
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .expect("client");
    let r = quick
        .get(format!("{}/management/apiversions", sim.base))
        .send()
        .await;
    assert!(r.is_err(), "served beyond the cap: {r:?}");
    // Once the header read timeout closes them, it is.
    for s in &mut slow {
        assert!(closed_within(s, Duration::from_secs(10)).await);
    }
    let (status, body) = sim.get("/management/apiversions").await;
    assert_eq!(status, 200, "{body}");
}
