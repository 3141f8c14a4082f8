//! The JSON envelope of every HTTP 200 reply (PROTOCOL.md §1.3–§1.6, §1.8): content type,
//! exact key casing, transaction ids, error fields, and the `Value` against the member's
//! declared type.

use bigskies_alpaca::types::{
    AlignmentMode, CameraState, DriveRate, EquatorialSystem, GuideDirection, PierSide, SensorType,
    ShutterState, TelescopeAxis, parse_iso_utc,
};
use bigskies_alpaca::wire::ValueKind;
use serde_json::{Map, Value};

use super::http::{Reply, Request};
use super::report::{Outcome, Section};

/// The envelope keys, exactly cased.
pub const VALUE: &str = "Value";
pub const CLIENT_TRANSACTION_ID: &str = "ClientTransactionID";
pub const SERVER_TRANSACTION_ID: &str = "ServerTransactionID";
pub const ERROR_NUMBER: &str = "ErrorNumber";
pub const ERROR_MESSAGE: &str = "ErrorMessage";

/// A parsed 200 reply. Lookups fall back to a case-insensitive key match so that later checks
/// can still read a reply whose keys were mis-cased (that fault is reported separately).
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    pub obj: Map<String, Value>,
}

impl Envelope {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.obj.get(key).or_else(|| {
            self.obj
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
    }

    pub fn value(&self) -> Option<&Value> {
        self.get(VALUE)
    }

    /// `ErrorNumber`, 0 when absent.
    pub fn error_number(&self) -> i64 {
        self.get(ERROR_NUMBER).and_then(Value::as_i64).unwrap_or(0)
    }

    pub fn error_message(&self) -> String {
        self.get(ERROR_MESSAGE)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    }

    pub fn ok(&self) -> bool {
        self.error_number() == 0
    }

    pub fn client_transaction_id(&self) -> Option<i64> {
        self.get(CLIENT_TRANSACTION_ID).and_then(Value::as_i64)
    }

    /// `0x400 NotImplemented: message`, for reports.
    pub fn error_text(&self) -> String {
        describe_error(self.error_number(), &self.error_message())
    }
}

/// `0x401 InvalidValue: message`.
pub fn describe_error(number: i64, message: &str) -> String {
    let name = u16::try_from(number)
        .ok()
        .and_then(|n| bigskies_alpaca::ErrorCode(n).name());
    let mut out = format!("ErrorNumber {number:#x}");
    if let Some(name) = name {
        out.push(' ');
        out.push_str(name);
    }
    if !message.is_empty() {
        out.push_str(": ");
        out.push_str(&shorten(message, 120));
    }
    out
}

/// At most `n` characters of `s`.
pub fn shorten(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if s.chars().count() > n {
        out.push('…');
    }
    out
}

/// What the `Value` of a reply should look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueRule {
    /// A GET member: `Value` always present (type default on error).
    Get(ValueKind),
    /// A PUT member: a `Value` only when the member returns one.
    Put(ValueKind),
    /// A management reply: `Value` always present, shape checked by the caller.
    Management,
}

/// What [`inspect`] checks a reply against.
#[derive(Clone, Copy, Debug)]
pub struct Expect {
    /// The ClientTransactionID the reply must echo (`None`: the caller checks it itself).
    pub ctid: Option<u32>,
    pub value: ValueRule,
    /// `Type` and `Rank` are allowed next to `Value` (camera image members).
    pub image: bool,
}

/// Checks the envelope of a 200 reply into `sec` and returns it parsed (`None` when the body
/// is not a JSON object).
pub fn inspect(
    sec: &mut Section,
    strict: bool,
    req: &Request,
    reply: &Reply,
    expect: Expect,
) -> Option<Envelope> {
    let shown = || Some(req.to_string());
    content_type(sec, strict, req, reply);
    let obj = match reply.json() {
        Ok(Value::Object(obj)) => {
            sec.check(
                "json-body",
                "§1.6",
                "200 replies are a JSON object (RFC 8259)",
            )
            .pass();
            obj
        }
        other => {
            let got = match other {
                Ok(v) => format!("JSON {}", shorten(&v.to_string(), 80)),
                Err(e) => format!("{e}; body {}", reply.snippet()),
            };
            sec.check(
                "json-body",
                "§1.6",
                "200 replies are a JSON object (RFC 8259)",
            )
            .issue(shown(), "a JSON object", got);
            return None;
        }
    };
    let env = Envelope { obj };
    keys(sec, req, &env, expect);
    ids(sec, strict, req, &env, expect);
    if expect.value != ValueRule::Management {
        error_fields(sec, req, &env);
    }
    value(sec, strict, req, &env, expect.value);
    Some(env)
}

