//! The steps of a scenario file: each `[[step]]` table holds exactly one action key plus the
//! modifiers that action takes. Anything else is an error that names the step and the key.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use super::matcher::{Expect, Matchers};

/// One step, as parsed.
#[derive(Clone, Debug)]
pub struct Step {
    /// `name = "..."` or a description made from the action.
    pub label: String,
    pub action: Action,
}

/// Who a request is sent as.
#[derive(Clone, Debug, PartialEq)]
pub enum Credential {
    None,
    /// A session opened by a `login` step (`as = "alice"`).
    Session(String),
    /// A literal token (may hold `${vars}`): forged, expired, revoked ones.
    Token(String),
}

/// What a request or publish carries.
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    /// An envelope around this body (the normal case).
    Body(Value),
    /// These exact bytes (malformed JSON, wrong shapes).
    Raw(String),
    /// A JSON object padded to this many bytes (oversized payloads).
    Oversize(usize),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Login {
        user: String,
        password: Option<String>,
        session: String,
        expect_fail: bool,
    },
    Request {
        /// `coordinator/action/resource`
        op: String,
        payload: Payload,
        credential: Credential,
        expect: Matchers,
        save: BTreeMap<String, String>,
        timeout: Duration,
        /// Send again (every 250 ms, each attempt waiting at most 2 s) until the reply
        /// matches, for at most this long: "once the system is back, this works".
        retry_within: Option<Duration>,
    },
    /// Several requests sent at once; `winners` of them must succeed (`success = true`) and
    /// the others must match `losers`.
    Race {
        requests: Vec<Action>,
        winners: usize,
        losers: Matchers,
    },
    Publish {
        /// Relative to the topic root.
        topic: String,
        payload: Payload,
        credential: Credential,
        retain: bool,
    },
    /// Wait for a message (relative topic, MQTT filter allowed) received after the last action.
    ExpectMessage {
        topic: String,
        matchers: Matchers,
        within: Duration,
        save: BTreeMap<String, String>,
    },
    /// No matching message for `during`.
    ExpectNoMessage {
        topic: String,
        matchers: Matchers,
        during: Duration,
    },
    ExpectHealth {
        coordinator: String,
        status: Vec<String>,
        within: Duration,
    },
    /// Poll an Alpaca property of the simulator until it matches.
    Device {
        device: String,
        property: String,
        params: BTreeMap<String, String>,
        expect: Expect,
        within: Duration,
        save: Option<String>,
    },
    /// An Alpaca PUT (a method or property write) on a simulated device, as a client program
    /// (an imaging application) would send it.
    Alpaca {
        device: String,
        method: String,
        params: BTreeMap<String, String>,
        /// Expected ASCOM error number (0: success).
        error: i64,
    },
    Fault {
        device: String,
        spec: Option<Value>,
    },
    Clock {
        change: Value,
    },
    StepClock {
        seconds: f64,
    },
    Sleep(Duration),
    SetConfig {
        coordinator: String,
        key: String,
        value: Value,
        kind: String,
    },
    Broker(InfraAction),
    Database(InfraAction),
    Coordinator {
        name: String,
        what: InfraAction,
    },
    PluginFixture {
        name: String,
        manifest: Value,
    },
    /// Set variables (literal values, `${...}` allowed).
    Let(BTreeMap<String, Value>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfraAction {
    Stop,
    Start,
    Restart,
    /// Gone without goodbye (a crash): the broker publishes the last will.
    Kill,
}

impl InfraAction {
    fn parse(s: &str, allowed: &[InfraAction]) -> Result<Self, String> {
        let a = match s {
            "stop" | "down" => InfraAction::Stop,
            "start" | "up" => InfraAction::Start,
            "restart" => InfraAction::Restart,
            "kill" => InfraAction::Kill,
            other => return Err(format!("unknown infrastructure action {other:?}")),
        };
        if allowed.contains(&a) {
            Ok(a)
        } else {
            Err(format!("{s:?} is not available here"))
        }
    }
}

impl Action {
    /// True when the step changes the deployment itself (not possible with `--external`).
    pub fn needs_owned_stack(&self) -> bool {
        matches!(
            self,
            Action::Broker(_)
                | Action::Database(_)
                | Action::Coordinator { .. }
                | Action::SetConfig { .. }
                | Action::PluginFixture { .. }
        )
    }
}

/// Parse a duration: `250ms`, `1.5s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(v: &Value) -> Result<Duration, String> {
    let secs = match v {
        Value::Number(n) => n.as_f64().unwrap_or(-1.0),
        Value::String(s) => {
            let s = s.trim();
            let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
                (n, 0.001)
            } else if let Some(n) = s.strip_suffix('s') {
                (n, 1.0)
            } else if let Some(n) = s.strip_suffix('m') {
                (n, 60.0)
            } else if let Some(n) = s.strip_suffix('h') {
                (n, 3600.0)
            } else {
                (s, 1.0)
            };
            num.trim()
                .parse::<f64>()
                .map(|x| x * scale)
                .map_err(|_| format!("{s:?} is not a duration (e.g. 250ms, 1.5s, 2m)"))?
        }
        other => return Err(format!("{other} is not a duration")),
    };
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("duration {v} out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Default deadlines.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub const EXPECT_WITHIN: Duration = Duration::from_secs(10);
pub const HEALTH_WITHIN: Duration = Duration::from_secs(20);

struct Fields {
    map: Map<String, Value>,
    action: &'static str,
}

impl Fields {
    fn take(&mut self, k: &str) -> Option<Value> {
        self.map.remove(k)
    }
    fn string(&mut self, k: &str) -> Result<Option<String>, String> {
        match self.take(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!("`{k}` must be a string, got {other}")),
        }
    }
    fn required(&mut self, k: &str) -> Result<String, String> {
        self.string(k)?
            .ok_or_else(|| format!("`{}` needs `{k}`", self.action))
    }
    fn duration(&mut self, k: &str, default: Duration) -> Result<Duration, String> {
        self.take(k)
            .map(|v| parse_duration(&v).map_err(|e| format!("`{k}`: {e}")))
            .transpose()
            .map(|d| d.unwrap_or(default))
    }
    fn bool(&mut self, k: &str) -> Result<bool, String> {
        match self.take(k) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(b),
            Some(other) => Err(format!("`{k}` must be true or false, got {other}")),
        }
    }
    fn matchers(&mut self, k: &str) -> Result<Matchers, String> {
        match self.take(k) {
            None => Ok(Matchers::default()),
            Some(Value::Object(m)) => Matchers::from_table(&m).map_err(|e| format!("`{k}`: {e}")),
            Some(other) => Err(format!("`{k}` must be a table, got {other}")),
        }
    }
    fn save(&mut self) -> Result<BTreeMap<String, String>, String> {
        match self.take("save") {
            None => Ok(BTreeMap::new()),
            Some(Value::Object(m)) => m
                .into_iter()
                .map(|(var, path)| match path {
                    Value::String(p) => Ok((var, p)),
                    other => Err(format!("`save.{var}` must be a path string, got {other}")),
                })
                .collect(),
            Some(other) => Err(format!("`save` must be a table, got {other}")),
        }
    }
    fn credential(&mut self) -> Result<Credential, String> {
        match (self.string("as")?, self.string("token")?) {
            (Some(_), Some(_)) => Err("`as` and `token` exclude each other".into()),
            (Some(s), None) => Ok(Credential::Session(s)),
            (None, Some(t)) => Ok(Credential::Token(t)),
            (None, None) => Ok(Credential::None),
        }
    }
    fn payload(&mut self) -> Result<Payload, String> {
        let body = self.take("body");
        let raw = self.string("raw")?;
        let oversize = self.take("oversize");
        match (body, raw, oversize) {
            (Some(b), None, None) => Ok(Payload::Body(b)),
            (None, Some(r), None) => Ok(Payload::Raw(r)),
            (None, None, Some(n)) => n
                .as_u64()
                .filter(|n| (16..=64 << 20).contains(n))
                .map(|n| Payload::Oversize(n as usize))
                .ok_or_else(|| format!("`oversize` must be a byte count (16..64 MiB), got {n}")),
            (None, None, None) => Ok(Payload::Body(Value::Object(Map::new()))),
            _ => Err("only one of `body`, `raw` and `oversize`".into()),
        }
    }
    fn finish(self) -> Result<(), String> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(k) => Err(format!("`{k}` does not apply to `{}`", self.action)),
        }
    }
}

