//! How Rust values cross the wire: [`ParamValue`] (request parameters, parsed liberally in
//! invariant culture), [`WireValue`] (the `Value` of a reply, with its type default for error
//! replies), request parameter lookup with the Alpaca casing rules ([`Params`]), and the
//! introspection tables ([`MemberInfo`]) generated for every device type.

use chrono::{DateTime, Utc};

use crate::error::AlpacaError;
use crate::image::ImageArray;
use crate::types::*;

/// What kind of value a parameter carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamKind {
    Bool,
    Int,
    Double,
    String,
    /// An integer enum; the name is the ASCOM enum name (e.g. `DriveRate`).
    Enum(&'static str),
    /// ISO 8601 UTC date (telescope `UTCDate`).
    Date,
}

/// What kind of `Value` a member returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// No `Value` key (PUT property writes and most methods).
    Nothing,
    Bool,
    Int,
    Double,
    String,
    Enum(&'static str),
    Date,
    StringArray,
    IntArray,
    EnumArray(&'static str),
    AxisRates,
    DeviceState,
    Image,
}

/// One parameter of a member: its exact (PUT) casing and kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamInfo {
    pub name: &'static str,
    pub kind: ParamKind,
}

/// One row of a device type's member table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// ASCOM member name in its canonical casing (`SlewToCoordinatesAsync`).
    pub name: &'static str,
    pub verb: Verb,
    /// The Rust trait method implementing it.
    pub method: &'static str,
    pub params: &'static [ParamInfo],
    pub returns: ValueKind,
}

impl MemberInfo {
    /// The URL segment: the member name in lower case.
    pub fn path(&self) -> String {
        self.name.to_ascii_lowercase()
    }

    /// Whether `segment` (already known to be exactly what the client sent) names this member.
    pub fn matches_path(&self, segment: &str) -> bool {
        path_matches(segment, self.name)
    }
}

/// Path segments must be lower case (PROTOCOL.md §1.1), so `Tracking` matches `tracking` only.
pub(crate) fn path_matches(segment: &str, name: &str) -> bool {
    segment.len() == name.len()
        && !segment.bytes().any(|b| b.is_ascii_uppercase())
        && segment.eq_ignore_ascii_case(name)
}

/// Why a parameter could not be handed to the device.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamError {
    /// Required parameter absent (or, for PUT, present only with the wrong casing) → HTTP 400.
    Missing(&'static str),
    /// Value could not be parsed at all → HTTP 400.
    Unparseable { name: &'static str, value: String },
    /// Parsed, but not a legal value (e.g. `TrackingRate=5`) → HTTP 200 + this ASCOM error.
    Invalid(AlpacaError),
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamError::Missing(n) => write!(f, "required parameter {n} is missing"),
            ParamError::Unparseable { name, value } => {
                write!(f, "parameter {name} has an unparseable value {value:?}")
            }
            ParamError::Invalid(e) => write!(f, "{}", e.message),
        }
    }
}

/// A request parameter type: parsed from and formatted to the form/query text.
pub trait ParamValue: Sized + Send + 'static {
    const KIND: ParamKind;
    /// Parse the text; `Err(None)` means unparseable (400), `Err(Some(e))` a parsed but
    /// illegal value (200 + `e`).
    fn parse_param(text: &str) -> Result<Self, Option<AlpacaError>>;
    fn format_param(&self) -> String;
}

