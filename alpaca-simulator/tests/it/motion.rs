//! Motion against the stepped clock, moved through the control API: each operation takes the
//! simulated time its configured rate implies, and nothing completes on its own while the
//! clock stands still.

use serde_json::{Value, json};

use crate::common::Sim;

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

#[tokio::test]
async fn a_telescope_slew_takes_the_time_its_rate_implies() {
    let sim = Sim::start().await;
    sim.connect("telescope", 0).await;
    sim.ok_put("/api/v1/telescope/0/unpark", "").await;
    sim.step(120.0).await;
    sim.ok_put("/api/v1/telescope/0/tracking", "Tracking=true")
        .await;
    let s = sim.state("telescope", 0).await;
    let (ra, dec) = (f(&s["right_ascension"]), f(&s["declination"]));
    // Only the declination axis moves (tracking holds RA): 50° at the default profile of
    // 20°/s down to 4° from the target, 2°/s to 0.4°, 0.4°/s to 0.04°, then the snap:
    // (50 − 4)/20 + 3.6/2 + 0.36/0.4 = 2.3 + 1.8 + 0.9 = 5.0 s.
    let target_dec = if dec > 20.0 { dec - 50.0 } else { dec + 50.0 };
    sim.ok_put(
        "/api/v1/telescope/0/slewtocoordinatesasync",
        &format!("RightAscension={ra}&Declination={target_dec}"),
    )
    .await;
    assert_eq!(
        sim.value("/api/v1/telescope/0/slewing").await,
        true,
        "slewing on return"
    );
    sim.step(4.0).await;
    assert_eq!(
        sim.value("/api/v1/telescope/0/slewing").await,
        true,
        "still slewing after 4 s of ~5 s"
    );
    let mid = f(&sim.value("/api/v1/telescope/0/declination").await);
    assert!(
        (mid - target_dec).abs() > 0.05 && (mid - target_dec).abs() < 4.0,
        "in the slow approach: {mid}"
    );
    sim.step(1.5).await;
    assert_eq!(
        sim.value("/api/v1/telescope/0/slewing").await,
        false,
        "arrived after 5.5 s"
    );
    let end = f(&sim.value("/api/v1/telescope/0/declination").await);
    assert!(
        (end - target_dec).abs() < 10.0 / 3600.0,
        "within 10″: {end} vs {target_dec}"
    );
    let end_ra = f(&sim.value("/api/v1/telescope/0/rightascension").await);
    assert!(
        (end_ra - ra).abs() * 15.0 < 10.0 / 3600.0,
        "RA held: {end_ra} vs {ra}"
    );
}

#[tokio::test]
async fn the_dome_shutter_and_rotation_take_their_time() {
    let sim = Sim::start().await;
    sim.connect("dome", 0).await;
    assert_eq!(
        sim.value("/api/v1/dome/0/shutterstatus").await,
        1,
        "starts closed"
    );
    sim.ok_put("/api/v1/dome/0/openshutter", "").await;
    assert_eq!(
        sim.value("/api/v1/dome/0/shutterstatus").await,
        2,
        "opening on return"
    );
    assert_eq!(
        sim.value("/api/v1/dome/0/slewing").await,
        true,
        "shutter motion counts as slewing"
    );
    sim.step(2.5).await;
    assert_eq!(
        sim.value("/api/v1/dome/0/shutterstatus").await,
        2,
        "still opening at 2.5 s of 3 s"
    );
    sim.step(0.6).await;
    assert_eq!(
        sim.value("/api/v1/dome/0/shutterstatus").await,
        0,
        "open after 3 s"
    );
    assert_eq!(sim.value("/api/v1/dome/0/slewing").await, false);

    // 180° → 90° at 15°/s: 6 s.
    let start = f(&sim.value("/api/v1/dome/0/azimuth").await);
    assert!(
        (start - 180.0).abs() < 1e-6,
        "starts at the park azimuth: {start}"
    );
    sim.ok_put("/api/v1/dome/0/slewtoazimuth", "Azimuth=90")
        .await;
    sim.step(5.0).await;
    assert_eq!(sim.value("/api/v1/dome/0/slewing").await, true);
    let az = f(&sim.value("/api/v1/dome/0/azimuth").await);
    assert!((az - 105.0).abs() < 0.5, "75° turned in 5 s: {az}");
    sim.step(1.1).await;
    assert_eq!(sim.value("/api/v1/dome/0/slewing").await, false);
    assert!((f(&sim.value("/api/v1/dome/0/azimuth").await) - 90.0).abs() < 0.5);
}

#[tokio::test]
async fn the_focuser_moves_at_its_rate_and_clamps() {
    let sim = Sim::start().await;
    sim.connect("focuser", 0).await;
    assert_eq!(sim.value("/api/v1/focuser/0/position").await, 25_000);
    let max = sim
        .value("/api/v1/focuser/0/maxstep")
        .await
        .as_i64()
        .unwrap_or(0);
    assert_eq!(max, 50_000);
    // Past the end: clamped to MaxStep, no error; 25 000 steps at 2 000 steps/s = 12.5 s.
    sim.ok_put("/api/v1/focuser/0/move", &format!("Position={}", max + 10))
        .await;
    assert_eq!(sim.value("/api/v1/focuser/0/ismoving").await, true);
    sim.step(12.0).await;
    assert_eq!(sim.value("/api/v1/focuser/0/ismoving").await, true);
    sim.step(1.0).await;
    assert_eq!(sim.value("/api/v1/focuser/0/ismoving").await, false);
    assert_eq!(sim.value("/api/v1/focuser/0/position").await, max);
    sim.ok_put("/api/v1/focuser/0/move", "Position=-10").await;
    sim.step(30.0).await;
    assert_eq!(
        sim.value("/api/v1/focuser/0/position").await,
        0,
        "clamped at 0"
    );
}

