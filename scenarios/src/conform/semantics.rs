//! Per-type rules that need no motion (PROTOCOL.md §4–§10): values in their documented
//! ranges, capability flags consistent with what the members do, the common members'
//! contents, and out-of-range writes to configuration properties (refused with 0x401, and
//! restored if a faulty server accepts them).

use bigskies_alpaca::types::{DeviceType, Verb, parse_iso_utc};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::device::DeviceRun;
use super::envelope::{self, Expect, ValueRule, shorten};
use super::http::{Request, pair};
use super::report::Outcome;
use super::values::{NO_SUCH_ACTION, as_param, device_state_names, out_of_range};

/// Local mean sidereal time in hours at `longitude` (degrees, east positive).
pub fn local_sidereal_hours(at: DateTime<Utc>, longitude: f64) -> f64 {
    let jd = at.timestamp_millis() as f64 / 86_400_000.0 + 2_440_587.5;
    let gmst = 18.697_374_558 + 24.065_709_824_419_08 * (jd - 2_451_545.0);
    (gmst + longitude / 15.0).rem_euclid(24.0)
}

/// The distance between two hour angles on the 24 h circle.
pub fn hours_apart(a: f64, b: f64) -> f64 {
    let d = (a - b).rem_euclid(24.0);
    d.min(24.0 - d)
}

/// `Pass` when the rule holds, else `outcome`.
fn verdict(holds: bool, outcome: Outcome) -> Outcome {
    if holds { Outcome::Pass } else { outcome }
}