/// Parses a number the way .NET's invariant culture does (`.` decimal point, exponent allowed,
/// surrounding white space allowed). Non-finite values are refused as unparseable.
pub fn parse_f64(text: &str) -> Option<f64> {
    let t = text.trim();
    if t.is_empty()
        || t.bytes()
            .any(|b| !(b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')))
    {
        return None;
    }
    t.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Parses an integer (no decimal point, no exponent; surrounding white space allowed).
pub fn parse_i32(text: &str) -> Option<i32> {
    text.trim().parse::<i32>().ok()
}

/// Parses a bool: `true`/`false` in any casing.
pub fn parse_bool(text: &str) -> Option<bool> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("true") {
        Some(true)
    } else if t.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Formats a double in invariant culture; Rust's shortest round-trip form already is.
pub fn format_f64(v: f64) -> String {
    format!("{v}")
}

impl ParamValue for f64 {
    const KIND: ParamKind = ParamKind::Double;
    fn parse_param(text: &str) -> Result<Self, Option<AlpacaError>> {
        parse_f64(text).ok_or(None)
    }
    fn format_param(&self) -> String {
        format_f64(*self)
    }
}

impl ParamValue for i32 {
    const KIND: ParamKind = ParamKind::Int;
    fn parse_param(text: &str) -> Result<Self, Option<AlpacaError>> {
        parse_i32(text).ok_or(None)
    }
    fn format_param(&self) -> String {
        self.to_string()
    }
}

impl ParamValue for bool {
    const KIND: ParamKind = ParamKind::Bool;
    fn parse_param(text: &str) -> Result<Self, Option<AlpacaError>> {
        parse_bool(text).ok_or(None)
    }
    fn format_param(&self) -> String {
        // The .NET client and ConformU send `True`/`False`; any casing is valid.
        if *self { "True".into() } else { "False".into() }
    }
}

impl ParamValue for String {
    const KIND: ParamKind = ParamKind::String;
    fn parse_param(text: &str) -> Result<Self, Option<AlpacaError>> {
        Ok(text.to_owned())
    }
    fn format_param(&self) -> String {
        self.clone()
    }
}

impl ParamValue for DateTime<Utc> {
    const KIND: ParamKind = ParamKind::Date;
    fn parse_param(text: &str) -> Result<Self, Option<AlpacaError>> {
        parse_iso_utc(text).ok_or_else(|| {
            Some(AlpacaError::invalid_value(format!(
                "{text:?} is not an ISO 8601 UTC date"
            )))
        })
    }
    fn format_param(&self) -> String {
        format_utc_date(*self)
    }
}

/// Where the value of a reply comes from: plain JSON, or an image that the server encodes as
/// JSON or ImageBytes depending on `Accept`.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplyValue {
    Json(serde_json::Value),
    Image(ImageArray),
}

/// A reply `Value` type.
pub trait WireValue: Sized + Send + 'static {
    const KIND: ValueKind;
    /// The `Value` of a success reply; `None` for "no Value key".
    fn into_reply(self) -> Option<ReplyValue>;
    /// The `Value` sent alongside an error on a GET (type default, PROTOCOL.md §1.6).
    fn default_reply() -> Option<ReplyValue>;
    /// Decode a success reply's `Value` (client side); `value` is `None` when the key is absent.
    fn from_wire(value: Option<serde_json::Value>) -> Result<Self, String>;
    /// Accept a decoded image (ImageBytes replies); only image types say yes.
    fn from_image(image: ImageArray) -> Option<Self> {
        let _ = image;
        None
    }
}

impl WireValue for () {
    const KIND: ValueKind = ValueKind::Nothing;
    fn into_reply(self) -> Option<ReplyValue> {
        None
    }
    fn default_reply() -> Option<ReplyValue> {
        None
    }
    fn from_wire(_: Option<serde_json::Value>) -> Result<Self, String> {
        Ok(())
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(
    value: Option<serde_json::Value>,
) -> Result<T, String> {
    let value = value.ok_or_else(|| "reply has no Value".to_owned())?;
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// `WireValue` for types whose JSON form is their serde form.
macro_rules! json_wire_value {
    ($($t:ty => $kind:expr),+ $(,)?) => {$(
        impl WireValue for $t {
            const KIND: ValueKind = $kind;
            fn into_reply(self) -> Option<ReplyValue> {
                Some(ReplyValue::Json(serde_json::to_value(self).unwrap_or(serde_json::Value::Null)))
            }
            fn default_reply() -> Option<ReplyValue> {
                <$t as Default>::default().into_reply()
            }
            fn from_wire(value: Option<serde_json::Value>) -> Result<Self, String> {
                decode_json(value)
            }
        }
    )+};
}

/// An integer `Value`, tolerating devices that send integers as `1.0`.
fn json_i32(value: &serde_json::Value) -> Result<i32, String> {
    let n = match value.as_i64() {
        Some(n) => n,
        None => match value.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() <= i32::MAX as f64 => f as i64,
            _ => return Err(format!("{value} is not an integer")),
        },
    };
    i32::try_from(n).map_err(|_| format!("{n} does not fit in 32 bits"))
}

fn decode_i32(value: Option<serde_json::Value>) -> Result<i32, String> {
    json_i32(&value.ok_or_else(|| "reply has no Value".to_owned())?)
}

impl WireValue for i32 {
    const KIND: ValueKind = ValueKind::Int;
    fn into_reply(self) -> Option<ReplyValue> {
        Some(ReplyValue::Json(serde_json::Value::from(self)))
    }
    fn default_reply() -> Option<ReplyValue> {
        Some(ReplyValue::Json(serde_json::Value::from(0)))
    }
    fn from_wire(value: Option<serde_json::Value>) -> Result<Self, String> {
        decode_i32(value)
    }
}

impl WireValue for Vec<i32> {
    const KIND: ValueKind = ValueKind::IntArray;
    fn into_reply(self) -> Option<ReplyValue> {
        Some(ReplyValue::Json(serde_json::Value::from(self)))
    }
    fn default_reply() -> Option<ReplyValue> {
        Some(ReplyValue::Json(serde_json::Value::Array(Vec::new())))
    }
    fn from_wire(value: Option<serde_json::Value>) -> Result<Self, String> {
        let items: Vec<serde_json::Value> = decode_json(value)?;
        items.iter().map(json_i32).collect()
    }
}

json_wire_value! {
    bool => ValueKind::Bool,
    String => ValueKind::String,
    Vec<String> => ValueKind::StringArray,
    Vec<AxisRate> => ValueKind::AxisRates,
    Vec<DeviceStateItem> => ValueKind::DeviceState,
}

impl WireValue for f64 {
    const KIND: ValueKind = ValueKind::Double;
    fn into_reply(self) -> Option<ReplyValue> {
        // JSON has no NaN/Infinity (RFC 8259); serde_json would write null, so send 0 instead
        // of a Value the client cannot read as a number.
        let v = if self.is_finite() { self } else { 0.0 };
        Some(ReplyValue::Json(serde_json::Value::from(v)))
    }
    fn default_reply() -> Option<ReplyValue> {
        Some(ReplyValue::Json(serde_json::Value::from(0.0)))
    }
    fn from_wire(value: Option<serde_json::Value>) -> Result<Self, String> {
        decode_json(value)
    }
}

impl WireValue for DateTime<Utc> {
    const KIND: ValueKind = ValueKind::Date;
    fn into_reply(self) -> Option<ReplyValue> {
        Some(ReplyValue::Json(serde_json::Value::String(
            format_utc_date(self),
        )))
    }
    fn default_reply() -> Option<ReplyValue> {
        Some(ReplyValue::Json(serde_json::Value::String(String::new())))
    }
    fn from_wire(value: Option<serde_json::Value>) -> Result<Self, String> {
        let s: String = decode_json(value)?;
        parse_iso_utc(&s).ok_or_else(|| format!("{s:?} is not an ISO 8601 date"))
    }
}

impl WireValue for FitsDateTime {
    const KIND: ValueKind = ValueKind::Date;
    fn into_reply(self) -> Option<ReplyValue> {
        Some(ReplyValue::Json(serde_json::Value::String(self.to_wire())))
    }
    fn default_reply() -> Option<ReplyValue> {
        Some(ReplyValue::Json(serde_json::Value::String(String::new())))
    }
    fn from_wire(value: Option<serde_json::Value>) -> Result<Self, String> {
        let s: String = decode_json(value)?;
        FitsDateTime::parse(&s).ok_or_else(|| format!("{s:?} is not a FITS date"))
    }
}

impl WireValue for ImageArray {
    const KIND: ValueKind = ValueKind::Image;
    fn into_reply(self) -> Option<ReplyValue> {
        Some(ReplyValue::Image(self))
    }
    fn default_reply() -> Option<ReplyValue> {
        Some(ReplyValue::Json(serde_json::Value::Array(Vec::new())))
    }
    fn from_wire(value: Option<serde_json::Value>) -> Result<Self, String> {
        let value = value.ok_or_else(|| "reply has no Value".to_owned())?;
        ImageArray::from_json_value(&value, None).map_err(|e| e.to_string())
    }
    fn from_image(image: ImageArray) -> Option<Self> {
        Some(image)
    }
}

/// Enum types are both parameters and values, as integers.
macro_rules! enum_wire {
    ($($t:ident),+ $(,)?) => {$(
        impl ParamValue for $t {
            const KIND: ParamKind = ParamKind::Enum(stringify!($t));
            fn parse_param(text: &str) -> Result<Self, Option<AlpacaError>> {
                let n = parse_i32(text).ok_or(None)?;
                $t::try_from(n).map_err(Some)
            }
            fn format_param(&self) -> String {
                self.to_i32().to_string()
            }
        }

        impl WireValue for $t {
            const KIND: ValueKind = ValueKind::Enum(stringify!($t));
            fn into_reply(self) -> Option<ReplyValue> {
                Some(ReplyValue::Json(serde_json::Value::from(self.to_i32())))
            }
            fn default_reply() -> Option<ReplyValue> {
                Some(ReplyValue::Json(serde_json::Value::from(0)))
            }
            fn from_wire(value: Option<serde_json::Value>) -> Result<Self, String> {
                $t::try_from(decode_i32(value)?).map_err(|e| e.message)
            }
        }
    )+};
}

enum_wire!(
    AlignmentMode,
    EquatorialSystem,
    PierSide,
    DriveRate,
    GuideDirection,
    TelescopeAxis,
    CameraState,
    SensorType,
    ShutterState
);

impl WireValue for Vec<DriveRate> {
    const KIND: ValueKind = ValueKind::EnumArray("DriveRate");
    fn into_reply(self) -> Option<ReplyValue> {
        Some(ReplyValue::Json(serde_json::Value::from(
            self.iter().map(|r| r.to_i32()).collect::<Vec<_>>(),
        )))
    }
    fn default_reply() -> Option<ReplyValue> {
        Some(ReplyValue::Json(serde_json::Value::Array(Vec::new())))
    }
    fn from_wire(value: Option<serde_json::Value>) -> Result<Self, String> {
        let items: Vec<serde_json::Value> = decode_json(value)?;
        items
            .iter()
            .map(|v| DriveRate::try_from(json_i32(v)?).map_err(|e| e.message))
            .collect()
    }
}

/// Request parameters as received, with the Alpaca lookup rules: GET names are matched
/// case-insensitively, PUT names exactly (a wrongly cased PUT name counts as absent).
#[derive(Clone, Debug, Default)]
pub struct Params {
    case_sensitive: bool,
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Query-string parameters of a GET.
    pub fn query(pairs: Vec<(String, String)>) -> Self {
        Self {
            case_sensitive: false,
            pairs,
        }
    }

    /// Form-body parameters of a PUT.
    pub fn form(pairs: Vec<(String, String)>) -> Self {
        Self {
            case_sensitive: true,
            pairs,
        }
    }

    /// The first value supplied under `name`, honouring the casing rule.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| {
                if self.case_sensitive {
                    k == name
                } else {
                    k.eq_ignore_ascii_case(name)
                }
            })
            .map(|(_, v)| v.as_str())
    }

    /// A required parameter, parsed.
    pub fn parse<T: ParamValue>(&self, name: &'static str) -> Result<T, ParamError> {
        let text = self.get(name).ok_or(ParamError::Missing(name))?;
        T::parse_param(text).map_err(|e| match e {
            Some(err) => ParamError::Invalid(err),
            None => ParamError::Unparseable {
                name,
                value: text.to_owned(),
            },
        })
    }

    /// An optional `u32` transaction id: absent is fine, malformed is an error (→ 400).
    pub fn transaction_id(&self, name: &'static str) -> Result<Option<u32>, ParamError> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => {
                text.trim()
                    .parse::<u32>()
                    .ok()
                    .map(Some)
                    .ok_or(ParamError::Unparseable {
                        name,
                        value: text.to_owned(),
                    })
            }
        }
    }
}

