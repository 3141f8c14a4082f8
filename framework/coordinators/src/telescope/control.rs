//! `control/slew|park|unpark|track|abort`.
//!
//! Slews and parks use the asynchronous Alpaca calls (`SlewToCoordinatesAsync`, `Park`): the
//! reply says the mount accepted the command, and a watcher task reads `Slewing` until the mount
//! settles, then publishes `event/slew/completed` (or `event/park/completed`) with where the
//! mount ended up, enveloped (see [`super::event_envelope`]) with the command's correlation
//! id. A motion that is aborted, or replaced by a newer command to the same telescope, ends
//! with `.../aborted`; one that stops answering or overruns the slew timeout ends with
//! `.../failed`.
//!
//! Every outcome is also kept: published retained on `event/motion/<telescope_id>` (so a client
//! that subscribes late, for example after a broker outage during which the motion ended and
//! the ordinary event went out before it had subscribed again, still gets the last outcome) and
//! returned by `status/get` as `last_motion`.
//!
//! Every command is refused unless the caller may control the telescope (see [`super::access`])
//! and, when it carries `expires_at` (alias `deadline`), before that instant. The expiry is
//! checked on receipt and again right before the device is called, so a command delayed in a
//! queue or across a broker outage is never executed late.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{debug, info};
use uuid::Uuid;

use bigskies_ascom::{AscomEngine, Role};
use bigskies_core::auth::Principal;
use bigskies_core::bus::Bus;
use bigskies_core::error::{ErrorKind, HandlerError};
use bigskies_core::runtime::Context;
use bigskies_core::topics::Topics;

use super::{
    TelescopeCoordinator, engine_error, motion_event_topic, park_event_topic, parse_id,
    publish_event, publish_retained_event, rfc3339, slew_event_topic,
};

/// `control/slew`.
#[derive(Debug, Deserialize)]
pub struct Slew {
    #[serde(alias = "device_id", alias = "config_id")]
    pub telescope_id: String,
    /// Hours, 0 ≤ RA < 24.
    pub right_ascension: f64,
    /// Degrees, −90 ≤ Dec ≤ 90.
    pub declination: f64,
    #[serde(default, alias = "deadline")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Free text echoed in the events (the Go tests send it).
    #[serde(default)]
    pub target_name: Option<String>,
}

/// `control/park`, `control/unpark`, `control/abort`.
#[derive(Debug, Deserialize)]
pub struct TelescopeCommand {
    #[serde(alias = "device_id", alias = "config_id")]
    pub telescope_id: String,
    #[serde(default, alias = "deadline")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// `control/track`: tracking on when `tracking` or `enabled` is true (Go ORs them).
#[derive(Debug, Deserialize)]
pub struct Track {
    #[serde(alias = "device_id", alias = "config_id")]
    pub telescope_id: String,
    #[serde(default)]
    pub tracking: Option<bool>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default, alias = "deadline")]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MotionKind {
    Slew,
    Park,
}

/// One watched motion of one telescope.
#[derive(Debug)]
pub struct Motion {
    pub id: Uuid,
    kind: MotionKind,
    aborted: AtomicBool,
}

/// The motion in progress per telescope (a newer one supersedes an older one), and the last
/// outcome per telescope.
#[derive(Debug, Default)]
pub struct Motions {
    current: Mutex<HashMap<Uuid, Arc<Motion>>>,
    last: Mutex<HashMap<Uuid, Value>>,
}

impl Motions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<Motion>>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn begin(&self, telescope: Uuid, kind: MotionKind) -> Arc<Motion> {
        let m = Arc::new(Motion {
            id: Uuid::new_v4(),
            kind,
            aborted: AtomicBool::new(false),
        });
        self.lock().insert(telescope, m.clone());
        m
    }

    fn is_current(&self, telescope: Uuid, m: &Arc<Motion>) -> bool {
        self.lock()
            .get(&telescope)
            .is_some_and(|c| Arc::ptr_eq(c, m))
    }

    fn finish(&self, telescope: Uuid, m: &Arc<Motion>) {
        let mut map = self.lock();
        if map.get(&telescope).is_some_and(|c| Arc::ptr_eq(c, m)) {
            map.remove(&telescope);
        }
    }

    fn abort(&self, telescope: Uuid) -> Option<Uuid> {
        self.lock().get(&telescope).map(|m| {
            m.aborted.store(true, Ordering::SeqCst);
            m.id
        })
    }

    /// Drop a telescope's motion (its configuration is gone); the watcher reports it aborted.
    pub fn forget(&self, telescope: Uuid) {
        if let Some(m) = self.lock().remove(&telescope) {
            m.aborted.store(true, Ordering::SeqCst);
        }
    }

    fn record(&self, telescope: Uuid, outcome: Value) {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(telescope, outcome);
    }

    /// The last motion outcome of a telescope (the body of its last motion event).
    pub fn last(&self, telescope: Uuid) -> Option<Value> {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&telescope)
            .cloned()
    }

    /// Motions being watched.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Refuse a command whose expiry has passed.