fn content_type(sec: &mut Section, strict: bool, req: &Request, reply: &Reply) {
    let check = sec.check(
        "content-type",
        "§1.6",
        "JSON replies say Content-Type: application/json; charset=utf-8",
    );
    let expected = "application/json; charset=utf-8";
    let Some(ct) = reply.content_type.as_deref() else {
        check.issue(Some(req.to_string()), expected, "no Content-Type header");
        return;
    };
    let lower = ct.to_ascii_lowercase();
    let mut parts = lower.split(';').map(str::trim);
    let mime = parts.next().unwrap_or("");
    let charset = parts
        .filter_map(|p| p.strip_prefix("charset="))
        .map(|c| c.trim_matches('"').to_owned())
        .next();
    if mime != "application/json" {
        check.issue(Some(req.to_string()), expected, ct);
    } else {
        match charset.as_deref() {
            Some("utf-8") => check.pass(),
            Some(_) => check.issue(Some(req.to_string()), expected, ct),
            None => check.record(Outcome::strict(strict), Some(req.to_string()), expected, ct),
        }
    }
}

fn keys(sec: &mut Section, req: &Request, env: &Envelope, expect: Expect) {
    let mut allowed = vec![VALUE, CLIENT_TRANSACTION_ID, SERVER_TRANSACTION_ID];
    let mut required = vec![CLIENT_TRANSACTION_ID, SERVER_TRANSACTION_ID];
    if expect.value == ValueRule::Management {
        // The management YAML lists no error fields; the .NET library adds them anyway.
        allowed.extend([ERROR_NUMBER, ERROR_MESSAGE]);
    } else {
        allowed.extend([ERROR_NUMBER, ERROR_MESSAGE]);
        required.extend([ERROR_NUMBER, ERROR_MESSAGE]);
    }
    if expect.image {
        allowed.extend(["Type", "Rank"]);
    }
    let mut problems = Vec::new();
    let mut unknown = Vec::new();
    for k in env.obj.keys() {
        if allowed.contains(&k.as_str()) {
            continue;
        }
        match allowed.iter().find(|a| a.eq_ignore_ascii_case(k)) {
            Some(right) => problems.push(format!("key {k:?} should be {right:?}")),
            None => unknown.push(format!("{k:?}")),
        }
    }
    for r in &required {
        if !env.obj.contains_key(*r) && !env.obj.keys().any(|k| k.eq_ignore_ascii_case(r)) {
            problems.push(format!("key {r:?} missing"));
        }
    }
    let check = sec.check(
        "json-keys",
        "§1.3",
        "envelope keys are exactly Value, ClientTransactionID, ServerTransactionID, ErrorNumber, ErrorMessage",
    );
    let expected = format!("keys exactly cased: {}", allowed.join(", "));
    if !problems.is_empty() {
        check.issue(Some(req.to_string()), expected, problems.join("; "));
    } else if !unknown.is_empty() {
        check.info(
            Some(req.to_string()),
            expected,
            format!("unexpected extra keys {}", unknown.join(", ")),
        );
    } else {
        check.pass();
    }
}

/// Reads a uint32 field; `Err` says what is wrong with it.
fn uint32(env: &Envelope, key: &str) -> Result<u32, String> {
    match env.get(key) {
        None => Err("absent".to_owned()),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("{v} is not a uint32")),
    }
}