/// The outcome of one member call, before it is put into an envelope.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// `None` = no `Value` key.
    pub value: Option<ReplyValue>,
    pub error: Option<AlpacaError>,
}

impl Reply {
    /// Success carries the value; an error carries the type default so GET replies always
    /// have a `Value` (PROTOCOL.md §1.6).
    pub fn from_result<T: WireValue>(result: Result<T, AlpacaError>) -> Self {
        match result {
            Ok(v) => Reply {
                value: v.into_reply(),
                error: None,
            },
            Err(e) => Self::error::<T>(e),
        }
    }

    pub fn error<T: WireValue>(error: AlpacaError) -> Self {
        Reply {
            value: T::default_reply(),
            error: Some(error),
        }
    }
}

/// What a generated dispatch function made of a request.
#[derive(Debug)]
pub enum Dispatch {
    /// The member ran (or a parameter was illegal): HTTP 200.
    Reply(Reply),
    /// Missing or unparseable parameter: HTTP 400 with this text.
    BadRequest(String),
    /// No member of this name and verb in this table.
    NoMember,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numbers_parse_in_invariant_culture_with_exponents() {
        assert_eq!(parse_f64("1E-05"), Some(1e-5));
        assert_eq!(parse_f64(" 12.5 "), Some(12.5));
        assert_eq!(parse_f64("-3"), Some(-3.0));
        assert_eq!(
            parse_f64("1,5"),
            None,
            "comma decimal separators are not invariant culture"
        );
        assert_eq!(parse_f64("NaN"), None);
        assert_eq!(parse_f64("inf"), None);
        assert_eq!(parse_f64(""), None);
        assert_eq!(parse_i32("1.0"), None);
        assert_eq!(parse_i32("+7"), Some(7));
    }

