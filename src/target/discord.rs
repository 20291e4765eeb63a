//! PLACEHOLDER until the chat-targets branch merges.
use crate::config::DiscordOptions;
use serde_json::{Map, Value};
pub fn payload(event: &Map<String, Value>, _opts: &DiscordOptions) -> Value {
    serde_json::json!({ "content": event.get("tweet_text").and_then(Value::as_str).unwrap_or(""), "allowed_mentions": {"parse": []} })
}
pub fn request_url(base: &reqwest::Url, _opts: &DiscordOptions) -> reqwest::Url {
    base.clone()
}
pub fn retry_after_from_body(_body: &[u8]) -> Option<std::time::Duration> {
    None
}
pub fn diagnose(_status: u16, _body: &[u8]) -> Option<&'static str> {
    None
}
