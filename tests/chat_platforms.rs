//! Telegram and Microsoft Teams targets seen from local receivers: what arrives on the
//! wire, each documented error answer (a 429's `retry_after` in the body, chats that are
//! gone, a blocked bot, a workflow turned off or deleted) and the default pacing.
//!
//! A telegram target's `api_url` points at a [`Receiver`], so the request path shows the
//! token exactly where the Bot API expects it; every log line is checked not to.
//! Chat targets default to `concurrency = 1`: deliveries land in arrival order, so "no
//! second attempt" is shown by a later event landing, never by sleeping.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

/// A token in @BotFather's shape, distinctive so no log line may contain its secret half.
const BOT_TOKEN: &str = "987654321:TGTESTSECRET_AAF3kq8ZrXw9Vb2mNc7Lp";
const TOKEN_SECRET: &str = "TGTESTSECRET_AAF3kq8ZrXw9Vb2mNc7Lp";

fn telegram_config(stream: &StreamServer, api: &Receiver) -> RelayConfig {
    let extra = format!("bot_token = \"{BOT_TOKEN}\"\nchat_id = -1001234567890\n");
    RelayConfig::new(stream)
        .target("tg", "telegram", &api.url(), &extra)
        .route(route("all").targets(&["tg"]))
}

fn teams_config(stream: &StreamServer, hook: &Receiver) -> RelayConfig {
    RelayConfig::new(stream)
        .target("teams", "teams", &hook.url(), "")
        .route(route("all").targets(&["teams"]))
}

/// A Bot API error answer.
fn bot_api_error(status: u16, description: &str) -> Reply {
    Reply::status(status)
        .body(&json!({"ok": false, "error_code": status, "description": description}).to_string())
}

fn assert_no_token_in_logs(relay: &Relay) {
    for line in relay.logs() {
        assert!(!line.contains(TOKEN_SECRET), "the bot token leaked: {line}");
    }
}

