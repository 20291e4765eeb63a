//! ScrapeBadger events as the stream sends them.

use serde_json::{Value, json};

/// A `tweet.detected` event in the shape of ScrapeBadger's docs, from the monitor
/// "Tech Leaders" (`mon-tech`) and the author `elonmusk`.
pub fn tweet_event(tweet_id: &str) -> Value {
    event(
        tweet_id,
        "mon-tech",
        "Tech Leaders",
        "elonmusk",
        &format!("Tweet number {tweet_id}"),
    )
}

/// A `tweet.detected` event with the fields routing looks at chosen by the test.
pub fn event(
    tweet_id: &str,
    monitor_id: &str,
    monitor_name: &str,
    author: &str,
    text: &str,
) -> Value {
    json!({
        "event": "tweet.detected",
        "monitor_id": monitor_id,
        "monitor_name": monitor_name,
        "tweet_id": tweet_id,
        "author_username": author,
        "tweet_text": text,
        "tweet_url": format!("https://x.com/{author}/status/{tweet_id}"),
        "tweet_published_at": "2026-03-13T12:00:00Z",
        "detected_at": "2026-03-13T12:00:00.150Z",
        "latency_ms": 150,
    })
}

/// The `tweet_id` of a JSON event body, if it is one.
pub fn tweet_id(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value.get("tweet_id")?.as_str().map(str::to_string)
}