fn ids(sec: &mut Section, strict: bool, req: &Request, env: &Envelope, expect: Expect) {
    if let Some(want) = expect.ctid {
        let check = sec.check(
            "client-transaction-id",
            "§1.5",
            "ClientTransactionID is echoed",
        );
        match uint32(env, CLIENT_TRANSACTION_ID) {
            Ok(got) if got == want => check.pass(),
            Ok(got) => check.issue(
                Some(req.to_string()),
                format!("ClientTransactionID {want}"),
                format!("ClientTransactionID {got}"),
            ),
            Err(e) => check.issue(
                Some(req.to_string()),
                format!("ClientTransactionID {want}"),
                format!("ClientTransactionID {e}"),
            ),
        }
    }
    let check = sec.check(
        "server-transaction-id",
        "§1.5",
        "ServerTransactionID is a uint32 of at least 1",
    );
    match uint32(env, SERVER_TRANSACTION_ID) {
        Ok(0) => check.record(
            Outcome::strict(strict),
            Some(req.to_string()),
            "ServerTransactionID ≥ 1",
            "ServerTransactionID 0",
        ),
        Ok(_) => check.pass(),
        Err(e) => check.issue(
            Some(req.to_string()),
            "ServerTransactionID ≥ 1",
            format!("ServerTransactionID {e}"),
        ),
    }
}

fn error_fields(sec: &mut Section, req: &Request, env: &Envelope) {
    let check = sec.check(
        "error-fields",
        "§1.6",
        "ErrorNumber is 0 or 0x400…0xFFF and ErrorMessage is empty exactly on success",
    );
    let expected = "ErrorNumber 0 with an empty ErrorMessage, or 0x400…0xFFF with a message";
    let number = env.get(ERROR_NUMBER);
    let message = env.get(ERROR_MESSAGE);
    let n = match number.map(|v| (v, v.as_i64())) {
        None => return, // reported as a missing key
        Some((_, Some(n))) => n,
        Some((v, None)) => {
            check.issue(
                Some(req.to_string()),
                expected,
                format!("ErrorNumber {v} is not an integer"),
            );
            return;
        }
    };
    let text = match message {
        None => return,
        Some(Value::String(s)) => s.clone(),
        Some(v) => {
            check.issue(
                Some(req.to_string()),
                expected,
                format!("ErrorMessage {v} is not a string"),
            );
            return;
        }
    };
    if n != 0 && !(0x400..=0xFFF).contains(&n) {
        check.issue(
            Some(req.to_string()),
            expected,
            format!("ErrorNumber {n} ({n:#x}) is outside the Alpaca range"),
        );
    } else if n == 0 && !text.is_empty() {
        check.issue(
            Some(req.to_string()),
            expected,
            format!("ErrorNumber 0 with ErrorMessage {:?}", shorten(&text, 100)),
        );
    } else if n != 0 && text.is_empty() {
        check.info(
            Some(req.to_string()),
            expected,
            format!("ErrorNumber {n:#x} without a message"),
        );
    } else {
        check.pass();
    }
}

fn value(sec: &mut Section, strict: bool, req: &Request, env: &Envelope, rule: ValueRule) {
    let exact = env.obj.get(VALUE);
    let ok = env.ok();
    match rule {
        ValueRule::Get(kind) | ValueRule::Put(kind) if kind != ValueKind::Nothing => {
            let check = sec.check(
                "value-present",
                "§1.6",
                "replies of members that return something carry Value, also on errors",
            );
            match (exact.is_some(), ok, rule) {
                (true, _, _) => check.pass(),
                (false, true, _) => {
                    check.issue(Some(req.to_string()), "a Value key", "no Value key")
                }
                (false, false, ValueRule::Get(_)) => check.record(
                    Outcome::strict(strict),
                    Some(req.to_string()),
                    "a Value key (type default) next to the error",
                    format!("no Value key with {}", env.error_text()),
                ),
                (false, false, _) => check.pass(),
            }
            if ok && let Some(v) = env.value() {
                let check = sec.check(
                    "value-type",
                    "§4–§10",
                    "Value has the member's declared type",
                );
                match kind_problem(kind, v) {
                    None => check.pass(),
                    Some((outcome, got)) => {
                        check.record(outcome, Some(req.to_string()), describe_kind(kind), got)
                    }
                }
            }
        }
        ValueRule::Put(_) => {
            let check = sec.check(
                "put-no-value",
                "§1.6",
                "PUT replies of members without a result carry no Value",
            );
            match exact {
                Some(v) if !v.is_null() => check.info(
                    Some(req.to_string()),
                    "no Value key",
                    format!("Value {}", shorten(&v.to_string(), 60)),
                ),
                _ => check.pass(),
            }
        }
        ValueRule::Get(_) | ValueRule::Management => {
            if exact.is_none() {
                sec.check(
                    "value-present",
                    "§1.6",
                    "replies of members that return something carry Value, also on errors",
                )
                .issue(Some(req.to_string()), "a Value key", "no Value key");
            }
        }
    }
}