const ACTIONS: [&str; 19] = [
    "alpaca",
    "login",
    "request",
    "race",
    "publish",
    "expect_event",
    "expect_message",
    "expect_no_message",
    "expect_health",
    "device",
    "fault",
    "clock",
    "step_clock",
    "sleep",
    "set_config",
    "broker",
    "database",
    "coordinator",
    "plugin_fixture",
];

fn event_topic(rel: &str) -> Result<String, String> {
    let (coordinator, kind) = rel
        .split_once('/')
        .ok_or_else(|| format!("`expect_event = {rel:?}`: expected \"<coordinator>/<kind>\""))?;
    Ok(format!("coordinator/{coordinator}/event/{kind}"))
}

/// Parse one `[[step]]` table.
pub fn parse_step(table: &Map<String, Value>) -> Result<Step, String> {
    let mut map = table.clone();
    let name = match map.remove("name") {
        None => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => return Err(format!("`name` must be a string, got {other}")),
    };
    if let Some(vars) = map.remove("let") {
        let Value::Object(vars) = vars else {
            return Err("`let` must be a table of variables".into());
        };
        if let Some(k) = map.keys().next() {
            return Err(format!("`{k}` does not apply to `let`"));
        }
        return Ok(Step {
            label: name.unwrap_or_else(|| "let".into()),
            action: Action::Let(vars.into_iter().collect()),
        });
    }
    let present: Vec<&str> = ACTIONS
        .iter()
        .copied()
        .filter(|a| map.contains_key(*a))
        .collect();
    let action_key = match present.as_slice() {
        [one] => *one,
        [] => {
            return Err(format!(
                "no action; a step needs one of: let, {}",
                ACTIONS.join(", ")
            ));
        }
        many => return Err(format!("several actions in one step: {}", many.join(", "))),
    };
    let value = map.remove(action_key).unwrap_or(Value::Null);
    let mut f = Fields {
        map,
        action: action_key,
    };
    let text = |v: &Value| -> Result<String, String> {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("`{action_key}` must be a string, got {v}"))
    };
    let (label, action) = match action_key {
        "login" => {
            let user = text(&value)?;
            let session = f.string("as")?.unwrap_or_else(|| user.clone());
            let a = Action::Login {
                password: f.string("password")?,
                expect_fail: f.bool("expect_fail")?,
                session,
                user: user.clone(),
            };
            (format!("login {user}"), a)
        }
        "request" => {
            let op = text(&value)?;
            if op.split('/').count() != 3 || op.split('/').any(str::is_empty) {
                return Err(format!(
                    "`request = {op:?}`: expected \"<coordinator>/<action>/<resource>\""
                ));
            }
            (format!("request {op}"), request(&mut f, op)?)
        }
        "race" => {
            let Value::Array(items) = value else {
                return Err("`race` must be an array of request tables".into());
            };
            if items.len() < 2 {
                return Err("`race` needs at least two requests".into());
            }
            let mut requests = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let Value::Object(t) = item else {
                    return Err(format!("race[{i}] must be a table"));
                };
                let mut sub = Fields {
                    map: t.clone(),
                    action: "request",
                };
                let op = sub
                    .required("request")
                    .map_err(|e| format!("race[{i}]: {e}"))?;
                let r = request(&mut sub, op).map_err(|e| format!("race[{i}]: {e}"))?;
                sub.finish().map_err(|e| format!("race[{i}]: {e}"))?;
                requests.push(r);
            }
            let winners = match f.take("winners") {
                None => 1,
                Some(v) => v
                    .as_u64()
                    .filter(|w| (*w as usize) <= requests.len())
                    .ok_or_else(|| format!("`winners` must be 0..={}", requests.len()))?
                    as usize,
            };
            let losers = f.matchers("losers")?;
            (
                format!("race of {} requests", requests.len()),
                Action::Race {
                    requests,
                    winners,
                    losers,
                },
            )
        }
        "publish" => {
            let topic = text(&value)?;
            let a = Action::Publish {
                payload: f.payload()?,
                credential: f.credential()?,
                retain: f.bool("retain")?,
                topic: topic.clone(),
            };
            (format!("publish {topic}"), a)
        }
        "expect_event" | "expect_message" => {
            let raw = text(&value)?;
            let topic = if action_key == "expect_event" {
                event_topic(&raw)?
            } else {
                raw.clone()
            };
            let a = Action::ExpectMessage {
                topic,
                matchers: f.matchers("match")?,
                within: f.duration("within", EXPECT_WITHIN)?,
                save: f.save()?,
            };
            (format!("{action_key} {raw}"), a)
        }
        "expect_no_message" => {
            let topic = text(&value)?;
            let a = Action::ExpectNoMessage {
                matchers: f.matchers("match")?,
                during: f.duration("during", Duration::from_secs(1))?,
                topic: topic.clone(),
            };
            (format!("expect no message on {topic}"), a)
        }
        "expect_health" => {
            let coordinator = text(&value)?;
            let status = match f.take("status") {
                Some(Value::String(s)) => vec![s],
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|s| {
                        s.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| format!("`status` entries must be strings, got {s}"))
                    })
                    .collect::<Result<_, _>>()?,
                None => vec!["healthy".to_owned()],
                Some(other) => {
                    return Err(format!("`status` must be a string or list, got {other}"));
                }
            };
            let a = Action::ExpectHealth {
                within: f.duration("within", HEALTH_WITHIN)?,
                status: status.clone(),
                coordinator: coordinator.clone(),
            };
            (format!("expect {coordinator} {}", status.join("|")), a)
        }
        "device" => {
            let device = text(&value)?;
            check_device(&device)?;
            let property = f.required("property")?;
            let expect = match f.take("expect") {
                Some(v) => Expect::parse(&v).map_err(|e| format!("`expect`: {e}"))?,
                None => Expect::Exists(true),
            };
            let params = params(&mut f)?;
            let a = Action::Device {
                within: f.duration("within", Duration::ZERO)?,
                save: f.string("save")?,
                params,
                expect,
                property: property.clone(),
                device: device.clone(),
            };
            (format!("device {device} {property}"), a)
        }
        "alpaca" => {
            let device = text(&value)?;
            check_device(&device)?;
            let method = f.required("method")?;
            let error = match f.take("error") {
                None => 0,
                Some(v) => v.as_i64().ok_or("`error` must be an ASCOM error number")?,
            };
            let a = Action::Alpaca {
                params: params(&mut f)?,
                method: method.clone(),
                device: device.clone(),
                error,
            };
            (format!("alpaca {device} {method}"), a)
        }
        "fault" => {
            let device = text(&value)?;
            check_device(&device)?;
            let spec = match (f.take("set"), f.bool("clear")?) {
                (Some(Value::Object(m)), false) => Some(Value::Object(m)),
                (None, true) => None,
                _ => return Err("`fault` needs either `set = {..}` or `clear = true`".into()),
            };
            let what = if spec.is_some() { "set" } else { "clear" };
            (
                format!("fault {what} {device}"),
                Action::Fault { device, spec },
            )
        }
        "clock" => {
            if !value.is_object() {
                return Err("`clock` must be a table ({mode, rate, time, step_secs})".into());
            }
            ("clock".into(), Action::Clock { change: value })
        }
        "step_clock" => {
            let seconds = parse_duration(&value)?.as_secs_f64();
            (
                format!("step clock {seconds} s"),
                Action::StepClock { seconds },
            )
        }
        "sleep" => {
            let d = parse_duration(&value)?;
            (format!("sleep {d:?}"), Action::Sleep(d))
        }
        "set_config" => {
            let coordinator = text(&value)?;
            let key = f.required("key")?;
            let value = f.take("value").ok_or("`set_config` needs `value`")?;
            let kind = f.required("type")?;
            if bigskies_core::config::ConfigType::parse(&kind).is_none() {
                return Err(format!("`type = {kind:?}` is not a configuration type"));
            }
            (
                format!("set {coordinator}.{key}"),
                Action::SetConfig {
                    coordinator,
                    key,
                    value,
                    kind,
                },
            )
        }
        "broker" => {
            let s = text(&value)?;
            let a = InfraAction::parse(
                &s,
                &[InfraAction::Restart, InfraAction::Kill, InfraAction::Start],
            )?;
            (format!("broker {s}"), Action::Broker(a))
        }
        "database" => {
            let s = text(&value)?;
            let a = InfraAction::parse(&s, &[InfraAction::Stop, InfraAction::Start])?;
            (format!("database {s}"), Action::Database(a))
        }
        "coordinator" => {
            let name = text(&value)?;
            let what = InfraAction::parse(
                &f.required("action")?,
                &[
                    InfraAction::Stop,
                    InfraAction::Start,
                    InfraAction::Restart,
                    InfraAction::Kill,
                ],
            )?;
            (
                format!("coordinator {name} {what:?}").to_lowercase(),
                Action::Coordinator { name, what },
            )
        }
        "plugin_fixture" => {
            let name = text(&value)?;
            let manifest = f
                .take("manifest")
                .ok_or("`plugin_fixture` needs `manifest`")?;
            if !manifest.is_object() {
                return Err("`manifest` must be a table (the plugin.json content)".into());
            }
            (
                format!("plugin fixture {name}"),
                Action::PluginFixture { name, manifest },
            )
        }
        _ => unreachable!("ACTIONS lists every key"),
    };
    f.finish()?;
    Ok(Step {
        label: name.unwrap_or(label),
        action,
    })
}

