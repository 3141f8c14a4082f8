//! Client ↔ server round trips over a real socket on port 0.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::*;
use crate::devices::{Camera, Device, Telescope};
use crate::image::ImageElementType;
use crate::testing::{FakeCamera, FakeTelescope, test_server};
use crate::types::{AxisRate, DriveRate, GuideDirection, PierSide, TelescopeAxis};

/// A served test server; shuts down when dropped.
struct Running {
    base: String,
    scope: Arc<FakeTelescope>,
    _stop: oneshot::Sender<()>,
}

async fn start() -> Running {
    let scope = FakeTelescope::new();
    let server = test_server(scope.clone(), FakeCamera::new());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let addr = listener.local_addr().expect("bound address");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));
    Running {
        base: format!("http://{addr}"),
        scope,
        _stop: stop,
    }
}

fn code(e: &AlpacaError) -> ErrorCode {
    e.code
}

#[tokio::test]
async fn telescope_members_round_trip() {
    let srv = start().await;
    let client = AlpacaClient::build(&srv.base).expect("client");
    let scope = client.telescope(0);

    scope.set_connected(true).await.expect("connect");
    assert!(scope.connected().await.expect("connected"));
    scope.set_tracking(true).await.expect("tracking on");
    assert!(scope.tracking().await.expect("tracking"));
    assert_eq!(scope.right_ascension().await.ok(), Some(12.5));
    assert_eq!(
        scope.axis_rates(TelescopeAxis::Secondary).await.ok(),
        Some(vec![AxisRate::new(0.0, 3.0), AxisRate::new(10.0, 20.0)])
    );
    assert_eq!(
        scope.can_move_axis(TelescopeAxis::Tertiary).await.ok(),
        Some(false)
    );
    assert_eq!(
        scope.destination_side_of_pier(13.0, 0.0).await.ok(),
        Some(PierSide::West)
    );
    assert_eq!(scope.side_of_pier().await.ok(), Some(PierSide::Unknown));
    assert_eq!(
        scope.tracking_rates().await.ok(),
        Some(vec![
            DriveRate::Sidereal,
            DriveRate::Lunar,
            DriveRate::Solar
        ])
    );
    scope
        .set_tracking_rate(DriveRate::Lunar)
        .await
        .expect("lunar is offered");
    assert_eq!(scope.tracking_rate().await.ok(), Some(DriveRate::Lunar));

    let t = Utc
        .with_ymd_and_hms(2030, 6, 7, 8, 9, 10)
        .single()
        .expect("date")
        + chrono::Duration::nanoseconds(123_456_700);
    scope.set_utc_date(t).await.expect("utc write");
    assert_eq!(
        scope.utc_date().await.ok(),
        Some(t),
        "7 fractional digits survive the trip"
    );

    scope
        .slew_to_coordinates_async(5.25, -10.5)
        .await
        .expect("slew");
    assert_eq!(
        srv.scope.state.lock().ok().and_then(|s| s.last_slew),
        Some((5.25, -10.5))
    );
    scope
        .pulse_guide(GuideDirection::West, 250)
        .await
        .expect("guide");
    assert_eq!(
        srv.scope.state.lock().ok().and_then(|s| s.last_pulse),
        Some((GuideDirection::West, 250))
    );
    assert_eq!(
        scope
            .action("Echo".into(), "a b&c=d".into())
            .await
            .ok()
            .as_deref(),
        Some("a b&c=d")
    );
    assert_eq!(scope.interface_version().await.ok(), Some(4));
    let state = scope.device_state().await.expect("device state");
    assert_eq!(state[0].name, "Tracking");
    assert_eq!(state[0].value, serde_json::json!(true));
}

#[tokio::test]
async fn ascom_errors_arrive_as_alpaca_errors() {
    let srv = start().await;
    let client = AlpacaClient::build(&srv.base).expect("client");
    let scope = client.telescope(0);
    let e = scope
        .set_site_elevation(-400.0)
        .await
        .expect_err("out of range");
    assert_eq!(code(&e), ErrorCode::INVALID_VALUE);
    let e = scope.target_right_ascension().await.expect_err("never set");
    assert_eq!(code(&e), ErrorCode::VALUE_NOT_SET);
    let e = scope
        .can_set_park()
        .await
        .expect_err("fake does not implement it");
    assert_eq!(code(&e), ErrorCode::NOT_IMPLEMENTED);
    let e = scope
        .set_tracking_rate(DriveRate::King)
        .await
        .expect_err("King refused");
    assert_eq!(code(&e), ErrorCode::INVALID_VALUE);
    match scope.checked().target_right_ascension().await {
        Err(ClientError::Ascom(e)) => assert_eq!(e.code, ErrorCode::VALUE_NOT_SET),
        other => panic!("expected an ASCOM error, got {other:?}"),
    }
}