/// Human text for a value kind.
pub fn describe_kind(kind: ValueKind) -> String {
    match kind {
        ValueKind::Nothing => "no Value".into(),
        ValueKind::Bool => "a JSON boolean".into(),
        ValueKind::Int => "a JSON integer".into(),
        ValueKind::Double => "a JSON number".into(),
        ValueKind::String => "a JSON string".into(),
        ValueKind::Enum(name) => format!("an integer {name}"),
        ValueKind::Date => "an ISO 8601 date string".into(),
        ValueKind::StringArray => "an array of strings".into(),
        ValueKind::IntArray => "an array of integers".into(),
        ValueKind::EnumArray(name) => format!("an array of integer {name} values"),
        ValueKind::AxisRates => "an array of {Minimum, Maximum} objects".into(),
        ValueKind::DeviceState => "an array of {Name, Value} objects".into(),
        ValueKind::Image => "an image array".into(),
    }
}

/// Is `n` a defined value of the ASCOM enum `name`?
pub fn enum_valid(name: &str, n: i64) -> bool {
    let Ok(n) = i32::try_from(n) else {
        return false;
    };
    match name {
        "AlignmentMode" => AlignmentMode::try_from(n).is_ok(),
        "EquatorialSystem" => EquatorialSystem::try_from(n).is_ok(),
        "PierSide" => PierSide::try_from(n).is_ok(),
        "DriveRate" => DriveRate::try_from(n).is_ok(),
        "GuideDirection" => GuideDirection::try_from(n).is_ok(),
        "TelescopeAxis" => TelescopeAxis::try_from(n).is_ok(),
        "CameraState" => CameraState::try_from(n).is_ok(),
        "SensorType" => SensorType::try_from(n).is_ok(),
        "ShutterState" => ShutterState::try_from(n).is_ok(),
        _ => true,
    }
}

/// An integer, tolerating whole doubles (information).
fn integer(v: &Value) -> Result<(i64, bool), String> {
    if let Some(n) = v.as_i64() {
        return Ok((n, false));
    }
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok((f as i64, true)),
        _ => Err(format!("{} is not an integer", shorten(&v.to_string(), 60))),
    }
}

/// What is wrong with `v` as a `kind`, if anything.
pub fn kind_problem(kind: ValueKind, v: &Value) -> Option<(Outcome, String)> {
    let issue = |s: String| Some((Outcome::Issue, s));
    let shown = || shorten(&v.to_string(), 80);
    match kind {
        ValueKind::Nothing => None,
        ValueKind::Bool => (!v.is_boolean()).then(|| (Outcome::Issue, shown())),
        ValueKind::Int | ValueKind::Enum(_) => match integer(v) {
            Err(e) => issue(e),
            Ok((n, _)) if n < i64::from(i32::MIN) || n > i64::from(i32::MAX) => {
                issue(format!("{n} does not fit in 32 bits"))
            }
            Ok((n, _)) if matches!(kind, ValueKind::Enum(name) if !enum_valid(name, n)) => {
                issue(format!("{n} is not a defined value"))
            }
            Ok((_, true)) => Some((
                Outcome::Information,
                format!(
                    "{} (an integer written as a floating-point number)",
                    shown()
                ),
            )),
            Ok(_) => None,
        },
        ValueKind::Double => (!v.is_number()).then(|| (Outcome::Issue, shown())),
        ValueKind::String => (!v.is_string()).then(|| (Outcome::Issue, shown())),
        ValueKind::Date => match v.as_str() {
            Some(s) if parse_iso_utc(s).is_some() => None,
            _ => issue(shown()),
        },
        ValueKind::StringArray => match v.as_array() {
            Some(a) if a.iter().all(Value::is_string) => None,
            _ => issue(shown()),
        },
        ValueKind::IntArray | ValueKind::EnumArray(_) => {
            let Some(a) = v.as_array() else {
                return issue(shown());
            };
            for item in a {
                match integer(item) {
                    Err(e) => return issue(e),
                    Ok((n, _)) => {
                        if let ValueKind::EnumArray(name) = kind
                            && !enum_valid(name, n)
                        {
                            return issue(format!("{n} is not a defined {name}"));
                        }
                    }
                }
            }
            None
        }
        ValueKind::AxisRates => object_array(v, &["Minimum", "Maximum"], |o| {
            (o["Minimum"].is_number() && o["Maximum"].is_number())
                .then_some(())
                .ok_or_else(|| "Minimum and Maximum must be numbers".to_owned())
        }),
        ValueKind::DeviceState => object_array(v, &["Name", "Value"], |o| {
            o["Name"]
                .is_string()
                .then_some(())
                .ok_or_else(|| "Name must be a string".to_owned())
        }),
        ValueKind::Image => (!v.is_array()).then(|| (Outcome::Issue, shown())),
    }
}