    #[test]
    fn integer_values_may_arrive_as_whole_doubles() {
        assert_eq!(i32::from_wire(Some(serde_json::json!(3.0))), Ok(3));
        assert!(i32::from_wire(Some(serde_json::json!(3.5))).is_err());
        assert!(i32::from_wire(None).is_err());
        assert_eq!(
            PierSide::from_wire(Some(serde_json::json!(-1.0))),
            Ok(PierSide::Unknown)
        );
        assert!(PierSide::from_wire(Some(serde_json::json!(4))).is_err());
        assert_eq!(
            Vec::<DriveRate>::from_wire(Some(serde_json::json!([0, 2.0]))),
            Ok(vec![DriveRate::Sidereal, DriveRate::Solar])
        );
        assert_eq!(
            Vec::<i32>::from_wire(Some(serde_json::json!([1, 2.0]))),
            Ok(vec![1, 2])
        );
        assert_eq!(<()>::from_wire(None), Ok(()));
    }

    #[test]
    fn bools_accept_any_casing_only() {
        assert_eq!(parse_bool("TRUE"), Some(true));
        assert_eq!(parse_bool("False"), Some(false));
        assert_eq!(parse_bool("123456"), None);
        assert_eq!(parse_bool(""), None);
    }

    #[test]
    fn put_names_are_case_sensitive_get_names_are_not() {
        let pairs = vec![("bINX".to_owned(), "2".to_owned())];
        assert_eq!(
            Params::form(pairs.clone()).parse::<i32>("BinX"),
            Err(ParamError::Missing("BinX"))
        );
        assert_eq!(Params::query(pairs).parse::<i32>("BinX"), Ok(2));
    }

