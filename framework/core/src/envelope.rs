//! The message envelope and request decoding.
//!
//! Go peers send requests both bare (`{"username": ..}`) and enveloped (`{"id", "type", "source",
//! "timestamp", "payload": {..}}`), so [`Request::decode`] accepts both. An envelope is recognised by
//! a `payload` field next to `type` or `source`. Correlation ids are taken from the envelope or, for
//! bare requests, from the payload's `correlation_id`, `request_id` or `message_id`.
//!
//! Every reply names the request it answers: `request_digest` is the lowercase hex SHA-256 of
//! the exact request bytes ([`request_digest`]). Anyone who sees a request can send another one
//! with the same response topic and correlation data, so the topic and the correlation tell a
//! client nothing about who provoked a reply; only the digest of what the client itself sent
//! does ([`answers`]).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a message is for. Unknown values are kept so decoding never fails on a new type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    Command,
    Event,
    Request,
    Response,
    Status,
    #[serde(untagged)]
    Other(String),
}

/// The framework envelope. Field names match the Go framework; `correlation_id`, `reply_to` and
/// `token` are optional additions that Go receivers ignore.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: MessageType,
    pub source: String,
    #[serde(with = "rfc3339")]
    pub timestamp: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub payload: Value,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are credentials: never print them.
        f.debug_struct("Envelope")
            .field("id", &self.id)
            .field("type", &self.kind)
            .field("source", &self.source)
            .field("timestamp", &self.timestamp)
            .field("correlation_id", &self.correlation_id)
            .field("reply_to", &self.reply_to)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("payload", &self.payload)
            .finish()
    }
}

/// The reply field that names the request a reply answers.
pub const REQUEST_DIGEST: &str = "request_digest";

/// Lowercase hex SHA-256 of the request bytes `payload`: what a reply to it carries as
/// [`REQUEST_DIGEST`].
pub fn request_digest(payload: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(payload))
}

/// Whether `reply` answers the request whose [`request_digest`] is `digest`. A reply without
/// the field, or with another request's digest, was provoked by someone else (or comes from a
/// peer that does not say): a client must not take it for its answer.
pub fn answers(reply: &Value, digest: &str) -> bool {
    reply.get(REQUEST_DIGEST).and_then(Value::as_str) == Some(digest)
}

/// A new unique message id: a UUID v7 (time-ordered, unique under load, unlike the Go timestamp ids).
pub fn new_message_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl Envelope {
    pub fn new(kind: MessageType, source: impl Into<String>, payload: Value) -> Self {
        Self {
            id: new_message_id(),
            kind,
            source: source.into(),
            timestamp: Utc::now(),
            correlation_id: None,
            reply_to: None,
            token: None,
            payload,
        }
    }

    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    pub fn with_reply_to(mut self, topic: impl Into<String>) -> Self {
        self.reply_to = Some(topic.into());
        self
    }

    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising a struct of strings and a Value cannot fail.
        serde_json::to_vec(self).expect("an envelope always serialises")
    }
}

/// Why a request could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("request is not valid JSON: {0}")]
    Json(String),
    #[error("request must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("malformed envelope: {0}")]
    Envelope(String),
}

