//! `/ingest` bodies into events with the stream's field names.
//!
//! ScrapeBadger's webhook body is the stream's event with the full tweet under
//! `tweet_data`: passed on as received. The older shape, `"type": "tweet"` with a
//! `tweet{}` object, is rewritten to the stream's top-level names so that routing,
//! dedupe (a tweet from the stream and from the webhook is one tweet) and the targets
//! see one format. The original object is kept under `tweet_data`.

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::event::{Event, InvalidEvent, TWEET_DETECTED};

pub fn to_event(body: Bytes) -> Result<Event, InvalidEvent> {
    let event = Event::parse(body)?;
    if event.fields().event.is_some() {
        return Ok(event);
    }
    let legacy = serde_json::from_slice::<Map<String, Value>>(event.raw())
        .ok()
        .filter(|m| {
            m.get("type").and_then(Value::as_str) == Some("tweet")
                && m.get("tweet").is_some_and(Value::is_object)
        });
    match legacy {
        Some(map) => Event::parse(Bytes::from(normalize_legacy(map))),
        None => Ok(event),
    }
}

fn normalize_legacy(mut map: Map<String, Value>) -> Vec<u8> {
    let tweet = match map.remove("tweet") {
        Some(Value::Object(t)) => t,
        _ => Map::new(),
    };
    map.remove("type");
    let mut out = Map::new();
    out.insert("event".into(), Value::String(TWEET_DETECTED.into()));
    let tweet = Value::Object(tweet);
    let pick = |paths: &[&str]| -> Option<Value> {
        paths
            .iter()
            .find_map(|p| tweet.pointer(p).filter(|v| !v.is_null()).cloned())
    };
    let id = pick(&["/id", "/id_str", "/tweet_id"]).map(|v| match v {
        Value::Number(n) => Value::String(n.to_string()),
        other => other,
    });
    let fields: [(&str, Option<Value>); 5] = [
        ("tweet_id", id),
        (
            "author_username",
            pick(&[
                "/author_username",
                "/username",
                "/author/username",
                "/user/screen_name",
            ]),
        ),
        ("tweet_text", pick(&["/text", "/full_text", "/tweet_text"])),
        ("tweet_url", pick(&["/url", "/tweet_url"])),
        (
            "tweet_published_at",
            pick(&["/created_at", "/published_at", "/tweet_published_at"]),
        ),
    ];
    for (name, value) in fields {
        if let Some(v) = value {
            out.insert(name.into(), v);
        }
    }
    // Top-level fields (monitor_id, monitor_name, detected_at, ...) win over nothing and
    // are kept as they are.
    for (k, v) in map {
        out.entry(k).or_insert(v);
    }
    if !out.contains_key("tweet_url")
        && let (Some(Value::String(user)), Some(Value::String(id))) =
            (out.get("author_username"), out.get("tweet_id"))
    {
        let url = format!("https://x.com/{}/status/{id}", user.trim_start_matches('@'));
        out.insert("tweet_url".into(), Value::String(url));
    }
    out.insert("tweet_data".into(), tweet);
    serde_json::to_vec(&out).expect("a JSON map serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_shape_passes_through_byte_for_byte() {
        let body = r#"{"event":"tweet.detected","tweet_id":"1","tweet_data":{"id":"1"}}"#;
        let e = to_event(Bytes::from_static(body.as_bytes())).unwrap();
        assert_eq!(e.raw().as_ref(), body.as_bytes());
    }

    #[test]
    fn the_legacy_shape_gets_the_stream_names() {
        let body = r#"{"type":"tweet","monitor_id":"m1","monitor_name":"Tech","tweet":{"id":1234,"text":"hi","author":{"username":"sama"},"created_at":"2026-03-13T12:00:00Z"}}"#;
        let e = to_event(Bytes::from_static(body.as_bytes())).unwrap();
        let f = e.fields();
        assert_eq!(f.tweet_id.as_deref(), Some("1234"));
        assert_eq!(f.author_username.as_deref(), Some("sama"));
        assert_eq!(f.tweet_text.as_deref(), Some("hi"));
        assert_eq!(f.monitor_name.as_deref(), Some("Tech"));
        assert_eq!(e.event_type(), "tweet.detected");
        let map: Map<String, Value> = serde_json::from_slice(e.raw()).unwrap();
        assert_eq!(map["tweet_url"], "https://x.com/sama/status/1234");
        assert_eq!(map["tweet_data"]["text"], "hi");
        assert!(map.get("type").is_none());
    }

    #[test]
    fn bad_bodies_are_errors() {
        assert!(to_event(Bytes::from_static(b"{oops")).is_err());
        assert!(to_event(Bytes::from_static(b"[]")).is_err());
    }
}
