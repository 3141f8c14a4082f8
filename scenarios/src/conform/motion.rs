//! Checks that move hardware or start exposures; only with `allow_motion`. Moves are short
//! and are undone: bad coordinates and capability-gated calls (which must be refused), one
//! small slew, focuser/rotator/filter-wheel moves out and back, and one small dark exposure
//! with its image fetched as JSON and as ImageBytes.

use std::time::{Duration, Instant};

use bigskies_alpaca::image::{IMAGE_BYTES_MIME, decode_image_bytes};
use bigskies_alpaca::types::{DeviceType, Verb};
use serde_json::Value;

use super::device::DeviceRun;
use super::envelope::{self, Envelope, Expect, ValueRule};
use super::http::{Request, pair};
use super::report::Outcome;
use super::values::as_param;

/// What a call that must be refused may answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    /// InvalidValue (0x401); NotImplemented (0x400) when the Can… flag says unsupported.
    Invalid,
    /// NotImplemented (0x400).
    NotImplemented,
}

impl DeviceRun<'_> {
    /// Waits (bounded) until the device is no longer moving or exposing.
    pub(super) async fn wait_idle(&mut self) {
        let limit = self.opts.motion_timeout;
        let done = match self.t.known {
            Some(DeviceType::Telescope) => {
                self.wait_until(limit, async |r: &mut Self| {
                    r.read_bool("Slewing").await != Some(true)
                })
                .await
            }
            Some(DeviceType::Dome) => {
                self.wait_until(limit, async |r: &mut Self| {
                    r.read_bool("Slewing").await != Some(true)
                })
                .await
            }
            Some(DeviceType::Focuser | DeviceType::Rotator) => {
                self.wait_until(limit, async |r: &mut Self| {
                    r.read_bool("IsMoving").await != Some(true)
                })
                .await
            }
            Some(DeviceType::FilterWheel) => {
                self.wait_until(limit, async |r: &mut Self| {
                    r.read_f64("Position").await != Some(-1.0)
                })
                .await
            }
            Some(DeviceType::Camera) => {
                self.wait_until(limit, async |r: &mut Self| {
                    matches!(r.read_f64("CameraState").await, Some(s) if s == 0.0 || s == 5.0)
                        || r.read_errors.contains_key("CameraState")
                })
                .await
            }
            None => true,
        };
        if !done {
            self.sec
                .check("motion-finishes", "§4.1", "started operations finish")
                .issue(
                    None,
                    format!("idle within {} s", limit.as_secs()),
                    "still busy",
                );
        }
    }

    /// Calls a PUT member that must be refused; a call the device accepted is undone by
    /// waiting for it to finish (the caller restores positions).
    async fn must_refuse(
        &mut self,
        member: &str,
        args: &[(&str, String)],
        want: Want,
        can: Option<bool>,
    ) {
        let (id, title) = match want {
            Want::Invalid => (
                "invalid-arguments",
                "out-of-range arguments are refused with HTTP 200 + InvalidValue (0x401)",
            ),
            Want::NotImplemented => (
                "capability-methods",
                "methods are refused with NotImplemented (0x400) when their Can… flag is false",
            ),
        };
        let Some(m) = self.member(Verb::Put, member) else {
            return;
        };
        let (ctid, ids) = self.ids();
        let mut pairs: Vec<(String, String)> =
            args.iter().map(|(k, v)| pair(*k, v.clone())).collect();
        pairs.extend(ids);
        let req = Request::put(self.path(&m.path()), &pairs);
        let Some(reply) = self.send(&req).await else {
            return;
        };
        if reply.status != 200 {
            // A parseable argument is the device's business: HTTP 200 with an error (§1.4).
            self.sec.check(id, "§1.4 §5–§10", title).issue(
                Some(req.to_string()),
                "HTTP 200 with an ASCOM error",
                reply.summary(),
            );
            return;
        }
        let strict = self.strict();
        let Some(env) = envelope::inspect(
            &mut self.sec,
            strict,
            &req,
            &reply,
            Expect {
                ctid: Some(ctid),
                value: ValueRule::Put(m.returns),
                image: false,
            },
        ) else {
            return;
        };
        let n = env.error_number();
        let (outcome, expected) = match (want, can) {
            (Want::Invalid, Some(false)) => (
                if matches!(n, 0x400 | 0x401) {
                    Outcome::Pass
                } else {
                    Outcome::Issue
                },
                "ErrorNumber 0x400 (not supported) or 0x401",
            ),
            (Want::Invalid, _) => (
                match n {
                    0x401 => Outcome::Pass,
                    0 => Outcome::Issue,
                    // Parked / slaved / wrong tracking state: reported, not judged.
                    0x408 | 0x409 | 0x40B => Outcome::Information,
                    _ => Outcome::Issue,
                },
                "ErrorNumber 0x401 InvalidValue",
            ),
            (Want::NotImplemented, _) => (
                if n == 0x400 {
                    Outcome::Pass
                } else {
                    Outcome::Issue
                },
                "ErrorNumber 0x400 NotImplemented (its Can… flag is false)",
            ),
        };
        self.sec.check(id, "§1.4 §5–§10", title).record(
            outcome,
            Some(req.to_string()),
            expected,
            env.error_text(),
        );
        if n == 0 {
            self.wait_idle().await;
        }
    }

    pub(super) async fn motion(&mut self) {
        match self.t.known {
            Some(DeviceType::Telescope) => self.telescope_motion().await,
            Some(DeviceType::Camera) => self.camera_motion().await,
            Some(DeviceType::Dome) => self.dome_motion().await,
            Some(DeviceType::Focuser) => self.focuser_motion().await,
            Some(DeviceType::FilterWheel) => self.filter_wheel_motion().await,
            Some(DeviceType::Rotator) => self.rotator_motion().await,
            None => {}
        }
    }

    async fn telescope_motion(&mut self) {
        let parked = self.read_bool("AtPark").await == Some(true);
        // AbortSlew is harmless while idle (0x408 when parked).
        if let Some((req, env)) = self.write("AbortSlew", Vec::new()).await {
            let want = if parked { 0x408 } else { 0 };
            let ok = env.error_number() == want || (!parked && env.ok());
            self.sec
                .check(
                    "abort-idle",
                    "§5",
                    "AbortSlew while idle succeeds (0x408 while parked)",
                )
                .record(
                    if ok { Outcome::Pass } else { Outcome::Issue },
                    Some(req.to_string()),
                    envelope::describe_error(want, ""),
                    env.error_text(),
                );
        }
        let ra = self.read_f64("RightAscension").await.unwrap_or(0.0);
        let dec = self.read_f64("Declination").await.unwrap_or(0.0);
        let az = self.read_f64("Azimuth").await.unwrap_or(0.0);
        let alt = self.read_f64("Altitude").await.unwrap_or(45.0);
        let can_async = self.flag("CanSlewAsync");
        for (r, d) in [(25.0, dec), (-1.0, dec), (ra, 100.0), (ra, -100.0)] {
            self.must_refuse(
                "SlewToCoordinatesAsync",
                &[
                    ("RightAscension", r.to_string()),
                    ("Declination", d.to_string()),
                ],
                Want::Invalid,
                can_async,
            )
            .await;
        }
        let can_sync = self.flag("CanSync");
        for (r, d) in [(25.0, dec), (ra, 100.0)] {
            self.must_refuse(
                "SyncToCoordinates",
                &[
                    ("RightAscension", r.to_string()),
                    ("Declination", d.to_string()),
                ],
                Want::Invalid,
                can_sync,
            )
            .await;
        }
        let can_altaz = self.flag("CanSlewAltAzAsync");
        for (a, h) in [(-10.0, alt), (370.0, alt), (az, 100.0)] {
            self.must_refuse(
                "SlewToAltAzAsync",
                &[("Azimuth", a.to_string()), ("Altitude", h.to_string())],
                Want::Invalid,
                can_altaz,
            )
            .await;
        }
        // MoveAxis faster than the fastest AxisRate.
        if self.reads.get("CanMoveAxis:0").and_then(Value::as_bool) == Some(true) {
            let fastest = self
                .reads
                .get("AxisRates:0")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|r| r["Maximum"].as_f64())
                        .fold(0.0_f64, f64::max)
                })
                .unwrap_or(0.0);
            self.must_refuse(
                "MoveAxis",
                &[("Axis", "0".into()), ("Rate", (fastest + 1.0).to_string())],
                Want::Invalid,
                Some(true),
            )
            .await;
            let _ = self
                .write("MoveAxis", vec![pair("Axis", "0"), pair("Rate", "0")])
                .await;
        }
        // Capability-gated methods must be refused when their flag is false.
        for (flag, member) in [
            ("CanPark", "Park"),
            ("CanUnpark", "Unpark"),
            ("CanFindHome", "FindHome"),
            ("CanSetPark", "SetPark"),
        ] {
            if self.flag(flag) == Some(false) {
                self.must_refuse(member, &[], Want::NotImplemented, Some(false))
                    .await;
            }
        }
        if !parked && can_async == Some(true) {
            self.short_slew(ra, dec).await;
        }
    }

    /// A 2° slew in declination and back: Slewing true on return, the targets copied, and
    /// the mount arriving within 10″.
    async fn short_slew(&mut self, ra: f64, dec: f64) {
        let was_tracking = self.read_bool("Tracking").await;
        if was_tracking == Some(false) && self.flag("CanSetTracking") == Some(true) {
            let _ = self.write("Tracking", vec![pair("Tracking", "True")]).await;
        }
        let target = if dec > 0.0 { dec - 2.0 } else { dec + 2.0 };
        let title = "an asynchronous slew returns slewing, copies the target and arrives";
        let args = vec![
            pair("RightAscension", ra.to_string()),
            pair("Declination", target.to_string()),
        ];
        let Some((req, env)) = self.write("SlewToCoordinatesAsync", args).await else {
            return;
        };
        if !env.ok() {
            self.sec.check("slew", "§5", title).info(
                Some(req.to_string()),
                "ErrorNumber 0",
                env.error_text(),
            );
        } else {
            let slewing = self.read_bool("Slewing").await;
            let arrived_already = self
                .read_f64("Declination")
                .await
                .is_some_and(|d| (d - target).abs() * 3600.0 <= 10.0);
            self.sec.check("slew", "§5", title).record(
                if slewing == Some(true) || arrived_already {
                    Outcome::Pass
                } else {
                    Outcome::Issue
                },
                Some(req.to_string()),
                "Slewing true right after the call returns",
                format!("Slewing {slewing:?}"),
            );
            self.wait_idle().await;
            let t_ra = self.read_f64("TargetRightAscension").await;
            let t_dec = self.read_f64("TargetDeclination").await;
            let copied = t_ra.is_some_and(|v| ra_arcsec_apart(v, ra) <= 10.0)
                && t_dec.is_some_and(|v| (v - target).abs() * 3600.0 <= 10.0);
            self.sec.check("slew", "§5", title).record(
                if copied {
                    Outcome::Pass
                } else {
                    Outcome::Issue
                },
                Some(req.to_string()),
                format!("TargetRightAscension {ra}, TargetDeclination {target}"),
                format!("{t_ra:?}, {t_dec:?}"),
            );
            let d = self.read_f64("Declination").await;
            let arrived = d.is_some_and(|d| (d - target).abs() * 3600.0 <= 10.0);
            self.sec.check("slew", "§5", title).record(
                if arrived {
                    Outcome::Pass
                } else {
                    Outcome::Issue
                },
                Some(req.to_string()),
                format!("Declination {target} within 10″"),
                format!("Declination {d:?}"),
            );
            let back = vec![
                pair("RightAscension", ra.to_string()),
                pair("Declination", dec.to_string()),
            ];
            let _ = self.write("SlewToCoordinatesAsync", back).await;
            self.wait_idle().await;
        }
        if was_tracking == Some(false) && self.flag("CanSetTracking") == Some(true) {
            let _ = self
                .write("Tracking", vec![pair("Tracking", "False")])
                .await;
        }
    }

    async fn dome_motion(&mut self) {
        if let Some((req, env)) = self.write("AbortSlew", Vec::new()).await {
            self.sec
                .check(
                    "abort-idle",
                    "§7",
                    "AbortSlew is implemented and succeeds while idle",
                )
                .record(
                    if env.ok() {
                        Outcome::Pass
                    } else {
                        Outcome::Issue
                    },
                    Some(req.to_string()),
                    "ErrorNumber 0",
                    env.error_text(),
                );
        }
        let (can_az, can_alt, can_sync) = (
            self.flag("CanSetAzimuth"),
            self.flag("CanSetAltitude"),
            self.flag("CanSyncAzimuth"),
        );
        for a in ["-10", "370"] {
            self.must_refuse(
                "SlewToAzimuth",
                &[("Azimuth", a.into())],
                Want::Invalid,
                can_az,
            )
            .await;
            self.must_refuse(
                "SyncToAzimuth",
                &[("Azimuth", a.into())],
                Want::Invalid,
                can_sync,
            )
            .await;
        }
        for h in ["-10", "100"] {
            self.must_refuse(
                "SlewToAltitude",
                &[("Altitude", h.into())],
                Want::Invalid,
                can_alt,
            )
            .await;
        }
        for (flag, members) in [
            ("CanFindHome", &["FindHome"][..]),
            ("CanPark", &["Park"][..]),
            ("CanSetPark", &["SetPark"][..]),
            ("CanSetShutter", &["OpenShutter", "CloseShutter"][..]),
        ] {
            if self.flag(flag) == Some(false) {
                for m in members {
                    self.must_refuse(m, &[], Want::NotImplemented, Some(false))
                        .await;
                }
            }
        }
        if self.flag("CanSlave") == Some(false) {
            self.must_refuse(
                "Slaved",
                &[("Slaved", "True".into())],
                Want::NotImplemented,
                Some(false),
            )
            .await;
            if self.read_bool("Slaved").await == Some(true) {
                let _ = self.write("Slaved", vec![pair("Slaved", "False")]).await;
            }
        }
    }

    async fn focuser_motion(&mut self) {
        if self.flag("TempCompAvailable") == Some(false) {
            self.must_refuse(
                "TempComp",
                &[("TempComp", "True".into())],
                Want::NotImplemented,
                Some(false),
            )
            .await;
            if self.read_bool("TempComp").await == Some(true) {
                let _ = self
                    .write("TempComp", vec![pair("TempComp", "False")])
                    .await;
            }
        }
        let absolute = self.read_bool("Absolute").await;
        let max_step = self.num("MaxStep").unwrap_or(0.0);
        let step = self.num("MaxIncrement").unwrap_or(10.0).clamp(1.0, 10.0);
        let title = "a move starts at once (IsMoving) and ends at the target within 2 steps";
        if absolute == Some(true) {
            let Some(start) = self.read_f64("Position").await else {
                return;
            };
            let target = if start + step <= max_step {
                start + step
            } else {
                start - step
            };
            self.timed_move("Move", "Position", target, start, title)
                .await;
        } else if absolute == Some(false) {
            let Some((req, env)) = self
                .write("Move", vec![pair("Position", format!("{}", step as i64))])
                .await
            else {
                return;
            };
            self.sec.check("move", "§8", title).record(
                if env.ok() {
                    Outcome::Pass
                } else {
                    Outcome::Issue
                },
                Some(req.to_string()),
                "ErrorNumber 0",
                env.error_text(),
            );
            self.wait_idle().await;
            let _ = self
                .write(
                    "Move",
                    vec![pair("Position", format!("{}", -(step as i64)))],
                )
                .await;
            self.wait_idle().await;
        }
    }

    /// Moves `member` to `target` (checking IsMoving on return and the arrival), then back
    /// to `back`.
    async fn timed_move(&mut self, member: &str, param: &str, target: f64, back: f64, title: &str) {
        let integer = self.t.known == Some(DeviceType::Focuser);
        let text = |v: f64| {
            if integer {
                format!("{}", v.round() as i64)
            } else {
                v.to_string()
            }
        };
        let started = Instant::now();
        let Some((req, env)) = self.write(member, vec![pair(param, text(target))]).await else {
            return;
        };
        let took = started.elapsed();
        if !env.ok() {
            self.sec.check("move", "§8 §10", title).issue(
                Some(req.to_string()),
                "ErrorNumber 0",
                env.error_text(),
            );
            return;
        }
        let moving = self.read_bool("IsMoving").await;
        let position = self.read_f64("Position").await;
        let arrived = |p: Option<f64>, tolerance: f64| {
            p.is_some_and(|p| angle_or_steps_apart(p, target, integer) <= tolerance)
        };
        // Two focuser steps, or two degrees of rotator angle (ConformU's issue thresholds).
        let tolerance = 2.0;
        let synchronous =
            moving != Some(true) && arrived(position, tolerance) && took > Duration::from_secs(1);
        self.sec.check("move", "§8 §10", title).record(
            if synchronous {
                Outcome::Issue
            } else if moving == Some(true) || arrived(position, tolerance) {
                Outcome::Pass
            } else {
                Outcome::Issue
            },
            Some(req.to_string()),
            "IsMoving true right after the call (or already there within 1 s)",
            format!(
                "IsMoving {moving:?}, Position {position:?} after {:.2} s",
                took.as_secs_f64()
            ),
        );
        self.wait_idle().await;
        let position = self.read_f64("Position").await;
        self.sec.check("move", "§8 §10", title).record(
            if arrived(position, tolerance) {
                Outcome::Pass
            } else {
                Outcome::Issue
            },
            Some(req.to_string()),
            format!("Position {target} (within {tolerance})"),
            format!("Position {position:?}"),
        );
        let _ = self.write(member, vec![pair(param, text(back))]).await;
        self.wait_idle().await;
    }

    async fn rotator_motion(&mut self) {
        let Some(start) = self.read_f64("Position").await else {
            return;
        };
        let target = (start + 5.0).rem_euclid(360.0);
        self.timed_move(
            "MoveAbsolute",
            "Position",
            target,
            start,
            "a move starts at once (IsMoving) and ends at the target within 2°",
        )
        .await;
    }

    async fn filter_wheel_motion(&mut self) {
        let n = self
            .reads
            .get("Names")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        for bad in ["-1".to_owned(), n.to_string()] {
            self.must_refuse("Position", &[("Position", bad)], Want::Invalid, Some(true))
                .await;
        }
        if n < 2 {
            return;
        }
        let Some(start) = self.read_f64("Position").await.filter(|p| *p >= 0.0) else {
            return;
        };
        let target = (start as usize + 1) % n;
        let title = "a slot change shows Position −1 while moving and ends at the slot";
        let Some((req, env)) = self
            .write("Position", vec![pair("Position", target.to_string())])
            .await
        else {
            return;
        };
        if !env.ok() {
            self.sec.check("filter-move", "§9", title).issue(
                Some(req.to_string()),
                "ErrorNumber 0",
                env.error_text(),
            );
            return;
        }
        let now = self.read_f64("Position").await;
        self.sec.check("filter-move", "§9", title).record(
            if now == Some(-1.0) || now == Some(target as f64) {
                Outcome::Pass
            } else {
                Outcome::Issue
            },
            Some(req.to_string()),
            format!("Position −1 (moving) or {target}"),
            format!("Position {now:?}"),
        );
        self.wait_idle().await;
        let end = self.read_f64("Position").await;
        self.sec.check("filter-move", "§9", title).record(
            if end == Some(target as f64) {
                Outcome::Pass
            } else {
                Outcome::Issue
            },
            Some(req.to_string()),
            format!("Position {target} after the move"),
            format!("Position {end:?}"),
        );
        let _ = self
            .write(
                "Position",
                vec![pair("Position", format!("{}", start as i64))],
            )
            .await;
        self.wait_idle().await;
    }

    async fn camera_motion(&mut self) {
        let idle = self.read_f64("CameraState").await == Some(0.0);
        if idle {
            for (flag, member) in [
                ("CanAbortExposure", "AbortExposure"),
                ("CanStopExposure", "StopExposure"),
            ] {
                let Some(can) = self.flag(flag) else {
                    continue;
                };
                let Some((req, env)) = self.write(member, Vec::new()).await else {
                    continue;
                };
                let ok = if can {
                    env.ok()
                } else {
                    env.error_number() == 0x400
                };
                self.sec
                    .check("abort-idle", "§6", "AbortExposure/StopExposure while idle succeed exactly when their Can… flag is true")
                    .record(if ok { Outcome::Pass } else { Outcome::Issue }, Some(req.to_string()), if can { "ErrorNumber 0".to_owned() } else { "ErrorNumber 0x400".to_owned() }, env.error_text());
            }
        }
        if self.flag("CanPulseGuide") == Some(false) {
            self.must_refuse(
                "PulseGuide",
                &[("Direction", "0".into()), ("Duration", "0".into())],
                Want::NotImplemented,
                Some(false),
            )
            .await;
        }
        self.must_refuse(
            "StartExposure",
            &[("Duration", "-1".into()), ("Light", "True".into())],
            Want::Invalid,
            Some(true),
        )
        .await;
        if idle {
            self.small_exposure().await;
        }
    }

    /// One short dark exposure of a small subframe; checks the state machine, the exposure
    /// metadata, and the image in both wire forms; restores the subframe.
    async fn small_exposure(&mut self) {
        let names = ["NumX", "NumY", "StartX", "StartY"];
        let mut saved = Vec::new();
        for n in names {
            if let Some(v) = self
                .read(n)
                .await
                .and_then(|v| as_param(&v, bigskies_alpaca::wire::ParamKind::Int))
            {
                saved.push((n, v));
            }
        }
        let bin_x = self.num("BinX").unwrap_or(1.0).max(1.0);
        let bin_y = self.num("BinY").unwrap_or(1.0).max(1.0);
        let w = ((self.num("CameraXSize").unwrap_or(16.0) / bin_x).floor() as i64).clamp(1, 16);
        let h = ((self.num("CameraYSize").unwrap_or(12.0) / bin_y).floor() as i64).clamp(1, 12);
        for (n, v) in [("NumX", w), ("NumY", h), ("StartX", 0), ("StartY", 0)] {
            let _ = self.write(n, vec![pair(n, v.to_string())]).await;
        }
        let duration = self.num("ExposureMin").unwrap_or(0.0).max(0.1);
        let title = "an exposure runs asynchronously and ends Idle with ImageReady";
        let started = Instant::now();
        let args = vec![
            pair("Duration", duration.to_string()),
            pair("Light", "False"),
        ];
        if let Some((req, env)) = self.write("StartExposure", args).await {
            let took = started.elapsed();
            if !env.ok() {
                self.sec.check("exposure", "§6", title).issue(
                    Some(req.to_string()),
                    "ErrorNumber 0",
                    env.error_text(),
                );
            } else {
                let limit = Duration::from_secs_f64(duration)
                    + self.opts.motion_timeout.min(Duration::from_secs(60));
                let ready = self
                    .wait_until(limit, async |r: &mut Self| {
                        r.read_bool("ImageReady").await == Some(true)
                    })
                    .await;
                let state = self.read_f64("CameraState").await;
                self.sec.check("exposure", "§6", title).record(
                    if ready && state == Some(0.0) {
                        Outcome::Pass
                    } else {
                        Outcome::Issue
                    },
                    Some(req.to_string()),
                    format!(
                        "ImageReady true and CameraState 0 within {} s",
                        limit.as_secs()
                    ),
                    format!("ImageReady {ready}, CameraState {state:?}"),
                );
                if took > Duration::from_secs_f64(duration + 1.0) {
                    self.sec.check("exposure", "§6", title).issue(
                        Some(req.to_string()),
                        "StartExposure returns at once (asynchronous, V4)",
                        format!("returned after {:.1} s", took.as_secs_f64()),
                    );
                }
                if ready {
                    self.exposure_metadata(duration).await;
                    self.image_json(w, h).await;
                    self.image_bytes(w, h).await;
                }
            }
        }
        for (n, v) in saved {
            let _ = self.write(n, vec![pair(n, v)]).await;
        }
    }

    async fn exposure_metadata(&mut self, duration: f64) {
        let title = "LastExposureDuration and LastExposureStartTime describe the exposure";
        if let Some(d) = self.read_f64("LastExposureDuration").await {
            let close = (d - duration).abs() <= duration * 0.02 + 1e-6;
            self.sec.check("last-exposure", "§6", title).record(
                if close { Outcome::Pass } else { Outcome::Issue },
                None,
                format!("LastExposureDuration {duration} (within 2 %)"),
                format!("{d}"),
            );
        }
        if let Some(t) = self
            .read("LastExposureStartTime")
            .await
            .and_then(|v| v.as_str().map(str::to_owned))
        {
            let fits = t.len() >= 19 && bigskies_alpaca::types::FitsDateTime::parse(&t).is_some();
            let zone = t.ends_with('Z') || t.ends_with('z');
            let outcome = if !fits {
                Outcome::Issue
            } else if zone {
                Outcome::Information
            } else {
                Outcome::Pass
            };
            self.sec.check("last-exposure", "§1.4 §6", title).record(
                outcome,
                None,
                "FITS form CCYY-MM-DDThh:mm:ss[.sss] without a zone suffix",
                format!("{t:?}"),
            );
        }
    }

    /// ImageArray as JSON: `Type` and `Rank` keys, `Value` indexed [x][y] of NumX × NumY.
    async fn image_json(&mut self, w: i64, h: i64) {
        let Some(m) = self.member(bigskies_alpaca::types::Verb::Get, "ImageArray") else {
            return;
        };
        let Some((req, env)) = self.call(m, Vec::new()).await else {
            return;
        };
        let title = "ImageArray JSON carries Type and Rank and is indexed [x][y] over the subframe";
        if !env.ok() {
            self.sec.check("image-json", "§6.1 §11.7", title).issue(
                Some(req.to_string()),
                "the image",
                env.error_text(),
            );
            return;
        }
        let exact = |k: &str| env.obj.get(k).and_then(Value::as_i64);
        let (ty, rank) = (exact("Type"), exact("Rank"));
        let shape_ok = matches!(ty, Some(1..=3)) && matches!(rank, Some(2 | 3));
        self.sec.check("image-json", "§6.1 §11.7", title).record(
            if shape_ok {
                Outcome::Pass
            } else {
                Outcome::Issue
            },
            Some(req.to_string()),
            "keys Type (1, 2 or 3) and Rank (2 or 3), exactly cased",
            format!("Type {ty:?}, Rank {rank:?}"),
        );
        let cols = env.value().and_then(Value::as_array);
        let dims = cols.map(|c| {
            (
                c.len() as i64,
                c.first()
                    .and_then(Value::as_array)
                    .map_or(0, |r| r.len() as i64),
            )
        });
        let outcome = match dims {
            Some((x, y)) if x == w && y == h => Outcome::Pass,
            _ => Outcome::Issue,
        };
        let swapped = dims == Some((h, w)) && w != h;
        self.sec.check("image-json", "§6.1 §11.7", title).record(
            outcome,
            Some(req.to_string()),
            format!("{w} columns of {h} values ([x][y])"),
            match dims {
                Some((x, y)) if swapped => format!("{x} × {y}: dimensions swapped ([y][x])"),
                Some((x, y)) => format!("{x} × {y}"),
                None => "no array Value".to_owned(),
            },
        );
    }

    /// ImageArray as ImageBytes when offered (§6.2).
    async fn image_bytes(&mut self, w: i64, h: i64) {
        let (ctid, ids) = self.ids();
        let req = Request::get(self.path("imagearray"), &ids)
            .with_accept(&format!("{IMAGE_BYTES_MIME}, application/json"));
        let Some(reply) = self.send(&req).await else {
            return;
        };
        let title = "ImageBytes replies have a valid version 1 header matching the subframe";
        let bytes_ct = reply
            .content_type
            .as_deref()
            .is_some_and(|ct| ct.to_ascii_lowercase().starts_with(IMAGE_BYTES_MIME));
        if reply.status != 200 {
            self.sec.check("image-bytes", "§6.2", title).issue(
                Some(req.to_string()),
                "HTTP 200",
                reply.summary(),
            );
            return;
        }
        if !bytes_ct {
            // JSON instead is allowed; check it like any other reply.
            let strict = self.strict();
            let env: Option<Envelope> = envelope::inspect(
                &mut self.sec,
                strict,
                &req,
                &reply,
                Expect {
                    ctid: Some(ctid),
                    value: ValueRule::Get(bigskies_alpaca::wire::ValueKind::Image),
                    image: true,
                },
            );
            if env.is_some() {
                self.sec.check("image-bytes", "§6.2", title).info(
                    Some(req.to_string()),
                    "Content-Type application/imagebytes",
                    "a JSON reply (ImageBytes not offered)",
                );
            }
            return;
        }
        match decode_image_bytes(&reply.body) {
            Ok(decoded) => {
                let check = self.sec.check("image-bytes", "§6.2", title);
                let expected =
                    format!("{w} × {h}, ClientTransactionID {ctid}, ServerTransactionID ≥ 1");
                match &decoded.result {
                    Ok(img) => {
                        let dims = (i64::from(img.width()), i64::from(img.height()));
                        let ok = dims == (w, h)
                            && decoded.client_transaction_id == ctid
                            && decoded.server_transaction_id >= 1;
                        check.record(
                            if ok { Outcome::Pass } else { Outcome::Issue },
                            Some(req.to_string()),
                            expected,
                            format!(
                                "{} × {}, ClientTransactionID {}, ServerTransactionID {}",
                                dims.0,
                                dims.1,
                                decoded.client_transaction_id,
                                decoded.server_transaction_id
                            ),
                        );
                    }
                    Err(e) => check.issue(
                        Some(req.to_string()),
                        expected,
                        format!("an error in the ImageBytes header: {e}"),
                    ),
                }
            }
            Err(e) => self.sec.check("image-bytes", "§6.2", title).issue(
                Some(req.to_string()),
                "a decodable ImageBytes body",
                e.to_string(),
            ),
        }
    }
}

/// RA difference in arc-seconds (hours on the 24 h circle, as ConformU compares them).
fn ra_arcsec_apart(a: f64, b: f64) -> f64 {
    super::semantics::hours_apart(a, b) * 15.0 * 3600.0
}

/// Focuser steps apart, or degrees apart on the circle.
fn angle_or_steps_apart(a: f64, b: f64, steps: bool) -> f64 {
    if steps {
        (a - b).abs()
    } else {
        let d = (a - b).rem_euclid(360.0);
        d.min(360.0 - d)
    }
}