/// A request as the runtime sees it, whichever form it arrived in.
#[derive(Clone, PartialEq)]
pub struct Request {
    /// The inner payload (for bare requests, the whole message).
    pub payload: Value,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    pub token: Option<String>,
    /// The envelope's id and source when the request was enveloped.
    pub envelope: Option<(String, String)>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("correlation_id", &self.correlation_id)
            .field("reply_to", &self.reply_to)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("envelope", &self.envelope)
            .finish_non_exhaustive()
    }
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A correlation id may arrive as a string or a number; anything else is ignored.
fn id_field(map: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match map.get(*k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

fn string_field(map: &Map<String, Value>, key: &str) -> Option<String> {
    match map.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

const CORRELATION_KEYS: [&str; 3] = ["correlation_id", "request_id", "message_id"];

impl Request {
    /// Best-effort correlation id from bytes that may not even be valid JSON, so that an error
    /// reply to a broken request can still be matched by the requester.
    pub fn sniff_correlation_id(bytes: &[u8]) -> Option<String> {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(bytes) else {
            return None;
        };
        id_field(&map, &CORRELATION_KEYS).or_else(|| match map.get("payload") {
            Some(Value::Object(inner)) => id_field(inner, &CORRELATION_KEYS),
            _ => None,
        })
    }

    /// Decode a bare or enveloped request.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(DecodeError::NotAnObject(kind_name(&value)));
        };
        let is_envelope =
            map.contains_key("payload") && (map.contains_key("type") || map.contains_key("source"));
        if !is_envelope {
            return Ok(Self {
                correlation_id: id_field(&map, &CORRELATION_KEYS),
                reply_to: string_field(&map, "reply_to"),
                token: string_field(&map, "token").or_else(|| string_field(&map, "api_key")),
                envelope: None,
                payload: Value::Object(map),
            });
        }
        let env: Envelope = serde_json::from_value(Value::Object(map))
            .map_err(|e| DecodeError::Envelope(e.to_string()))?;
        let inner = match &env.payload {
            Value::Object(inner) => Some(inner),
            _ => None,
        };
        Ok(Self {
            correlation_id: env
                .correlation_id
                .clone()
                .or_else(|| inner.and_then(|m| id_field(m, &CORRELATION_KEYS))),
            reply_to: env
                .reply_to
                .clone()
                .or_else(|| inner.and_then(|m| string_field(m, "reply_to"))),
            token: env.token.clone().or_else(|| {
                inner.and_then(|m| string_field(m, "token").or_else(|| string_field(m, "api_key")))
            }),
            envelope: Some((env.id, env.source)),
            payload: env.payload,
        })
    }
}

/// RFC 3339 with nanoseconds and `Z`, which Go's `time.Time` parser requires.
pub mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// Current time as Go-compatible RFC 3339 text.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_answers_only_the_request_whose_digest_it_carries() {
        let mine = br#"{"username":"alice","password":"x"}"#;
        let digest = request_digest(mine);
        assert_eq!(digest.len(), 64);
        assert_eq!(
            request_digest(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let real = serde_json::json!({"success": true, "request_digest": digest});
        let forged = serde_json::json!({"success": true, "request_digest": request_digest(b"{}")});
        assert!(answers(&real, &digest));
        assert!(!answers(&forged, &digest));
        assert!(!answers(&serde_json::json!({"success": true}), &digest));
    }
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn bare_requests_keep_their_whole_body() {
        let r = Request::decode(br#"{"username":"ada","password":"x","request_id":"r1"}"#).unwrap();
        assert_eq!(r.payload["username"], "ada");
        assert_eq!(r.correlation_id.as_deref(), Some("r1"));
        assert!(r.envelope.is_none());
    }

    #[test]
    fn enveloped_requests_are_unwrapped() {
        let env = Envelope::new(MessageType::Request, "test", json!({"username": "ada"}))
            .with_correlation_id("c-9")
            .with_reply_to("replies/me")
            .with_token("tok");
        let r = Request::decode(&env.to_bytes()).unwrap();
        assert_eq!(r.payload, json!({"username": "ada"}));
        assert_eq!(r.correlation_id.as_deref(), Some("c-9"));
        assert_eq!(r.reply_to.as_deref(), Some("replies/me"));
        assert_eq!(r.token.as_deref(), Some("tok"));
        assert_eq!(r.envelope.as_ref().map(|e| e.1.as_str()), Some("test"));
    }

    #[test]
    fn go_shaped_envelopes_decode() {
        let go =
            br#"{"id":"20260116120000.123456","type":"status","source":"coordinator:telescope",
            "timestamp":"2026-01-16T12:00:00.123456789Z","payload":{"status":"healthy"}}"#;
        let r = Request::decode(go).unwrap();
        assert_eq!(r.payload["status"], "healthy");
        let env: Envelope = serde_json::from_slice(go).unwrap();
        assert_eq!(env.kind, MessageType::Status);
    }

    #[test]
    fn message_ids_are_unique() {
        let ids: std::collections::HashSet<_> = (0..10_000).map(|_| new_message_id()).collect();
        assert_eq!(ids.len(), 10_000);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert!(matches!(
            Request::decode(b"{not json"),
            Err(DecodeError::Json(_))
        ));
        assert_eq!(
            Request::decode(b"[1,2]"),
            Err(DecodeError::NotAnObject("an array"))
        );
        assert!(matches!(
            Request::decode(br#"{"type":"request","payload":{},"timestamp":"yesterday"}"#),
            Err(DecodeError::Envelope(_))
        ));
    }

    #[test]
    fn correlation_ids_can_be_sniffed_from_broken_requests() {
        assert_eq!(
            Request::sniff_correlation_id(br#"{"correlation_id":"a","x":}"#),
            None,
            "invalid JSON has no reliable id"
        );
        assert_eq!(
            Request::sniff_correlation_id(br#"{"message_id":42}"#).as_deref(),
            Some("42")
        );
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{1,8}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = Request::decode(&bytes);
            let _ = Request::sniff_correlation_id(&bytes);
        }

        #[test]
        fn enveloping_preserves_payload_and_ids(payload in arb_json(), cid in "[a-zA-Z0-9-]{1,20}") {
            let env = Envelope::new(MessageType::Request, "p", payload.clone()).with_correlation_id(cid.clone());
            let r = Request::decode(&env.to_bytes()).unwrap();
            prop_assert_eq!(r.payload, payload);
            prop_assert_eq!(r.correlation_id, Some(cid));
        }

        #[test]
        fn bare_objects_decode_to_themselves(map in prop::collection::btree_map("[a-z]{1,8}", arb_json(), 0..6)) {
            let mut obj: Map<String, Value> = map.into_iter().collect();
            obj.remove("payload");
            let bytes = serde_json::to_vec(&Value::Object(obj.clone())).unwrap();
            let r = Request::decode(&bytes).unwrap();
            prop_assert_eq!(r.payload, Value::Object(obj));
        }
    }
}