pub fn check_expiry(expires_at: Option<DateTime<Utc>>) -> Result<(), HandlerError> {
    match expires_at {
        Some(t) if Utc::now() >= t => Err(HandlerError::new(
            ErrorKind::Timeout,
            format!("command expired at {}; not executed", rfc3339(t)),
        )),
        _ => Ok(()),
    }
}

/// What a watcher needs, detached from the request.
struct Watch {
    engine: AscomEngine,
    bus: Bus,
    topics: Topics,
    telescope: Uuid,
    mount: String,
    motion: Arc<Motion>,
    target: Option<(f64, f64)>,
    target_name: Option<String>,
    /// The command's correlation id, repeated on the event's envelope.
    correlation_id: Option<String>,
    started: Instant,
}

impl TelescopeCoordinator {
    /// Checks common to every command; returns the mount's UniqueID.
    async fn prepare(
        &self,
        p: &Principal,
        telescope_id: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(Uuid, String), HandlerError> {
        check_expiry(expires_at)?;
        let telescope = parse_id("telescope_id", telescope_id)?;
        self.require_control(p, telescope).await?;
        let mount = self
            .engine
            .in_role(telescope, Role::Telescope)
            .map_err(engine_error)?;
        // The checks above took time: a command must not run past its expiry.
        check_expiry(expires_at)?;
        Ok((telescope, mount))
    }

    pub(crate) async fn slew(
        &self,
        ctx: &Context,
        p: &Principal,
        r: Slew,
    ) -> Result<Value, HandlerError> {
        let (ra, dec) = (r.right_ascension, r.declination);
        if !(ra.is_finite() && (0.0..24.0).contains(&ra)) {
            return Err(HandlerError::invalid(
                "right_ascension must be within 0..24 hours",
            ));
        }
        if !(dec.is_finite() && (-90.0..=90.0).contains(&dec)) {
            return Err(HandlerError::invalid(
                "declination must be within -90..90 degrees",
            ));
        }
        let (telescope, mount) = self.prepare(p, &r.telescope_id, r.expires_at).await?;
        self.engine
            .call_connected(&mount, move |t| async move {
                t.telescope()
                    .checked()
                    .slew_to_coordinates_async(ra, dec)
                    .await
            })
            .await
            .map_err(engine_error)?;
        let motion = self.motions.begin(telescope, MotionKind::Slew);
        info!(%telescope, slew_id = %motion.id, ra, dec, user = %p.username, "slew started");
        self.spawn_watch(
            ctx,
            telescope,
            mount.clone(),
            motion.clone(),
            Some((ra, dec)),
            r.target_name,
        );
        Ok(json!({
            "success": true,
            "slew_id": motion.id,
            "telescope_id": telescope,
            "device_id": mount,
            "right_ascension": ra,
            "declination": dec,
        }))
    }

    pub(crate) async fn park(
        &self,
        ctx: &Context,
        p: &Principal,
        r: TelescopeCommand,
    ) -> Result<Value, HandlerError> {
        let (telescope, mount) = self.prepare(p, &r.telescope_id, r.expires_at).await?;
        self.engine
            .call_connected(
                &mount,
                |t| async move { t.telescope().checked().park().await },
            )
            .await
            .map_err(engine_error)?;
        let motion = self.motions.begin(telescope, MotionKind::Park);
        self.spawn_watch(ctx, telescope, mount.clone(), motion.clone(), None, None);
        Ok(
            json!({"success": true, "park_id": motion.id, "telescope_id": telescope, "device_id": mount}),
        )
    }

    pub(crate) async fn unpark(
        &self,
        p: &Principal,
        r: TelescopeCommand,
    ) -> Result<Value, HandlerError> {
        let (telescope, mount) = self.prepare(p, &r.telescope_id, r.expires_at).await?;
        self.engine
            .call_connected(
                &mount,
                |t| async move { t.telescope().checked().unpark().await },
            )
            .await
            .map_err(engine_error)?;
        Ok(json!({"success": true, "telescope_id": telescope}))
    }

    pub(crate) async fn abort(
        &self,
        p: &Principal,
        r: TelescopeCommand,
    ) -> Result<Value, HandlerError> {
        let (telescope, mount) = self.prepare(p, &r.telescope_id, r.expires_at).await?;
        self.engine
            .call_connected(&mount, |t| async move {
                t.telescope().checked().abort_slew().await
            })
            .await
            .map_err(engine_error)?;
        let aborted = self.motions.abort(telescope);
        Ok(json!({"success": true, "telescope_id": telescope, "aborted": aborted}))
    }

    pub(crate) async fn track(&self, p: &Principal, r: Track) -> Result<Value, HandlerError> {
        let on = r.tracking.unwrap_or(false) || r.enabled.unwrap_or(false);
        let (telescope, mount) = self.prepare(p, &r.telescope_id, r.expires_at).await?;
        self.engine
            .call_connected(&mount, move |t| async move {
                t.telescope().checked().set_tracking(on).await
            })
            .await
            .map_err(engine_error)?;
        Ok(json!({"success": true, "telescope_id": telescope, "tracking": on}))
    }

    fn spawn_watch(
        &self,
        ctx: &Context,
        telescope: Uuid,
        mount: String,
        motion: Arc<Motion>,
        target: Option<(f64, f64)>,
        target_name: Option<String>,
    ) {
        let watch = Watch {
            engine: self.engine.clone(),
            bus: ctx.bus.clone(),
            topics: ctx.topics.clone(),
            telescope,
            mount,
            motion,
            target,
            target_name,
            correlation_id: ctx.correlation_id.clone(),
            started: Instant::now(),
        };
        let settings = self.settings();
        let motions = self.motions.clone();
        // Not tied to the request's shutdown token: it is cancelled when the handler returns
        // during a drain; a watcher ends by itself within the slew timeout.
        tokio::spawn(async move {
            let (outcome, detail) = watch
                .run(&motions, settings.slew_poll, settings.slew_timeout)
                .await;
            motions.finish(watch.telescope, &watch.motion);
            let body = watch.publish(outcome, detail).await;
            motions.record(watch.telescope, body);
        });
    }
}

impl Watch {
    async fn run(
        &self,
        motions: &Motions,
        poll: std::time::Duration,
        timeout: std::time::Duration,
    ) -> (&'static str, Option<String>) {
        let mut failures = 0u32;
        loop {
            tokio::time::sleep(poll).await;
            if !motions.is_current(self.telescope, &self.motion) {
                return ("aborted", Some("superseded by another command".into()));
            }
            if self.started.elapsed() > timeout {
                return (
                    "failed",
                    Some(format!("mount did not settle within {timeout:?}")),
                );
            }
            let slewing = self
                .engine
                .call(&self.mount, |t| async move {
                    t.telescope().checked().slewing().await
                })
                .await;
            match slewing {
                Ok(true) => failures = 0,
                Ok(false) => break,
                Err(e) => {
                    failures += 1;
                    debug!(telescope = %self.telescope, error = %e, failures, "slew watcher: Slewing not read");
                    if failures >= 3 {
                        return ("failed", Some(e.to_string()));
                    }
                }
            }
        }
        if self.motion.aborted.load(Ordering::SeqCst) {
            return ("aborted", Some("aborted on request".into()));
        }
        if self.motion.kind == MotionKind::Park {
            let parked = self
                .engine
                .call(&self.mount, |t| async move {
                    t.telescope().checked().at_park().await
                })
                .await;
            return match parked {
                Ok(true) => ("completed", None),
                Ok(false) => ("failed", Some("mount stopped but is not parked".into())),
                Err(e) => ("failed", Some(e.to_string())),
            };
        }
        ("completed", None)
    }

