//! One tweet event: the bytes exactly as received, and the few fields routing reads.
//!
//! The raw JSON is what an `http` target receives, byte for byte, unknown fields
//! included, so it is kept as it came. The routed fields are parsed once, here, and
//! never again on the hot path; Slack and Discord formatting parses the full object
//! when (and only when) a chat message is rendered.

use bytes::Bytes;
use serde::Deserialize;

/// Why a frame or request body is not an event.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidEvent {
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("not a JSON object")]
    NotAnObject,
}

/// A parsed, validated event.
#[derive(Debug, Clone)]
pub struct Event {
    /// The frame or body exactly as received: what http targets get.
    raw: Bytes,
    /// The routed fields, parsed once.
    fields: Fields,
}

/// The top-level fields routing and deduplication look at. Anything missing is `None`;
/// fields of other JSON types (a number where a string was expected) are treated as absent
/// rather than failing the event, since ScrapeBadger may add or change fields.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Fields {
    /// The event type (`tweet.detected`).
    #[serde(default, deserialize_with = "lenient_string")]
    pub event: Option<String>,
    /// The stream monitor that found it.
    #[serde(default, deserialize_with = "lenient_string")]
    pub monitor_id: Option<String>,
    /// Its name, as routes usually name it.
    #[serde(default, deserialize_with = "lenient_string")]
    pub monitor_name: Option<String>,
    /// The filter rule that found it (filter-rule events).
    #[serde(default, deserialize_with = "lenient_string")]
    pub rule_id: Option<String>,
    /// Its tag.
    #[serde(default, deserialize_with = "lenient_string")]
    pub rule_tag: Option<String>,
    /// The tweet: the `dedupe = "tweet"` key.
    #[serde(default, deserialize_with = "lenient_string")]
    pub tweet_id: Option<String>,
    /// Who wrote it, without `@`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub author_username: Option<String>,
    /// What it says: the `text` regex runs on this.
    #[serde(default, deserialize_with = "lenient_string")]
    pub tweet_text: Option<String>,
}

/// The event type routes default to.
pub const TWEET_DETECTED: &str = "tweet.detected";

impl Event {
    /// Parse a frame or request body. The bytes are kept as they are.
    pub fn parse(raw: Bytes) -> Result<Event, InvalidEvent> {
        // serde's derive would accept a JSON array as a struct in sequence form: only an
        // object is an event.
        let first = raw.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            // Tell "not JSON" from "JSON but not an object" for the operator.
            return match serde_json::from_slice::<serde::de::IgnoredAny>(&raw) {
                Ok(_) => Err(InvalidEvent::NotAnObject),
                Err(e) => Err(InvalidEvent::Json(e.to_string())),
            };
        }
        let fields: Fields =
            serde_json::from_slice(&raw).map_err(|e| InvalidEvent::Json(e.to_string()))?;
        Ok(Event { raw, fields })
    }

    /// Build an event from already-validated parts (the `/ingest` normaliser).
    pub fn from_parts(raw: Bytes, fields: Fields) -> Event {
        Event { raw, fields }
    }

    /// The JSON exactly as received.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    /// The event type; an event without one is a `tweet.detected` (the stream's only type today).
    pub fn event_type(&self) -> &str {
        self.fields.event.as_deref().unwrap_or(TWEET_DETECTED)
    }

    /// The key for `dedupe = "tweet"`: the tweet id, or, for an event without one, the
    /// event's bytes (so identical frames still collapse).
    pub fn tweet_key(&self) -> String {
        match &self.fields.tweet_id {
            Some(id) => format!("t:{id}"),
            None => format!("h:{:016x}", fnv1a(&self.raw)),
        }
    }

    /// The key for `dedupe = "event"`: type, monitor or rule, and tweet.
    pub fn event_key(&self) -> String {
        let f = &self.fields;
        match &f.tweet_id {
            Some(id) => {
                let source = f
                    .monitor_id
                    .as_deref()
                    .or(f.monitor_name.as_deref())
                    .or(f.rule_id.as_deref())
                    .or(f.rule_tag.as_deref())
                    .unwrap_or("");
                format!("e:{}:{}:{}", self.event_type(), source, id)
            }
            None => format!("h:{:016x}", fnv1a(&self.raw)),
        }
    }
}

/// A stable (across versions and restarts) 64-bit hash for dedupe keys of events with
/// no tweet id. Not for security: a collision only merges two id-less duplicates.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Accept a string, or anything else as "absent". Numbers are kept as their text, so
/// a numeric `tweet_id` still dedupes and routes.
fn lenient_string<'de, D>(de: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let value = serde_json::Value::deserialize(de)?;
    Ok(match value {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Event, InvalidEvent> {
        Event::parse(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn keeps_the_bytes_and_reads_the_routed_fields() {
        let text = r#" {"event":"tweet.detected", "monitor_name":"Tech","tweet_id":"1","author_username":"a","extra":{"x":[1,2]}}"#;
        let e = parse(text).unwrap();
        assert_eq!(e.raw().as_ref(), text.as_bytes());
        assert_eq!(e.fields().monitor_name.as_deref(), Some("Tech"));
        assert_eq!(e.event_type(), "tweet.detected");
    }

    #[test]
    fn rejects_what_is_not_an_object() {
        assert_eq!(parse("[1,2]").unwrap_err(), InvalidEvent::NotAnObject);
        assert_eq!(parse("42").unwrap_err(), InvalidEvent::NotAnObject);
        assert!(matches!(parse("{nope").unwrap_err(), InvalidEvent::Json(_)));
        assert!(matches!(parse("").unwrap_err(), InvalidEvent::Json(_)));
        assert!(matches!(
            parse("\u{feff}{}").unwrap_err(),
            InvalidEvent::Json(_)
        ));
    }

    #[test]
    fn odd_field_types_are_absent_not_fatal() {
        let e = parse(r#"{"tweet_id":123,"author_username":null,"monitor_name":{"a":1}}"#).unwrap();
        assert_eq!(e.fields().tweet_id.as_deref(), Some("123"));
        assert_eq!(e.fields().author_username, None);
        assert_eq!(e.fields().monitor_name, None);
        assert_eq!(e.event_type(), TWEET_DETECTED);
    }

    #[test]
    fn dedupe_keys() {
        let a = parse(r#"{"monitor_id":"m1","tweet_id":"9"}"#).unwrap();
        let b = parse(r#"{"monitor_id":"m2","tweet_id":"9"}"#).unwrap();
        assert_eq!(a.tweet_key(), b.tweet_key());
        assert_ne!(a.event_key(), b.event_key());
        let c = parse(r#"{"x":1}"#).unwrap();
        let d = parse(r#"{"x":2}"#).unwrap();
        assert_ne!(c.tweet_key(), d.tweet_key());
        assert_eq!(c.tweet_key(), parse(r#"{"x":1}"#).unwrap().tweet_key());
    }
}