    #[test]
    fn enum_params_separate_unparseable_from_illegal() {
        let p = Params::form(vec![
            ("TrackingRate".into(), "5".into()),
            ("Axis".into(), "x".into()),
        ]);
        assert!(matches!(
            p.parse::<DriveRate>("TrackingRate"),
            Err(ParamError::Invalid(_))
        ));
        assert!(matches!(
            p.parse::<TelescopeAxis>("Axis"),
            Err(ParamError::Unparseable { .. })
        ));
    }

    #[test]
    fn transaction_ids_reject_malformed_values() {
        for bad in ["", " ", "-1", "abc", "4294967296"] {
            let p = Params::query(vec![("ClientTransactionID".into(), bad.into())]);
            assert!(
                p.transaction_id("ClientTransactionID").is_err(),
                "{bad:?} must be rejected"
            );
        }
        assert_eq!(Params::query(vec![]).transaction_id("ClientID"), Ok(None));
    }

    proptest! {
        #[test]
        fn every_finite_double_round_trips_through_its_param_text(v in any::<f64>().prop_filter("finite", |v| v.is_finite())) {
            prop_assert_eq!(f64::parse_param(&v.format_param()).ok(), Some(v));
        }

        #[test]
        fn exponent_forms_parse_like_rust(m in -1000.0f64..1000.0, e in -30i32..30) {
            let text = format!("{m}E{e}");
            prop_assert_eq!(parse_f64(&text), text.parse::<f64>().ok());
        }

        #[test]
        fn every_i32_round_trips(v in any::<i32>()) {
            prop_assert_eq!(i32::parse_param(&v.format_param()).ok(), Some(v));
        }

        #[test]
        fn arbitrary_text_never_panics(s in ".{0,24}") {
            let _ = parse_f64(&s);
            let _ = parse_i32(&s);
            let _ = parse_bool(&s);
            let _ = DriveRate::parse_param(&s);
            let _ = DateTime::<Utc>::parse_param(&s);
            let p = Params::form(vec![("ClientTransactionID".into(), s.clone())]);
            if let Ok(Some(n)) = p.transaction_id("ClientTransactionID") {
                prop_assert_eq!(s.trim().parse::<u32>().ok(), Some(n));
            }
        }
    }
}