impl DeviceRun<'_> {
    pub(super) async fn semantics(&mut self) {
        self.common_rules();
        match self.t.known {
            Some(DeviceType::Telescope) => self.telescope_rules().await,
            Some(DeviceType::Camera) => self.camera_rules(),
            Some(DeviceType::Dome) => self.dome_rules(),
            Some(DeviceType::Focuser) => self.focuser_rules(),
            Some(DeviceType::FilterWheel) => self.filter_wheel_rules(),
            Some(DeviceType::Rotator) => self.rotator_rules(),
            None => {}
        }
        self.out_of_range_writes().await;
    }

    /// Records one probe of a rule (see [`verdict`]).
    fn rule(
        &mut self,
        id: &str,
        reference: &'static str,
        title: &str,
        outcome: Outcome,
        expected: impl Into<String>,
        got: impl Into<String>,
    ) {
        self.sec
            .check(id, reference, title)
            .record(outcome, None, expected, got);
    }

    /// `name` (when it was read) lies in `lo…hi` (`hi` itself excluded when `open`).
    fn range(&mut self, name: &str, lo: f64, hi: f64, open: bool) {
        let Some(v) = self.num(name) else {
            return;
        };
        let ok = v >= lo && if open { v < hi } else { v <= hi };
        let shown = |x: f64| {
            if x.is_infinite() {
                "∞".to_owned()
            } else {
                x.to_string()
            }
        };
        self.rule(
            "range",
            "§5–§10",
            "values lie in their documented ranges",
            verdict(ok, Outcome::Issue),
            format!(
                "{name} in {}…{}{}",
                shown(lo),
                if open { "<" } else { "" },
                shown(hi)
            ),
            format!("{name} {v}"),
        );
    }

    /// A capability flag matches what writing the member did in the PUT matrix.
    fn gate(&mut self, flag: &str, member: &str) {
        let (Some(can), Some(&number)) = (self.flag(flag), self.put_errors.get(member)) else {
            return;
        };
        let title =
            "writes are refused with NotImplemented (0x400) exactly when the Can… flag is false";
        match (can, number) {
            (false, 0) => self.rule(
                "capability-gating",
                "§5–§10",
                title,
                verdict(false, Outcome::Issue),
                format!("PUT {member} → 0x400 because {flag} is false"),
                "it succeeded",
            ),
            (true, 0x400) => self.rule(
                "capability-gating",
                "§5–§10",
                title,
                verdict(false, Outcome::Issue),
                format!("PUT {member} works because {flag} is true"),
                "NotImplemented (0x400)",
            ),
            _ => self.rule(
                "capability-gating",
                "§5–§10",
                title,
                verdict(true, Outcome::Pass),
                "",
                "",
            ),
        }
    }

    /// A member readable exactly when its capability flag is true (`absent` = outcome when the
    /// flag is false but the read works anyway).
    fn readable_iff(&mut self, flag: &str, member: &str, absent: Outcome) {
        let Some(can) = self.flag(flag) else {
            return;
        };
        let readable = self.reads.contains_key(member);
        let errored = self.read_errors.contains_key(member);
        if !readable && !errored {
            return;
        }
        let title = "members behind a Can… flag work exactly when the flag is true";
        match (can, readable) {
            (true, false) => self.rule(
                "capability-reads",
                "§5–§10",
                title,
                verdict(false, Outcome::Issue),
                format!("{member} readable because {flag} is true"),
                envelope::describe_error(self.read_errors.get(member).copied().unwrap_or(0), ""),
            ),
            (false, true) => self.rule(
                "capability-reads",
                "§5–§10",
                title,
                verdict(false, absent),
                format!("{member} → 0x400 because {flag} is false"),
                "it is readable",
            ),
            _ => self.rule(
                "capability-reads",
                "§5–§10",
                title,
                verdict(true, Outcome::Pass),
                "",
                "",
            ),
        }
    }

    /// §4: description, driver version, supported actions, the unknown action, DeviceState.
    fn common_rules(&mut self) {
        let strict = self.strict();
        if let Some(d) = self
            .reads
            .get("Description")
            .and_then(Value::as_str)
            .map(str::to_owned)
        {
            let n = d.chars().count();
            let camera = self.t.known == Some(DeviceType::Camera);
            let outcome = if n > 68 && camera {
                Outcome::Issue
            } else if n > 64 {
                Outcome::Information
            } else {
                Outcome::Pass
            };
            self.sec
                .check(
                    "description-length",
                    "§4",
                    "Description is at most 64 characters",
                )
                .record(
                    outcome,
                    None,
                    "at most 64 characters (cameras: ConformU flags more than 68)",
                    format!("{n} characters: {:?}", shorten(&d, 80)),
                );
        }
        if let Some(v) = self
            .reads
            .get("DriverVersion")
            .and_then(Value::as_str)
            .map(str::to_owned)
        {
            let mut parts = v.trim().split('.');
            let ok = v.trim().split('.').count() >= 2
                && parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            self.rule(
                "driver-version",
                "§4",
                "DriverVersion reads \"n.n\"",
                verdict(ok, Outcome::Information),
                "digits and dots, e.g. \"1.2\"",
                format!("{v:?}"),
            );
        }
        if let Some(name) = self
            .reads
            .get("Name")
            .and_then(Value::as_str)
            .map(str::to_owned)
        {
            self.rule(
                "name",
                "§4",
                "Name is set",
                verdict(!name.trim().is_empty(), Outcome::Information),
                "a non-empty Name",
                "empty",
            );
        }
        let actions: Option<Vec<Value>> = self
            .reads
            .get("SupportedActions")
            .and_then(Value::as_array)
            .cloned();
        if let Some(actions) = &actions {
            let empty = actions
                .iter()
                .any(|a| a.as_str().is_none_or(|s| s.trim().is_empty()));
            self.rule(
                "supported-actions",
                "§4",
                "SupportedActions entries are non-empty strings",
                verdict(!empty, Outcome::Issue),
                "non-empty action names",
                format!("{actions:?}"),
            );
        }
        if let Some(&number) = self.put_errors.get("Action") {
            let none_listed = actions.as_ref().is_some_and(Vec::is_empty);
            let outcome = match number {
                0x40C => Outcome::Pass,
                0x400 if none_listed => Outcome::Pass,
                0 => Outcome::Issue,
                _ => Outcome::strict(strict),
            };
            let shown = format!(
                "PUT {} body [Action={NO_SUCH_ACTION}&Parameters=]",
                self.path("action")
            );
            self.sec
                .check(
                    "action-unknown",
                    "§4",
                    "an unknown action is refused with ActionNotImplemented (0x40C)",
                )
                .record(
                    outcome,
                    Some(shown),
                    "ErrorNumber 0x40C (0x400 when the device has no actions at all)",
                    envelope::describe_error(number, ""),
                );
        }
        if self.is_p7() {
            self.device_state_rule();
        }
    }

    /// §4 P7: DeviceState is mandatory and lists only the type's operational properties.
    fn device_state_rule(&mut self) {
        let title = "DeviceState lists operational properties (exact casing) and TimeStamp";
        if let Some(&n) = self.read_errors.get("DeviceState") {
            self.rule(
                "device-state",
                "§4",
                title,
                verdict(false, Outcome::Issue),
                "a list (DeviceState is mandatory in Platform 7)",
                envelope::describe_error(n, ""),
            );
            return;
        }
        let (Some(items), Some(t)) = (
            self.reads
                .get("DeviceState")
                .and_then(Value::as_array)
                .cloned(),
            self.t.known,
        ) else {
            return;
        };
        let allowed = device_state_names(t);
        let names: Vec<String> = items
            .iter()
            .filter_map(|i| i.get("Name").and_then(Value::as_str))
            .map(str::to_owned)
            .collect();
        let wrong: Vec<&String> = names
            .iter()
            .filter(|n| *n != "TimeStamp" && !allowed.contains(&n.as_str()))
            .collect();
        self.rule(
            "device-state",
            "§4",
            title,
            verdict(wrong.is_empty(), Outcome::Issue),
            format!("names among {} and TimeStamp", allowed.join(", ")),
            format!("unexpected names {wrong:?}"),
        );
        let missing: Vec<&&str> = allowed
            .iter()
            .filter(|a| !names.iter().any(|n| n == *a))
            .collect();
        if !missing.is_empty() && !items.is_empty() {
            self.sec
                .check(
                    "device-state-complete",
                    "§4",
                    "DeviceState lists every operational property",
                )
                .info(
                    None,
                    format!("all of {}", allowed.join(", ")),
                    format!("missing {missing:?}"),
                );
        }
    }

    async fn telescope_rules(&mut self) {
        for (name, lo, hi, open) in [
            ("RightAscension", 0.0, 24.0, true),
            ("Declination", -90.0, 90.0, false),
            ("Altitude", -90.0, 90.0, false),
            ("Azimuth", 0.0, 360.0, true),
            ("SiderealTime", 0.0, 24.0, true),
            ("SiteLatitude", -90.0, 90.0, false),
            ("SiteLongitude", -180.0, 180.0, false),
            ("SiteElevation", -300.0, 10_000.0, false),
            ("ApertureArea", 0.0, f64::INFINITY, false),
            ("ApertureDiameter", 0.0, f64::INFINITY, false),
            ("FocalLength", 0.0, f64::INFINITY, false),
            ("GuideRateDeclination", 0.0, f64::INFINITY, false),
            ("GuideRateRightAscension", 0.0, f64::INFINITY, false),
            ("SlewSettleTime", 0.0, f64::INFINITY, false),
        ] {
            self.range(name, lo, hi, open);
        }
        let flags = |run: &Self, n: &str| run.flag(n);
        if let (Some(unpark), Some(park)) = (flags(self, "CanUnpark"), flags(self, "CanPark")) {
            self.rule(
                "can-unpark",
                "§5",
                "CanUnpark implies CanPark",
                verdict(!unpark || park, Outcome::Issue),
                "CanPark true when CanUnpark is true",
                "CanUnpark true, CanPark false",
            );
        }
        for (sync, asynchronous) in [
            ("CanSlew", "CanSlewAsync"),
            ("CanSlewAltAz", "CanSlewAltAzAsync"),
        ] {
            let (Some(s), Some(a)) = (flags(self, sync), flags(self, asynchronous)) else {
                continue;
            };
            self.rule(
                "async-slews",
                "§5",
                "mounts that can slew offer the asynchronous slews",
                verdict(!s || a, Outcome::Issue),
                format!("{asynchronous} true when {sync} is true"),
                format!("{sync} true, {asynchronous} false"),
            );
            self.rule(
                "alpaca-sync-slews",
                "§5",
                "Alpaca mounts report CanSlew and CanSlewAltAz false (synchronous slews are 0x400)",
                verdict(!s, Outcome::Information),
                format!("{sync} false"),
                format!("{sync} true (ConformU accepts it)"),
            );
        }
        for (flag, rate) in [
            ("CanSetDeclinationRate", "DeclinationRate"),
            ("CanSetRightAscensionRate", "RightAscensionRate"),
        ] {
            if flags(self, flag) == Some(false)
                && let Some(v) = self.num(rate)
            {
                self.rule(
                    "rate-zero",
                    "§5",
                    "rate offsets read 0 when they cannot be set",
                    verdict(v == 0.0, Outcome::Issue),
                    format!("{rate} 0 because {flag} is false"),
                    format!("{rate} {v}"),
                );
            }
            self.gate(flag, rate);
        }
        self.gate("CanSetTracking", "Tracking");
        self.gate("CanSetGuideRates", "GuideRateDeclination");
        self.gate("CanSetGuideRates", "GuideRateRightAscension");
        self.readable_iff("CanPulseGuide", "IsPulseGuiding", Outcome::Information);
        if flags(self, "Slewing") == Some(true) {
            self.not_idle("Slewing false", "Slewing true");
        }
        // TrackingRates: non-empty, stable, and containing TrackingRate.
        if let Some(rates) = self
            .reads
            .get("TrackingRates")
            .and_then(Value::as_array)
            .cloned()
        {
            self.rule(
                "tracking-rates",
                "§5",
                "TrackingRates is non-empty, stable and contains TrackingRate",
                verdict(!rates.is_empty(), Outcome::Issue),
                "at least one drive rate",
                "an empty list",
            );
            let again = self.read("TrackingRates").await;
            if let Some(again) = again {
                let same = again.as_array() == Some(&rates);
                self.rule(
                    "tracking-rates",
                    "§5",
                    "TrackingRates is non-empty, stable and contains TrackingRate",
                    verdict(same, Outcome::Issue),
                    format!("the same list twice: {rates:?}"),
                    format!("{again}"),
                );
            }
            if let Some(rate) = self.reads.get("TrackingRate").cloned() {
                let listed = rates.iter().any(|r| r.as_f64() == rate.as_f64());
                self.rule(
                    "tracking-rates",
                    "§5",
                    "TrackingRates is non-empty, stable and contains TrackingRate",
                    verdict(listed, Outcome::Issue),
                    format!("TrackingRate among {rates:?}"),
                    format!("TrackingRate {rate}"),
                );
            }
        }
        // AxisRates: non-negative, Minimum ≤ Maximum, present when the axis can move.
        for axis in 0..3 {
            let Some(rates) = self
                .reads
                .get(&format!("AxisRates:{axis}"))
                .and_then(Value::as_array)
                .cloned()
            else {
                continue;
            };
            let bad: Vec<&Value> = rates
                .iter()
                .filter(|r| {
                    let (lo, hi) = (
                        r["Minimum"].as_f64().unwrap_or(-1.0),
                        r["Maximum"].as_f64().unwrap_or(-1.0),
                    );
                    lo < 0.0 || hi < lo
                })
                .collect();
            self.rule("axis-rates", "§5", "AxisRates ranges are non-negative with Minimum ≤ Maximum, and present for a movable axis", verdict(bad.is_empty(), Outcome::Issue), format!("axis {axis}: 0 ≤ Minimum ≤ Maximum"), format!("{bad:?}"));
            if self
                .reads
                .get(&format!("CanMoveAxis:{axis}"))
                .and_then(Value::as_bool)
                == Some(true)
            {
                self.rule("axis-rates", "§5", "AxisRates ranges are non-negative with Minimum ≤ Maximum, and present for a movable axis", verdict(!rates.is_empty(), Outcome::Issue), format!("rates for axis {axis} (CanMoveAxis is true)"), "an empty list");
            }
        }
        // UTCDate with Z, close to this machine's clock; SiderealTime consistent with it.
        let utc_text = self
            .read("UTCDate")
            .await
            .and_then(|v| v.as_str().map(str::to_owned));
        let lst = self.read_f64("SiderealTime").await;
        let device_now = utc_text.as_deref().and_then(parse_iso_utc);
        if let Some(text) = &utc_text {
            self.rule(
                "utc-date",
                "§1.4 §5",
                "UTCDate is ISO 8601 UTC with a trailing Z",
                verdict(
                    text.trim_end().ends_with('Z') && device_now.is_some(),
                    Outcome::Issue,
                ),
                "e.g. 2026-03-20T22:00:00.0000000Z",
                format!("{text:?}"),
            );
        }
        if let Some(at) = device_now {
            let off = (at - Utc::now()).num_milliseconds().abs() as f64 / 1000.0;
            self.rule(
                "utc-clock",
                "§5",
                "UTCDate agrees with this machine's clock",
                verdict(off <= 60.0, Outcome::Information),
                "within 60 s of this machine's clock",
                format!("{off:.0} s apart"),
            );
        }
        if let (Some(lst), Some(lon)) = (lst, self.num("SiteLongitude")) {
            let at = device_now.unwrap_or_else(Utc::now);
            let want = local_sidereal_hours(at, lon);
            let apart = hours_apart(lst, want);
            let outcome = if apart > 1.0 {
                Outcome::Issue
            } else if apart > 10.0 / 3600.0 {
                Outcome::Information
            } else {
                Outcome::Pass
            };
            self.sec
                .check(
                    "sidereal-time",
                    "§5",
                    "SiderealTime is the local sidereal time at UTCDate and SiteLongitude",
                )
                .record(
                    outcome,
                    None,
                    format!("{want:.5} h (within seconds; an issue beyond 1 h)"),
                    format!("{lst:.5} h ({:.0} s apart)", apart * 3600.0),
                );
        }
    }

    fn camera_rules(&mut self) {
        for (name, lo, hi) in [
            ("MaxBinX", 1.0, f64::INFINITY),
            ("MaxBinY", 1.0, f64::INFINITY),
            ("CameraXSize", 1.0, f64::INFINITY),
            ("CameraYSize", 1.0, f64::INFINITY),
            ("PixelSizeX", 1.0, f64::INFINITY),
            ("PixelSizeY", 1.0, f64::INFINITY),
            ("MaxADU", 1.0, f64::INFINITY),
            ("ExposureMin", 0.0, f64::INFINITY),
            ("ExposureMax", 0.0001, f64::INFINITY),
            ("CoolerPower", 0.0, 100.0),
            ("PercentCompleted", 0.0, 100.0),
            ("CCDTemperature", -273.15, f64::INFINITY),
            ("HeatSinkTemperature", -273.15, f64::INFINITY),
            ("BinX", 1.0, f64::INFINITY),
            ("BinY", 1.0, f64::INFINITY),
        ] {
            self.range(name, lo, hi, false);
        }
        for name in ["ElectronsPerADU", "FullWellCapacity"] {
            if let Some(v) = self.num(name) {
                self.rule(
                    "range",
                    "§5–§10",
                    "values lie in their documented ranges",
                    verdict(v > 0.0, Outcome::Issue),
                    format!("{name} above 0"),
                    format!("{name} {v}"),
                );
            }
        }
        if let (Some(lo), Some(hi)) = (self.num("ExposureMin"), self.num("ExposureMax")) {
            self.rule(
                "exposure-limits",
                "§6",
                "ExposureMin ≤ ExposureMax and ExposureResolution ≤ ExposureMax",
                verdict(lo <= hi, Outcome::Issue),
                "ExposureMin ≤ ExposureMax",
                format!("{lo} > {hi}"),
            );
            if let Some(res) = self.num("ExposureResolution") {
                self.rule(
                    "exposure-limits",
                    "§6",
                    "ExposureMin ≤ ExposureMax and ExposureResolution ≤ ExposureMax",
                    verdict(res <= hi, Outcome::Issue),
                    "ExposureResolution ≤ ExposureMax",
                    format!("{res} > {hi}"),
                );
            }
        }
        if let (Some(x), Some(y)) = (self.num("MaxBinX"), self.num("MaxBinY")) {
            if self.flag("CanAsymmetricBin") == Some(false) {
                self.rule(
                    "binning",
                    "§6",
                    "binning limits are consistent",
                    verdict(x == y, Outcome::Issue),
                    "MaxBinX == MaxBinY when CanAsymmetricBin is false",
                    format!("MaxBinX {x}, MaxBinY {y}"),
                );
            }
            if x > 16.0 || y > 16.0 {
                self.sec
                    .check("binning-large", "§6", "MaxBin is at most 16")
                    .info(None, "MaxBinX, MaxBinY ≤ 16", format!("{x} × {y}"));
            }
        }
        for bin in ["BinX", "BinY"] {
            if let Some(v) = self.num(bin)
                && v != 1.0
            {
                self.sec
                    .check("binning-start", "§6", "BinX and BinY read 1 at the start")
                    .info(
                        None,
                        format!("{bin} 1"),
                        format!("{bin} {v} (another client may have set it)"),
                    );
            }
        }
        if let Some(name) = self
            .reads
            .get("SensorName")
            .and_then(Value::as_str)
            .map(str::to_owned)
        {
            let n = name.chars().count();
            self.rule(
                "sensor-name",
                "§6",
                "SensorName is at most 250 characters",
                verdict(n <= 250, Outcome::Issue),
                "≤ 250 characters",
                format!("{n} characters"),
            );
        }
        // Bayer offsets: not for monochrome sensors, required for colour ones.
        if let Some(sensor) = self.num("SensorType") {
            for name in ["BayerOffsetX", "BayerOffsetY"] {
                let readable = self.reads.contains_key(name);
                let mono = sensor == 0.0;
                self.rule("bayer-offsets", "§6", "Bayer offsets are NotImplemented for monochrome sensors and readable for colour ones", verdict(readable != mono, Outcome::Issue), if mono { format!("{name} → 0x400 (SensorType Monochrome)") } else { format!("{name} readable (SensorType {sensor})") }, if readable { "readable".to_owned() } else { envelope::describe_error(self.read_errors.get(name).copied().unwrap_or(0), "") });
            }
        }
        self.value_modes("Gain", "GainMin", "GainMax", "Gains");
        self.value_modes("Offset", "OffsetMin", "OffsetMax", "Offsets");
        if let Some(modes) = self
            .reads
            .get("ReadoutModes")
            .and_then(Value::as_array)
            .map(Vec::len)
        {
            self.rule(
                "readout-modes",
                "§6",
                "ReadoutModes is non-empty and ReadoutMode indexes it",
                verdict(modes > 0, Outcome::Issue),
                "at least one readout mode",
                "an empty list",
            );
            if let Some(m) = self.num("ReadoutMode") {
                self.rule(
                    "readout-modes",
                    "§6",
                    "ReadoutModes is non-empty and ReadoutMode indexes it",
                    verdict(m >= 0.0 && (m as usize) < modes, Outcome::Issue),
                    format!("ReadoutMode in 0…{}", modes.saturating_sub(1)),
                    format!("ReadoutMode {m}"),
                );
            }
        }
        self.readable_iff("CanFastReadout", "FastReadout", Outcome::Issue);
        self.gate("CanFastReadout", "FastReadout");
        self.readable_iff("CanGetCoolerPower", "CoolerPower", Outcome::Information);
        self.readable_iff(
            "CanSetCCDTemperature",
            "SetCCDTemperature",
            Outcome::Information,
        );
        self.gate("CanSetCCDTemperature", "SetCCDTemperature");
        self.readable_iff("CanPulseGuide", "IsPulseGuiding", Outcome::Information);
        if self.flag("ImageReady") == Some(true) {
            self.not_idle("ImageReady false", "ImageReady true (an earlier image)");
        }
        if let Some(state) = self.num("CameraState")
            && state != 0.0
        {
            self.not_idle("CameraState 0 (Idle)", format!("CameraState {state}"));
        }
    }

    /// §6: gain (or offset) is not implemented, in index mode, or in value mode.
    fn value_modes(&mut self, value: &str, min: &str, max: &str, list: &str) {
        let ok = |n: &str| self.reads.contains_key(n);
        let (v, lo, hi, l) = (ok(value), ok(min), ok(max), ok(list));
        let mode = match (v, lo, hi, l) {
            (false, false, false, false) => "not implemented",
            (true, false, false, true) => "index",
            (true, true, true, false) => "value",
            _ => "inconsistent",
        };
        let title = format!("{value}, {min}, {max} and {list} follow one of the three modes");
        let id = format!("{}-mode", value.to_ascii_lowercase());
        self.rule(
            &id,
            "§6",
            &title,
            verdict(mode != "inconsistent", Outcome::Issue),
            format!(
                "all four 0x400, {value}+{list} (index mode), or {value}+{min}+{max} (value mode)"
            ),
            format!("readable: {value} {v}, {min} {lo}, {max} {hi}, {list} {l}"),
        );
        let current = self.num(value);
        match (mode, current) {
            ("index", Some(g)) => {
                let n = self
                    .reads
                    .get(list)
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                self.rule(
                    &id,
                    "§6",
                    &title,
                    verdict(g >= 0.0 && (g as usize) < n, Outcome::Issue),
                    format!("{value} indexes {list} (0…{})", n.saturating_sub(1)),
                    format!("{value} {g}"),
                );
            }
            ("value", Some(g)) => {
                let (a, b) = (self.num(min).unwrap_or(g), self.num(max).unwrap_or(g));
                self.rule(
                    &id,
                    "§6",
                    &title,
                    verdict(a <= g && g <= b, Outcome::Issue),
                    format!("{min} ≤ {value} ≤ {max} ({a}…{b})"),
                    format!("{value} {g}"),
                );
            }
            _ => {}
        }
    }

    /// The device was busy when the check started (information: the checks still run).
    fn not_idle(&mut self, expected: &str, got: impl Into<String>) {
        self.sec
            .check(
                "idle-at-start",
                "§5–§10",
                "the device is idle when the check starts",
            )
            .info(None, expected, got);
    }

    fn dome_rules(&mut self) {
        self.range("Altitude", 0.0, 90.0, false);
        self.range("Azimuth", 0.0, 360.0, true);
        if self.flag("CanSlave") == Some(false) {
            let slaved = self.flag("Slaved");
            if let Some(s) = slaved {
                self.rule(
                    "slaved",
                    "§7",
                    "Slaved is false when the dome cannot slave",
                    verdict(!s, Outcome::Issue),
                    "Slaved false (CanSlave is false)",
                    "Slaved true",
                );
            }
        }
        if self.flag("Slewing") == Some(true) {
            self.not_idle("Slewing false", "Slewing true");
        }
    }

    fn focuser_rules(&mut self) {
        let max_step = self.num("MaxStep");
        self.range("MaxStep", 1.0, f64::INFINITY, false);
        if let (Some(inc), Some(max)) = (self.num("MaxIncrement"), max_step) {
            self.rule(
                "max-increment",
                "§8",
                "1 ≤ MaxIncrement ≤ MaxStep",
                verdict((1.0..=max).contains(&inc), Outcome::Issue),
                format!("MaxIncrement in 1…{max}"),
                format!("MaxIncrement {inc}"),
            );
        }
        match self.flag("Absolute") {
            Some(true) => {
                if let Some(max) = max_step {
                    self.range("Position", 0.0, max, false);
                }
            }
            Some(false) => {
                let readable = self.reads.contains_key("Position");
                self.rule(
                    "relative-position",
                    "§8",
                    "a relative focuser's Position is NotImplemented",
                    verdict(!readable, Outcome::Issue),
                    "Position → 0x400 (Absolute is false)",
                    "readable",
                );
            }
            None => {}
        }
        if let Some(step) = self.num("StepSize") {
            self.rule(
                "range",
                "§5–§10",
                "values lie in their documented ranges",
                verdict(step > 0.0, Outcome::Issue),
                "StepSize above 0",
                format!("StepSize {step}"),
            );
        }
        if let Some(temp) = self.num("Temperature") {
            self.rule(
                "temperature",
                "§8",
                "Temperature is plausible (−50…50 °C)",
                verdict((-50.0..=50.0).contains(&temp), Outcome::Information),
                "−50…50 °C",
                format!("{temp} °C"),
            );
        }
        if let Some(&n) = self.read_errors.get("TempComp") {
            self.rule(
                "temp-comp",
                "§8",
                "TempComp is readable (false when not available)",
                verdict(false, Outcome::Issue),
                "TempComp readable",
                envelope::describe_error(n, ""),
            );
        } else if self.flag("TempCompAvailable") == Some(false)
            && let Some(on) = self.flag("TempComp")
        {
            self.rule(
                "temp-comp",
                "§8",
                "TempComp is readable (false when not available)",
                verdict(!on, Outcome::Issue),
                "TempComp false (TempCompAvailable is false)",
                "TempComp true",
            );
        }
        if self.flag("IsMoving") == Some(true) {
            self.not_idle("IsMoving false", "IsMoving true");
        }
    }

    fn filter_wheel_rules(&mut self) {
        let names = self.reads.get("Names").and_then(Value::as_array).cloned();
        let offsets = self
            .reads
            .get("FocusOffsets")
            .and_then(Value::as_array)
            .map(Vec::len);
        if let Some(names) = &names {
            let n = names.len();
            let blank = names
                .iter()
                .any(|v| v.as_str().is_none_or(|s| s.trim().is_empty()));
            self.rule(
                "filter-names",
                "§9",
                "Names and FocusOffsets are non-empty, equally long, with non-empty names",
                verdict(n > 0 && !blank, Outcome::Issue),
                "at least one slot, every name non-empty",
                format!("{names:?}"),
            );
            if let Some(o) = offsets {
                self.rule(
                    "filter-names",
                    "§9",
                    "Names and FocusOffsets are non-empty, equally long, with non-empty names",
                    verdict(o == n, Outcome::Issue),
                    format!("{n} focus offsets (one per name)"),
                    format!("{o}"),
                );
            }
            if let Some(p) = self.num("Position") {
                self.rule(
                    "range",
                    "§5–§10",
                    "values lie in their documented ranges",
                    verdict(p >= -1.0 && p < n as f64, Outcome::Issue),
                    format!("Position in −1…{}", n.saturating_sub(1)),
                    format!("Position {p}"),
                );
                if p == -1.0 {
                    self.not_idle("a slot number", "Position −1 (moving)");
                }
            }
        }
    }

    fn rotator_rules(&mut self) {
        for name in ["Position", "MechanicalPosition", "TargetPosition"] {
            self.range(name, 0.0, 360.0, true);
        }
        if let Some(step) = self.num("StepSize") {
            self.rule(
                "range",
                "§5–§10",
                "values lie in their documented ranges",
                verdict(step > 0.0, Outcome::Issue),
                "StepSize above 0",
                format!("StepSize {step}"),
            );
        }
        if self.iv.is_some_and(|v| v >= 3) {
            if let Some(can) = self.flag("CanReverse") {
                self.rule(
                    "can-reverse",
                    "§10",
                    "CanReverse is true (Reverse is mandatory from IRotatorV3)",
                    verdict(can, Outcome::Issue),
                    "CanReverse true",
                    "CanReverse false",
                );
            }
            if let Some(&n) = self.read_errors.get("Reverse") {
                self.rule(
                    "can-reverse",
                    "§10",
                    "CanReverse is true (Reverse is mandatory from IRotatorV3)",
                    verdict(false, Outcome::Issue),
                    "Reverse readable",
                    envelope::describe_error(n, ""),
                );
            }
        }
        if self.flag("IsMoving") == Some(true) {
            self.not_idle("IsMoving false", "IsMoving true");
        }
    }

    /// §1.4: parseable but out-of-range values are business logic (200 + 0x401), never 400.
    async fn out_of_range_writes(&mut self) {
        let Some(t) = self.t.known else {
            return;
        };
        let mut probes: Vec<(&'static str, String)> = out_of_range(t)
            .iter()
            .map(|(m, v)| (*m, (*v).to_owned()))
            .collect();
        if t == DeviceType::Camera {
            for (bin, max) in [("BinX", "MaxBinX"), ("BinY", "MaxBinY")] {
                if let Some(m) = self.num(max) {
                    probes.push((bin, format!("{}", m as i64 + 1)));
                }
            }
            if let Some(n) = self
                .reads
                .get("ReadoutModes")
                .and_then(Value::as_array)
                .map(Vec::len)
            {
                probes.push(("ReadoutMode", n.to_string()));
            }
        }
        let strict = self.strict();
        for (member, value) in probes {
            let Some(m) = self.member(Verb::Put, member) else {
                continue;
            };
            let Some(kind) = m.params.first().map(|p| p.kind) else {
                continue;
            };
            let original = self.reads.get(member).and_then(|v| as_param(v, kind));
            let (ctid, mut pairs) = self.ids();
            pairs.insert(0, pair(member, value.clone()));
            let req = Request::put(self.path(&m.path()), &pairs);
            let Some(reply) = self.send(&req).await else {
                continue;
            };
            let title = "out-of-range values are refused with HTTP 200 + InvalidValue (0x401), not HTTP 400";
            let expected = format!("HTTP 200 with ErrorNumber 0x401 for {member}={value}");
            if reply.status != 200 {
                let why = if reply.status == 400 {
                    " (out-of-range is business logic: use 200 + 0x401)"
                } else {
                    ""
                };
                self.sec.check("out-of-range", "§1.4", title).issue(
                    Some(req.to_string()),
                    expected,
                    format!("{}{why}", reply.summary()),
                );
                continue;
            }
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
                continue;
            };
            let number = env.error_number();
            let check = self.sec.check("out-of-range", "§1.4", title);
            match number {
                0x401 | 0x400 => check.pass(),
                0 => check.issue(
                    Some(req.to_string()),
                    expected,
                    "ErrorNumber 0: the value was accepted",
                ),
                _ => check.info(Some(req.to_string()), expected, env.error_text()),
            }
            if number == 0 {
                match original {
                    Some(o) => {
                        let _ = self.write(member, vec![pair(member, o)]).await;
                    }
                    None => {
                        self.sec
                            .check("restore", "§1.4", "values accepted by mistake are restored")
                            .info(
                                Some(req.to_string()),
                                format!("{member} restored"),
                                "its earlier value was unknown",
                            );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn sidereal_time_matches_a_known_value() {
        // 2000-01-01 12:00 UT: GMST 18.697374558 h by definition of the formula's epoch.
        let at = Utc
            .with_ymd_and_hms(2000, 1, 1, 12, 0, 0)
            .single()
            .expect("valid date");
        assert!(hours_apart(local_sidereal_hours(at, 0.0), 18.697_374_558) < 1e-6);
        // 15° east is one hour later.
        assert!(hours_apart(local_sidereal_hours(at, 15.0), 19.697_374_558) < 1e-6);
        assert!((hours_apart(23.5, 0.5) - 1.0).abs() < 1e-12);
    }
}