#[tokio::test]
async fn transport_errors_stay_apart_from_ascom_errors() {
    let srv = start().await;
    let client = AlpacaClient::build(&srv.base).expect("client");
    let missing = client.telescope(7);
    match missing.checked().tracking().await {
        Err(ClientError::Http { status: 400, body }) => {
            assert!(body.contains("not configured"), "{body}")
        }
        other => panic!("expected HTTP 400, got {other:?}"),
    }
    assert_eq!(
        missing.tracking().await.err().map(|e| e.code),
        Some(ClientError::HTTP_CODE)
    );
    match client.telescope(0).checked().aperture_area().await {
        Err(ClientError::Http { status: 500, .. }) => {}
        other => panic!("expected HTTP 500, got {other:?}"),
    }

    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let nowhere = AlpacaClient::build(format!("http://{addr}")).expect("client");
    let err = nowhere
        .telescope(0)
        .checked()
        .tracking()
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(err, ClientError::Io(_) | ClientError::Timeout),
        "{err:?}"
    );
    assert!(matches!(
        err.into_alpaca().code,
        ClientError::IO_CODE | ClientError::TIMEOUT_CODE
    ));
}

#[tokio::test]
async fn a_stalled_server_is_a_timeout() {
    // Accepts the connection but never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hold = tokio::spawn(async move {
        let conn = listener.accept().await;
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        drop(conn);
    });
    let mut config = AlpacaClientConfig::new(format!("http://{addr}"));
    config.timeout = std::time::Duration::from_millis(200);
    let client = AlpacaClient::with_config(config).expect("client");
    let err = client
        .telescope(0)
        .checked()
        .tracking()
        .await
        .expect_err("no answer");
    assert!(matches!(err, ClientError::Timeout), "{err:?}");
    assert_eq!(err.into_alpaca().code, ClientError::TIMEOUT_CODE);
    hold.abort();
}

#[tokio::test]
async fn camera_images_come_back_through_imagebytes() {
    let srv = start().await;
    let client = AlpacaClient::build(&srv.base).expect("client");
    let cam = client.camera(0);
    let e = cam.image_array().await.expect_err("no image yet");
    assert_eq!(e.code, ErrorCode::INVALID_OPERATION);
    cam.set_bin_x(2).await.expect("bin 2");
    assert_eq!(cam.bin_x().await.ok(), Some(2));
    assert_eq!(
        cam.set_bin_x(0).await.err().map(|e| e.code),
        Some(ErrorCode::INVALID_VALUE)
    );
    cam.start_exposure(0.1, true).await.expect("expose");
    assert!(cam.image_ready().await.expect("ready"));
    let img = cam.image_array().await.expect("image");
    assert_eq!(img, FakeCamera::image());
    assert_eq!(
        img.transmission_hint(),
        ImageElementType::UInt16,
        "it travelled as UInt16"
    );
    assert_eq!(
        cam.image_array_variant().await.ok(),
        Some(FakeCamera::image())
    );
    let start = cam.last_exposure_start_time().await.expect("start time");
    assert_eq!(start.to_wire(), "2026-05-06T07:08:09.000");
    assert_eq!(
        cam.readout_modes().await.ok(),
        Some(vec!["Default".to_owned(), "Fast".to_owned()])
    );
}

#[tokio::test]
async fn management_calls_and_transaction_ids() {
    let srv = start().await;
    let client = AlpacaClient::build(&srv.base).expect("client");
    assert_eq!(
        client.next_transaction_id(),
        1,
        "client transaction ids start at 1"
    );
    assert_eq!(client.api_versions().await.ok(), Some(vec![1]));
    let desc = client.server_description().await.expect("description");
    assert_eq!(desc.manufacturer, "Big Skies");
    let devices = client.configured_devices().await.expect("devices");
    assert_eq!(devices.len(), 3);
    assert_eq!(devices[2].device_type, "Camera");
    assert_eq!(client.next_transaction_id(), 5, "one id per call");
    let any = client.device(crate::types::DeviceType::Camera, 0);
    assert!(
        any.connected()
            .await
            .expect("common members work on a plain RemoteDevice")
    );
}