/// An array of objects whose keys are exactly `keys`.
fn object_array(
    v: &Value,
    keys: &[&str],
    fields: impl Fn(&Map<String, Value>) -> Result<(), String>,
) -> Option<(Outcome, String)> {
    let Some(items) = v.as_array() else {
        return Some((Outcome::Issue, shorten(&v.to_string(), 80)));
    };
    for item in items {
        let Some(obj) = item.as_object() else {
            return Some((
                Outcome::Issue,
                format!("entry {} is not an object", shorten(&item.to_string(), 60)),
            ));
        };
        let mut got: Vec<&str> = obj.keys().map(String::as_str).collect();
        got.sort_unstable();
        let mut want = keys.to_vec();
        want.sort_unstable();
        if got != want {
            return Some((
                Outcome::Issue,
                format!(
                    "entry keys {got:?}, must be exactly {keys:?} (case-sensitive): {}",
                    shorten(&item.to_string(), 60)
                ),
            ));
        }
        if let Err(e) = fields(obj) {
            return Some((
                Outcome::Issue,
                format!("{e}: {}", shorten(&item.to_string(), 60)),
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn value_kinds_are_checked_strictly_except_whole_doubles() {
        assert!(kind_problem(ValueKind::Bool, &json!(true)).is_none());
        assert!(kind_problem(ValueKind::Bool, &json!("true")).is_some());
        assert_eq!(
            kind_problem(ValueKind::Int, &json!(3.0)).map(|p| p.0),
            Some(Outcome::Information)
        );
        assert!(kind_problem(ValueKind::Enum("PierSide"), &json!(-1)).is_none());
        assert!(kind_problem(ValueKind::Enum("PierSide"), &json!(2)).is_some());
        assert!(kind_problem(ValueKind::Date, &json!("2026-01-01T00:00:00Z")).is_none());
        assert!(kind_problem(ValueKind::Date, &json!("soon")).is_some());
        let rates = json!([{"Minimum": 0.0, "Maximum": 2.0}]);
        assert!(kind_problem(ValueKind::AxisRates, &rates).is_none());
        let miscased = json!([{"minimum": 0.0, "Maximum": 2.0}]);
        assert!(kind_problem(ValueKind::AxisRates, &miscased).is_some());
        let state = json!([{"Name": "Position", "Value": 3}]);
        assert!(kind_problem(ValueKind::DeviceState, &state).is_none());
        assert!(kind_problem(ValueKind::EnumArray("DriveRate"), &json!([0, 7])).is_some());
    }

    #[test]
    fn envelope_lookups_tolerate_miscased_keys() {
        let env = Envelope {
            obj: json!({"value": 5, "ErrorNumber": 1025, "ErrorMessage": "no"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        };
        assert_eq!(env.value(), Some(&json!(5)));
        assert!(!env.ok());
        assert_eq!(env.error_text(), "ErrorNumber 0x401 InvalidValue: no");
    }
}