    /// Publish the outcome on its event topic and, retained, on the telescope's motion topic;
    /// returns the event body.
    async fn publish(&self, outcome: &str, detail: Option<String>) -> Value {
        let position = self
            .engine
            .call(&self.mount, |t| async move {
                let s = t.telescope();
                let c = s.checked();
                tokio::try_join!(c.right_ascension(), c.declination())
            })
            .await
            .ok();
        let (topic, id_field) = match self.motion.kind {
            MotionKind::Slew => (slew_event_topic(&self.topics, outcome), "slew_id"),
            MotionKind::Park => (park_event_topic(&self.topics, outcome), "park_id"),
        };
        let mut body = json!({
            "event": format!("{}_{outcome}", if self.motion.kind == MotionKind::Slew { "slew" } else { "park" }),
            id_field: self.motion.id,
            "telescope_id": self.telescope,
            "device_id": self.mount,
            "duration_ms": self.started.elapsed().as_secs_f64() * 1000.0,
            "timestamp": rfc3339(Utc::now()),
        });
        if let Value::Object(map) = &mut body {
            if let Some((ra, dec)) = self.target {
                map.insert(
                    "target".into(),
                    json!({"right_ascension": ra, "declination": dec, "name": self.target_name}),
                );
            }
            if let Some((ra, dec)) = position {
                map.insert("right_ascension".into(), json!(ra));
                map.insert("declination".into(), json!(dec));
            }
            if let Some(d) = detail {
                map.insert("reason".into(), json!(d));
            }
        }
        if let Value::Object(map) = &mut body {
            map.insert("outcome".into(), json!(outcome));
            map.insert(
                "motion".into(),
                json!(match self.motion.kind {
                    MotionKind::Slew => "slew",
                    MotionKind::Park => "park",
                }),
            );
        }
        info!(telescope = %self.telescope, motion = %self.motion.id, outcome, "motion ended");
        publish_event(
            &self.bus,
            &topic,
            body.clone(),
            self.correlation_id.as_deref(),
        )
        .await;
        publish_retained_event(
            &self.bus,
            &motion_event_topic(&self.topics, self.telescope),
            body.clone(),
            self.correlation_id.as_deref(),
        )
        .await;
        body
    }
}
