//! The management API and the server setup page (PROTOCOL.md §2), and the device list the
//! rest of the run works through.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::device::{Reject, Target};
use super::envelope::{self, Envelope, Expect, ValueRule, shorten};
use super::http::{CLIENT_ID, Probe, Reply, Request, pair};
use super::report::{Outcome, Section};
use super::values::{ALPACA_TYPES, BAD_IDS};
use super::{ConformError, Options};

const DESCRIPTION_KEYS: [&str; 4] = [
    "ServerName",
    "Manufacturer",
    "ManufacturerVersion",
    "Location",
];
const DEVICE_KEYS: [&str; 4] = ["DeviceName", "DeviceType", "DeviceNumber", "UniqueID"];

struct Mgmt<'a> {
    probe: &'a Probe,
    strict: bool,
    sec: Section,
    /// Some request got an HTTP reply.
    reachable: bool,
    last_error: String,
}

impl Mgmt<'_> {
    async fn send(&mut self, req: &Request) -> Option<Reply> {
        match self.probe.send(req).await {
            Ok(r) => {
                self.reachable = true;
                self.sec
                    .check("transport", "§1", "every request gets an HTTP reply")
                    .pass();
                Some(r)
            }
            Err(e) => {
                self.last_error = e.clone();
                self.sec
                    .check("transport", "§1", "every request gets an HTTP reply")
                    .issue(Some(req.to_string()), "an HTTP reply", e);
                None
            }
        }
    }

    /// GET `path` with canonical ids; the checked envelope of a 200 reply.
    async fn get(&mut self, path: &str) -> Option<(Request, Envelope)> {
        let ctid = self.probe.next_ctid();
        let req = Request::get(
            path,
            &[
                pair("ClientID", CLIENT_ID.to_string()),
                pair("ClientTransactionID", ctid.to_string()),
            ],
        );
        let reply = self.send(&req).await?;
        let check = self.sec.check(
            "http-status",
            "§2",
            "management requests are answered with HTTP 200",
        );
        if reply.status != 200 {
            check.issue(Some(req.to_string()), "HTTP 200", reply.summary());
            return None;
        }
        check.pass();
        let env = envelope::inspect(
            &mut self.sec,
            self.strict,
            &req,
            &reply,
            Expect {
                ctid: Some(ctid),
                value: ValueRule::Management,
                image: false,
            },
        )?;
        Some((req, env))
    }

    async fn api_versions(&mut self) {
        let Some((req, env)) = self.get("/management/apiversions").await else {
            return;
        };
        let check = self.sec.check(
            "apiversions",
            "§2",
            "/management/apiversions is an integer array containing 1",
        );
        match env.value().and_then(Value::as_array) {
            Some(a) if a.iter().all(Value::is_u64) && a.iter().any(|v| v.as_u64() == Some(1)) => {
                check.pass()
            }
            _ => check.issue(
                Some(req.to_string()),
                "Value [1]",
                format!("Value {}", shorten(&format!("{:?}", env.value()), 80)),
            ),
        }
    }

    async fn description(&mut self) {
        let Some((req, env)) = self.get("/management/v1/description").await else {
            return;
        };
        let Some(obj) = env.value().and_then(Value::as_object) else {
            self.sec
                .check(
                    "description",
                    "§2",
                    "/management/v1/description is an object of four strings",
                )
                .issue(
                    Some(req.to_string()),
                    "a JSON object",
                    format!("{:?}", env.value()),
                );
            return;
        };
        let problems = exact_keys(obj, &DESCRIPTION_KEYS);
        let check = self.sec.check(
            "description",
            "§2",
            "/management/v1/description is an object of four strings",
        );
        if problems.is_empty() {
            check.pass();
        } else {
            check.issue(
                Some(req.to_string()),
                format!("exactly the keys {}", DESCRIPTION_KEYS.join(", ")),
                problems.join("; "),
            );
        }
        for (key, outcome) in [
            ("Manufacturer", Outcome::Issue),
            ("ManufacturerVersion", Outcome::Issue),
            ("ServerName", Outcome::Information),
            ("Location", Outcome::Information),
        ] {
            let text = lookup(obj, key).and_then(Value::as_str).unwrap_or("");
            let check = self.sec.check(
                "description-fields",
                "§2",
                "Manufacturer and ManufacturerVersion are set (ServerName, Location should be)",
            );
            if text.trim().is_empty() {
                check.record(
                    outcome,
                    Some(req.to_string()),
                    format!("a non-empty {key}"),
                    "empty or absent",
                );
            } else {
                check.pass();
            }
        }
    }

    /// The configured devices, checked; lenient about key casing so a mis-cased list still
    /// yields devices to check.
    async fn configured_devices(&mut self) -> Vec<Target> {
        let path = "/management/v1/configureddevices";
        let Some((req, env)) = self.get(path).await else {
            return Vec::new();
        };
        let shown = Some(req.to_string());
        let Some(items) = env.value().and_then(Value::as_array) else {
            self.sec
                .check(
                    "configureddevices",
                    "§2",
                    "/management/v1/configureddevices is a non-empty array of devices",
                )
                .issue(shown, "a JSON array", format!("{:?}", env.value()));
            return Vec::new();
        };
        let check = self.sec.check(
            "configureddevices",
            "§2",
            "/management/v1/configureddevices is a non-empty array of devices",
        );
        if items.is_empty() {
            check.issue(shown.clone(), "at least one device", "an empty list");
        } else {
            check.pass();
        }
        let mut out = Vec::new();
        let mut ids: BTreeMap<String, String> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for item in items {
            let Some(obj) = item.as_object() else {
                self.sec
                    .check("device-entry", "§2", "each device entry has exactly DeviceName, DeviceType, DeviceNumber, UniqueID")
                    .issue(shown.clone(), "an object", shorten(&item.to_string(), 80));
                continue;
            };
            let name = lookup(obj, "DeviceName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let type_name = lookup(obj, "DeviceType")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let number = lookup(obj, "DeviceNumber")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok());
            let unique = lookup(obj, "UniqueID")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let who = format!(
                "{type_name} {} {name:?}",
                number.map_or("?".into(), |n| n.to_string())
            );
            let mut problems = exact_keys(obj, &DEVICE_KEYS);
            if number.is_none() {
                problems.push("DeviceNumber is not a uint32".into());
            }
            let check = self.sec.check(
                "device-entry",
                "§2",
                "each device entry has exactly DeviceName, DeviceType, DeviceNumber, UniqueID",
            );
            if problems.is_empty() {
                check.pass();
            } else {
                check.issue(
                    shown.clone(),
                    format!("exactly the keys {}", DEVICE_KEYS.join(", ")),
                    format!("{who}: {}", problems.join("; ")),
                );
            }
            let lower = type_name.to_ascii_lowercase();
            let check = self.sec.check(
                "device-type-name",
                "§2",
                "DeviceType is an Alpaca device type (parsed case-insensitively)",
            );
            if ALPACA_TYPES.iter().any(|(t, _)| *t == lower) {
                check.pass();
            } else {
                check.issue(shown.clone(), "Camera, CoverCalibrator, Dome, FilterWheel, Focuser, ObservingConditions, Rotator, SafetyMonitor, Switch or Telescope", who.clone());
            }
            let check = self.sec.check(
                "unique-id",
                "§2",
                "UniqueID is set and different for every device",
            );
            match unique.as_deref().map(str::trim) {
                None | Some("") => check.issue(
                    shown.clone(),
                    "a non-empty UniqueID (a UUID is recommended)",
                    format!("{who}: UniqueID {:?}", unique.unwrap_or_default()),
                ),
                Some(u) => match ids.insert(u.to_owned(), who.clone()) {
                    Some(other) => check.issue(
                        shown.clone(),
                        "a UniqueID used by no other device",
                        format!("{who} and {other} share UniqueID {u:?}"),
                    ),
                    None if u.len() < 12 => check.info(
                        shown.clone(),
                        "a UniqueID from at least 48 random bits (a UUID)",
                        format!("{who}: UniqueID {u:?} looks short"),
                    ),
                    None => check.pass(),
                },
            }
            if name.trim().is_empty() {
                self.sec
                    .check("device-name", "§2", "DeviceName is set")
                    .info(shown.clone(), "a non-empty DeviceName", who.clone());
            } else {
                self.sec
                    .check("device-name", "§2", "DeviceName is set")
                    .pass();
            }
            if let Some(n) = number
                && !lower.is_empty()
            {
                let check = self.sec.check(
                    "device-number",
                    "§1.1",
                    "device numbers are unique within their type",
                );
                if seen.insert((lower.clone(), n)) {
                    check.pass();
                    out.push(Target::listed(&type_name, n, &name));
                } else {
                    check.issue(
                        shown.clone(),
                        "a number used once per type",
                        format!("{who} listed twice"),
                    );
                }
            }
        }
        // GET names are case-insensitive, and malformed ids are refused, here too.
        let ctid = self.probe.next_ctid();
        let lower_req = Request::get(
            path,
            &[
                pair("clientid", CLIENT_ID.to_string()),
                pair("clienttransactionid", ctid.to_string()),
            ],
        );
        if let Some(reply) = self.send(&lower_req).await {
            let echoed = reply
                .json()
                .ok()
                .and_then(|v| v.as_object().cloned())
                .and_then(|obj| Envelope { obj }.client_transaction_id());
            let check = self.sec.check(
                "get-name-casing",
                "§1.3",
                "GET parameter names are case-insensitive (lower-case ids are used)",
            );
            if reply.status == 200 && echoed == Some(i64::from(ctid)) {
                check.pass();
            } else {
                check.issue(
                    Some(lower_req.to_string()),
                    format!("HTTP 200 echoing ClientTransactionID {ctid}"),
                    format!("{} (ClientTransactionID {echoed:?})", reply.summary()),
                );
            }
        }
        for (name, bad) in BAD_IDS {
            let req = Request::get(path, &[pair(name, bad)]);
            if let Some(reply) = self.send(&req).await {
                let outcome = Reject::Id.judge(self.strict, &reply);
                self.sec
                    .check(
                        "bad-transaction-id",
                        "§1.5 §11.4",
                        "malformed ClientID / ClientTransactionID values are refused with HTTP 400",
                    )
                    .record(
                        outcome,
                        Some(req.to_string()),
                        Reject::Id.expected(self.strict),
                        reply.summary(),
                    );
            }
        }
        out
    }

    async fn setup_page(&mut self) {
        let req = Request::get("/setup", &[]);
        let Some(reply) = self.send(&req).await else {
            return;
        };
        let check = self.sec.check(
            "setup-page",
            "§2",
            "/setup serves an HTML page about the server",
        );
        let html = reply
            .content_type
            .as_deref()
            .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("text/html"));
        if reply.status == 200 && html {
            check.pass();
        } else {
            check.record(
                Outcome::strict(self.strict),
                Some(req.to_string()),
                "HTTP 200 text/html",
                format!(
                    "{} ({})",
                    reply.summary(),
                    reply.content_type.as_deref().unwrap_or("no content type")
                ),
            );
        }
    }
}

