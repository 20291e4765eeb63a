//! What the chat-target tests share: reading which tweet a message is about, and
//! waiting for a delivery or its dead letter.

use std::time::Duration;

use serde_json::Value;

use super::{DEADLINE, Receiver, Relay, Request};

/// The tweet a chat message is about, read from the tweet link it carries
/// (`.../status/ID`): chat payloads have no `tweet_id` field.
pub fn chat_tweet_id(req: &Request) -> Option<String> {
    let body = req.body_str();
    let at = body.find("/status/")? + "/status/".len();
    let id: String = body[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (!id.is_empty()).then_some(id)
}

pub fn chat_tweet_ids(reqs: &[Request]) -> Vec<String> {
    reqs.iter()
        .map(|r| chat_tweet_id(r).unwrap_or_else(|| panic!("no tweet link in {}", r.body_str())))
        .collect()
}

pub fn statuses(reqs: &[Request]) -> Vec<u16> {
    reqs.iter().map(|r| r.status).collect()
}

/// Waits until a request about tweet `id` has been answered 2xx; returns all requests.
pub async fn wait_for_chat_tweet(
    receiver: &Receiver,
    id: &str,
    deadline: Duration,
) -> Vec<Request> {
    receiver
        .wait_until(format!("tweet {id} delivered"), deadline, |reqs| {
            reqs.iter()
                .any(|r| r.is_success() && chat_tweet_id(r).as_deref() == Some(id))
        })
        .await
}

/// A JSON log line, if it is one.
pub fn log_json(line: &str) -> Option<Value> {
    serde_json::from_str(line).ok()
}

/// Waits for the ERROR line that dead-letters tweet `id`'s delivery; returns it parsed.
pub async fn wait_for_dead_letter(relay: &Relay, id: &str) -> Value {
    let line = relay
        .wait_for_log_matching(
            &format!("an ERROR log line dead-lettering tweet {id}"),
            DEADLINE,
            |line| {
                log_json(line).is_some_and(|v| {
                    v["level"] == "ERROR"
                        && v["tweet_id"] == id
                        && v["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("dead-lettered"))
                })
            },
        )
        .await;
    log_json(&line).unwrap()
}