#[tokio::test]
async fn the_filter_wheel_reports_minus_one_while_moving() {
    let sim = Sim::start().await;
    sim.connect("filterwheel", 0).await;
    assert_eq!(sim.value("/api/v1/filterwheel/0/position").await, 0);
    sim.ok_put("/api/v1/filterwheel/0/position", "Position=2")
        .await;
    assert_eq!(
        sim.value("/api/v1/filterwheel/0/position").await,
        -1,
        "moving on return"
    );
    sim.step(1.5).await;
    assert_eq!(
        sim.value("/api/v1/filterwheel/0/position").await,
        -1,
        "two slots take 2 s"
    );
    sim.step(0.6).await;
    assert_eq!(sim.value("/api/v1/filterwheel/0/position").await, 2);
}

#[tokio::test]
async fn the_rotator_turns_at_its_rate() {
    let sim = Sim::start().await;
    sim.connect("rotator", 0).await;
    sim.ok_put("/api/v1/rotator/0/moveabsolute", "Position=90")
        .await;
    assert_eq!(sim.value("/api/v1/rotator/0/ismoving").await, true);
    sim.step(8.0).await;
    assert_eq!(
        sim.value("/api/v1/rotator/0/ismoving").await,
        true,
        "90° at 10°/s takes 9 s"
    );
    sim.step(1.2).await;
    assert_eq!(sim.value("/api/v1/rotator/0/ismoving").await, false);
    assert!((f(&sim.value("/api/v1/rotator/0/position").await) - 90.0).abs() < 0.02);
}

#[tokio::test]
async fn a_slaved_dome_follows_the_mount() {
    let sim = Sim::start().await;
    sim.connect("telescope", 0).await;
    sim.connect("dome", 0).await;
    sim.ok_put("/api/v1/telescope/0/unpark", "").await;
    sim.step(120.0).await;
    sim.ok_put("/api/v1/telescope/0/tracking", "Tracking=false")
        .await;
    sim.ok_put(
        "/api/v1/telescope/0/slewtoaltazasync",
        "Azimuth=100&Altitude=45",
    )
    .await;
    sim.step(60.0).await;
    assert_eq!(sim.value("/api/v1/telescope/0/slewing").await, false);
    let mount_az = f(&sim.value("/api/v1/telescope/0/azimuth").await);
    assert!((mount_az - 100.0).abs() < 0.01, "{mount_az}");

    sim.ok_put("/api/v1/dome/0/slaved", "Slaved=true").await;
    // The next dome request feeds the mount's azimuth; 80° at 15°/s takes ~5.3 s.
    assert_eq!(
        sim.value("/api/v1/dome/0/slewing").await,
        true,
        "the slaved dome starts turning"
    );
    sim.step(10.0).await;
    let dome_az = f(&sim.value("/api/v1/dome/0/azimuth").await);
    assert!(
        (dome_az - mount_az).abs() <= 1.0,
        "dome {dome_az} follows mount {mount_az}"
    );
    // The control API's state dump is brought up to date the same way.
    let s = sim.state("dome", 0).await;
    assert_eq!(s["slaved"], json!(true));
}

#[tokio::test]
async fn the_camera_frame_sees_the_dome_shutter_and_the_filter() {
    let sim = Sim::start().await;
    sim.connect_all().await;
    // Shutter closed: the exposure is taken in the dark.
    sim.ok_put("/api/v1/filterwheel/0/position", "Position=1")
        .await;
    sim.step(2.0).await;
    sim.ok_put("/api/v1/camera/0/startexposure", "Duration=1&Light=true")
        .await;
    let s = sim.state("camera", 0).await;
    assert_eq!(s["context"]["shutter_open"], json!(false), "{s}");
    let wheel = sim.state("filterwheel", 0).await;
    assert_eq!(
        s["context"]["filter"], wheel["filter"],
        "the frame records the wheel's filter"
    );
    assert!(
        s["context"]["pointing"].is_array(),
        "the frame records the mount's pointing: {s}"
    );
    sim.step(30.0).await;
    assert_eq!(sim.value("/api/v1/camera/0/imageready").await, true);

    sim.ok_put("/api/v1/dome/0/openshutter", "").await;
    sim.step(5.0).await;
    sim.ok_put("/api/v1/camera/0/startexposure", "Duration=1&Light=true")
        .await;
    let s = sim.state("camera", 0).await;
    assert_eq!(s["context"]["shutter_open"], json!(true), "{s}");
    // Moving the focuser away from focus shows up in the next frame's context.
    let before = f(&s["context"]["focus_error_steps"]);
    sim.step(30.0).await;
    sim.ok_put("/api/v1/focuser/0/move", "Position=30000").await;
    sim.step(10.0).await;
    sim.ok_put("/api/v1/camera/0/startexposure", "Duration=1&Light=true")
        .await;
    let after = f(&sim.state("camera", 0).await["context"]["focus_error_steps"]);
    assert!(
        (after - before - 5000.0).abs() < 50.0,
        "focus error moved by the focuser: {before} → {after}"
    );
}