/// `key`, exactly or case-insensitively.
fn lookup<'m>(obj: &'m Map<String, Value>, key: &str) -> Option<&'m Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// What differs between the object's keys and `keys` (exact casing).
fn exact_keys(obj: &Map<String, Value>, keys: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    for k in obj.keys() {
        if keys.contains(&k.as_str()) {
            continue;
        }
        match keys.iter().find(|w| w.eq_ignore_ascii_case(k)) {
            Some(w) => problems.push(format!("key {k:?} should be {w:?}")),
            None => problems.push(format!("unexpected key {k:?}")),
        }
    }
    for w in keys {
        if !obj.keys().any(|k| k.eq_ignore_ascii_case(w)) {
            problems.push(format!("key {w:?} missing"));
        } else if let Some(v) = lookup(obj, w)
            && *w != "DeviceNumber"
            && !v.is_string()
        {
            problems.push(format!("{w} {v} is not a string"));
        }
    }
    problems
}

/// Checks the management API; returns the section and the configured devices.
pub async fn check(
    probe: &Probe,
    options: &Options,
) -> Result<(Section, Vec<Target>), ConformError> {
    let mut m = Mgmt {
        probe,
        strict: options.strict,
        sec: Section::new("Management API (/management, /setup)", None),
        reachable: false,
        last_error: String::new(),
    };
    m.api_versions().await;
    if !m.reachable {
        // One more try before giving up: a server may not implement apiversions at all.
        let devices = m.configured_devices().await;
        if !m.reachable {
            return Err(ConformError::Unreachable {
                url: probe.base().to_owned(),
                reason: m.last_error,
            });
        }
        m.description().await;
        m.setup_page().await;
        return Ok((m.sec, devices));
    }
    m.description().await;
    let devices = m.configured_devices().await;
    m.setup_page().await;
    Ok((m.sec, devices))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exact_keys_names_miscased_missing_and_extra_keys() {
        let obj =
            json!({"devicename": "x", "DeviceType": "Telescope", "DeviceNumber": 0, "Extra": 1})
                .as_object()
                .cloned()
                .unwrap_or_default();
        let mut problems = exact_keys(&obj, &DEVICE_KEYS);
        problems.sort();
        assert_eq!(
            problems,
            vec![
                "key \"UniqueID\" missing".to_owned(),
                "key \"devicename\" should be \"DeviceName\"".to_owned(),
                "unexpected key \"Extra\"".to_owned(),
            ]
        );
    }
}