#[tokio::test]
async fn a_telegram_message_is_html_escaped_defused_and_posted_with_the_token_only_in_the_path() {
    let stream = StreamServer::start().await;
    let api = Receiver::start().await;
    let relay = Relay::start_connected(&telegram_config(&stream, &api), &stream).await;

    stream.send_event(&event(
        "21001",
        "mon-tech",
        "Tech <Leaders>",
        "elonmusk",
        "hi @durov & <a href=\"tg://user?id=1\">you</a> <b>bold</b>",
    ));
    let req = api.wait_for_requests(1, DEADLINE).await.remove(0);
    assert_eq!(req.uri, format!("/hook/bot{BOT_TOKEN}/sendMessage"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(chat_tweet_id(&req).as_deref(), Some("21001"));
    let body = req.json();
    assert_eq!(body["chat_id"], -1_001_234_567_890_i64);
    assert_eq!(body["parse_mode"], "HTML");
    assert_eq!(body["link_preview_options"], json!({"is_disabled": true}));
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains("hi @\u{200B}durov &amp; &lt;a href=&quot;tg://user?id=1&quot;&gt;you&lt;/a&gt; &lt;b&gt;bold&lt;/b&gt;"),
        "{text}"
    );
    assert!(text.contains("Monitor: Tech &lt;Leaders&gt;"), "{text}");
    assert!(
        text.contains("<a href=\"https://x.com/elonmusk/status/21001\">Open on X</a>"),
        "{text}"
    );
    assert!(!text.contains("tg://user?id=1\">"), "{text}");

    // Delivered, and the token is in no log line, on the way in or out.
    relay
        .wait_for_log_matching("the delivery logged", DEADLINE, |l| {
            l.contains("Delivered") && l.contains("\"tg\"")
        })
        .await;
    assert_no_token_in_logs(&relay);
}

#[tokio::test]
async fn a_telegram_429_waits_for_the_retry_after_in_its_body() {
    let stream = StreamServer::start().await;
    let api = Receiver::start().await;
    // The Bot API sends its wait only in the body, never as a Retry-After header.
    api.script(vec![Reply::status(429).body(
        r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 2","parameters":{"retry_after":2}}"#,
    )]);
    let _relay = Relay::start_connected(&telegram_config(&stream, &api), &stream).await;

    stream.send_event(&tweet_event("21101"));
    let reqs = wait_for_chat_tweet(&api, "21101", DEADLINE).await;
    assert_eq!(statuses(&reqs), [429, 200], "one retry, then delivered");
    let waited = reqs[1].arrived - reqs[0].arrived;
    eprintln!("telegram retry_after 2 -> retried after {waited:?}");
    assert!(
        waited >= Duration::from_secs(2),
        "retried {waited:?} after a 429 whose body said retry_after 2"
    );
}

#[tokio::test]
async fn telegram_refusals_that_never_change_are_dead_lettered_after_one_attempt_with_advice() {
    let stream = StreamServer::start().await;
    let api = Receiver::start().await;
    let cases = [
        (400, "Bad Request: chat not found", "chat_id"),
        (403, "Forbidden: bot was blocked by the user", "unblock"),
        (
            403,
            "Forbidden: bot was kicked from the supergroup chat",
            "add it back",
        ),
        (401, "Unauthorized", "bot_token"),
    ];
    api.script(
        cases
            .iter()
            .map(|(status, description, _)| bot_api_error(*status, description))
            .collect(),
    );
    let relay = Relay::start_connected(&telegram_config(&stream, &api), &stream).await;

    let ids: Vec<String> = (21200..21205).map(|i| i.to_string()).collect();
    for id in &ids {
        stream.send_event(&tweet_event(id));
    }
    let reqs = wait_for_chat_tweet(&api, "21204", DEADLINE).await;
    assert_eq!(chat_tweet_ids(&reqs), ids, "one attempt each");
    assert_eq!(statuses(&reqs), [400, 403, 403, 401, 200]);
    for (id, (status, description, hint)) in ids.iter().zip(cases) {
        let line = wait_for_dead_letter(&relay, id).await;
        let advice = line["advice"].as_str().unwrap_or_default();
        assert!(advice.contains(hint), "{status} {description}: {advice}");
        let error = line["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&status.to_string()) && error.contains(description),
            "{status}: the dead letter keeps the status and the description: {line}"
        );
        assert_eq!(line["attempt"], 1, "{line}");
    }
    assert_no_token_in_logs(&relay);
}

#[tokio::test]
async fn a_burst_to_a_teams_target_is_paced_at_4_per_second_as_one_adaptive_card_each() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    // Teams' documented limit for a Workflows webhook: 4 requests a second.
    hook.throttle(4, Duration::from_secs(1), 1);
    let _relay = Relay::start_connected(&teams_config(&stream, &hook), &stream).await;

    let ids: Vec<String> = (21300..21312).map(|i| i.to_string()).collect();
    for id in &ids {
        stream.send_event(&tweet_event(id));
    }
    let reqs = wait_for_chat_tweet(&hook, "21311", Duration::from_secs(30)).await;
    let total = reqs[reqs.len() - 1].arrived - reqs[0].arrived;
    eprintln!(
        "teams burst of 12 at 4/s: {} requests over {total:?}",
        reqs.len()
    );
    assert_eq!(hook.throttled(), 0, "the relay earned 429s at 4/s");
    assert_eq!(chat_tweet_ids(&reqs), ids, "every event once, in order");
    // 12 at 4/s: the first 4 at once, then 8 more over at least 1.75 s.
    assert!(total >= Duration::from_millis(1_750), "{total:?}");

    let req = &reqs[0];
    assert!(req.body.len() < 28 * 1024);
    let body = req.json();
    assert_eq!(body["type"], "message");
    let attachment = &body["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachment["content"];
    assert_eq!(
        (card["type"].as_str(), card["version"].as_str()),
        (Some("AdaptiveCard"), Some("1.4"))
    );
    assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
    assert_eq!(
        card["actions"][0]["url"],
        "https://x.com/elonmusk/status/21300"
    );
    assert_eq!(
        card["body"][1]["inlines"][0]["text"], "Tweet number 21300",
        "{card}"
    );
}

#[tokio::test]
async fn teams_refusals_are_dead_lettered_with_advice_and_the_signature_is_never_logged() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    hook.script(vec![
        Reply::status(400).body(
            r#"{"error":{"code":"WorkflowTriggerIsNotEnabled","message":"The workflow is disabled."}}"#,
        ),
        Reply::status(404).body(r#"{"error":{"code":"WorkflowNotFound","message":"x"}}"#),
    ]);
    let url = format!(
        "{}?api-version=2016-06-01&sig=TEAMSSIGSECRET_77",
        hook.url()
    );
    let cfg = RelayConfig::new(&stream)
        .target("teams", "teams", &url, "")
        .route(route("all").targets(&["teams"]));
    let relay = Relay::start_connected(&cfg, &stream).await;

    for id in ["21400", "21401", "21402"] {
        stream.send_event(&tweet_event(id));
    }
    let reqs = wait_for_chat_tweet(&hook, "21402", DEADLINE).await;
    assert_eq!(statuses(&reqs), [400, 404, 200]);
    for (id, hint) in [("21400", "turned off"), ("21401", "deleted")] {
        let line = wait_for_dead_letter(&relay, id).await;
        let advice = line["advice"].as_str().unwrap_or_default();
        assert!(advice.contains(hint), "{id}: {advice}");
    }
    for line in relay.logs() {
        assert!(
            !line.contains("TEAMSSIGSECRET_77"),
            "the workflow's sig leaked: {line}"
        );
    }
}