fn request(f: &mut Fields, op: String) -> Result<Action, String> {
    Ok(Action::Request {
        payload: f.payload()?,
        credential: f.credential()?,
        expect: f.matchers("expect")?,
        save: f.save()?,
        timeout: f.duration("timeout", REQUEST_TIMEOUT)?,
        retry_within: f
            .take("within")
            .map(|v| parse_duration(&v).map_err(|e| format!("`within`: {e}")))
            .transpose()?,
        op,
    })
}

fn params(f: &mut Fields) -> Result<BTreeMap<String, String>, String> {
    match f.take("params") {
        None => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => Ok(m
            .into_iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, s)
            })
            .collect()),
        Some(other) => Err(format!("`params` must be a table, got {other}")),
    }
}

fn check_device(d: &str) -> Result<(), String> {
    match d.split_once('/') {
        Some((t, n)) if !t.is_empty() && n.parse::<u32>().is_ok() => Ok(()),
        _ => Err(format!(
            "device {d:?}: expected \"<type>/<number>\", e.g. telescope/0"
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Step, String> {
        parse_step(v.as_object().unwrap())
    }

    #[test]
    fn one_action_per_step_and_only_its_modifiers() {
        let s = parse(json!({"request": "telescope/control/slew", "as": "alice",
                              "body": {"ra": 1}, "expect": {"success": true}, "save": {"id": "id"}}))
        .unwrap();
        assert!(matches!(s.action, Action::Request { .. }));
        assert!(
            parse(json!({"sleep": "1s", "request": "a/b/c"}))
                .unwrap_err()
                .contains("several")
        );
        assert!(
            parse(json!({"body": {}}))
                .unwrap_err()
                .contains("no action")
        );
        let e = parse(json!({"request": "a/b/c", "bdy": {}})).unwrap_err();
        assert!(e.contains("`bdy` does not apply to `request`"), "{e}");
        assert!(parse(json!({"request": "a/b"})).is_err());
        assert!(parse(json!({"request": "a/b/c", "as": "x", "token": "y"})).is_err());
        assert!(parse(json!({"request": "a/b/c", "raw": "{", "body": {}})).is_err());
        assert!(parse(json!({"device": "telescope", "property": "x"})).is_err());
        assert!(parse(json!({"broker": "explode"})).is_err());
        assert!(parse(json!({"database": "restart"})).is_err());
        assert!(
            parse(json!({"set_config": "x", "key": "k", "value": 1, "type": "complex"})).is_err()
        );
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration(&json!("250ms")).unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(
            parse_duration(&json!("1.5s")).unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(
            parse_duration(&json!("2m")).unwrap(),
            Duration::from_secs(120)
        );
        assert_eq!(parse_duration(&json!(3)).unwrap(), Duration::from_secs(3));
        assert!(parse_duration(&json!("-1s")).is_err());
        assert!(parse_duration(&json!("soon")).is_err());
    }
}
