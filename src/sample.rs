//! Realistic sample events: what `send-test` sends and what the demo's stream plays.

use std::time::Duration;

use serde_json::{Value, json};

/// (monitor id, monitor name) of the sample monitors.
const MONITORS: [(&str, &str); 3] = [
    ("mon-tech", "Tech Leaders"),
    ("mon-ai", "AI Labs"),
    ("mon-space", "Space"),
];
/// (author, text, monitor index) of the sample tweets.
const TWEETS: [(&str, &str, usize); 8] = [
    (
        "sama",
        "We are launching a new model today. Details in the thread 🧵",
        1,
    ),
    (
        "elonmusk",
        "Starship flight 12 is go for launch tomorrow at 7am",
        2,
    ),
    (
        "satyanadella",
        "Announcing new AI capabilities for every developer",
        0,
    ),
    (
        "demishassabis",
        "Proud of the team: our paper on protein design is out",
        1,
    ),
    (
        "sundarpichai",
        "A few updates from I/O <3 & more coming soon",
        0,
    ),
    (
        "elonmusk",
        "@everyone this is not a ping, the relay disables mentions",
        2,
    ),
    (
        "karpathy",
        "New video: building a tokenizer from scratch",
        1,
    ),
    (
        "tim_cook",
        "Thank you to our developers around the world",
        0,
    ),
];

/// A realistic event; `n` picks the tweet and makes the id unique.
pub(crate) fn sample_event(n: u64) -> Value {
    let (author, text, monitor) = TWEETS[(n as usize) % TWEETS.len()];
    let (monitor_id, monitor_name) = MONITORS[monitor];
    let tweet_id = 1_900_000_000_000_000_000 + n;
    let now = std::time::SystemTime::now();
    let published = humantime::format_rfc3339_seconds(now - Duration::from_millis(1200));
    let detected = humantime::format_rfc3339_millis(now);
    json!({
        "event": "tweet.detected",
        "monitor_id": monitor_id,
        "monitor_name": monitor_name,
        "tweet_id": tweet_id.to_string(),
        "author_username": author,
        "tweet_text": text,
        "tweet_url": format!("https://x.com/{author}/status/{tweet_id}"),
        "tweet_published_at": published.to_string(),
        "detected_at": detected.to_string(),
        "latency_ms": 1200,
    })
}
