//! PLACEHOLDER until the chat-targets branch merges.
use crate::config::SlackOptions;
use serde_json::{Map, Value};
pub fn payload(event: &Map<String, Value>, _opts: &SlackOptions) -> Value {
    serde_json::json!({ "text": event.get("tweet_text").and_then(Value::as_str).unwrap_or("") })
}
pub fn diagnose(_status: u16, _body: &[u8]) -> Option<&'static str> {
    None
}
